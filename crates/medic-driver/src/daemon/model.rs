//! The learned models in the daemon: the failure-prediction LSTM
//! ([`medic_detect::predict::Predictor`], tract) and the isolation forest
//! ([`medic_detect::iforest`]), when their files exist in the models directory.
//!
//! Files: `failure_lstm.onnx` (its card `failure_lstm.card.json` beside it, or in the ONNX
//! metadata) and `anomaly_iforest.json` (written by `medic train iforest`, with the feature
//! spec in its card). Either may be absent; a file that cannot be loaded, or whose raw series
//! the fleet cannot provide ([`medic_detect::predict::Predictor::check_series`]), is refused
//! with an error that the caller logs once, and the daemon goes on without it.
//!
//! **The raw series** — the one mapping from what the daemon has per target to the columns
//! the models were trained on (the simulator's columns, `medic_detect::predict::steps::RAW_SERIES`):
//!
//! | series           | from                                                                 |
//! |------------------|----------------------------------------------------------------------|
//! | `cpu`            | rate of `process_cpu_seconds_total` over the step (fraction of a core) |
//! | `rss_mb`         | `process_resident_memory_bytes` / 2²⁰                                |
//! | `open_fds`       | `process_open_fds`                                                   |
//! | `latency_p50_ms` | `histogram_quantile(0.5)` of the request-latency histogram's increase over the step, in ms |
//! | `latency_p99_ms` | the same at 0.99                                                     |
//! | `error_rate`     | increase of the error counter / increase of the request counter over the step |
//! | `request_rate`   | increase of the request counter / seconds                            |
//! | `queue_depth`    | the queue-depth gauge                                                |
//! | `restarts`       | the restarts medic carried out on the target (successful restart, reset, recreate, rollback); 0 in `medic heal --preemptive`, which has no such history |
//!
//! RSS, CPU and open fds come from the standard `process_*` metrics of the target's scrape:
//! the resources probe reports only a pass/fail verdict to the brain, not its readings. The
//! request, error, latency and queue metrics are found by the usual naming conventions
//! ([`medic_collect::check::perf_metrics_for`]) and the latency quantiles are computed as
//! PromQL does ([`medic_collect::prom::histogram_quantile`]). A value a scrape
//! does not carry is NaN (missing), as in training.
//!
//! **Steps.** One raw row per step of the model card's `step_s` (60 s for the default model):
//! a step's row holds the last scrape in it, its rates are over the time since the last
//! scrape of the previous step, and it is closed when the first scrape of a later step
//! arrives. Steps without a scrape are dark rows (all NaN), as in training. Each target keeps
//! only the last rows the models need ([`ModelSet::history_rows`]). Steps are never faked:
//! with a 60 s step a model needs `raw_rows` minutes of scrapes before its first prediction
//! (the demo is far shorter; its findings come from probes, exits and the RSS trend).
//!
//! **Inference** runs on the caller's thread — the brain, a std thread, never an async worker —
//! once per step, a quarter step (at most 15 s) after its boundary ([`ModelSet::next_run`]):
//! every target whose window gained a row since its last prediction is due, and all due
//! targets go through one [`Predictor::predict_into`] call on the one reused predictor;
//! those over the card's threshold are explained ([`Predictor::explain`]: top factors by
//! occlusion and the recommended action). The forest scores each due target's latest step
//! feature row (same feature path, spec from its card).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use medic_collect::check::perf_metrics_for;
use medic_collect::prom::histogram_quantile;
use medic_collect::scrape::{PerfMetrics, PerfSnapshot};
use medic_core::{AnomalyFinding, MetricSample, PredictionFinding, Strategy, Timestamp};
use medic_detect::iforest::ModelFile;
use medic_detect::predict::steps::{RAW_SERIES, StepFeaturizer};
use medic_detect::predict::{PredictError, Predictor, PredictorOptions};

/// File name of the failure-prediction model in the models directory.
pub const LSTM_FILE: &str = "failure_lstm.onnx";
/// File name of the anomaly model in the models directory.
pub const IFOREST_FILE: &str = "anomaly_iforest.json";
/// Step of the raw rows when only the forest is loaded (its card has no step; `medic train
/// iforest` reads per-minute histories).
pub const DEFAULT_STEP_S: u64 = 60;
/// Contributing features reported for an anomaly.
const TOP_ANOMALY_FEATURES: usize = 3;

/// A model that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The failure-prediction model cannot be loaded or does not fit the fleet.
    #[error("failure-prediction model {path} refused")]
    Predictor {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PredictError,
    },
    /// The anomaly model cannot be loaded.
    #[error("anomaly model {path} refused")]
    Forest {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: medic_detect::iforest::Error,
    },
    /// The anomaly model's card does not say how its rows are computed, or needs series the
    /// fleet cannot provide.
    #[error("anomaly model {path} refused: {why}")]
    ForestCard {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// The raw series the daemon can provide for a fleet: all of the mapping's when some target
/// has a metrics endpoint, else only `restarts`.
pub fn available_series(fleet: &medic_policy::Fleet) -> Vec<&'static str> {
    if fleet.targets.iter().any(|t| t.metrics.is_some()) {
        RAW_SERIES.to_vec()
    } else {
        vec!["restarts"]
    }
}

fn column_of(name: &str) -> Option<usize> {
    RAW_SERIES.iter().position(|s| *s == name)
}

struct Forest {
    path: PathBuf,
    model: ModelFile,
    featurizer: StepFeaturizer,
    /// Ring column of each raw series of the forest's spec.
    columns: Vec<usize>,
    row: Vec<f64>,
    scaled: Vec<f64>,
}

struct Lstm {
    path: PathBuf,
    predictor: Predictor,
    /// Ring column of each raw series of the predictor, in its order.
    columns: Vec<usize>,
}

/// The loaded models (possibly none) and their reused buffers.
pub struct ModelSet {
    lstm: Option<Lstm>,
    forest: Option<Forest>,
    step_s: u64,
    rows: usize,
    windows: Vec<f32>,
    probs: Vec<f32>,
    due: Vec<usize>,
}

impl std::fmt::Debug for ModelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One target's verdicts from a [`ModelSet::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The index of the target in the slice given to `run`.
    pub target: usize,
    /// The failure prediction (when the LSTM is loaded and the window is complete).
    pub prediction: Option<PredictionFinding>,
    /// The anomaly verdict (when the forest is loaded and the latest row is complete).
    pub anomaly: Option<AnomalyFinding>,
}

impl ModelSet {
    /// No models.
    pub fn none() -> ModelSet {
        ModelSet {
            lstm: None,
            forest: None,
            step_s: DEFAULT_STEP_S,
            rows: 0,
            windows: Vec::new(),
            probs: Vec::new(),
            due: Vec::new(),
        }
    }

    /// Loads the models found in `dir` (a missing file is no model, not an error); a model
    /// that cannot be used is returned as an error beside the set, which goes on without it.
    /// `available` names the raw series the fleet provides ([`available_series`]).
    pub fn load(dir: &Path, available: &[&str]) -> (ModelSet, Vec<ModelError>) {
        let mut set = ModelSet::none();
        let mut errors = Vec::new();
        let lstm_path = dir.join(LSTM_FILE);
        if lstm_path.exists() {
            match load_lstm(&lstm_path, available) {
                Ok(lstm) => set.lstm = Some(lstm),
                Err(source) => errors.push(ModelError::Predictor {
                    path: lstm_path,
                    source,
                }),
            }
        }
        let forest_path = dir.join(IFOREST_FILE);
        if forest_path.exists() {
            match load_forest(&forest_path, available) {
                Ok(forest) => set.forest = Some(forest),
                Err(e) => errors.push(e),
            }
        }
        if let Some(l) = &set.lstm {
            set.step_s = l.predictor.card().step_s.max(1);
        }
        set.rows = set.lstm.as_ref().map_or(0, |l| l.predictor.raw_rows()).max(
            set.forest
                .as_ref()
                .map_or(0, |f| f.featurizer.feature_window()),
        );
        (set, errors)
    }

    /// Whether no model is loaded.
    pub fn is_empty(&self) -> bool {
        self.lstm.is_none() && self.forest.is_none()
    }

    /// Whether the failure predictor is loaded.
    pub fn has_predictor(&self) -> bool {
        self.lstm.is_some()
    }

    /// Whether the anomaly model is loaded.
    pub fn has_forest(&self) -> bool {
        self.forest.is_some()
    }

    /// Seconds per raw row.
    pub fn step_s(&self) -> u64 {
        self.step_s
    }

    /// Raw rows a target keeps (what the models need).
    pub fn history_rows(&self) -> usize {
        self.rows
    }

    /// The models in words, for the start-up line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.lstm {
            let c = l.predictor.card();
            parts.push(format!(
                "failure prediction {} (seq_len {}, step {}s, horizon {}s, threshold {:.3}; \
                 first prediction after {} steps of scrapes)",
                l.path.display(),
                c.seq_len,
                c.step_s,
                c.horizon_s,
                c.threshold,
                l.predictor.raw_rows()
            ));
        }
        if let Some(f) = &self.forest {
            parts.push(format!(
                "anomaly forest {} ({} trees, threshold {:.3}, step {}s)",
                f.path.display(),
                f.model.card.n_trees,
                f.model.forest.threshold(),
                self.step_s
            ));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join("; ")
        }
    }

    /// When a daemon runs the models next after running them at `now`: the next step
    /// boundary plus a grace of a quarter step (at most 15 s), so that every target scraped
    /// within the grace has closed the step's row and all of them go into one batch (a target
    /// scraped less often joins the next step's batch).
    pub fn next_run(&self, now: Timestamp) -> Timestamp {
        let step_ms = self.step_s * 1000;
        let grace_ms = (step_ms / 4).min(15_000);
        let t = now.as_millis();
        let boundary = (t.saturating_sub(grace_ms) / step_ms + 1) * step_ms;
        Timestamp::from_millis(boundary + grace_ms)
    }

    /// A fresh per-target history for these models (`None` without models).
    pub fn series(&self) -> Option<TargetSeries> {
        (!self.is_empty()).then(|| TargetSeries::new(self.step_s, self.rows))
    }

    /// Runs the models over every target in `targets` whose history gained a row since its
    /// last run and is long enough: one batched predictor call for all of them, the forest on
    /// each one's latest row. Marks them as run. One verdict per due target, in order.
    ///
    /// # Errors
    /// A failure of the predictor or the feature path (the targets stay due).
    pub fn run(
        &mut self,
        targets: &mut [Option<&mut TargetSeries>],
    ) -> Result<Vec<Verdict>, PredictError> {
        self.due.clear();
        for (i, t) in targets.iter().enumerate() {
            if let Some(t) = t
                && t.fresh
                && !t.is_empty()
            {
                self.due.push(i);
            }
        }
        let mut verdicts: Vec<Verdict> = self
            .due
            .iter()
            .map(|&target| Verdict {
                target,
                prediction: None,
                anomaly: None,
            })
            .collect();
        if let Some(lstm) = self.lstm.as_mut() {
            let p = &mut lstm.predictor;
            let (wl, need) = (p.window_len(), p.raw_rows());
            let ready: Vec<usize> = (0..self.due.len())
                .filter(|&k| {
                    targets[self.due[k]]
                        .as_ref()
                        .is_some_and(|t| t.len() >= need)
                })
                .collect();
            self.windows.resize(ready.len() * wl, 0.0);
            self.probs.resize(ready.len(), 0.0);
            for (slot, &k) in ready.iter().enumerate() {
                if let Some(t) = targets[self.due[k]].as_mut() {
                    let (times, cols) = t.columns(&lstm.columns);
                    p.window_from_raw(times, &cols, &mut self.windows[slot * wl..][..wl])?;
                }
            }
            if !ready.is_empty() {
                // Measuring the inference's wall time is what the metric is for.
                #[allow(clippy::disallowed_methods)]
                let started = std::time::Instant::now();
                p.predict_into(&self.windows, &mut self.probs)?;
                metrics::histogram!("medic_prediction_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("medic_predictions_total").increment(ready.len() as u64);
            }
            let horizon_s = p.card().horizon_s;
            let threshold = p.card().threshold;
            for (slot, &k) in ready.iter().enumerate() {
                let prob = self.probs[slot];
                let finding = if f64::from(prob) >= threshold {
                    let e = p.explain(&self.windows[slot * wl..][..wl], prob)?;
                    PredictionFinding {
                        probability: f64::from(prob),
                        alarm: e.alarm,
                        horizon_s,
                        factors: e
                            .factors
                            .iter()
                            .map(|f| (f.feature.clone(), f64::from(f.drop)))
                            .collect(),
                        recommended: e.action.unwrap_or(Strategy::Restart),
                    }
                } else {
                    PredictionFinding {
                        probability: f64::from(prob),
                        alarm: false,
                        horizon_s,
                        factors: Vec::new(),
                        recommended: Strategy::Observe,
                    }
                };
                verdicts[k].prediction = Some(finding);
            }
        }
        if let Some(forest) = self.forest.as_mut() {
            for v in &mut verdicts {
                if let Some(t) = targets[v.target].as_mut() {
                    v.anomaly = forest.score(t)?;
                }
            }
        }
        for &i in &self.due {
            if let Some(t) = targets[i].as_mut() {
                t.fresh = false;
            }
        }
        Ok(verdicts)
    }
}

fn load_lstm(path: &Path, available: &[&str]) -> Result<Lstm, PredictError> {
    let predictor = Predictor::load_with(path, PredictorOptions::default())?;
    predictor.check_series(available)?;
    let mut columns = Vec::new();
    for name in predictor.raw_series() {
        columns.push(column_of(&name).ok_or_else(|| {
            PredictError::Mismatch(format!(
                "the model needs series {name:?} which the daemon cannot build"
            ))
        })?);
    }
    Ok(Lstm {
        path: path.to_owned(),
        predictor,
        columns,
    })
}

fn load_forest(path: &Path, available: &[&str]) -> Result<Forest, ModelError> {
    let model = ModelFile::load(path).map_err(|source| ModelError::Forest {
        path: path.to_owned(),
        source,
    })?;
    let card_err = |why: String| ModelError::ForestCard {
        path: path.to_owned(),
        why,
    };
    let (Some(spec), Some(window)) = (&model.card.feature_spec, model.card.feature_window) else {
        return Err(card_err(
            "its card has no feature spec and window (train it with `medic train iforest`)".into(),
        ));
    };
    let featurizer = StepFeaturizer::new(spec.clone(), window)
        .map_err(|e| card_err(format!("feature spec: {e}")))?;
    if featurizer.names() != model.card.feature_names.as_slice() {
        return Err(card_err(format!(
            "feature names {:?} differ from its spec's {:?}",
            model.card.feature_names,
            featurizer.names()
        )));
    }
    let missing: Vec<String> = featurizer
        .raw_names()
        .into_iter()
        .filter(|n| !available.contains(&n.as_str()) || column_of(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(card_err(format!(
            "the model needs series {missing:?} which the fleet does not provide"
        )));
    }
    let columns = featurizer
        .raw_names()
        .iter()
        .filter_map(|n| column_of(n))
        .collect();
    let width = featurizer.width();
    Ok(Forest {
        path: path.to_owned(),
        model,
        featurizer,
        columns,
        row: vec![0.0; width],
        scaled: vec![0.0; width],
    })
}

impl Forest {
    /// The anomaly verdict of the target's latest row (`None` while a feature is missing:
    /// the forest needs finite values, as in training).
    fn score(&mut self, t: &mut TargetSeries) -> Result<Option<AnomalyFinding>, PredictError> {
        let n = t.len();
        let lo = n.saturating_sub(self.featurizer.feature_window());
        let (times, cols) = t.columns(&self.columns);
        let cols: Vec<&[f64]> = cols.iter().map(|c| &c[lo..]).collect();
        self.featurizer
            .featurize_into(&times[lo..], &cols, n - lo - 1, &mut self.row)?;
        if !self.row.iter().all(|v| v.is_finite()) {
            return Ok(None);
        }
        self.scaled.copy_from_slice(&self.row);
        let forest_err = |e: &dyn std::fmt::Display| PredictError::Data(format!("anomaly: {e}"));
        if let Some(s) = &self.model.card.scaler {
            s.transform_row(&mut self.scaled)
                .map_err(|e| forest_err(&e))?;
        }
        let f = &self.model.forest;
        let score = f.score_row(&self.scaled).map_err(|e| forest_err(&e))?;
        let anomalous = score >= f.threshold();
        let (top, kind) = if anomalous {
            let a = f
                .explain(
                    &self.scaled,
                    &self.model.card.feature_names,
                    TOP_ANOMALY_FEATURES,
                    Some(&self.scaled),
                )
                .map_err(|e| forest_err(&e))?;
            (a.top, a.kind)
        } else {
            (Vec::new(), medic_core::AnomalyKind::Mixed)
        };
        let reason = if anomalous {
            let names: Vec<&str> = top.iter().map(|(n, _)| n.as_str()).collect();
            format!(
                "isolation forest score {score:.3} over {:.3} ({})",
                f.threshold(),
                names.join(", ")
            )
        } else {
            format!("isolation forest score {score:.3}")
        };
        Ok(Some(AnomalyFinding {
            score,
            anomalous,
            kind,
            top_features: top,
            reason,
        }))
    }
}

/// What one scrape says about the raw series (cumulative counters as read).
#[derive(Clone, Debug, Default)]
struct Reading {
    at: Timestamp,
    rss_bytes: Option<f64>,
    cpu_seconds: Option<f64>,
    open_fds: Option<f64>,
    perf: PerfSnapshot,
}

/// One target's raw rows at the models' step, built from its scrapes (see the module docs
/// for the mapping): a ring of the last [`ModelSet::history_rows`] rows.
#[derive(Debug)]
pub struct TargetSeries {
    step_s: u64,
    cap: usize,
    spec: Option<PerfMetrics>,
    step: Option<u64>,
    last: Option<Reading>,
    prev: Option<Reading>,
    times: VecDeque<f64>,
    cols: [VecDeque<f64>; RAW_SERIES.len()],
    fresh: bool,
}

impl TargetSeries {
    /// An empty history of `cap` rows of `step_s` seconds.
    pub fn new(step_s: u64, cap: usize) -> TargetSeries {
        let cap = cap.max(1);
        TargetSeries {
            step_s: step_s.max(1),
            cap,
            spec: None,
            step: None,
            last: None,
            prev: None,
            times: VecDeque::with_capacity(cap + 1),
            cols: std::array::from_fn(|_| VecDeque::with_capacity(cap + 1)),
            fresh: false,
        }
    }

    /// Closed rows held.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether no row is closed yet.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The closed rows' values of one raw series (by its name), oldest first.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        column_of(name).map(|c| self.cols[c].iter().copied().collect())
    }

    /// The closed rows' times (seconds), oldest first.
    pub fn times(&self) -> Vec<f64> {
        self.times.iter().copied().collect()
    }

    /// Adds one scrape taken at `at`; `restarts` is the target's restart count now. Closes
    /// the current step when `at` is in a later one (and adds dark rows for steps without a
    /// scrape). A scrape older than the current step is ignored.
    pub fn push(&mut self, at: Timestamp, samples: &[MetricSample], restarts: f64) {
        let step = at.as_millis() / (self.step_s * 1000);
        if let Some(cur) = self.step {
            if step < cur {
                return;
            }
            if step > cur {
                self.close(cur, restarts);
                // Steps without a scrape are dark rows (at most a ring's worth).
                let gap = (step - cur - 1).min(self.cap as u64);
                for k in (step - gap)..step {
                    self.push_row(k, [f64::NAN; RAW_SERIES.len()]);
                }
                if gap > 0 {
                    // Rates across a gap would average over the dark steps.
                    self.prev = None;
                }
            }
        }
        if self.spec.is_none() {
            let spec = perf_metrics_for(samples);
            if spec.requests.is_some() || spec.latency.is_some() || spec.queue_depth.is_some() {
                self.spec = Some(spec);
            }
        }
        let mut r = Reading {
            at,
            ..Reading::default()
        };
        for s in samples {
            let slot = match s.name.as_str() {
                "process_resident_memory_bytes" => &mut r.rss_bytes,
                "process_cpu_seconds_total" => &mut r.cpu_seconds,
                "process_open_fds" => &mut r.open_fds,
                _ => continue,
            };
            if s.value.is_finite() {
                *slot = Some(slot.unwrap_or(0.0) + s.value);
            }
        }
        if let Some(spec) = &self.spec {
            r.perf = PerfSnapshot::from_samples(samples, spec);
        }
        self.last = Some(r);
        self.step = Some(step);
    }

    /// Closes the step in progress with what it has so far (a one-shot run such as `medic
    /// heal --preemptive` does not wait for the step to end); a later scrape of the same
    /// step starts it again.
    pub fn close_current(&mut self, restarts: f64) {
        if let Some(step) = self.step.take() {
            self.close(step, restarts);
        }
    }

    fn close(&mut self, step: u64, restarts: f64) {
        let Some(last) = self.last.take() else {
            return;
        };
        let row = raw_row(self.prev.as_ref(), &last, restarts);
        self.push_row(step, row);
        self.prev = Some(last);
    }

    fn push_row(&mut self, step: u64, row: [f64; RAW_SERIES.len()]) {
        if self.times.len() == self.cap {
            self.times.pop_front();
            for c in &mut self.cols {
                c.pop_front();
            }
        }
        // A row stands at its step's end.
        self.times.push_back(((step + 1) * self.step_s) as f64);
        for (c, v) in self.cols.iter_mut().zip(row) {
            c.push_back(v);
        }
        self.fresh = true;
    }

    /// Contiguous times and the selected columns.
    fn columns(&mut self, which: &[usize]) -> (&[f64], Vec<&[f64]>) {
        for c in &mut self.cols {
            c.make_contiguous();
        }
        let times = self.times.make_contiguous();
        let cols = which.iter().map(|&c| self.cols[c].as_slices().0).collect();
        (times, cols)
    }
}

/// Bucket increase by `le` between two snapshots (the whole count without an earlier one).
fn bucket_increase(now: &PerfSnapshot, then: Option<&PerfSnapshot>) -> Vec<(f64, f64)> {
    let sum = |b: &[(f64, f64)]| {
        let mut out: Vec<(f64, f64)> = Vec::new();
        for &(le, c) in b {
            match out.iter_mut().find(|(l, _)| *l == le) {
                Some(slot) => slot.1 += c,
                None => out.push((le, c)),
            }
        }
        out
    };
    let now = sum(&now.buckets);
    match then {
        None => now,
        Some(t) => {
            let before = sum(&t.buckets);
            now.into_iter()
                .map(|(le, c)| {
                    let prev = before.iter().find(|(l, _)| *l == le).map_or(0.0, |p| p.1);
                    (le, c - prev)
                })
                .collect()
        }
    }
}

/// The raw row of a step from its last scrape and the previous step's last scrape, in
/// `RAW_SERIES` order (the mapping of the module docs).
fn raw_row(prev: Option<&Reading>, last: &Reading, restarts: f64) -> [f64; RAW_SERIES.len()] {
    let nan = f64::NAN;
    let dt = prev.map_or(0.0, |p| last.at.since(p.at).as_secs_f64());
    let prev = prev.filter(|_| dt > 0.0);
    // The increase of a counter, when it did not go backwards (a restart starts it over).
    let inc = |now: Option<f64>, then: Option<f64>| match (now, then) {
        (Some(n), Some(t)) if n >= t => Some(n - t),
        _ => None,
    };
    let cpu = prev
        .and_then(|p| inc(last.cpu_seconds, p.cpu_seconds))
        .map_or(nan, |d| d / dt);
    let requests = prev.and_then(|p| inc(last.perf.requests, p.perf.requests));
    let errors = prev.and_then(|p| inc(last.perf.errors, p.perf.errors));
    let request_rate = requests.map_or(nan, |r| r / dt);
    let error_rate = match (errors, requests) {
        (Some(e), Some(r)) if r > 0.0 => (e / r).clamp(0.0, 1.0),
        _ => nan,
    };
    let reset = prev.is_some_and(|p| {
        inc(last.perf.latency_count, p.perf.latency_count).is_none()
            && last.perf.latency_count.is_some()
    });
    let (p50, p99) = match prev {
        Some(p) if !reset && !last.perf.buckets.is_empty() => {
            let b = bucket_increase(&last.perf, Some(&p.perf));
            (
                histogram_quantile(0.5, &b).map_or(nan, |s| s * 1000.0),
                histogram_quantile(0.99, &b).map_or(nan, |s| s * 1000.0),
            )
        }
        _ => (nan, nan),
    };
    let mut row = [nan; RAW_SERIES.len()];
    let mut set = |name: &str, v: f64| {
        if let Some(c) = column_of(name) {
            row[c] = v;
        }
    };
    set("cpu", cpu);
    set("rss_mb", last.rss_bytes.map_or(nan, |b| b / 1_048_576.0));
    set("latency_p50_ms", p50);
    set("latency_p99_ms", p99);
    set("error_rate", error_rate);
    set("request_rate", request_rate);
    set("queue_depth", last.perf.queue_depth.unwrap_or(nan));
    set("open_fds", last.open_fds.unwrap_or(nan));
    set("restarts", restarts);
    row
}
