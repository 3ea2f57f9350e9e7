//! Detection: turning a target's history into a [`medic_core::Finding`].
//!
//! - [`features`]: the one feature path from a window of samples to a named feature vector,
//!   used identically at training and scoring time.
//! - [`scaler`]: standard and robust scalers, fitted at training and stored in model files.
//! - [`iforest`]: isolation forest with flat node arrays, attribution and model files.
//! - [`predict`]: failure prediction (LSTM windows, ONNX export, tract inference).
//! - [`stream`]: O(1)-per-sample streaming detectors and the score combiner.
//! - [`diagnosis`]: error-pattern root-cause analysis.
//! - [`eval`]: evaluation on public benchmarks (ODDS, NAB, SMD) and metrics.
//!
//! Invariant: the scoring path does not allocate per sample; it writes into caller buffers.

pub mod diagnosis;
pub mod eval;
pub mod features;
pub mod iforest;
pub mod predict;
pub mod scaler;
pub mod stream;
