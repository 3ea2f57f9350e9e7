//! The real `medic-demo-agent` binary, started on a free loopback port, driven over HTTP.
//!
//! Conditions that take time to appear (background load, a growing leak, a dependency going
//! down) are polled with a deadline; nothing asserts on how long they took.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// A running agent; killed and reaped on drop, whatever the test did.
struct Agent {
    child: Child,
    addr: String,
}

impl Agent {
    fn start(args: &[&str]) -> Agent {
        let mut child = spawn(args);
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = match line.trim().strip_prefix("listening on http://") {
            Some(a) => a.to_owned(),
            None => {
                let _ = child.kill();
                let status = child.wait();
                panic!("agent did not start: first line {line:?}, status {status:?}");
            }
        };
        Agent { child, addr }
    }

    fn get(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn post(&self, path: &str) -> (u16, String) {
        request(&self.addr, "POST", path, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    fn metrics(&self) -> HashMap<String, f64> {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        parse_metrics(&body)
    }

    fn wait_exit(&mut self) -> ExitStatus {
        poll_until("the agent to exit", || self.child.try_wait().unwrap())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_medic-demo-agent"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// One HTTP/1.1 request with `Connection: close`; the whole exchange bounded by `timeout`.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(4 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// Polls `f` until it returns `Some`, panicking after [`DEADLINE`].
fn poll_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut waited = Duration::ZERO;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(waited < DEADLINE, "gave up waiting for {what}");
        std::thread::sleep(POLL);
        waited += POLL;
    }
}

/// Sample lines as `name{labels}` → value; panics on any line that is not well formed.
fn parse_metrics(body: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(
                matches!(words.first(), Some(&"HELP") | Some(&"TYPE")) && words.len() >= 3,
                "bad comment line {line:?}"
            );
            if words[0] == "TYPE" {
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]),
                    "bad type in {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(series.to_owned(), v);
    }
    out
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn endpoints_answer_and_metrics_are_well_formed() {
    let agent = Agent::start(&["--name", "t-ok", "--app-version", "2.3.4"]);
    assert_eq!(agent.get("/health"), (200, "ok\n".to_owned()));
    assert_eq!(agent.get("/ready").0, 200);

    // The agent's own background load moves the counters without our help.
    poll_until("background load", || {
        (agent.metrics()["demo_requests_total"] >= 3.0).then_some(())
    });

    assert_eq!(agent.get("/work"), (200, "done\n".to_owned()));
    assert_eq!(agent.get("/").0, 200);
    let (status, body) = agent.get("/metrics");
    assert_eq!(status, 200);
    for ty in [
        "# TYPE demo_request_duration_seconds histogram",
        "# TYPE demo_requests_total counter",
        "# TYPE demo_errors_total counter",
        "# TYPE demo_queue_depth gauge",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE demo_version gauge",
    ] {
        assert!(body.contains(ty), "missing {ty:?}");
    }
    let m = parse_metrics(&body);
    assert_eq!(m["demo_version{name=\"t-ok\",version=\"2.3.4\"}"], 1.0);
    assert!(m["process_resident_memory_bytes"] > 1e6);
    assert_eq!(m["demo_errors_total"], 0.0);
    assert!(m["demo_queue_depth"] >= 0.0);

    // Histogram: cumulative buckets, +Inf equals the count, sum is positive.
    let mut buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix("demo_request_duration_seconds_bucket{le=\"")?;
            let le = le.strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            Some((le, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() >= 5);
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let count = m["demo_request_duration_seconds_count"];
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    assert!(count >= 3.0);
    assert!(m["demo_request_duration_seconds_sum"] > 0.0);

    let (status, body) = agent.post("/fault/bogus");
    assert_eq!(status, 400);
    assert!(
        body.contains("unknown fault") && body.contains("crash"),
        "{body}"
    );
    assert_eq!(agent.get("/nope").0, 404);
}

#[test]
fn crash_fault_exits_the_process_with_status_1() {
    let mut agent = Agent::start(&["--name", "t-crash", "--load-rps", "0"]);
    let (status, body) = agent.post("/fault/crash");
    assert_eq!(status, 200);
    assert!(body.contains("crash"), "{body}");
    assert_eq!(agent.wait_exit().code(), Some(1));
}

#[test]
fn crash_fault_at_start_up_exits_before_listening() {
    let mut child = spawn(&["--fault", "crash"]);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(!out.contains("listening"), "{out}");
}

#[test]
fn leak_fault_makes_rss_grow() {
    let agent = Agent::start(&[
        "--name",
        "t-leak",
        "--leak-mb-per-s",
        "40",
        "--leak-limit-mb",
        "256",
    ]);
    let pid = agent.child.id();
    let before = rss_of(pid);
    assert_eq!(agent.post("/fault/leak").0, 200);
    let grown = poll_until("RSS to grow by 60 MiB", || {
        let now = rss_of(pid);
        (now >= before + (60 << 20)).then_some(now)
    });
    let m = agent.metrics();
    assert!(m["demo_leaked_bytes"] >= 40.0 * 1024.0 * 1024.0);
    assert!(m["process_resident_memory_bytes"] >= (before + (60 << 20)) as f64);
    assert_eq!(m["demo_fault_active{kind=\"leak\"}"], 1.0);
    eprintln!("leak: RSS {} MiB -> {} MiB", before >> 20, grown >> 20);

    assert_eq!(agent.post("/fault/clear").0, 200);
    let m = agent.metrics();
    assert_eq!(m["demo_leaked_bytes"], 0.0);
    assert_eq!(m["demo_fault_active{kind=\"leak\"}"], 0.0);
}

#[test]
fn errors_fault_gives_500s_until_cleared() {
    let agent = Agent::start(&["--name", "t-err", "--load-rps", "0"]);
    assert_eq!(agent.post("/fault/errors").0, 200);
    for _ in 0..3 {
        assert_eq!(agent.get("/work").0, 500);
    }
    assert_eq!(agent.get("/health").0, 500);
    let m = agent.metrics();
    assert_eq!(m["demo_errors_total"], 3.0);
    assert_eq!(m["demo_requests_total"], 3.0);
    assert_eq!(agent.post("/fault/clear").0, 200);
    assert_eq!(agent.get("/health").0, 200);
    assert_eq!(agent.get("/work").0, 200);
    assert_eq!(agent.metrics()["demo_errors_total"], 3.0);
}

#[test]
fn hang_fault_stops_every_endpoint_from_answering() {
    let agent = Agent::start(&["--name", "t-hang", "--load-rps", "0"]);
    let (status, _) = agent.post("/fault/hang");
    assert_eq!(status, 200);
    for path in ["/health", "/metrics", "/work"] {
        let err = request(&agent.addr, "GET", path, Duration::from_millis(500))
            .expect_err("a hung agent must not answer");
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{path}: {err}"
        );
    }
}

#[test]
fn slow_fault_creeps_latency_up() {
    let agent = Agent::start(&[
        "--name",
        "t-slow",
        "--slow-ms-per-s",
        "1000",
        "--load-rps",
        "0",
    ]);
    assert_eq!(agent.post("/fault/slow").0, 200);
    assert_eq!(agent.metrics()["demo_fault_active{kind=\"slow\"}"], 1.0);
    // Keep requesting until one lands above the 0.5 s bucket: latency grew.
    poll_until("a request slower than 0.5 s", || {
        assert_eq!(agent.get("/work").0, 200);
        let m = agent.metrics();
        let over = m["demo_request_duration_seconds_count"]
            - m["demo_request_duration_seconds_bucket{le=\"0.5\"}"];
        (over >= 1.0).then_some(())
    });
    assert_eq!(agent.post("/fault/clear").0, 200);
    assert_eq!(agent.metrics()["demo_fault_active{kind=\"slow\"}"], 0.0);
}

#[test]
fn readiness_follows_the_dependency() {
    let dep = Agent::start(&["--name", "t-dep", "--load-rps", "0"]);
    let url = format!("http://{}/health", dep.addr);
    let agent = Agent::start(&[
        "--name",
        "t-dependent",
        "--depends-on",
        &url,
        "--load-rps",
        "0",
    ]);
    poll_until("ready while the dependency is up", || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    assert_eq!(agent.metrics()["demo_dependency_up"], 1.0);

    // The dependency fails its health check: not ready; it recovers: ready again.
    assert_eq!(dep.post("/fault/errors").0, 200);
    poll_until("not ready while the dependency fails", || {
        (agent.get("/ready").0 == 503).then_some(())
    });
    assert_eq!(
        agent.get("/health").0,
        200,
        "liveness does not follow the dependency"
    );
    assert_eq!(dep.post("/fault/clear").0, 200);
    poll_until("ready again", || {
        (agent.get("/ready").0 == 200).then_some(())
    });

    // The dependency dies.
    drop(dep);
    poll_until("not ready once the dependency is gone", || {
        (agent.get("/ready").0 == 503).then_some(())
    });
    assert_eq!(agent.metrics()["demo_dependency_up"], 0.0);

    // The dependency fault, without any real dependency.
    let lone = Agent::start(&["--name", "t-lone", "--load-rps", "0"]);
    assert_eq!(lone.get("/ready").0, 200);
    assert_eq!(lone.post("/fault/dependency").0, 200);
    assert_eq!(lone.get("/ready").0, 503);
    assert_eq!(lone.post("/fault/clear").0, 200);
    assert_eq!(lone.get("/ready").0, 200);
}

#[test]
fn corrupt_state_survives_restarts_until_the_state_dir_is_removed() {
    let dir = tempfile_dir();
    let state = dir.join("state");
    let state_arg = state.to_str().unwrap();
    let args = [
        "--name",
        "t-state",
        "--load-rps",
        "0",
        "--state-dir",
        state_arg,
    ];
    {
        let agent = Agent::start(&args);
        assert_eq!(agent.get("/health").0, 200);
        assert_eq!(agent.metrics()["demo_starts"], 1.0);
        assert_eq!(agent.post("/fault/corrupt-state").0, 200);
        assert_eq!(agent.get("/health").0, 500);
        assert_eq!(agent.post("/fault/clear").0, 200);
        assert_eq!(
            agent.get("/health").0,
            500,
            "clear does not fix corrupt state"
        );
    }
    {
        let agent = Agent::start(&args);
        assert_eq!(
            agent.get("/health").0,
            500,
            "a restart does not fix corrupt state"
        );
        assert_eq!(agent.metrics()["demo_starts"], 2.0);
    }
    std::fs::remove_dir_all(&state).unwrap();
    let agent = Agent::start(&args);
    assert_eq!(
        agent.get("/health").0,
        200,
        "a reset (state dir removed) fixes it"
    );
    assert_eq!(agent.metrics()["demo_starts"], 1.0);
    drop(agent);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory under the target's temp dir (no tempfile dependency needed).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("demo-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_unhealed_leak_ends_in_a_simulated_oom_kill() {
    let mut agent = Agent::start(&[
        "--name",
        "t-oom",
        "--load-rps",
        "0",
        "--leak-mb-per-s",
        "100",
        "--oom-at-mb",
        "96",
    ]);
    assert_eq!(agent.post("/fault/leak").0, 200);
    assert_eq!(agent.wait_exit().code(), Some(137));
}

#[test]
fn a_killed_agent_can_be_restarted_on_the_same_port_at_once() {
    // What a supervisor does after a crash: same command line, same port, no delay.
    let agent = Agent::start(&["--name", "t-port", "--load-rps", "0"]);
    assert_eq!(agent.get("/work").0, 200); // leaves a connection in TIME_WAIT
    let port = agent.addr.rsplit_once(':').unwrap().1.to_owned();
    drop(agent); // SIGKILL
    let mut child = Command::new(env!("CARGO_BIN_EXE_medic-demo-agent"))
        .args(["--port", &port, "--name", "t-port", "--load-rps", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let again = Agent {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    assert_eq!(line.trim(), format!("listening on http://127.0.0.1:{port}"));
    assert_eq!(again.get("/health").0, 200);
}

#[test]
fn an_open_circuit_sheds_work_without_counting_it_until_closed() {
    let agent = Agent::start(&["--name", "t-circuit", "--load-rps", "0"]);
    assert_eq!(agent.get("/admin/circuit").1, "closed\n");
    assert_eq!(agent.post("/fault/errors").0, 200);
    assert_eq!(agent.get("/work").0, 500);
    assert_eq!(agent.post("/admin/circuit/open").0, 200);
    assert_eq!(agent.get("/admin/circuit").1, "open\n");
    for _ in 0..3 {
        assert_eq!(agent.get("/work").0, 503);
    }
    let m = agent.metrics();
    assert_eq!(m["demo_requests_total"], 1.0);
    assert_eq!(m["demo_errors_total"], 1.0);
    assert_eq!(m["demo_shed_total"], 3.0);
    assert_eq!(m["demo_circuit_open"], 1.0);
    // Health says whether the agent could serve, whatever the circuit.
    assert_eq!(agent.get("/health").0, 500);
    assert_eq!(agent.post("/fault/clear").0, 200);
    assert_eq!(agent.get("/health").0, 200);
    assert_eq!(agent.get("/work").0, 503, "still open until closed");
    assert_eq!(agent.post("/admin/circuit/close").0, 200);
    assert_eq!(agent.get("/admin/circuit").1, "closed\n");
    assert_eq!(agent.get("/work").0, 200);
    assert_eq!(agent.metrics()["demo_circuit_open"], 0.0);
    assert_eq!(agent.post("/admin/circuit/ajar").0, 400);
}
