//! `medic train iforest`'s pipeline on a simulated history: the written model file loads
//! with its card (feature path recorded), scores the same as the fitted forest, is
//! reproducible by seed, and ranks pre-failure rows above the rest.

use std::time::Duration;

use medic_detect::iforest::{Contamination, ModelFile, Params};
use medic_detect::predict::AgentSeries;
use medic_detect::predict::dataset::step_features;
use medic_detect::predict::steps::StepFeaturizer;
use medic_sim::HistoryConfig;
use medic_train::iforest::{IforestConfig, IforestError, run, score_rows};
use medic_train::source;
use ndarray::Array2;

fn series() -> Vec<AgentSeries> {
    source::from_history(&medic_sim::generate(&HistoryConfig::new(5, 8, 3.0)))
}

fn cfg(out: &std::path::Path, seed: u64) -> IforestConfig {
    IforestConfig {
        params: Params {
            n_trees: 50,
            max_samples: 256,
            seed,
            contamination: Contamination::Fraction(0.05),
        },
        source: "sim seed=5 agents=8 days=3".into(),
        out_dir: out.to_path_buf(),
        ..IforestConfig::default()
    }
}

#[test]
fn sim_history_trains_a_loadable_reproducible_forest() {
    let series = series();
    let dir = tempfile::tempdir().unwrap();
    let report = run(&series, &cfg(dir.path(), 3)).unwrap();
    let m = &report.metrics;
    eprintln!(
        "train rows {} test rows {} skipped {} pre-failure {} metrics {m:?}",
        report.train_rows, report.test_rows, report.skipped_rows, report.test_pre_failure_rows
    );
    assert!(report.train_rows > 10_000);
    assert!(report.test_rows > 2_000);
    assert!(report.test_pre_failure_rows > 0);
    // Unsupervised, but precursors are unusual: the score ranks them above ordinary rows.
    let auc = m["test_auc_pre_failure"];
    assert!(auc > 0.6, "pre-failure AUC {auc}");
    assert!(m["test_flagged_pre_failure"] > m["test_flagged_other"]);

    // The file: card with the feature path, the same forest.
    let names = StepFeaturizer::default_spec().names().to_vec();
    let loaded = ModelFile::load_expecting(&report.model_path, &names).unwrap();
    assert_eq!(loaded.card.feature_names, names);
    assert_eq!(loaded.card.feature_window, Some(10));
    assert_eq!(
        loaded.card.feature_spec.as_ref(),
        Some(StepFeaturizer::default_spec().spec())
    );
    assert_eq!(loaded.card.training.rows, report.train_rows);
    assert!(loaded.card.training.source.starts_with("sim seed=5"));
    assert!(loaded.card.scaler.is_some());
    assert_eq!(loaded.card.n_trees, 50);
    // A refused fleet: one feature missing.
    assert!(ModelFile::load_expecting(&report.model_path, &names[1..]).is_err());

    // Scores of the reloaded model equal those of the trained one on real rows.
    let mut f = StepFeaturizer::default_spec();
    let rows = step_features(&series[0], &mut f).unwrap();
    let w = names.len();
    let finite: Vec<f64> = rows
        .chunks_exact(w)
        .filter(|r| r.iter().all(|v| v.is_finite()))
        .take(500)
        .flatten()
        .copied()
        .collect();
    let x = Array2::from_shape_vec((finite.len() / w, w), finite).unwrap();
    let a = score_rows(&report.model, x.view()).unwrap();
    let b = score_rows(&loaded, x.view()).unwrap();
    assert_eq!(a, b);
    assert!(a.iter().all(|s| (0.0..=1.0).contains(s)));

    // Same data and seed: the same file, byte for byte; another seed: another forest.
    let dir2 = tempfile::tempdir().unwrap();
    let again = run(&series, &cfg(dir2.path(), 3)).unwrap();
    assert_eq!(
        std::fs::read(&report.model_path).unwrap(),
        std::fs::read(&again.model_path).unwrap()
    );
    let dir3 = tempfile::tempdir().unwrap();
    let other = run(&series, &cfg(dir3.path(), 4)).unwrap();
    assert_ne!(
        std::fs::read(&report.model_path).unwrap(),
        std::fs::read(&other.model_path).unwrap()
    );
}

#[test]
fn unusable_data_and_config_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = series();
    series.truncate(2);
    // A column of the spec is missing.
    let mut missing = series.clone();
    for s in &mut missing {
        s.columns.retain(|c| c.name != "cpu");
    }
    let e = run(&missing, &cfg(dir.path(), 1)).unwrap_err();
    assert!(matches!(e, IforestError::Features(_)), "{e:?}");
    // Every value missing.
    let mut dark = series.clone();
    for s in &mut dark {
        for c in &mut s.columns {
            c.values.iter_mut().for_each(|v| *v = f32::NAN);
        }
    }
    let e = run(&dark, &cfg(dir.path(), 1)).unwrap_err();
    assert!(matches!(e, IforestError::Data(_)), "{e:?}");
    let bad = IforestConfig {
        test_fraction: 1.0,
        ..cfg(dir.path(), 1)
    };
    assert!(matches!(run(&series, &bad), Err(IforestError::Config(_))));
    let bad = IforestConfig {
        model_name: "../x".into(),
        ..cfg(dir.path(), 1)
    };
    assert!(matches!(run(&series, &bad), Err(IforestError::Config(_))));
    let bad = IforestConfig {
        horizon: Duration::from_secs(60),
        feature_window: 0,
        ..cfg(dir.path(), 1)
    };
    assert!(matches!(run(&series, &bad), Err(IforestError::Spec(_))));
}
