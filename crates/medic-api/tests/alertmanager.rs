//! A real Alertmanager (`prometheus-alertmanager`, started by the test on loopback) delivers
//! its webhook to `POST /api/v1/alerts/alertmanager` with the bearer token from its
//! `credentials_file`: the alert reaches the daemon's channel firing, then resolved.
//!
//! Skipped with a printed reason when the binary is absent.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::start;
use medic_core::Severity;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";
const TOKEN: &str = "am-token-0123456789";

/// Kills and reaps Alertmanager when dropped, also when the test panics (then prints its log).
struct Guard {
    child: Child,
    log: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("alertmanager log:\n{log}");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_alertmanager(dir: &Path, medic: &str) -> (Guard, String) {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:
  receiver: medic
  group_by: [alertname, target]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: medic
    webhook_configs:
      - url: {medic}/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials_file: {}
",
            token_file.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.join("alertmanager.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("spawn alertmanager");
    (Guard { child, log }, format!("http://127.0.0.1:{port}"))
}

/// Polls `/-/ready` (bounded): there is no event to wait on for another process's start-up.
async fn wait_ready(client: &reqwest::Client, base: &str, guard: &mut Guard) {
    for _ in 0..300 {
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!("alertmanager exited with {status}");
        }
        if let Ok(r) = client.get(format!("{base}/-/ready")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("alertmanager not ready within 30 s");
}

/// Waits (at most 30 s) until an alert for `target` with the given firing state has arrived.
async fn wait_for_alert(
    s: &common::Server,
    target: &str,
    firing: bool,
) -> medic_api::ExternalAlert {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(a) = s
            .alerts
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.target.as_str() == target && a.firing == firing)
        {
            return a.clone();
        }
        tokio::time::timeout_at(deadline, s.alerts_arrived.notified())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {} alert for {target} within 30 s; got {:?}",
                    if firing { "firing" } else { "resolved" },
                    s.alerts.lock().unwrap()
                )
            });
    }
}

#[tokio::test]
async fn a_real_alertmanager_delivers_to_the_webhook_with_the_token() {
    if !Path::new(BINARY).exists() {
        eprintln!("skipping: {BINARY} is not installed (Debian package prometheus-alertmanager)");
        return;
    }
    let s = start(Some(TOKEN)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut guard, am) = start_alertmanager(dir.path(), &s.base);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&client, &am, &mut guard).await;

    let alert = |ends: Option<&str>| {
        let mut a = serde_json::json!({
            "labels": {
                "alertname": "HighErrorRate",
                "target": "payments",
                "instance": "127.0.0.1:8103",
                "severity": "critical"
            },
            "annotations": { "summary": "5xx rate above 5% for 2 minutes" },
            "startsAt": "2026-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph"
        });
        if let Some(e) = ends {
            a["endsAt"] = e.into();
        }
        serde_json::json!([a])
    };
    let r = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(None))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "alertmanager took the alert: {}",
        r.status()
    );

    let firing = wait_for_alert(&s, "payments", true).await;
    assert_eq!(firing.alertname, "HighErrorRate");
    assert_eq!(firing.severity, Severity::Critical);
    assert_eq!(firing.summary, "5xx rate above 5% for 2 minutes");
    assert!(!firing.fingerprint.is_empty());

    // Ending it in the past resolves it; Alertmanager sends the resolution (send_resolved).
    let r = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(Some("2026-01-01T00:01:00Z")))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let resolved = wait_for_alert(&s, "payments", false).await;
    assert_eq!(resolved.fingerprint, firing.fingerprint);

    drop(guard);
    s.stop().await;
}
