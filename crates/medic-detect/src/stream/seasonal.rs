//! Seasonality-aware baseline: the expected value for the current time of day (and week).

use super::{Detection, StreamError, check};

/// Scores a sample against the value usually seen at the same phase of a period (for example
/// the same 5 minutes of the day): a fixed table of `slots` exponentially weighted means, one
/// per phase bin, predicts `x̂` as the mean of the sample's bin (not smoothed with its
/// neighbours, which would blur sharp daily edges into false alarms); the
/// residual `x − x̂` is scaled by an exponentially weighted mean absolute residual.
/// Until a bin has `min_count` samples the prediction is a plain EWMA of the level, so the
/// detector degrades to a level detector on series without the period.
/// Score `min(1, |r| / (2 limit))` with `r` the residual in (approximate) standard deviations.
///
/// Fixed memory (`2 × slots` floats), O(1) per sample. Needs the sample's timestamp.
#[derive(Debug, Clone)]
pub struct Seasonal {
    period_us: i64,
    slot_us: i64,
    means: Box<[f64]>,
    counts: Box<[u32]>,
    rate: f64,
    min_count: u32,
    limit: f64,
    level: f64,
    abs_resid: f64,
    n: u64,
}

impl Seasonal {
    /// A profile over `period_us` microseconds split into `slots` bins, bins forgetting at
    /// `rate`, trusted after `min_count` samples, alarm at `limit` standard deviations.
    pub fn new(
        period_us: i64,
        slots: usize,
        rate: f64,
        min_count: u32,
        limit: f64,
    ) -> Result<Seasonal, StreamError> {
        check("slots", slots as f64, slots >= 3, "at least 3")?;
        check(
            "period_us",
            period_us as f64,
            period_us >= slots as i64,
            ">= slots",
        )?;
        check("rate", rate, rate > 0.0 && rate < 1.0, "in (0, 1)")?;
        check("limit", limit, limit > 0.0, "> 0")?;
        Ok(Seasonal {
            period_us,
            slot_us: period_us / slots as i64,
            means: vec![0.0; slots].into_boxed_slice(),
            counts: vec![0; slots].into_boxed_slice(),
            rate,
            min_count,
            limit,
            level: 0.0,
            abs_resid: 0.0,
            n: 0,
        })
    }

    /// Scores `x` taken at `t` (microseconds since the epoch), then learns it.
    pub fn update(&mut self, t: i64, x: f64) -> Detection {
        let slots = self.means.len();
        let slot = ((t.rem_euclid(self.period_us) / self.slot_us) as usize).min(slots - 1);
        let trusted = self.counts[slot] >= self.min_count;
        self.n += 1;
        if self.n == 1 {
            self.level = x;
        }
        let predicted = if trusted {
            self.means[slot]
        } else {
            self.level
        };
        let resid = x - predicted;
        let scale = 1.25 * self.abs_resid.max(1e-9 * x.abs()).max(1e-12);
        let stat = if self.n > 20 {
            resid.abs() / scale
        } else {
            0.0
        };
        let a = self.rate.max(1.0 / self.n as f64);
        self.abs_resid += a * (resid.abs() - self.abs_resid);
        self.level += 0.1_f64.max(1.0 / self.n as f64) * (x - self.level);
        let c = &mut self.counts[slot];
        *c = c.saturating_add(1);
        let b = self.rate.max(1.0 / f64::from(*c));
        self.means[slot] += b * (x - self.means[slot]);
        Detection::from_ratio(stat, self.limit)
    }

    /// Forgets everything learned.
    pub fn reset(&mut self) {
        self.means.fill(0.0);
        self.counts.fill(0);
        self.level = 0.0;
        self.abs_resid = 0.0;
        self.n = 0;
    }
}
