//! Trend detection: least-squares slope over a fixed window with a t-test.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::window::Window;
use super::{Detection, StreamDetector, StreamError, check};

/// Slope significance over the last `window` samples: the least-squares slope `b` of the
/// samples against their position, its standard error, and `t = b / se(b)` with `w − 2` degrees
/// of freedom. Flagged when `|t|` exceeds the two-sided critical value for `alpha` (computed once
/// with statrs at construction, so `update` does no special-function work).
/// Score `min(1, |t| / (2 t_crit))`.
///
/// The sums `Σy` and `Σ k y` (k = position in the window) slide in O(1): when the oldest sample
/// leaves, every other position drops by one, so `Σ k y` loses `Σy` minus the leaving sample.
/// Values are centred on an offset and re-summed exactly every `4w` samples (amortised O(1)).
///
/// Chosen over an incremental Mann-Kendall statistic, whose exact update needs the new sample
/// compared with every sample in the window (O(w)). Note that autocorrelated series make the
/// t-test over-confident; the alarm limit is therefore a ranking, not a calibrated p-value.
#[derive(Debug, Clone)]
pub struct Trend {
    window: Window,
    t_crit: f64,
    offset: f64,
    sum: f64,
    sum_ky: f64,
    since_resum: usize,
    slope: f64,
    t: f64,
}

impl Trend {
    /// A trend test over `window` (>= 4) samples at two-sided level `alpha` in (0, 0.5).
    pub fn new(window: usize, alpha: f64) -> Result<Trend, StreamError> {
        check("window", window as f64, window >= 4, "at least 4")?;
        check("alpha", alpha, alpha > 0.0 && alpha < 0.5, "in (0, 0.5)")?;
        let t_crit = StudentsT::new(0.0, 1.0, (window - 2) as f64)
            .map(|d| d.inverse_cdf(1.0 - alpha / 2.0))
            .unwrap_or(f64::NAN);
        check("t_crit", t_crit, t_crit > 0.0, "a finite critical value")?;
        Ok(Trend {
            window: Window::new(window),
            t_crit,
            offset: 0.0,
            sum: 0.0,
            sum_ky: 0.0,
            since_resum: 0,
            slope: 0.0,
            t: 0.0,
        })
    }

    /// Least-squares slope per sample over the current window.
    pub fn slope(&self) -> f64 {
        self.slope
    }

    /// t statistic of the slope over the current window.
    pub fn t(&self) -> f64 {
        self.t
    }

    /// The critical |t| for the configured `alpha`.
    pub fn t_crit(&self) -> f64 {
        self.t_crit
    }

    fn resum(&mut self) {
        self.since_resum = 0;
        self.offset = self.window.mean();
        self.sum = 0.0;
        self.sum_ky = 0.0;
        for k in 0..self.window.len() {
            let y = self.window.get(k) - self.offset;
            self.sum += y;
            self.sum_ky += k as f64 * y;
        }
    }
}

impl StreamDetector for Trend {
    fn update(&mut self, x: f64) -> Detection {
        let len_before = self.window.len();
        let y = x - self.offset;
        match self.window.push(x) {
            None => {
                self.sum_ky += len_before as f64 * y;
                self.sum += y;
            }
            Some(old) => {
                let old = old - self.offset;
                self.sum_ky -= self.sum - old;
                self.sum_ky += (len_before - 1) as f64 * y;
                self.sum += y - old;
            }
        }
        self.since_resum += 1;
        if self.since_resum >= 4 * self.window.capacity() {
            self.resum();
        }
        let n = self.window.len() as f64;
        if self.window.len() < 4 {
            return Detection::default();
        }
        let s_t = n * (n - 1.0) / 2.0;
        let s_tt = n * (n * n - 1.0) / 12.0;
        let s_ty = self.sum_ky - s_t * self.sum / n;
        let s_yy = self.window.variance() * (n - 1.0);
        self.slope = s_ty / s_tt;
        let resid = (s_yy - self.slope * s_ty).max(0.0) / (n - 2.0);
        let se = (resid / s_tt).sqrt();
        self.t = if se > 1e-12 * self.slope.abs() && se > 0.0 {
            self.slope / se
        } else if self.slope.abs() > 1e-12 * self.window.mean().abs().max(1e-300) {
            f64::INFINITY * self.slope.signum()
        } else {
            0.0
        };
        // Score only once the window is full: short windows give unstable slopes.
        if self.window.len() < self.window.capacity() {
            return Detection::default();
        }
        Detection::from_ratio(self.t.abs(), self.t_crit)
    }

    fn reset(&mut self) {
        self.window.clear();
        self.offset = 0.0;
        self.sum = 0.0;
        self.sum_ky = 0.0;
        self.since_resum = 0;
        self.slope = 0.0;
        self.t = 0.0;
    }
}
