//! The supervisor with real processes: crash detection, restart, reset, recreate, scale,
//! output capture, shutdown without orphans.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use medic_core::{ManualClock, Outcome, TargetId, Timestamp};
use medic_driver::supervise::{
    ExitStatus, ProcessEvent, SuperviseError, SuperviseOptions, Supervisor, Vars, outcome_of,
};
use medic_policy::SuperviseSpec;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(20);

fn spec(argv: &[&str]) -> SuperviseSpec {
    SuperviseSpec {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
        env: BTreeMap::new(),
        state_dir: None,
        workdir: None,
        port: None,
    }
}

/// `sh -c script` as a supervised command.
fn sh(script: &str) -> SuperviseSpec {
    spec(&["sh", "-c", script])
}

struct Harness {
    sup: Supervisor,
    events: mpsc::UnboundedReceiver<ProcessEvent>,
    clock: ManualClock,
}

fn harness(grace: Duration) -> Harness {
    let (tx, events) = mpsc::unbounded_channel();
    let clock = ManualClock::new(Timestamp::from_secs(1_000));
    let options = SuperviseOptions {
        grace,
        max_lines: 10,
        ..SuperviseOptions::default()
    };
    Harness {
        sup: Supervisor::with_clock(tx, Arc::new(clock.clone()), options),
        events,
        clock,
    }
}

impl Harness {
    async fn next_event(&mut self) -> ProcessEvent {
        tokio::time::timeout(LIMIT, self.events.recv())
            .await
            .expect("no process event within the limit")
            .expect("event channel closed")
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("the supervisor action did not return within the limit")
}

/// Waits (bounded) until `target`'s output tail satisfies `pred`; output has no event to
/// await, so this looks again every few milliseconds.
async fn tail_until(
    sup: &Supervisor,
    target: &TargetId,
    pred: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let poll = async {
        loop {
            let tail = sup.output_tail(target);
            if pred(&tail) {
                return tail;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    match tokio::time::timeout(LIMIT, poll).await {
        Ok(tail) => tail,
        Err(_) => panic!("output never matched; last: {:?}", sup.output_tail(target)),
    }
}

/// The pids a `sh -c '… & echo pid=$!'` script printed.
fn printed_pids(tail: &[String]) -> Vec<u32> {
    tail.iter()
        .filter_map(|l| l.strip_prefix("pid="))
        .map(|p| p.parse().unwrap())
        .collect()
}

async fn assert_gone(pids: &[u32]) {
    for &pid in pids {
        assert!(
            common::gone_within(pid, Duration::from_secs(5)).await,
            "pid {pid} is still alive"
        );
    }
}

#[tokio::test]
async fn a_crash_is_reported_at_once_and_not_as_expected() {
    let mut h = harness(Duration::from_secs(5));
    let t = TargetId::new("crashy");
    let pid = bounded(
        h.sup
            .start(&t, &sh("echo started; exec sleep 30"), &Vars::default()),
    )
    .await
    .unwrap();
    assert_eq!(h.sup.pids(&t), vec![pid]);
    tail_until(&h.sup, &t, |l| l.iter().any(|l| l == "started")).await;
    h.clock.set(Timestamp::from_secs(2_000));

    // Measured, printed, never asserted: how long from the kill to the event.
    #[allow(clippy::disallowed_methods)] // elapsed wall time is the measurement itself
    let sent = std::time::Instant::now();
    common::kill9(pid);
    let ev = h.next_event().await;
    eprintln!("crash detected {:?} after kill -9", sent.elapsed());
    assert_eq!(
        ev,
        ProcessEvent {
            target: t.clone(),
            instance: 0,
            pid,
            exit: ExitStatus::Signal(9),
            expected: false,
            at: Timestamp::from_secs(2_000),
        }
    );
    assert!(h.sup.pids(&t).is_empty());
    let status = h.sup.status(&t).unwrap();
    assert_eq!(status.pid, None);
    assert_eq!(status.last_exit, Some(ev));
    assert_eq!(status.restarts, 0);
    // The output of the dead process stays for diagnosis.
    assert_eq!(h.sup.output_tail(&t), vec!["started".to_owned()]);
    bounded(h.sup.stop_all()).await.unwrap();
}

#[tokio::test]
async fn restart_replaces_the_whole_group_and_flags_the_old_exit_as_expected() {
    let mut h = harness(Duration::from_secs(5));
    let t = TargetId::new("web");
    let old = bounded(
        h.sup
            .start(&t, &sh("sleep 300 & echo pid=$!; wait"), &Vars::default()),
    )
    .await
    .unwrap();
    let tail = tail_until(&h.sup, &t, |l| !printed_pids(l).is_empty()).await;
    let old_child = printed_pids(&tail)[0];

    #[allow(clippy::disallowed_methods)] // measured and printed, never asserted
    let began = std::time::Instant::now();
    let new = bounded(h.sup.restart(&t)).await.unwrap();
    eprintln!(
        "restart of a SIGTERM-obeying group took {:?}",
        began.elapsed()
    );
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], old);
    let ev = h.next_event().await;
    assert_eq!(ev.pid, old);
    assert!(ev.expected, "{ev:?}");
    assert_eq!(ev.exit, ExitStatus::Signal(libc::SIGTERM));
    assert_gone(&[old, old_child]).await;
    assert!(common::alive(new[0]));
    assert_eq!(h.sup.pids(&t), new);

    let status = h.sup.status(&t).unwrap();
    assert_eq!(status.restarts, 1);
    assert_eq!(status.instance, Some(0), "a restart keeps the instance");
    // The ring is kept across a restart: the old process's line and the new one's.
    let tail = tail_until(&h.sup, &t, |l| printed_pids(l).len() == 2).await;
    let pids = printed_pids(&tail);
    assert_eq!(pids[0], old_child);
    let new_child = pids[1];

    bounded(h.sup.stop_all()).await.unwrap();
    assert!(h.next_event().await.expected);
    assert_gone(&[new[0], new_child]).await;
    assert!(h.sup.targets().is_empty());
}

#[tokio::test]
async fn a_group_ignoring_sigterm_is_killed_after_the_grace() {
    let mut h = harness(Duration::from_millis(300));
    let t = TargetId::new("stubborn");
    let old = bounded(h.sup.start(
        &t,
        &sh("trap '' TERM; sleep 300 & echo pid=$!; wait; wait"),
        &Vars::default(),
    ))
    .await
    .unwrap();
    let tail = tail_until(&h.sup, &t, |l| !printed_pids(l).is_empty()).await;
    let child = printed_pids(&tail)[0];

    let new = bounded(h.sup.restart(&t)).await.unwrap();
    let ev = h.next_event().await;
    assert_eq!(
        (ev.pid, ev.exit, ev.expected),
        (old, ExitStatus::Signal(9), true)
    );
    assert_gone(&[old, child]).await;
    assert_ne!(new, vec![old]);
    bounded(h.sup.stop_all()).await.unwrap();
    assert_gone(&new).await;
}

#[tokio::test]
async fn reset_removes_the_state_dir_and_restart_keeps_it() {
    let mut h = harness(Duration::from_secs(5));
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let sibling = root.path().join("keep-me");
    std::fs::write(&sibling, b"x").unwrap();
    let mut s = sh(
        "if [ -e \"$STATE/marker\" ]; then echo found; else mkdir -p \"$STATE\" && touch \"$STATE/marker\" && echo fresh; fi; exec sleep 300",
    );
    s.env
        .insert("STATE".to_owned(), state.display().to_string());
    s.state_dir = Some(state.clone());
    let t = TargetId::new("stateful");
    bounded(h.sup.start(&t, &s, &Vars::default()))
        .await
        .unwrap();
    tail_until(&h.sup, &t, |l| l == ["fresh"]).await;
    std::fs::write(state.join("junk"), b"old state").unwrap();

    bounded(h.sup.restart(&t)).await.unwrap();
    assert!(h.next_event().await.expected);
    tail_until(&h.sup, &t, |l| l == ["fresh", "found"]).await;
    assert!(
        state.join("junk").exists(),
        "a restart must not touch the state"
    );

    bounded(h.sup.reset(&t)).await.unwrap();
    assert!(h.next_event().await.expected);
    tail_until(&h.sup, &t, |l| l == ["fresh", "found", "fresh"]).await;
    assert!(!state.join("junk").exists(), "reset left the old state");
    assert!(sibling.exists(), "reset removed more than the state dir");
    assert_eq!(h.sup.status(&t).unwrap().restarts, 2);
    bounded(h.sup.stop_all()).await.unwrap();
}

#[tokio::test]
async fn unsafe_state_dirs_are_refused_before_anything_runs() {
    let h = harness(Duration::from_secs(5));
    for bad in ["/", "/tmp", "relative", "/srv/../etc"] {
        let mut s = sh("exec sleep 300");
        s.state_dir = Some(PathBuf::from(bad));
        let err = bounded(h.sup.start(&TargetId::new("x"), &s, &Vars::default()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SuperviseError::UnsafeStateDir { .. }),
            "{bad}: {err:?}"
        );
    }
    assert!(h.sup.targets().is_empty());
}

#[tokio::test]
async fn recreate_starts_a_fresh_instance_with_an_empty_ring() {
    let mut h = harness(Duration::from_secs(5));
    let t = TargetId::new("fresh");
    let s = sh("echo \"instance $MEDIC_INSTANCE of $MEDIC_TARGET\"; exec sleep 300");
    let old = bounded(h.sup.start(&t, &s, &Vars::default()))
        .await
        .unwrap();
    tail_until(&h.sup, &t, |l| l == ["instance 0 of fresh"]).await;

    let new = bounded(h.sup.recreate(&t)).await.unwrap();
    let ev = h.next_event().await;
    assert_eq!((ev.pid, ev.instance, ev.expected), (old, 0, true));
    tail_until(&h.sup, &t, |l| l == ["instance 1 of fresh"]).await;
    let status = h.sup.status(&t).unwrap();
    assert_eq!(status.instance, Some(1));
    assert_eq!(status.pid, Some(new[0]));
    assert_gone(&[old]).await;
    bounded(h.sup.stop_all()).await.unwrap();
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (bounded wait: the
/// server needs a moment to start listening and says nothing we could await).
async fn accepts(port: u16) -> bool {
    let poll = async {
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, poll).await.is_ok()
}

#[tokio::test]
async fn scale_runs_instances_on_distinct_free_ports() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "skipping: python3 is not installed (the test serves HTTP with python3 -m http.server)"
        );
        return;
    }
    let mut h = harness(Duration::from_secs(5));
    // A base port that was free a moment ago, and the one above it held by someone else:
    // slot 1 must skip it.
    let (base, _blocker) = loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base < 60_000
            && let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", base + 1))
        {
            break (base, l);
        }
    };
    let s = spec(&[
        "python3",
        "-m",
        "http.server",
        "{port}",
        "--bind",
        "127.0.0.1",
    ]);
    let t = TargetId::new("pool");
    let vars = Vars {
        base_port: Some(base),
    };
    let first = bounded(h.sup.start(&t, &s, &vars)).await.unwrap();

    let pids = bounded(h.sup.scale(&t, 3)).await.unwrap();
    assert_eq!(pids.len(), 3);
    assert_eq!(pids[0], first);
    let status = h.sup.status(&t).unwrap();
    let ports: Vec<u16> = status.instances.iter().map(|i| i.port.unwrap()).collect();
    let numbers: Vec<u32> = status.instances.iter().map(|i| i.instance).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(ports[0], base);
    assert!(
        !ports.contains(&(base + 1)),
        "a port in use was handed out: {ports:?}"
    );
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ports:?}");
    for &port in &ports {
        assert!(accepts(port).await, "nothing listens on {port}");
    }

    // Down to one: the two highest slots stop, as expected exits.
    let left = bounded(h.sup.scale(&t, 1)).await.unwrap();
    assert_eq!(left, vec![first]);
    let mut stopped = [h.next_event().await, h.next_event().await];
    stopped.sort_by_key(|e| e.instance);
    assert!(stopped.iter().all(|e| e.expected));
    assert_eq!(
        stopped.iter().map(|e| e.pid).collect::<Vec<_>>(),
        pids[1..].to_vec()
    );
    assert_gone(&pids[1..]).await;

    // Up again: a new instance number, the freed port of slot 1 again.
    bounded(h.sup.scale(&t, 2)).await.unwrap();
    let status = h.sup.status(&t).unwrap();
    assert_eq!(status.instances[1].instance, 3);
    assert_eq!(status.instances[1].port, Some(ports[1]));
    assert!(accepts(ports[1]).await);
    let all = h.sup.pids(&t);
    bounded(h.sup.stop_all()).await.unwrap();
    assert_gone(&all).await;
}

#[tokio::test]
async fn the_output_tail_holds_the_last_lines_of_both_streams() {
    let mut h = harness(Duration::from_secs(5));
    let t = TargetId::new("chatty");
    let s =
        sh("for i in $(seq 1 50); do echo line $i; done; echo 'fatal: out of cheese' >&2; exit 3");
    let pid = bounded(h.sup.start(&t, &s, &Vars::default()))
        .await
        .unwrap();
    // The exit event is sent after the output is drained, so the tail is complete now.
    let ev = h.next_event().await;
    assert_eq!(
        (ev.pid, ev.exit, ev.expected),
        (pid, ExitStatus::Code(3), false)
    );
    let tail = h.sup.output_tail(&t);
    let mut want: Vec<String> = (42..=50).map(|i| format!("line {i}")).collect();
    want.push("fatal: out of cheese".to_owned());
    assert_eq!(tail, want);
    assert_eq!(h.sup.instance_output_tail(&t, 0), want);
    assert!(h.sup.instance_output_tail(&t, 7).is_empty());
}

#[tokio::test]
async fn placeholders_env_and_workdir_reach_the_process() {
    let mut h = harness(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let hostile = "w1; touch pwned $(touch pwned2)";
    let t = TargetId::new(hostile);
    let mut s = spec(&[
        "sh",
        "-c",
        "echo \"[$1][$2][$3][$MEDIC_PORT][$GREETING][$(pwd)]\"",
        "sh",
        "{target}",
        "{instance}",
        "{port}",
    ]);
    s.env.insert("GREETING".to_owned(), "hello".to_owned());
    s.workdir = Some(dir.path().to_owned());
    let vars = Vars {
        base_port: Some(40_000),
    };
    bounded(h.sup.start(&t, &s, &vars)).await.unwrap();
    let ev = h.next_event().await;
    assert_eq!(ev.exit, ExitStatus::Code(0));
    let port = h.sup.status(&t).unwrap().instances[0].port.unwrap();
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        h.sup.output_tail(&t),
        vec![format!(
            "[{hostile}][0][{port}][{port}][hello][{}]",
            cwd.display()
        )]
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a value ran as a command"
    );
}

#[tokio::test]
async fn start_errors_are_clear_and_leave_nothing_supervised() {
    let h = harness(Duration::from_secs(5));
    let t = TargetId::new("x");
    let err = bounded(h.sup.start(&t, &spec(&[]), &Vars::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, SuperviseError::EmptyCommand));
    let err = bounded(
        h.sup
            .start(&t, &spec(&["agent", "{port}"]), &Vars::default()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SuperviseError::NoBasePort));
    let res = bounded(
        h.sup
            .start(&t, &spec(&["/nonexistent/medic-agent"]), &Vars::default()),
    )
    .await;
    assert!(
        matches!(outcome_of(&res), Outcome::Failure(r) if r.contains("could not start \"/nonexistent/medic-agent\"") && r.contains("No such file")),
        "{res:?}"
    );
    assert!(h.sup.status(&t).is_none());
    assert!(matches!(
        bounded(h.sup.restart(&t)).await,
        Err(SuperviseError::UnknownTarget(_))
    ));

    bounded(h.sup.start(&t, &sh("exec sleep 300"), &Vars::default()))
        .await
        .unwrap();
    assert!(matches!(
        bounded(h.sup.start(&t, &sh("exec sleep 300"), &Vars::default())).await,
        Err(SuperviseError::AlreadySupervised(_))
    ));
    let pids = h.sup.pids(&t);
    bounded(h.sup.stop(&t)).await.unwrap();
    assert!(h.sup.status(&t).is_none());
    assert_gone(&pids).await;
}

#[tokio::test]
async fn a_restart_that_cannot_spawn_is_a_failure_with_the_reason() {
    let mut h = harness(Duration::from_secs(5));
    let root = tempfile::tempdir().unwrap();
    let workdir = root.path().join("wd");
    std::fs::create_dir(&workdir).unwrap();
    let mut s = sh("exec sleep 300");
    s.workdir = Some(workdir.clone());
    let t = TargetId::new("fragile");
    bounded(h.sup.start(&t, &s, &Vars::default()))
        .await
        .unwrap();
    std::fs::remove_dir(&workdir).unwrap();

    let res = bounded(h.sup.restart(&t)).await;
    assert!(h.next_event().await.expected);
    match outcome_of(&res) {
        Outcome::Failure(reason) => assert!(reason.contains("could not start"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(h.sup.pids(&t).is_empty());
    // Once the directory is back, a restart works again.
    std::fs::create_dir(&workdir).unwrap();
    assert_eq!(bounded(h.sup.restart(&t)).await.unwrap().len(), 1);
    bounded(h.sup.stop_all()).await.unwrap();
}

#[tokio::test]
async fn stop_all_leaves_no_process_of_any_group() {
    let mut h = harness(Duration::from_millis(300));
    let script = "sleep 300 & echo pid=$!; sleep 300 & echo pid=$!; wait";
    let stubborn = "trap '' TERM; sleep 300 & echo pid=$!; wait; wait";
    let mut all = Vec::new();
    for (name, s) in [("a", script), ("b", stubborn), ("c", script)] {
        let t = TargetId::new(name);
        all.push(
            bounded(h.sup.start(&t, &sh(s), &Vars::default()))
                .await
                .unwrap(),
        );
        let want = if name == "b" { 1 } else { 2 };
        let tail = tail_until(&h.sup, &t, |l| printed_pids(l).len() == want).await;
        all.extend(printed_pids(&tail));
    }
    bounded(h.sup.scale(&TargetId::new("a"), 2)).await.unwrap();
    all.extend(h.sup.pids(&TargetId::new("a")));
    let leaders = 4;

    bounded(h.sup.stop_all()).await.unwrap();
    for _ in 0..leaders {
        assert!(h.next_event().await.expected);
    }
    assert_gone(&all).await;
    assert!(h.sup.targets().is_empty());
}

#[tokio::test]
async fn dropping_the_supervisor_leaves_no_orphans() {
    let h = harness(Duration::from_secs(5));
    let t = TargetId::new("dropped");
    let pid = bounded(
        h.sup
            .start(&t, &sh("sleep 300 & echo pid=$!; wait"), &Vars::default()),
    )
    .await
    .unwrap();
    let tail = tail_until(&h.sup, &t, |l| !printed_pids(l).is_empty()).await;
    let child = printed_pids(&tail)[0];
    let clone = h.sup.clone();
    drop(h);
    assert!(common::alive(pid), "a clone still holds the supervisor");
    drop(clone);
    assert_gone(&[pid, child]).await;
}

#[test]
fn a_dropped_runtime_leaves_no_orphans() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let sup = Supervisor::new(tx);
    let t = TargetId::new("abandoned");
    let (pid, child) = runtime.block_on(async {
        let pid = bounded(sup.start(&t, &sh("sleep 300 & echo pid=$!; wait"), &Vars::default()))
            .await
            .unwrap();
        let tail = tail_until(&sup, &t, |l| !printed_pids(l).is_empty()).await;
        (pid, printed_pids(&tail)[0])
    });
    // The runtime goes first: its watcher tasks are dropped without reaping anything.
    drop(runtime);
    let check = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    check.block_on(assert_gone(&[pid, child]));
    drop(sup);
}

#[tokio::test]
async fn a_stopped_hung_group_is_restarted() {
    // A hang injected with SIGSTOP: the group cannot act on SIGTERM while stopped, so the
    // restart must still end it (SIGCONT with the SIGTERM, or SIGKILL after the grace).
    let mut h = harness(Duration::from_millis(300));
    let t = TargetId::new("hung");
    let old = bounded(
        h.sup
            .start(&t, &sh("sleep 300 & echo pid=$!; wait"), &Vars::default()),
    )
    .await
    .unwrap();
    let tail = tail_until(&h.sup, &t, |l| !printed_pids(l).is_empty()).await;
    let child = printed_pids(&tail)[0];
    common::signal_group(old, libc::SIGSTOP);

    let new = bounded(h.sup.restart(&t)).await.unwrap();
    let ev = h.next_event().await;
    assert_eq!((ev.pid, ev.expected), (old, true));
    assert!(matches!(ev.exit, ExitStatus::Signal(_)), "{ev:?}");
    assert_gone(&[old, child]).await;
    assert!(common::alive(new[0]));
    bounded(h.sup.stop_all()).await.unwrap();
    assert_gone(&new).await;
}

#[tokio::test]
async fn a_stopped_target_can_be_started_again() {
    let mut h = harness(Duration::from_secs(5));
    let t = TargetId::new("again");
    let first = bounded(h.sup.start(&t, &sh("exec sleep 300"), &Vars::default()))
        .await
        .unwrap();
    bounded(h.sup.stop(&t)).await.unwrap();
    let ev = h.next_event().await;
    assert_eq!(
        (ev.pid, ev.exit, ev.expected),
        (first, ExitStatus::Signal(libc::SIGTERM), true)
    );
    let second = bounded(h.sup.start(&t, &sh("exec sleep 300"), &Vars::default()))
        .await
        .unwrap();
    assert_ne!(first, second);
    let status = h.sup.status(&t).unwrap();
    assert_eq!(
        (status.instance, status.restarts, status.last_exit),
        (Some(0), 0, None)
    );
    bounded(h.sup.stop_all()).await.unwrap();
}
