//! ODDS-style tabular benchmarks: isolation forest AUC, fit and score times.
//!
//! A dataset is a CSV with header `f0,...,f{d-1},label` (label 1 = outlier). The protocol is
//! ADBench's unsupervised one: fit on all rows, score all rows, ROC AUC against the labels;
//! repeated over seeds `0..seeds`.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::Serialize;

use super::metrics::roc_auc;
use crate::iforest::{Contamination, IsolationForest, Params};

/// Errors of reading and evaluating ODDS CSVs.
#[derive(Debug, thiserror::Error)]
pub enum OddsError {
    /// The file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CSV is malformed.
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
    #[error("isolation forest on {dataset}")]
    Forest {
        /// The dataset.
        dataset: String,
        /// The cause.
        #[source]
        source: crate::iforest::Error,
    },
    /// AUC is undefined (labels all one class).
    #[error("{0}: labels are all one class, AUC undefined")]
    OneClass(String),
}

/// One labelled dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// File stem, e.g. `cardio`.
    pub name: String,
    /// Features, rows = instances.
    pub x: Array2<f64>,
    /// `true` = outlier.
    pub labels: Vec<bool>,
}

/// Reads one ODDS CSV (`f0..fN,label`).
pub fn load_csv(path: &Path) -> Result<Dataset, OddsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| OddsError::Io {
        path: shown.clone(),
        source,
    })?;
    let parse_err = |line: usize, reason: String| OddsError::Parse {
        path: shown.clone(),
        line,
        reason,
    };
    let mut lines = text.lines();
    let header = lines
        .next()
        .ok_or_else(|| parse_err(1, "empty file".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols.len() < 2 || cols.last() != Some(&"label") {
        return Err(parse_err(1, "header must be f0,...,fN,label".into()));
    }
    let d = cols.len() - 1;
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for (k, line) in lines.enumerate() {
        let lineno = k + 2;
        if line.trim().is_empty() {
            continue;
        }
        let mut n = 0;
        for (j, field) in line.split(',').enumerate() {
            let v: f64 = field
                .trim()
                .parse()
                .map_err(|_| parse_err(lineno, format!("column {j}: not a number: {field:?}")))?;
            if j < d {
                if !v.is_finite() {
                    return Err(parse_err(lineno, format!("column {j}: not finite")));
                }
                data.push(v);
            } else if j == d {
                labels.push(v != 0.0);
            }
            n += 1;
        }
        if n != d + 1 {
            return Err(parse_err(lineno, format!("{n} fields, expected {}", d + 1)));
        }
    }
    let rows = labels.len();
    let x =
        Array2::from_shape_vec((rows, d), data).map_err(|e| parse_err(0, format!("shape: {e}")))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Dataset { name, x, labels })
}

/// The `*.csv` files of a directory, sorted by name.
pub fn list_csvs(dir: &Path) -> Result<Vec<PathBuf>, OddsError> {
    let io = |source| OddsError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.extension().is_some_and(|e| e == "csv") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Settings of an ODDS run.
#[derive(Debug, Clone, Copy)]
pub struct OddsConfig {
    /// Trees per forest.
    pub n_trees: usize,
    /// Subsample size.
    pub max_samples: usize,
    /// Seeds `0..seeds`.
    pub seeds: u64,
}

/// One dataset's figures (the JSON line of `medic eval odds`).
#[derive(Debug, Clone, Serialize)]
pub struct OddsResult {
    /// Dataset name.
    pub dataset: String,
    /// Rows.
    pub rows: usize,
    /// Feature columns.
    pub cols: usize,
    /// Mean ROC AUC over seeds.
    pub auc_mean: f64,
    /// Population standard deviation of the AUC over seeds.
    pub auc_std: f64,
    /// Mean fit time, milliseconds.
    pub fit_ms: f64,
    /// Mean scoring time per row (all rows in one batch), microseconds.
    pub score_us_per_row: f64,
}

/// Mean and population standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Fits and scores one dataset for every seed.
pub fn evaluate(ds: &Dataset, cfg: OddsConfig) -> Result<OddsResult, OddsError> {
    let (rows, cols) = ds.x.dim();
    let mut aucs = Vec::new();
    let mut fit_ms = Vec::new();
    let mut score_us = Vec::new();
    let mut scores = vec![0.0; rows];
    let forest_err = |source| OddsError::Forest {
        dataset: ds.name.clone(),
        source,
    };
    for seed in 0..cfg.seeds.max(1) {
        let params = Params {
            n_trees: cfg.n_trees,
            max_samples: cfg.max_samples,
            seed,
            // No threshold is needed for AUC; "auto" skips scoring the training set at fit.
            contamination: Contamination::Auto,
        };
        // Elapsed wall time is the figure being measured here, not a decision input.
        #[allow(clippy::disallowed_methods)]
        let t0 = std::time::Instant::now();
        let forest = IsolationForest::fit(ds.x.view(), params).map_err(forest_err)?;
        fit_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        #[allow(clippy::disallowed_methods)]
        let t1 = std::time::Instant::now();
        forest
            .score_into(ds.x.view(), &mut scores)
            .map_err(forest_err)?;
        score_us.push(t1.elapsed().as_secs_f64() * 1e6 / rows.max(1) as f64);
        aucs.push(
            roc_auc(&scores, &ds.labels).ok_or_else(|| OddsError::OneClass(ds.name.clone()))?,
        );
    }
    let (auc_mean, auc_std) = mean_std(&aucs);
    Ok(OddsResult {
        dataset: ds.name.clone(),
        rows,
        cols,
        auc_mean,
        auc_std,
        fit_ms: mean_std(&fit_ms).0,
        score_us_per_row: mean_std(&score_us).0,
    })
}
