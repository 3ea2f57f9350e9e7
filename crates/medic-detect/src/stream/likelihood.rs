//! Anomaly likelihood: how unusual the recent level of a raw score is.

use super::window::Window;
use super::{StreamError, check};

/// The "anomaly likelihood" post-processing of Numenta's NAB detector (Ahmad et al. 2017):
/// raw scores are averaged over a short window; the distribution of that average over a long
/// window is modelled as a normal (variance floored, so a perfectly quiet history does not make
/// every ripple infinitely unlikely); the output is the tail probability `Q` of the current
/// short average, mapped to `[0, 1]` by `min(1, −log10(Q) / 10)` so that very small tail
/// probabilities stay distinct (NAB's `computeLogLikelihood` is the same map up to rounding).
/// Only increases are anomalous: a short average at or below the long-run mean scores 0.
/// Q uses statrs' `erfc`, which stays accurate far into the tail.
#[derive(Debug, Clone)]
pub struct AnomalyLikelihood {
    short: Window,
    long: Window,
    min_history: usize,
    var_floor: f64,
}

impl AnomalyLikelihood {
    /// Averages over `short` raw scores, models the last `long` averages, and outputs 0 until
    /// `min_history` averages are known. `var_floor` bounds the modelled variance from below.
    pub fn new(
        short: usize,
        long: usize,
        min_history: usize,
        var_floor: f64,
    ) -> Result<AnomalyLikelihood, StreamError> {
        check("short", short as f64, short >= 1, "at least 1")?;
        check("long", long as f64, long >= 2, "at least 2")?;
        check(
            "min_history",
            min_history as f64,
            min_history >= 2 && min_history <= long,
            "in 2..=long",
        )?;
        check("var_floor", var_floor, var_floor > 0.0, "> 0")?;
        Ok(AnomalyLikelihood {
            short: Window::new(short),
            long: Window::new(long),
            min_history,
            var_floor,
        })
    }

    /// Takes the next raw score and returns the likelihood score in `[0, 1]`.
    pub fn update(&mut self, raw: f64) -> f64 {
        self.short.push(raw);
        let avg = self.short.mean();
        let score = if self.long.len() < self.min_history {
            0.0
        } else {
            let sd = self.long.variance().max(self.var_floor).sqrt();
            let z = (avg - self.long.mean()) / sd;
            if z <= 0.0 {
                // Not above the usual level: nothing unlikely (and no erfc to pay for).
                self.long.push(avg);
                return 0.0;
            }
            let tail = 0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2);
            if tail > 0.0 {
                (-tail.log10() / 10.0).clamp(0.0, 1.0)
            } else {
                1.0
            }
        };
        self.long.push(avg);
        score
    }

    /// Forgets the history.
    pub fn reset(&mut self) {
        self.short.clear();
        self.long.clear();
    }
}
