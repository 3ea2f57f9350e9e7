//! Helpers shared by the end-to-end test binaries (`daemon_e2e`, `daemon_fixes`,
//! `supervise_heal`, `daemon_diagnosis`): the `medic` binary and the checkout, free loopback
//! ports, bounded waits, a minimal HTTP client for the daemon's API and the agents, `medic run`
//! and `medic demo-agent` as child processes, a webhook receiver, policy and fleet writers and
//! readers of the SQLite store. Each file includes it with `mod common;`.

// Each test binary compiles its own copy of this module and uses a subset of it: what one
// binary leaves unused is not dead code.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The API token every daemon started here reads from its token file.
pub const TOKEN: &str = "s3cret-token";

/// The `medic` binary cargo built for these tests.
pub fn medic_bin() -> &'static str {
    env!("CARGO_BIN_EXE_medic")
}

/// The repository's root (the checkout the tests were built from).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `cond` (polled every 100 ms) up to `limit`; returns the time it took.
#[allow(clippy::disallowed_methods)] // measuring a real process from outside
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
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

/// A minimal blocking HTTP/1.1 client (one request per connection): status (0 when nothing
/// answered) and body; `token` goes in a bearer `Authorization` header.
pub fn http(method: &str, port: u16, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
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
    // Bodies of our API are small and not chunked-encoded by axum for JSON with a length.
    (status, body.to_owned())
}

/// The JSON of a GET on `path`; `Null` unless it answered 200 with JSON.
pub fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http("GET", port, path, None, "");
    if status != 200 {
        return Value::Null;
    }
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The health state of target `name` in the API (`""` while unknown).
pub fn target_state(port: u16, name: &str) -> String {
    get_json(port, &format!("/api/v1/targets/{name}"))["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The pid of target `name`'s supervised process, as the API shows it.
pub fn pid_of(port: u16, name: &str) -> Option<u64> {
    get_json(port, &format!("/api/v1/targets/{name}"))["pid"].as_u64()
}

/// Every action of target `name` in the API, oldest first.
pub fn actions_for(port: u16, name: &str) -> Vec<Value> {
    get_json(port, "/api/v1/actions")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["target"] == name)
        .collect()
}

/// How many of target `name`'s actions succeeded (were verified).
pub fn successes(port: u16, name: &str) -> usize {
    actions_for(port, name)
        .iter()
        .filter(|a| a["outcome"] == "success")
        .count()
}

/// The open incidents in the API.
pub fn open_incidents(port: u16) -> Vec<Value> {
    get_json(port, "/api/v1/incidents")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The status of target `name`'s open incident, if it has one.
pub fn incident_status(port: u16, name: &str) -> Option<String> {
    get_json(port, "/api/v1/incidents")
        .as_array()?
        .iter()
        .find(|i| i["target"] == name)
        .and_then(|i| i["status"].as_str().map(str::to_owned))
}

/// Sends `sig` (e.g. `-STOP`) to process `pid` with `kill`; whether `kill` succeeded.
pub fn signal(pid: impl std::fmt::Display, sig: &str) -> bool {
    // One process by its (positive) pid, never a group.
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success()
}

/// The shipped policies directory of the checkout.
pub fn shipped_policies() -> PathBuf {
    repo().join("policies")
}

/// A policies directory `dir/policies` whose `tiers.yaml` is `tiers`.
pub fn policies_dir(dir: &Path, tiers: &str) -> PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("tiers.yaml"), tiers).unwrap();
    policies
}

/// A policies directory `dir/policies` with one `default` tier for quick tests (no real
/// cooldown or backoff, no crash-loop give-up within a test, 2 s verification) with
/// `auto_approve_risk` and the YAML list `rules`.
pub fn quick_policies(dir: &Path, auto_approve_risk: &str, rules: &str) -> PathBuf {
    let tiers = format!(
        r#"healing_policies:
  default:
    max_restart_attempts: 32
    restart_cooldown: 1ms
    scale_threshold: 0.8
    circuit_break_duration: 60s
    attempt_window: 1h
    backoff: {{ initial: 1ms, max: 2ms, multiplier: 2, reset_after: 10m }}
    crash_loop: {{ restarts: 32, window: 1m }}
    max_group_unavailable: 1.0
    auto_approve_risk: {auto_approve_risk}
    confidence_threshold: 0.1
    approval_timeout: 15m
    verify_deadline: 2s
    scaling: {{ tolerance: 0.1, scale_down_stabilization: 300s }}
    rules:
{rules}"#
    );
    policies_dir(dir, &tiers)
}

/// `medic run` as a child process (API on a free port, token [`TOKEN`], uncoloured log in
/// `dir/medic.log`); SIGTERM and wait on drop.
pub struct Daemon {
    child: Option<Child>,
    /// The port of its API.
    pub port: u16,
    log: PathBuf,
}

impl Daemon {
    /// Starts it on `fleet` with the shipped policies and `extra` arguments.
    pub fn start(dir: &Path, fleet: &str, extra: &[&str]) -> Daemon {
        Daemon::start_with(dir, fleet, &shipped_policies(), extra)
    }

    /// Starts it on `fleet` (written to `dir/fleet.yaml`), `policies` and data in `dir/data`,
    /// and waits until its API is ready.
    pub fn start_with(dir: &Path, fleet: &str, policies: &Path, extra: &[&str]) -> Daemon {
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
            .arg(policies)
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
            http("GET", port, "/ready", None, "").0 == 200
        });
        d
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 20 s) until every target of `names` is healthy in its API.
    pub fn wait_healthy(&self, names: &[&str]) {
        let what = format!("{} healthy", names.join(" and "));
        wait_for(&what, Duration::from_secs(20), || {
            names
                .iter()
                .all(|name| target_state(self.port, name) == "healthy")
        });
    }

    /// Sends it `sig` (e.g. `-HUP`).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        assert!(signal(pid, sig), "kill {sig} {pid}");
    }

    /// SIGHUP: reload the configuration.
    pub fn hup(&self) {
        self.signal("-HUP");
    }

    /// SIGTERM, then waits for the process to finish (its store is closed after).
    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGKILL, then waits for the process to be gone (nothing of it cleaned up).
    pub fn kill9(mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait, once (a stopped daemon is not signalled again on drop).
    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = signal(c.id(), "-TERM");
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A demo agent started by the test itself (not supervised); killed on drop.
pub struct Agent(pub Child);

impl Agent {
    /// `medic demo-agent` on `port` without load and with `extra` arguments, once it answers.
    pub fn start(port: u16, extra: &[&str]) -> Agent {
        let child = Command::new(medic_bin())
            .args(["demo-agent", "--port", &port.to_string(), "--load-rps", "0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the agent", Duration::from_secs(20), || {
            http("GET", port, "/health", None, "").0 == 200
        });
        Agent(child)
    }

    /// An agent leaking 8 MiB a second from the start (its own OOM at 600 MiB).
    pub fn leaking(port: u16) -> Agent {
        Agent::start(
            port,
            &[
                "--fault",
                "leak",
                "--leak-mb-per-s",
                "8",
                "--oom-at-mb",
                "600",
            ],
        )
    }

    /// Writes its pid to `path` (for a `process` probe's `pid_file`).
    pub fn write_pid(&self, path: &Path) {
        std::fs::write(path, self.0.id().to_string()).unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fleet entry for a supervised demo agent named `name` on `port` (`extra`: more arguments,
/// each `, arg`), with a liveness probe on its `/health`.
pub fn supervised_agent(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  - name: {name}\n    supervise: {{ command: [\"{bin}\", demo-agent, --port, \"{port}\", --name, {name}, --load-rps, \"0\"{extra}] }}\n    startup_delay: 100ms\n    probes:\n      liveness: {{ http: {{ url: \"http://127.0.0.1:{port}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 3 }}\n",
        bin = medic_bin()
    )
}

/// A fleet entry for an [`Agent`] on `port` (pid in `pid_file`) with a 300 MiB memory limit,
/// whose "restart" is its admin endpoint that drops the leaked memory and ends the leak.
pub fn leak_healed_agent(name: &str, port: u16, pid_file: &Path) -> String {
    format!(
        "  - name: {name}\n    probes:\n      liveness: {{ http: {{ url: \"http://127.0.0.1:{port}/health\" }} }}\n      readiness: {{ process: {{ pid_file: \"{}\" }} }}\n      resources: {{ max_rss: 300Mi }}\n    metrics: {{ url: \"http://127.0.0.1:{port}/metrics\" }}\n    startup_delay: 100ms\n    actions:\n      restart: {{ http: {{ method: POST, url: \"http://127.0.0.1:{port}/fault/clear\" }} }}\n",
        pid_file.display()
    )
}

/// `medic heal --preemptive --json` on `dir`'s fleet and data with the shipped policies:
/// exit code and report (its stdout and stderr are printed).
pub fn heal(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(medic_bin())
        .args(["heal", "--preemptive", "--json", "--fleet"])
        .arg(dir.join("fleet.yaml"))
        .arg("--policies")
        .arg(shipped_policies())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
    )
}

/// Accepts HTTP POSTs on a port and keeps their bodies.
pub fn webhook_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
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

/// Waits (up to `limit`) until one of `bodies` contains `needle`; returns the time it took.
pub fn wait_for_body(
    bodies: &Mutex<Vec<String>>,
    needle: &str,
    what: &str,
    limit: Duration,
) -> Duration {
    wait_for(what, limit, || {
        bodies.lock().unwrap().iter().any(|b| b.contains(needle))
    })
}

/// The store in `dir/data` (created if missing), for use once no daemon runs on it.
pub fn open_store(dir: &Path) -> medic_store::Store {
    medic_store::Store::open_data_dir(dir.join("data")).unwrap()
}

/// Every journal row of the store in `dir/data`, oldest first (once no daemon runs on it).
pub fn read_journal(dir: &Path) -> Vec<medic_store::JournalRecord> {
    open_store(dir).journal_all().unwrap()
}

/// The payload's `field` of every journal row in `dir/data` whose payload `entry` is `entry`.
pub fn journaled(dir: &Path, entry: &str, field: &str) -> Vec<String> {
    read_journal(dir)
        .iter()
        .filter(|r| r.entry.payload["entry"] == entry)
        .map(|r| r.entry.payload[field].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Every journal row of the store in `dir/data`, read without writing (a daemon may run).
pub fn journal_read_only(dir: &Path) -> Vec<medic_store::JournalRecord> {
    medic_store::Store::open_read_only(dir.join("data").join("medic.db"))
        .unwrap()
        .journal_all()
        .unwrap()
}

/// Every incident of `target` in the store in `dir/data`, oldest first.
pub fn incidents_of(dir: &Path, target: &str) -> Vec<medic_store::Incident> {
    open_store(dir)
        .incidents(
            Some(target),
            medic_core::Timestamp::from_secs(0)..medic_core::Timestamp::from_secs(4_000_000_000),
        )
        .unwrap()
}

/// Loads `url` in headless Chromium (`bin`, profile in `profile`): (success, stdout).
pub fn run_chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> (bool, String) {
    let run = medic_tests::chromium::load(bin, profile, extra, url, Duration::from_secs(90))
        .expect("chromium ran");
    (run.success, run.stdout)
}
