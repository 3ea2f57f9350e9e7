//! Standard (mean/std) and robust (median/IQR) scalers.
//!
//! A scaler is fitted on training features, stored in the model file, and applied in place at
//! scoring time: `x' = (x − centre) / scale`. Missing values (NaN, as written by
//! [`crate::features`]) are filled with the centre, i.e. become `0` after scaling: the documented
//! fill. A column whose spread is 0 (constant in training) gets scale 1 so it never divides by
//! zero.

use ndarray::{ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

/// Errors of fitting and applying a scaler.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    /// No rows, or a column without a single finite value.
    #[error("cannot fit a scaler: column {col} has no finite value")]
    NoData {
        /// The column.
        col: usize,
    },
    /// Width differs from the fitted one.
    #[error("scaler was fitted on {expected} columns, got {got}")]
    Shape {
        /// Fitted width.
        expected: usize,
        /// Given width.
        got: usize,
    },
}

/// Which statistics centre and scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalerKind {
    /// Mean and (population) standard deviation.
    Standard,
    /// Median and interquartile range (q75 − q25), robust to outliers in training data.
    Robust,
}

/// A fitted scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// The statistics used.
    pub kind: ScalerKind,
    /// Per-column centre.
    pub center: Vec<f64>,
    /// Per-column scale, always > 0.
    pub scale: Vec<f64>,
}

/// Linear-interpolated quantile of sorted data (numpy's default).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Scaler {
    /// Fits on `x` (rows = samples), ignoring non-finite values.
    pub fn fit(kind: ScalerKind, x: ArrayView2<'_, f64>) -> Result<Self, ScalerError> {
        let d = x.ncols();
        let mut center = Vec::with_capacity(d);
        let mut scale = Vec::with_capacity(d);
        let mut col = Vec::with_capacity(x.nrows());
        for j in 0..d {
            col.clear();
            col.extend(x.column(j).iter().copied().filter(|v| v.is_finite()));
            if col.is_empty() {
                return Err(ScalerError::NoData { col: j });
            }
            let (c, s) = match kind {
                ScalerKind::Standard => {
                    let n = col.len() as f64;
                    let mean = col.iter().sum::<f64>() / n;
                    let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
                ScalerKind::Robust => {
                    col.sort_unstable_by(f64::total_cmp);
                    let med = quantile_sorted(&col, 0.5);
                    let iqr = quantile_sorted(&col, 0.75) - quantile_sorted(&col, 0.25);
                    (med, iqr)
                }
            };
            center.push(c);
            scale.push(if s > 0.0 && s.is_finite() { s } else { 1.0 });
        }
        Ok(Scaler {
            kind,
            center,
            scale,
        })
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.center.len()
    }

    /// Scales one row in place; NaN becomes 0 (the centre). Returns how many were filled.
    pub fn transform_row(&self, row: &mut [f64]) -> Result<usize, ScalerError> {
        if row.len() != self.width() {
            return Err(ScalerError::Shape {
                expected: self.width(),
                got: row.len(),
            });
        }
        let mut filled = 0;
        for ((v, c), s) in row.iter_mut().zip(&self.center).zip(&self.scale) {
            if v.is_nan() {
                *v = 0.0;
                filled += 1;
            } else {
                *v = (*v - c) / s;
            }
        }
        Ok(filled)
    }

    /// Scales every row in place; NaN becomes 0. Returns how many values were filled.
    pub fn transform_in_place(&self, mut x: ArrayViewMut2<'_, f64>) -> Result<usize, ScalerError> {
        if x.ncols() != self.width() {
            return Err(ScalerError::Shape {
                expected: self.width(),
                got: x.ncols(),
            });
        }
        let mut filled = 0;
        for mut row in x.rows_mut() {
            for ((v, c), s) in row.iter_mut().zip(&self.center).zip(&self.scale) {
                if v.is_nan() {
                    *v = 0.0;
                    filled += 1;
                } else {
                    *v = (*v - c) / s;
                }
            }
        }
        Ok(filled)
    }

    /// Undoes the scaling of one row in place.
    pub fn inverse_row(&self, row: &mut [f64]) -> Result<(), ScalerError> {
        if row.len() != self.width() {
            return Err(ScalerError::Shape {
                expected: self.width(),
                got: row.len(),
            });
        }
        for ((v, c), s) in row.iter_mut().zip(&self.center).zip(&self.scale) {
            *v = *v * s + c;
        }
        Ok(())
    }
}
