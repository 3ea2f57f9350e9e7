//! The failure predictor's model card: everything needed to use and judge an ONNX model besides
//! its weights. Stored as `<model>.card.json` beside `<model>.onnx` and, identically, in the ONNX
//! file's `metadata_props` under [`CARD_METADATA_KEY`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PredictError;
use super::dataset::Dataset;
use super::weights::LstmWeights;
use crate::features::FeatureSpec;
use crate::scaler::Scaler;

/// Format tag of failure-predictor cards.
pub const CARD_FORMAT: &str = "medic-failure-lstm";
/// Current card version.
pub const CARD_VERSION: u32 = 1;
/// Key of the card JSON in the ONNX file's `metadata_props`.
pub const CARD_METADATA_KEY: &str = "medic.card";

/// Where the model came from and how it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingProvenance {
    /// Data source, e.g. `sim seed=7 agents=120 days=14`, a store path or a Prometheus URL.
    pub source: String,
    /// Training seed.
    pub seed: u64,
    /// medic version that trained the model.
    pub medic_version: String,
    /// Window counts (e.g. `train_positive`, `averted_excluded`) and other sizes.
    pub counts: BTreeMap<String, u64>,
    /// Hyper-parameters (e.g. `epochs`, `learning_rate`, `dropout`).
    pub params: BTreeMap<String, f64>,
}

/// The model card of a failure-prediction model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictorCard {
    /// Always [`CARD_FORMAT`].
    pub format: String,
    /// Always [`CARD_VERSION`].
    pub version: u32,
    /// Per-step feature spec (raw series and aggregations); fixes the raw series a target must
    /// provide and, through it, the feature order.
    pub feature_spec: FeatureSpec,
    /// Feature names in order (must equal `feature_spec.names()`; kept for readers of the card).
    pub feature_names: Vec<String>,
    /// Trailing raw rows behind each step's features.
    pub feature_window: usize,
    /// Steps per window.
    pub seq_len: usize,
    /// Seconds between raw rows (and steps).
    pub step_s: u64,
    /// A window is positive when a failure starts within this many seconds after its end.
    pub horizon_s: u64,
    /// Scaler applied to each step's features (fitted on the training split only).
    pub scaler: Scaler,
    /// Alarm threshold on the probability.
    pub threshold: f64,
    /// LSTM hidden sizes, first to last.
    pub lstm_sizes: Vec<usize>,
    /// Hidden dense widths (the final 1-output layer not included).
    pub dense_sizes: Vec<usize>,
    /// Evaluation figures, e.g. `val_pr_auc`, `test_precision`.
    pub metrics: BTreeMap<String, f64>,
    /// Provenance.
    pub training: TrainingProvenance,
}

impl PredictorCard {
    /// A card for `weights` trained on `dataset` (spec, feature window, scaler, seq_len,
    /// horizon and step from the dataset; sizes from the weights), with empty metrics.
    pub fn for_dataset(
        dataset: &Dataset,
        weights: &LstmWeights,
        threshold: f64,
        training: TrainingProvenance,
    ) -> Self {
        PredictorCard {
            format: CARD_FORMAT.to_owned(),
            version: CARD_VERSION,
            feature_spec: dataset.feature_spec.clone(),
            feature_names: dataset.feature_names.clone(),
            feature_window: dataset.feature_window,
            seq_len: dataset.seq_len,
            step_s: dataset.step.as_secs().max(1),
            horizon_s: dataset.horizon.as_secs(),
            scaler: dataset.scaler.clone(),
            threshold,
            lstm_sizes: weights.lstm.iter().map(|l| l.hidden).collect(),
            dense_sizes: weights
                .dense
                .iter()
                .take(weights.dense.len().saturating_sub(1))
                .map(|d| d.output)
                .collect(),
            metrics: BTreeMap::new(),
            training,
        }
    }

    /// The card of a model whose weights were not fitted to a dataset (random weights in
    /// tests and benches, or a bare ONNX file described by hand): the default step spec
    /// ([`super::steps::default_step_spec`]) with its 10-row feature window, 20 steps of 60 s,
    /// a 30-min horizon, an identity scaler and threshold 0.5.
    pub fn untrained(lstm_sizes: &[usize], dense_sizes: &[usize]) -> Self {
        let spec = super::steps::default_step_spec();
        let n = spec.names().len();
        PredictorCard {
            format: CARD_FORMAT.to_owned(),
            version: CARD_VERSION,
            feature_names: spec.names(),
            feature_spec: spec,
            feature_window: 10,
            seq_len: 20,
            step_s: 60,
            horizon_s: 1800,
            scaler: Scaler {
                kind: crate::scaler::ScalerKind::Standard,
                center: vec![0.0; n],
                scale: vec![1.0; n],
            },
            threshold: 0.5,
            lstm_sizes: lstm_sizes.to_vec(),
            dense_sizes: dense_sizes.to_vec(),
            metrics: BTreeMap::new(),
            training: TrainingProvenance::default(),
        }
    }

    /// The card path for a model path: `models/x.onnx` → `models/x.card.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("card.json")
    }

    /// Checks internal consistency: format, names equal to the spec's names, scaler width,
    /// positive sizes, finite threshold in `[0, 1]`.
    pub fn validate(&self) -> Result<(), PredictError> {
        let bad = |m: String| Err(PredictError::Card(m));
        if self.format != CARD_FORMAT || self.version != CARD_VERSION {
            return bad(format!(
                "format {:?} version {}, expected {CARD_FORMAT:?} version {CARD_VERSION}",
                self.format, self.version
            ));
        }
        FeatureSpec::new(
            self.feature_spec.series.clone(),
            self.feature_spec.ewma_alpha,
        )
        .map_err(|e| PredictError::Card(format!("feature spec: {e}")))?;
        let names = self.feature_spec.names();
        if names != self.feature_names {
            return bad(format!(
                "feature_names {:?} differ from the spec's {:?}",
                self.feature_names, names
            ));
        }
        if self.scaler.width() != names.len()
            || self.scaler.scale.len() != names.len()
            || self
                .scaler
                .scale
                .iter()
                .any(|s| !(*s > 0.0 && s.is_finite()))
            || self.scaler.center.iter().any(|c| !c.is_finite())
        {
            return bad("scaler does not match the features".into());
        }
        if self.seq_len == 0 || self.feature_window == 0 || self.step_s == 0 {
            return bad("seq_len, feature_window and step_s must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return bad(format!("threshold {} not in [0, 1]", self.threshold));
        }
        Ok(())
    }

    /// The card as pretty JSON.
    pub fn to_json(&self) -> String {
        // Plain structs of strings, integers and finite floats always serialise.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses and validates a card.
    pub fn from_json(text: &str) -> Result<Self, PredictError> {
        let card: PredictorCard = serde_json::from_str(text).map_err(PredictError::CardJson)?;
        card.validate()?;
        Ok(card)
    }

    /// Writes the card (temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), PredictError> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Reads and validates a card.
    pub fn load(path: &Path) -> Result<Self, PredictError> {
        let text = std::fs::read_to_string(path).map_err(|source| PredictError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PredictError> {
    let io = |source| PredictError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
