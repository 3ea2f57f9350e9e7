//! End-to-end checks of diagnosis in the daemon: `medic run` as a child process on loopback,
//! supervising real processes that print a real configuration error and exit, with real
//! actions (`sh`), the real HTTP API and the real SQLite store. The diagnosis made from the
//! process's captured output decides the plan (the shipped `config_error` and
//! `config_error_unrepaired` rules). Waits are for states, bounded in time; nothing asserts
//! a duration.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    Daemon, actions_for, get_json, incident_status, incidents_of, journaled, medic_bin,
    quick_policies, run_chromium, wait_for, wait_for_body, webhook_receiver,
};
use serde_json::Value;

/// What the supervised process prints before it exits 1 (`medic diagnose --text` calls it
/// configuration, pattern `invalid_configuration`).
const CONFIG_ERROR: &str =
    r#"Error: invalid configuration: unknown key "listen_adress" in /etc/app/config.yaml"#;

/// The shipped default tier's rules that matter here (configuration → repair, else
/// escalate; liveness failing → restart), with approval thresholds (confidence, risk) that
/// let the repair run without a human's approval, no real cooldown or backoff, short
/// verification (risk `high` in [`quick_policies`]).
const RULES: &str = r#"      - { name: config_error, when: { diagnosis: [configuration] }, then: repair, confidence: 0.8 }
      - { name: config_error_unrepaired, when: { diagnosis: [configuration] }, then: escalate, confidence: 0.9 }
      - { name: unresponsive, when: { failing: [liveness] }, then: restart, confidence: 0.95 }
"#;

/// `medic run` on `fleet` with that tier and `extra` arguments.
fn start(dir: &Path, fleet: &str, extra: &[&str]) -> Daemon {
    Daemon::start_with(dir, fleet, &quick_policies(dir, "high", RULES), extra)
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

/// Checks `d` is the diagnosis of [`CONFIG_ERROR`]: configuration, with that line as evidence.
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

/// The strategies of `app`'s actions, oldest first.
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
    let d = start(dir.path(), &fleet(&actions), &[]);
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
    let incidents = incidents_of(dir.path(), "app");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_configuration(&incidents[0].summary["diagnosis"]);
    let opened = journaled(dir.path(), "incident_opened", "summary");
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].contains("configuration"), "{opened:?}");
}

#[test]
fn a_configuration_error_without_a_repair_action_is_escalated_without_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, bodies) = webhook_receiver();
    let d = start(
        dir.path(),
        &fleet(""),
        &["--webhook", &format!("http://127.0.0.1:{hook}/hook")],
    );
    wait_for("the escalation", Duration::from_secs(30), || {
        incident_status(d.port, "app").as_deref() == Some("escalated")
    });
    assert_configuration(&diagnosis(d.port));
    // The open incident carries it too.
    let incidents = get_json(d.port, "/api/v1/incidents");
    let open = incidents
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["target"] == "app")
        .unwrap_or_else(|| panic!("no open incident of app: {incidents}"));
    assert_configuration(&open["diagnosis"]);
    let done = kinds(d.port);
    assert!(
        done.iter()
            .all(|k| !matches!(k.as_str(), "restart" | "reset" | "recreate")),
        "{done:?}"
    );
    let log = d.log();
    assert!(log.contains("escalated to a human"), "{log}");
    // The people called get the diagnosis with the escalation.
    wait_for_body(
        &bodies,
        "escalation",
        "the escalation at the webhook",
        Duration::from_secs(30),
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
    let (ok, dom) = run_chromium(&bin, profile.path(), &["--dump-dom".into()], &url);
    assert!(ok, "chromium --dump-dom failed");
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
    let incidents = dom
        .find(r#"<table id="incidents">"#)
        .map(|at| &dom[at..at + dom[at..].find("</table>").unwrap_or(dom.len() - at)])
        .unwrap_or_else(|| panic!("no incidents table:\n{dom}"));
    assert!(
        incidents.contains(r#"<span class="tag diagnosis" title="invalid_configuration (80%)"#),
        "the open incident is tagged too: {incidents}"
    );
}

#[test]
fn medic_run_refuses_a_bad_patterns_file_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let policies = quick_policies(dir.path(), "high", RULES);
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
    let d = start(dir.path(), &fleet, &[]);
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
