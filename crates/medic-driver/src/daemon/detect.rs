//! Per-target detection in the daemon, on scraped samples: a memory-leak forecast from the
//! RSS trend, and the error rate for the circuit-break rule.
//!
//! The forecast is statistical, not learned: a least-squares trend over the last
//! `window` RSS samples ([`medic_detect::stream::Trend`], with its t-test so that noise does
//! not count as a trend) extrapolated to the target's `max_rss_bytes`. When the limit would
//! be crossed within the horizon, the target gets a [`PredictionFinding`] with an alarm and
//! `restart` recommended, so the engine recycles it *before* it crosses the limit. Its
//! "probability" is the forecast's confidence: `1 − eta / horizon`, clamped to `[0, 1]`.

use medic_core::{AnomalyFinding, AnomalyKind, PredictionFinding, Strategy, Timestamp};
use medic_detect::stream::{StreamDetector, Trend};

/// The RSS samples the trend is fitted over.
const WINDOW: usize = 8;
/// Forecasts further out than this raise no alarm.
const HORIZON_S: f64 = 120.0;

/// A memory-leak forecast for one target.
#[derive(Debug)]
pub struct LeakForecast {
    trend: Trend,
    last: Option<(Timestamp, f64)>,
    first: Option<Timestamp>,
    n: usize,
}

impl Default for LeakForecast {
    fn default() -> Self {
        LeakForecast {
            // Constant parameters the constructor accepts (tested below).
            trend: Trend::new(WINDOW, 0.01).expect("WINDOW >= 4 and alpha in (0, 0.5)"),
            last: None,
            first: None,
            n: 0,
        }
    }
}

impl LeakForecast {
    /// Forgets the history (after a restart the process starts from scratch).
    pub fn reset(&mut self) {
        *self = LeakForecast::default();
    }

    /// Adds an RSS sample.
    pub fn push(&mut self, at: Timestamp, rss_bytes: f64) {
        if !rss_bytes.is_finite() {
            return;
        }
        if let Some((last_at, _)) = self.last
            && at <= last_at
        {
            return;
        }
        self.trend.update(rss_bytes);
        self.first.get_or_insert(at);
        self.last = Some((at, rss_bytes));
        self.n += 1;
    }

    /// Seconds until the limit is crossed at the current trend, when the trend is
    /// significant and upwards.
    pub fn eta_s(&self, limit_bytes: f64) -> Option<f64> {
        let (last_at, rss) = self.last?;
        let first = self.first?;
        if self.n < WINDOW {
            return None;
        }
        let slope_per_sample = self.trend.slope();
        if slope_per_sample <= 0.0 || self.trend.t() < self.trend.t_crit() {
            return None;
        }
        let span_s = last_at.since(first).as_secs_f64();
        let per_sample_s = span_s / (self.n - 1) as f64;
        if per_sample_s <= 0.0 {
            return None;
        }
        let slope_per_s = slope_per_sample / per_sample_s;
        Some(((limit_bytes - rss) / slope_per_s).max(0.0))
    }

    /// The same forecast as a resource anomaly (the trend test found RSS rising significantly
    /// and the limit is within the horizon), so the policy's leak rule applies.
    pub fn anomaly(&self, limit_bytes: f64) -> Option<AnomalyFinding> {
        let p = self.prediction(limit_bytes)?;
        if !p.alarm {
            return None;
        }
        let (_, rss) = self.last?;
        let eta = self.eta_s(limit_bytes)?;
        Some(AnomalyFinding {
            score: p.probability,
            anomalous: true,
            kind: AnomalyKind::Resource,
            top_features: vec![("rss_slope".to_owned(), self.trend.t())],
            reason: format!(
                "rss {:.0} MiB rising (trend t={:.1}), limit {:.0} MiB in about {eta:.0}s",
                rss / 1048576.0,
                self.trend.t(),
                limit_bytes / 1048576.0
            ),
        })
    }

    /// The forecast as a prediction finding (alarm when the limit is crossed within the
    /// horizon).
    pub fn prediction(&self, limit_bytes: f64) -> Option<PredictionFinding> {
        let eta = self.eta_s(limit_bytes)?;
        let probability = (1.0 - eta / HORIZON_S).clamp(0.0, 1.0);
        Some(PredictionFinding {
            probability,
            alarm: eta < HORIZON_S,
            horizon_s: HORIZON_S as u64,
            factors: vec![("rss_slope".to_owned(), probability)],
            recommended: Strategy::Restart,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_valid() {
        assert!(Trend::new(WINDOW, 0.01).is_ok());
    }

    #[test]
    fn a_steady_leak_is_forecast_and_flat_memory_is_not() {
        let mut leak = LeakForecast::default();
        let mut flat = LeakForecast::default();
        for i in 0..12u64 {
            let at = Timestamp::from_secs(1000 + i);
            leak.push(
                at,
                100e6 + 5e6 * i as f64 + if i % 2 == 0 { 1e5 } else { -1e5 },
            );
            flat.push(at, 100e6 + if i % 2 == 0 { 1e6 } else { -1e6 });
        }
        // 155 MB now, +5 MB/s, limit 200 MB: about 9 s left.
        let eta = leak.eta_s(200e6).expect("a trend");
        assert!((eta - 9.0).abs() < 1.0, "{eta}");
        let p = leak.prediction(200e6).expect("a forecast");
        assert!(p.alarm && p.probability > 0.9);
        let a = leak.anomaly(200e6).expect("an anomaly");
        assert!(a.anomalous && a.kind == AnomalyKind::Resource);
        assert_eq!(flat.anomaly(200e6), None);
        assert_eq!(flat.eta_s(200e6), None);
        leak.reset();
        assert_eq!(leak.eta_s(200e6), None);
    }
}
