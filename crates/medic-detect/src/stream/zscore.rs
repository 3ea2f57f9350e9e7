//! Rolling z-score over a fixed window.

use super::window::Window;
use super::{Detection, StreamDetector, StreamError, check};

/// Scores a sample by `|x − mean| / std` of the previous `window` samples (the sample itself is
/// not part of its own reference). Score `min(1, |z| / (2 limit))`, flagged when `|z| >= limit`.
///
/// With fewer than `min_samples` past samples the score is 0. A constant window makes any
/// departure from the constant infinitely surprising (score 1) and a repeat score 0.
#[derive(Debug, Clone)]
pub struct RollingZScore {
    window: Window,
    limit: f64,
    min_samples: usize,
    population: bool,
    /// Length of the current run of identical samples, to know exactly when the window is
    /// constant (sliding sums leave rounding residue and cannot tell).
    same_run: usize,
    last: f64,
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
            population: false,
            same_run: 0,
            last: f64::NAN,
        })
    }

    /// The textbook baseline used to compare detectors on NAB: scores only once `window` past
    /// samples are known, with the population standard deviation (divide by `n`).
    pub fn baseline(window: usize, limit: f64) -> Result<RollingZScore, StreamError> {
        let mut z = RollingZScore::new(window, limit)?;
        z.min_samples = window;
        z.population = true;
        Ok(z)
    }

    /// The z value of `x` against the current window (0 before enough samples).
    pub fn z(&self, x: f64) -> f64 {
        if self.window.len() < self.min_samples {
            return 0.0;
        }
        if self.same_run >= self.window.len() {
            // A constant window: any departure is infinitely surprising.
            return if x == self.last {
                0.0
            } else {
                f64::INFINITY.copysign(x - self.last)
            };
        }
        let d = x - self.window.mean();
        let n = self.window.len() as f64;
        let var = self.window.variance();
        let sd = if self.population {
            (var * (n - 1.0) / n).sqrt()
        } else {
            var.sqrt()
        };
        d / sd.max(f64::MIN_POSITIVE)
    }
}

impl StreamDetector for RollingZScore {
    fn update(&mut self, x: f64) -> Detection {
        let z = self.z(x);
        self.window.push(x);
        self.same_run = if x == self.last { self.same_run + 1 } else { 1 };
        self.last = x;
        Detection::from_ratio(z.abs(), self.limit)
    }

    fn reset(&mut self) {
        self.window.clear();
        self.same_run = 0;
        self.last = f64::NAN;
    }
}
