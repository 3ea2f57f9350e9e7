//! End-to-end checks of daemon fixes (issue 8 review): `medic run` as a child process on
//! loopback, with real probes and actions (`true`, `sh`), the real HTTP API and the real
//! SQLite store. Waits are for states, bounded in time; nothing asserts a duration.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "s3cret-token";

fn medic_bin() -> &'static str {
    env!("CARGO_BIN_EXE_medic")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `cond` (polled every 100 ms) up to `limit`; returns the time it took.
#[allow(clippy::disallowed_methods)] // measuring a real process from outside
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// A minimal blocking HTTP/1.1 client for the API (one request per connection).
fn http(method: &str, port: u16, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http("GET", port, path, None, "");
    if status != 200 {
        return Value::Null;
    }
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn target_state(port: u16, name: &str) -> String {
    get_json(port, &format!("/api/v1/targets/{name}"))["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn actions_for(port: u16, name: &str) -> Vec<Value> {
    get_json(port, "/api/v1/actions")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["target"] == name)
        .collect()
}

/// `text` without terminal colour sequences (the log's fields are coloured).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn open_incidents(port: u16) -> Vec<Value> {
    get_json(port, "/api/v1/incidents")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The daemon's own clock as it last published its view (milliseconds).
fn daemon_now(port: u16) -> u64 {
    get_json(port, "/api/v1/fleet")["now"].as_u64().unwrap_or(0)
}

/// Lets the daemon run `secs` seconds of its own clock (probes, ticks, publishes).
fn let_run(port: u16, secs: u64) {
    let from = daemon_now(port);
    wait_for(
        "the daemon's clock to move",
        Duration::from_secs(secs + 20),
        || daemon_now(port) >= from + secs * 1000,
    );
}

/// One tier for the fleets here: liveness failing → restart, no real cooldown or backoff, no
/// crash-loop give-up within a test, short verification.
const TIERS: &str = r#"healing_policies:
  default:
    max_restart_attempts: 32
    restart_cooldown: 1ms
    scale_threshold: 0.8
    circuit_break_duration: 60s
    attempt_window: 1h
    backoff: { initial: 1ms, max: 2ms, multiplier: 2, reset_after: 10m }
    crash_loop: { restarts: 32, window: 1m }
    max_group_unavailable: 1.0
    auto_approve_risk: medium
    confidence_threshold: 0.1
    approval_timeout: 15m
    verify_deadline: 2s
    scaling: { tolerance: 0.1, scale_down_stabilization: 300s }
    rules:
      - { name: unresponsive, when: { failing: [liveness] }, then: restart, confidence: 0.9 }
"#;

fn policies(dir: &Path) -> PathBuf {
    let p = dir.join("policies");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("tiers.yaml"), TIERS).unwrap();
    p
}

/// `medic run` as a child process; SIGTERM and wait on drop.
struct Daemon {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, fleet: &str, extra: &[&str]) -> Daemon {
        let fleet_path = dir.join("fleet.yaml");
        std::fs::write(&fleet_path, fleet).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let port = free_port();
        let log = dir.join("medic.log");
        let child = Command::new(medic_bin())
            .args(["run", "--fleet"])
            .arg(&fleet_path)
            .arg("--policies")
            .arg(policies(dir))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(&token)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child: Some(child),
            port,
            log,
        };
        wait_for("the API", Duration::from_secs(30), || {
            http("GET", port, "/ready", None, "").0 == 200
        });
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the process to finish (its store is closed after).
    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Our own child, by its (positive) pid.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// An Alertmanager v4 webhook body with one alert for `web`.
fn alert_payload(status: &str, starts_at: &str) -> String {
    format!(
        r#"{{"version":"4","status":"{status}","receiver":"medic","groupKey":"{{}}:{{alertname=\"ServiceDown\"}}","alerts":[{{"status":"{status}","labels":{{"alertname":"ServiceDown","target":"web","severity":"critical"}},"annotations":{{"summary":"web is down"}},"startsAt":"{starts_at}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"5e1f00d5e1f00d00"}}],"groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://127.0.0.1:9093"}}"#
    )
}

fn post_alert(port: u16, status: &str, starts_at: &str) {
    let (code, body) = http(
        "POST",
        port,
        "/api/v1/alerts/alertmanager",
        Some(TOKEN),
        &alert_payload(status, starts_at),
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["matched"], 1, "{body}");
}

fn successes(port: u16, name: &str) -> usize {
    actions_for(port, name)
        .iter()
        .filter(|a| a["outcome"] == "success")
        .count()
}

#[test]
fn a_firing_alert_heals_once_and_its_resends_open_no_new_incident() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let fleet = format!(
        "targets:\n  - name: web\n    startup_delay: 1ms\n    probes:\n      liveness: {{ exec: [\"true\"], every: 500ms, failure_threshold: 1 }}\n    actions:\n      restart: {{ exec: [sh, -c, 'echo restarted >> \"$0\"', \"{runs}\"] }}\n",
        runs = runs.display()
    );
    let d = Daemon::start(dir.path(), &fleet, &[]);
    wait_for("web healthy", Duration::from_secs(20), || {
        target_state(d.port, "web") == "healthy"
    });

    // Alertmanager says web is down; medic restarts it and verifies it with its probes.
    const FIRST: &str = "2026-11-27T10:00:00.000Z";
    post_alert(d.port, "firing", FIRST);
    let took = wait_for("the alert healed", Duration::from_secs(30), || {
        successes(d.port, "web") == 1
            && open_incidents(d.port).is_empty()
            && target_state(d.port, "web") == "healthy"
    });
    eprintln!("alert: restart verified and incident closed {took:?} after the alert");

    // Alertmanager keeps re-sending the firing alert until Prometheus resolves it: the
    // heal consumed this firing, so the re-sends are no new failure.
    for _ in 0..4 {
        post_alert(d.port, "firing", FIRST);
        let_run(d.port, 1);
        assert!(
            open_incidents(d.port).is_empty(),
            "{:?}",
            open_incidents(d.port)
        );
        assert_eq!(target_state(d.port, "web"), "healthy");
    }
    let_run(d.port, 2);
    assert_eq!(
        actions_for(d.port, "web").len(),
        1,
        "{:?}",
        actions_for(d.port, "web")
    );
    assert!(open_incidents(d.port).is_empty());
    assert_eq!(target_state(d.port, "web"), "healthy");

    // The same alert firing anew (a later start) is a new failure: one more incident, healed.
    const SECOND: &str = "2026-11-27T10:30:00.000Z";
    post_alert(d.port, "firing", SECOND);
    wait_for("the second firing healed", Duration::from_secs(30), || {
        successes(d.port, "web") == 2
            && open_incidents(d.port).is_empty()
            && target_state(d.port, "web") == "healthy"
    });
    post_alert(d.port, "firing", SECOND);
    let_run(d.port, 2);
    post_alert(d.port, "resolved", SECOND);
    let_run(d.port, 1);
    assert_eq!(actions_for(d.port, "web").len(), 2);
    assert!(open_incidents(d.port).is_empty());
    assert_eq!(target_state(d.port, "web"), "healthy");
    let log = d.log();
    assert_eq!(log.matches("incident opened").count(), 2, "{log}");
    d.stop();

    let ran = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(ran.lines().count(), 2, "{ran:?}");
    let store = medic_store::Store::open_data_dir(dir.path().join("data")).unwrap();
    let all = store
        .incidents(
            Some("web"),
            medic_core::Timestamp::from_secs(0)..medic_core::Timestamp::from_secs(4_000_000_000),
        )
        .unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|i| i.closed_at.is_some()), "{all:?}");
}

#[test]
fn an_exec_actions_stdout_and_stderr_tail_is_kept_with_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    std::fs::write(&up, "").unwrap();
    let fleet = format!(
        "targets:\n  - name: noisy\n    startup_delay: 1ms\n    probes:\n      liveness: {{ exec: [test, -f, \"{up}\"], every: 500ms, failure_threshold: 1 }}\n    actions:\n      restart: {{ exec: [sh, -c, 'echo out-marker-7f3a; echo err-marker-91c2 >&2; touch \"$0\"', \"{up}\"] }}\n",
        up = up.display()
    );
    let d = Daemon::start(dir.path(), &fleet, &[]);
    wait_for("noisy healthy", Duration::from_secs(20), || {
        target_state(d.port, "noisy") == "healthy"
    });
    std::fs::remove_file(&up).unwrap();
    wait_for("the restart verified", Duration::from_secs(30), || {
        successes(d.port, "noisy") == 1
    });
    let acts = actions_for(d.port, "noisy");
    let output: Vec<&str> = acts[0]["output"]
        .as_array()
        .unwrap_or_else(|| panic!("no output in {acts:?}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(output, ["out-marker-7f3a", "err-marker-91c2"], "{acts:?}");
    // Output may carry secrets: not in the log at the info level.
    let log = d.log();
    assert!(!log.contains("marker-"), "{log}");
    d.stop();
    // Kept with the incident in the store too.
    let store = medic_store::Store::open_data_dir(dir.path().join("data")).unwrap();
    let all = store
        .incidents(
            Some("noisy"),
            medic_core::Timestamp::from_secs(0)..medic_core::Timestamp::from_secs(4_000_000_000),
        )
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].summary["action_output"],
        serde_json::json!(["out-marker-7f3a", "err-marker-91c2"]),
        "{:?}",
        all[0].summary
    );
}

#[test]
fn sighup_with_a_valid_fleet_swaps_the_probes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let probe = "    startup_delay: 1ms\n    probes:\n      liveness: { exec: [\"true\"], every: 500ms, failure_threshold: 1 }\n";
    let d = Daemon::start(
        dir.path(),
        &format!("targets:\n  - name: svc\n{probe}"),
        &[],
    );
    wait_for("svc healthy", Duration::from_secs(20), || {
        target_state(d.port, "svc") == "healthy"
    });
    // The new fleet puts `web` first: svc's index changes.
    std::fs::write(
        dir.path().join("fleet.yaml"),
        format!("targets:\n  - name: web\n{probe}  - name: svc\n{probe}"),
    )
    .unwrap();
    let pid = d.child.as_ref().unwrap().id().to_string();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    wait_for(
        "both probed under the new fleet",
        Duration::from_secs(20),
        || target_state(d.port, "web") == "healthy" && target_state(d.port, "svc") == "healthy",
    );
    assert!(d.log().contains("configuration reloaded"), "{}", d.log());
    assert!(actions_for(d.port, "svc").is_empty());
    assert!(open_incidents(d.port).is_empty());
}

#[test]
fn medic_run_prunes_what_is_older_than_its_retention_at_start() {
    use medic_core::{Clock, HealthState, MetricSample, SystemClock, TargetId, Timestamp};
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let dir = tempfile::tempdir().unwrap();
    let now = SystemClock.now();
    let sample = |at: Timestamp| MetricSample {
        target: TargetId::new("svc"),
        name: "queue_depth".into(),
        labels: Vec::new(),
        value: 1.0,
        at,
    };
    {
        let mut store = medic_store::Store::open_data_dir(dir.path().join("data")).unwrap();
        store
            .insert_samples(&[
                sample(now - 30 * DAY),
                sample(now - 8 * DAY),
                sample(now - DAY),
            ])
            .unwrap();
        store
            .record_transition(&medic_store::HealthTransition {
                target: TargetId::new("svc"),
                at: now - 30 * DAY,
                from: HealthState::Healthy,
                to: HealthState::Unhealthy,
                reason: "long ago".into(),
            })
            .unwrap();
    }
    let fleet = "targets:\n  - name: svc\n    startup_delay: 1ms\n    probes:\n      liveness: { exec: [\"true\"], every: 500ms, failure_threshold: 1 }\n";
    // 10 days: the 8-day-old sample stays (the default, 7 days, would drop it).
    let d = Daemon::start(dir.path(), fleet, &["--retention", "10d"]);
    wait_for("the prune at start", Duration::from_secs(20), || {
        d.log().contains("pruned the store")
    });
    let log = strip_ansi(&d.log());
    let line = log
        .lines()
        .find(|l| l.contains("pruned the store"))
        .unwrap();
    eprintln!("{line}");
    assert!(
        line.contains("samples=1") && line.contains("transitions=1"),
        "{line}"
    );
    d.stop();

    let store = medic_store::Store::open_data_dir(dir.path().join("data")).unwrap();
    let kept: Vec<Timestamp> = store
        .samples("svc", "queue_depth", Timestamp::from_secs(0)..now)
        .unwrap()
        .into_iter()
        .map(|s| s.at)
        .collect();
    assert_eq!(kept, [now - 8 * DAY, now - DAY]);
    let old = store
        .transitions(Some("svc"), Timestamp::from_secs(0)..now - DAY)
        .unwrap();
    assert!(old.is_empty(), "{old:?}");
}

#[test]
fn medic_run_refuses_a_retention_it_cannot_read() {
    for bad in ["0s", "forever", "-1d"] {
        let out = Command::new(medic_bin())
            .args(["run", "--no-api", &format!("--retention={bad}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--retention"), "{bad}: {err}");
    }
}
