//! SMD: per-machine train/test, F1 with and without point adjustment, HitRate@P%.
//!
//! Protocol (OmniAnomaly, KDD 2019): per machine, features from `train/` fit an isolation
//! forest; `test/` is scored. The decision threshold is the `train_quantile` quantile of the
//! TRAIN scores (no test label is used to choose it). Reported: precision, recall and F1 at
//! that threshold and the best F1 over all thresholds (an oracle figure), each without and with
//! point adjustment; ROC AUC; and attribution HitRate@100 % and @150 % against
//! `interpretation_label/`.
//!
//! Features: with `window = 1` a row's 38 raw values; with a longer window, per metric the
//! last value, mean, min and max over the last `window` rows (the first rows use the rows
//! available), through [`crate::features`]. Attribution per metric sums its features'.
//!
//! HitRate@P % for one labelled row with ground-truth metric set `GT`: the share of `GT` among
//! the row's top `⌊P/100 · |GT|⌋` metrics. Rows inside an interpretation segment are counted
//! twice over: every one of them (`hitrate_*`, whether detected or not), and only those the
//! forest detects at the train threshold (`hitrate_detected_*`, the OmniAnomaly paper's
//! setting of explaining detected anomalies).
//!
//! Rankings of the metrics of a row:
//! - deviation (`hitrate_*`, `hitrate_detected_*`, the headline): `|x_j − b_j| / s_j`, where
//!   `b_j` is a causal baseline of metric `j` (the train median, then an EWMA with α = 1/30,
//!   about half an hour of minutes, over the test rows BEFORE the current one) and `s_j` the
//!   train spread of the metric (1st to 99th percentile, at least 0.01 as SMD is scaled to
//!   [0, 1]). The baseline follows slow drift between train and test, so the metrics that
//!   moved just now rank first. See [`DeviationRanker`].
//! - forest (`hitrate_forest_*`): the isolation forest's per-metric attribution (summed over a
//!   metric's features), see [`IsolationForest::attribute_into`].
//! - forest minus a causal baseline (`hitrate_baseline_*`): that attribution minus the mean
//!   attribution of train rows, then an EWMA (α = 1/1440, about a day) over the test rows
//!   before the current one.
//!
//! The deviation ranking's two constants were chosen on these same three machines (there is
//! no held-out SMD machine here), so its figures are optimistic by an unknown amount.

use std::path::Path;

use ndarray::Array2;
use serde::Serialize;

use super::metrics::{Prf, best_f1, point_adjusted_scores, prf_at, roc_auc};
use crate::features::{Aggregation, Extractor, FeatureSpec, SeriesSpec, Window};
use crate::iforest::{Contamination, IsolationForest, Params, threshold_for_fraction};

/// Errors of the SMD evaluation.
#[derive(Debug, thiserror::Error)]
pub enum SmdError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is malformed.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Fitting or scoring failed.
    #[error("isolation forest")]
    Forest(#[from] crate::iforest::Error),
    /// Feature extraction failed.
    #[error("features")]
    Features(#[from] crate::features::FeatureError),
}

fn read(path: &Path) -> Result<String, SmdError> {
    std::fs::read_to_string(path).map_err(|source| SmdError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a `train/` or `test/` file: one row per line, comma-separated numbers.
pub fn load_matrix(path: &Path) -> Result<Array2<f64>, SmdError> {
    let text = read(path)?;
    let mut data = Vec::new();
    let mut width = None;
    let mut rows = 0;
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let before = data.len();
        for field in line.split(',') {
            let v: f64 = field.trim().parse().map_err(|_| SmdError::Parse {
                path: path.display().to_string(),
                line: k + 1,
                reason: format!("not a number: {field:?}"),
            })?;
            data.push(v);
        }
        let w = data.len() - before;
        if *width.get_or_insert(w) != w {
            return Err(SmdError::Parse {
                path: path.display().to_string(),
                line: k + 1,
                reason: format!("{w} values, earlier rows have {}", width.unwrap_or(0)),
            });
        }
        rows += 1;
    }
    let w = width.unwrap_or(0);
    Array2::from_shape_vec((rows, w), data).map_err(|e| SmdError::Parse {
        path: path.display().to_string(),
        line: 0,
        reason: e.to_string(),
    })
}

/// Reads `test_label/`: one `0` or `1` per line.
pub fn load_labels(path: &Path) -> Result<Vec<bool>, SmdError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        match line.trim() {
            "" => {}
            "0" => out.push(false),
            "1" => out.push(true),
            other => {
                return Err(SmdError::Parse {
                    path: path.display().to_string(),
                    line: k + 1,
                    reason: format!("label {other:?} is not 0 or 1"),
                });
            }
        }
    }
    Ok(out)
}

/// One interpretation line: rows `start..end` (0-based, end exclusive) and the 0-based
/// metric indices that explain the anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpretation {
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// Contributing metrics, 0-based.
    pub dims: Vec<usize>,
}

/// Parses `interpretation_label/` text: lines `a-b:d1,d2,...` (rows `a..b`, 1-based metrics).
pub fn parse_interpretation(text: &str, path: &str) -> Result<Vec<Interpretation>, SmdError> {
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |reason: &str| SmdError::Parse {
            path: path.to_owned(),
            line: k + 1,
            reason: reason.to_owned(),
        };
        let (range, dims) = line.split_once(':').ok_or_else(|| err("no ':'"))?;
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| err("no '-' in range"))?;
        let start: usize = a.trim().parse().map_err(|_| err("bad range start"))?;
        let end: usize = b.trim().parse().map_err(|_| err("bad range end"))?;
        if end <= start {
            return Err(err("empty range"));
        }
        let mut ds = Vec::new();
        for d in dims.split(',').filter(|d| !d.trim().is_empty()) {
            let d: usize = d.trim().parse().map_err(|_| err("bad metric number"))?;
            if d == 0 {
                return Err(err("metric numbers are 1-based"));
            }
            ds.push(d - 1);
        }
        out.push(Interpretation {
            start,
            end,
            dims: ds,
        });
    }
    Ok(out)
}

/// HitRate@P % of one row: the share of `gt` among the first `⌊P/100 · |gt|⌋` entries of
/// `ranked` (metric indices, most contributing first). `None` when `gt` is empty.
pub fn hit_rate(ranked: &[usize], gt: &[usize], percent: f64) -> Option<f64> {
    if gt.is_empty() {
        return None;
    }
    let k = ((percent / 100.0) * gt.len() as f64).floor() as usize;
    let hits = ranked.iter().take(k).filter(|d| gt.contains(d)).count();
    Some(hits as f64 / gt.len() as f64)
}

/// Settings of an SMD run.
#[derive(Debug, Clone, Copy)]
pub struct SmdConfig {
    /// Rows of context per feature vector (1 = the raw row).
    pub window: usize,
    /// Trees.
    pub n_trees: usize,
    /// Subsample size.
    pub max_samples: usize,
    /// Seed.
    pub seed: u64,
    /// The threshold is this quantile of the train scores.
    pub train_quantile: f64,
}

impl Default for SmdConfig {
    fn default() -> Self {
        SmdConfig {
            window: 1,
            n_trees: 100,
            max_samples: 256,
            seed: 0,
            train_quantile: 0.99,
        }
    }
}

/// One machine's figures.
#[derive(Debug, Clone, Serialize)]
pub struct MachineResult {
    /// Machine name, e.g. `machine-1-2`.
    pub machine: String,
    /// Train rows.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Labelled anomalous test rows.
    pub anomalous_rows: usize,
    /// Threshold from train scores.
    pub threshold: f64,
    /// At the train threshold, without point adjustment.
    pub at_threshold: Prf,
    /// At the train threshold, with point adjustment.
    pub at_threshold_pa: Prf,
    /// Best F1 over thresholds, without point adjustment.
    pub best: Prf,
    /// Best F1 over thresholds, with point adjustment.
    pub best_pa: Prf,
    /// ROC AUC of the raw test scores.
    pub auc: f64,
    /// Rows counted in the HitRates.
    pub interpreted_rows: usize,
    /// HitRate@100 % ranking metrics by forest attribution minus the causal baseline.
    pub hitrate_baseline_100: f64,
    /// HitRate@150 %, same ranking.
    pub hitrate_baseline_150: f64,
    /// HitRate@100 % ranking metrics by the row's forest attribution.
    pub hitrate_forest_100: f64,
    /// HitRate@150 %, forest attribution.
    pub hitrate_forest_150: f64,
    /// HitRate@100 % ranking metrics by deviation from the causal baseline (all rows).
    pub hitrate_100: f64,
    /// HitRate@150 %, deviation ranking (all rows).
    pub hitrate_150: f64,
    /// Interpreted rows the forest detects at the train threshold.
    pub detected_rows: usize,
    /// HitRate@100 %, deviation ranking, detected rows only.
    pub hitrate_detected_100: f64,
    /// HitRate@150 %, deviation ranking, detected rows only.
    pub hitrate_detected_150: f64,
    /// HitRate@150 %, forest attribution, detected rows only.
    pub hitrate_forest_detected_150: f64,
}

/// Ranks the metrics of each row by standardised deviation from a causal baseline (see the
/// module docs). Feed rows in time order; allocates nothing per row.
#[derive(Debug, Clone)]
pub struct DeviationRanker {
    baseline: Vec<f64>,
    scale: Vec<f64>,
    alpha: f64,
}

/// EWMA weight of the deviation baseline (about half an hour of one-minute rows).
pub const DEVIATION_ALPHA: f64 = 1.0 / 30.0;
/// Smallest metric spread of the deviation ranking.
pub const DEVIATION_MIN_SCALE: f64 = 0.01;

impl DeviationRanker {
    /// Baseline at the train medians, scales from the train 1st–99th percentile spread.
    pub fn from_train(train: &Array2<f64>, alpha: f64) -> Self {
        let mut col = Vec::with_capacity(train.nrows());
        let (mut baseline, mut scale) = (Vec::new(), Vec::new());
        for c in train.columns() {
            col.clear();
            col.extend(c.iter().copied());
            col.sort_unstable_by(f64::total_cmp);
            let q = |p: f64| {
                if col.is_empty() {
                    0.0
                } else {
                    col[((col.len() - 1) as f64 * p).round() as usize]
                }
            };
            baseline.push(q(0.5));
            scale.push((q(0.99) - q(0.01)).max(DEVIATION_MIN_SCALE));
        }
        DeviationRanker {
            baseline,
            scale,
            alpha,
        }
    }

    /// Writes `|x_j − b_j| / s_j` for `row` into `out`, then moves the baseline towards `row`.
    /// A non-finite value scores 0 and leaves its baseline alone.
    pub fn deviations_into(&mut self, row: &[f64], out: &mut [f64]) {
        for (((x, b), s), o) in row
            .iter()
            .zip(self.baseline.iter_mut())
            .zip(&self.scale)
            .zip(out.iter_mut())
        {
            if x.is_finite() {
                *o = (x - *b).abs() / s;
                *b += self.alpha * (x - *b);
            } else {
                *o = 0.0;
            }
        }
    }
}

/// Feature matrix of `x` through the feature path, and the spec used.
fn featurize(x: &Array2<f64>, window: usize) -> Result<(Array2<f64>, FeatureSpec), SmdError> {
    let d = x.ncols();
    let aggregations = if window <= 1 {
        vec![Aggregation::Last]
    } else {
        vec![
            Aggregation::Last,
            Aggregation::Mean,
            Aggregation::Min,
            Aggregation::Max,
        ]
    };
    let spec = FeatureSpec::new(
        (0..d)
            .map(|j| SeriesSpec {
                name: format!("m{}", j + 1),
                aggregations: aggregations.clone(),
            })
            .collect(),
        0.5,
    )?;
    let cols: Vec<Vec<f64>> = (0..d).map(|j| x.column(j).to_vec()).collect();
    let times: Vec<f64> = (0..x.nrows()).map(|i| i as f64 * 60.0).collect();
    let mut ex = Extractor::new(spec.clone());
    let width = spec.width();
    let mut out = Array2::zeros((x.nrows(), width));
    let mut slices: Vec<&[f64]> = Vec::with_capacity(d);
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        let lo = (i + 1).saturating_sub(window.max(1));
        slices.clear();
        slices.extend(cols.iter().map(|c| &c[lo..=i]));
        let w = Window::new(&times[lo..=i], &slices)?;
        let buf = row
            .as_slice_mut()
            .ok_or_else(|| crate::features::FeatureError::Shape("non-contiguous row".into()))?;
        ex.extract_into(&w, buf)?;
    }
    Ok((out, spec))
}

/// Runs one machine: `dir/{train,test,test_label,interpretation_label}/<machine>.txt`.
pub fn evaluate_machine(
    dir: &Path,
    machine: &str,
    cfg: SmdConfig,
) -> Result<MachineResult, SmdError> {
    let file = format!("{machine}.txt");
    let train = load_matrix(&dir.join("train").join(&file))?;
    let test = load_matrix(&dir.join("test").join(&file))?;
    let labels = load_labels(&dir.join("test_label").join(&file))?;
    let ipath = dir.join("interpretation_label").join(&file);
    let interp = parse_interpretation(&read(&ipath)?, &ipath.display().to_string())?;
    if labels.len() != test.nrows() || train.ncols() != test.ncols() {
        return Err(SmdError::Parse {
            path: dir.display().to_string(),
            line: 0,
            reason: format!(
                "{machine}: {} labels for {} test rows; {} train vs {} test columns",
                labels.len(),
                test.nrows(),
                train.ncols(),
                test.ncols()
            ),
        });
    }
    let d = test.ncols();
    let (ftrain, spec) = featurize(&train, cfg.window)?;
    let (ftest, _) = featurize(&test, cfg.window)?;
    let forest = IsolationForest::fit(
        ftrain.view(),
        Params {
            n_trees: cfg.n_trees,
            max_samples: cfg.max_samples,
            seed: cfg.seed,
            contamination: Contamination::Auto,
        },
    )?;
    let mut train_scores = vec![0.0; ftrain.nrows()];
    forest.score_into(ftrain.view(), &mut train_scores)?;
    let threshold = threshold_for_fraction(&mut train_scores, 1.0 - cfg.train_quantile);
    let mut scores = vec![0.0; ftest.nrows()];
    forest.score_into(ftest.view(), &mut scores)?;
    let adjusted = point_adjusted_scores(&scores, &labels);
    let zero = Prf::from_counts(0, 0, 0, f64::NAN);

    // Attribution per metric for every test row, raw and contrasted with a causal baseline.
    let series_of = spec.series_of_feature();
    let mut contrib = vec![0.0; spec.width()];
    let per_metric = |forest: &IsolationForest,
                      x: &Array2<f64>,
                      contrib: &mut [f64]|
     -> Result<Array2<f64>, SmdError> {
        let mut out = Array2::zeros((x.nrows(), d));
        for (r, mut o) in out.rows_mut().into_iter().enumerate() {
            let row = x.row(r);
            forest.attribute_into(row.as_slice().unwrap_or(&[]), contrib)?;
            for (c, &s) in contrib.iter().zip(&series_of) {
                o[s] += c;
            }
        }
        Ok(out)
    };
    let test_attr = per_metric(&forest, &ftest, &mut contrib)?;
    // The baseline starts as the mean attribution of TRAIN rows and then follows the test rows
    // seen so far (EWMA, about a day of minutes), never the current or a later row.
    let train_attr = per_metric(&forest, &ftrain, &mut contrib)?;
    let mut baseline: Vec<f64> = (0..d)
        .map(|j| train_attr.column(j).mean().unwrap_or(0.0))
        .collect();
    let alpha = 1.0 / 1440.0;
    let mut contrast = Array2::zeros((ftest.nrows(), d));
    for (r, row) in test_attr.rows().into_iter().enumerate() {
        for j in 0..d {
            contrast[[r, j]] = row[j] - baseline[j];
            baseline[j] += alpha * (row[j] - baseline[j]);
        }
    }
    // Deviation ranking over every test row in time order (the baseline must see them all).
    let mut ranker = DeviationRanker::from_train(&train, DEVIATION_ALPHA);
    let mut deviation = Array2::zeros((test.nrows(), d));
    for (x, mut o) in test.rows().into_iter().zip(deviation.rows_mut()) {
        let (Some(x), Some(o)) = (x.as_slice(), o.as_slice_mut()) else {
            continue;
        };
        ranker.deviations_into(x, o);
    }
    let mut ranked: Vec<usize> = (0..d).collect();
    let mut rank_hits = |m: ndarray::ArrayView1<'_, f64>, dims: &[usize]| {
        ranked.sort_by(|&a, &b| m[b].total_cmp(&m[a]).then(a.cmp(&b)));
        (
            hit_rate(&ranked, dims, 100.0).unwrap_or(0.0),
            hit_rate(&ranked, dims, 150.0).unwrap_or(0.0),
        )
    };
    let mut sums = [0.0f64; 9];
    let (mut n_rows, mut n_detected) = (0usize, 0usize);
    for seg in &interp {
        if seg.dims.is_empty() {
            continue;
        }
        // `r` indexes three matrices and the scores alike.
        #[allow(clippy::needless_range_loop)]
        for r in seg.start..seg.end.min(ftest.nrows()) {
            let (f100, f150) = rank_hits(test_attr.row(r), &seg.dims);
            let (b100, b150) = rank_hits(contrast.row(r), &seg.dims);
            let (d100, d150) = rank_hits(deviation.row(r), &seg.dims);
            for (k, v) in [f100, f150, b100, b150, d100, d150].into_iter().enumerate() {
                sums[k] += v;
            }
            n_rows += 1;
            if scores[r] >= threshold {
                sums[6] += d100;
                sums[7] += d150;
                sums[8] += f150;
                n_detected += 1;
            }
        }
    }
    let nr = n_rows.max(1) as f64;
    let nd = n_detected.max(1) as f64;
    Ok(MachineResult {
        machine: machine.to_owned(),
        train_rows: train.nrows(),
        test_rows: test.nrows(),
        anomalous_rows: labels.iter().filter(|&&l| l).count(),
        threshold,
        at_threshold: prf_at(&scores, &labels, threshold),
        at_threshold_pa: prf_at(&adjusted, &labels, threshold),
        best: best_f1(&scores, &labels).unwrap_or(zero),
        best_pa: best_f1(&adjusted, &labels).unwrap_or(zero),
        auc: roc_auc(&scores, &labels).unwrap_or(f64::NAN),
        interpreted_rows: n_rows,
        hitrate_forest_100: sums[0] / nr,
        hitrate_forest_150: sums[1] / nr,
        hitrate_baseline_100: sums[2] / nr,
        hitrate_baseline_150: sums[3] / nr,
        hitrate_100: sums[4] / nr,
        hitrate_150: sums[5] / nr,
        detected_rows: n_detected,
        hitrate_detected_100: sums[6] / nd,
        hitrate_detected_150: sums[7] / nd,
        hitrate_forest_detected_150: sums[8] / nd,
    })
}

/// Figures over several machines.
#[derive(Debug, Clone, Serialize)]
pub struct SmdSummary {
    /// Machines.
    pub machines: usize,
    /// At the train thresholds, counts summed over machines, without point adjustment.
    pub at_threshold: Prf,
    /// Same, with point adjustment.
    pub at_threshold_pa: Prf,
    /// Mean over machines of the best F1, without point adjustment.
    pub best_f1_mean: f64,
    /// Mean over machines of the best F1, with point adjustment.
    pub best_f1_pa_mean: f64,
    /// HitRate@100 % of forest attribution minus baseline over all interpreted rows.
    pub hitrate_baseline_100: f64,
    /// HitRate@150 % of forest attribution minus baseline over all interpreted rows.
    pub hitrate_baseline_150: f64,
    /// HitRate@100 % of forest attribution over all interpreted rows.
    pub hitrate_forest_100: f64,
    /// HitRate@150 % of forest attribution over all interpreted rows.
    pub hitrate_forest_150: f64,
    /// HitRate@100 % of the deviation ranking over all interpreted rows.
    pub hitrate_100: f64,
    /// HitRate@150 % of the deviation ranking over all interpreted rows.
    pub hitrate_150: f64,
    /// Interpreted rows detected at the train thresholds.
    pub detected_rows: usize,
    /// HitRate@100 % of the deviation ranking over detected interpreted rows.
    pub hitrate_detected_100: f64,
    /// HitRate@150 % of the deviation ranking over detected interpreted rows.
    pub hitrate_detected_150: f64,
    /// HitRate@150 % of forest attribution over detected interpreted rows.
    pub hitrate_forest_detected_150: f64,
}

/// Combines machine results.
pub fn summarize(results: &[MachineResult]) -> SmdSummary {
    let sum = |f: fn(&MachineResult) -> Prf| {
        let (tp, fp, fn_) = results
            .iter()
            .map(f)
            .fold((0, 0, 0), |a, p| (a.0 + p.tp, a.1 + p.fp, a.2 + p.fn_));
        Prf::from_counts(tp, fp, fn_, f64::NAN)
    };
    let n = results.len().max(1) as f64;
    let rows: usize = results.iter().map(|r| r.interpreted_rows).sum();
    let w = |f: fn(&MachineResult) -> f64| {
        results
            .iter()
            .map(|r| f(r) * r.interpreted_rows as f64)
            .sum::<f64>()
            / rows.max(1) as f64
    };
    let detected: usize = results.iter().map(|r| r.detected_rows).sum();
    let wd = |f: fn(&MachineResult) -> f64| {
        results
            .iter()
            .map(|r| f(r) * r.detected_rows as f64)
            .sum::<f64>()
            / detected.max(1) as f64
    };
    SmdSummary {
        machines: results.len(),
        at_threshold: sum(|r| r.at_threshold),
        at_threshold_pa: sum(|r| r.at_threshold_pa),
        best_f1_mean: results.iter().map(|r| r.best.f1).sum::<f64>() / n,
        best_f1_pa_mean: results.iter().map(|r| r.best_pa.f1).sum::<f64>() / n,
        hitrate_baseline_100: w(|r| r.hitrate_baseline_100),
        hitrate_baseline_150: w(|r| r.hitrate_baseline_150),
        hitrate_forest_100: w(|r| r.hitrate_forest_100),
        hitrate_forest_150: w(|r| r.hitrate_forest_150),
        hitrate_100: w(|r| r.hitrate_100),
        hitrate_150: w(|r| r.hitrate_150),
        detected_rows: detected,
        hitrate_detected_100: wd(|r| r.hitrate_detected_100),
        hitrate_detected_150: wd(|r| r.hitrate_detected_150),
        hitrate_forest_detected_150: wd(|r| r.hitrate_forest_detected_150),
    }
}
