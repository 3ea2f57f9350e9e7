//! Offline training for medic: the failure-prediction LSTM, trained with burn (`=0.22.1`, the
//! pure-Rust `flex` CPU backend with autodiff) and exported to standard ONNX with its model
//! card. Never a dependency of the daemon: it runs from `medic train` only.
//!
//! - [`source`]: training data as [`medic_detect::predict::AgentSeries`] (simulated history or
//!   medic-sim's CSV format).
//! - [`prometheus`]: training data from a Prometheus server (`query_range`, one query per
//!   raw column, failures from a query or a labels file); [`store`]: from medic's own SQLite
//!   history (failures from incidents and the journal, preemptive actions → *averted*).
//! - [`iforest`](mod@iforest): the anomaly model (medic-detect's isolation forest on the
//!   per-step feature rows) with its card.
//! - [`net`]: the network ([`FailureNet`]: stacked forward LSTMs, dropout, dense ReLU layers,
//!   one logit) and its sizes ([`NetConfig`]).
//! - [`train`](mod@train): the seeded training loop ([`TrainConfig`], early stopping on
//!   validation PR-AUC).
//! - [`export`]: burn parameters → [`medic_detect::predict::LstmWeights`] (gate layout and
//!   weight orientation converted).
//! - [`evaluate`]: window- and event-level figures of a split.
//! - [`run`]: the whole pipeline: dataset (with medic-detect's one dataset builder), training,
//!   threshold on validation, test figures, ONNX + card written.
//!
//! Invariants: windows, labels, splits and the scaler come only from
//! [`medic_detect::predict::dataset::build`], so training and scoring share one feature path;
//! the exported weights reproduce the burn model's probabilities (tested within 1e-4); the
//! same data and seed give the same weights on one machine.

pub mod evaluate;
pub mod export;
pub mod iforest;
pub mod net;
pub mod prometheus;
pub mod source;
pub mod store;
pub mod train;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use medic_detect::predict::card::{CARD_FORMAT, CARD_VERSION};
use medic_detect::predict::dataset::{DatasetCounts, Split};
use medic_detect::predict::{
    AgentSeries, Dataset, DatasetConfig, PredictError, PredictorCard, TrainingProvenance,
};

pub use evaluate::SplitMetrics;
pub use net::{FailureNet, NetConfig};
pub use train::{EpochReport, TrainConfig, Trained};

/// Version of burn used for training (recorded in the model card).
pub const BURN_VERSION: &str = "0.22.1";

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid training config: {0}")]
    Config(String),
    /// The data cannot be trained on.
    #[error("training data: {0}")]
    Data(String),
    /// The loss stopped being finite.
    #[error("training diverged at epoch {epoch}: loss {loss}")]
    Diverged {
        /// Epoch at which it happened.
        epoch: usize,
        /// The loss seen.
        loss: f64,
    },
    /// Building the dataset, exporting or writing the model failed.
    #[error("predictor")]
    Predict(#[from] PredictError),
    /// A CSV history could not be read.
    #[error("csv history")]
    Csv(#[from] medic_sim::csv::CsvError),
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything a training run needs besides the data.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Windows, labels and splits.
    pub dataset: DatasetConfig,
    /// Network and optimisation.
    pub train: TrainConfig,
    /// Where the data came from (goes into the card), e.g. `sim seed=7 agents=60 days=10`.
    pub source: String,
    /// Directory the model and card are written to (created if missing).
    pub out_dir: PathBuf,
    /// File stem of the model (default `failure_lstm`).
    pub model_name: String,
}

/// Progress of a run, for a progress display.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The dataset is built.
    Dataset(&'a DatasetCounts),
    /// An epoch finished.
    Epoch(&'a EpochReport),
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    /// Window counts of the dataset.
    pub counts: DatasetCounts,
    /// The trained model.
    pub trained: Trained,
    /// Alarm threshold chosen on validation.
    pub threshold: f64,
    /// Validation figures at the threshold.
    pub val: SplitMetrics,
    /// Test figures at the threshold.
    pub test: SplitMetrics,
    /// The written ONNX file.
    pub model_path: PathBuf,
    /// The written card.
    pub card_path: PathBuf,
    /// The card.
    pub card: PredictorCard,
    /// Seconds spent building the dataset.
    pub dataset_seconds: f64,
}

fn scores(trained: &Trained, ds: &Dataset, idx: &[usize], batch: usize) -> Vec<f32> {
    let x = train::gather(ds, idx);
    trained
        .net
        .predict(&x, ds.seq_len, ds.n_features, batch, &trained.device)
}

/// Builds the dataset from `series`, trains, picks the threshold with the best window F1 on
/// the validation split, evaluates the test split, and writes `<out_dir>/<model_name>.onnx`
/// with its card.
pub fn run(
    series: &[AgentSeries],
    cfg: &RunConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport, Error> {
    #[allow(clippy::disallowed_methods)] // wall time of dataset building, reported only
    let t0 = std::time::Instant::now();
    let ds = medic_detect::predict::build(series, &cfg.dataset)?;
    let dataset_seconds = t0.elapsed().as_secs_f64();
    progress(Progress::Dataset(&ds.counts));
    let trained = train::train(&ds, &cfg.train, &mut |e| progress(Progress::Epoch(e)))?;

    let batch = cfg.train.eval_batch;
    let val_idx = train::eval_indices(&ds, Split::Val);
    let val_p = scores(&trained, &ds, &val_idx, batch);
    let val_scores: Vec<f64> = val_p.iter().map(|&p| p as f64).collect();
    let val_labels: Vec<bool> = val_idx.iter().map(|&i| ds.y[i] > 0.5).collect();
    let threshold = evaluate::max_f1_threshold(&val_scores, &val_labels);
    let val = evaluate::evaluate(&ds, series, &val_idx, &val_p, threshold);
    let test_idx = train::eval_indices(&ds, Split::Test);
    let test_p = scores(&trained, &ds, &test_idx, batch);
    let test = evaluate::evaluate(&ds, series, &test_idx, &test_p, threshold);

    let card = card(&ds, cfg, &trained, threshold, &val, &test, dataset_seconds);
    std::fs::create_dir_all(&cfg.out_dir).map_err(|source| Error::Io {
        path: cfg.out_dir.display().to_string(),
        source,
    })?;
    let model_path = cfg.out_dir.join(format!("{}.onnx", cfg.model_name));
    medic_detect::predict::write_model(&trained.weights, &card, &model_path)?;
    Ok(RunReport {
        counts: ds.counts,
        card_path: PredictorCard::path_for(&model_path),
        model_path,
        trained,
        threshold,
        val,
        test,
        card,
        dataset_seconds,
    })
}

fn card(
    ds: &Dataset,
    cfg: &RunConfig,
    trained: &Trained,
    threshold: f64,
    val: &SplitMetrics,
    test: &SplitMetrics,
    dataset_seconds: f64,
) -> PredictorCard {
    let mut metrics = val.to_map("val");
    metrics.extend(test.to_map("test"));
    let mut counts = BTreeMap::new();
    for (name, split) in [
        ("train", &ds.counts.train),
        ("val", &ds.counts.val),
        ("test", &ds.counts.test),
    ] {
        counts.insert(format!("{name}_positive"), split.positive as u64);
        counts.insert(format!("{name}_negative"), split.negative as u64);
        counts.insert(format!("{name}_averted"), split.averted as u64);
        counts.insert(format!("{name}_sudden"), split.sudden as u64);
    }
    counts.insert(
        "averted_windows".into(),
        (ds.counts.train.averted + ds.counts.val.averted + ds.counts.test.averted) as u64,
    );
    counts.insert("purged".into(), ds.counts.purged as u64);
    counts.insert("dark".into(), ds.counts.dark as u64);
    counts.insert("agents".into(), ds.agents.len() as u64);
    counts.insert("epochs_run".into(), trained.epochs.len() as u64);
    counts.insert("best_epoch".into(), trained.best_epoch as u64);
    let t = &cfg.train;
    let mut params = BTreeMap::new();
    params.insert("learning_rate".into(), t.learning_rate);
    params.insert("batch_size".into(), t.batch_size as f64);
    params.insert("max_epochs".into(), t.max_epochs as f64);
    params.insert("patience".into(), t.patience as f64);
    params.insert("dropout".into(), t.dropout);
    params.insert("negatives_per_positive".into(), t.negatives_per_positive);
    params.insert("stride".into(), cfg.dataset.stride as f64);
    params.insert("val_fraction".into(), cfg.dataset.val_fraction);
    params.insert("test_fraction".into(), cfg.dataset.test_fraction);
    params.insert(
        "test_agent_every".into(),
        cfg.dataset.test_agent_every as f64,
    );
    params.insert("training_seconds".into(), trained.seconds.round());
    params.insert("dataset_seconds".into(), dataset_seconds.round());
    PredictorCard {
        format: CARD_FORMAT.to_owned(),
        version: CARD_VERSION,
        feature_spec: ds.feature_spec.clone(),
        feature_names: ds.feature_names.clone(),
        feature_window: ds.feature_window,
        seq_len: ds.seq_len,
        step_s: ds.step.as_secs().max(1),
        horizon_s: ds.horizon.as_secs(),
        scaler: ds.scaler.clone(),
        threshold,
        lstm_sizes: t.lstm.clone(),
        dense_sizes: t.dense.clone(),
        metrics,
        training: TrainingProvenance {
            source: format!(
                "{}; trained with burn {BURN_VERSION} (flex cpu backend); threshold: max window \
                 F1 on validation",
                cfg.source
            ),
            seed: t.seed,
            medic_version: env!("CARGO_PKG_VERSION").to_owned(),
            counts,
            params,
        },
    }
}

/// The model path `run` writes for `out_dir` and `model_name`.
pub fn model_path(out_dir: &Path, model_name: &str) -> PathBuf {
    out_dir.join(format!("{model_name}.onnx"))
}
