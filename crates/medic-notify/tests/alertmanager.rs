//! medic's escalation through a real Alertmanager (`prometheus-alertmanager`, started by the
//! test on loopback): the alert is listed by `GET /api/v2/alerts` with medic's labels, and
//! Alertmanager delivers it (firing, then resolved) to the test's webhook receiver. One real
//! delivered payload is kept as `tests/fixtures/alertmanager_webhook.json` (the format medic
//! receives on `POST /api/v1/alerts/alertmanager`); `MEDIC_UPDATE_FIXTURES=1` rewrites it.
//!
//! Skipped with a printed reason when the binary is absent.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{BOUND, Receiver, Reply, crash_loop, next_report, reports};
use medic_core::{Clock, SystemClock, TargetId};
use medic_notify::{AlertmanagerSink, Notification, Notifier, NotifySettings, Retry, Sink, Status};
use serde_json::Value;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// Kills and reaps the Alertmanager process when dropped, also when the test panics.
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

fn start_alertmanager(dir: &Path, webhook_url: &str) -> (Guard, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: medic-test\n  group_by: [alertname, target, medic_incident]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: medic-test\n    webhook_configs:\n      - url: {webhook_url}\n        send_resolved: true\n"
        ),
    )
    .expect("write alertmanager.yml");
    let port = free_port();
    let log = dir.join("alertmanager.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("spawn alertmanager");
    (Guard { child, log }, format!("http://127.0.0.1:{port}"))
}

/// Polls `/-/ready` until it answers 200 (bounded); panics with the process log otherwise.
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

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alertmanager_webhook.json")
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test]
async fn a_medic_escalation_goes_through_a_real_alertmanager_to_a_webhook() {
    if !Path::new(BINARY).exists() {
        eprintln!("skipping: {BINARY} is not installed (Debian package prometheus-alertmanager)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut receiver = Receiver::start(vec![Reply::Status(200)]).await;
    let (mut guard, base) = start_alertmanager(dir.path(), &receiver.url("/alertmanager"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    wait_ready(&client, &base, &mut guard).await;

    let sink = AlertmanagerSink::new(&base, Some("http://127.0.0.1:9797/")).unwrap();
    let settings = NotifySettings {
        sinks: vec![Sink::Alertmanager(sink)],
        cooldown: Duration::from_secs(300),
        retry: Retry::standard(),
    };
    let (on, mut rx) = reports();
    let mut notifier = Notifier::start(settings, on).unwrap();
    // Alertmanager judges firing and resolved against its own clock: real time here.
    let now = SystemClock.now();
    let n = Notification::escalation(&crash_loop("web"), "critical", now);
    let id = TargetId::new("web");
    assert!(notifier.notify(n.clone(), now).is_send());
    for _ in 0..5 {
        assert!(!notifier.notify(n.clone(), SystemClock.now()).is_send());
    }
    let r = next_report(&mut rx).await;
    assert!(r.result.is_ok(), "{r:?}");
    assert!(
        r.sink.starts_with("alertmanager http://127.0.0.1:"),
        "{r:?}"
    );

    // Alertmanager lists it with medic's labels.
    let alerts: Value = client
        .get(format!("{base}/api/v2/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ours: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "MedicEscalation")
        .collect();
    assert_eq!(ours.len(), 1, "{alerts:#}");
    let labels = &ours[0]["labels"];
    assert_eq!(labels["target"], "web");
    assert_eq!(labels["tier"], "critical");
    assert_eq!(labels["severity"], "critical");
    let incident = format!("web/escalation/{}", now.as_millis());
    assert_eq!(labels["medic_incident"], incident.as_str());
    assert_eq!(ours[0]["status"]["state"], "active");
    assert_eq!(ours[0]["generatorURL"], "http://127.0.0.1:9797/");
    assert!(
        ours[0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("web needs a human")
    );

    // Alertmanager itself delivers it to the webhook receiver: the payload medic will accept.
    let delivered = receiver.next(BOUND).await;
    assert_eq!(delivered.method, "POST");
    assert_eq!(delivered.path, "/alertmanager");
    let payload = delivered.json();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["receiver"], "medic-test");
    let delivered_alerts = payload["alerts"].as_array().unwrap();
    assert_eq!(delivered_alerts.len(), 1, "{payload:#}");
    assert_eq!(
        delivered_alerts[0]["labels"]["medic_incident"],
        incident.as_str()
    );
    assert_eq!(delivered_alerts[0]["labels"]["target"], "web");
    assert_eq!(delivered_alerts[0]["status"], "firing");

    // The kept fixture has the shape of what this Alertmanager really sends.
    let fixture = fixture_path();
    if std::env::var_os("MEDIC_UPDATE_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(&payload).unwrap();
        std::fs::write(&fixture, text + "\n").expect("write fixture");
    }
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).expect("the fixture exists"))
            .expect("the fixture is JSON");
    assert_eq!(keys(&kept), keys(&payload));
    assert_eq!(keys(&kept["alerts"][0]), keys(&payload["alerts"][0]));

    // Healed: the resolution reaches Alertmanager, which sends it on as resolved.
    assert_eq!(notifier.resolve_target(&id, SystemClock.now()), 1);
    let r = next_report(&mut rx).await;
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(r.status, Status::Resolved);
    let resolved = receiver.next(BOUND).await.json();
    let resolved_fixture = fixture.with_file_name("alertmanager_webhook_resolved.json");
    if std::env::var_os("MEDIC_UPDATE_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(&resolved).unwrap();
        std::fs::write(&resolved_fixture, text + "\n").expect("write fixture");
    }
    assert_eq!(resolved["status"], "resolved", "{resolved:#}");
    assert_eq!(
        resolved["alerts"][0]["labels"]["medic_incident"],
        incident.as_str()
    );
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_eq!(receiver.count(), 2, "one firing and one resolved delivery");

    notifier.shutdown(Duration::from_secs(5)).await;
    drop(guard);
}
