//! Diagnosis in the brain, driven input by input on a manual clock with the repository's
//! policies and pattern library (see `brain_tests.rs` for the harness).

use medic_core::{DiagnosisCategory, ProbeOutcome};

use super::tests::{Harness, ONE, START, harness, probe};
use super::*;

fn with_patterns(mut h: Harness) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let patterns = super::super::diagnose::load_patterns(dir.path()).unwrap();
    h.brain = h.brain.with_patterns(patterns.library);
    h
}

const CONFIG_ERROR: &str =
    r#"Error: invalid configuration: unknown key "listen_adress" in /etc/app/config.yaml"#;

#[test]
fn an_exec_probes_configuration_error_is_diagnosed_and_escalated_for_want_of_a_repair() {
    let mut h = with_patterns(harness(ONE));
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, START, ProbeOutcome::Failed(CONFIG_ERROR.into())),
    });
    h.brain.step(START, Event::Tick);
    h.brain.publish(START);

    let d = h
        .view_target("svc")
        .diagnosis
        .expect("a diagnosis in the view");
    assert_eq!(d.category, DiagnosisCategory::Configuration);
    assert_eq!(d.pattern_id.as_deref(), Some("invalid_configuration"));
    assert_eq!(d.evidence, [format!("liveness: {CONFIG_ERROR}")]);
    let inc = h.brain.incidents.back().expect("an incident");
    assert_eq!(
        inc.diagnosis.as_ref().map(|d| d.category),
        Some(DiagnosisCategory::Configuration)
    );
    // svc has no repair action: the shipped config_error_unrepaired calls a human instead
    // of restarting a process that would read the same configuration.
    assert!(inc.escalated, "{inc:?}");
    assert!(h.brain.action_log.is_empty(), "{:?}", h.brain.action_log);
}

#[test]
fn a_probe_failing_the_same_way_is_diagnosed_once_and_a_heal_forgets_the_diagnosis() {
    let mut h = with_patterns(harness(ONE));
    let failed = ProbeOutcome::Failed(CONFIG_ERROR.into());
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, START, failed.clone()),
    });
    assert!(h.brain.targets[0].diagnosis.finding().is_some());
    for k in 1..5 {
        h.brain.handle(Input::Probe {
            generation: 0,
            report: probe(0, START + Duration::from_secs(k), failed.clone()),
        });
        // No new evidence: nothing to diagnose again.
        assert!(!h.brain.rediagnose(0));
    }
    // Healthy again: the incident closes and its diagnosis goes with it.
    let healed = START + Duration::from_secs(10);
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, healed, ProbeOutcome::Ok),
    });
    let k = h.brain.targets[0].incident.expect("open");
    h.brain.publish(healed);
    let inc = &h.brain.incidents[k];
    assert!(inc.closed_at.is_some(), "{inc:?}");
    assert!(inc.diagnosis.is_some(), "kept with the incident");
    assert!(h.brain.targets[0].diagnosis.finding().is_none());
    assert!(h.brain.finding(0, healed).diagnosis.is_none());
}
