//! Per-step features of the failure predictor, computed by the one feature path
//! ([`crate::features::Extractor`]).
//!
//! The network reads `seq_len` steps; step `t`'s feature vector is the spec's features over
//! the trailing `feature_window` raw rows ending at row `t` (fewer at the very start of a
//! series). With the default spec most features are `last` (the latest present value, so a
//! row where the agent did not answer carries the previous value forward for up to
//! `feature_window` rows) and the slopes are least-squares slopes over the trailing window.
//! Training ([`super::dataset`]) and scoring ([`super::Predictor`]) both call
//! [`StepFeaturizer::featurize_into`], so the two cannot drift apart.

use crate::features::{Aggregation, Extractor, FeatureError, FeatureSpec, SeriesSpec, Window};

/// Raw per-minute metric names the default spec reads (the simulator's column names).
pub const RAW_SERIES: [&str; 9] = [
    "cpu",
    "rss_mb",
    "latency_p50_ms",
    "latency_p99_ms",
    "error_rate",
    "request_rate",
    "queue_depth",
    "open_fds",
    "restarts",
];

/// Default trailing raw rows behind each step's features.
pub const DEFAULT_FEATURE_WINDOW: usize = 10;

/// The default per-step spec: the 10 features of the original design, in this order: cpu,
/// rss, rss slope, latency p50, latency p99, error rate, request rate, queue depth, open fds,
/// restarts (as the slope of the restart counter, i.e. recent restarts).
pub fn default_step_spec() -> FeatureSpec {
    use Aggregation::{Last, Slope};
    let s = |name: &str, aggregations: Vec<Aggregation>| SeriesSpec {
        name: name.to_owned(),
        aggregations,
    };
    FeatureSpec {
        series: vec![
            s("cpu", vec![Last]),
            s("rss_mb", vec![Last, Slope]),
            s("latency_p50_ms", vec![Last]),
            s("latency_p99_ms", vec![Last]),
            s("error_rate", vec![Last]),
            s("request_rate", vec![Last]),
            s("queue_depth", vec![Last]),
            s("open_fds", vec![Last]),
            s("restarts", vec![Slope]),
        ],
        ewma_alpha: 0.3,
    }
}

/// Computes per-step feature rows from raw columns through one [`Extractor`].
#[derive(Debug, Clone)]
pub struct StepFeaturizer {
    extractor: Extractor,
    feature_window: usize,
}

impl StepFeaturizer {
    /// A featurizer for `spec` over trailing windows of `feature_window` (≥ 1) rows.
    pub fn new(spec: FeatureSpec, feature_window: usize) -> Result<Self, FeatureError> {
        let spec = FeatureSpec::new(spec.series, spec.ewma_alpha)?;
        if feature_window == 0 {
            return Err(FeatureError::Spec("feature_window is 0".into()));
        }
        Ok(StepFeaturizer {
            extractor: Extractor::new(spec),
            feature_window,
        })
    }

    /// The default spec over [`DEFAULT_FEATURE_WINDOW`] rows.
    pub fn default_spec() -> Self {
        StepFeaturizer {
            extractor: Extractor::new(default_step_spec()),
            feature_window: DEFAULT_FEATURE_WINDOW,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &FeatureSpec {
        self.extractor.spec()
    }

    /// Feature names in output order.
    pub fn names(&self) -> &[String] {
        self.extractor.names()
    }

    /// Features per step.
    pub fn width(&self) -> usize {
        self.extractor.names().len()
    }

    /// Trailing raw rows behind each step.
    pub fn feature_window(&self) -> usize {
        self.feature_window
    }

    /// Names of the raw series the spec reads, in the order `columns` must follow.
    pub fn raw_names(&self) -> Vec<String> {
        self.spec().series.iter().map(|s| s.name.clone()).collect()
    }

    /// Writes the feature rows of steps `first..times.len()` into `out`
    /// (`(times.len() − first) × width` values, row-major). `columns` holds one slice per raw
    /// series of the spec, in spec order, each as long as `times` (seconds). Step `t` uses rows
    /// `t+1−feature_window ..= t` (clamped at 0). Returns the number of missing (NaN) features.
    pub fn featurize_into(
        &mut self,
        times: &[f64],
        columns: &[&[f64]],
        first: usize,
        out: &mut [f64],
    ) -> Result<usize, FeatureError> {
        let w = self.width();
        let n = times.len();
        if columns.len() != self.spec().series.len() {
            return Err(FeatureError::Shape(format!(
                "{} columns for {} series",
                columns.len(),
                self.spec().series.len()
            )));
        }
        if let Some(c) = columns.iter().find(|c| c.len() != n) {
            return Err(FeatureError::Shape(format!(
                "a column has {} rows, times has {n}",
                c.len()
            )));
        }
        if first > n || out.len() != (n - first) * w {
            return Err(FeatureError::Shape(format!(
                "output has {} slots for {} steps of {w} features",
                out.len(),
                n.saturating_sub(first)
            )));
        }
        // One small Vec of borrowed slices per call (not per step): slices cannot be kept in
        // `self` across calls.
        let mut missing = 0;
        let mut slices: Vec<&[f64]> = Vec::with_capacity(columns.len());
        for (k, t) in (first..n).enumerate() {
            let lo = (t + 1).saturating_sub(self.feature_window);
            slices.clear();
            slices.extend(columns.iter().map(|c| &c[lo..=t]));
            let window = Window::new(&times[lo..=t], &slices)?;
            missing += self
                .extractor
                .extract_into(&window, &mut out[k * w..(k + 1) * w])?;
        }
        Ok(missing)
    }
}
