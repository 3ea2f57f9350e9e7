//! Scraping a target's metrics endpoint into [`MetricSample`]s, and reading the performance
//! level (request latency, error rate, queue depth) out of the samples.
//!
//! A scrape is one capped, deadlined GET ([`fetch_capped`]) followed by the tolerant parser:
//! malformed lines are counted in the report, never fatal; a body cut at the byte cap loses
//! only its last, partial line.

use std::time::Duration;

use medic_core::{MetricSample, TargetId, Timestamp};

use crate::http::{HttpError, fetch_capped};
use crate::prom::{self, Format, ParseStats, histogram_quantile};

/// Bodies at least this large are parsed on the blocking pool, not on an async worker.
const BLOCKING_PARSE_BYTES: usize = 256 * 1024;

/// A scrape that produced no samples at all.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The endpoint could not be fetched (connect, timeout, broken body).
    #[error("fetching metrics from {url} failed")]
    Fetch {
        /// The metrics URL.
        url: String,
        /// What went wrong.
        #[source]
        source: HttpError,
    },
    /// The endpoint answered with a non-2xx status.
    #[error("metrics endpoint {url} answered http status {status}")]
    Status {
        /// The metrics URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The parse task on the blocking pool did not finish (it panicked or was cancelled).
    #[error("parsing metrics from {url} did not complete")]
    ParseTask {
        /// The metrics URL.
        url: String,
        /// The join failure.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// What one scrape produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeReport {
    /// Every valid sample, stamped with the exposition's timestamp if it had one, else `now`.
    pub samples: Vec<MetricSample>,
    /// Malformed lines skipped (details in `stats.errors`).
    pub skipped_lines: usize,
    /// Whether the body hit the byte cap (its last, partial line was dropped).
    pub truncated: bool,
    /// The parser's statistics for this page.
    pub stats: ParseStats,
}

/// Scrapes `url` for `target`: GET within `timeout`, body capped at `max_bytes`, parsed
/// tolerantly. The format is the response's `Content-Type` (`application/openmetrics-text`
/// or `text/plain`), else detected from the body (a final `# EOF` means OpenMetrics): a page
/// cut at the cap has lost its `# EOF`, and OpenMetrics timestamps are seconds where
/// Prometheus 0.0.4 has milliseconds.
pub async fn scrape(
    client: &reqwest::Client,
    target: &TargetId,
    url: &str,
    timeout: Duration,
    max_bytes: usize,
    now: Timestamp,
) -> Result<ScrapeReport, ScrapeError> {
    let fetched = fetch_capped(client, url, timeout, max_bytes)
        .await
        .map_err(|source| ScrapeError::Fetch {
            url: url.to_owned(),
            source,
        })?;
    if !(200..300).contains(&fetched.status) {
        return Err(ScrapeError::Status {
            url: url.to_owned(),
            status: fetched.status,
        });
    }
    if fetched.body.len() < BLOCKING_PARSE_BYTES {
        return Ok(samples_from_page(
            target,
            &fetched.body,
            fetched.content_type.as_deref(),
            fetched.truncated,
            now,
        ));
    }
    let target = target.clone();
    tokio::task::spawn_blocking(move || {
        samples_from_page(
            &target,
            &fetched.body,
            fetched.content_type.as_deref(),
            fetched.truncated,
            now,
        )
    })
    .await
    .map_err(|source| ScrapeError::ParseTask {
        url: url.to_owned(),
        source,
    })
}

/// Parses a fetched page into samples of `target` (the synchronous half of [`scrape`]), in
/// the format `content_type` names, else the one the body shows ([`Format::detect`]).
///
/// When `truncated`, everything after the last newline is a partial line and is dropped.
pub fn samples_from_page(
    target: &TargetId,
    body: &[u8],
    content_type: Option<&str>,
    truncated: bool,
    now: Timestamp,
) -> ScrapeReport {
    let body = if truncated {
        memchr::memrchr(b'\n', body).map_or(&body[..0], |i| &body[..=i])
    } else {
        body
    };
    let format = Format::detect(content_type, body);
    let mut stats = ParseStats::default();
    let mut samples = Vec::new();
    prom::parse_bytes(body, format, &mut stats, |s| {
        let at = s.timestamp_ms.map_or(now, |ms| {
            Timestamp::from_millis(u64::try_from(ms).unwrap_or(0))
        });
        samples.push(MetricSample {
            target: target.clone(),
            name: s.name().into_owned(),
            labels: s
                .labels()
                .map(|l| (l.name().into_owned(), l.value().into_owned()))
                .collect(),
            value: s.value,
            at,
        });
    });
    ScrapeReport {
        samples,
        skipped_lines: stats.skipped_lines,
        truncated,
        stats,
    }
}

/// Where the errors of the error rate are counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    /// A counter of failed requests of its own, e.g. `http_request_errors_total`.
    Counter(String),
    /// The series of the requests counter whose label `label` starts with `prefix`,
    /// e.g. `code` starting with `5`.
    Label {
        /// The label name.
        label: String,
        /// The value prefix that marks an error.
        prefix: String,
    },
}

/// Which metrics carry a target's performance signals. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerfMetrics {
    /// Family name of a request-latency histogram (`<name>_bucket`, `_sum`, `_count`) or
    /// summary (`<name>_sum`, `_count`).
    pub latency: Option<String>,
    /// Counter of all requests (all its series are summed).
    pub requests: Option<String>,
    /// Where errors are counted; needs `requests`.
    pub errors: Option<ErrorSource>,
    /// Gauge of queued work (all its series are summed).
    pub queue_depth: Option<String>,
}

/// Cumulative counters read from one scrape, for [`PerfSnapshot::reading`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerfSnapshot {
    /// Latency buckets summed by `le` across series: `(le, cumulative count)`.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of observed latencies (`_sum`).
    pub latency_sum: Option<f64>,
    /// Number of observed latencies (`_count`).
    pub latency_count: Option<f64>,
    /// Total requests.
    pub requests: Option<f64>,
    /// Failed requests.
    pub errors: Option<f64>,
    /// Current queue depth.
    pub queue_depth: Option<f64>,
}

/// The performance level's signals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerfReading {
    /// 99th percentile latency from the histogram buckets.
    pub latency_p99: Option<f64>,
    /// Mean latency, `sum / count`.
    pub latency_mean: Option<f64>,
    /// Failed requests divided by requests, in [0, 1].
    pub error_rate: Option<f64>,
    /// Queue depth.
    pub queue_depth: Option<f64>,
}

fn add(slot: &mut Option<f64>, v: f64) {
    if v.is_finite() {
        *slot = Some(slot.unwrap_or(0.0) + v);
    }
}

/// Like [`add`], but a `+Inf` gauge is kept (the sum stays `+Inf`): an unbounded queue is
/// above any limit, not "no data". NaN and `-Inf` say nothing about the depth and are skipped.
fn add_gauge(slot: &mut Option<f64>, v: f64) {
    if v.is_finite() || v == f64::INFINITY {
        *slot = Some(slot.unwrap_or(0.0) + v);
    }
}

impl PerfSnapshot {
    /// Reads the metrics named in `spec` from one scrape's samples.
    pub fn from_samples(samples: &[MetricSample], spec: &PerfMetrics) -> PerfSnapshot {
        let mut snap = PerfSnapshot::default();
        let name_with = |base: &Option<String>, sample: &str, suffix: &str| {
            base.as_deref().is_some_and(|b| {
                sample.len() == b.len() + suffix.len()
                    && sample.starts_with(b)
                    && sample.ends_with(suffix)
            })
        };
        for s in samples {
            let name = s.name.as_str();
            if name_with(&spec.latency, name, "_bucket") {
                let le = s.labels.iter().find(|(k, _)| k == "le");
                if let Some(le) = le.and_then(|(_, v)| prom_float(v)) {
                    snap.buckets.push((le, s.value));
                }
            } else if name_with(&spec.latency, name, "_sum") {
                add(&mut snap.latency_sum, s.value);
            } else if name_with(&spec.latency, name, "_count") {
                add(&mut snap.latency_count, s.value);
            }
            if name_with(&spec.requests, name, "") {
                add(&mut snap.requests, s.value);
                if let Some(ErrorSource::Label { label, prefix }) = &spec.errors
                    && s.labels
                        .iter()
                        .any(|(k, v)| k == label && v.starts_with(prefix.as_str()))
                {
                    add(&mut snap.errors, s.value);
                }
            }
            if let Some(ErrorSource::Counter(errors)) = &spec.errors
                && name == errors
            {
                add(&mut snap.errors, s.value);
            }
            if name_with(&spec.queue_depth, name, "") {
                add_gauge(&mut snap.queue_depth, s.value);
            }
        }
        if spec.errors.is_some() && snap.requests.is_some() && snap.errors.is_none() {
            // requests seen but no error series: zero errors, not unknown
            snap.errors = Some(0.0);
        }
        snap
    }

    /// The signals over the window since `earlier` (counter deltas), or over the target's
    /// lifetime when `earlier` is `None` or a counter went backwards (the target restarted).
    pub fn reading(&self, earlier: Option<&PerfSnapshot>) -> PerfReading {
        let earlier = earlier.filter(|e| !self.reset_since(e));
        let delta = |now: Option<f64>, then: Option<f64>| match (now, earlier) {
            (Some(n), Some(_)) => Some(n - then.unwrap_or(0.0)),
            (n, None) => n,
            (None, Some(_)) => None,
        };
        let buckets: Vec<(f64, f64)> = match earlier {
            None => self.buckets.clone(),
            Some(e) => {
                let before = sum_by_le(&e.buckets);
                sum_by_le(&self.buckets)
                    .into_iter()
                    .map(|(le, c)| {
                        let prev = before.iter().find(|(l, _)| *l == le).map_or(0.0, |p| p.1);
                        (le, c - prev)
                    })
                    .collect()
            }
        };
        let count = delta(self.latency_count, earlier.and_then(|e| e.latency_count));
        let sum = delta(self.latency_sum, earlier.and_then(|e| e.latency_sum));
        let requests = delta(self.requests, earlier.and_then(|e| e.requests));
        let errors = delta(self.errors, earlier.and_then(|e| e.errors));
        PerfReading {
            latency_p99: histogram_quantile(0.99, &buckets),
            latency_mean: match (sum, count) {
                (Some(s), Some(c)) if c > 0.0 => Some(s / c),
                _ => None,
            },
            error_rate: match (errors, requests) {
                (Some(e), Some(r)) if r > 0.0 => Some((e / r).clamp(0.0, 1.0)),
                _ => None,
            },
            queue_depth: self.queue_depth,
        }
    }

    fn reset_since(&self, e: &PerfSnapshot) -> bool {
        let went_down = |now: Option<f64>, then: Option<f64>| matches!((now, then), (Some(n), Some(t)) if n < t);
        went_down(self.latency_count, e.latency_count)
            || went_down(self.requests, e.requests)
            || went_down(self.errors, e.errors)
    }
}

fn sum_by_le(buckets: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for &(le, c) in buckets {
        match out.iter_mut().find(|(l, _)| *l == le) {
            Some(slot) => slot.1 += c,
            None => out.push((le, c)),
        }
    }
    out
}

/// Parses a float as Prometheus writes them in labels (`le="+Inf"`, `quantile="0.99"`).
fn prom_float(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_samples(page: &str) -> Vec<MetricSample> {
        samples_from_page(
            &TargetId::new("t"),
            page.as_bytes(),
            None,
            false,
            Timestamp::from_secs(5),
        )
        .samples
    }

    const PAGE: &str = "\
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{path=\"/a\",le=\"0.1\"} 30
http_request_duration_seconds_bucket{path=\"/a\",le=\"1\"} 45
http_request_duration_seconds_bucket{path=\"/a\",le=\"+Inf\"} 50
http_request_duration_seconds_sum{path=\"/a\"} 10
http_request_duration_seconds_count{path=\"/a\"} 50
http_request_duration_seconds_bucket{path=\"/b\",le=\"0.1\"} 20
http_request_duration_seconds_bucket{path=\"/b\",le=\"1\"} 45
http_request_duration_seconds_bucket{path=\"/b\",le=\"+Inf\"} 50
http_request_duration_seconds_sum{path=\"/b\"} 15
http_request_duration_seconds_count{path=\"/b\"} 50
# TYPE http_requests_total counter
http_requests_total{code=\"200\"} 90
http_requests_total{code=\"503\"} 10
# TYPE queue_depth gauge
queue_depth{q=\"x\"} 3
queue_depth{q=\"y\"} 4
";

    fn spec() -> PerfMetrics {
        PerfMetrics {
            latency: Some("http_request_duration_seconds".into()),
            requests: Some("http_requests_total".into()),
            errors: Some(ErrorSource::Label {
                label: "code".into(),
                prefix: "5".into(),
            }),
            queue_depth: Some("queue_depth".into()),
        }
    }

    #[test]
    fn lifetime_reading_from_one_scrape() {
        let snap = PerfSnapshot::from_samples(&page_samples(PAGE), &spec());
        let r = snap.reading(None);
        // 100 observations, 50 under 0.1, 90 under 1: p99 at rank 99 is in (1, +Inf] -> 1
        assert_eq!(r.latency_p99, Some(1.0));
        assert_eq!(r.latency_mean, Some(0.25));
        assert_eq!(r.error_rate, Some(0.1));
        assert_eq!(r.queue_depth, Some(7.0));
    }

    #[test]
    fn windowed_reading_uses_deltas_and_survives_a_restart() {
        let before = PerfSnapshot::from_samples(&page_samples(PAGE), &spec());
        let later = PAGE
            .replace("le=\"+Inf\"} 50", "le=\"+Inf\"} 150")
            .replace("le=\"1\"} 45", "le=\"1\"} 145")
            .replace("_count{path=\"/a\"} 50", "_count{path=\"/a\"} 150")
            .replace("_count{path=\"/b\"} 50", "_count{path=\"/b\"} 150")
            .replace("code=\"200\"} 90", "code=\"200\"} 190");
        let after = PerfSnapshot::from_samples(&page_samples(&later), &spec());
        let r = after.reading(Some(&before));
        // the window saw 200 observations, all in (0.1, 1]: p99 = 0.1 + 0.9 * 198/200
        let p99 = r.latency_p99.unwrap();
        assert!((p99 - (0.1 + 0.9 * 0.99)).abs() < 1e-9, "{p99}");
        assert_eq!(r.error_rate, Some(0.0));
        // a restart: counters below the earlier snapshot, so the lifetime reading is used
        let r = before.reading(Some(&after));
        assert_eq!(r.error_rate, Some(0.1));
    }

    #[test]
    fn summary_gives_mean_and_missing_metrics_give_none() {
        let page = "# TYPE rpc summary\nrpc{quantile=\"0.99\"} 3\nrpc_sum 20\nrpc_count 4\n";
        let spec = PerfMetrics {
            latency: Some("rpc".into()),
            ..PerfMetrics::default()
        };
        let r = PerfSnapshot::from_samples(&page_samples(page), &spec).reading(None);
        assert_eq!(r.latency_mean, Some(5.0));
        assert_eq!(r.latency_p99, None);
        assert_eq!(r.error_rate, None);
        assert_eq!(r.queue_depth, None);
    }

    #[test]
    fn samples_carry_exposition_timestamp_or_scrape_time() {
        let s = page_samples("a 1 1500\nb 2\n");
        assert_eq!(s[0].at, Timestamp::from_millis(1500));
        assert_eq!(s[1].at, Timestamp::from_secs(5));
        let om = page_samples("# TYPE a gauge\na 1 2.5\n# EOF\n");
        assert_eq!(om[0].at, Timestamp::from_millis(2500));
    }

    #[test]
    fn truncated_body_drops_only_the_partial_line() {
        let r = samples_from_page(
            &TargetId::new("t"),
            b"a 1\nb 2\nc{x=\"",
            None,
            true,
            Timestamp::ZERO,
        );
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.skipped_lines, 0);
        assert!(r.truncated);
    }

    #[test]
    fn an_infinite_queue_is_a_depth_and_nan_is_none() {
        let queue = |page: &str| {
            let spec = PerfMetrics {
                queue_depth: Some("queue_depth".into()),
                ..PerfMetrics::default()
            };
            PerfSnapshot::from_samples(&page_samples(page), &spec)
                .reading(None)
                .queue_depth
        };
        let inf = "queue_depth{q=\"x\"} 3\nqueue_depth{q=\"y\"} +Inf\n";
        assert_eq!(queue(inf), Some(f64::INFINITY));
        assert_eq!(queue("queue_depth NaN\n"), None);
        assert_eq!(queue("queue_depth -Inf\n"), None);
        assert_eq!(
            queue("queue_depth NaN\nqueue_depth{q=\"b\"} 2\n"),
            Some(2.0)
        );
    }

    #[test]
    fn the_content_type_decides_the_format_of_a_cut_page() {
        // An OpenMetrics page cut before its `# EOF`: timestamps are seconds.
        let page = b"# TYPE a gauge\na 1 2.5\nb 2 3\n";
        let at = |content_type| {
            let r = samples_from_page(
                &TargetId::new("t"),
                page,
                content_type,
                true,
                Timestamp::ZERO,
            );
            r.samples.iter().map(|s| s.at).collect::<Vec<_>>()
        };
        let seconds = [Timestamp::from_millis(2500), Timestamp::from_millis(3000)];
        assert_eq!(
            at(Some(
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            )),
            seconds
        );
        assert_ne!(
            at(None),
            seconds,
            "without the header it reads as Prometheus text"
        );
    }
}
