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

/// Utilisation of one target for the scale rules and the HPA rule: the highest of its queue
/// depth over `max_queue_depth` and its CPU (the rate of `process_cpu_seconds_total` between
/// two scrapes, in cores) over `max_cpu`, where those limits are configured. 1.0 is the
/// limit itself, so a tier's `scale_threshold` of 0.8 scales at 80 % of it, before the
/// performance or resources level fails.
#[derive(Debug, Default)]
pub struct Load {
    /// The queue gauge (found on the first scrape that has one).
    queue: Option<String>,
    /// The CPU counter at the previous scrape: (when, seconds).
    cpu: Option<(Timestamp, f64)>,
    utilization: Option<f64>,
}

impl Load {
    /// The latest utilisation, if a configured limit had a value to compare.
    pub fn utilization(&self) -> Option<f64> {
        self.utilization
    }

    /// Adds one scrape's samples at `at`, against the limits `max_queue_depth` and
    /// `max_cpu`; the updated utilisation.
    pub fn push(
        &mut self,
        at: Timestamp,
        samples: &[MetricSample],
        max_queue_depth: Option<f64>,
        max_cpu: Option<f64>,
    ) -> Option<f64> {
        let mut u: Option<f64> = None;
        let mut add = |v: f64| {
            if v.is_finite() && v >= 0.0 {
                u = Some(u.map_or(v, |u: f64| u.max(v)));
            }
        };
        if let Some(max) = max_queue_depth.filter(|m| *m > 0.0) {
            if self.queue.is_none() {
                self.queue = perf_metrics_for(samples).queue_depth;
            }
            if let Some(name) = &self.queue {
                let depth: f64 = samples
                    .iter()
                    .filter(|s| s.name == *name)
                    .map(|s| s.value)
                    .sum();
                if samples.iter().any(|s| s.name == *name) {
                    add(depth / max);
                }
            }
        }
        let cpu = samples
            .iter()
            .find(|s| s.name == "process_cpu_seconds_total")
            .map(|s| s.value);
        if let (Some(max), Some(now_s)) = (max_cpu.filter(|m| *m > 0.0), cpu) {
            if let Some((then, then_s)) = self.cpu {
                let dt = at.since(then).as_secs_f64();
                // a counter that went backwards is a restarted process: no rate this time
                if dt > 0.0 && now_s >= then_s {
                    add((now_s - then_s) / dt / max);
                }
            }
            self.cpu = Some((at, now_s));
        }
        self.utilization = u;
        u
    }
}

/// When one target's version last changed, from the `version` label of a `*_build_info`,
/// `*_version_info` or `*_version` gauge (the Prometheus convention, as in `go_build_info`
/// or `prometheus_build_info`; the demo agent's `demo_version`). The first version seen is no
/// change; a different one later is, at the scrape that shows it.
#[derive(Debug, Default)]
pub struct Version {
    current: Option<String>,
    changed_at: Option<Timestamp>,
}

impl Version {
    /// When the version last changed while medic watched, if it did.
    pub fn changed_at(&self) -> Option<Timestamp> {
        self.changed_at
    }

    /// Adds one scrape's samples at `at`.
    pub fn push(&mut self, at: Timestamp, samples: &[MetricSample]) {
        let Some(version) = samples
            .iter()
            .filter(|s| {
                ["_build_info", "_version_info", "_version"]
                    .iter()
                    .any(|suffix| s.name.ends_with(suffix))
            })
            .find_map(|s| s.labels.iter().find(|(k, _)| k == "version"))
            .map(|(_, v)| v.as_str())
        else {
            return;
        };
        match &self.current {
            Some(v) if v == version => {}
            Some(_) => {
                self.current = Some(version.to_owned());
                self.changed_at = Some(at);
            }
            None => self.current = Some(version.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> MetricSample {
        MetricSample {
            target: "t".into(),
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
            at: Timestamp::from_secs(0),
        }
    }

    #[test]
    fn load_is_the_highest_of_queue_and_cpu_against_their_limits() {
        let mut l = Load::default();
        let at = Timestamp::from_secs;
        let scrape = |queue: f64, cpu: f64| {
            vec![
                sample("jobs_queue_depth", &[("shard", "a")], queue / 2.0),
                sample("jobs_queue_depth", &[("shard", "b")], queue / 2.0),
                sample("process_cpu_seconds_total", &[], cpu),
            ]
        };
        // no CPU rate from one scrape; the queue alone: 30 of 100
        assert_eq!(
            l.push(at(0), &scrape(30.0, 10.0), Some(100.0), Some(0.5)),
            Some(0.3)
        );
        // 9 CPU-seconds over 10 s = 0.9 cores of 0.5 allowed: 1.8, above the queue's 0.4
        let u = l
            .push(at(10), &scrape(40.0, 19.0), Some(100.0), Some(0.5))
            .unwrap();
        assert!((u - 1.8).abs() < 1e-9, "{u}");
        // a restarted process (counter went backwards): the queue only
        assert_eq!(
            l.push(at(20), &scrape(50.0, 1.0), Some(100.0), Some(0.5)),
            Some(0.5)
        );
        // without limits there is nothing to measure against
        let mut l = Load::default();
        assert_eq!(l.push(at(0), &scrape(30.0, 10.0), None, None), None);
        assert_eq!(l.push(at(10), &scrape(30.0, 20.0), None, None), None);
        assert_eq!(l.utilization(), None);
    }

    #[test]
    fn a_version_change_is_seen_at_the_scrape_that_shows_it() {
        let mut v = Version::default();
        let info = |version: &str| vec![sample("app_build_info", &[("version", version)], 1.0)];
        v.push(Timestamp::from_secs(0), &info("1.4.0"));
        assert_eq!(v.changed_at(), None, "the first version seen is no change");
        v.push(Timestamp::from_secs(15), &info("1.4.0"));
        v.push(Timestamp::from_secs(30), &[]);
        assert_eq!(v.changed_at(), None);
        v.push(Timestamp::from_secs(45), &info("1.5.0"));
        assert_eq!(v.changed_at(), Some(Timestamp::from_secs(45)));
        v.push(Timestamp::from_secs(60), &info("1.5.0"));
        assert_eq!(v.changed_at(), Some(Timestamp::from_secs(45)));
        // the demo agent's gauge, and a version label on another metric does not count
        let mut v = Version::default();
        let demo = |version: &str| {
            vec![
                sample("http_requests_total", &[("version", "9.9")], 1.0),
                sample("demo_version", &[("name", "a"), ("version", version)], 1.0),
            ]
        };
        v.push(Timestamp::from_secs(0), &demo("1"));
        v.push(Timestamp::from_secs(5), &demo("2"));
        assert_eq!(v.changed_at(), Some(Timestamp::from_secs(5)));
    }

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
