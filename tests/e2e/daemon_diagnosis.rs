//! End-to-end checks of diagnosis in the daemon: `medic run` as a child process on loopback,
//! supervising real processes that print a real configuration error and exit, with real
//! actions (`sh`), the real HTTP API and the real SQLite store. The diagnosis made from the
//! process's captured output decides the plan (the shipped `config_error` and
//! `config_error_unrepaired` rules). Waits are for states, bounded in time; nothing asserts
//! a duration.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "s3cret-token";

/// What the supervised process prints before it exits 1 (`medic diagnose --text` calls it
/// configuration, pattern `invalid_configuration`).
const CONFIG_ERROR: &str =
    r#"Error: invalid configuration: unknown key "listen_adress" in /etc/app/config.yaml"#;

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

/// Waits for `cond` (polled every 100 ms) up to `limit`.
#[allow(clippy::disallowed_methods)] // bounding a wait on a real process from outside
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal blocking HTTP/1.1 client for the API (one request per connection).
fn http(method: &str, port: u16, path: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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
    let (status, body) = http("GET", port, path, "");
    if status != 200 {
        return Value::Null;
    }
    serde_json::from_str(&body).unwrap_or(Value::Null)
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

fn incident_status(port: u16, name: &str) -> Option<String> {
    get_json(port, "/api/v1/incidents")
        .as_array()?
        .iter()
        .find(|i| i["target"] == name)
        .and_then(|i| i["status"].as_str().map(str::to_owned))
}

/// The shipped default tier's rules that matter here (configuration → repair, else
/// escalate; liveness failing → restart), with approval thresholds (confidence, risk) that
/// let the repair run without a human's approval, no real cooldown or backoff, short
/// verification.
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
    auto_approve_risk: high
    confidence_threshold: 0.1
    approval_timeout: 15m
    verify_deadline: 2s
    scaling: { tolerance: 0.1, scale_down_stabilization: 300s }
    rules:
      - { name: config_error, when: { diagnosis: [configuration] }, then: repair, confidence: 0.8 }
      - { name: config_error_unrepaired, when: { diagnosis: [configuration] }, then: escalate, confidence: 0.9 }
      - { name: unresponsive, when: { failing: [liveness] }, then: restart, confidence: 0.95 }
"#;

/// `medic run` as a child process; SIGTERM and wait on drop.
struct Daemon {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, fleet: &str) -> Daemon {
        Daemon::start_with(dir, fleet, &[])
    }

    fn start_with(dir: &Path, fleet: &str, extra: &[&str]) -> Daemon {
        let fleet_path = dir.join("fleet.yaml");
        std::fs::write(&fleet_path, fleet).unwrap();
        let policies = dir.join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        std::fs::write(policies.join("tiers.yaml"), TIERS).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let port = free_port();
        let log = dir.join("medic.log");
        let child = Command::new(medic_bin())
            .args(["run", "--fleet"])
            .arg(&fleet_path)
            .arg("--policies")
            .arg(&policies)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(&token)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
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
            http("GET", port, "/ready", "").0 == 200
        });
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        // Our own child, by its (positive) pid.
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
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

/// A fleet with one supervised target, `app`, that prints [`CONFIG_ERROR`] on stderr and
/// exits 1 at every start; `actions` is appended to the target.
fn fleet(actions: &str) -> String {
    let script = format!("echo ''{CONFIG_ERROR}'' >&2; exit 1");
    format!(
        "targets:\n  - name: app\n    supervise: {{ command: [sh, -c, '{script}'] }}\n    startup_delay: 1ms\n{actions}"
    )
}

/// The target's diagnosis in the API, once it has one.
fn diagnosis(port: u16) -> Value {
    get_json(port, "/api/v1/targets/app")["diagnosis"].clone()
}

fn assert_configuration(d: &Value) {
    assert_eq!(d["category"], "configuration", "{d}");
    assert_eq!(d["pattern_id"], "invalid_configuration", "{d}");
    let evidence: Vec<&str> = d["evidence"]
        .as_array()
        .unwrap_or_else(|| panic!("no evidence in {d}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(evidence, [CONFIG_ERROR], "{d}");
    assert!(d["confidence"].as_f64().unwrap() > 0.5, "{d}");
}

fn kinds(port: u16) -> Vec<String> {
    actions_for(port, "app")
        .iter()
        .filter_map(|a| a["strategy"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_configuration_error_in_the_output_is_repaired_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("repaired");
    let actions = format!(
        "    actions:\n      repair: {{ exec: [sh, -c, 'echo repaired > \"$0\"', \"{}\"] }}\n",
        marker.display()
    );
    let d = Daemon::start(dir.path(), &fleet(&actions));
    wait_for("the repair to run", Duration::from_secs(30), || {
        marker.exists()
    });
    wait_for("the diagnosis in the API", Duration::from_secs(10), || {
        !diagnosis(d.port).is_null()
    });
    assert_configuration(&diagnosis(d.port));
    // The repair ran first; the process stays down (a repair changes files, it does not
    // start the process), so the repair's verification fails and config_error_unrepaired
    // calls a human. Nothing restarts a process that would read the same configuration.
    wait_for("the escalation", Duration::from_secs(30), || {
        incident_status(d.port, "app").as_deref() == Some("escalated")
    });
    let done = kinds(d.port);
    assert_eq!(done.first().map(String::as_str), Some("repair"), "{done:?}");
    assert!(
        done.iter()
            .all(|k| !matches!(k.as_str(), "restart" | "reset" | "recreate")),
        "{done:?}"
    );
    let log = d.log();
    assert!(log.contains("diagnosed"), "{log}");
    d.stop();

    // The diagnosis is kept with the incident in the store, and the engine's journal says
    // what the finding that opened the incident was.
    let store = medic_store::Store::open_data_dir(dir.path().join("data")).unwrap();
    let incidents = store
        .incidents(
            Some("app"),
            medic_core::Timestamp::from_secs(0)..medic_core::Timestamp::from_secs(4_000_000_000),
        )
        .unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_configuration(&incidents[0].summary["diagnosis"]);
    let opened: Vec<String> = store
        .journal_all()
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.payload["entry"] == "incident_opened")
        .map(|r| r.entry.payload["summary"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].contains("configuration"), "{opened:?}");
}

/// Accepts HTTP POSTs on a port and keeps their bodies.
fn webhook_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let body = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body.to_owned());
                    }
                }
            };
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Some(b) = body {
                keep.lock().unwrap().push(b);
            }
        }
    });
    (port, bodies)
}

#[test]
fn a_configuration_error_without_a_repair_action_is_escalated_without_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, bodies) = webhook_receiver();
    let d = Daemon::start_with(
        dir.path(),
        &fleet(""),
        &["--webhook", &format!("http://127.0.0.1:{hook}/hook")],
    );
    wait_for("the escalation", Duration::from_secs(30), || {
        incident_status(d.port, "app").as_deref() == Some("escalated")
    });
    assert_configuration(&diagnosis(d.port));
    let done = kinds(d.port);
    assert!(
        done.iter()
            .all(|k| !matches!(k.as_str(), "restart" | "reset" | "recreate")),
        "{done:?}"
    );
    let log = d.log();
    assert!(log.contains("escalated to a human"), "{log}");
    // The people called get the diagnosis with the escalation.
    wait_for(
        "the escalation at the webhook",
        Duration::from_secs(30),
        || {
            bodies
                .lock()
                .unwrap()
                .iter()
                .any(|b| b.contains("escalation"))
        },
    );
    let sent = bodies.lock().unwrap().clone();
    let escalation = sent.iter().find(|b| b.contains("escalation")).unwrap();
    assert!(
        escalation.contains(r#""category":"configuration""#),
        "{escalation}"
    );
    assert!(escalation.contains("listen_adress"), "{escalation}");
    dashboard_shows_the_category(d.port);
    d.stop();
}

/// The dashboard's fleet table tags the last finding with the diagnosis category, with the
/// pattern and the evidence as its tooltip.
fn dashboard_shows_the_category(port: u16) {
    let Some(bin) = medic_tests::chromium::find() else {
        eprintln!(
            "skipping the dashboard check: no chromium, chromium-browser or google-chrome on PATH"
        );
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let run = medic_tests::chromium::load(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &url,
        Duration::from_secs(90),
    )
    .expect("chromium ran");
    assert!(run.success, "chromium --dump-dom failed");
    let dom = run.stdout;
    let row = dom
        .find(r#"<tr data-target="app">"#)
        .map(|at| &dom[at..at + dom[at..].find("</tr>").unwrap_or(dom.len() - at)])
        .unwrap_or_else(|| panic!("no row for app:\n{dom}"));
    assert!(
        row.contains(r#"<span class="tag diagnosis" title="invalid_configuration (80%)"#),
        "{row}"
    );
    assert!(row.contains("listen_adress"), "{row}");
    assert!(row.contains(">configuration</span>"), "{row}");
}

#[test]
fn medic_run_refuses_a_bad_patterns_file_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("tiers.yaml"), TIERS).unwrap();
    std::fs::write(
        policies.join("patterns.yaml"),
        "patterns:\n  - id: x\n    category: nonsense\n    confidence: 0.5\n    regexes: ['a']\n",
    )
    .unwrap();
    let fleet_path = dir.path().join("fleet.yaml");
    std::fs::write(&fleet_path, fleet("")).unwrap();
    let out = Command::new(medic_bin())
        .args(["run", "--fleet"])
        .arg(&fleet_path)
        .arg("--policies")
        .arg(&policies)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("patterns.yaml:3:"), "{stderr}");
    assert!(stderr.contains("category"), "{stderr}");
    // Refused before anything was started or written.
    assert!(!dir.path().join("data").exists(), "{stderr}");

    // `medic validate` says the same before a start or a SIGHUP.
    let out = Command::new(medic_bin())
        .args(["validate", "--fleet"])
        .arg(&fleet_path)
        .arg("--policies")
        .arg(&policies)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("patterns.yaml:3:"), "{stderr}");
    assert!(stderr.contains("invalid: 1 error"), "{stderr}");
}

/// A pattern file that names the knob error of `web` below a configuration error.
const CUSTOM_PATTERNS: &str = r#"patterns:
  - id: frobnicator_knob
    category: configuration
    confidence: 0.9
    regexes: ['frobnicator: wrong knob \d+']
    strategies: [repair, escalate]
    commands: ['cat /etc/frobnicator.conf']
    description: The frobnicator's configuration names a knob it does not have.
"#;

#[test]
fn sighup_reloads_the_pattern_library_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let fail = dir.path().join("fail");
    // Healthy until `fail` exists; then its probe fails with the knob error (the exec probe's
    // error ends with the last line the command printed).
    let fleet = format!(
        "targets:\n  - name: web\n    startup_delay: 1ms\n    probes:\n      liveness: {{ exec: [sh, -c, 'if test -f \"$0\"; then echo \"frobnicator: wrong knob 42\" >&2; exit 1; fi', \"{}\"], every: 300ms, failure_threshold: 1 }}\n    actions:\n      restart: {{ exec: [\"true\"] }}\n",
        fail.display()
    );
    let d = Daemon::start(dir.path(), &fleet);
    let patterns = dir.path().join("policies").join("patterns.yaml");

    std::fs::write(
        &patterns,
        "patterns:\n  - id: x\n    category: nonsense\n    confidence: 0.5\n    regexes: ['a']\n",
    )
    .unwrap();
    d.hup();
    wait_for(
        "the bad pattern file refused",
        Duration::from_secs(20),
        || d.log().contains("the new configuration is invalid"),
    );
    let log = d.log();
    assert!(log.contains("patterns.yaml:3:"), "{log}");
    assert!(!log.contains("diagnosis pattern library reloaded"), "{log}");

    std::fs::write(&patterns, CUSTOM_PATTERNS).unwrap();
    d.hup();
    wait_for(
        "the pattern library reloaded",
        Duration::from_secs(20),
        || d.log().contains("diagnosis pattern library reloaded"),
    );
    std::fs::write(&fail, "").unwrap();
    wait_for("the escalation", Duration::from_secs(30), || {
        get_json(d.port, "/api/v1/incidents")
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .any(|i| i["target"] == "web" && i["status"] == "escalated")
            })
    });
    let diag = get_json(d.port, "/api/v1/targets/web")["diagnosis"].clone();
    assert_eq!(diag["category"], "configuration", "{diag}");
    assert_eq!(diag["pattern_id"], "frobnicator_knob", "{diag}");
    // The shipped patterns do not know the line: only the reloaded library explains it, and
    // a configuration error without a repair action is not restarted.
    let restarts = actions_for(d.port, "web");
    assert!(restarts.is_empty(), "{restarts:?}");
    d.stop();
}
