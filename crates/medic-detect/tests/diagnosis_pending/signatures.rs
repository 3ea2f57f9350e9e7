// NOT YET COMPILED OR RUN (2026-11-27): written before the deadline, when the release test
// build of medic-detect could not finish on the shared machine. It sits outside cargo's test
// discovery (a subdirectory without main.rs) so it cannot break the build. To enable: move it
// to crates/medic-detect/tests/diagnosis_signatures.rs, run it, and fix what fails.
// Its thresholds are known to be too high: the measured figures (bench `diagnosis
// --signatures`) are purity 0.41, holdout agreement 0.32, and novelty does not separate an
// unseen category (0.18 novel) from seen ones (0.24).

//! Failure signatures: clustering the labelled diagnosis corpus (purity, silhouette), the
//! model file round trip and its validation, nearest-centroid assignment of held-out failures,
//! and novelty of failures of a kind never seen in training.

use std::path::{Path, PathBuf};

use medic_core::DiagnosisCategory;
use medic_detect::diagnosis::signatures::{
    self, FailureRecord, SignatureModel, TrainParams, TrainReport,
};
use medic_detect::diagnosis::{Error, Signals, eval};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/diagnosis")
        .join(name)
}

/// The failures (not the `unknown` lines) of a corpus file, with their labels.
fn failures(name: &str) -> Vec<FailureRecord> {
    eval::load_corpus(&data(name))
        .expect("corpus")
        .into_iter()
        .filter(|s| s.category != DiagnosisCategory::Unknown)
        .map(|s| FailureRecord {
            text: s.text,
            signals: Signals::default(),
            label: Some(s.category),
        })
        .collect()
}

/// Small but real settings, so the test stays fast in a debug build.
fn params() -> TrainParams {
    TrainParams {
        k_min: 10,
        k_max: 22,
        n_runs: 2,
        source: "corpus.jsonl".to_owned(),
        ..TrainParams::default()
    }
}

fn train(records: &[FailureRecord]) -> TrainReport {
    signatures::train(records, &params()).expect("trains")
}

#[test]
fn corpus_clusters_are_mostly_pure_and_held_out_failures_land_in_their_category() {
    let train_set = failures("corpus.jsonl");
    let report = train(&train_set);
    let card = report.model.card();
    eprintln!(
        "k {} silhouette {:.3} purity {:.3} vocabulary {} (records {}, skipped {})",
        card.k,
        card.silhouette,
        card.purity.unwrap(),
        card.vocabulary_size,
        card.records,
        card.skipped_empty
    );
    for s in &card.scan {
        eprintln!("  k {:>2}: silhouette {:.3}", s.k, s.silhouette);
    }
    for c in &card.clusters {
        eprintln!(
            "  #{:<2} {:>3} {:<20} {:.2} {}",
            c.id,
            c.size,
            c.category.as_deref().unwrap_or("-"),
            c.category_share.unwrap_or(0.0),
            c.top_terms.join(", ")
        );
    }
    assert!(card.k >= 10 && card.k <= 22);
    assert_eq!(card.scan.len(), 13);
    // The chosen k is the best silhouette of the scan.
    let best = card
        .scan
        .iter()
        .map(|s| s.silhouette)
        .fold(f64::MIN, f64::max);
    assert_eq!(card.silhouette, best);
    let purity = card.purity.expect("labelled");
    assert!(purity >= 0.6, "purity {purity}");
    assert_eq!(
        report.assignments.iter().filter(|a| a.is_some()).count(),
        card.records
    );
    assert_eq!(
        card.clusters.iter().map(|c| c.size).sum::<usize>(),
        card.records
    );

    // Held-out failures: the nearest signature's category agrees most of the time.
    let holdout = failures("holdout.jsonl");
    let mut agree = 0;
    let mut novel = 0;
    for r in &holdout {
        let a = report.model.assign(&r.text, &r.signals);
        if a.novel {
            novel += 1;
        }
        if a.category == r.label {
            agree += 1;
        }
    }
    let agree = agree as f64 / holdout.len() as f64;
    let novel = novel as f64 / holdout.len() as f64;
    eprintln!("holdout: nearest-signature category agreement {agree:.3}, novel {novel:.3}");
    assert!(agree >= 0.5, "{agree}");
    assert!(novel <= 0.5, "{novel}");
}

#[test]
fn a_kind_never_seen_in_training_is_novel() {
    // Train without any virtualization failure, then show it virtualization failures.
    let all = failures("corpus.jsonl");
    let (unseen, seen): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|r| r.label == Some(DiagnosisCategory::Virtualization));
    assert!(unseen.len() >= 10);
    let report = train(&seen);
    let model = &report.model;
    let mut unseen_test = unseen;
    unseen_test.extend(
        failures("holdout.jsonl")
            .into_iter()
            .filter(|r| r.label == Some(DiagnosisCategory::Virtualization)),
    );
    let seen_test: Vec<FailureRecord> = failures("holdout.jsonl")
        .into_iter()
        .filter(|r| r.label != Some(DiagnosisCategory::Virtualization))
        .collect();
    let rate = |rs: &[FailureRecord]| {
        rs.iter()
            .filter(|r| model.assign(&r.text, &r.signals).novel)
            .count() as f64
            / rs.len() as f64
    };
    let unseen_rate = rate(&unseen_test);
    let seen_rate = rate(&seen_test);
    eprintln!(
        "novel: unseen kind (virtualization, {}) {unseen_rate:.3}, seen kinds (holdout, {}) {seen_rate:.3}",
        unseen_test.len(),
        seen_test.len()
    );
    assert!(
        unseen_rate >= seen_rate + 0.2,
        "{unseen_rate} vs {seen_rate}"
    );

    // Text with no known term at all is novel, with no cluster.
    let a = model.assign(
        "quantum flux capacitor desynchronised from warp core",
        &Signals::default(),
    );
    assert!(a.novel);
    assert_eq!(a.cluster, None);
    assert_eq!(a.key(), "novel");
    // A training failure is not novel and keys to its cluster.
    let first = &seen[0];
    let a = model.assign(&first.text, &first.signals);
    assert!(!a.novel, "{a:?}");
    assert_eq!(Some(a.cluster.unwrap()), report.assignments[0]);
    assert_eq!(a.key(), format!("cluster:{}", a.cluster.unwrap()));
}

#[test]
fn model_files_round_trip_and_corrupt_ones_are_errors() {
    let report = train(&failures("corpus.jsonl"));
    let dir = tempfile::tempdir().unwrap();
    let (model_path, card_path) = report.model.save(dir.path()).unwrap();
    let loaded = SignatureModel::load(&model_path).unwrap();
    assert_eq!(loaded.card(), report.model.card());
    assert_eq!(loaded.vocabulary(), report.model.vocabulary());
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    assert_eq!(card["k"], report.model.card().k);
    for r in failures("holdout.jsonl").iter().take(30) {
        assert_eq!(
            loaded.assign(&r.text, &r.signals),
            report.model.assign(&r.text, &r.signals)
        );
    }

    let text = std::fs::read_to_string(&model_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["centroids"][0]["terms"][0][0] = serde_json::json!(1_000_000);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    match SignatureModel::load(&bad) {
        Err(Error::InvalidModel { reason, .. }) => {
            assert!(reason.contains("outside the vocabulary"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&bad, "{\"format\": \"medic-signatures\"").unwrap();
    assert!(matches!(
        SignatureModel::load(&bad),
        Err(Error::ParseModel { .. })
    ));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["version"] = serde_json::json!(99);
    std::fs::write(&bad, v.to_string()).unwrap();
    assert!(matches!(
        SignatureModel::load(&bad),
        Err(Error::InvalidModel { .. })
    ));
}

#[test]
fn too_few_failures_is_an_error_not_a_panic() {
    let few = failures("corpus.jsonl")
        .into_iter()
        .take(5)
        .collect::<Vec<_>>();
    match signatures::train(&few, &params()) {
        Err(Error::TooFewFailures { found, need }) => assert!(found < need),
        other => panic!("{:?}", other.map(|r| r.model.card().clone())),
    }
    let empty = vec![FailureRecord::default(); 40];
    assert!(matches!(
        signatures::train(&empty, &params()),
        Err(Error::TooFewFailures { found: 0, .. })
    ));
}

#[test]
fn signals_are_part_of_the_signature() {
    // Identical text; SIGKILL near the memory limit makes the failures a signature of their own.
    let mut records = Vec::new();
    for i in 0..12 {
        records.push(FailureRecord {
            text: format!("worker {i} exited unexpectedly"),
            signals: Signals {
                exit_signal: Some(9),
                rss_ratio: Some(0.97),
                disk_used: Vec::new(),
            },
            label: Some(DiagnosisCategory::ResourceExhaustion),
        });
        records.push(FailureRecord {
            text: format!("worker {i} exited unexpectedly"),
            signals: Signals::default(),
            label: Some(DiagnosisCategory::Crash),
        });
    }
    let p = TrainParams {
        k_min: 2,
        k_max: 4,
        ..params()
    };
    let report = signatures::train(&records, &p).unwrap();
    assert_eq!(report.model.card().purity, Some(1.0));
    let a = report.model.assign(
        "worker 99 exited unexpectedly",
        &Signals {
            exit_signal: Some(9),
            rss_ratio: Some(0.99),
            disk_used: Vec::new(),
        },
    );
    assert_eq!(a.category, Some(DiagnosisCategory::ResourceExhaustion));
    let b = report
        .model
        .assign("worker 99 exited unexpectedly", &Signals::default());
    assert_eq!(b.category, Some(DiagnosisCategory::Crash));
}
