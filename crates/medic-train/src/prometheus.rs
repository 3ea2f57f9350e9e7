//! Training data from a Prometheus server: `GET /api/v1/query_range`, one PromQL query per
//! raw column, turned into one [`AgentSeries`] per value of an agent label (`instance` by
//! default).
//!
//! Rules:
//! - **Grid.** Steps are `start, start + step, …, ≤ end`, as Prometheus evaluates a range
//!   query. Long ranges are fetched in chunks of at most [`MAX_POINTS_PER_REQUEST`] steps
//!   (Prometheus refuses more than 11,000 points per series).
//! - **Missing data is explicit.** A step where a query returned no sample for an agent is NaN
//!   in that column; a step where no query returned anything for the agent is a *dark* row
//!   (all NaN), which the dataset builder skips and counts. `NaN`/`±Inf` values are NaN too,
//!   and counted.
//! - **One series per agent and query.** A query that returns two series with the same agent
//!   label value is refused with the two label sets (aggregate it, e.g.
//!   `sum by (instance) (…)`); a series without the agent label is refused likewise.
//! - **Failures.** The failure query is evaluated on the same grid; a step is *true* where it
//!   returned a sample (as a PromQL filter does: `up == 0`, `changes(x[1m]) > 0`; do not use
//!   the `bool` modifier). A failure starts at each step that is true after a step that was
//!   not; a query true at the first step does not say when that failure started, so it is not
//!   marked (counted in [`FetchReport::failures_open_at_start`]). Labels can also come from a
//!   CSV file in medic-sim's `labels.csv` format ([`read_labels_csv`]).
//! - **Hostile servers.** Every request has a deadline; bodies are read chunk by chunk and
//!   refused past a size cap; HTTP errors, `"status": "error"` and malformed JSON are errors
//!   naming the server (without user info), never panics.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use medic_core::Timestamp;
use medic_detect::predict::AgentSeries;
use medic_detect::predict::dataset::{Column, FailureMark};
use reqwest::Url;
use serde::Deserialize;

/// Default cap on one response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default deadline of one request (connect, headers and the whole body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Steps per request; Prometheus refuses more than 11,000 points per series.
pub const MAX_POINTS_PER_REQUEST: usize = 10_000;
/// Largest grid accepted (steps per agent), to bound memory.
pub const MAX_STEPS: usize = 5_000_000;

/// Errors of the Prometheus source.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The server URL cannot be used.
    #[error("prometheus url {url:?}: {reason}")]
    Url {
        /// The URL as given (user info removed).
        url: String,
        /// Why.
        reason: String,
    },
    /// The queries, range or step are invalid.
    #[error("prometheus source: {0}")]
    Config(String),
    /// The async runtime for the HTTP client could not be started.
    #[error("cannot start the http runtime")]
    Runtime(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(medic_collect::http::HttpError),
    /// The request failed (connection refused, reset, …).
    #[error("{url}: request failed")]
    Request {
        /// The endpoint (no user info, no query).
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer within the deadline.
    #[error("{url}: no complete answer within {timeout_ms} ms")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// The body exceeded the cap.
    #[error("{url}: response body larger than {limit} bytes")]
    TooLarge {
        /// The endpoint.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// A non-success HTTP status without a Prometheus error document.
    #[error("{url}: http status {status}: {snippet}")]
    Http {
        /// The endpoint.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body (at most 200 characters).
        snippet: String,
    },
    /// Prometheus answered `"status": "error"`.
    #[error("{url}: prometheus error ({error_type}, http {status}): {error}")]
    Api {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Prometheus' `errorType`, e.g. `bad_data`.
        error_type: String,
        /// Prometheus' `error`.
        error: String,
    },
    /// The body is not the JSON document the API describes.
    #[error("{url}: malformed response: {reason}")]
    Malformed {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A query's result cannot be turned into per-agent columns.
    #[error("query {column:?} ({query}): {reason}")]
    Series {
        /// The column the query fills (`failures` for the failure query).
        column: String,
        /// The PromQL.
        query: String,
        /// What was wrong.
        reason: String,
    },
    /// A labels file line is invalid.
    #[error("labels file {path}: line {line}: {reason}")]
    Labels {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Limits of the HTTP client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one request (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Cap on one response body (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `(time, value)` in time order, as returned (non-finite values kept).
    pub points: Vec<(Timestamp, f64)>,
}

/// A blocking client of the Prometheus HTTP API for offline use (`medic train`). It owns a
/// small current-thread tokio runtime, so it must not be called from inside an async task.
#[derive(Debug)]
pub struct PromClient {
    base: Url,
    display: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    opts: ClientOptions,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct MatrixEntry {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// The URL without user info, query or fragment, for messages.
fn display_url(u: &Url) -> String {
    let mut d = u.clone();
    let _ = d.set_username("");
    let _ = d.set_password(None);
    d.set_query(None);
    d.set_fragment(None);
    d.to_string()
}

fn secs_param(t: Timestamp) -> String {
    let ms = t.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn step_param(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn parse_value(s: &str) -> Option<f64> {
    // Prometheus writes NaN, +Inf and -Inf as such; Rust parses them too ("inf", "NaN").
    s.parse::<f64>().ok()
}

fn to_timestamp(secs: f64) -> Option<Timestamp> {
    let ms = (secs * 1000.0).round();
    (ms.is_finite() && ms >= 0.0 && ms < u64::MAX as f64).then(|| Timestamp::from_millis(ms as u64))
}

impl PromClient {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:9090`, or with a path
    /// prefix such as `http://host/prometheus`).
    pub fn new(base_url: &str, opts: ClientOptions) -> Result<PromClient, PromError> {
        let mut base = Url::parse(base_url).map_err(|e| PromError::Url {
            url: base_url
                .split_once('@')
                .map_or(base_url, |(_, h)| h)
                .to_owned(),
            reason: e.to_string(),
        })?;
        if base.scheme() != "http" {
            return Err(PromError::Url {
                url: display_url(&base),
                reason: format!(
                    "scheme {:?} is not supported (plain http only)",
                    base.scheme()
                ),
            });
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        if opts.timeout.is_zero() || opts.max_body_bytes == 0 {
            return Err(PromError::Config(
                "timeout and body cap must be positive".into(),
            ));
        }
        let client = medic_collect::http::build(|| {
            reqwest::Client::builder()
                .timeout(opts.timeout)
                .connect_timeout(opts.timeout)
        })
        .map_err(PromError::Client)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(PromError::Runtime)?;
        Ok(PromClient {
            display: display_url(&base),
            base,
            client,
            rt,
            opts,
        })
    }

    /// The server as shown in messages (no user info).
    pub fn server(&self) -> &str {
        &self.display
    }

    fn endpoint(&self, path: &str, params: &[(&str, &str)]) -> Result<(Url, String), PromError> {
        let mut url = self.base.join(path).map_err(|e| PromError::Url {
            url: self.display.clone(),
            reason: e.to_string(),
        })?;
        let shown = display_url(&url);
        url.query_pairs_mut().extend_pairs(params.iter());
        Ok((url, shown))
    }

    /// GETs `url`, reading at most the body cap, within the deadline.
    fn get(&self, url: Url, shown: &str) -> Result<(u16, Vec<u8>), PromError> {
        let limit = self.opts.max_body_bytes;
        let fetch = async {
            let mut resp = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| self.request_err(shown, e))?;
            let status = resp.status().as_u16();
            if resp.content_length().is_some_and(|n| n > limit as u64) {
                return Err(PromError::TooLarge {
                    url: shown.to_owned(),
                    limit,
                });
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| self.request_err(shown, e))? {
                if body.len() + chunk.len() > limit {
                    return Err(PromError::TooLarge {
                        url: shown.to_owned(),
                        limit,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        };
        let deadline = self.opts.timeout;
        self.rt
            .block_on(async { tokio::time::timeout(deadline, fetch).await })
            .unwrap_or_else(|_| Err(self.timeout_err(shown)))
    }

    fn timeout_err(&self, shown: &str) -> PromError {
        PromError::Timeout {
            url: shown.to_owned(),
            timeout_ms: u64::try_from(self.opts.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn request_err(&self, shown: &str, e: reqwest::Error) -> PromError {
        if e.is_timeout() {
            self.timeout_err(shown)
        } else {
            PromError::Request {
                url: shown.to_owned(),
                source: e.without_url(),
            }
        }
    }

    /// Calls an API endpoint and returns its `data` with the expected `resultType`.
    fn api(
        &self,
        path: &str,
        params: &[(&str, &str)],
        result_type: &str,
    ) -> Result<serde_json::Value, PromError> {
        let (url, shown) = self.endpoint(path, params)?;
        let (status, body) = self.get(url, &shown)?;
        let malformed = |reason: String| PromError::Malformed {
            url: shown.clone(),
            reason,
        };
        let env: Envelope = match serde_json::from_slice(&body) {
            Ok(env) => env,
            Err(e) if (200..300).contains(&status) => {
                return Err(malformed(format!("not the API's JSON document: {e}")));
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                return Err(PromError::Http {
                    url: shown,
                    status,
                    snippet: text.chars().take(200).collect(),
                });
            }
        };
        match env.status.as_str() {
            "success" if (200..300).contains(&status) => {}
            "success" => {
                return Err(PromError::Http {
                    url: shown,
                    status,
                    snippet: "(a success document with an error status)".into(),
                });
            }
            "error" => {
                return Err(PromError::Api {
                    url: shown,
                    status,
                    error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
                    error: env.error.unwrap_or_default(),
                });
            }
            other => return Err(malformed(format!("unknown status {other:?}"))),
        }
        let data: Data = serde_json::from_value(env.data.unwrap_or_default())
            .map_err(|e| malformed(format!("data: {e}")))?;
        if data.result_type != result_type {
            return Err(malformed(format!(
                "resultType {:?}, expected {result_type:?}",
                data.result_type
            )));
        }
        Ok(data.result)
    }

    /// The server's current time (the instant query `time()`), e.g. to resolve `--end now`
    /// without reading this machine's clock.
    pub fn server_time(&self) -> Result<Timestamp, PromError> {
        let result = self.api("api/v1/query", &[("query", "time()")], "scalar")?;
        let (secs, _): (f64, String) =
            serde_json::from_value(result).map_err(|e| PromError::Malformed {
                url: self.display.clone(),
                reason: format!("scalar: {e}"),
            })?;
        to_timestamp(secs).ok_or_else(|| PromError::Malformed {
            url: self.display.clone(),
            reason: format!("time {secs} out of range"),
        })
    }

    /// Runs `query` over `start..=end` every `step` (in chunks of at most
    /// [`MAX_POINTS_PER_REQUEST`] steps) and returns its series with their points merged.
    pub fn query_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Vec<RangeSeries>, PromError> {
        let n = grid_len(start, end, step)?;
        let mut by_labels: BTreeMap<BTreeMap<String, String>, Vec<(Timestamp, f64)>> =
            BTreeMap::new();
        let mut first = 0usize;
        while first < n {
            let last = (first + MAX_POINTS_PER_REQUEST).min(n) - 1;
            let (s, e) = (grid_time(start, step, first), grid_time(start, step, last));
            let (s, e, st) = (secs_param(s), secs_param(e), step_param(step));
            let result = self.api(
                "api/v1/query_range",
                &[("query", query), ("start", &s), ("end", &e), ("step", &st)],
                "matrix",
            )?;
            let entries: Vec<MatrixEntry> =
                serde_json::from_value(result).map_err(|e| PromError::Malformed {
                    url: self.display.clone(),
                    reason: format!("matrix: {e}"),
                })?;
            for entry in entries {
                let points = by_labels.entry(entry.metric).or_default();
                for (t, v) in entry.values {
                    let at = to_timestamp(t).ok_or_else(|| PromError::Malformed {
                        url: self.display.clone(),
                        reason: format!("sample time {t} out of range"),
                    })?;
                    let v = parse_value(&v).ok_or_else(|| PromError::Malformed {
                        url: self.display.clone(),
                        reason: format!("sample value {v:?} is not a number"),
                    })?;
                    points.push((at, v));
                }
            }
            first = last + 1;
        }
        Ok(by_labels
            .into_iter()
            .map(|(labels, points)| RangeSeries { labels, points })
            .collect())
    }
}

fn grid_len(start: Timestamp, end: Timestamp, step: Duration) -> Result<usize, PromError> {
    if step.as_millis() == 0 {
        return Err(PromError::Config("step must be at least 1 ms".into()));
    }
    if end < start {
        return Err(PromError::Config(format!(
            "end {end} is before start {start}"
        )));
    }
    let n = end.since(start).as_millis() / step.as_millis() + 1;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_STEPS)
        .ok_or_else(|| {
            PromError::Config(format!(
                "{n} steps per series is more than {MAX_STEPS}; use a larger step or a shorter range"
            ))
        })
}

fn grid_time(start: Timestamp, step: Duration, i: usize) -> Timestamp {
    Timestamp::from_millis(start.as_millis() + step.as_millis() as u64 * i as u64)
}

/// The grid index of `at`, if it lies on the grid (within a quarter step).
fn grid_index(start: Timestamp, step: Duration, n: usize, at: Timestamp) -> Option<usize> {
    let step_ms = step.as_millis() as f64;
    let k = (at.as_millis() as f64 - start.as_millis() as f64) / step_ms;
    let i = k.round();
    ((k - i).abs() * step_ms <= step_ms / 4.0 && i >= 0.0 && (i as usize) < n).then_some(i as usize)
}

/// Parses a duration: a number with a unit `ms`, `s`, `m`, `h`, `d` or `w` (e.g. `90s`,
/// `15m`, `1.5h`), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, PromError> {
    let t = text.trim();
    let bad = || {
        PromError::Config(format!(
            "{text:?} is not a duration (e.g. 60s, 15m, 6h, 7d)"
        ))
    };
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit_s = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err(bad()),
    };
    let secs = n * unit_s;
    if !(0.0..1e12).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_millis((secs * 1000.0).round() as u64))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time as RFC 3339 UTC with milliseconds, e.g. `2026-01-01T00:00:00.000Z`.
pub fn format_time(t: Timestamp) -> String {
    t.rfc3339()
}

/// Parses an absolute time: Unix seconds (`1767225600`, `1767225600.5`) or RFC 3339 in UTC
/// (`2026-01-01T00:00:00Z`, fractional seconds allowed).
pub fn parse_time(text: &str) -> Result<Timestamp, PromError> {
    let t = text.trim();
    let bad = || {
        PromError::Config(format!(
            "{text:?} is not a time (Unix seconds or RFC 3339 UTC such as 2026-01-01T00:00:00Z)"
        ))
    };
    if let Ok(secs) = t.parse::<f64>() {
        return to_timestamp(secs).ok_or_else(bad);
    }
    let body = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("+00:00"))
        .ok_or_else(bad)?;
    let (date, time) = body.split_once(['T', ' ']).ok_or_else(bad)?;
    let mut d = date.split('-');
    let (y, mo, da) = (d.next(), d.next(), d.next());
    let y: i64 = y.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mo: u32 = mo.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let da: u32 = da.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mut h = time.split(':');
    let (hh, mm, ss) = (h.next(), h.next(), h.next());
    let hh: u32 = hh.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mm: u32 = mm.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let ss: f64 = ss.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if d.next().is_some()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || hh > 23
        || mm > 59
        || !(0.0..61.0).contains(&ss)
    {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo, da) as f64 * 86_400.0
        + f64::from(hh) * 3600.0
        + f64::from(mm) * 60.0
        + ss;
    to_timestamp(secs).ok_or_else(bad)
}

/// One raw column and the PromQL that fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnQuery {
    /// The column name the dataset expects, e.g. `rss_mb`.
    pub column: String,
    /// The PromQL, e.g. `process_resident_memory_bytes / 1048576`.
    pub query: String,
}

impl std::str::FromStr for ColumnQuery {
    type Err = PromError;

    /// `NAME=PROMQL` (split at the first `=`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (column, query) = s.split_once('=').ok_or_else(|| {
            PromError::Config(format!("{s:?}: expected NAME=PROMQL, e.g. cpu=rate(x[1m])"))
        })?;
        let (column, query) = (column.trim(), query.trim());
        if column.is_empty() || query.is_empty() {
            return Err(PromError::Config(format!(
                "{s:?}: both NAME and PROMQL must be non-empty"
            )));
        }
        Ok(ColumnQuery {
            column: column.to_owned(),
            query: query.to_owned(),
        })
    }
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct PromSource {
    /// One query per raw column, in column order.
    pub columns: Vec<ColumnQuery>,
    /// Failures start where this query becomes true (see the module rules).
    pub failure_query: Option<String>,
    /// The label whose value names the agent (default `instance`).
    pub agent_label: String,
    /// First step.
    pub start: Timestamp,
    /// Last step at or before this time.
    pub end: Timestamp,
    /// Time between steps.
    pub step: Duration,
}

/// What a fetch found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Agents (distinct agent label values).
    pub agents: usize,
    /// Steps per agent.
    pub steps: usize,
    /// Cells with a value.
    pub values: usize,
    /// Cells without one (no sample, NaN or ±Inf).
    pub missing: usize,
    /// Cells with a value, per column (in column order): a column at 0 is a query that
    /// returned nothing usable.
    pub column_values: Vec<usize>,
    /// Rows where no column has a value (dark).
    pub dark_rows: usize,
    /// Samples returned off the grid (ignored).
    pub off_grid: usize,
    /// Failures marked.
    pub failures: usize,
    /// Failure series already true at the first step (not marked).
    pub failures_open_at_start: usize,
    /// Failure series of agents without any metric (ignored).
    pub failures_unknown_agent: usize,
}

/// Fetches every query of `src` and builds one series per agent, sorted by agent name.
pub fn fetch(
    client: &PromClient,
    src: &PromSource,
) -> Result<(Vec<AgentSeries>, FetchReport), PromError> {
    if src.columns.is_empty() {
        return Err(PromError::Config("no column query".into()));
    }
    for (i, c) in src.columns.iter().enumerate() {
        if src.columns[..i].iter().any(|o| o.column == c.column) {
            return Err(PromError::Config(format!("column {:?} twice", c.column)));
        }
    }
    let n = grid_len(src.start, src.end, src.step)?;
    let mut results = Vec::with_capacity(src.columns.len());
    for c in &src.columns {
        results.push(client.query_range(&c.query, src.start, src.end, src.step)?);
    }
    let failures = match &src.failure_query {
        Some(q) => Some(client.query_range(q, src.start, src.end, src.step)?),
        None => None,
    };
    assemble(src, n, &results, failures.as_deref())
}

fn agent_of<'a>(
    s: &'a RangeSeries,
    label: &str,
    column: &str,
    query: &str,
) -> Result<&'a str, PromError> {
    s.labels
        .get(label)
        .map(String::as_str)
        .ok_or_else(|| PromError::Series {
            column: column.to_owned(),
            query: query.to_owned(),
            reason: format!(
                "a series has no label {label:?} ({:?}); keep it, e.g. sum by ({label}) (...)",
                s.labels
            ),
        })
}

/// Builds the series from query results (one result per column, in column order).
fn assemble(
    src: &PromSource,
    n: usize,
    results: &[Vec<RangeSeries>],
    failures: Option<&[RangeSeries]>,
) -> Result<(Vec<AgentSeries>, FetchReport), PromError> {
    let mut report = FetchReport {
        steps: n,
        ..FetchReport::default()
    };
    // agent → one column of values per query.
    let mut agents: BTreeMap<String, Vec<Option<Vec<f32>>>> = BTreeMap::new();
    let width = src.columns.len();
    for (j, (c, series)) in src.columns.iter().zip(results).enumerate() {
        for s in series {
            let agent = agent_of(s, &src.agent_label, &c.column, &c.query)?;
            let cols = agents
                .entry(agent.to_owned())
                .or_insert_with(|| vec![None; width]);
            if cols[j].is_some() {
                return Err(PromError::Series {
                    column: c.column.clone(),
                    query: c.query.clone(),
                    reason: format!(
                        "more than one series for {}={agent:?} (e.g. {:?}); aggregate it, e.g. \
                         sum by ({}) (...)",
                        src.agent_label, s.labels, src.agent_label
                    ),
                });
            }
            let mut values = vec![f32::NAN; n];
            for &(at, v) in &s.points {
                match grid_index(src.start, src.step, n, at) {
                    Some(i) => values[i] = if v.is_finite() { v as f32 } else { f32::NAN },
                    None => report.off_grid += 1,
                }
            }
            cols[j] = Some(values);
        }
    }
    let mut out: Vec<AgentSeries> = agents
        .into_iter()
        .map(|(agent, cols)| AgentSeries {
            agent,
            start: src.start,
            step: src.step,
            columns: src
                .columns
                .iter()
                .zip(cols)
                .map(|(c, v)| Column {
                    name: c.column.clone(),
                    values: v.unwrap_or_else(|| vec![f32::NAN; n]),
                })
                .collect(),
            failures: Vec::new(),
            lookalikes: Vec::new(),
            preemptive_actions: Vec::new(),
        })
        .collect();
    report.column_values = vec![0; width];
    for s in &out {
        for (j, c) in s.columns.iter().enumerate() {
            report.column_values[j] += c.values.iter().filter(|v| !v.is_nan()).count();
        }
        for i in 0..n {
            let present = s.columns.iter().filter(|c| !c.values[i].is_nan()).count();
            report.values += present;
            report.missing += width - present;
            if present == 0 {
                report.dark_rows += 1;
            }
        }
    }
    if let (Some(series), Some(q)) = (failures, &src.failure_query) {
        for f in series {
            let agent = agent_of(f, &src.agent_label, "failures", q)?;
            let Some(target) = out.iter_mut().find(|s| s.agent == agent) else {
                report.failures_unknown_agent += 1;
                continue;
            };
            let mut on = vec![false; n];
            for &(at, _) in &f.points {
                match grid_index(src.start, src.step, n, at) {
                    Some(i) => on[i] = true,
                    None => report.off_grid += 1,
                }
            }
            if on.first() == Some(&true) {
                report.failures_open_at_start += 1;
            }
            for i in 1..n {
                if on[i] && !on[i - 1] {
                    target.failures.push(FailureMark {
                        at: grid_time(src.start, src.step, i),
                        predictable: true,
                        kind: "prometheus".into(),
                    });
                    report.failures += 1;
                }
            }
            target.failures.sort_by_key(|m| m.at);
        }
    }
    report.agents = out.len();
    Ok((out, report))
}

/// A failure read from a labels file: the agent's name and the mark.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledFailure {
    /// The agent.
    pub agent: String,
    /// The failure.
    pub mark: FailureMark,
}

/// Reads failures in medic-sim's `labels.csv` format: header
/// `agent,timestamp_ms,kind,precursor_start_ms`, one failure per line; an empty
/// `precursor_start_ms` marks a sudden (unpredictable) failure.
pub fn read_labels_csv(path: &Path) -> Result<Vec<LabelledFailure>, PromError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| PromError::Io {
        path: shown.clone(),
        source,
    })?;
    parse_labels(std::io::BufReader::new(file), &shown)
}

/// Parses a labels file's text (see [`read_labels_csv`]); `name` is used in errors.
pub fn parse_labels(reader: impl BufRead, name: &str) -> Result<Vec<LabelledFailure>, PromError> {
    let err = |line: usize, reason: String| PromError::Labels {
        path: name.to_owned(),
        line,
        reason,
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| PromError::Io {
            path: name.to_owned(),
            source,
        })?;
        let line = line.trim_end_matches('\r');
        if i == 0 {
            if line.trim() != "agent,timestamp_ms,kind,precursor_start_ms" {
                return Err(err(
                    1,
                    format!("header {line:?}, expected agent,timestamp_ms,kind,precursor_start_ms"),
                ));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 4 {
            return Err(err(i + 1, format!("{} fields, expected 4", f.len())));
        }
        let at: u64 = f[1]
            .trim()
            .parse()
            .map_err(|_| err(i + 1, format!("timestamp_ms {:?} is not an integer", f[1])))?;
        if f[0].trim().is_empty() {
            return Err(err(i + 1, "empty agent".into()));
        }
        out.push(LabelledFailure {
            agent: f[0].trim().to_owned(),
            mark: FailureMark {
                at: Timestamp::from_millis(at),
                predictable: !f[3].trim().is_empty(),
                kind: f[2].trim().to_owned(),
            },
        });
    }
    Ok(out)
}

/// Adds labelled failures to the series of their agents (kept in time order); returns how
/// many named an agent that is not in `series` (ignored).
pub fn apply_labels(series: &mut [AgentSeries], labels: &[LabelledFailure]) -> usize {
    let mut unknown = 0;
    for l in labels {
        match series.iter_mut().find(|s| s.agent == l.agent) {
            Some(s) => s.failures.push(l.mark.clone()),
            None => unknown += 1,
        }
    }
    for s in series.iter_mut() {
        s.failures.sort_by_key(|m| m.at);
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(cols: &[&str], failure: Option<&str>) -> PromSource {
        PromSource {
            columns: cols
                .iter()
                .map(|c| ColumnQuery {
                    column: (*c).to_owned(),
                    query: format!("q_{c}"),
                })
                .collect(),
            failure_query: failure.map(str::to_owned),
            agent_label: "instance".into(),
            start: Timestamp::from_secs(1000),
            end: Timestamp::from_secs(1005),
            step: Duration::from_secs(1),
        }
    }

    fn rs(instance: &str, points: &[(u64, f64)]) -> RangeSeries {
        RangeSeries {
            labels: [("instance".to_owned(), instance.to_owned())].into(),
            points: points
                .iter()
                .map(|&(s, v)| (Timestamp::from_secs(s), v))
                .collect(),
        }
    }

    #[test]
    fn grid_gaps_dark_rows_and_failure_starts() {
        let s = src(&["a", "b"], Some("f"));
        let n = grid_len(s.start, s.end, s.step).unwrap();
        assert_eq!(n, 6);
        let a = vec![
            rs(
                "x",
                &[(1000, 1.0), (1001, 2.0), (1003, f64::NAN), (1005, 5.0)],
            ),
            rs("y", &[(1000, 7.0)]),
        ];
        let b = vec![rs("x", &[(1000, 10.0), (1001, f64::INFINITY)])];
        let f = vec![
            rs("x", &[(1002, 0.0), (1003, 0.0), (1005, 0.0)]),
            rs("y", &[(1000, 0.0)]),
        ];
        let (series, report) = assemble(&s, n, &[a, b], Some(&f)).unwrap();
        assert_eq!(series.len(), 2);
        let x = &series[0];
        assert_eq!(x.agent, "x");
        let col_a = x.column("a").unwrap();
        assert_eq!(col_a[..2], [1.0, 2.0]);
        assert!(col_a[2].is_nan() && col_a[3].is_nan() && col_a[4].is_nan());
        assert_eq!(col_a[5], 5.0);
        let col_b = x.column("b").unwrap();
        assert_eq!(col_b[0], 10.0);
        assert!(col_b[1].is_nan());
        // y has no b at all: a column of NaN, not a missing column.
        assert!(series[1].column("b").unwrap().iter().all(|v| v.is_nan()));
        let at: Vec<u64> = x.failures.iter().map(|m| m.at.as_millis() / 1000).collect();
        assert_eq!(at, vec![1002, 1005]);
        assert!(series[1].failures.is_empty());
        assert_eq!(report.failures, 2);
        assert_eq!(report.failures_open_at_start, 1);
        // x rows 2,3,4 have neither a nor b; y rows 1..5 are dark.
        assert_eq!(report.dark_rows, 3 + 5);
        assert_eq!(report.values, 4 + 1);
        assert_eq!(report.column_values, vec![4, 1]);
    }

    #[test]
    fn duplicate_and_unlabelled_series_are_refused() {
        let s = src(&["a"], None);
        let dup = vec![
            rs("x", &[(1000, 1.0)]),
            RangeSeries {
                labels: [
                    ("instance".to_owned(), "x".to_owned()),
                    ("code".to_owned(), "500".to_owned()),
                ]
                .into(),
                points: vec![],
            },
        ];
        let e = assemble(&s, 6, &[dup], None).unwrap_err().to_string();
        assert!(e.contains("more than one series"), "{e}");
        let bare = vec![RangeSeries {
            labels: BTreeMap::new(),
            points: vec![],
        }];
        let e = assemble(&s, 6, &[bare], None).unwrap_err().to_string();
        assert!(e.contains("no label \"instance\""), "{e}");
    }

    #[test]
    fn column_query_parsing_and_grid_limits() {
        let c: ColumnQuery = "rss_mb = process_resident_memory_bytes / 1048576"
            .parse()
            .unwrap();
        assert_eq!(c.column, "rss_mb");
        assert_eq!(c.query, "process_resident_memory_bytes / 1048576");
        let c: ColumnQuery = "up=up{job=\"x\"} == 0".parse().unwrap();
        assert_eq!(c.query, "up{job=\"x\"} == 0");
        assert!("noequals".parse::<ColumnQuery>().is_err());
        assert!("=up".parse::<ColumnQuery>().is_err());
        let t = Timestamp::from_secs(10);
        assert!(grid_len(t, t, Duration::ZERO).is_err());
        assert!(grid_len(t, Timestamp::from_secs(9), Duration::from_secs(1)).is_err());
        assert_eq!(grid_len(t, t, Duration::from_secs(1)).unwrap(), 1);
        assert!(
            grid_len(
                Timestamp::ZERO,
                Timestamp::from_secs(10_000_000),
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert_eq!(secs_param(Timestamp::from_millis(1_234_567)), "1234.567");
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
        for bad in ["", "m", "5x", "-5s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z").unwrap(),
            Timestamp::from_secs(1_767_225_600)
        );
        assert_eq!(
            parse_time("2024-02-29T12:30:15.5Z").unwrap(),
            Timestamp::from_millis(1_709_209_815_500)
        );
        assert_eq!(
            parse_time("1767225600.25").unwrap(),
            Timestamp::from_millis(1_767_225_600_250)
        );
        for t in [
            0,
            951_782_400_000,
            1_709_209_815_500,
            1_767_225_600_250,
            4_102_444_799_999,
        ] {
            let ts = Timestamp::from_millis(t);
            assert_eq!(
                parse_time(&format_time(ts)).unwrap(),
                ts,
                "{}",
                format_time(ts)
            );
        }
        assert_eq!(
            format_time(Timestamp::from_secs(1_767_225_600)),
            "2026-01-01T00:00:00.000Z"
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "yesterday",
            "2026-01-01Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_csv() {
        let text = "agent,timestamp_ms,kind,precursor_start_ms\nw-1,60000,memory_leak,1000\n\nw-2,120000,sudden_crash,\n";
        let l = parse_labels(text.as_bytes(), "t").unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].mark.predictable && !l[1].mark.predictable);
        assert_eq!(l[1].mark.at, Timestamp::from_secs(120));
        for bad in [
            "agent,ts\n",
            "agent,timestamp_ms,kind,precursor_start_ms\nw,abc,k,\n",
            "agent,timestamp_ms,kind,precursor_start_ms\nw,1,k\n",
            "agent,timestamp_ms,kind,precursor_start_ms\n,1,k,\n",
        ] {
            assert!(parse_labels(bad.as_bytes(), "t").is_err(), "{bad:?}");
        }
        let mut series = vec![AgentSeries {
            agent: "w-2".into(),
            start: Timestamp::ZERO,
            step: Duration::from_secs(60),
            columns: vec![],
            failures: vec![],
            lookalikes: vec![],
            preemptive_actions: vec![],
        }];
        assert_eq!(apply_labels(&mut series, &l), 1);
        assert_eq!(series[0].failures.len(), 1);
    }
}
