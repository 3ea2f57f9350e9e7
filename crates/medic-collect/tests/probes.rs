//! Probes against real things started by the tests: HTTP servers on 127.0.0.1 written by hand
//! (healthy, 500, slow, a 100 MiB stream, one that never answers), a closed port, child
//! processes (stopped with SIGSTOP, a zombie, commands that pass, fail and hang).
//!
//! No timing assertions beyond generous upper bounds; every wait is bounded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use medic_collect::http::{DEFAULT_MAX_BODY_BYTES, client, fetch_capped};
use medic_collect::probe::{Prober, check_process};
use medic_collect::scheduler::{ScheduledProbe, Scheduler, SchedulerConfig, default_spec};
use medic_core::{ProbeLevel, ProbeOutcome, SystemClock, TargetId};
use medic_policy::{Check, ProcessSelector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How a test server treats each connection.
#[derive(Clone, Copy)]
enum Behavior {
    /// Answers with this status and a small body containing "ok".
    Respond(u16),
    /// Reads the request, then sleeps this long before answering 200.
    Slow(Duration),
    /// Announces and streams 100 MiB of 'x'.
    Stream100MiB,
    /// Accepts and then neither reads nor writes.
    Silent,
}

const HUNDRED_MIB: u64 = 100 * 1024 * 1024;

/// Starts a server on an ephemeral loopback port. The handle resolves to the bytes the last
/// connection wrote (for the stream server: how far it got before the client hung up).
async fn serve(behavior: Behavior) -> (SocketAddr, JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return 0;
            };
            match behavior {
                Behavior::Silent => held.push(conn),
                Behavior::Stream100MiB => return stream(conn).await,
                Behavior::Respond(status) => {
                    tokio::spawn(respond(conn, status, Duration::ZERO));
                }
                Behavior::Slow(delay) => {
                    tokio::spawn(respond(conn, 200, delay));
                }
            }
        }
    });
    (addr, handle)
}

async fn read_request(conn: &mut TcpStream) -> bool {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return false;
        }
    }
    true
}

async fn respond(mut conn: TcpStream, status: u16, delay: Duration) {
    // Keep-alive: answer every request on the connection.
    while read_request(&mut conn).await {
        tokio::time::sleep(delay).await;
        let body = format!("status {status}: ok\n");
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).await.is_err()
            || conn.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

async fn stream(mut conn: TcpStream) -> u64 {
    if !read_request(&mut conn).await {
        return 0;
    }
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {HUNDRED_MIB}\r\n\r\n");
    if conn.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0u64;
    while written < HUNDRED_MIB {
        match conn.write(&chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    written
}

fn http(addr: SocketAddr, body_contains: Option<&str>) -> Check {
    Check::Http {
        url: format!("http://{addr}/health"),
        status_min: 200,
        status_max: 399,
        body_contains: body_contains.map(str::to_owned),
        max_latency: None,
    }
}

fn prober() -> Prober {
    Prober::with_defaults().unwrap()
}

fn t() -> TargetId {
    TargetId::new("t")
}

const SHORT: Duration = Duration::from_millis(500);
const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn healthy_server_passes() {
    let (addr, _server) = serve(Behavior::Respond(200)).await;
    let (outcome, _) = prober()
        .run_check(&t(), &http(addr, Some("ok")), LONG)
        .await;
    assert_eq!(outcome, ProbeOutcome::Ok);
}

#[tokio::test]
async fn body_substring_must_be_present() {
    let (addr, _server) = serve(Behavior::Respond(200)).await;
    let (outcome, _) = prober()
        .run_check(&t(), &http(addr, Some("ready")), LONG)
        .await;
    let ProbeOutcome::Failed(reason) = outcome else {
        panic!("expected failure, got {outcome:?}");
    };
    assert!(reason.contains("does not contain \"ready\""), "{reason}");
}

#[tokio::test]
async fn server_error_fails_with_status() {
    let (addr, _server) = serve(Behavior::Respond(500)).await;
    let (outcome, _) = prober().run_check(&t(), &http(addr, None), LONG).await;
    assert_eq!(
        outcome,
        ProbeOutcome::Failed("status 500, expected 200-399".into())
    );
}

#[tokio::test]
async fn slow_server_times_out() {
    let (addr, _server) = serve(Behavior::Slow(Duration::from_secs(30))).await;
    let (outcome, latency) = prober().run_check(&t(), &http(addr, None), SHORT).await;
    assert_eq!(outcome, ProbeOutcome::TimedOut);
    assert_eq!(latency, SHORT);
}

#[tokio::test]
async fn latency_limit_fails_a_slow_success() {
    let (addr, _server) = serve(Behavior::Slow(Duration::from_millis(300))).await;
    let check = Check::Http {
        url: format!("http://{addr}/"),
        status_min: 200,
        status_max: 299,
        body_contains: None,
        max_latency: Some(Duration::from_millis(50)),
    };
    let (outcome, _) = prober().run_check(&t(), &check, LONG).await;
    let ProbeOutcome::Failed(reason) = outcome else {
        panic!("expected failure, got {outcome:?}");
    };
    assert!(reason.contains("above limit"), "{reason}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let (addr, _server) = serve(Behavior::Silent).await;
    let (outcome, _) = prober().run_check(&t(), &http(addr, None), SHORT).await;
    assert_eq!(outcome, ProbeOutcome::TimedOut);
    // A tcp probe only connects, so the same server passes it.
    let tcp = Check::Tcp {
        addr: addr.to_string(),
    };
    assert_eq!(
        prober().run_check(&t(), &tcp, SHORT).await.0,
        ProbeOutcome::Ok
    );
}

async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[tokio::test]
async fn closed_port_fails_http_and_tcp() {
    let addr = closed_port().await;
    let (outcome, _) = prober().run_check(&t(), &http(addr, None), LONG).await;
    let ProbeOutcome::Failed(reason) = outcome else {
        panic!("expected failure, got {outcome:?}");
    };
    assert!(reason.contains("connect"), "{reason}");
    let tcp = Check::Tcp {
        addr: addr.to_string(),
    };
    let (outcome, _) = prober().run_check(&t(), &tcp, LONG).await;
    let ProbeOutcome::Failed(reason) = outcome else {
        panic!("expected failure, got {outcome:?}");
    };
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
}

#[tokio::test]
async fn huge_body_is_cut_at_the_cap() {
    let (addr, server) = serve(Behavior::Stream100MiB).await;
    let fetched = fetch_capped(
        &client().unwrap(),
        &format!("http://{addr}/"),
        LONG,
        DEFAULT_MAX_BODY_BYTES,
    )
    .await
    .unwrap();
    assert_eq!(fetched.status, 200);
    assert!(fetched.truncated);
    assert_eq!(fetched.body.len(), DEFAULT_MAX_BODY_BYTES);
    assert!(fetched.body.capacity() <= 2 * DEFAULT_MAX_BODY_BYTES);
    // The client hung up instead of draining: the server stopped well short of 100 MiB.
    let written = tokio::time::timeout(LONG, server).await.unwrap().unwrap();
    assert!(written < HUNDRED_MIB / 2, "server wrote {written} bytes");
}

#[tokio::test]
async fn huge_body_probe_searches_only_the_capped_prefix() {
    let (addr, _server) = serve(Behavior::Stream100MiB).await;
    let (outcome, _) = prober()
        .run_check(&t(), &http(addr, Some("needle")), LONG)
        .await;
    let ProbeOutcome::Failed(reason) = outcome else {
        panic!("expected failure, got {outcome:?}");
    };
    assert!(reason.contains("cut at the cap"), "{reason}");
    let (addr, _server) = serve(Behavior::Stream100MiB).await;
    let (outcome, _) = prober()
        .run_check(&t(), &http(addr, Some("xxx")), LONG)
        .await;
    assert_eq!(outcome, ProbeOutcome::Ok);
}

fn temp_file(name: &str) -> PathBuf {
    // Names are unique per test; the pid keeps parallel test runs apart.
    std::env::temp_dir().join(format!("medic-probes-{}-{name}", std::process::id()))
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with plain integers on a child this test spawned and has not reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// Blocks until the child is in the state `flags` asks for (`WEXITED`, `WSTOPPED`), without
/// reaping it: an exited child stays a zombie.
#[allow(unsafe_code)]
fn wait_state_not_reaped(pid: u32, flags: i32) {
    // SAFETY: waitid writes only into the zeroed siginfo we own; WNOWAIT leaves the child
    // unreaped so /proc keeps showing it.
    let rc = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            flags | libc::WNOWAIT,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
fn stopped_process_fails() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id();
    let pid_file = temp_file("stopped.pid");
    std::fs::write(&pid_file, format!("{pid}\n")).unwrap();
    let selector = ProcessSelector::PidFile(pid_file.clone());
    assert_eq!(check_process(&selector), ProbeOutcome::Ok);

    signal(pid, libc::SIGSTOP);
    wait_state_not_reaped(pid, libc::WSTOPPED);
    let outcome = check_process(&selector);
    assert_eq!(
        outcome,
        ProbeOutcome::Failed(format!("process {pid} is stopped"))
    );

    signal(pid, libc::SIGKILL);
    child.wait().unwrap();
    assert_eq!(
        check_process(&selector),
        ProbeOutcome::Failed(format!("process {pid} does not exist"))
    );
    std::fs::remove_file(pid_file).unwrap();
}

#[test]
fn zombie_fails() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    wait_state_not_reaped(pid, libc::WEXITED);
    let pid_file = temp_file("zombie.pid");
    std::fs::write(&pid_file, pid.to_string()).unwrap();
    assert_eq!(
        check_process(&ProcessSelector::PidFile(pid_file.clone())),
        ProbeOutcome::Failed(format!("process {pid} is a zombie"))
    );
    child.wait().unwrap();
    std::fs::remove_file(pid_file).unwrap();
}

#[test]
fn process_by_name_and_bad_pid_files() {
    // This test binary is a live process with a known name.
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        check_process(&ProcessSelector::Name(name)),
        ProbeOutcome::Ok
    );
    assert_eq!(
        check_process(&ProcessSelector::Name("no-such-medic-process".into())),
        ProbeOutcome::Failed("no process named \"no-such-medic-process\"".into())
    );
    let pid_file = temp_file("garbage.pid");
    std::fs::write(&pid_file, "not a pid").unwrap();
    let ProbeOutcome::Failed(reason) = check_process(&ProcessSelector::PidFile(pid_file.clone()))
    else {
        panic!("garbage pid file passed");
    };
    assert!(reason.contains("does not hold a pid"), "{reason}");
    std::fs::remove_file(&pid_file).unwrap();
    let ProbeOutcome::Failed(reason) = check_process(&ProcessSelector::PidFile(pid_file)) else {
        panic!("missing pid file passed");
    };
    assert!(reason.contains("could not read pid file"), "{reason}");
}

fn exec(argv: &[&str]) -> Check {
    Check::Exec {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tokio::test]
async fn exec_passes_fails_and_reports_stderr() {
    let p = prober();
    assert_eq!(
        p.run_check(&t(), &exec(&["true"]), LONG).await.0,
        ProbeOutcome::Ok
    );
    assert_eq!(
        p.run_check(&t(), &exec(&["sh", "-c", "echo boom >&2; exit 3"]), LONG)
            .await
            .0,
        ProbeOutcome::Failed("exit code 3: boom".into())
    );
    let ProbeOutcome::Failed(reason) = p
        .run_check(&t(), &exec(&["/nonexistent/medic-probe"]), LONG)
        .await
        .0
    else {
        panic!("missing program passed");
    };
    assert!(reason.contains("could not start"), "{reason}");
    // argv is never given to a shell: the `;` is just an argument of echo.
    assert_eq!(
        p.run_check(&t(), &exec(&["echo", "a;", "false"]), LONG)
            .await
            .0,
        ProbeOutcome::Ok
    );
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_group() {
    let pid_file = temp_file("grandchild.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let (outcome, _) = prober()
        .run_check(&t(), &exec(&["sh", "-c", &script]), Duration::from_secs(1))
        .await;
    assert_eq!(outcome, ProbeOutcome::TimedOut);
    // The background `sleep` shared the probe's process group, so it was killed too (it may
    // linger as a zombie until init reaps it, which the process check also rejects).
    assert_dies(&pid_file).await;
    std::fs::remove_file(pid_file).unwrap();
}

/// Waits (bounded) until the process in `pid_file` is no longer alive: SIGKILL is delivered
/// asynchronously, so the check polls briefly instead of sampling once.
async fn assert_dies(pid_file: &std::path::Path) {
    let selector = ProcessSelector::PidFile(pid_file.to_owned());
    for _ in 0..500 {
        if check_process(&selector) != ProbeOutcome::Ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process in {} still alive after 5 s", pid_file.display());
}

#[tokio::test]
async fn cancelled_exec_kills_the_whole_group() {
    let pid_file = temp_file("cancelled.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let argv: Vec<String> = ["sh", "-c", &script]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let task = tokio::spawn(async move {
        medic_collect::probe::run_exec(&argv, Duration::from_secs(60)).await
    });
    // Wait (bounded) for the grandchild to exist, then cancel the probe.
    for _ in 0..500 {
        if std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim().parse::<u32>().is_ok()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        check_process(&ProcessSelector::PidFile(pid_file.clone())),
        ProbeOutcome::Ok
    );
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_dies(&pid_file).await;
    std::fs::remove_file(pid_file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_does_not_affect_the_others() {
    let (ok_addr, _a) = serve(Behavior::Respond(200)).await;
    let (err_addr, _b) = serve(Behavior::Respond(500)).await;
    let (slow_addr, _c) = serve(Behavior::Slow(Duration::from_secs(60))).await;
    let (silent_addr, _d) = serve(Behavior::Silent).await;
    let (stream_addr, _e) = serve(Behavior::Stream100MiB).await;
    let closed = closed_port().await;
    let p = Arc::new(prober());
    let hang = Duration::from_secs(2);
    let cases: Vec<(Check, Duration)> = vec![
        (http(slow_addr, None), hang),
        (http(silent_addr, None), hang),
        (exec(&["sleep", "60"]), hang),
        (http(ok_addr, Some("ok")), LONG),
        (http(err_addr, None), LONG),
        (http(stream_addr, Some("x")), LONG),
        (http(closed, None), LONG),
        (
            Check::Tcp {
                addr: ok_addr.to_string(),
            },
            LONG,
        ),
    ];
    let started = tokio::time::Instant::now();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(check, timeout)| {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                let (outcome, _) = p.run_check(&TargetId::new("t"), &check, timeout).await;
                (outcome, tokio::time::Instant::now())
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    let kinds: Vec<&str> = results
        .iter()
        .map(|(o, _)| match o {
            ProbeOutcome::Ok => "ok",
            ProbeOutcome::Failed(_) => "failed",
            ProbeOutcome::TimedOut => "timed_out",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "timed_out",
            "timed_out",
            "timed_out",
            "ok",
            "failed",
            "ok",
            "failed",
            "ok"
        ],
        "{results:?}"
    );
    // Generous bound: the healthy probes were not held back until the hung ones gave up.
    // Every probe ran concurrently, so all are done long before the sum of the timeouts.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_keeps_probing_healthy_targets_next_to_hung_ones() {
    let (ok_addr, _a) = serve(Behavior::Respond(200)).await;
    let (silent_addr, _b) = serve(Behavior::Silent).await;
    let closed = closed_port().await;
    let every = Duration::from_millis(100);
    let spec = |check: Check, timeout: Duration| {
        let mut s = default_spec(ProbeLevel::Liveness, check);
        s.every = every;
        s.timeout = timeout;
        s
    };
    let probes = vec![
        ScheduledProbe {
            target: TargetId::new("ok"),
            target_idx: 0,
            slot: 0,
            spec: spec(http(ok_addr, None), Duration::from_secs(5)),
        },
        ScheduledProbe {
            target: TargetId::new("hung"),
            target_idx: 1,
            slot: 0,
            // Longer than the interval: overlapping rounds must be skipped, not stacked.
            spec: spec(http(silent_addr, None), Duration::from_millis(450)),
        },
        ScheduledProbe {
            target: TargetId::new("down"),
            target_idx: 2,
            slot: 0,
            spec: spec(
                Check::Tcp {
                    addr: closed.to_string(),
                },
                Duration::from_secs(5),
            ),
        },
    ];
    let scheduler = Scheduler::new(
        probes,
        SchedulerConfig {
            max_concurrent: 8,
            seed: 7,
        },
        prober(),
        Arc::new(SystemClock),
    );
    let stats = scheduler.stats();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(scheduler.run(tx, async {
        let _ = stop_rx.await;
    }));
    let mut counts = [0usize; 3];
    let collect = async {
        while counts[1] < 2 {
            let report = rx.recv().await.expect("scheduler stopped early");
            let expected = match report.target_idx {
                0 => ProbeOutcome::Ok,
                1 => ProbeOutcome::TimedOut,
                _ => {
                    assert!(matches!(report.result.outcome, ProbeOutcome::Failed(_)));
                    report.result.outcome.clone()
                }
            };
            assert_eq!(report.result.outcome, expected, "{report:?}");
            counts[report.target_idx] += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .expect("reports within 30 s");
    let _ = stop_tx.send(());
    tokio::time::timeout(LONG, run).await.unwrap().unwrap();
    // While the hung target timed out twice (≥ 900 ms), the others kept their 100 ms rhythm.
    assert!(counts[0] >= 4 && counts[2] >= 4, "{counts:?}");
    assert!(
        stats
            .skipped_overlapping
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[test]
fn first_runs_are_deterministic_and_within_the_interval() {
    let probes: Vec<ScheduledProbe> = (0..50)
        .map(|i| ScheduledProbe {
            target: TargetId::new(format!("t{i}")),
            target_idx: i,
            slot: 0,
            spec: default_spec(
                ProbeLevel::Liveness,
                Check::Tcp {
                    addr: "127.0.0.1:1".into(),
                },
            ),
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let make = |seed| {
        let _g = rt.enter();
        Scheduler::new(
            probes.clone(),
            SchedulerConfig {
                max_concurrent: 1,
                seed,
            },
            prober(),
            Arc::new(SystemClock),
        )
    };
    let start = medic_core::Timestamp::from_secs(1000);
    let a = make(1).first_runs(start);
    assert_eq!(a, make(1).first_runs(start));
    assert_ne!(a, make(2).first_runs(start));
    assert!(
        a.iter()
            .all(|t| *t >= start && t.since(start) < Duration::from_secs(10))
    );
    // Spread, not bunched: at least a third of the 1 s buckets are used.
    let mut buckets = [false; 10];
    for t in &a {
        buckets[(t.since(start).as_millis() / 1000) as usize] = true;
    }
    assert!(buckets.iter().filter(|b| **b).count() >= 4);
}

/// A clock that reads tokio's (here paused) time, so planning and sleeping share one timeline.
struct TokioClock {
    base: tokio::time::Instant,
    at_base: medic_core::Timestamp,
}

impl medic_core::Clock for TokioClock {
    fn now(&self) -> medic_core::Timestamp {
        self.at_base + self.base.elapsed()
    }
}

#[tokio::test(start_paused = true)]
async fn scheduler_runs_every_probe_on_its_own_grid_in_virtual_time() {
    let pid_file = temp_file("self.pid");
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let intervals = [1000u64, 2000, 5000, 700];
    let probes: Vec<ScheduledProbe> = intervals
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            let mut spec = default_spec(
                ProbeLevel::Liveness,
                Check::Process {
                    selector: ProcessSelector::PidFile(pid_file.clone()),
                },
            );
            spec.every = Duration::from_millis(*ms);
            ScheduledProbe {
                target: TargetId::new(format!("t{i}")),
                target_idx: i,
                slot: 0,
                spec,
            }
        })
        .collect();
    let clock = Arc::new(TokioClock {
        base: tokio::time::Instant::now(),
        at_base: medic_core::Timestamp::from_secs(1_000_000),
    });
    let scheduler = Scheduler::new(
        probes,
        SchedulerConfig {
            max_concurrent: 2,
            seed: 42,
        },
        prober(),
        clock.clone(),
    );
    let start = medic_core::Clock::now(clock.as_ref());
    let first = scheduler.first_runs(start);
    let end = start + Duration::from_millis(10_500);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let run = tokio::spawn(scheduler.run(tx, async {
        tokio::time::sleep(Duration::from_millis(10_500)).await;
    }));
    let mut got: Vec<Vec<medic_core::Timestamp>> = vec![Vec::new(); intervals.len()];
    while let Some(report) = rx.recv().await {
        assert_eq!(report.result.outcome, ProbeOutcome::Ok);
        assert_eq!(report.lag(), Duration::ZERO, "{report:?}");
        if report.planned < end {
            got[report.probe_idx].push(report.planned);
        }
    }
    run.await.unwrap();
    for (i, ms) in intervals.iter().enumerate() {
        let expected: Vec<_> = (0..)
            .map(|k| first[i] + Duration::from_millis(k * ms))
            .take_while(|t| *t < end)
            .collect();
        got[i].sort();
        assert_eq!(got[i], expected, "probe {i} every {ms} ms");
    }
    std::fs::remove_file(pid_file).unwrap();
}
