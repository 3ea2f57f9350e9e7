//! End-to-end checks of daemon fixes (issue 8 review): `medic run` as a child process on
//! loopback, with real probes and actions (`true`, `sh`), the real HTTP API and the real
//! SQLite store. Waits are for states, bounded in time; nothing asserts a duration.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    Daemon, TOKEN, actions_for, get_json, http, incidents_of, medic_bin, open_incidents,
    open_store, quick_policies, successes, target_state, wait_for,
};
use serde_json::Value;

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

/// The one rule of the quick tier the fleets here run under: liveness failing → restart.
const RULES: &str = r#"      - { name: unresponsive, when: { failing: [liveness] }, then: restart, confidence: 0.9 }
"#;

/// `medic run` on `fleet` with that tier and `extra` arguments.
fn start(dir: &Path, fleet: &str, extra: &[&str]) -> Daemon {
    Daemon::start_with(dir, fleet, &quick_policies(dir, "medium", RULES), extra)
}

/// An Alertmanager v4 webhook body with one alert for `web`.
fn alert_payload(status: &str, starts_at: &str) -> String {
    format!(
        r#"{{"version":"4","status":"{status}","receiver":"medic","groupKey":"{{}}:{{alertname=\"ServiceDown\"}}","alerts":[{{"status":"{status}","labels":{{"alertname":"ServiceDown","target":"web","severity":"critical"}},"annotations":{{"summary":"web is down"}},"startsAt":"{starts_at}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"5e1f00d5e1f00d00"}}],"groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://127.0.0.1:9093"}}"#
    )
}

/// Posts that alert to the daemon's Alertmanager endpoint; checks it matched `web`.
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

#[test]
fn a_firing_alert_heals_once_and_its_resends_open_no_new_incident() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let fleet = format!(
        "targets:\n  - name: web\n    startup_delay: 1ms\n    probes:\n      liveness: {{ exec: [\"true\"], every: 500ms, failure_threshold: 1 }}\n    actions:\n      restart: {{ exec: [sh, -c, 'echo restarted >> \"$0\"', \"{runs}\"] }}\n",
        runs = runs.display()
    );
    let d = start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["web"]);

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
    let all = incidents_of(dir.path(), "web");
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
    let d = start(dir.path(), &fleet, &[]);
    d.wait_healthy(&["noisy"]);
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
    let all = incidents_of(dir.path(), "noisy");
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
    let d = start(
        dir.path(),
        &format!("targets:\n  - name: svc\n{probe}"),
        &[],
    );
    d.wait_healthy(&["svc"]);
    // The new fleet puts `web` first: svc's index changes.
    std::fs::write(
        dir.path().join("fleet.yaml"),
        format!("targets:\n  - name: web\n{probe}  - name: svc\n{probe}"),
    )
    .unwrap();
    d.hup();
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
        let mut store = open_store(dir.path());
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
    let d = start(dir.path(), fleet, &["--retention", "10d"]);
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

    let store = open_store(dir.path());
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
