//! NAB: streaming detection over NAB CSVs and our implementation of NAB scoring.
//!
//! The scoring follows NAB v1.1 (`nab/sweeper.py`, `nab/optimizer.py`, `nab/scorer.py`,
//! `nab/runner.py`; Lavin & Ahmad 2015):
//!
//! - The first `min(floor(0.15 n), 0.15 * 5000)` rows of a file are probationary and not scored.
//! - A row inside an anomaly window `[start, end]` (both inclusive) at index `i`, in a window whose
//!   last row has index `r` and that holds `w` rows, is worth `σ(−(r − i + 1)/w) / σ(−1)` times
//!   `tpWeight`, where `σ(x) = 2/(1 + e^{5x}) − 1` (the scaled sigmoid, −1 for `x > 3`). Only the
//!   best (earliest) detection of a window counts; an undetected window costs `fnWeight`.
//! - A detection outside windows costs `fpWeight` times `σ(|i − r_prev|/(w_prev − 1))` relative to
//!   the closest preceding window (so detections right after a window cost little), or the full
//!   `fpWeight` before any window.
//! - One threshold per detector and profile is chosen to maximise the corpus score (sweeping every
//!   distinct anomaly score; ties keep the highest threshold); a row is a detection when its score
//!   is `>=` the threshold.
//! - The corpus score is normalised to `100 (S − S_null)/(S_perfect − S_null)` where the null
//!   detector (a constant score) scores every window as missed after its own optimisation and the
//!   perfect detector earns `tpWeight` per labelled window.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::stream::{NabDetector, NabDetectorKind};

/// Fraction of each file that is probationary (not scored).
pub const PROBATION_PERCENT: f64 = 0.15;

/// What went wrong reading, running or scoring NAB.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A results file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV row could not be understood.
    #[error("{path}:{line}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A JSON file (labels, profiles) is not valid JSON.
    #[error("cannot parse {path} as json")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON file has the wrong shape.
    #[error("{path}: {reason}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A labelled file has no data or results file.
    #[error("{key}: no file at {path}")]
    Missing {
        /// The labels key, `category/file.csv`.
        key: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A results file does not have the data file's rows.
    #[error("{path}: {reason}")]
    Mismatch {
        /// The results file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Nothing to score.
    #[error("no labelled files to score")]
    Empty,
}

/// Weights of one NAB profile (`config/profiles.json`, `CostMatrix`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostMatrix {
    /// Reward for a detected window (earliest detection).
    pub tp_weight: f64,
    /// Cost of a detection outside windows.
    pub fp_weight: f64,
    /// Cost of a missed window.
    pub fn_weight: f64,
}

/// A named scoring profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `standard`, `reward_low_FP_rate`, `reward_low_FN_rate`.
    pub name: String,
    /// Its weights.
    pub costs: CostMatrix,
}

/// The three profiles in NAB's reporting order; [`read_profiles`] returns them in this order
/// when present, then any others by name.
pub const PROFILE_ORDER: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

/// Reads NAB's `profiles.json`.
pub fn read_profiles(path: &Path) -> Result<Vec<Profile>, NabError> {
    let value = read_json(path)?;
    let shape = |reason: &str| NabError::Shape {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let object = value
        .as_object()
        .ok_or_else(|| shape("expected an object of profiles"))?;
    let mut profiles = Vec::with_capacity(object.len());
    for (name, profile) in object {
        let matrix = profile
            .get("CostMatrix")
            .ok_or_else(|| shape(&format!("profile {name} has no CostMatrix")))?;
        let weight = |key: &str| {
            matrix
                .get(key)
                .and_then(serde_json::Value::as_f64)
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| {
                    shape(&format!(
                        "profile {name}: {key} missing or not a number >= 0"
                    ))
                })
        };
        profiles.push(Profile {
            name: name.clone(),
            costs: CostMatrix {
                tp_weight: weight("tpWeight")?,
                fp_weight: weight("fpWeight")?,
                fn_weight: weight("fnWeight")?,
            },
        });
    }
    profiles.sort_by_key(|p| {
        let rank = PROFILE_ORDER
            .iter()
            .position(|n| *n == p.name)
            .unwrap_or(PROFILE_ORDER.len());
        (rank, p.name.clone())
    });
    Ok(profiles)
}

/// An anomaly window, both ends inclusive, in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant inside the window.
    pub start: i64,
    /// Last instant inside the window.
    pub end: i64,
}

/// Reads `combined_windows.json`: `"category/file.csv"` to its windows, in key order.
pub fn read_windows(path: &Path) -> Result<BTreeMap<String, Vec<Window>>, NabError> {
    let value = read_json(path)?;
    let shape = |reason: String| NabError::Shape {
        path: path.to_path_buf(),
        reason,
    };
    let object = value
        .as_object()
        .ok_or_else(|| shape("expected an object of files".to_owned()))?;
    let mut out = BTreeMap::new();
    for (key, list) in object {
        let list = list
            .as_array()
            .ok_or_else(|| shape(format!("{key}: expected a list of windows")))?;
        let mut windows = Vec::with_capacity(list.len());
        for pair in list {
            let pair = pair.as_array().filter(|p| p.len() == 2);
            let parse = |v: &serde_json::Value| v.as_str().and_then(parse_timestamp);
            let (Some(start), Some(end)) = (
                pair.and_then(|p| parse(&p[0])),
                pair.and_then(|p| parse(&p[1])),
            ) else {
                return Err(shape(format!(
                    "{key}: a window is not [start, end] timestamps"
                )));
            };
            if end < start {
                return Err(shape(format!("{key}: a window ends before it starts")));
            }
            windows.push(Window { start, end });
        }
        windows.sort_by_key(|w| w.start);
        out.insert(key.clone(), windows);
    }
    Ok(out)
}

fn read_json(path: &Path) -> Result<serde_json::Value, NabError> {
    let text = std::fs::read_to_string(path).map_err(|source| NabError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| NabError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with a `T`) into microseconds since the Unix epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut micros = 0i64;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() == 20 || b.len() > 26 {
            return None;
        }
        let frac = num(20..b.len())?;
        micros = frac * 10i64.pow(u32::try_from(26 - b.len()).ok()?);
    }
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// One NAB data file: `timestamp,value` rows in file order.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Timestamps as written in the file.
    pub timestamp_text: Vec<String>,
    /// Timestamps in microseconds since the Unix epoch.
    pub timestamps: Vec<i64>,
    /// Values.
    pub values: Vec<f64>,
}

/// Reads a NAB data CSV (`timestamp,value`, header first). Rows keep the file's order.
pub fn read_series(path: &Path) -> Result<Series, NabError> {
    let text = std::fs::read_to_string(path).map_err(|source| NabError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (header, rows) = csv_rows(path, &text)?;
    let ts_col = column(path, &header, "timestamp")?;
    let value_col = column(path, &header, "value")?;
    let mut series = Series::default();
    for (line, fields) in rows {
        let (t, v) = (fields.get(ts_col), fields.get(value_col));
        let csv_err = |reason: String| NabError::Csv {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let t = t.ok_or_else(|| csv_err("missing timestamp".to_owned()))?;
        let ts = parse_timestamp(t).ok_or_else(|| csv_err(format!("bad timestamp {t:?}")))?;
        let v = v.ok_or_else(|| csv_err("missing value".to_owned()))?;
        let value: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| csv_err(format!("bad value {v:?}")))?;
        series.timestamp_text.push(t.trim().to_owned());
        series.timestamps.push(ts);
        series.values.push(value);
    }
    Ok(series)
}

/// Reads a NAB results CSV: its timestamps and `anomaly_score` column.
pub fn read_results(path: &Path) -> Result<(Vec<i64>, Vec<f64>), NabError> {
    let text = std::fs::read_to_string(path).map_err(|source| NabError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (header, rows) = csv_rows(path, &text)?;
    let ts_col = column(path, &header, "timestamp")?;
    let score_col = column(path, &header, "anomaly_score")?;
    let mut timestamps = Vec::with_capacity(rows.len());
    let mut scores = Vec::with_capacity(rows.len());
    for (line, fields) in rows {
        let csv_err = |reason: String| NabError::Csv {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let t = fields.get(ts_col).copied().unwrap_or("");
        timestamps.push(parse_timestamp(t).ok_or_else(|| csv_err(format!("bad timestamp {t:?}")))?);
        let s = fields.get(score_col).copied().unwrap_or("");
        scores.push(
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| csv_err(format!("bad anomaly_score {s:?}")))?,
        );
    }
    Ok((timestamps, scores))
}

type CsvRows<'a> = (Vec<&'a str>, Vec<(usize, Vec<&'a str>)>);

fn csv_rows<'a>(path: &Path, text: &'a str) -> Result<CsvRows<'a>, NabError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(NabError::Csv {
            path: path.to_path_buf(),
            line: 1,
            reason: "empty file".to_owned(),
        });
    };
    let header = header.split(',').map(str::trim).collect();
    let rows = lines
        .map(|(i, l)| (i + 1, l.split(',').collect()))
        .collect();
    Ok((header, rows))
}

fn column(path: &Path, header: &[&str], name: &str) -> Result<usize, NabError> {
    header
        .iter()
        .position(|h| *h == name)
        .ok_or_else(|| NabError::Csv {
            path: path.to_path_buf(),
            line: 1,
            reason: format!("no {name} column"),
        })
}

/// The probationary length of a file of `n_rows` rows, as NAB computes it.
pub fn probationary_length(n_rows: usize) -> usize {
    let by_fraction = (PROBATION_PERCENT * n_rows as f64).floor();
    // NAB caps it at 15 % of 5000 rows (= 750).
    by_fraction.min(PROBATION_PERCENT * 5000.0) as usize
}

/// NAB's scaled sigmoid of a relative position (−1 is a window's left edge, 0 its right edge).
pub fn scaled_sigmoid(relative_position: f64) -> f64 {
    if relative_position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * relative_position).exp()) - 1.0
    }
}

/// Where a row falls for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    /// In the probationary period: not scored.
    Probationary,
    /// Outside every window.
    Outside,
    /// Inside the window with this corpus-wide index.
    Inside(u32),
}

/// A row prepared for the threshold sweep: its anomaly score and its profile-free worth.
#[derive(Debug, Clone, Copy)]
struct SweepRow {
    score: f64,
    /// Inside a window: `σ(pos)/σ(−1)` (times tpWeight). Outside: `σ(...)` or −1 (times fpWeight).
    worth: f64,
    kind: RowKind,
}

/// A file ready for scoring: its rows' timestamps and the windows that apply to it.
#[derive(Debug, Clone)]
pub struct LabelledFile {
    /// `category/file.csv`.
    pub key: String,
    /// Row timestamps (microseconds) in file order. NAB files are mostly increasing but hold
    /// repeated stamps around daylight-saving changes and one step back, so no order is assumed.
    pub timestamps: Vec<i64>,
    /// Anomaly windows of the file.
    pub windows: Vec<Window>,
}

impl LabelledFile {
    /// Whether row `i` is inside a window (NAB's `label` column).
    pub fn labels(&self) -> Vec<u8> {
        self.timestamps
            .iter()
            .map(|&t| u8::from(self.windows.iter().any(|w| w.start <= t && t <= w.end)))
            .collect()
    }
}

/// Sweep rows of one file (`calcSweepScore`). `first_window` numbers this file's windows
/// corpus-wide; returns the rows and how many window indices the file used.
fn sweep_rows(file: &LabelledFile, scores: &[f64], first_window: u32) -> (Vec<SweepRow>, u32) {
    let ts = &file.timestamps;
    let probation = probationary_length(ts.len());
    let max_tp = scaled_sigmoid(-1.0);
    let mut rows = Vec::with_capacity(ts.len());
    let mut pending = file.windows.iter().peekable();
    let mut n_windows = 0u32;
    // (window index, right row index, width in rows)
    let mut current: Option<(u32, usize, f64)> = None;
    let mut previous: Option<(usize, f64)> = None;
    for (i, (&t, &score)) in ts.iter().zip(scores).enumerate() {
        if current.is_none() {
            // Skip windows that end before this row (they hold no rows).
            while pending.peek().is_some_and(|w| w.end < t) {
                pending.next();
            }
            if let Some(w) = pending.next_if(|w| w.start <= t) {
                // NAB takes the first row stamped exactly `end` as the right edge; without one,
                // the last row of the run of rows up to `end`.
                let right = ts[i..]
                    .iter()
                    .position(|&x| x == w.end)
                    .or_else(|| {
                        ts[i..]
                            .iter()
                            .position(|&x| x > w.end)
                            .map(|p| p.max(1) - 1)
                    })
                    .map_or(ts.len() - 1, |p| i + p);
                current = Some((first_window + n_windows, right, (right - i + 1) as f64));
                n_windows += 1;
            }
        }
        let (worth, kind) = match current {
            Some((index, right, width)) => {
                let position = -((right as f64 - i as f64 + 1.0) / width);
                (scaled_sigmoid(position) / max_tp, RowKind::Inside(index))
            }
            None => match previous {
                None => (-1.0, RowKind::Outside),
                Some((right, width)) => {
                    // NAB divides by (width − 1); a one-row window would divide by zero there.
                    let position = (i - right) as f64 / (width - 1.0).max(1.0);
                    (scaled_sigmoid(position), RowKind::Outside)
                }
            },
        };
        let kind = if i < probation {
            RowKind::Probationary
        } else {
            kind
        };
        rows.push(SweepRow { score, worth, kind });
        if let Some((_, right, width)) = current
            && right == i
        {
            previous = Some((right, width));
            current = None;
        }
    }
    (rows, n_windows)
}

/// The score of one threshold over a set of rows (`ThresholdScore`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdScore {
    /// Rows with `anomaly_score >= threshold` are detections.
    pub threshold: f64,
    /// Raw (unnormalised) NAB score.
    pub score: f64,
    /// Detections inside windows.
    pub tp: u64,
    /// Non-detections outside windows.
    pub tn: u64,
    /// Detections outside windows.
    pub fp: u64,
    /// Non-detections inside windows.
    pub fn_: u64,
}

/// Scores of every distinct threshold, highest threshold first (`calcScoreByThreshold`).
fn scores_by_threshold(
    rows: &[SweepRow],
    n_windows: u32,
    costs: CostMatrix,
) -> Vec<ThresholdScore> {
    let mut scorable: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| r.kind != RowKind::Probationary)
        .collect();
    scorable.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Window parts: −fnWeight for every window with a scorable row; others are not counted.
    let mut parts = vec![None::<f64>; n_windows as usize];
    for row in &scorable {
        if let RowKind::Inside(w) = row.kind {
            parts[w as usize] = Some(-costs.fn_weight);
        }
    }
    let mut window_sum: f64 = parts.iter().flatten().sum();
    let mut fp_sum = 0.0;
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut fn_ = scorable
        .iter()
        .filter(|r| r.kind != RowKind::Outside)
        .count() as u64;
    let mut tn = scorable.len() as u64 - fn_;
    let mut out = Vec::new();
    let mut threshold = 1.1;
    for row in scorable {
        if row.score != threshold {
            out.push(ThresholdScore {
                threshold,
                score: fp_sum + window_sum,
                tp,
                tn,
                fp,
                fn_,
            });
            threshold = row.score;
        }
        match row.kind {
            RowKind::Inside(w) => {
                tp += 1;
                fn_ -= 1;
                let part = parts[w as usize]
                    .as_mut()
                    .expect("set above for every scorable window row");
                let worth = row.worth * costs.tp_weight;
                if worth > *part {
                    window_sum += worth - *part;
                    *part = worth;
                }
            }
            RowKind::Outside => {
                fp += 1;
                tn -= 1;
                fp_sum += row.worth * costs.fp_weight;
            }
            RowKind::Probationary => {}
        }
    }
    out.push(ThresholdScore {
        threshold,
        score: fp_sum + window_sum,
        tp,
        tn,
        fp,
        fn_,
    });
    out
}

/// The best threshold: the highest score, ties to the highest threshold (NAB's stable sort).
fn best(scores: &[ThresholdScore]) -> ThresholdScore {
    let mut best = scores[0];
    for s in &scores[1..] {
        if s.score > best.score {
            best = *s;
        }
    }
    best
}

/// Score of one file at a fixed threshold.
fn score_at(
    rows: &[SweepRow],
    n_windows: u32,
    costs: CostMatrix,
    threshold: f64,
) -> ThresholdScore {
    let mut parts = vec![None::<f64>; n_windows as usize];
    let mut out = ThresholdScore {
        threshold,
        score: 0.0,
        tp: 0,
        tn: 0,
        fp: 0,
        fn_: 0,
    };
    let mut fp_sum = 0.0;
    for row in rows {
        let detected = row.score >= threshold;
        match row.kind {
            RowKind::Probationary => {}
            RowKind::Outside if detected => {
                out.fp += 1;
                fp_sum += row.worth * costs.fp_weight;
            }
            RowKind::Outside => out.tn += 1,
            RowKind::Inside(w) => {
                let part = parts[w as usize].get_or_insert(-costs.fn_weight);
                if detected {
                    out.tp += 1;
                    *part = part.max(row.worth * costs.tp_weight);
                } else {
                    out.fn_ += 1;
                }
            }
        }
    }
    out.score = fp_sum + parts.iter().flatten().sum::<f64>();
    out
}

/// Per-file result at the corpus threshold of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct FileScore {
    /// `category/file.csv`.
    pub key: String,
    /// Score and counts at the profile's threshold.
    pub at_threshold: ThresholdScore,
}

/// The result of one profile over a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileScore {
    /// Profile name.
    pub profile: String,
    /// Optimised threshold and the raw corpus score there.
    pub best: ThresholdScore,
    /// The null detector's raw score.
    pub null_score: f64,
    /// The perfect detector's raw score (`tpWeight` × labelled windows).
    pub perfect_score: f64,
    /// `100 (best − null) / (perfect − null)`.
    pub normalized: f64,
    /// Each file at `best.threshold`.
    pub files: Vec<FileScore>,
}

/// Scores one detector's anomaly scores (one `Vec` per file, aligned with
/// `files[i].timestamps`) under each profile, with threshold optimisation and normalisation.
pub fn score_corpus(
    files: &[LabelledFile],
    scores: &[Vec<f64>],
    profiles: &[Profile],
) -> Result<Vec<ProfileScore>, NabError> {
    if files.is_empty() {
        return Err(NabError::Empty);
    }
    let mut rows = Vec::new();
    let mut null_rows = Vec::new();
    let mut per_file = Vec::with_capacity(files.len());
    let mut n_windows = 0u32;
    let mut n_labelled_windows = 0usize;
    for (file, file_scores) in files.iter().zip(scores) {
        if file.timestamps.len() != file_scores.len() {
            return Err(NabError::Mismatch {
                path: PathBuf::from(&file.key),
                reason: format!(
                    "{} rows but {} scores",
                    file.timestamps.len(),
                    file_scores.len()
                ),
            });
        }
        let (file_rows, used) = sweep_rows(file, file_scores, n_windows);
        let start = rows.len();
        null_rows.extend(file_rows.iter().map(|r| SweepRow { score: 0.5, ..*r }));
        rows.extend(file_rows);
        per_file.push((start..rows.len(), n_windows, used));
        n_windows += used;
        n_labelled_windows += file.windows.len();
    }
    let mut out = Vec::with_capacity(profiles.len());
    for profile in profiles {
        let costs = profile.costs;
        let best = best(&scores_by_threshold(&rows, n_windows, costs));
        let null_score = best_score_of(&null_rows, n_windows, costs);
        let perfect_score = n_labelled_windows as f64 * costs.tp_weight;
        let normalized = if perfect_score == null_score {
            0.0
        } else {
            100.0 * (best.score - null_score) / (perfect_score - null_score)
        };
        let files = files
            .iter()
            .zip(&per_file)
            .map(|(file, (range, first, used))| {
                // Re-index this file's windows from 0 for the per-file pass.
                let local: Vec<SweepRow> = rows[range.clone()]
                    .iter()
                    .map(|r| match r.kind {
                        RowKind::Inside(w) => SweepRow {
                            kind: RowKind::Inside(w - first),
                            ..*r
                        },
                        _ => *r,
                    })
                    .collect();
                FileScore {
                    key: file.key.clone(),
                    at_threshold: score_at(&local, *used, costs, best.threshold),
                }
            })
            .collect();
        out.push(ProfileScore {
            profile: profile.name.clone(),
            best,
            null_score,
            perfect_score,
            normalized,
            files,
        });
    }
    Ok(out)
}

fn best_score_of(rows: &[SweepRow], n_windows: u32, costs: CostMatrix) -> f64 {
    best(&scores_by_threshold(rows, n_windows, costs)).score
}

/// A labelled NAB corpus: the files under a data directory that have labels.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The files in labels-key order.
    pub files: Vec<LabelledFile>,
    /// Their data, aligned with `files`.
    pub series: Vec<Series>,
}

/// Reads every labelled file of `labels` from `data_dir` (`data_dir/<category>/<file>.csv`).
pub fn read_corpus(data_dir: &Path, labels_json: &Path) -> Result<Corpus, NabError> {
    let windows = read_windows(labels_json)?;
    let mut corpus = Corpus {
        files: Vec::with_capacity(windows.len()),
        series: Vec::with_capacity(windows.len()),
    };
    for (key, file_windows) in windows {
        let path = data_dir.join(&key);
        if !path.is_file() {
            return Err(NabError::Missing { key, path });
        }
        let series = read_series(&path)?;
        corpus.files.push(LabelledFile {
            key,
            timestamps: series.timestamps.clone(),
            windows: file_windows,
        });
        corpus.series.push(series);
    }
    if corpus.files.is_empty() {
        return Err(NabError::Empty);
    }
    Ok(corpus)
}

/// Where NAB keeps a detector's results for a data file:
/// `<results>/<detector>/<category>/<detector>_<file>.csv`.
pub fn results_path(results_dir: &Path, detector: &str, key: &str) -> PathBuf {
    let (dir, file) = key.rsplit_once('/').unwrap_or(("", key));
    results_dir
        .join(detector)
        .join(dir)
        .join(format!("{detector}_{file}"))
}

/// Reads a detector's existing NAB results (`<results>/<detector>/...`) for every corpus file.
pub fn read_detector_results(
    corpus: &Corpus,
    results_dir: &Path,
    detector: &str,
) -> Result<Vec<Vec<f64>>, NabError> {
    let mut out = Vec::with_capacity(corpus.files.len());
    for file in &corpus.files {
        let path = results_path(results_dir, detector, &file.key);
        if !path.is_file() {
            return Err(NabError::Missing {
                key: file.key.clone(),
                path,
            });
        }
        let (timestamps, scores) = read_results(&path)?;
        if timestamps != file.timestamps {
            return Err(NabError::Mismatch {
                path,
                reason: "timestamps differ from the data file".to_owned(),
            });
        }
        out.push(scores);
    }
    Ok(out)
}

/// Runs a detector over every corpus file with no look-ahead: score `i` is computed after
/// seeing rows `0..=i` only.
pub fn detect_corpus(corpus: &Corpus, kind: NabDetectorKind) -> Vec<Vec<f64>> {
    corpus
        .series
        .iter()
        .map(|series| {
            let mut detector = NabDetector::new(kind);
            let mut out = vec![0.0; series.values.len()];
            for ((slot, &value), &t) in out.iter_mut().zip(&series.values).zip(&series.timestamps) {
                *slot = detector.update(t, value);
            }
            out
        })
        .collect()
}

/// Writes NAB results files (`timestamp,value,anomaly_score,label`) for a detector.
pub fn write_results(
    corpus: &Corpus,
    scores: &[Vec<f64>],
    results_dir: &Path,
    detector: &str,
) -> Result<Vec<PathBuf>, NabError> {
    let mut written = Vec::with_capacity(corpus.files.len());
    for ((file, series), file_scores) in corpus.files.iter().zip(&corpus.series).zip(scores) {
        let path = results_path(results_dir, detector, &file.key);
        let write_err = |source| NabError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        let labels = file.labels();
        let mut text = String::with_capacity(48 * series.values.len() + 40);
        text.push_str("timestamp,value,anomaly_score,label\n");
        for i in 0..series.values.len() {
            let _ = writeln!(
                text,
                "{},{},{},{}",
                series.timestamp_text[i], series.values[i], file_scores[i], labels[i]
            );
        }
        std::fs::write(&path, text).map_err(write_err)?;
        written.push(path);
    }
    Ok(written)
}
