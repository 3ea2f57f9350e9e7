//! Two-sided CUSUM change-point detector with reset.

use super::{Detection, StreamDetector, StreamError, check};

/// Two-sided tabular CUSUM (Page 1954) on standardised samples `e = (x − μ)/σ`:
/// `S⁺ = max(0, S⁺ + e − k)`, `S⁻ = max(0, S⁻ − e − k)`; a change is flagged when either sum
/// exceeds `h`. `μ` and `σ` follow the data slowly (rate `baseline_rate`). On an alarm both sums
/// reset to 0 and `μ` jumps to a fast mean of the recent samples, so a step change is reported
/// once and the new level becomes the baseline. Score `min(1, max(S⁺, S⁻) / (2h))`.
#[derive(Debug, Clone)]
pub struct Cusum {
    k: f64,
    h: f64,
    baseline_rate: f64,
    pos: f64,
    neg: f64,
    mean: f64,
    var: f64,
    fast_mean: f64,
    n: u64,
    warmup: u64,
    alarms: u64,
}

impl Cusum {
    /// Allowance `k` >= 0 and decision interval `h` > 0 in standard deviations,
    /// `baseline_rate` in (0, 1).
    pub fn new(k: f64, h: f64, baseline_rate: f64) -> Result<Cusum, StreamError> {
        check("k", k, k >= 0.0, ">= 0")?;
        check("h", h, h > 0.0, "> 0")?;
        check(
            "baseline_rate",
            baseline_rate,
            baseline_rate > 0.0 && baseline_rate < 1.0,
            "in (0, 1)",
        )?;
        Ok(Cusum {
            k,
            h,
            baseline_rate,
            pos: 0.0,
            neg: 0.0,
            mean: 0.0,
            var: 0.0,
            fast_mean: 0.0,
            n: 0,
            warmup: 20,
            alarms: 0,
        })
    }

    /// How many change points have been flagged.
    pub fn alarms(&self) -> u64 {
        self.alarms
    }
}

impl StreamDetector for Cusum {
    fn update(&mut self, x: f64) -> Detection {
        self.n += 1;
        if self.n == 1 {
            self.mean = x;
            self.fast_mean = x;
            return Detection::default();
        }
        let sd = self.var.sqrt().max(1e-9 * self.mean.abs()).max(1e-12);
        let mut stat = 0.0;
        if self.n > self.warmup {
            let e = ((x - self.mean) / sd).clamp(-1e6, 1e6);
            self.pos = (self.pos + e - self.k).max(0.0);
            self.neg = (self.neg - e - self.k).max(0.0);
            stat = self.pos.max(self.neg);
        }
        let a = self.baseline_rate.max(1.0 / self.n as f64);
        self.fast_mean += 0.2_f64.max(1.0 / self.n as f64) * (x - self.fast_mean);
        if stat > self.h {
            self.alarms += 1;
            self.pos = 0.0;
            self.neg = 0.0;
            self.mean = self.fast_mean;
        } else {
            let d = x - self.mean;
            self.mean += a * d;
            self.var = (1.0 - a) * (self.var + a * d * d);
        }
        Detection::from_ratio(stat, self.h)
    }

    fn reset(&mut self) {
        self.pos = 0.0;
        self.neg = 0.0;
        self.mean = 0.0;
        self.var = 0.0;
        self.fast_mean = 0.0;
        self.n = 0;
        self.alarms = 0;
    }
}
