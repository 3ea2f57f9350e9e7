//! Per-target detection in the daemon, on scraped samples: a memory-leak forecast from the
//! RSS trend, and the error rate for the circuit-break rule.
//!
//! The forecast is statistical, not learned: a least-squares trend over the last
//! `window` RSS samples ([`medic_detect::stream::Trend`], with its t-test so that noise does
//! not count as a trend) extrapolated to the target's `max_rss_bytes`. When the limit would
//! be crossed within the horizon, the target gets a [`PredictionFinding`] with an alarm and
//! `restart` recommended, so the engine recycles it *before* it crosses the limit. Its
//! "probability" is the forecast's confidence: `1 − eta / horizon`, clamped to `[0, 1]`.

//!
//! The error rate is the change of the target's error counter over the change of its request
//! counter across the last [`ERROR_WINDOW`] scrapes (the metrics are found by the usual naming
//! conventions, as `medic check` does: `*_requests_total`, `*_errors_total` or a `code`
//! label). It is only stated when at least [`MIN_REQUESTS`] requests were answered in that
//! window, so an idle target, or one whose circuit is open (no work reaches it), has no error
//! rate rather than a stale or noisy one. A counter that went backwards (the process
//! restarted) starts the window over.

use std::collections::VecDeque;

use medic_collect::check::perf_metrics_for;
use medic_collect::scrape::{PerfMetrics, PerfSnapshot};
use medic_core::{
    AnomalyFinding, AnomalyKind, MetricSample, PredictionFinding, Strategy, Timestamp,
};
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

/// Scrapes the error rate is computed over (the rate covers the counters' change between the
/// oldest and the newest).
pub const ERROR_WINDOW: usize = 3;
/// Fewer requests than this in the window give no error rate.
pub const MIN_REQUESTS: f64 = 4.0;

/// The error rate of one target's requests over its recent scrapes.
#[derive(Debug, Default)]
pub struct ErrorRate {
    /// Which metrics count requests and errors (found on the first scrape that has them).
    spec: Option<PerfMetrics>,
    /// (requests, errors) of the last scrapes, oldest first; at most [`ERROR_WINDOW`].
    window: VecDeque<(f64, f64)>,
    rate: Option<f64>,
}

impl ErrorRate {
    /// Forgets the counters (after a restart the process counts from zero).
    pub fn reset(&mut self) {
        self.window.clear();
        self.rate = None;
    }

    /// The current error rate in `[0, 1]`, if enough requests were answered.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Adds one scrape's samples; the updated rate.
    pub fn push(&mut self, samples: &[MetricSample]) -> Option<f64> {
        if self.spec.is_none() {
            let mut spec = perf_metrics_for(samples);
            if spec.requests.is_none() || spec.errors.is_none() {
                return None;
            }
            // Latency is not needed here; without it no bucket list is built per scrape.
            spec.latency = None;
            spec.queue_depth = None;
            self.spec = Some(spec);
        }
        let spec = self.spec.as_ref()?;
        let snap = PerfSnapshot::from_samples(samples, spec);
        let (Some(requests), Some(errors)) = (snap.requests, snap.errors) else {
            self.reset();
            return None;
        };
        if let Some(&(r, e)) = self.window.back()
            && (requests < r || errors < e)
        {
            self.window.clear();
        }
        if self.window.len() == ERROR_WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((requests, errors));
        let (r0, e0) = self.window.front().copied().unwrap_or((requests, errors));
        let answered = requests - r0;
        self.rate = (answered >= MIN_REQUESTS).then(|| ((errors - e0) / answered).clamp(0.0, 1.0));
        self.rate
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

    fn page(requests: u64, errors: u64) -> Vec<MetricSample> {
        let at = Timestamp::from_secs(1);
        let t = medic_core::TargetId::new("t");
        let sample = |name: &str, value: u64| MetricSample {
            target: t.clone(),
            name: name.to_owned(),
            labels: Vec::new(),
            value: value as f64,
            at,
        };
        vec![
            sample("demo_requests_total", requests),
            sample("demo_errors_total", errors),
            sample("process_resident_memory_bytes", 1 << 20),
        ]
    }

    #[test]
    fn error_rate_over_the_window_and_none_without_traffic() {
        let mut e = ErrorRate::default();
        assert_eq!(e.push(&page(0, 0)), None, "one scrape is no window");
        assert_eq!(e.push(&page(4, 0)), Some(0.0));
        assert_eq!(e.push(&page(8, 2)), Some(0.25));
        // The burst: every request fails; the window slides past the good ones.
        assert_eq!(e.push(&page(12, 6)), Some(0.75));
        assert_eq!(e.push(&page(16, 10)), Some(1.0));
        // No work reaches it (circuit open): once the window holds no requests, no rate
        // rather than the last one.
        assert_eq!(e.push(&page(16, 10)), Some(1.0));
        assert_eq!(e.push(&page(16, 10)), None);
        assert_eq!(e.push(&page(17, 10)), None, "too few requests");
        // A restart: counters start over, and so does the window.
        assert_eq!(e.push(&page(1, 0)), None);
        assert_eq!(e.push(&page(9, 0)), Some(0.0));
        e.reset();
        assert_eq!(e.rate(), None);
        // A target without request metrics never has a rate.
        let mut none = ErrorRate::default();
        assert_eq!(none.push(&page(0, 0)[2..]), None);
        assert_eq!(none.push(&page(0, 0)[2..]), None);
    }
}
