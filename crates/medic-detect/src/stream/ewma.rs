//! EWMA control chart with limits from a slowly adapting baseline.

use super::{Detection, StreamDetector, StreamError, check};

/// EWMA control chart (Roberts 1959): `z_t = λ x_t + (1 − λ) z_{t−1}` compared with a baseline
/// mean `μ` and standard deviation `σ` that adapt slowly (rate `baseline_rate`); the control
/// limits are `μ ± L σ sqrt(λ / (2 − λ))`. Score `min(1, |z − μ| / (2 L σ_z))`.
#[derive(Debug, Clone)]
pub struct Ewma {
    lambda: f64,
    limit: f64,
    baseline_rate: f64,
    z: f64,
    mean: f64,
    var: f64,
    n: u64,
    warmup: u64,
}

impl Ewma {
    /// `lambda` in (0, 1], `limit` (L) > 0, `baseline_rate` in (0, 1).
    pub fn new(lambda: f64, limit: f64, baseline_rate: f64) -> Result<Ewma, StreamError> {
        check("lambda", lambda, lambda > 0.0 && lambda <= 1.0, "in (0, 1]")?;
        check("limit", limit, limit > 0.0, "> 0")?;
        check(
            "baseline_rate",
            baseline_rate,
            baseline_rate > 0.0 && baseline_rate < 1.0,
            "in (0, 1)",
        )?;
        Ok(Ewma {
            lambda,
            limit,
            baseline_rate,
            z: 0.0,
            mean: 0.0,
            var: 0.0,
            n: 0,
            warmup: 10,
        })
    }
}

impl StreamDetector for Ewma {
    fn update(&mut self, x: f64) -> Detection {
        self.n += 1;
        if self.n == 1 {
            self.z = x;
            self.mean = x;
            return Detection::default();
        }
        self.z = self.lambda * x + (1.0 - self.lambda) * self.z;
        let sigma_z = (self.var * self.lambda / (2.0 - self.lambda)).sqrt();
        let gap = (self.z - self.mean).abs();
        let stat = if self.n <= self.warmup {
            0.0
        } else if sigma_z > 1e-12 * self.mean.abs().max(1e-300) {
            gap / sigma_z
        } else if gap > 1e-12 * self.mean.abs().max(1e-300) {
            f64::INFINITY
        } else {
            0.0
        };
        // Baseline update after scoring, with 1/n early so it starts as a plain mean/variance.
        let a = self.baseline_rate.max(1.0 / self.n as f64);
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        Detection::from_ratio(stat, self.limit)
    }

    fn reset(&mut self) {
        self.z = 0.0;
        self.mean = 0.0;
        self.var = 0.0;
        self.n = 0;
    }
}
