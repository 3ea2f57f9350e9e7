//! Training windows for the failure predictor, from per-agent raw series.
//!
//! Rules (all deterministic, no random windows anywhere):
//! - **Features.** Each agent's raw columns go through [`StepFeaturizer`] (the one feature path)
//!   once; a window is `seq_len` consecutive step rows, scaled by the training scaler, NaN → 0
//!   (the scaler's documented fill), stored as `f32`, row-major `[n, seq_len, n_features]`.
//!   The first window ends at step `feature_window + seq_len − 2`, so every step sees a full
//!   trailing raw window; windows then advance by `stride` steps.
//! - **Dark ends.** A window whose last row has no value at all (the agent did not answer) is
//!   skipped and counted (`dark`): nothing is scored while a target is down.
//! - **Labels.** With `T` the time of the window's last row: *positive* if a predictable failure
//!   starts in `(T, T + horizon]`; else *sudden* if an unpredictable failure does (weight 0: no
//!   metric can announce it, so it teaches nothing either way); else *averted* if medic took a
//!   preemptive action in `(T, T + horizon]` (the failure it predicted was prevented and
//!   cannot be observed; see [`AvertedRule`]); else *negative*.
//! - **Split by agent and time.** Every `test_agent_every`-th agent (index ≡ −1 mod k) is held
//!   out: all its windows are test. For the others the overall time range is cut at
//!   `1 − val − test` and `1 − test`: a window whose whole span (first raw row behind it to
//!   `T + horizon`) lies before the first cut is train, between the cuts val, after the second
//!   test; a window straddling a cut is dropped and counted (`purged`), so no label leaks across.
//! - **Scaler** ([`ScalerKind::Standard`]) fitted on the step rows of non-held-out agents before
//!   the first cut only.
//! - **Class weights.** Negatives weigh 1, *hard* negatives (ending within the horizon after a
//!   failure or during a look-alike episode) `hard_negative_weight`; positives `positive_weight`, by default
//!   `train negatives / train positives` (balanced); sudden windows 0; averted per the rule.

use std::time::Duration;

use medic_core::Timestamp;

use super::PredictError;
use super::steps::{DEFAULT_FEATURE_WINDOW, StepFeaturizer, default_step_spec};
use crate::features::FeatureSpec;
use crate::scaler::{Scaler, ScalerKind};

/// One named raw metric column, one value per step (NaN = no value).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Metric name, e.g. `rss_mb` (see [`super::steps::RAW_SERIES`]).
    pub name: String,
    /// Values, one per step.
    pub values: Vec<f32>,
}

/// A failure of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureMark {
    /// When the agent stopped answering.
    pub at: Timestamp,
    /// Whether the failure had a precursor (sudden crashes have none).
    pub predictable: bool,
    /// The fault kind's name, e.g. `memory_leak`.
    pub kind: String,
}

/// A look-alike episode (looks like trouble, never fails), for false-alarm reporting.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeMark {
    /// First step's time.
    pub start: Timestamp,
    /// Time after the last step.
    pub end: Timestamp,
    /// The episode kind's name, e.g. `load_spike`.
    pub kind: String,
}

/// One agent's per-step raw history with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSeries {
    /// Agent name.
    pub agent: String,
    /// Time of step 0.
    pub start: Timestamp,
    /// Time between steps.
    pub step: Duration,
    /// Raw metrics, all of the same length.
    pub columns: Vec<Column>,
    /// Failures, by time.
    pub failures: Vec<FailureMark>,
    /// Look-alike episodes (may be empty when unknown).
    pub lookalikes: Vec<EpisodeMark>,
    /// Times medic acted preemptively on the agent (empty for simulated or external history).
    pub preemptive_actions: Vec<Timestamp>,
}

impl AgentSeries {
    /// One series per agent of a simulated history (medic-sim), columns named as
    /// [`medic_sim::Metric::name`], with its failures and look-alike episodes. The one
    /// conversion used by training, evaluation and the tests (feature `sim`).
    #[cfg(feature = "sim")]
    pub fn from_sim(history: &medic_sim::History) -> Vec<AgentSeries> {
        history
            .agents
            .iter()
            .enumerate()
            .map(|(a, agent)| AgentSeries {
                agent: agent.name.clone(),
                start: history.start,
                step: Duration::from_secs(history.step_s),
                columns: medic_sim::Metric::ALL
                    .iter()
                    .map(|&m| Column {
                        name: m.name().to_owned(),
                        values: agent.series(m).collect(),
                    })
                    .collect(),
                failures: history
                    .failures
                    .iter()
                    .filter(|f| f.agent == a)
                    .map(|f| FailureMark {
                        at: history.timestamp(f.at_step),
                        predictable: f.predictable(),
                        kind: f.kind.name().to_owned(),
                    })
                    .collect(),
                lookalikes: history
                    .episodes
                    .iter()
                    .filter(|e| e.agent == a)
                    .map(|e| EpisodeMark {
                        start: history.timestamp(e.start),
                        end: history.timestamp(e.end),
                        kind: e.kind.name().to_owned(),
                    })
                    .collect(),
                preemptive_actions: Vec::new(),
            })
            .collect()
    }

    /// The part of the series whose steps fall in `[from, to)`, with the failures, episodes
    /// and preemptive actions of that range (an episode is kept when it overlaps the range).
    pub fn slice(&self, from: Timestamp, to: Timestamp) -> AgentSeries {
        let lo = (0..self.len())
            .find(|&i| self.time(i) >= from)
            .unwrap_or(self.len());
        let hi = (lo..self.len())
            .find(|&i| self.time(i) >= to)
            .unwrap_or(self.len());
        AgentSeries {
            agent: self.agent.clone(),
            start: self.time(lo),
            step: self.step,
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    values: c.values[lo..hi].to_vec(),
                })
                .collect(),
            failures: self
                .failures
                .iter()
                .filter(|f| f.at >= from && f.at < to)
                .cloned()
                .collect(),
            lookalikes: self
                .lookalikes
                .iter()
                .filter(|e| e.end > from && e.start < to)
                .cloned()
                .collect(),
            preemptive_actions: self
                .preemptive_actions
                .iter()
                .copied()
                .filter(|&t| t >= from && t < to)
                .collect(),
        }
    }

    /// Number of steps (length of the first column; 0 without columns).
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// Whether there is no step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of the column `name`.
    pub fn column(&self, name: &str) -> Option<&[f32]> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.values.as_slice())
    }

    /// The time of step `i`.
    pub fn time(&self, i: usize) -> Timestamp {
        self.start
            + self
                .step
                .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX))
    }

    /// Step times in seconds (for the feature path).
    pub fn times_s(&self) -> Vec<f64> {
        (0..self.len())
            .map(|i| self.time(i).as_secs_f64())
            .collect()
    }

    /// Checks that every column has the same length and the step is positive.
    pub fn validate(&self) -> Result<(), PredictError> {
        let n = self.len();
        if self.step.is_zero() {
            return Err(PredictError::Data(format!("{}: step is 0", self.agent)));
        }
        if let Some(c) = self.columns.iter().find(|c| c.values.len() != n) {
            return Err(PredictError::Data(format!(
                "{}: column {} has {} rows, expected {n}",
                self.agent,
                c.name,
                c.values.len()
            )));
        }
        Ok(())
    }
}

/// Computes the unscaled per-step feature rows of a series (`len × width`, row-major, f64).
pub fn step_features(
    series: &AgentSeries,
    featurizer: &mut StepFeaturizer,
) -> Result<Vec<f64>, PredictError> {
    series.validate()?;
    let names = featurizer.raw_names();
    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(names.len());
    for name in &names {
        let c = series
            .column(name)
            .ok_or_else(|| PredictError::Data(format!("{}: no column {name:?}", series.agent)))?;
        cols.push(c.iter().map(|&v| v as f64).collect());
    }
    let refs: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
    let times = series.times_s();
    let mut out = vec![0.0; times.len() * featurizer.width()];
    featurizer.featurize_into(&times, &refs, 0, &mut out)?;
    Ok(out)
}

/// What to do with windows labelled *averted*.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AvertedRule {
    /// Weight 0 (kept and counted, never trained on). The default.
    Exclude,
    /// Keep as negatives with this weight (in `(0, 1]`), e.g. 0.1.
    DownWeight(f32),
}

/// How to build a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetConfig {
    /// Steps per window (default 20).
    pub seq_len: usize,
    /// A failure within this long after the window's end makes it positive (default 30 min).
    pub horizon: Duration,
    /// Steps between consecutive windows' ends (default 1).
    pub stride: usize,
    /// Per-step feature spec (default [`default_step_spec`]).
    pub feature_spec: FeatureSpec,
    /// Trailing raw rows behind each step (default [`DEFAULT_FEATURE_WINDOW`]).
    pub feature_window: usize,
    /// Fraction of the time range for validation (default 0.15).
    pub val_fraction: f64,
    /// Fraction of the time range, at the end, for test (default 0.15).
    pub test_fraction: f64,
    /// Every k-th agent is held out for test entirely (default 5; 0 = none).
    pub test_agent_every: usize,
    /// Averted windows (default [`AvertedRule::Exclude`]).
    pub averted: AvertedRule,
    /// Weight of positives; `None` = balanced on the training split.
    pub positive_weight: Option<f32>,
    /// Weight of *hard* negatives (default 1): negative windows that end within the horizon
    /// after a failure (the crash and restart are still in view) or during a look-alike
    /// episode, the two places a predictor is most tempted to alarm for nothing.
    pub hard_negative_weight: f32,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig {
            seq_len: 20,
            horizon: Duration::from_secs(30 * 60),
            stride: 1,
            feature_spec: default_step_spec(),
            feature_window: DEFAULT_FEATURE_WINDOW,
            val_fraction: 0.15,
            test_fraction: 0.15,
            test_agent_every: 5,
            averted: AvertedRule::Exclude,
            positive_weight: None,
            hard_negative_weight: 1.0,
        }
    }
}

/// Which part of the data a window belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Fits the weights and the scaler.
    Train,
    /// Early stopping and threshold choice.
    Val,
    /// Held-out evaluation.
    Test,
}

/// A window's label class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowLabel {
    /// No failure and no preemptive action within the horizon.
    Negative,
    /// A predictable failure starts within the horizon.
    Positive,
    /// A preemptive action (and no failure) within the horizon.
    Averted,
    /// Only an unpredictable failure within the horizon.
    Sudden,
}

/// Where a window comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowInfo {
    /// Index of the agent in the input slice.
    pub agent: u32,
    /// Step index of the window's last row.
    pub end_step: u32,
    /// Time of the window's last row.
    pub end: Timestamp,
    /// Label class.
    pub label: WindowLabel,
    /// Split.
    pub split: Split,
}

/// Window counts of one split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SplitCounts {
    /// Positive windows.
    pub positive: usize,
    /// Negative windows.
    pub negative: usize,
    /// Averted windows.
    pub averted: usize,
    /// Sudden windows (weight 0).
    pub sudden: usize,
}

impl SplitCounts {
    /// All windows of the split.
    pub fn total(&self) -> usize {
        self.positive + self.negative + self.averted + self.sudden
    }
}

/// Counts over the whole dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatasetCounts {
    /// Training split.
    pub train: SplitCounts,
    /// Validation split.
    pub val: SplitCounts,
    /// Test split.
    pub test: SplitCounts,
    /// Windows dropped because they straddle a time cut.
    pub purged: usize,
    /// Windows skipped because their last row is dark.
    pub dark: usize,
}

impl DatasetCounts {
    /// Counts of one split.
    pub fn of(&self, split: Split) -> &SplitCounts {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    fn of_mut(&mut self, split: Split) -> &mut SplitCounts {
        match split {
            Split::Train => &mut self.train,
            Split::Val => &mut self.val,
            Split::Test => &mut self.test,
        }
    }
}

/// Windows, labels, weights and split of a fleet history.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Steps per window.
    pub seq_len: usize,
    /// Features per step.
    pub n_features: usize,
    /// Feature names in order.
    pub feature_names: Vec<String>,
    /// The spec used (goes into the model card).
    pub feature_spec: FeatureSpec,
    /// Trailing raw rows behind each step.
    pub feature_window: usize,
    /// Horizon used for labels.
    pub horizon: Duration,
    /// Time between steps (of the first agent; all agents must share it).
    pub step: Duration,
    /// Scaled windows, `[n, seq_len, n_features]` row-major.
    pub x: Vec<f32>,
    /// Labels: 1 for positive, 0 otherwise.
    pub y: Vec<f32>,
    /// Training weights (0 for sudden and, by default, averted windows).
    pub weight: Vec<f32>,
    /// Per-window origin, label class and split.
    pub info: Vec<WindowInfo>,
    /// Standard scaler fitted on the training rows.
    pub scaler: Scaler,
    /// Counts.
    pub counts: DatasetCounts,
    /// Agent names, by index.
    pub agents: Vec<String>,
    /// Per agent: whether it is held out (all its windows are test).
    pub held_out: Vec<bool>,
    /// The two time cuts: train before the first, validation between, test after the second.
    pub cuts: (Timestamp, Timestamp),
}

impl Dataset {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there is no window.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Window `i` as `seq_len × n_features` values.
    pub fn window(&self, i: usize) -> &[f32] {
        let w = self.seq_len * self.n_features;
        &self.x[i * w..(i + 1) * w]
    }

    /// Indices of the windows of a split, in order.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.info[i].split == split)
            .collect()
    }
}

fn label_at(s: &AgentSeries, end: Timestamp, horizon: Duration) -> WindowLabel {
    let until = end + horizon;
    let within = |t: Timestamp| t > end && t <= until;
    let mut sudden = false;
    for f in s.failures.iter().filter(|f| within(f.at)) {
        if f.predictable {
            return WindowLabel::Positive;
        }
        sudden = true;
    }
    if sudden {
        WindowLabel::Sudden
    } else if s.preemptive_actions.iter().any(|&t| within(t)) {
        WindowLabel::Averted
    } else {
        WindowLabel::Negative
    }
}

/// Builds the dataset. Errors when a series lacks a column of the spec, columns differ in
/// length, agents differ in step, or no training row exists to fit the scaler.
pub fn build(series: &[AgentSeries], cfg: &DatasetConfig) -> Result<Dataset, PredictError> {
    if cfg.seq_len == 0 || cfg.stride == 0 {
        return Err(PredictError::Data(
            "seq_len and stride must be positive".into(),
        ));
    }
    if !(cfg.val_fraction >= 0.0
        && cfg.test_fraction >= 0.0
        && cfg.val_fraction + cfg.test_fraction < 1.0)
    {
        return Err(PredictError::Data(format!(
            "val {} + test {} must be in [0, 1)",
            cfg.val_fraction, cfg.test_fraction
        )));
    }
    if !(cfg.hard_negative_weight > 0.0 && cfg.hard_negative_weight.is_finite()) {
        return Err(PredictError::Data(format!(
            "hard negative weight {} must be positive",
            cfg.hard_negative_weight
        )));
    }
    if let AvertedRule::DownWeight(w) = cfg.averted
        && !(w > 0.0 && w <= 1.0)
    {
        return Err(PredictError::Data(format!(
            "averted weight {w} not in (0, 1]"
        )));
    }
    let mut featurizer = StepFeaturizer::new(cfg.feature_spec.clone(), cfg.feature_window)?;
    let width = featurizer.width();
    let step = series.first().map_or(Duration::from_secs(60), |s| s.step);
    if let Some(s) = series.iter().find(|s| s.step != step) {
        return Err(PredictError::Data(format!(
            "{}: step {:?} differs from {:?}",
            s.agent, s.step, step
        )));
    }
    // Time cuts over the whole range.
    let t0 = series.iter().map(|s| s.start).min().unwrap_or_default();
    let t_end = series
        .iter()
        .map(|s| s.time(s.len()))
        .max()
        .unwrap_or_default();
    let span = t_end.since(t0).as_secs_f64();
    let cut1 = t0 + Duration::from_secs_f64(span * (1.0 - cfg.val_fraction - cfg.test_fraction));
    let cut2 = t0 + Duration::from_secs_f64(span * (1.0 - cfg.test_fraction));
    let held_out =
        |a: usize| cfg.test_agent_every > 0 && a % cfg.test_agent_every == cfg.test_agent_every - 1;

    // Pass 1: features per agent (unscaled f32) and the scaler's training sums.
    let mut feats: Vec<Vec<f32>> = Vec::with_capacity(series.len());
    let (mut n, mut sum) = (vec![0u64; width], vec![0.0f64; width]);
    for (a, s) in series.iter().enumerate() {
        let f = step_features(s, &mut featurizer)?;
        if !held_out(a) {
            for t in (0..s.len()).take_while(|&t| s.time(t) < cut1) {
                for j in 0..width {
                    let v = f[t * width + j];
                    if v.is_finite() {
                        n[j] += 1;
                        sum[j] += v;
                    }
                }
            }
        }
        feats.push(f.iter().map(|&v| v as f32).collect());
    }
    if let Some(j) = n.iter().position(|&c| c == 0) {
        return Err(PredictError::Data(format!(
            "no training value for feature {} (is the training period empty?)",
            featurizer.names()[j]
        )));
    }
    let center: Vec<f64> = sum.iter().zip(&n).map(|(s, &c)| s / c as f64).collect();
    let mut var = vec![0.0f64; width];
    for (a, s) in series.iter().enumerate() {
        if held_out(a) {
            continue;
        }
        let f = &feats[a];
        for t in (0..s.len()).take_while(|&t| s.time(t) < cut1) {
            for j in 0..width {
                let v = f[t * width + j] as f64;
                if v.is_finite() {
                    var[j] += (v - center[j]) * (v - center[j]);
                }
            }
        }
    }
    let scale = var
        .iter()
        .zip(&n)
        .map(|(v, &c)| {
            let s = (v / c as f64).sqrt();
            if s > 0.0 && s.is_finite() { s } else { 1.0 }
        })
        .collect();
    let scaler = Scaler {
        kind: ScalerKind::Standard,
        center,
        scale,
    };

    // Pass 2: windows.
    let per_window = cfg.seq_len * width;
    let mut ds = Dataset {
        seq_len: cfg.seq_len,
        n_features: width,
        feature_names: featurizer.names().to_vec(),
        feature_spec: featurizer.spec().clone(),
        feature_window: cfg.feature_window,
        horizon: cfg.horizon,
        step,
        x: Vec::new(),
        y: Vec::new(),
        weight: Vec::new(),
        info: Vec::new(),
        scaler,
        counts: DatasetCounts::default(),
        agents: series.iter().map(|s| s.agent.clone()).collect(),
        held_out: (0..series.len()).map(held_out).collect(),
        cuts: (cut1, cut2),
    };
    let first_end = cfg.feature_window + cfg.seq_len - 2;
    for (a, s) in series.iter().enumerate() {
        let f = &feats[a];
        let raw: Vec<&[f32]> = s.columns.iter().map(|c| c.values.as_slice()).collect();
        let mut e = first_end;
        while e < s.len() {
            let end_step = e;
            e += cfg.stride;
            if raw.iter().all(|c| c[end_step].is_nan()) {
                ds.counts.dark += 1;
                continue;
            }
            let end = s.time(end_step);
            let split = if held_out(a) {
                Split::Test
            } else {
                let first = s.time(end_step + 2 - cfg.seq_len - cfg.feature_window);
                let last = end + cfg.horizon;
                if last < cut1 {
                    Split::Train
                } else if first >= cut1 && last < cut2 {
                    Split::Val
                } else if first >= cut2 {
                    Split::Test
                } else {
                    ds.counts.purged += 1;
                    continue;
                }
            };
            let label = label_at(s, end, cfg.horizon);
            let c = ds.counts.of_mut(split);
            let (y, w) = match label {
                WindowLabel::Positive => {
                    c.positive += 1;
                    (1.0, 1.0)
                }
                WindowLabel::Negative => {
                    c.negative += 1;
                    let after_failure = s
                        .failures
                        .iter()
                        .any(|f| f.at <= end && end <= f.at + cfg.horizon);
                    let lookalike = s.lookalikes.iter().any(|l| end >= l.start && end < l.end);
                    if after_failure || lookalike {
                        (0.0, cfg.hard_negative_weight)
                    } else {
                        (0.0, 1.0)
                    }
                }
                WindowLabel::Sudden => {
                    c.sudden += 1;
                    (0.0, 0.0)
                }
                WindowLabel::Averted => {
                    c.averted += 1;
                    match cfg.averted {
                        AvertedRule::Exclude => (0.0, 0.0),
                        AvertedRule::DownWeight(w) => (0.0, w),
                    }
                }
            };
            let start_step = end_step + 1 - cfg.seq_len;
            let rows = &f[start_step * width..(end_step + 1) * width];
            ds.x.reserve(per_window);
            for (k, &v) in rows.iter().enumerate() {
                let j = k % width;
                let z = if v.is_nan() {
                    0.0
                } else {
                    ((v as f64 - ds.scaler.center[j]) / ds.scaler.scale[j]) as f32
                };
                ds.x.push(z);
            }
            ds.y.push(y);
            ds.weight.push(w);
            ds.info.push(WindowInfo {
                agent: a as u32,
                end_step: end_step as u32,
                end,
                label,
                split,
            });
        }
    }
    let pos_w = cfg.positive_weight.unwrap_or_else(|| {
        let t = &ds.counts.train;
        if t.positive == 0 {
            1.0
        } else {
            t.negative as f32 / t.positive as f32
        }
    });
    for (w, info) in ds.weight.iter_mut().zip(&ds.info) {
        if info.label == WindowLabel::Positive {
            *w = pos_w;
        }
    }
    Ok(ds)
}
