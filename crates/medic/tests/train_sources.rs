//! `medic train iforest --from store DATA_DIR` end to end: a real store written through
//! medic-store, the real binary, the model file it writes; and the sources' argument errors.

use std::process::Command;

use medic_core::{MetricSample, TargetId, Timestamp};

const T0: u64 = 1_767_225_600_000;

fn medic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medic"))
}

/// Six hours of per-minute samples of every raw column's metric for two targets.
fn write_store(dir: &std::path::Path) {
    let mut store = medic_store::Store::open_data_dir(dir).unwrap();
    let metrics = [
        "cpu",
        "rss_bytes",
        "p50",
        "p99",
        "errors",
        "requests",
        "queue",
        "fds",
        "restarts",
    ];
    let mut batch = Vec::new();
    for (k, target) in ["api", "worker"].into_iter().enumerate() {
        for i in 0..360u64 {
            let x = i as f64 + 17.0 * k as f64;
            let values = [
                0.3 + 0.1 * (x / 7.0).sin(),
                (500.0 + 20.0 * (x / 11.0).cos()) * 1_048_576.0,
                40.0 + 5.0 * (x / 5.0).sin(),
                120.0 + 15.0 * (x / 3.0).cos(),
                0.01 * (1.0 + (x / 13.0).sin()),
                30.0 + 10.0 * (x / 60.0).sin(),
                (x as u64 % 5) as f64,
                100.0 + (x as u64 % 7) as f64,
                0.0,
            ];
            for (name, v) in metrics.iter().zip(values) {
                batch.push(MetricSample {
                    target: TargetId::new(target),
                    name: (*name).to_owned(),
                    labels: vec![],
                    value: v,
                    at: Timestamp::from_millis(T0 + (i + 1) * 60_000),
                });
            }
        }
    }
    store.insert_samples(&batch).unwrap();
}

#[test]
fn train_iforest_from_a_store() {
    let data = tempfile::tempdir().unwrap();
    write_store(data.path());
    let out = tempfile::tempdir().unwrap();
    let spec = [
        "cpu=cpu",
        "rss_mb=rss_bytes/1048576",
        "latency_p50_ms=p50",
        "latency_p99_ms=p99",
        "error_rate=errors",
        "request_rate=requests",
        "queue_depth=queue",
        "open_fds=fds",
        "restarts=restarts",
    ];
    let mut cmd = medic();
    cmd.args(["train", "iforest", "--from", "store"])
        .arg(data.path())
        .args(["--trees", "20", "--seed", "3", "--out"])
        .arg(out.path());
    for s in spec {
        cmd.args(["--metric", s]);
    }
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("2 targets"), "{stdout}");
    let text = std::fs::read_to_string(out.path().join("anomaly_iforest.json")).unwrap();
    let model = medic_detect::iforest::ModelFile::from_json(&text).unwrap();
    assert_eq!(model.card.n_trees, 20);
    assert_eq!(model.card.feature_window, Some(10));
    assert_eq!(model.card.feature_names.len(), 10);
    // 2 × 360 steps, the last 20 % held out, the first step of each lacks the slopes.
    assert_eq!(
        model.card.training.rows + model.card.training.metrics["test_rows"] as usize + 2,
        720
    );
    assert!(model.card.training.source.contains("medic store"));
}

#[test]
fn sources_refuse_missing_arguments_clearly() {
    let data = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--from", "store"], "needs medic's data directory"),
        (&["--from", "prometheus"], "needs the server URL"),
        (
            &["--from", "prometheus", "http://127.0.0.1:1"],
            "--query NAME=PROMQL",
        ),
        (
            &[
                "--from",
                "prometheus",
                "ftp://127.0.0.1:1",
                "--query",
                "cpu=up",
            ],
            "plain http only",
        ),
    ];
    for (args, expected) in cases {
        let o = medic()
            .args(["train", "iforest"])
            .args(args)
            .arg("--out")
            .arg(data.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // A directory without a store.
    let o = medic()
        .args(["train", "iforest", "--from", "store"])
        .arg(data.path())
        .args(["--metric", "cpu=cpu"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("no medic store"), "{stderr}");
}
