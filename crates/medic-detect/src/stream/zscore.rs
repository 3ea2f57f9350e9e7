//! Rolling z-score over a fixed window.

use super::window::Window;
use super::{Detection, StreamDetector, StreamError, check};

/// Scores a sample by `|x − mean| / std` of the previous `window` samples (the sample itself is
/// not part of its own reference). Score `min(1, |z| / (2 limit))`, flagged when `|z| >= limit`.
///
/// With fewer than `min_samples` past samples the score is 0. A zero standard deviation makes
/// any departure from the constant infinitely surprising (score 1) and a repeat score 0.
#[derive(Debug, Clone)]
pub struct RollingZScore {
    window: Window,
    limit: f64,
    min_samples: usize,
}

impl RollingZScore {
    /// A z-score over `window` past samples with alarm limit `limit` (in standard deviations).
    pub fn new(window: usize, limit: f64) -> Result<RollingZScore, StreamError> {
        check("window", window as f64, window >= 2, "at least 2")?;
        check("limit", limit, limit > 0.0, "> 0")?;
        Ok(RollingZScore {
            window: Window::new(window),
            limit,
            min_samples: window.min(10),
        })
    }

    /// The z value of `x` against the current window (0 before enough samples).
    pub fn z(&self, x: f64) -> f64 {
        if self.window.len() < self.min_samples {
            return 0.0;
        }
        let d = x - self.window.mean();
        let sd = self.window.variance().sqrt();
        if sd > 1e-12 * self.window.mean().abs().max(1e-300) {
            d / sd
        } else if d.abs() > 1e-12 * x.abs().max(1e-300) {
            f64::INFINITY * d.signum()
        } else {
            0.0
        }
    }
}

impl StreamDetector for RollingZScore {
    fn update(&mut self, x: f64) -> Detection {
        let z = self.z(x);
        self.window.push(x);
        Detection::from_ratio(z.abs(), self.limit)
    }

    fn reset(&mut self) {
        self.window.clear();
    }
}
