//! Streaming detectors (rolling z-score, MAD, EWMA, CUSUM, trend, Mann-Kendall), fixed memory.
//!
//! Every detector takes one `f64` sample at a time, keeps a fixed amount of state allocated at
//! construction and returns a [`Detection`]: a score in `[0, 1]` and a flag. By convention the
//! flag is raised exactly when the score reaches 0.5, so a score is "how far towards twice the
//! detector's alarm limit" the sample is.
//!
//! | detector | state | cost per sample |
//! |---|---|---|
//! | [`RollingZScore`] | ring buffer of `w` samples, running mean and M2 | O(1) (exact re-sum every `4w` samples: amortised O(1)) |
//! | [`RollingMad`] | median and MAD trackers (4 floats) | O(1); an approximation, see its docs |
//! | [`Ewma`] | fast EWMA, slow mean and variance | O(1) |
//! | [`Cusum`] | two sums, slow and fast means | O(1) |
//! | [`Trend`] | ring buffer of `w` samples, running least-squares sums | O(1) (exact re-sum every `4w` samples) |
//! | [`MannKendall`] | ring buffer of `w` samples, `S` and the tie correction | O(w) sign comparisons (exact); Sen's slope O(w²) on request |
//! | [`AnomalyLikelihood`] | two ring buffers of raw scores | O(1) |
//!
//! [`Combiner`] merges these (and an optional isolation-forest score) into one anomaly score per
//! target and timestamp; its reason text is built only on request ([`Combiner::reason`]).
//! [`NabDetector`] is the configuration evaluated on NAB (`medic eval nab`).
//!
//! Invariant: `update` never allocates; all buffers are sized by the constructor.

mod combine;
mod cusum;
mod ewma;
mod likelihood;
mod mad;
mod mann_kendall;
mod nab;
mod seasonal;
mod trend;
mod window;
mod zscore;

pub use combine::{Combined, Combiner, CombinerWeights, Part, TargetStream};
pub use cusum::Cusum;
pub use ewma::Ewma;
pub use likelihood::AnomalyLikelihood;
pub use mad::RollingMad;
pub use mann_kendall::{
    MANN_KENDALL_MAX_WINDOW, MannKendall, MannKendallTest, TrendDirection, mann_kendall,
};
pub use nab::{NabDetector, NabDetectorKind};
pub use seasonal::Seasonal;
pub use trend::Trend;
pub use zscore::RollingZScore;

/// The output of a streaming detector for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Detection {
    /// Anomaly score in `[0, 1]`.
    pub score: f64,
    /// Whether the detector's alarm limit was crossed (`score >= 0.5`).
    pub flag: bool,
}

impl Detection {
    /// A detection from a statistic and its alarm limit: `score = min(1, stat / (2 limit))`.
    pub fn from_ratio(stat: f64, limit: f64) -> Detection {
        let score = if stat.is_nan() {
            0.0
        } else {
            (stat / (2.0 * limit)).clamp(0.0, 1.0)
        };
        Detection {
            score,
            flag: score >= 0.5,
        }
    }
}

/// A detector fed one sample at a time.
pub trait StreamDetector {
    /// Takes the next sample and scores it against the past (no look-ahead).
    fn update(&mut self, x: f64) -> Detection;
    /// Forgets everything seen, keeping the configuration and buffers.
    fn reset(&mut self);
}

/// Invalid detector configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// A parameter is out of its range.
    #[error("{name} = {value} is out of range: {expected}")]
    OutOfRange {
        /// Parameter name.
        name: &'static str,
        /// Given value.
        value: f64,
        /// What is accepted.
        expected: &'static str,
    },
    /// A batch input holds a NaN or an infinity.
    #[error("sample {index} is not finite")]
    NonFinite {
        /// Position of the first such sample.
        index: usize,
    },
}

pub(crate) fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), StreamError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(StreamError::OutOfRange {
            name,
            value,
            expected,
        })
    }
}
