//! End-to-end: `medic run` and `medic demo` as a user runs them, healing real processes
//! (`medic demo-agent`, plain commands) on loopback. Every test is bounded in time, cleans
//! up after itself, and prints what it measured (no timing assertions: the machines are
//! shared and noisy).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Agent, Daemon, actions_for, free_port, get_json, heal, http, journaled, leak_healed_agent,
    medic_bin, open_store, pid_of, policies_dir, read_journal, repo, run_chromium, signal,
    successes, supervised_agent as agent, target_state, wait_for, wait_for_body, webhook_receiver,
};
use serde_json::Value;

/// Milliseconds since the Unix epoch: the unit of the API's timestamps.
#[allow(clippy::disallowed_methods)] // compared with the daemon's own timestamps, from outside
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a test sees of one fault from outside, polling the API every 20 ms from the moment
/// the fault is injected: when the target first left `healthy` or an incident for it was
/// opened (the incident's own `opened_at`, when the poll sees it), and when it was `healthy`
/// again with no open incident (the incident closes when a heal is verified).
struct Watch {
    /// The daemon's API port; a test that restarts the daemon points the watch at the new one.
    port: Arc<AtomicU16>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Detection and recovery, measured from the injection.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    detected: Option<Duration>,
    healed: Option<Duration>,
}

impl Watch {
    /// Starts watching `target` of the daemon on `port`; call it right before the injection.
    fn start(port: u16, target: &str) -> Watch {
        let port = Arc::new(AtomicU16::new(port));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (api, out, halt) = (Arc::clone(&port), Arc::clone(&seen), Arc::clone(&stop));
        let name = target.to_owned();
        let injected = epoch_ms();
        #[allow(clippy::disallowed_methods)] // measuring a real process from outside
        let t0 = Instant::now();
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let port = api.load(Ordering::Relaxed);
                let state = target_state(port, &name);
                let incidents = get_json(port, "/api/v1/incidents");
                let open: Vec<u64> = incidents
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter(|i| i["target"] == name.as_str())
                    .filter_map(|i| i["opened_at"].as_u64())
                    .collect();
                let now = t0.elapsed();
                let mut seen = out.lock().unwrap();
                if seen.detected.is_none() {
                    let left = (!state.is_empty() && state != "healthy").then_some(now);
                    let opened = open
                        .iter()
                        .filter(|at| **at >= injected)
                        .min()
                        .map(|at| Duration::from_millis(at - injected));
                    seen.detected = match (left, opened) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                if seen.detected.is_some() && state == "healthy" && open.is_empty() {
                    seen.healed = Some(now);
                    break;
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watch {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Points the watch at a restarted daemon's API.
    fn follow(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// Waits (up to `limit`) until the watch saw the target healed, then stops it.
    /// The test's own wait already saw the heal: the watch sees it within a poll or two.
    fn healed(self, limit: Duration) -> Seen {
        #[allow(clippy::disallowed_methods)] // a bound on a wait for a real process
        let start = Instant::now();
        while self.seen.lock().unwrap().healed.is_none() && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish()
    }

    /// Stops watching; what was seen so far.
    fn finish(mut self) -> Seen {
        self.halt();
        *self.seen.lock().unwrap()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Seen {
    /// `detected after X, healed after Y`, the line every fault test prints.
    fn line(&self) -> String {
        format!(
            "detected after {}, healed after {}",
            secs(self.detected),
            secs(self.healed)
        )
    }
}

/// `d` in seconds with two decimals, or `(not seen)`.
fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "(not seen)".to_owned(),
        |d| format!("{:.2}s", d.as_secs_f64()),
    )
}

#[test]
fn crash_and_sigstop_hang_are_healed_by_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let fleet = format!(
        "targets:\n{}{}",
        agent("crashy", p1, ""),
        agent("sleepy", p2, "")
    );
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["crashy", "sleepy"]);

    // Crash: the agent exits; the supervisor sees it at once.
    let old = pid_of(d.port, "crashy").unwrap();
    let watch = Watch::start(d.port, "crashy");
    let _ = http("POST", p1, "/fault/crash", None, "");
    let mttr = wait_for(
        "crashy restarted and healthy",
        Duration::from_secs(30),
        || {
            pid_of(d.port, "crashy").is_some_and(|p| p != old)
                && target_state(d.port, "crashy") == "healthy"
                && successes(d.port, "crashy") > 0
        },
    );
    let seen = watch.healed(Duration::from_secs(10));
    eprintln!(
        "crash: {} (new pid, healthy and the restart verified {mttr:?} after the crash)",
        seen.line()
    );
    let acts = actions_for(d.port, "crashy");
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0]["strategy"], "restart");

    // Hang: SIGSTOP; liveness 1 s probes, threshold 3.
    let old = pid_of(d.port, "sleepy").unwrap();
    let watch = Watch::start(d.port, "sleepy");
    signal(old, "-STOP");
    let mttr = wait_for(
        "sleepy restarted and healthy",
        Duration::from_secs(40),
        || pid_of(d.port, "sleepy").is_some_and(|p| p != old) && successes(d.port, "sleepy") > 0,
    );
    let seen = watch.healed(Duration::from_secs(10));
    eprintln!(
        "hang (SIGSTOP): {} (new pid and the restart verified {mttr:?} after the stop)",
        seen.line()
    );
    assert!(
        !Path::new(&format!("/proc/{old}")).exists()
            || std::fs::read_to_string(format!("/proc/{old}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the stopped process was killed"
    );
}

#[test]
fn a_leaking_agent_is_restarted_preemptively_before_it_crosses_its_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // 16 MiB a second towards a 300 MiB limit. The agent plays the OOM killer at 360 MiB: a
    // leak medic did not heal in time would end in a crash (exit 137), found by the exit.
    let fleet = format!(
        "targets:\n  - name: leaky\n    supervise: {{ command: [\"{bin}\", demo-agent, --port, \"{port}\", --name, leaky, --load-rps, \"0\", --leak-mb-per-s, \"16\", --oom-at-mb, \"360\"] }}\n    startup_delay: 100ms\n    probes:\n      liveness: {{ http: {{ url: \"{base}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 3 }}\n      resources: {{ max_rss: 300Mi }}\n    metrics: {{ url: \"{base}/metrics\", every: 1s }}\n",
        bin = medic_bin()
    );
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["leaky"]);
    let old = pid_of(d.port, "leaky").unwrap();
    let injected = epoch_ms();
    let watch = Watch::start(d.port, "leaky");
    assert_eq!(http("POST", port, "/fault/leak", None, "").0, 200);
    let took = wait_for(
        "leaky restarted and verified",
        Duration::from_secs(40),
        || pid_of(d.port, "leaky").is_some_and(|p| p != old) && successes(d.port, "leaky") > 0,
    );
    let seen = watch.healed(Duration::from_secs(10));
    let acts = actions_for(d.port, "leaky");
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0]["strategy"], "restart", "{acts:?}");
    let reason = acts[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rule leak"), "{reason}");
    let acted_at = acts[0]["started_at"].as_u64().unwrap();
    drop(d);

    let store = open_store(dir.path());
    // The daemon's own record of the incident: found by the forecast while the agent was
    // still serving, not by its exit.
    let incidents = store
        .incidents(
            Some("leaky"),
            medic_core::Timestamp::from_millis(injected)
                ..medic_core::Timestamp::from_millis(u64::MAX / 2),
        )
        .unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let record = &incidents[0].summary;
    assert_eq!(record["preemptive"], true, "{record}");
    assert_ne!(record["detected_by"], "process-exit", "{record}");
    assert!(record["healed_at"].is_u64(), "{record}");
    // The agent's RSS as medic scraped it, up to the action: below the limit all along.
    let rss: Vec<f64> = store
        .samples(
            "leaky",
            "process_resident_memory_bytes",
            medic_core::Timestamp::from_millis(injected)
                ..medic_core::Timestamp::from_millis(acted_at + 1),
        )
        .unwrap()
        .iter()
        .map(|s| s.value / 1048576.0)
        .collect();
    let limit = 300.0;
    let at_action = *rss.last().expect("RSS scraped before the action");
    eprintln!(
        "memory leak (16 MiB/s, limit 300 MiB): {}; restart verified {took:?} after the injection; acted at {at_action:.0} MiB ({:.0}% of the limit), detected by {} ({}); RSS scraped before the action {:?} MiB",
        seen.line(),
        at_action / limit * 100.0,
        record["detected_by"],
        record["summary"],
        rss.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    assert!(
        rss.iter().all(|r| *r < limit),
        "the process crossed its limit before the action: {rss:?}"
    );
}

/// The shipped policies plus `extra` appended to their tiers.
fn policies_with(dir: &Path, extra: &str) -> PathBuf {
    let mut tiers = std::fs::read_to_string(repo().join("policies/tiers.yaml")).unwrap();
    tiers.push_str(extra);
    policies_dir(dir, &tiers)
}

#[test]
fn crash_loop_backs_off_longer_each_time_then_gives_up_with_exactly_one_escalation_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped crash-loop rule (4 crashes within 15 min) on a tier whose backoff is 1 s,
    // then 3 s (shipped: 10 s, doubling), so the loop reaches the rule within the test's time.
    let policies = policies_with(
        dir.path(),
        "\n  crash_loop_test:\n    agents: [looper]\n    policy:\n      verify_deadline: 5s\n      backoff: { initial: 1s, max: 3s, multiplier: 3, reset_after: 10m }\n",
    );
    let marker = dir.path().join("crash-marker");
    let port = free_port();
    let (hook, bodies) = webhook_receiver();
    // Three rungs of the ladder (the supervisor's restart and reset, given to every supervised
    // target, and its recreate): the first crash and the three failed attempts are the 4
    // crashes of the rule, which gives up before the ladder's top is reached.
    let fleet = format!(
        "targets:\n{}    actions:\n      recreate: {{ supervisor: true }}\n",
        agent(
            "looper",
            port,
            &format!(", --crash-marker, \"{}\"", marker.display())
        )
    );
    let d = Daemon::start_with(
        dir.path(),
        &fleet,
        &policies,
        &["--webhook", &format!("http://127.0.0.1:{hook}/hook")],
    );
    d.wait_healthy(&["looper"]);
    // From now on every start of the agent fails at once.
    std::fs::write(&marker, "").unwrap();
    let watch = Watch::start(d.port, "looper");
    let _ = http("POST", port, "/fault/crash", None, "");
    let escalated = wait_for_body(
        &bodies,
        "escalation",
        "an escalation at the webhook",
        Duration::from_secs(90),
    );
    let seen = watch.finish();
    // Nothing more is tried or sent for a while.
    let acts_then = actions_for(d.port, "looper");
    std::thread::sleep(Duration::from_secs(5));
    let sent = bodies.lock().unwrap().clone();
    let escalations: Vec<&String> = sent
        .iter()
        .filter(|b| b.contains("escalation") && !b.contains("\"resolved\""))
        .collect();
    assert_eq!(escalations.len(), 1, "{sent:?}");
    assert!(
        escalations[0].contains("crash loop, medic gave up restarting it"),
        "the crash-loop rule gave up: {}",
        escalations[0]
    );
    let acts = actions_for(d.port, "looper");
    assert_eq!(
        acts.len(),
        acts_then.len(),
        "acted after giving up: {acts:?}"
    );
    assert!(
        acts.iter().all(|a| a["outcome"] == "failure"),
        "every attempt failed: {acts:?}"
    );
    // The backoff grows: each attempt starts longer after the previous one than the one
    // before it did, and so does the wait between an attempt's failure and the next one (the
    // backoff itself, without the attempts' own durations).
    let starts: Vec<u64> = acts
        .iter()
        .map(|a| a["started_at"].as_u64().unwrap())
        .collect();
    let ends: Vec<u64> = acts
        .iter()
        .zip(&starts)
        .map(|(a, s)| s + a["duration_ms"].as_u64().unwrap())
        .collect();
    let gaps: Vec<Duration> = starts
        .windows(2)
        .map(|w| Duration::from_millis(w[1] - w[0]))
        .collect();
    let waits: Vec<Duration> = ends
        .iter()
        .zip(&starts[1..])
        .map(|(e, s)| Duration::from_millis(s.saturating_sub(*e)))
        .collect();
    let strategies: Vec<&str> = acts
        .iter()
        .map(|a| a["strategy"].as_str().unwrap_or("?"))
        .collect();
    eprintln!(
        "crash loop: detected after {}, healed after - (not healable: every start fails); gave up and escalated after {:.2}s; attempts {strategies:?}, gaps between their starts {gaps:?}, waits from a failure to the next attempt {waits:?}",
        secs(seen.detected),
        escalated.as_secs_f64()
    );
    assert!(gaps.len() >= 2, "at least three attempts: {acts:?}");
    assert!(
        gaps.windows(2).all(|g| g[1] > g[0]),
        "the gaps grow: {gaps:?}"
    );
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]),
        "the backoff grows: {waits:?}"
    );
    let log = d.log();
    assert!(log.contains("escalated to a human"), "{log}");
    drop(d);
    let reasons = journaled(dir.path(), "escalated", "reason");
    assert_eq!(reasons, ["gave_up"], "the journaled escalations");
}

/// One tier whose only rule escalates a target whose liveness fails.
const ESCALATE_TIERS: &str = r#"healing_policies:
  default:
    max_restart_attempts: 3
    restart_cooldown: 1s
    scale_threshold: 0.8
    circuit_break_duration: 60s
    attempt_window: 1h
    backoff: { initial: 1s, max: 2s, multiplier: 2, reset_after: 10m }
    crash_loop: { restarts: 32, window: 1m }
    max_group_unavailable: 1.0
    auto_approve_risk: medium
    confidence_threshold: 0.1
    approval_timeout: 15m
    verify_deadline: 5s
    scaling: { tolerance: 0.1, scale_down_stabilization: 300s }
    rules:
      - { name: page, when: { failing: [liveness] }, then: escalate, confidence: 0.9 }
"#;

#[test]
fn a_dry_run_decides_an_escalation_but_pages_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies_dir(dir.path(), ESCALATE_TIERS);
    let port = free_port();
    let (hook, bodies) = webhook_receiver();
    let fleet = format!("targets:\n{}", agent("quiet", port, ""));
    let d = Daemon::start_with(
        dir.path(),
        &fleet,
        &policies,
        &[
            "--dry-run",
            "--webhook",
            &format!("http://127.0.0.1:{hook}/hook"),
        ],
    );
    d.wait_healthy(&["quiet"]);
    // The agent exits and, in a dry run, stays down: the plan is to escalate.
    let _ = http("POST", port, "/fault/crash", None, "");
    wait_for("the escalation decided", Duration::from_secs(60), || {
        d.log().contains("escalated to a human")
    });
    // The notifier would have delivered within a second or two (see the live crash-loop
    // test); nothing arrives.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        bodies.lock().unwrap().is_empty(),
        "a dry run sent {:?}",
        bodies.lock().unwrap()
    );
    let log = d.log();
    assert!(log.contains("dry run: not sent to the notifier"), "{log}");
}

#[test]
fn api_mutations_need_the_token_and_maintenance_holds_healing_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let fleet = format!("targets:\n{}", agent("maint", port, ""));
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["maint"]);
    let body = r#"{"target":"maint","duration":"5s","reason":"deploy"}"#;
    assert_eq!(
        http("POST", d.port, "/api/v1/maintenance", None, body).0,
        401
    );
    assert_eq!(
        http("POST", d.port, "/api/v1/maintenance", Some("wrong"), body).0,
        401
    );
    let (status, reply) = http(
        "POST",
        d.port,
        "/api/v1/maintenance",
        Some("s3cret-token"),
        body,
    );
    assert_eq!(status, 201, "{reply}");
    eprintln!(
        "API without a token or with a wrong one: 401 (no fault to detect); with the token: 201"
    );
    let watch = Watch::start(d.port, "maint");
    let _ = http("POST", port, "/fault/crash", None, "");
    // During maintenance: the crash is seen, nothing is done.
    std::thread::sleep(Duration::from_secs(3));
    assert!(actions_for(d.port, "maint").is_empty());
    assert_ne!(target_state(d.port, "maint"), "healthy");
    // After it ends on its own, healing resumes.
    let took = wait_for(
        "maint healed after maintenance",
        Duration::from_secs(30),
        || successes(d.port, "maint") > 0,
    );
    let seen = watch.healed(Duration::from_secs(10));
    eprintln!(
        "maintenance (window 5 s, crash inside it): {}; nothing done for 3 s, then the restart verified {took:?} after that check",
        seen.line()
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_the_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let fleet = format!("targets:\n{}", agent("steady", port, ""));
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["steady"]);
    std::fs::write(dir.path().join("fleet.yaml"), "targets:\n  - name: [oops\n").unwrap();
    d.hup();
    wait_for("the rejection in the log", Duration::from_secs(10), || {
        d.log().contains("the new configuration is invalid")
    });
    assert!(
        d.log().contains("fleet.yaml:"),
        "errors are located: {}",
        d.log()
    );
    // Still running the old config: the target is still known and healed.
    let watch = Watch::start(d.port, "steady");
    let _ = http("POST", port, "/fault/crash", None, "");
    wait_for(
        "steady healed with the old config",
        Duration::from_secs(30),
        || successes(d.port, "steady") > 0,
    );
    let seen = watch.healed(Duration::from_secs(10));
    eprintln!(
        "SIGHUP with a broken config, then a crash: {} (by the old config)",
        seen.line()
    );
}

#[test]
fn kill_9_in_the_middle_of_a_restart_neither_repeats_nor_forgets_it() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let runs = dir.path().join("runs");
    std::fs::write(&up, "").unwrap();
    // The restart takes 3 s: it records that it ran, waits, then brings the target back.
    let fleet = format!(
        "targets:\n  - name: slowfix\n    startup_delay: 100ms\n    probes:\n      liveness: {{ exec: [test, -f, \"{up}\"], every: 1s, failure_threshold: 1 }}\n    actions:\n      restart: {{ exec: [sh, -c, 'echo ran >> \"$0\"; sleep 3; touch \"$1\"', \"{runs}\", \"{up}\"], timeout: 20s }}\n",
        up = up.display(),
        runs = runs.display()
    );
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["slowfix"]);
    let watch = Watch::start(d.port, "slowfix");
    std::fs::remove_file(&up).unwrap();
    wait_for("the restart to start", Duration::from_secs(30), || {
        runs.exists()
    });
    d.kill9();
    // The restart's process group outlives medic and finishes its job.
    let d = Daemon::start(dir.path(), &fleet, &[]);
    watch.follow(d.port);
    let took = wait_for(
        "the action verified after recovery",
        Duration::from_secs(40),
        || target_state(d.port, "slowfix") == "healthy",
    );
    let seen = watch.healed(Duration::from_secs(10));
    eprintln!(
        "kill -9 of medic during a 3 s restart: {} (healthy again {took:?} after medic was started again)",
        seen.line()
    );
    std::thread::sleep(Duration::from_secs(3));
    let ran = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(ran.lines().count(), 1, "the restart ran once: {ran:?}");
    // The journal has one intent for it and its verification after the recovery.
    drop(d);
    let journal = read_journal(dir.path());
    let kinds: Vec<&str> = journal.iter().map(|r| r.entry.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "intent").count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"verified"), "{kinds:?}");
    assert!(kinds.contains(&"closed"), "{kinds:?}");
}

/// The fleet table of a dashboard's dumped DOM, checked to have one row for each of `names`.
fn fleet_table<'a>(dom: &'a str, names: &[&str]) -> &'a str {
    let start = dom.find(r#"<table id="fleet">"#).expect("fleet table");
    let end = start + dom[start..].find("</table>").expect("table end");
    let table = &dom[start..end];
    for name in names {
        assert!(
            table.contains(&format!(r#"<td class="name">{name}</td>"#)),
            "{name} missing from the fleet table:\n{table}"
        );
    }
    assert_eq!(
        table.matches("<tr data-target=").count(),
        names.len(),
        "{table}"
    );
    table
}

/// A headless Chromium screenshot of `url` in the target's `medic-dashboard/<file>`, checked
/// to be a real page's PNG; its path.
fn screenshot(bin: &Path, profile: &Path, url: &str, file: &str) -> PathBuf {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("medic-dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(file);
    let _ = std::fs::remove_file(&shot);
    let (ok, _) = run_chromium(
        bin,
        profile,
        &[format!("--screenshot={}", shot.display())],
        url,
    );
    assert!(ok, "chromium --screenshot failed");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(png.len() > 10_000, "a real page, not a blank one");
    shot
}

/// The targets `medic demo` runs (its fleet, as `crates/medic/src/cmd/demo.rs` writes it).
const DEMO_TARGETS: [&str; 7] = [
    "vectordb",
    "crewai-1",
    "crewai-2",
    "semgrep-1",
    "shellgpt-1",
    "worker-1",
    "gateway-1",
];

/// `medic demo --keep` as a child process. `--keep` waits for Ctrl-C or SIGTERM after the
/// script: either is its clean stop (daemon shut down, agents stopped, working directory
/// removed). On drop (a failed assertion) it is stopped that way, or killed when it does not
/// end in time.
struct KeptDemo(Child);

impl KeptDemo {
    /// Sends SIGTERM (what a service manager or `kill` sends) and waits (bounded) for the demo
    /// to end; its exit status, `None` when it had to be killed.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(status);
        }
        let _ = signal(self.0.id(), "-TERM");
        for _ in 0..300 {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }
}

impl Drop for KeptDemo {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[test]
fn demo_heals_every_healable_fault_escalates_the_crash_loop_and_keeps_its_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("demo.stderr");
    let mut child = Command::new(medic_bin())
        .args(["demo", "--json", "--keep", "--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut demo = KeptDemo(child);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let keep = Arc::clone(&lines);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            keep.lock().unwrap().push(line);
        }
    });
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    // The script (under 2 minutes) ends with the summary line; then the demo keeps running.
    wait_for("the demo's summary", Duration::from_secs(200), || {
        if let Ok(Some(status)) = demo.0.try_wait() {
            panic!(
                "the demo ended ({status}) before its summary:\n{}\n{}",
                lines.lock().unwrap().join("\n"),
                stderr()
            );
        }
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("\"faults\""))
    });
    let out = lines.lock().unwrap().clone();
    eprintln!("{}", stderr());
    eprintln!("{}", out.join("\n"));
    let summary: Value = serde_json::from_str(out.last().unwrap()).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["faults"], 6);
    assert_eq!(summary["escalated"], 1);
    let rows: Vec<Value> = out
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v.get("fault").is_some())
        .collect();
    let leak = rows.iter().find(|r| r["fault"] == "memory leak").unwrap();
    assert_eq!(leak["preemptive"], true, "{leak}");
    let burst = rows.iter().find(|r| r["fault"] == "error burst").unwrap();
    assert_eq!(burst["strategy"], "circuit_break", "{burst}");
    assert_eq!(burst["ok"], true, "{burst}");
    for r in &rows {
        let s = |v: &Value| {
            v.as_f64()
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}s"))
        };
        eprintln!(
            "demo {} ({}): detected after {}, healed after {}{}",
            r["fault"].as_str().unwrap_or_default(),
            r["target"].as_str().unwrap_or_default(),
            s(&r["detected_after_s"]),
            s(&r["healed_after_s"]),
            if r["escalated"] == true {
                " (escalated to a human, as expected)"
            } else {
                ""
            }
        );
    }

    // --keep: the daemon and its dashboard still run, at the URL the summary gives.
    let url = summary["dashboard"]
        .as_str()
        .expect("the dashboard URL in the summary")
        .to_owned();
    let api: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the dashboard URL");
    let targets = get_json(api, "/api/v1/targets");
    let targets = targets.as_array().expect("the kept daemon's targets");
    let mut names: Vec<&str> = targets.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    let mut expected = DEMO_TARGETS;
    expected.sort_unstable();
    assert_eq!(names, expected, "the demo's fleet");
    let pids: Vec<u64> = targets.iter().filter_map(|t| t["pid"].as_u64()).collect();
    assert!(!pids.is_empty(), "{targets:?}");

    if let Some(bin) = medic_tests::chromium::find() {
        let profile = tempfile::tempdir().unwrap();
        let (ok, dom) = run_chromium(&bin, profile.path(), &["--dump-dom".into()], &url);
        assert!(ok, "chromium --dump-dom failed");
        fleet_table(&dom, &DEMO_TARGETS);
        let shot = screenshot(&bin, profile.path(), &url, "demo.png");
        eprintln!("dashboard screenshot of the kept demo: {}", shot.display());
    } else {
        eprintln!(
            "skipping the dashboard check of the kept demo: no chromium, chromium-browser or google-chrome on PATH"
        );
    }

    // SIGTERM ends the kept demo cleanly: exit 0 (every fault dealt with), the API gone, the
    // agents stopped.
    let status = demo.stop().expect("the demo ended on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", stderr());
    assert_eq!(
        http("GET", api, "/health", None, "").0,
        0,
        "the API is down"
    );
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "agent {pid} still runs: {stat}"
        );
    }
}

/// The resident memory of the agent on `port` in MiB, from its metrics (0 when unknown).
fn rss_mib(port: u16) -> f64 {
    let (_, body) = http("GET", port, "/metrics", None, "");
    body.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0.0, |b| b / 1048576.0)
}

#[test]
fn heal_preemptive_recycles_only_the_leaking_agent_and_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (leaky, calm) = (free_port(), free_port());
    let _a = Agent::leaking(leaky);
    let _b = Agent::start(calm, &[]);
    // Both agents' "restart" is their admin endpoint that drops the leaked memory (the test
    // does not own a process manager); what is checked is which target medic acts on.
    for (name, agent) in [("leaky", &_a), ("calm", &_b)] {
        agent.write_pid(&dir.path().join(format!("{name}.pid")));
    }
    let target = |name: &str, port: u16| {
        leak_healed_agent(name, port, &dir.path().join(format!("{name}.pid")))
    };
    std::fs::write(
        dir.path().join("fleet.yaml"),
        format!(
            "targets:\n{}{}",
            target("leaky", leaky),
            target("calm", calm)
        ),
    )
    .unwrap();

    let (code, report) = heal(dir.path(), &["--dry-run"]);
    assert_eq!(code, 0, "{report}");
    let lines = report["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{report}");
    assert_eq!(lines[0]["target"], "leaky");
    assert_eq!(lines[0]["action"], "restart");
    assert_eq!(lines[0]["outcome"], "planned (dry run)");
    let before = rss_mib(leaky);
    std::thread::sleep(Duration::from_secs(1));
    assert!(rss_mib(leaky) > before, "the dry run left the leak alone");
    let journal = read_journal(dir.path());
    assert!(journal.is_empty(), "a dry run writes nothing: {journal:?}");

    let (code, report) = heal(dir.path(), &[]);
    assert_eq!(code, 0, "{report}");
    let lines = report["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{report}");
    assert_eq!(lines[0]["target"], "leaky");
    assert_eq!(lines[0]["outcome"], "success", "{report}");
    let ratio = lines[0]["memory_ratio"].as_f64().unwrap();
    eprintln!(
        "heal --preemptive: acted at {:.0}% of the limit",
        ratio * 100.0
    );
    assert!(ratio < 1.0);
    assert!(
        rss_mib(leaky) < 300.0 * ratio,
        "the leaked memory was dropped"
    );
    // The real run journaled the action the way the daemon does: every row names the target
    // and the action's rows carry its idempotency key.
    let journal = read_journal(dir.path());
    let kinds: Vec<&str> = journal.iter().map(|r| r.entry.kind.as_str()).collect();
    for kind in ["intent", "acted", "verified", "closed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let key = journal
        .iter()
        .find(|r| r.entry.kind == "intent")
        .and_then(|r| r.entry.idempotency_key.clone())
        .unwrap();
    assert!(key.starts_with("leaky/a"), "{key}");
    for r in &journal {
        assert_eq!(r.entry.target.as_str(), "leaky", "{r:?}");
        if ["intent", "acted", "verified", "closed"].contains(&r.entry.kind.as_str()) {
            assert_eq!(
                r.entry.idempotency_key.as_deref(),
                Some(key.as_str()),
                "{r:?}"
            );
        }
    }
}

/// The shipped policies plus a tier for targets named `gateway…` whose circuit stays open 3 s
/// (the shipped 60 s would make a minute-long test).
fn policies_with_a_short_circuit(dir: &Path) -> PathBuf {
    policies_with(
        dir,
        "\n  short_circuit:\n    agents: [gateway]\n    policy:\n      circuit_break_duration: 3s\n",
    )
}

/// The breaker state of a target as the API shows it (`""` while it was never opened).
fn circuit(port: u16, name: &str) -> (String, u64) {
    let t = get_json(port, &format!("/api/v1/targets/{name}"));
    (
        t["circuit"]["breaker"]["state"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        t["circuit"]["opened"].as_u64().unwrap_or(0),
    )
}

#[test]
fn error_burst_opens_the_circuit_a_failed_half_open_probe_reopens_it_and_a_passing_one_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies_with_a_short_circuit(dir.path());
    let port = free_port();
    // Liveness is the supervised process (an error burst is not a dead process); readiness
    // asks /health, which fails while the agent's requests fail: the half-open probe.
    let base = format!("http://127.0.0.1:{port}");
    let fleet = format!(
        "targets:\n  - name: gateway\n    supervise: {{ command: [\"{bin}\", demo-agent, --port, \"{port}\", --name, gateway, --load-rps, \"10\"] }}\n    startup_delay: 100ms\n    probes:\n      readiness: {{ http: {{ url: \"{base}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 2 }}\n    metrics: {{ url: \"{base}/metrics\", every: 1s }}\n    actions:\n      circuit_break:\n        http: {{ method: POST, url: \"{base}/admin/circuit/open\" }}\n        close: {{ http: {{ method: POST, url: \"{base}/admin/circuit/close\" }} }}\n",
        bin = medic_bin()
    );
    let d = Daemon::start_with(dir.path(), &fleet, &policies, &[]);
    d.wait_healthy(&["gateway"]);
    assert_eq!(circuit(d.port, "gateway").0, "", "never opened yet");

    #[allow(clippy::disallowed_methods)] // measuring a real process from outside
    let t0 = Instant::now();
    assert_eq!(http("POST", port, "/fault/errors", None, "").0, 200);
    let mut detected = None;
    wait_for("the circuit open", Duration::from_secs(30), || {
        if detected.is_none() && target_state(d.port, "gateway") != "healthy" {
            detected = Some(t0.elapsed());
        }
        circuit(d.port, "gateway").0 == "open"
    });
    let opened = t0.elapsed();
    // The agent really stopped taking work: /work is refused, not served.
    assert_eq!(http("GET", port, "/admin/circuit", None, "").1, "open\n");
    assert_eq!(http("GET", port, "/work", None, "").0, 503);
    let acts = actions_for(d.port, "gateway");
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0]["strategy"], "circuit_break", "{acts:?}");

    // The fault is still there at the first half-open probe: it fails and the circuit opens
    // again.
    wait_for("the circuit re-opened", Duration::from_secs(30), || {
        circuit(d.port, "gateway").1 >= 2
    });
    let reopened = t0.elapsed();
    assert_eq!(http("GET", port, "/admin/circuit", None, "").1, "open\n");

    // The cause goes away; the next half-open probe passes and the circuit closes: the
    // close action lets work flow again.
    assert_eq!(http("POST", port, "/fault/clear", None, "").0, 200);
    wait_for("the circuit closed", Duration::from_secs(30), || {
        circuit(d.port, "gateway").0 == "closed"
    });
    let closed = t0.elapsed();
    wait_for("work served again", Duration::from_secs(10), || {
        http("GET", port, "/work", None, "").0 == 200
    });
    assert_eq!(http("GET", port, "/admin/circuit", None, "").1, "closed\n");
    let acts = actions_for(d.port, "gateway");
    assert_eq!(
        acts.len(),
        1,
        "one circuit-break action, no restart: {acts:?}"
    );
    assert_eq!(acts[0]["outcome"], "success", "{acts:?}");
    eprintln!(
        "error burst: detected {:?}, circuit open {opened:?}, re-opened after a failed half-open probe {reopened:?}, closed {closed:?} after the injection (fault cleared at about {reopened:?}; open period 3 s)",
        detected.unwrap_or_default()
    );
    drop(d);
    let states: Vec<String> = read_journal(dir.path())
        .iter()
        .filter(|r| r.entry.kind == "breaker")
        .map(|r| {
            r.entry.payload["state"]["state"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        states,
        ["open", "half_open", "open", "half_open", "closed"],
        "the journaled breaker transitions"
    );
}

#[test]
fn a_dependency_down_is_healed_first_and_its_dependent_is_not_acted_on() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let dependent = format!(
        "{}      readiness: {{ http: {{ url: \"http://127.0.0.1:{pb}/ready\", timeout: 500ms }}, every: 1s, failure_threshold: 2 }}\n    depends_on: [db]\n",
        agent(
            "app",
            pb,
            &format!(", --depends-on, \"http://127.0.0.1:{pa}/health\"")
        )
    );
    let fleet = format!("targets:\n{}{dependent}", agent("db", pa, ""));
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["db", "app"]);
    let old = pid_of(d.port, "db").unwrap();
    let watch = Watch::start(d.port, "db");
    // A hang, not a crash: it lasts the liveness threshold (3 × 1 s), long enough for the
    // dependent's readiness to fail too.
    signal(old, "-STOP");
    #[allow(clippy::disallowed_methods)] // measuring a real process from outside
    let t0 = Instant::now();
    let mut app_unready = None;
    wait_for("db restarted", Duration::from_secs(40), || {
        if app_unready.is_none() && target_state(d.port, "app") != "healthy" {
            app_unready = Some(t0.elapsed());
        }
        pid_of(d.port, "db").is_some_and(|p| p != old) && successes(d.port, "db") > 0
    });
    let db_healed = t0.elapsed();
    let app_unready = app_unready.expect("the dependent's readiness failed while db was down");
    wait_for("app ready again", Duration::from_secs(20), || {
        target_state(d.port, "app") == "healthy"
    });
    let app_ready = t0.elapsed();
    // A few more probe rounds: still nothing done to the dependent.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        actions_for(d.port, "app").is_empty(),
        "the dependent was acted on: {:?}",
        actions_for(d.port, "app")
    );
    assert_eq!(target_state(d.port, "app"), "healthy");
    let db = actions_for(d.port, "db");
    assert_eq!(db.len(), 1, "{db:?}");
    assert_eq!(db[0]["strategy"], "restart");
    let seen = watch.healed(Duration::from_secs(10));
    eprintln!("dependency down (SIGSTOP of db): db {}", seen.line());
    eprintln!(
        "dependency down (SIGSTOP): app unready {app_unready:?}, db healed (restart verified) {db_healed:?}, app ready again {app_ready:?} after the stop; app actions: none"
    );
}

#[test]
fn a_circuit_closed_in_the_journal_is_closed_again_when_medic_starts() {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies_with_a_short_circuit(dir.path());
    let port = free_port();
    // Not supervised: the agent outlives a kill -9 of medic, as a real service would.
    let _agent = Agent(
        Command::new(medic_bin())
            .args([
                "demo-agent",
                "--port",
                &port.to_string(),
                "--name",
                "gateway-b",
            ])
            .args(["--load-rps", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the agent", Duration::from_secs(20), || {
        http("GET", port, "/health", None, "").0 == 200
    });
    let base = format!("http://127.0.0.1:{port}");
    let fleet = format!(
        "targets:\n  - name: gateway-b\n    startup_delay: 100ms\n    probes:\n      readiness: {{ http: {{ url: \"{base}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 2 }}\n    metrics: {{ url: \"{base}/metrics\", every: 1s }}\n    actions:\n      circuit_break:\n        http: {{ method: POST, url: \"{base}/admin/circuit/open\" }}\n        close: {{ http: {{ method: POST, url: \"{base}/admin/circuit/close\" }} }}\n"
    );
    let d = Daemon::start_with(dir.path(), &fleet, &policies, &[]);
    d.wait_healthy(&["gateway-b"]);
    assert_eq!(http("POST", port, "/fault/errors", None, "").0, 200);
    wait_for("the circuit open", Duration::from_secs(30), || {
        circuit(d.port, "gateway-b").0 == "open"
    });
    assert_eq!(http("POST", port, "/fault/clear", None, "").0, 200);
    wait_for("the circuit closed", Duration::from_secs(30), || {
        circuit(d.port, "gateway-b").0 == "closed"
            && http("GET", port, "/admin/circuit", None, "").1 == "closed\n"
    });
    // As if medic had died between journaling the close and running the close action.
    assert_eq!(http("POST", port, "/admin/circuit/open", None, "").0, 200);
    d.kill9();
    let d = Daemon::start_with(dir.path(), &fleet, &policies, &[]);
    let took = wait_for(
        "the circuit closed again after the restart",
        Duration::from_secs(20),
        || http("GET", port, "/admin/circuit", None, "").1 == "closed\n",
    );
    eprintln!("circuit re-closed {took:?} after medic answered again");
    assert!(d.log().contains("circuit close action done"), "{}", d.log());
    assert!(
        actions_for(d.port, "gateway-b").is_empty(),
        "nothing else was done after the restart"
    );
}

#[test]
fn the_dashboard_of_a_running_daemon_shows_its_fleet_in_headless_chromium() {
    let Some(bin) = medic_tests::chromium::find() else {
        eprintln!("skipping: no chromium, chromium-browser or google-chrome on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, dead) = (free_port(), free_port(), free_port());
    // Two supervised agents and one target nothing listens for (unhealthy, never healed: it
    // has no supervisor and no action, so it stays red on the page).
    let fleet = format!(
        "targets:\n{}{}  - name: ghost\n    probes:\n      liveness: {{ http: {{ url: \"http://127.0.0.1:{dead}/health\", timeout: 300ms }}, every: 1s, failure_threshold: 2 }}\n",
        agent("alpha", p1, ""),
        agent("beta", p2, ""),
    );
    let d = Daemon::start(dir.path(), &fleet, &[]);
    wait_for(
        "alpha and beta healthy, ghost not",
        Duration::from_secs(30),
        || {
            target_state(d.port, "alpha") == "healthy"
                && target_state(d.port, "beta") == "healthy"
                && target_state(d.port, "ghost") == "unhealthy"
        },
    );
    let url = format!("http://127.0.0.1:{}/", d.port);
    let profile = tempfile::tempdir().unwrap();
    let (ok, dom) = run_chromium(&bin, profile.path(), &["--dump-dom".into()], &url);
    assert!(ok, "chromium --dump-dom failed");
    // The rows exist only if the page's script fetched the fleet from the daemon and drew it.
    let table = fleet_table(&dom, &["alpha", "beta", "ghost"]);
    assert!(table.contains(r#"class="pill unhealthy""#), "state colours");
    assert!(table.contains(r#"class="pill healthy""#), "state colours");
    assert!(dom.contains(">live · refreshed"), "status line says live");

    let shot = screenshot(&bin, profile.path(), &url, "daemon.png");
    eprintln!(
        "dashboard screenshot of the running daemon: {}",
        shot.display()
    );
}

#[test]
fn a_growing_queue_scales_the_agent_out_from_its_own_metrics() {
    // The daemon's utilisation is the agent's queue gauge over `max_queue_depth`: 20 requests
    // a second that get 500 ms slower every second overlap into a queue, and at 80 % of the
    // limit (the shipped scale_threshold) the `saturated` rule scales out. The scale action
    // here is the agent's /fault/clear (standing in for an autoscaler's webhook: the load
    // is relieved), so the queue drains and the scale is verified.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let fleet = format!(
        "targets:\n  - name: queue\n    supervise: {{ command: [\"{bin}\", demo-agent, --port, \"{port}\", --name, queue, --load-rps, \"20\", --slow-ms-per-s, \"500\"] }}\n    startup_delay: 100ms\n    replicas: {{ initial: 1, min: 1, max: 4 }}\n    probes:\n      liveness: {{ http: {{ url: \"{base}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 3 }}\n      performance: {{ max_queue_depth: 10 }}\n    metrics: {{ url: \"{base}/metrics\", every: 1s }}\n    actions:\n      scale: {{ http: {{ method: POST, url: \"{base}/fault/clear\" }} }}\n",
        bin = medic_bin()
    );
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["queue"]);
    assert!(actions_for(d.port, "queue").is_empty());
    assert_eq!(http("POST", port, "/fault/slow", None, "").0, 200);
    let took = wait_for("a verified scale", Duration::from_secs(60), || {
        actions_for(d.port, "queue")
            .iter()
            .any(|a| a["strategy"] == "scale" && a["outcome"] == "success")
    });
    eprintln!("slow queue: scaled out and verified {took:?} after the fault");
    let acts = actions_for(d.port, "queue");
    assert_eq!(acts[0]["strategy"], "scale", "{acts:?}");
    let reason = acts[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("saturated"), "{reason}");
    assert!(
        acts.iter().all(|a| a["strategy"] == "scale"),
        "only scale: {acts:?}"
    );
}

#[test]
fn a_lone_hung_instance_of_a_group_is_rerouted_first() {
    // Three instances of one group; one hangs (SIGSTOP) while its peers serve. The daemon's
    // group health (2 of 3 healthy) makes it the group's lone bad instance: the shipped
    // `lone_bad_instance` rule takes it out of traffic rather than restarting it first.
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let member = |k: usize| {
        let name = format!("pool-{k}");
        format!(
            "{}    group: pool\n    actions:\n      reroute: {{ http: {{ method: POST, url: \"http://127.0.0.1:{lb}/health\" }} }}\n",
            agent(&name, ports[k], ""),
            // the load balancer's "eject" call: a peer's answering endpoint stands in for it
            lb = ports[(k + 1) % 3],
        )
    };
    let fleet = format!("targets:\n{}{}{}", member(0), member(1), member(2));
    let d = Daemon::start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["pool-0", "pool-1", "pool-2"]);
    let pid = pid_of(d.port, "pool-0").unwrap();
    signal(pid, "-STOP");
    wait_for("an action on pool-0", Duration::from_secs(30), || {
        !actions_for(d.port, "pool-0").is_empty()
    });
    let acts = actions_for(d.port, "pool-0");
    assert_eq!(acts[0]["strategy"], "reroute", "{acts:?}");
    let reason = acts[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("lone_bad_instance"), "{reason}");
    for k in 1..3 {
        assert!(actions_for(d.port, &format!("pool-{k}")).is_empty());
    }
    signal(pid, "-CONT");
}
