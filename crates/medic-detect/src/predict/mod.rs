//! Failure prediction: P(a failure starts within the horizon) from the last `seq_len` steps of
//! a target's metrics, with a stacked LSTM stored as standard ONNX and run with tract.
//!
//! - [`steps`]: per-step features through the one feature path ([`crate::features`]).
//! - [`dataset`]: sliding windows with labels (positive, negative, averted, sudden), split by
//!   agent and time, scaler fitted on the training split only.
//! - [`weights`]: framework-independent network weights ([`LstmWeights`]); training (in
//!   `medic-train`) produces them.
//! - [`reference`]: a plain-Rust forward pass, the ground truth for the ONNX export.
//! - [`onnx`]: writes the weights as ONNX (`LSTM`, `Gemm`, `Relu`, `Sigmoid`) with the card.
//! - [`predictor`]: tract inference ([`Predictor`]): optimised fixed-shape plans, reused
//!   states, batches, contributing factors and a recommended preemptive action.
//! - [`eval`]: window- and event-level evaluation (precision, recall, lead time, false
//!   alarms per agent-day, look-alikes, sudden failures apart).
//! - [`card`]: the model card (features, scaler, seq_len, horizon, threshold, metrics,
//!   provenance) beside the ONNX file.
//!
//! Invariant: the features a model was trained on are the features it is scored on: both go
//! through [`steps::StepFeaturizer`] with the spec stored in the card.

pub mod card;
pub mod dataset;
pub mod eval;
pub mod onnx;
pub mod predictor;
pub mod reference;
pub mod steps;
pub mod weights;

pub use card::{PredictorCard, TrainingProvenance};
pub use dataset::{AgentSeries, Dataset, DatasetConfig, build};
pub use onnx::{write_model, write_onnx};
pub use predictor::{Factor, LstmLowering, NodeTime, Prediction, Predictor, PredictorOptions};
pub use weights::{DenseLayer, LstmLayer, LstmWeights};

use crate::features::FeatureError;

/// Errors of the failure predictor.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The weights are inconsistent.
    #[error("invalid weights: {0}")]
    Weights(String),
    /// The model card is inconsistent or does not match the model.
    #[error("invalid model card: {0}")]
    Card(String),
    /// The model card is not valid JSON of the expected shape.
    #[error("model card is not valid json")]
    CardJson(#[source] serde_json::Error),
    /// Input data is inconsistent (missing column, lengths, step).
    #[error("bad data: {0}")]
    Data(String),
    /// The feature path refused the input.
    #[error("features")]
    Feature(#[from] FeatureError),
    /// The ONNX model cannot be loaded, is not the expected network, or failed to run.
    #[error("onnx model {path}: {message}")]
    Model {
        /// The model file.
        path: String,
        /// What went wrong (tract's error chain, flattened).
        message: String,
    },
    /// The model's features or shapes do not match what the fleet provides.
    #[error("model does not match: {0}")]
    Mismatch(String),
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
