//! Training data from medic's own history: the SQLite store of a data directory
//! (medic-store), read into one [`AgentSeries`] per target.
//!
//! Rules:
//! - **Columns.** Each raw column is one stored metric ([`StoreColumn`], written
//!   `NAME=METRIC`, `NAME=METRIC{label="v",…}`, `NAME=rate(METRIC)`, optionally followed by
//!   `*FACTOR` or `/DIVISOR`, e.g. `rss_mb=process_resident_memory_bytes/1048576`). Samples
//!   of every label set that matches are resampled separately and summed (as PromQL's
//!   `sum`), over the label sets present in that step.
//! - **Grid.** Per target, steps at multiples of `step` (since the epoch) from its first to
//!   its last sample; step `t` holds the last sample in `(t − step, t]`. A `rate` column is
//!   the increase between the last samples of two consecutive steps divided by the time
//!   between them (a decrease is a counter reset: the increase is the new value); it needs a
//!   sample in both steps. No sample → NaN; a step with no value in any column is a dark row,
//!   which the dataset builder skips. Scrape at least once per step.
//! - **Failures** are the daemon's incidents (the `incidents` table) whose signature was not
//!   detected by a prediction, and the engine's `incident_opened` journal entries with health
//!   `unhealthy` or `degraded`; the two records of one failure (a few probe intervals apart)
//!   are merged when within [`FAILURE_MERGE`] of each other. Every stored failure counts as
//!   predictable: the store cannot tell a sudden crash from one with a precursor.
//! - **Preemptive actions** are the journal's non-dry-run `intent` entries of a target whose
//!   latest `incident_opened` entry had health `healthy` (the engine opened it for a predicted
//!   failure, not a failing probe). They go into [`AgentSeries::preemptive_actions`], so the
//!   dataset labels the windows they fall after *averted* (issue rule: the failure they
//!   prevented cannot be observed, so those windows must not teach that precursors are
//!   harmless).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use medic_core::Timestamp;
use medic_detect::predict::AgentSeries;
use medic_detect::predict::dataset::{Column, FailureMark};
use medic_store::{Store, StoreError};

/// Two failure records of one target closer than this are one failure.
pub const FAILURE_MERGE: Duration = Duration::from_secs(5 * 60);
/// Largest grid accepted per target, to bound memory.
pub const MAX_STEPS: usize = 5_000_000;

/// Errors of the store source.
#[derive(Debug, thiserror::Error)]
pub enum StoreSourceError {
    /// The column specs, step or range are invalid.
    #[error("store source: {0}")]
    Config(String),
    /// The store could not be read.
    #[error("reading the store")]
    Store(#[from] StoreError),
}

/// How a column's values are derived from its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// The last sample of the step.
    Gauge,
    /// Per-second increase of a counter between consecutive steps.
    Rate,
}

/// One raw column read from a stored metric.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreColumn {
    /// Column name the dataset expects, e.g. `rss_mb`.
    pub column: String,
    /// Stored metric name.
    pub metric: String,
    /// Label pairs a sample must carry (all of them).
    pub matchers: Vec<(String, String)>,
    /// Gauge or rate.
    pub kind: ColumnKind,
    /// Factor applied last (1 unless `*F` or `/D` was given).
    pub scale: f64,
}

fn bad(s: &str, why: &str) -> StoreSourceError {
    StoreSourceError::Config(format!(
        "{s:?}: {why} (expected NAME=METRIC, NAME=METRIC{{label=\"v\"}}, NAME=rate(METRIC), \
         optionally followed by *FACTOR or /DIVISOR)"
    ))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Parses `metric{k="v",…}`.
fn parse_selector(
    sel: &str,
    whole: &str,
) -> Result<(String, Vec<(String, String)>), StoreSourceError> {
    let (metric, rest) = match sel.find('{') {
        Some(i) => (&sel[..i], &sel[i..]),
        None => (sel, ""),
    };
    let metric = metric.trim();
    if !is_name(metric) {
        return Err(bad(whole, &format!("{metric:?} is not a metric name")));
    }
    let mut matchers = Vec::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| bad(whole, "unbalanced braces"))?;
        let mut chars = inner.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let key: String = chars
                .by_ref()
                .take_while(|&c| c != '=')
                .collect::<String>()
                .trim()
                .to_owned();
            if !is_name(&key) {
                return Err(bad(whole, &format!("bad label name {key:?}")));
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('"') {
                return Err(bad(whole, "label values must be in double quotes"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(bad(whole, "unterminated label value"));
            }
            matchers.push((key, value));
        }
    }
    Ok((metric.to_owned(), matchers))
}

impl std::str::FromStr for StoreColumn {
    type Err = StoreSourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (column, expr) = s.split_once('=').ok_or_else(|| bad(s, "no '='"))?;
        let column = column.trim();
        if column.is_empty() {
            return Err(bad(s, "empty NAME"));
        }
        let mut expr = expr.trim();
        // A trailing `*F` or `/D` after the selector's last brace or parenthesis.
        let tail_from = expr.rfind(['}', ')']).map_or(0, |i| i + 1);
        let mut scale = 1.0;
        if let Some(i) = expr[tail_from..].rfind(['*', '/']) {
            let i = tail_from + i;
            let num: f64 = expr[i + 1..]
                .trim()
                .parse()
                .map_err(|_| bad(s, &format!("{:?} is not a number", expr[i + 1..].trim())))?;
            if !num.is_finite() || num == 0.0 {
                return Err(bad(s, "the factor must be finite and non-zero"));
            }
            scale = if expr.as_bytes()[i] == b'*' {
                num
            } else {
                1.0 / num
            };
            expr = expr[..i].trim();
        }
        let (kind, sel) = match expr.strip_prefix("rate(") {
            Some(r) => (
                ColumnKind::Rate,
                r.strip_suffix(')')
                    .ok_or_else(|| bad(s, "unbalanced parentheses"))?,
            ),
            None => (ColumnKind::Gauge, expr),
        };
        let (metric, matchers) = parse_selector(sel.trim(), s)?;
        Ok(StoreColumn {
            column: column.to_owned(),
            metric,
            matchers,
            kind,
            scale,
        })
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub struct StoreSource {
    /// One spec per raw column, in column order.
    pub columns: Vec<StoreColumn>,
    /// Time between steps.
    pub step: Duration,
    /// Samples, incidents and journal entries in this range are read.
    pub range: Range<Timestamp>,
    /// Targets to read (`None`: every target with samples).
    pub targets: Option<Vec<String>>,
}

impl StoreSource {
    /// The whole history.
    pub fn all_time() -> Range<Timestamp> {
        Timestamp::ZERO..Timestamp::from_millis(i64::MAX as u64)
    }
}

/// What a read found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Targets read.
    pub targets: usize,
    /// Targets skipped because none of the columns' metrics has a sample.
    pub targets_without_samples: usize,
    /// Steps over all targets.
    pub steps: usize,
    /// Cells with a value.
    pub values: usize,
    /// Cells without one.
    pub missing: usize,
    /// Rows where no column has a value.
    pub dark_rows: usize,
    /// Samples read.
    pub samples: usize,
    /// Failures marked (after merging).
    pub failures: usize,
    /// Preemptive actions found in the journal.
    pub preemptive_actions: usize,
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a / b + u64::from(!a.is_multiple_of(b))
}

/// Reads the history of the store at `store` into one series per target, sorted by target.
pub fn read(
    store: &Store,
    src: &StoreSource,
) -> Result<(Vec<AgentSeries>, StoreReport), StoreSourceError> {
    if src.columns.is_empty() {
        return Err(StoreSourceError::Config("no column".into()));
    }
    for (i, c) in src.columns.iter().enumerate() {
        if src.columns[..i].iter().any(|o| o.column == c.column) {
            return Err(StoreSourceError::Config(format!(
                "column {:?} twice",
                c.column
            )));
        }
    }
    let step_ms = u64::try_from(src.step.as_millis()).unwrap_or(u64::MAX);
    if step_ms == 0 {
        return Err(StoreSourceError::Config(
            "step must be at least 1 ms".into(),
        ));
    }
    let targets: Vec<String> = match &src.targets {
        Some(t) => t.clone(),
        None => store
            .sample_targets()?
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
    };
    let (failures, actions) = events(store, &src.range)?;
    let mut report = StoreReport::default();
    let mut out = Vec::new();
    for target in targets {
        // column → label set → points
        let mut per_col: Vec<LabelSets> = Vec::new();
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for c in &src.columns {
            let mut sets: LabelSets = BTreeMap::new();
            for s in store.samples(&target, &c.metric, src.range.clone())? {
                if !c.matchers.iter().all(|m| s.labels.contains(m)) {
                    continue;
                }
                report.samples += 1;
                let ms = s.at.as_millis();
                lo = lo.min(ms);
                hi = hi.max(ms);
                let mut labels = s.labels;
                labels.sort();
                sets.entry(labels).or_default().push((ms, s.value));
            }
            per_col.push(sets);
        }
        if lo > hi {
            report.targets_without_samples += 1;
            continue;
        }
        let first = ceil_div(lo, step_ms);
        let last = ceil_div(hi, step_ms);
        let n = usize::try_from(last - first + 1)
            .ok()
            .filter(|&n| n <= MAX_STEPS)
            .ok_or_else(|| {
                StoreSourceError::Config(format!(
                    "{target}: more than {MAX_STEPS} steps; use a larger step or a shorter range"
                ))
            })?;
        let mut columns = Vec::with_capacity(src.columns.len());
        for (c, sets) in src.columns.iter().zip(&per_col) {
            let mut sum = vec![f64::NAN; n];
            for points in sets.values() {
                // Last sample of each step (points are in time order per label set).
                let mut last: Vec<Option<(u64, f64)>> = vec![None; n];
                for &(ms, v) in points {
                    let k = (ceil_div(ms, step_ms) - first) as usize;
                    last[k] = Some((ms, v));
                }
                for k in 0..n {
                    let v = match (c.kind, last[k]) {
                        (_, None) => continue,
                        (ColumnKind::Gauge, Some((_, v))) => v,
                        (ColumnKind::Rate, Some((t1, v1))) => {
                            match k.checked_sub(1).and_then(|p| last[p]) {
                                Some((t0, v0)) if t1 > t0 && v0.is_finite() => {
                                    let inc = if v1 >= v0 { v1 - v0 } else { v1 };
                                    inc / ((t1 - t0) as f64 / 1000.0)
                                }
                                _ => continue,
                            }
                        }
                    };
                    if v.is_finite() {
                        sum[k] = if sum[k].is_nan() { v } else { sum[k] + v };
                    }
                }
            }
            columns.push(Column {
                name: c.column.clone(),
                values: sum.iter().map(|&v| (v * c.scale) as f32).collect(),
            });
        }
        for k in 0..n {
            let present = columns.iter().filter(|c| !c.values[k].is_nan()).count();
            report.values += present;
            report.missing += columns.len() - present;
            if present == 0 {
                report.dark_rows += 1;
            }
        }
        report.steps += n;
        let fails = failures.get(&target).cloned().unwrap_or_default();
        let acts = actions.get(&target).cloned().unwrap_or_default();
        report.failures += fails.len();
        report.preemptive_actions += acts.len();
        out.push(AgentSeries {
            agent: target,
            start: Timestamp::from_millis(first * step_ms),
            step: src.step,
            columns,
            failures: fails,
            lookalikes: Vec::new(),
            preemptive_actions: acts,
        });
    }
    out.sort_by(|a, b| a.agent.cmp(&b.agent));
    report.targets = out.len();
    Ok((out, report))
}

/// Points of one label set: `(ms, value)` in time order.
type Points = Vec<(u64, f64)>;
/// Label sets of one column and their points.
type LabelSets = BTreeMap<Vec<(String, String)>, Points>;

type Events = (
    BTreeMap<String, Vec<FailureMark>>,
    BTreeMap<String, Vec<Timestamp>>,
);

/// Failures and preemptive actions per target, from the incidents and the journal.
fn events(store: &Store, range: &Range<Timestamp>) -> Result<Events, StoreError> {
    let mut raw: BTreeMap<String, Vec<(Timestamp, String)>> = BTreeMap::new();
    for inc in store.incidents(None, range.clone())? {
        let by = inc
            .signature
            .get("detected_by")
            .and_then(|v| v.as_str())
            .unwrap_or("incident");
        if by != "prediction" {
            raw.entry(inc.target.as_str().to_owned())
                .or_default()
                .push((inc.opened_at, by.to_owned()));
        }
    }
    let mut actions: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    // target → whether its latest incident was opened for a prediction (healthy).
    let mut predicted: BTreeMap<String, bool> = BTreeMap::new();
    for rec in store.journal_all()? {
        let e = &rec.entry;
        // `medic heal` journals with an empty record target; the payload names it.
        let target = e
            .payload
            .get("target")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or(e.target.as_str())
            .to_owned();
        let in_range = range.contains(&e.at);
        match e.kind.as_str() {
            "incident_opened" => {
                let health = e.payload.get("health").and_then(|v| v.as_str());
                predicted.insert(target.clone(), health == Some("healthy"));
                if in_range && matches!(health, Some("unhealthy" | "degraded")) {
                    raw.entry(target)
                        .or_default()
                        .push((e.at, format!("journal:{}", health.unwrap_or_default())));
                }
            }
            "intent" => {
                let dry = e
                    .payload
                    .get("dry_run")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                if in_range && !dry && predicted.get(&target).copied().unwrap_or(false) {
                    actions.entry(target).or_default().push(e.at);
                }
            }
            _ => {}
        }
    }
    let mut failures = BTreeMap::new();
    for (target, mut list) in raw {
        list.sort_by_key(|(t, _)| *t);
        let mut marks: Vec<FailureMark> = Vec::new();
        for (at, kind) in list {
            if marks.last().is_some_and(|m| at.since(m.at) < FAILURE_MERGE) {
                continue;
            }
            marks.push(FailureMark {
                at,
                predictable: true,
                kind,
            });
        }
        failures.insert(target, marks);
    }
    for a in actions.values_mut() {
        a.sort();
        a.dedup();
    }
    Ok((failures, actions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_specs() {
        let c: StoreColumn = "rss_mb=process_resident_memory_bytes/1048576"
            .parse()
            .unwrap();
        assert_eq!(c.metric, "process_resident_memory_bytes");
        assert_eq!(c.kind, ColumnKind::Gauge);
        assert!((c.scale - 1.0 / 1048576.0).abs() < 1e-18);
        let c: StoreColumn = "cpu = rate(process_cpu_seconds_total)".parse().unwrap();
        assert_eq!((c.kind, c.scale), (ColumnKind::Rate, 1.0));
        let c: StoreColumn = r#"lat=rate(http_total{path="/a,b",code="5\"x"})*1000"#
            .parse()
            .unwrap();
        assert_eq!(c.metric, "http_total");
        assert_eq!(
            c.matchers,
            vec![
                ("path".to_owned(), "/a,b".to_owned()),
                ("code".to_owned(), "5\"x".to_owned())
            ]
        );
        assert_eq!(c.scale, 1000.0);
        for bad in [
            "x",
            "=m",
            "x=",
            "x=1abc",
            "x=m{a=b}",
            "x=m{a=\"b}",
            "x=rate(m",
            "x=m/0",
            "x=m*y",
            "x=m{a=\"b\"",
        ] {
            assert!(bad.parse::<StoreColumn>().is_err(), "{bad:?}");
        }
    }
}
