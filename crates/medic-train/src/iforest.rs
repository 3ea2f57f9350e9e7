//! `medic train iforest`: medic-detect's isolation forest fitted on per-step feature rows of
//! a fleet history, written as medic-detect's model file with its card.
//!
//! Rules:
//! - **Features.** Each agent's raw columns go through the one feature path
//!   ([`StepFeaturizer`], the same per-step rows the failure predictor reads; spec and window
//!   are stored in the card). Rows with a non-finite feature (dark steps, the first step of a
//!   series for slopes) are skipped and counted: the forest needs finite values.
//! - **Split by time.** For every agent, the steps before `1 − test_fraction` of the overall
//!   time range train the scaler (standard, stored in the card) and the forest; the later
//!   steps are scored for the card's figures. Unsupervised: labels are never used to fit.
//! - **Figures** (when the history has failures): a test row is *pre-failure* when a
//!   predictable failure starts within `horizon` after it; the card gets the ROC AUC of the
//!   score for pre-failure vs other rows and the fraction of each flagged at the threshold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_core::Timestamp;
use medic_detect::features::FeatureSpec;
use medic_detect::iforest::{IsolationForest, Params};
use medic_detect::iforest::{ModelFile, TrainingSummary};
use medic_detect::predict::AgentSeries;
use medic_detect::predict::dataset::step_features;
use medic_detect::predict::steps::{DEFAULT_FEATURE_WINDOW, StepFeaturizer, default_step_spec};
use medic_detect::scaler::{Scaler, ScalerKind};
use ndarray::{Array2, ArrayView2};

/// Errors of forest training.
#[derive(Debug, thiserror::Error)]
pub enum IforestError {
    /// The configuration is invalid.
    #[error("invalid iforest config: {0}")]
    Config(String),
    /// The data cannot be trained on.
    #[error("iforest training data: {0}")]
    Data(String),
    /// The feature path refused the data.
    #[error("features")]
    Features(#[from] medic_detect::predict::PredictError),
    /// The feature spec is invalid.
    #[error("feature spec")]
    Spec(#[from] medic_detect::features::FeatureError),
    /// Fitting, scoring or writing the forest failed.
    #[error("isolation forest")]
    Forest(#[from] medic_detect::iforest::Error),
    /// The scaler could not be fitted.
    #[error("scaler")]
    Scaler(#[from] medic_detect::scaler::ScalerError),
    /// The output directory could not be created.
    #[error("{path}")]
    Io {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How to train the forest.
#[derive(Debug, Clone)]
pub struct IforestConfig {
    /// Per-step feature spec (default: the failure predictor's, [`default_step_spec`]).
    pub feature_spec: FeatureSpec,
    /// Trailing raw rows behind each step (default [`DEFAULT_FEATURE_WINDOW`]).
    pub feature_window: usize,
    /// Forest parameters (trees, ψ, seed, contamination).
    pub params: Params,
    /// Fraction of the time range, at the end, scored for the figures (default 0.2).
    pub test_fraction: f64,
    /// A row is pre-failure when a predictable failure starts this soon after (default 30 min).
    pub horizon: Duration,
    /// Where the data came from (goes into the card).
    pub source: String,
    /// Directory the model is written to (created if missing).
    pub out_dir: PathBuf,
    /// File stem of the model (default `anomaly_iforest`; the file is `<stem>.json`).
    pub model_name: String,
}

impl Default for IforestConfig {
    fn default() -> Self {
        IforestConfig {
            feature_spec: default_step_spec(),
            feature_window: DEFAULT_FEATURE_WINDOW,
            params: Params::default(),
            test_fraction: 0.2,
            horizon: Duration::from_secs(30 * 60),
            source: String::new(),
            out_dir: PathBuf::from("models"),
            model_name: "anomaly_iforest".into(),
        }
    }
}

/// What a training run produced.
#[derive(Debug)]
pub struct IforestReport {
    /// Rows the forest was fitted on.
    pub train_rows: usize,
    /// Rows scored for the figures.
    pub test_rows: usize,
    /// Rows skipped for a non-finite feature.
    pub skipped_rows: usize,
    /// Test rows that are pre-failure.
    pub test_pre_failure_rows: usize,
    /// The figures written into the card.
    pub metrics: BTreeMap<String, f64>,
    /// The written model file.
    pub model_path: PathBuf,
    /// The model and its card.
    pub model: ModelFile,
}

/// Fits the forest on `series` and writes `<out_dir>/<model_name>.json`.
pub fn run(series: &[AgentSeries], cfg: &IforestConfig) -> Result<IforestReport, IforestError> {
    if !(cfg.test_fraction >= 0.0 && cfg.test_fraction < 1.0) {
        return Err(IforestError::Config(format!(
            "test_fraction {} not in [0, 1)",
            cfg.test_fraction
        )));
    }
    if cfg.model_name.is_empty() || cfg.model_name.contains(['/', '\\']) {
        return Err(IforestError::Config(format!(
            "model name {:?} must be a plain file stem",
            cfg.model_name
        )));
    }
    let mut featurizer = StepFeaturizer::new(cfg.feature_spec.clone(), cfg.feature_window)?;
    let width = featurizer.width();
    let t0 = series.iter().map(|s| s.start).min().unwrap_or_default();
    let t_end = series
        .iter()
        .map(|s| s.time(s.len()))
        .max()
        .unwrap_or_default();
    let span = t_end.since(t0).as_secs_f64();
    let cut = t0 + Duration::from_secs_f64(span * (1.0 - cfg.test_fraction));

    let (mut train, mut test, mut test_pre) = (Vec::new(), Vec::new(), Vec::new());
    let (mut skipped, mut first_t, mut last_t) = (0usize, None::<Timestamp>, None::<Timestamp>);
    for s in series {
        let f = step_features(s, &mut featurizer)?;
        for (i, row) in f.chunks_exact(width).enumerate() {
            if !row.iter().all(|v| v.is_finite()) {
                skipped += 1;
                continue;
            }
            let t = s.time(i);
            if t < cut {
                train.extend_from_slice(row);
                first_t = Some(first_t.map_or(t, |f| f.min(t)));
                last_t = Some(last_t.map_or(t, |l| l.max(t)));
            } else {
                test.extend_from_slice(row);
                let until = t + cfg.horizon;
                test_pre.push(
                    s.failures
                        .iter()
                        .any(|m| m.predictable && m.at > t && m.at <= until),
                );
            }
        }
    }
    let n_train = train.len() / width;
    if n_train == 0 {
        return Err(IforestError::Data(format!(
            "no complete feature row before the test cut ({skipped} rows skipped for missing \
             values; is every column of the spec present?)"
        )));
    }
    let mut x = Array2::from_shape_vec((n_train, width), train)
        .map_err(|e| IforestError::Data(e.to_string()))?;
    let scaler = Scaler::fit(ScalerKind::Standard, x.view())?;
    scaler.transform_in_place(x.view_mut())?;
    let forest = IsolationForest::fit(x.view(), cfg.params)?;

    let n_test = test.len() / width;
    let mut metrics = BTreeMap::new();
    metrics.insert("train_rows".into(), n_train as f64);
    metrics.insert("test_rows".into(), n_test as f64);
    metrics.insert("skipped_rows".into(), skipped as f64);
    if n_test > 0 {
        let mut xt = Array2::from_shape_vec((n_test, width), test)
            .map_err(|e| IforestError::Data(e.to_string()))?;
        scaler.transform_in_place(xt.view_mut())?;
        let mut scores = vec![0.0; n_test];
        forest.score_into(xt.view(), &mut scores)?;
        figures(&scores, &test_pre, forest.threshold(), &mut metrics);
    }
    let training = TrainingSummary {
        rows: n_train,
        time_range: first_t.zip(last_t).map(|(a, b)| [a, b]),
        source: format!(
            "{}; per-step features over {} trailing rows; rows before {:.0}% of the time range \
             (test: the rest)",
            cfg.source,
            cfg.feature_window,
            (1.0 - cfg.test_fraction) * 100.0
        ),
        metrics: metrics.clone(),
    };
    let mut model = ModelFile::new(forest, featurizer.names().to_vec(), Some(scaler), training)?;
    model.card.feature_spec = Some(featurizer.spec().clone());
    model.card.feature_window = Some(cfg.feature_window);
    std::fs::create_dir_all(&cfg.out_dir).map_err(|source| IforestError::Io {
        path: cfg.out_dir.display().to_string(),
        source,
    })?;
    let model_path = cfg.out_dir.join(format!("{}.json", cfg.model_name));
    model.save(&model_path)?;
    Ok(IforestReport {
        train_rows: n_train,
        test_rows: n_test,
        skipped_rows: skipped,
        test_pre_failure_rows: test_pre.iter().filter(|&&p| p).count(),
        metrics,
        model_path,
        model,
    })
}

fn figures(scores: &[f64], pre: &[bool], threshold: f64, m: &mut BTreeMap<String, f64>) {
    let flagged = |want: bool| {
        let (mut n, mut f) = (0usize, 0usize);
        for (&s, &p) in scores.iter().zip(pre) {
            if p == want {
                n += 1;
                f += usize::from(s > threshold);
            }
        }
        (n > 0).then(|| f as f64 / n as f64)
    };
    if let Some(r) = flagged(false) {
        m.insert("test_flagged_other".into(), r);
    }
    if let Some(r) = flagged(true) {
        m.insert("test_flagged_pre_failure".into(), r);
    }
    if let Some(auc) = medic_detect::eval::metrics::roc_auc(scores, pre) {
        m.insert("test_auc_pre_failure".into(), auc);
    }
}

/// Loads a model written by [`run`] and scores `rows` (unscaled per-step feature rows of its
/// spec); for checking a written model end to end.
pub fn score_rows(model: &ModelFile, rows: ArrayView2<'_, f64>) -> Result<Vec<f64>, IforestError> {
    let mut x = rows.to_owned();
    if let Some(s) = &model.card.scaler {
        s.transform_in_place(x.view_mut())?;
    }
    let mut out = vec![0.0; x.nrows()];
    model.forest.score_into(x.view(), &mut out)?;
    Ok(out)
}

/// The model path [`run`] writes for `out_dir` and `model_name`.
pub fn model_path(out_dir: &Path, model_name: &str) -> PathBuf {
    out_dir.join(format!("{model_name}.json"))
}
