//! `medic train signatures` end to end: a real store whose journal holds the engine's rows
//! (in the format the daemon writes), the real binary, the model file and card it writes,
//! and its argument errors.

use std::process::Command;

use medic_core::{TargetId, Timestamp};
use medic_detect::diagnosis::outcomes::OutcomeModel;
use serde_json::json;

const T0: u64 = 1_767_225_600_000;

fn medic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medic"))
}

/// Two kinds of incident, six each: crashes that a restart fixes, and configuration
/// errors where the restart fails and the repair works.
fn write_store(dir: &std::path::Path) {
    let mut store = medic_store::Store::open_data_dir(dir).unwrap();
    let mut at = T0;
    let mut action = 0u64;
    let mut row = |store: &mut medic_store::Store, target: &str, kind: &str, payload| {
        at += 1000;
        store
            .append_journal(&medic_store::JournalEntry {
                at: Timestamp::from_millis(at),
                target: TargetId::from(target),
                kind: kind.to_owned(),
                idempotency_key: None,
                payload,
            })
            .unwrap();
    };
    for i in 0..6 {
        for (target, summary, tries) in [
            (
                format!("api-{i}"),
                "unhealthy (critical); failing liveness; diagnosis crash (0.80)",
                vec![("restart", "success")],
            ),
            (
                format!("cfg-{i}"),
                "unhealthy (critical); failing liveness readiness; diagnosis configuration (0.90)",
                vec![("restart", "failure"), ("repair", "success")],
            ),
        ] {
            row(
                &mut store,
                &target,
                "incident_opened",
                json!({"at": T0, "entry": "incident_opened", "health": "unhealthy",
                       "summary": summary, "target": target}),
            );
            for (strategy, result) in tries {
                action += 1;
                row(
                    &mut store,
                    &target,
                    "intent",
                    json!({"action": action, "at": T0, "dry_run": false, "entry": "intent",
                           "key": format!("{target}/a{action}"),
                           "kind": {"kind": "heal", "strategy": strategy},
                           "reason": "test", "replicas": null, "target": target}),
                );
                row(
                    &mut store,
                    &target,
                    "closed",
                    json!({"action": action, "at": T0, "entry": "closed", "result": result}),
                );
            }
        }
    }
    // A row that is not an engine entry is skipped and counted.
    row(
        &mut store,
        "api-0",
        "note",
        json!({"entry": "something_else"}),
    );
}

#[test]
fn trains_from_a_real_store_and_writes_the_model_with_its_card() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_store(&data);
    let out = dir.path().join("models");
    let o = medic()
        .args(["train", "signatures", "--data-dir"])
        .arg(&data)
        .args(["--k", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("(1 not engine entries), 12 incidents, 12 with a verified outcome"));
    assert!(stdout.contains("2 clusters over 12 incidents"), "{stdout}");
    let model = OutcomeModel::load(&out.join("outcome_signatures.json")).unwrap();
    assert_eq!(model.card().k, 2);
    assert!(model.card().silhouette > 0.5);
    assert_eq!(model.card().attempts, 18);
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("outcome_signatures.card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["k"], 2);
    assert_eq!(card["seed"], 42);
    // The configuration cluster: restart 0/6, repair 6/6.
    let rows: Vec<(String, u32, u32)> = model
        .rates()
        .iter()
        .map(|r| (r.strategy.as_str().to_owned(), r.successes, r.attempts))
        .collect();
    assert!(rows.contains(&("restart".to_owned(), 0, 6)), "{rows:?}");
    assert!(rows.contains(&("repair".to_owned(), 6, 6)), "{rows:?}");
    assert!(rows.contains(&("restart".to_owned(), 6, 6)), "{rows:?}");

    // DBSCAN on the same store.
    let o = medic()
        .args(["train", "signatures", "--data-dir"])
        .arg(&data)
        .args(["--dbscan", "0.5,3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("dbscan eps=0.5 min_points=3: 2 clusters"));
}

#[test]
fn bad_arguments_and_missing_stores_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = medic()
        .args(["train", "signatures", "--data-dir"])
        .arg(dir.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no medic store"));
    let data = dir.path().join("data");
    write_store(&data);
    for bad in ["1.0", "x,3", "1.0,1", "-1,3"] {
        let o = medic()
            .args(["train", "signatures", "--data-dir"])
            .arg(&data)
            .args(["--dbscan", bad])
            .output()
            .unwrap();
        assert!(!o.status.success(), "--dbscan {bad} accepted");
    }
}
