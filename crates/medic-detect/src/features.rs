//! The one feature path: from a window of samples to a fixed, named feature vector.
//!
//! A [`FeatureSpec`] lists the series of a target (latency, errors, rss, cpu, queue depth,
//! request rate, …) and, per series, the [`Aggregation`]s to compute. It fixes the feature
//! names (`<series>_<aggregation>`, e.g. `rss_slope`) and their order, which every model file
//! stores. An [`Extractor`] computes the vector from a [`Window`] into a caller buffer; it keeps
//! one scratch buffer for percentiles, so after the first call of a given window length it does
//! not allocate.
//!
//! Missing data is explicit: a sample that is NaN is absent and skipped. A feature that cannot be
//! computed from the samples present (no sample at all; fewer than two for `std`, `slope`,
//! `rate_of_change`) is written as NaN and counted in the return value. NaN is never replaced by
//! zero here; [`crate::scaler::Scaler`] fills it with the training centre, the documented fill.

use serde::{Deserialize, Serialize};

/// Errors of the feature path.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeatureError {
    /// The window does not match the spec or is inconsistent.
    #[error("window shape: {0}")]
    Shape(String),
    /// The spec is invalid.
    #[error("invalid feature spec: {0}")]
    Spec(String),
}

/// A statistic of one series over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The most recent present sample.
    Last,
    /// Mean of present samples.
    Mean,
    /// Population standard deviation of present samples (needs 2).
    Std,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Least-squares slope against time, per second (needs 2 distinct times).
    Slope,
    /// Change between the last two present samples, per second (needs 2).
    RateOfChange,
    /// Exponentially weighted moving average with the spec's `ewma_alpha`, from the first
    /// present sample.
    Ewma,
    /// Median (linear interpolation).
    P50,
    /// 95th percentile (linear interpolation).
    P95,
}

impl Aggregation {
    /// Every aggregation, in the canonical order.
    pub const ALL: [Aggregation; 10] = [
        Aggregation::Last,
        Aggregation::Mean,
        Aggregation::Std,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Slope,
        Aggregation::RateOfChange,
        Aggregation::Ewma,
        Aggregation::P50,
        Aggregation::P95,
    ];

    /// The suffix in feature names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Aggregation::Last => "last",
            Aggregation::Mean => "mean",
            Aggregation::Std => "std",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Slope => "slope",
            Aggregation::RateOfChange => "rate_of_change",
            Aggregation::Ewma => "ewma",
            Aggregation::P50 => "p50",
            Aggregation::P95 => "p95",
        }
    }
}

/// One series and its aggregations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSpec {
    /// Series name, e.g. `latency_ms`, `errors`, `rss_bytes`.
    pub name: String,
    /// Aggregations, in output order.
    pub aggregations: Vec<Aggregation>,
}

/// Which features to compute, in which order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Series in window order.
    pub series: Vec<SeriesSpec>,
    /// EWMA smoothing factor in `(0, 1]`.
    pub ewma_alpha: f64,
}

impl FeatureSpec {
    /// A validated spec: at least one series, unique series names without `,`, at least one
    /// aggregation per series, `ewma_alpha` in `(0, 1]`.
    pub fn new(series: Vec<SeriesSpec>, ewma_alpha: f64) -> Result<Self, FeatureError> {
        if series.is_empty() {
            return Err(FeatureError::Spec("no series".into()));
        }
        if !(ewma_alpha > 0.0 && ewma_alpha <= 1.0) {
            return Err(FeatureError::Spec(format!(
                "ewma_alpha {ewma_alpha} not in (0, 1]"
            )));
        }
        for (i, s) in series.iter().enumerate() {
            if s.name.is_empty() || s.name.contains(',') {
                return Err(FeatureError::Spec(format!(
                    "series {i}: bad name {:?}",
                    s.name
                )));
            }
            if s.aggregations.is_empty() {
                return Err(FeatureError::Spec(format!(
                    "series {}: no aggregation",
                    s.name
                )));
            }
            if series[..i].iter().any(|o| o.name == s.name) {
                return Err(FeatureError::Spec(format!("series {} twice", s.name)));
            }
        }
        Ok(FeatureSpec { series, ewma_alpha })
    }

    /// Every series with every aggregation of [`Aggregation::ALL`].
    pub fn all_aggregations(names: &[&str], ewma_alpha: f64) -> Result<Self, FeatureError> {
        Self::new(
            names
                .iter()
                .map(|n| SeriesSpec {
                    name: (*n).to_owned(),
                    aggregations: Aggregation::ALL.to_vec(),
                })
                .collect(),
            ewma_alpha,
        )
    }

    /// medic's default target features: probe latency, errors, RSS, CPU, queue depth and
    /// request rate; percentiles only where a distribution is meaningful (latency).
    pub fn default_target() -> Self {
        use Aggregation::*;
        let common = vec![Last, Mean, Std, Min, Max, Slope, RateOfChange, Ewma];
        let mut latency = common.clone();
        latency.extend([P50, P95]);
        let series = vec![
            SeriesSpec {
                name: "latency_ms".into(),
                aggregations: latency,
            },
            SeriesSpec {
                name: "errors".into(),
                aggregations: vec![Last, Mean, Max, Slope, Ewma],
            },
            SeriesSpec {
                name: "rss_bytes".into(),
                aggregations: common.clone(),
            },
            SeriesSpec {
                name: "cpu".into(),
                aggregations: common.clone(),
            },
            SeriesSpec {
                name: "queue_depth".into(),
                aggregations: common.clone(),
            },
            SeriesSpec {
                name: "request_rate".into(),
                aggregations: common,
            },
        ];
        FeatureSpec {
            series,
            ewma_alpha: 0.3,
        }
    }

    /// Number of features.
    pub fn width(&self) -> usize {
        self.series.iter().map(|s| s.aggregations.len()).sum()
    }

    /// Feature names in output order: `<series>_<aggregation>`.
    pub fn names(&self) -> Vec<String> {
        self.series
            .iter()
            .flat_map(|s| {
                s.aggregations
                    .iter()
                    .map(move |a| format!("{}_{}", s.name, a.as_str()))
            })
            .collect()
    }

    /// For each feature, the index of its series (to sum attributions per series).
    pub fn series_of_feature(&self) -> Vec<usize> {
        self.series
            .iter()
            .enumerate()
            .flat_map(|(i, s)| std::iter::repeat_n(i, s.aggregations.len()))
            .collect()
    }
}

/// A window of samples: shared sample times (seconds, increasing) and one slice per series of
/// the spec, in the spec's order, each as long as `times`. NaN marks a missing sample.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    times: &'a [f64],
    series: &'a [&'a [f64]],
}

impl<'a> Window<'a> {
    /// A window; every series must be as long as `times`.
    pub fn new(times: &'a [f64], series: &'a [&'a [f64]]) -> Result<Self, FeatureError> {
        if let Some((i, s)) = series
            .iter()
            .enumerate()
            .find(|(_, s)| s.len() != times.len())
        {
            return Err(FeatureError::Shape(format!(
                "series {i} has {} samples, times has {}",
                s.len(),
                times.len()
            )));
        }
        Ok(Window { times, series })
    }

    /// Number of sample times.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether the window has no sample time.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// Computes feature vectors for one spec, reusing a scratch buffer.
#[derive(Debug, Clone)]
pub struct Extractor {
    spec: FeatureSpec,
    names: Vec<String>,
    scratch: Vec<f64>,
}

fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Extractor {
    /// An extractor for `spec`.
    pub fn new(spec: FeatureSpec) -> Self {
        let names = spec.names();
        Extractor {
            spec,
            names,
            scratch: Vec::new(),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Feature names in output order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Writes the feature vector of `window` into `out` (`spec.width()` long) and returns how
    /// many features are missing (written as NaN).
    pub fn extract_into(
        &mut self,
        window: &Window<'_>,
        out: &mut [f64],
    ) -> Result<usize, FeatureError> {
        if window.series.len() != self.spec.series.len() {
            return Err(FeatureError::Shape(format!(
                "window has {} series, spec has {}",
                window.series.len(),
                self.spec.series.len()
            )));
        }
        if out.len() != self.names.len() {
            return Err(FeatureError::Shape(format!(
                "output has {} slots for {} features",
                out.len(),
                self.names.len()
            )));
        }
        let t = window.times;
        let alpha = self.spec.ewma_alpha;
        let mut k = 0;
        let mut missing = 0;
        for (spec, values) in self.spec.series.iter().zip(window.series) {
            // One pass for the moments, extremes, regression sums, EWMA and last two samples.
            let (mut n, mut sum) = (0usize, 0.0);
            let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
            let (mut st, mut stt, mut sty) = (0.0, 0.0, 0.0);
            let mut ewma = f64::NAN;
            let mut last: Option<(f64, f64)> = None;
            let mut prev: Option<(f64, f64)> = None;
            let t0 = t.first().copied().unwrap_or(0.0);
            for (&ti, &v) in t.iter().zip(values.iter()) {
                if v.is_nan() {
                    continue;
                }
                n += 1;
                sum += v;
                mn = mn.min(v);
                mx = mx.max(v);
                let dt = ti - t0;
                st += dt;
                stt += dt * dt;
                sty += dt * v;
                ewma = if ewma.is_nan() {
                    v
                } else {
                    alpha * v + (1.0 - alpha) * ewma
                };
                prev = last;
                last = Some((ti, v));
            }
            let nf = n as f64;
            let mean = sum / nf;
            let needs_sorted = spec
                .aggregations
                .iter()
                .any(|a| matches!(a, Aggregation::P50 | Aggregation::P95));
            if needs_sorted && n > 0 {
                self.scratch.clear();
                self.scratch
                    .extend(values.iter().copied().filter(|v| !v.is_nan()));
                self.scratch.sort_unstable_by(f64::total_cmp);
            }
            for agg in &spec.aggregations {
                let v = match agg {
                    _ if n == 0 => f64::NAN,
                    Aggregation::Last => last.map_or(f64::NAN, |l| l.1),
                    Aggregation::Mean => mean,
                    Aggregation::Std if n < 2 => f64::NAN,
                    Aggregation::Std => {
                        // A centred second pass: sum-of-squares cancels badly on large values.
                        let var = values
                            .iter()
                            .filter(|v| !v.is_nan())
                            .map(|v| (v - mean) * (v - mean))
                            .sum::<f64>()
                            / nf;
                        var.sqrt()
                    }
                    Aggregation::Min => mn,
                    Aggregation::Max => mx,
                    Aggregation::Slope => {
                        let denom = nf * stt - st * st;
                        if n < 2 || denom.abs() <= f64::EPSILON * nf * stt.abs().max(1.0) {
                            f64::NAN
                        } else {
                            (nf * sty - st * sum) / denom
                        }
                    }
                    Aggregation::RateOfChange => match (prev, last) {
                        (Some((tp, vp)), Some((tl, vl))) if tl > tp => (vl - vp) / (tl - tp),
                        _ => f64::NAN,
                    },
                    Aggregation::Ewma => ewma,
                    Aggregation::P50 => percentile_sorted(&self.scratch, 0.5),
                    Aggregation::P95 => percentile_sorted(&self.scratch, 0.95),
                };
                if v.is_nan() {
                    missing += 1;
                }
                out[k] = v;
                k += 1;
            }
        }
        Ok(missing)
    }
}
