//! Tiny-config training runs: export fidelity (burn vs the plain-Rust reference vs tract on the
//! written ONNX), reproducibility by seed, the card, and the error paths.

use std::time::Duration;

use burn::module::Module;
use burn::tensor::Device;
use medic_detect::predict::dataset::Split;
use medic_detect::predict::{DatasetConfig, Predictor, PredictorCard, reference};
use medic_sim::HistoryConfig;
use medic_train::{FailureNet, NetConfig, RunConfig, TrainConfig, export, source};
use rand::{Rng, SeedableRng};

fn tiny_train(seed: u64) -> TrainConfig {
    TrainConfig {
        lstm: vec![8, 4],
        dense: vec![4],
        max_epochs: 2,
        batch_size: 64,
        negatives_per_positive: 2.0,
        seed,
        ..TrainConfig::default()
    }
}

fn tiny_dataset() -> DatasetConfig {
    DatasetConfig {
        stride: 4,
        horizon: Duration::from_secs(30 * 60),
        ..DatasetConfig::default()
    }
}

fn series() -> Vec<medic_detect::predict::AgentSeries> {
    source::from_history(&medic_sim::generate(&HistoryConfig::new(3, 10, 3.0)))
}

#[test]
fn untrained_export_matches_burn_forward() {
    // Gate layout and weight orientation, before any training: random init, random inputs.
    let device = Device::flex();
    device.seed(11);
    let cfg = NetConfig {
        n_features: 5,
        lstm: vec![6, 3],
        dense: vec![4],
        dropout: 0.2,
    };
    let net = FailureNet::new(&cfg, &device).unwrap().valid();
    let (seq, n) = (7, 50);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..n * seq * 5)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let burn_p = net.predict(&x, seq, 5, 16, &device);
    let w = export::to_weights(&net, seq).unwrap();
    let mut max = 0.0f32;
    for (i, &p) in burn_p.iter().enumerate() {
        let r = reference::forward(&w, &x[i * seq * 5..(i + 1) * seq * 5]);
        max = max.max((p - r).abs());
    }
    assert!(max < 1e-5, "burn vs reference max abs diff {max}");
}

#[test]
fn tiny_run_writes_a_model_tract_reproduces() {
    let series = series();
    let dir = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        dataset: tiny_dataset(),
        train: tiny_train(7),
        source: "test sim seed=3 agents=10 days=3".into(),
        out_dir: dir.path().join("models"),
        model_name: "failure_lstm".into(),
        calibration: Default::default(),
    };
    let mut epochs = 0;
    let report = medic_train::run(&series, &cfg, &mut |p| {
        if let medic_train::Progress::Epoch(_) = p {
            epochs += 1;
        }
    })
    .unwrap();
    assert_eq!(epochs, report.trained.epochs.len());
    assert!((1..=2).contains(&epochs));
    assert!(report.model_path.exists() && report.card_path.exists());
    assert!((0.0..=1.0).contains(&report.threshold));
    assert!(report.test.windows_scored > 0 && report.test.windows_positive > 0);
    assert!(report.val.windows_scored > 0 && report.test.predictable_failures > 0);

    let card = PredictorCard::load(&report.card_path).unwrap();
    assert_eq!(card.seq_len, 20);
    assert_eq!(card.lstm_sizes, vec![8, 4]);
    assert_eq!(card.threshold, report.threshold);
    assert_eq!(card.training.seed, 7);
    assert!(card.metrics.contains_key("test_pr_auc"));
    assert!(card.metrics.contains_key("val_f1"));
    assert_eq!(card.metrics["test_recall"], report.test.recall);
    assert!(card.training.source.contains("false alarms per agent-day"));
    assert!(card.training.counts.contains_key("averted_windows"));

    // The same test windows through burn and through tract on the written file.
    let ds = medic_detect::predict::build(&series, &cfg.dataset).unwrap();
    let idx: Vec<usize> = ds.indices(Split::Test).into_iter().take(1000).collect();
    let mut x = Vec::new();
    for &i in &idx {
        x.extend_from_slice(ds.window(i));
    }
    let burn_p =
        report
            .trained
            .net
            .predict(&x, ds.seq_len, ds.n_features, 256, &report.trained.device);
    let mut predictor = Predictor::load(&report.model_path).unwrap();
    let mut tract_p = vec![0.0f32; idx.len()];
    predictor.predict_into(&x, &mut tract_p).unwrap();
    let wl = ds.seq_len * ds.n_features;
    let ref_p: Vec<f32> = (0..idx.len())
        .map(|i| reference::forward(&report.trained.weights, &x[i * wl..(i + 1) * wl]))
        .collect();
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max)
    };
    // Many batches in a row: a state carried from one run to the next would show here.
    let (burn_ref, burn_tract) = (diff(&burn_p, &ref_p), diff(&burn_p, &tract_p));
    eprintln!(
        "{} windows: burn vs reference {burn_ref:e}, burn vs tract {burn_tract:e}",
        idx.len()
    );
    assert!(burn_ref < 1e-4, "burn vs reference max abs diff {burn_ref}");
    assert!(burn_tract < 1e-4, "burn vs tract max abs diff {burn_tract}");
}

#[test]
fn same_seed_same_weights() {
    let series = series();
    let ds = medic_detect::predict::build(&series, &tiny_dataset()).unwrap();
    let mut cfg = tiny_train(5);
    cfg.max_epochs = 1;
    let a = medic_train::train::train(&ds, &cfg, &mut |_| {}).unwrap();
    let b = medic_train::train::train(&ds, &cfg, &mut |_| {}).unwrap();
    assert_eq!(a.weights, b.weights);
    cfg.seed = 6;
    let c = medic_train::train::train(&ds, &cfg, &mut |_| {}).unwrap();
    assert_ne!(a.weights, c.weights);
}

#[test]
fn bad_configs_and_data_are_errors() {
    let series = series();
    let ds = medic_detect::predict::build(&series, &tiny_dataset()).unwrap();
    let mut cfg = tiny_train(1);
    cfg.lstm = vec![];
    assert!(matches!(
        medic_train::train::train(&ds, &cfg, &mut |_| {}),
        Err(medic_train::Error::Config(_))
    ));
    let mut cfg = tiny_train(1);
    cfg.dropout = 1.0;
    assert!(medic_train::train::train(&ds, &cfg, &mut |_| {}).is_err());
    let mut cfg = tiny_train(1);
    cfg.batch_size = 0;
    assert!(medic_train::train::train(&ds, &cfg, &mut |_| {}).is_err());
    // A history without failures has no positive window to learn from.
    let mut quiet = HistoryConfig::new(1, 4, 1.0);
    quiet.faults_per_agent_day = 0.0;
    let quiet = source::from_history(&medic_sim::generate(&quiet));
    let ds = medic_detect::predict::build(&quiet, &tiny_dataset()).unwrap();
    assert!(matches!(
        medic_train::train::train(&ds, &tiny_train(1), &mut |_| {}),
        Err(medic_train::Error::Data(_))
    ));
    // A missing CSV directory is an i/o error naming the file.
    let err = source::read_csv_dir(std::path::Path::new("/nonexistent/medic")).unwrap_err();
    assert!(err.to_string().contains("samples.csv"));
}
