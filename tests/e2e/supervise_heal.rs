//! End-to-end: supervised scale on the next free ports, `medic heal --preemptive` (dry runs
//! that write nothing, reasons and exit codes, action ids unique next to a running daemon)
//! and `medic demo` finding its models next to a moved binary. Real processes on loopback;
//! every test is bounded in time, cleans up after itself, and asserts no timings.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Agent, Daemon, actions_for, free_port, heal, http, journal_read_only, leak_healed_agent,
    medic_bin, repo, shipped_policies, wait_for,
};
use serde_json::Value;

/// The daemons here log JSON: the tests read the supervisor's events from it.
const JSON_LOG: &[&str] = &["--log-format", "json"];

// Readers of the JSON log of the daemons started here.
impl Daemon {
    /// The `fields` of every JSON log line whose message is `message`.
    fn events(&self, message: &str) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .map(|v| v["fields"].clone())
            .collect()
    }

    /// The port instance `instance` of a supervised target was started on (`port=Some(N)`).
    fn instance_port(&self, target: &str, instance: u64) -> Option<u16> {
        self.events("supervised process started")
            .into_iter()
            .filter(|f| f["target"] == target && f["instance"] == instance)
            .filter_map(|f| {
                f["port"]
                    .as_str()?
                    .strip_prefix("Some(")?
                    .strip_suffix(')')?
                    .parse()
                    .ok()
            })
            .next_back()
    }
}

#[test]
fn demo_finds_the_models_next_to_a_moved_binary() {
    let shipped = repo().join("models");
    if !shipped.join("failure_lstm.onnx").is_file() {
        eprintln!("skipping: no shipped model in {}", shipped.display());
        return;
    }
    // The binary and its models copied elsewhere; the checkout it was built from still
    // exists, so only the models next to the binary tell the two places apart.
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(bin_dir.join("models")).unwrap();
    let exe = bin_dir.join("medic");
    std::fs::copy(medic_bin(), &exe).unwrap();
    for f in ["failure_lstm.onnx", "failure_lstm.card.json"] {
        std::fs::copy(shipped.join(f), bin_dir.join("models").join(f)).unwrap();
    }
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new(&exe)
        .args(["demo", "--timeout", "0"])
        .current_dir(&work)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("medic demo: models"))
        .unwrap_or_else(|| panic!("no models line:\n{stderr}"));
    let expected = bin_dir.join("models").join("failure_lstm.onnx");
    assert!(
        line.contains(&expected.display().to_string()),
        "expected the models next to the binary ({}), found: {line}",
        expected.display()
    );
}

/// Every file of `dir` with its contents (empty when `dir` is missing).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A leaking agent healed by a first run is leaking again: the next runs (dry and live) leave
/// it to the restart cooldown and say so; the live one exits 1. Dry runs write nothing.
#[test]
fn heal_dry_runs_write_nothing_and_a_target_left_in_cooldown_is_explained_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let leaky = free_port();
    let agent = Agent::leaking(leaky);
    let pid_file = dir.path().join("leaky.pid");
    agent.write_pid(&pid_file);
    // "restart" is the agent's admin endpoint that drops the leaked memory and ends the leak.
    std::fs::write(
        dir.path().join("fleet.yaml"),
        format!("targets:\n{}", leak_healed_agent("leaky", leaky, &pid_file)),
    )
    .unwrap();

    // A dry run on a fresh data directory plans and creates nothing.
    let (code, report) = heal(dir.path(), &["--dry-run"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["lines"][0]["outcome"], "planned (dry run)",
        "{report}"
    );
    assert!(!data.exists(), "a dry run created {}", data.display());

    // The live run heals it, and says why it acted.
    let (code, report) = heal(dir.path(), &[]);
    assert_eq!(code, 0, "{report}");
    let line = &report["lines"][0];
    assert_eq!(line["outcome"], "success", "{report}");
    assert!(
        line["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{report}"
    );

    // Leaking again, within the restart cooldown (300 s in the shipped policies).
    assert_eq!(http("POST", leaky, "/fault/leak", None, "").0, 200);
    let before = snapshot(&data);
    assert!(!before.is_empty());
    let (code, report) = heal(dir.path(), &["--dry-run"]);
    assert_eq!(code, 0, "a dry run only plans: {report}");
    let line = &report["lines"][0];
    assert_eq!(line["outcome"], "not acted", "{report}");
    assert!(
        line["reason"].as_str().unwrap_or("").contains("cooldown"),
        "the dry run read the journal: {report}"
    );
    let after = snapshot(&data);
    let names = |s: &[(String, Vec<u8>)]| s.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "files of the data directory");
    assert!(after == before, "a dry run changed the data directory");

    let (code, report) = heal(dir.path(), &[]);
    let line = &report["lines"][0];
    assert_eq!(line["target"], "leaky", "{report}");
    assert_eq!(line["outcome"], "not acted", "{report}");
    assert!(line["action"].is_null(), "{report}");
    assert!(
        line["reason"].as_str().unwrap_or("").contains("cooldown"),
        "{report}"
    );
    assert_eq!(
        code, 1,
        "a target forecast to fail was not healed: {report}"
    );
    let out = Command::new(medic_bin())
        .args(["heal", "--preemptive", "--dry-run", "--fleet"])
        .arg(dir.path().join("fleet.yaml"))
        .arg("--policies")
        .arg(shipped_policies())
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("why: cooldown"),
        "the text report says why: {text}"
    );
}

/// A supervised target whose command takes `{port}`, based at `base`, scaled out by the
/// supervisor when its queue grows (the agent's own load, made slower and slower).
fn pool_fleet(base: u16, extra: &str) -> String {
    let url = format!("http://127.0.0.1:{base}");
    format!(
        "targets:\n  - name: pool\n    supervise:\n      command: [\"{bin}\", demo-agent, --port, \"{{port}}\", --name, pool, --load-rps, \"20\", --slow-ms-per-s, \"500\"{extra}]\n      port: {base}\n    startup_delay: 100ms\n    replicas: {{ initial: 1, min: 1, max: 3 }}\n    probes:\n      liveness: {{ http: {{ url: \"{url}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 3 }}\n      readiness: {{ http: {{ url: \"{url}/ready\", timeout: 500ms }}, every: 1s, failure_threshold: 3 }}\n      performance: {{ max_queue_depth: 10 }}\n    metrics: {{ url: \"{url}/metrics\", every: 1s }}\n    actions:\n      scale: {{ supervisor: true }}\n",
        bin = medic_bin()
    )
}

/// The first scale action of `pool`, once it is closed.
fn first_scale(port: u16) -> Option<Value> {
    actions_for(port, "pool")
        .into_iter()
        // Closed (verified or failed) once it has a duration.
        .find(|a| a["strategy"] == "scale" && !a["duration_ms"].is_null())
}

#[test]
fn a_supervised_scale_starts_the_new_instance_on_the_next_free_port_and_verifies_it_and_medic_restarted_runs_it_again()
 {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port();
    let d = Daemon::start(dir.path(), &pool_fleet(base, ""), JSON_LOG);
    d.wait_healthy(&["pool"]);
    assert_eq!(d.instance_port("pool", 0), Some(base), "{}", d.log());
    assert_eq!(http("POST", base, "/fault/slow", None, "").0, 200);
    let took = wait_for("the first scale", Duration::from_secs(60), || {
        first_scale(d.port).is_some()
    });
    let scale = first_scale(d.port).unwrap();
    eprintln!("slow queue: scale decided and verified {took:?} after the fault: {scale}");
    assert_eq!(scale["outcome"], "success", "{scale}\n{}", d.log());
    let port = d
        .instance_port("pool", 1)
        .unwrap_or_else(|| panic!("no instance 1 started:\n{}", d.log()));
    assert!(port > base, "instance 1 on {port}, slot 0 on {base}");
    assert_eq!(
        http("GET", port, "/health", None, "").0,
        200,
        "instance 1 answers"
    );

    // medic stops (and its agents with it) and starts again on the same data: the engine
    // recovers 2 replicas from the journal, and the supervisor runs that many again, not
    // `replicas.initial`.
    d.stop();
    let d = Daemon::start(dir.path(), &pool_fleet(base, ""), JSON_LOG);
    d.wait_healthy(&["pool"]);
    let port = d.instance_port("pool", 1).unwrap_or_else(|| {
        panic!(
            "instance 1 not started again after a restart of medic:\n{}",
            d.log()
        )
    });
    wait_for(
        "instance 1 answers after the restart",
        Duration::from_secs(20),
        || http("GET", port, "/health", None, "").0 == 200,
    );
}

#[test]
fn a_supervised_scale_whose_new_instance_exits_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port();
    let marker = dir.path().join("broken");
    let extra = format!(", --crash-marker, \"{}\"", marker.display());
    let d = Daemon::start(dir.path(), &pool_fleet(base, &extra), JSON_LOG);
    d.wait_healthy(&["pool"]);
    // From now on every new instance exits at start-up (exit status 1); slot 0 runs on.
    std::fs::write(&marker, "").unwrap();
    assert_eq!(http("POST", base, "/fault/slow", None, "").0, 200);
    wait_for("the first scale", Duration::from_secs(60), || {
        first_scale(d.port).is_some()
    });
    let scale = first_scale(d.port).unwrap();
    assert_eq!(scale["outcome"], "failure", "{scale}\n{}", d.log());
    // The journal keeps why: the verification names the instance that is gone.
    let journal = journal_read_only(dir.path());
    let verified: Vec<String> = journal
        .into_iter()
        .filter(|r| r.entry.kind == "verified")
        .map(|r| r.entry.payload.to_string())
        .collect();
    assert!(
        verified
            .iter()
            .any(|p| p.contains("supervised instance 1 (slot 1 of ")
                && p.contains("is not running: exit code 1")),
        "{verified:?}"
    );
}

/// A daemon and a `medic heal` run share one data directory: the heal run acts first (on its
/// own fleet's leaking agent), then the daemon acts on a crash. Each numbers its actions in
/// its own run's range, so the journal never holds one id for two actions.
#[test]
fn a_daemon_and_a_heal_run_sharing_a_journal_never_issue_the_same_action_id() {
    let dir = tempfile::tempdir().unwrap();
    let heal_dir = dir.path().join("heal");
    std::fs::create_dir_all(&heal_dir).unwrap();
    std::os::unix::fs::symlink(dir.path().join("data"), heal_dir.join("data")).unwrap();
    let crashy = free_port();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "targets:\n  - name: crashy\n    supervise: {{ command: [\"{bin}\", demo-agent, --port, \"{{port}}\", --name, crashy, --load-rps, \"0\"], port: {crashy} }}\n    startup_delay: 100ms\n    probes:\n      liveness: {{ http: {{ url: \"http://127.0.0.1:{crashy}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 3 }}\n",
            bin = medic_bin()
        ),
        JSON_LOG,
    );
    d.wait_healthy(&["crashy"]);

    // The heal run: its own fleet, the daemon's store.
    let leaky = free_port();
    let agent = Agent::leaking(leaky);
    let pid_file = heal_dir.join("leaky.pid");
    agent.write_pid(&pid_file);
    std::fs::write(
        heal_dir.join("fleet.yaml"),
        format!("targets:\n{}", leak_healed_agent("leaky", leaky, &pid_file)),
    )
    .unwrap();
    let (code, report) = heal(&heal_dir, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["lines"][0]["outcome"], "success", "{report}");

    // Then the daemon acts.
    let _ = http("POST", crashy, "/fault/crash", None, "");
    wait_for("crashy restarted", Duration::from_secs(30), || {
        actions_for(d.port, "crashy")
            .iter()
            .any(|a| !a["duration_ms"].is_null())
    });
    let journal = journal_read_only(dir.path());
    let mut target_of: std::collections::BTreeMap<u64, String> = Default::default();
    let mut intents = Vec::new();
    for r in journal {
        let Some(id) = r.entry.payload["action"].as_u64() else {
            continue;
        };
        if r.entry.kind == "intent" {
            intents.push((id, r.entry.target.to_string()));
        }
        let t = target_of
            .entry(id)
            .or_insert_with(|| r.entry.target.to_string());
        assert_eq!(
            *t,
            r.entry.target.as_str(),
            "action {id} is journaled for two targets"
        );
    }
    eprintln!("intents: {intents:?}");
    assert!(intents.iter().any(|(_, t)| t == "leaky"), "{intents:?}");
    assert!(intents.iter().any(|(_, t)| t == "crashy"), "{intents:?}");
    let mut ids: Vec<u64> = intents.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), intents.len(), "an id issued twice: {intents:?}");
}

/// A heal run started while the daemon's restart is still running leaves that action to the
/// daemon: it neither verifies nor journals it (it used to verify it and journal a second
/// verification next to the daemon's), and does not wait for it.
#[test]
fn a_heal_run_leaves_the_daemons_action_in_flight_to_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    std::fs::write(&up, "").unwrap();
    // The restart takes a few seconds, then brings the target back.
    let fleet = format!(
        "targets:\n  - name: slowfix\n    startup_delay: 100ms\n    probes:\n      liveness: {{ exec: [test, -f, \"{up}\"], every: 1s, failure_threshold: 1 }}\n    actions:\n      restart: {{ exec: [sh, -c, 'sleep 6; touch \"$0\"', \"{up}\"], timeout: 20s }}\n",
        up = up.display()
    );
    let d = Daemon::start(dir.path(), &fleet, JSON_LOG);
    d.wait_healthy(&["slowfix"]);
    std::fs::remove_file(&up).unwrap();
    wait_for("the daemon's restart", Duration::from_secs(30), || {
        !actions_for(d.port, "slowfix").is_empty()
    });
    let (code, report) = heal(dir.path(), &["--rounds", "1"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["lines"], serde_json::json!([]), "{report}");
    wait_for(
        "the daemon's restart closed",
        Duration::from_secs(40),
        || {
            actions_for(d.port, "slowfix")
                .iter()
                .any(|a| !a["duration_ms"].is_null())
        },
    );
    let journal = journal_read_only(dir.path());
    let kinds: Vec<String> = journal.into_iter().map(|r| r.entry.kind).collect();
    for kind in ["intent", "acted", "verified", "closed"] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            1,
            "one {kind} for the one action: {kinds:?}"
        );
    }
}

#[test]
fn a_supervised_target_starts_with_its_initial_replicas_on_the_next_free_ports() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port();
    let fleet = pool_fleet(base, "").replace("initial: 1", "initial: 2");
    let d = Daemon::start(dir.path(), &fleet, JSON_LOG);
    d.wait_healthy(&["pool"]);
    assert_eq!(d.instance_port("pool", 0), Some(base));
    let port = d
        .instance_port("pool", 1)
        .unwrap_or_else(|| panic!("no second instance:\n{}", d.log()));
    assert!(port > base, "instance 1 on {port}, slot 0 on {base}");
    wait_for("instance 1 answers", Duration::from_secs(20), || {
        http("GET", port, "/health", None, "").0 == 200
    });
}
