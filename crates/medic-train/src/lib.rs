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
//! - [`run`]: the whole pipeline: dataset (with medic-detect's one dataset builder), training,
//!   the alarm threshold calibrated on the validation split, test figures, ONNX + card
//!   written. Validation and test figures come from [`medic_detect::predict::eval`], the same
//!   code as `medic eval predict`, so the training report and an evaluation agree by
//!   construction.
//!
//! Invariants: windows, labels, splits and the scaler come only from
//! [`medic_detect::predict::dataset::build`], so training and scoring share one feature path;
//! the exported weights reproduce the burn model's probabilities (tested within 1e-4); the
//! same data and seed give the same weights on one machine.

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
use medic_detect::predict::dataset::DatasetCounts;
use medic_detect::predict::eval::{self as predict_eval, CalibrationGoal, PredictEval};
use medic_detect::predict::{
    AgentSeries, Dataset, DatasetConfig, PredictError, Predictor, PredictorCard, TrainingProvenance,
};

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
    /// What the alarm threshold is calibrated for on the validation split.
    pub calibration: CalibrationGoal,
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
    /// Alarm threshold calibrated on validation.
    pub threshold: f64,
    /// Validation figures at the threshold.
    pub val: PredictEval,
    /// Test figures at the threshold (held-out agents, and the last time range of the others).
    pub test: PredictEval,
    /// The written ONNX file.
    pub model_path: PathBuf,
    /// The written card.
    pub card_path: PathBuf,
    /// The card.
    pub card: PredictorCard,
    /// Seconds spent building the dataset.
    pub dataset_seconds: f64,
}

/// The validation and test parts of `series` as whole series for event-level evaluation:
/// validation is the time between the dataset's cuts of the agents not held out, test the
/// held-out agents whole and the time after the second cut of the others. Each part starts
/// early enough for its first window to end at the cut.
fn split_series(ds: &Dataset, series: &[AgentSeries]) -> (Vec<AgentSeries>, Vec<AgentSeries>) {
    let (cut1, cut2) = ds.cuts;
    let warmup = ds
        .step
        .saturating_mul(u32::try_from(ds.feature_window + ds.seq_len - 2).unwrap_or(u32::MAX));
    let (mut val, mut test) = (Vec::new(), Vec::new());
    for (s, &held_out) in series.iter().zip(&ds.held_out) {
        if held_out {
            test.push(s.clone());
        } else {
            let end = s.time(s.len());
            val.push(s.slice(cut1 - warmup, cut2));
            test.push(s.slice(cut2 - warmup, end));
        }
    }
    val.retain(|s| !s.is_empty());
    test.retain(|s| !s.is_empty());
    (val, test)
}

/// Builds the dataset from `series`, trains, writes `<out_dir>/<model_name>.onnx` with its
/// card, calibrates the alarm threshold on the validation split ([`predict_eval::calibrate`]:
/// best event F1 within the false-alarm goal), evaluates the test split at that threshold,
/// and writes the model again with the final card.
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

    std::fs::create_dir_all(&cfg.out_dir).map_err(|source| Error::Io {
        path: cfg.out_dir.display().to_string(),
        source,
    })?;
    let model_path = model_path(&cfg.out_dir, &cfg.model_name);
    let (val_series, test_series) = split_series(&ds, series);
    // The scores do not depend on the threshold: write the model once to score through tract
    // (the runtime the daemon uses), then again with the calibrated threshold and figures.
    let provisional = card(&ds, cfg, &trained, 0.5, None, None);
    medic_detect::predict::write_model(&trained.weights, &provisional, &model_path)?;
    // tract's own LSTM lowering: the calibrated threshold is one of these scores, and the
    // shipped model's card was calibrated with it (the predictor's default, the folded
    // lowering, rounds differently by ~1e-7 and would change the card's bits).
    let mut predictor = Predictor::load_lowered(
        &model_path,
        medic_detect::predict::PredictorOptions {
            // Agents are scored one after the other, each ending in a padded batch.
            batch: 256,
        },
        medic_detect::predict::LstmLowering::Tract,
    )?;
    let val_scores = predict_eval::score(&mut predictor, &val_series, 1)?;
    let (threshold, val) = predict_eval::calibrate(&val_scores, &val_series, &cfg.calibration)?;
    let test_scores = predict_eval::score(&mut predictor, &test_series, 1)?;
    let test = predict_eval::analyze(
        &test_scores,
        &test_series,
        threshold,
        cfg.calibration.merge_gap,
    )?;
    let card = card(&ds, cfg, &trained, threshold, Some(&val), Some(&test));
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

/// The figures of an evaluation as card metrics, keys prefixed with `prefix_`.
pub fn eval_metrics(prefix: &str, e: &PredictEval) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        m.insert(format!("{prefix}_{k}"), v);
    };
    put("precision", e.precision);
    put("recall", e.recall);
    put("f1", e.f1);
    put("false_alarms_per_agent_day", e.false_alarms_per_agent_day);
    put("failures", e.predictable_failures as f64);
    put("failures_caught", e.caught as f64);
    put("sudden_failures", e.sudden_failures as f64);
    put("agent_days", e.agent_days);
    for (k, v) in [
        ("lead_time_p10_s", e.lead_time_s.p10),
        ("lead_time_median_s", e.lead_time_s.p50),
        ("lead_time_p90_s", e.lead_time_s.p90),
        ("pr_auc", e.pr_auc),
        ("roc_auc", e.roc_auc),
    ] {
        if let Some(v) = v {
            put(k, v);
        }
    }
    put("window_precision", e.window.precision);
    put("window_recall", e.window.recall);
    put("window_f1", e.window.f1);
    m
}

fn card(
    ds: &Dataset,
    cfg: &RunConfig,
    trained: &Trained,
    threshold: f64,
    val: Option<&PredictEval>,
    test: Option<&PredictEval>,
) -> PredictorCard {
    let mut metrics = BTreeMap::new();
    if let Some(val) = val {
        metrics.extend(eval_metrics("val", val));
    }
    if let Some(test) = test {
        metrics.extend(eval_metrics("test", test));
    }
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
    // No wall times here: the card is part of the model file, which must come out bit for bit
    // the same from the same command (the times are printed instead).
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
                "{}; trained with burn {BURN_VERSION} (flex cpu backend); threshold: best event \
                 F1 on validation with at most {} false alarms per agent-day",
                cfg.source, cfg.calibration.max_false_alarms_per_agent_day
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
