//! Evaluation of a [`Predictor`] on labelled agent histories (e.g. a simulated fleet with a
//! seed not used in training).
//!
//! Every step of every agent (every `stride` steps) whose last row is not dark is scored, as
//! the daemon would each minute. Two views:
//! - **Window level**: each scored window is labelled like the dataset (positive when a
//!   predictable failure starts within the horizon after it); ROC-AUC, PR-AUC (average
//!   precision) and precision/recall/F1 at the threshold over positive and negative windows.
//!   Windows before a sudden failure only (and averted ones) are left out and counted.
//! - **Event level** (the headline): alarms closer than `merge_gap` to the previous alarm
//!   belong to the same alarm episode. An episode is *true* when a failure starts after its
//!   first alarm and within the horizon after one of its alarms (the failure came while it was
//!   warning, or within the horizon of its last warning), else a *false alarm*. False alarms
//!   are broken down by context: `after_failure` (starts within the horizon after a failure:
//!   the aftermath of a crash and restart), `early` (a failure follows within three horizons:
//!   a precursor seen too soon), `lookalike` (starts during a look-alike episode) or `other`. A predictable failure is *caught*
//!   when some alarm falls in `[failure − horizon, failure)`; its lead time is the failure
//!   time minus the first such alarm. Precision = true episodes / episodes; recall = caught /
//!   predictable failures. Sudden failures are reported apart and never counted as misses.
//!   A look-alike episode is *alarmed* when a false-alarm episode starts during it.

use std::collections::BTreeMap;
use std::time::Duration;

use medic_core::Timestamp;
use serde::Serialize;

use super::PredictError;
use super::dataset::{AgentSeries, step_features};
use super::predictor::Predictor;
use super::steps::StepFeaturizer;
use crate::eval::metrics::{Prf, average_precision, prf_at, roc_auc};

/// Evaluation options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalConfig {
    /// Score every `stride`-th step (default 1: every minute).
    pub stride: usize,
    /// Alarm threshold; `None` = the card's.
    pub threshold: Option<f64>,
    /// Alarms closer than this to the previous one continue its episode (default 10 min).
    pub merge_gap: Duration,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            stride: 1,
            threshold: None,
            merge_gap: Duration::from_secs(600),
        }
    }
}

/// p10/p50/p90 of a sample (seconds); `None` without values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Quantiles {
    /// Values.
    pub n: usize,
    /// 10th percentile.
    pub p10: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
}

impl Quantiles {
    fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Quantiles::default();
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Quantiles {
            n: v.len(),
            p10: Some(q(0.1)),
            p50: Some(q(0.5)),
            p90: Some(q(0.9)),
        }
    }
}

/// Figures of one fault kind.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct KindEval {
    /// Failures of this kind.
    pub failures: usize,
    /// Caught (an alarm within the horizon before).
    pub caught: usize,
    /// Lead times of the caught ones, seconds.
    pub lead_time_s: Quantiles,
}

/// Result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictEval {
    /// Threshold used.
    pub threshold: f64,
    /// Agents evaluated.
    pub agents: usize,
    /// Agent-days covered.
    pub agent_days: f64,
    /// Windows scored.
    pub windows_scored: usize,
    /// Positive windows (among scored).
    pub windows_positive: usize,
    /// Negative windows.
    pub windows_negative: usize,
    /// Windows left out of window-level figures (before a sudden failure, or averted).
    pub windows_excluded: usize,
    /// Window-level precision/recall/F1 at the threshold.
    pub window: Prf,
    /// Window-level ROC-AUC.
    pub roc_auc: Option<f64>,
    /// Window-level PR-AUC (average precision).
    pub pr_auc: Option<f64>,
    /// Alarm episodes.
    pub alarm_episodes: usize,
    /// Episodes followed by a failure within the horizon.
    pub true_alarms: usize,
    /// Episodes not followed by a failure.
    pub false_alarms: usize,
    /// Event-level precision: true alarms / episodes (0 without episode).
    pub precision: f64,
    /// Event-level recall: caught / predictable failures (0 without failure).
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// False alarms per agent-day.
    pub false_alarms_per_agent_day: f64,
    /// Predictable failures.
    pub predictable_failures: usize,
    /// Predictable failures caught.
    pub caught: usize,
    /// Lead times of caught failures, seconds.
    pub lead_time_s: Quantiles,
    /// Per fault kind (predictable kinds).
    pub per_kind: BTreeMap<String, KindEval>,
    /// Sudden (unpredictable) failures: reported apart, not misses.
    pub sudden_failures: usize,
    /// Sudden failures that happened to have an alarm within the horizon before.
    pub sudden_alarmed: usize,
    /// Look-alike episodes.
    pub lookalikes: usize,
    /// Look-alike episodes during which a false alarm started.
    pub lookalikes_alarmed: usize,
    /// False alarms by context (`after_failure`, `early`, `lookalike`, `other`; see the module
    /// docs).
    pub false_alarm_context: BTreeMap<String, usize>,
    /// `lookalikes_alarmed / lookalikes` (0 without look-alikes).
    pub lookalike_false_alarm_rate: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Every scored step of every agent, before any threshold: scoring is the expensive part, so
/// one [`Scores`] serves any number of thresholds ([`analyze`], [`calibrate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Per agent (same order as the series): (time of the window's last row, probability).
    pub steps: Vec<Vec<(Timestamp, f32)>>,
    /// Window labels of the scored steps that count at window level, per agent, parallel to
    /// `steps`: `Some(positive)` or `None` when excluded (before a sudden failure, averted).
    pub labels: Vec<Vec<Option<bool>>>,
    /// The card's horizon.
    pub horizon: Duration,
    /// The card's threshold.
    pub card_threshold: f64,
}

/// Scores every `stride`-th step of every agent whose last row is not dark, as the daemon
/// would each minute, in batches of the predictor's plan.
pub fn score(
    predictor: &mut Predictor,
    series: &[AgentSeries],
    stride: usize,
) -> Result<Scores, PredictError> {
    if stride == 0 {
        return Err(PredictError::Data("stride 0".into()));
    }
    let card = predictor.card().clone();
    let horizon = Duration::from_secs(card.horizon_s);
    let mut featurizer = StepFeaturizer::new(card.feature_spec.clone(), card.feature_window)?;
    let (seq, w) = (card.seq_len, card.feature_names.len());
    let b = predictor.batch_size();
    let mut batch = Vec::with_capacity(b * seq * w);
    let mut batch_steps: Vec<usize> = Vec::with_capacity(b);
    let mut probs = vec![0.0f32; b];
    let mut out = Scores {
        steps: Vec::with_capacity(series.len()),
        labels: Vec::with_capacity(series.len()),
        horizon,
        card_threshold: card.threshold,
    };
    for s in series {
        let f = step_features(s, &mut featurizer)?;
        let sc = &card.scaler;
        let z: Vec<f32> = f
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let j = k % w;
                if v.is_nan() {
                    0.0
                } else {
                    ((v - sc.center[j]) / sc.scale[j]) as f32
                }
            })
            .collect();
        let raw: Vec<&[f32]> = s.columns.iter().map(|c| c.values.as_slice()).collect();
        let (mut steps, mut labels) = (Vec::new(), Vec::new());
        let mut flush = |batch: &mut Vec<f32>,
                         batch_steps: &mut Vec<usize>,
                         probs: &mut [f32]|
         -> Result<(), PredictError> {
            let n = batch_steps.len();
            if n == 0 {
                return Ok(());
            }
            predictor.predict_into(batch, &mut probs[..n])?;
            for (&e, &p) in batch_steps.iter().zip(probs.iter()) {
                let end = s.time(e);
                let within = |t: Timestamp| t > end && t <= end + horizon;
                let pos = s.failures.iter().any(|f| f.predictable && within(f.at));
                let other = !pos
                    && (s.failures.iter().any(|f| within(f.at))
                        || s.preemptive_actions.iter().any(|&t| within(t)));
                steps.push((end, p));
                labels.push(if other { None } else { Some(pos) });
            }
            batch.clear();
            batch_steps.clear();
            Ok(())
        };
        let mut e = card.feature_window + seq - 2;
        while e < s.len() {
            if !raw.iter().all(|c| c[e].is_nan()) {
                batch.extend_from_slice(&z[(e + 1 - seq) * w..(e + 1) * w]);
                batch_steps.push(e);
                if batch_steps.len() == b {
                    flush(&mut batch, &mut batch_steps, &mut probs)?;
                }
            }
            e += stride;
        }
        flush(&mut batch, &mut batch_steps, &mut probs)?;
        out.steps.push(steps);
        out.labels.push(labels);
    }
    Ok(out)
}

/// Evaluates `predictor` on `series` (see the module docs for the definitions).
pub fn evaluate(
    predictor: &mut Predictor,
    series: &[AgentSeries],
    cfg: &EvalConfig,
) -> Result<PredictEval, PredictError> {
    let scores = score(predictor, series, cfg.stride)?;
    let threshold = cfg.threshold.unwrap_or(scores.card_threshold);
    analyze(&scores, series, threshold, cfg.merge_gap)
}

/// The figures of `scores` (from [`score`] over the same `series`) at `threshold`.
pub fn analyze(
    scores: &Scores,
    series: &[AgentSeries],
    threshold: f64,
    merge_gap: Duration,
) -> Result<PredictEval, PredictError> {
    if scores.steps.len() != series.len() {
        return Err(PredictError::Data(format!(
            "scores of {} agents for {} series",
            scores.steps.len(),
            series.len()
        )));
    }
    let horizon = scores.horizon;
    let (mut window_scores, mut window_labels) = (Vec::new(), Vec::new());
    let mut excluded = 0;
    let mut scored = 0;
    let (mut episodes, mut true_alarms) = (0usize, 0usize);
    let mut leads = Vec::new();
    let mut per_kind: BTreeMap<String, (usize, usize, Vec<f64>)> = BTreeMap::new();
    let (mut predictable, mut caught, mut sudden, mut sudden_alarmed) = (0, 0, 0, 0);
    let (mut lookalikes, mut lookalikes_alarmed) = (0, 0);
    let mut contexts: BTreeMap<String, usize> = BTreeMap::new();
    let mut agent_days = 0.0;
    let mut alarms: Vec<Timestamp> = Vec::new();

    for ((s, steps), labels) in series.iter().zip(&scores.steps).zip(&scores.labels) {
        agent_days += s.step.as_secs_f64() * s.len() as f64 / 86_400.0;
        scored += steps.len();
        alarms.clear();
        for (&(t, p), &label) in steps.iter().zip(labels) {
            if f64::from(p) >= threshold {
                alarms.push(t);
            }
            match label {
                Some(pos) => {
                    window_scores.push(f64::from(p));
                    window_labels.push(pos);
                }
                None => excluded += 1,
            }
        }
        // Episodes: (first alarm, last alarm).
        let mut spans: Vec<(Timestamp, Timestamp)> = Vec::new();
        for &t in &alarms {
            match spans.last_mut() {
                Some((_, last)) if t.since(*last) < merge_gap => *last = t,
                _ => spans.push((t, t)),
            }
        }
        let mut false_starts = Vec::new();
        for &(start, last) in &spans {
            episodes += 1;
            if s.failures
                .iter()
                .any(|f| f.at > start && f.at <= last + horizon)
            {
                true_alarms += 1;
                continue;
            }
            false_starts.push(start);
            let context = if s
                .failures
                .iter()
                .any(|f| f.at <= start && start <= f.at + horizon)
            {
                "after_failure"
            } else if s
                .failures
                .iter()
                .any(|f| f.at > start && f.at <= start + horizon * 3)
            {
                "early"
            } else if s
                .lookalikes
                .iter()
                .any(|l| start >= l.start && start < l.end)
            {
                "lookalike"
            } else {
                "other"
            };
            *contexts.entry(context.to_owned()).or_default() += 1;
        }
        // Failures.
        for f in &s.failures {
            let from = f.at - horizon;
            let first = alarms.iter().find(|&&t| t >= from && t < f.at);
            if f.predictable {
                predictable += 1;
                let k = per_kind.entry(f.kind.clone()).or_default();
                k.0 += 1;
                if let Some(&t) = first {
                    caught += 1;
                    k.1 += 1;
                    let lead = f.at.since(t).as_secs_f64();
                    leads.push(lead);
                    k.2.push(lead);
                }
            } else {
                sudden += 1;
                if first.is_some() {
                    sudden_alarmed += 1;
                }
            }
        }
        for l in &s.lookalikes {
            lookalikes += 1;
            if false_starts.iter().any(|&t| t >= l.start && t < l.end) {
                lookalikes_alarmed += 1;
            }
        }
    }

    let false_alarms = episodes - true_alarms;
    let precision = ratio(true_alarms, episodes);
    let recall = ratio(caught, predictable);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let windows_positive = window_labels.iter().filter(|&&l| l).count();
    Ok(PredictEval {
        threshold,
        agents: series.len(),
        agent_days,
        windows_scored: scored,
        windows_positive,
        windows_negative: window_labels.len() - windows_positive,
        windows_excluded: excluded,
        window: prf_at(&window_scores, &window_labels, threshold),
        roc_auc: roc_auc(&window_scores, &window_labels),
        pr_auc: average_precision(&window_scores, &window_labels),
        alarm_episodes: episodes,
        true_alarms,
        false_alarms,
        precision,
        recall,
        f1,
        false_alarms_per_agent_day: if agent_days > 0.0 {
            false_alarms as f64 / agent_days
        } else {
            0.0
        },
        predictable_failures: predictable,
        caught,
        lead_time_s: Quantiles::of(leads),
        per_kind: per_kind
            .into_iter()
            .map(|(k, (n, c, l))| {
                (
                    k,
                    KindEval {
                        failures: n,
                        caught: c,
                        lead_time_s: Quantiles::of(l),
                    },
                )
            })
            .collect(),
        sudden_failures: sudden,
        sudden_alarmed,
        lookalikes,
        lookalikes_alarmed,
        lookalike_false_alarm_rate: ratio(lookalikes_alarmed, lookalikes),
        false_alarm_context: contexts,
    })
}

/// What [`calibrate`] aims for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationGoal {
    /// Most false alarms per agent-day allowed (default 0.1).
    pub max_false_alarms_per_agent_day: f64,
    /// Alarm merge gap, as in [`EvalConfig::merge_gap`].
    pub merge_gap: Duration,
}

impl Default for CalibrationGoal {
    fn default() -> Self {
        CalibrationGoal {
            max_false_alarms_per_agent_day: 0.1,
            merge_gap: EvalConfig::default().merge_gap,
        }
    }
}

/// The alarm threshold an operator would pick on held-out history: among candidate
/// thresholds (up to 256 quantiles of the scored probabilities, from 0.5 up), the one with the
/// best event-level F1 whose false alarms per agent-day stay within the goal; when none does,
/// the one with the fewest false alarms (then the best F1). Returns the threshold and its
/// figures on `series`.
pub fn calibrate(
    scores: &Scores,
    series: &[AgentSeries],
    goal: &CalibrationGoal,
) -> Result<(f64, PredictEval), PredictError> {
    let mut probs: Vec<f32> = scores
        .steps
        .iter()
        .flatten()
        .map(|&(_, p)| p)
        .filter(|&p| p >= 0.5)
        .collect();
    probs.sort_by(f32::total_cmp);
    probs.dedup();
    let n = probs.len();
    let mut candidates: Vec<f64> = (0..n.min(256))
        .map(|k| f64::from(probs[k * n / n.min(256)]))
        .collect();
    candidates.push(0.5);
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    let mut best: Option<(bool, f64, PredictEval)> = None;
    for t in candidates {
        let r = analyze(scores, series, t, goal.merge_gap)?;
        let ok = r.false_alarms_per_agent_day <= goal.max_false_alarms_per_agent_day;
        let better = match &best {
            None => true,
            Some((best_ok, _, b)) => match (ok, *best_ok) {
                (true, false) => true,
                (false, true) => false,
                (true, true) => r.f1 > b.f1,
                (false, false) => {
                    r.false_alarms < b.false_alarms
                        || (r.false_alarms == b.false_alarms && r.f1 > b.f1)
                }
            },
        };
        if better {
            best = Some((ok, t, r));
        }
    }
    let (_, t, r) = best.ok_or_else(|| PredictError::Data("nothing scored".into()))?;
    Ok((t, r))
}
