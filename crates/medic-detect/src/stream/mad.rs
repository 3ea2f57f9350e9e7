//! Robust rolling location and scale: median and MAD by stochastic quantile tracking.

use super::{Detection, StreamDetector, StreamError, check};

/// Robust z-score `|x − median| / (1.4826 MAD)`, with the median and the MAD (median absolute
/// deviation) tracked in O(1) time and four floats of memory.
///
/// **An approximation.** An exact sliding-window MAD needs the window sorted (O(w) per sample
/// with a sorted array, O(log w) with an order-statistic tree, and the MAD's inner median moves
/// with the outer one). Instead both medians are tracked by stochastic gradient steps on the
/// pinball loss (`q += η s sign(x − q)`), the "frugal streaming" quantile estimator, with a step
/// proportional to the current scale `s` so it is scale-invariant, and `η = max(rate, 1/n)` so
/// the first samples move it quickly. The estimate forgets with a time constant of about
/// `1/rate` samples, like a window of that length, and its error is of order `rate` times the
/// scale. A few isolated outliers move it by at most `η s` each, which is what makes it robust.
#[derive(Debug, Clone)]
pub struct RollingMad {
    rate: f64,
    limit: f64,
    median: f64,
    mad: f64,
    mean_abs_dev: f64,
    n: u64,
    warmup: u64,
}

impl RollingMad {
    /// A tracker forgetting at `rate` per sample (`0 < rate < 1`, e.g. `0.01` ≈ a 100-sample
    /// window) with alarm limit `limit` in robust standard deviations.
    pub fn new(rate: f64, limit: f64) -> Result<RollingMad, StreamError> {
        check("rate", rate, rate > 0.0 && rate < 1.0, "in (0, 1)")?;
        check("limit", limit, limit > 0.0, "> 0")?;
        Ok(RollingMad {
            rate,
            limit,
            median: 0.0,
            mad: 0.0,
            mean_abs_dev: 0.0,
            n: 0,
            warmup: 10,
        })
    }

    /// Current median estimate.
    pub fn median(&self) -> f64 {
        self.median
    }

    /// Current MAD estimate.
    pub fn mad(&self) -> f64 {
        self.mad
    }

    fn scale(&self) -> f64 {
        // The MAD of data with many ties is 0; fall back to a fraction of the (winsorised) mean
        // absolute deviation, then to a tiny relative value, so steps never stall.
        self.mad
            .max(0.1 * self.mean_abs_dev)
            .max(1e-9 * self.median.abs())
            .max(1e-12)
    }

    /// Robust z of `x` against the current estimates.
    pub fn robust_z(&self, x: f64) -> f64 {
        if self.n < self.warmup {
            return 0.0;
        }
        (x - self.median).abs() / (1.4826 * self.scale())
    }
}

impl StreamDetector for RollingMad {
    fn update(&mut self, x: f64) -> Detection {
        let z = self.robust_z(x);
        self.n += 1;
        if self.n == 1 {
            self.median = x;
        } else {
            let eta = self.rate.max(1.0 / self.n as f64);
            let s = self.scale();
            let dev = (x - self.median).abs();
            // Winsorised at 3 scales so gross outliers cannot inflate the fallback scale, while
            // a genuine jump to a far level still grows it geometrically.
            self.mean_abs_dev += eta * (dev.min(3.0 * s) - self.mean_abs_dev);
            self.median += eta * s * sign(x - self.median);
            self.mad = (self.mad + eta * s * sign(dev - self.mad)).max(0.0);
        }
        Detection::from_ratio(z, self.limit)
    }

    fn reset(&mut self) {
        self.median = 0.0;
        self.mad = 0.0;
        self.mean_abs_dev = 0.0;
        self.n = 0;
    }
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}
