//! Evaluation of a trained predictor on one split: window-level ranking and threshold figures,
//! and event-level figures (failures caught, lead time, false alarms per agent-day).
//!
//! Definitions (windows are the split's positive and negative windows; sudden and averted
//! windows are left out):
//! - **window precision/recall/F1** at the threshold, **PR-AUC** (average precision) and
//!   **ROC-AUC** over the windows;
//! - a predictable failure of an agent is **in the split** when at least one of the split's
//!   windows of that agent ends in `[failure − horizon, failure)`; it is **caught** when one of
//!   them alarms (probability ≥ threshold); its **lead time** is the failure time minus the end
//!   of the first alarming one. Sudden failures are counted apart and never as misses;
//! - a **false alarm** is the start of a run of alarming negative windows of one agent (an
//!   alarm that was not alarming at the agent's previous window in the split); the rate is per
//!   agent-day covered by the split's windows.

use std::collections::BTreeMap;

use medic_detect::eval::metrics::{average_precision, best_f1, prf_at, roc_auc};
use medic_detect::predict::dataset::WindowLabel;
use medic_detect::predict::{AgentSeries, Dataset};

/// Figures of one split at one threshold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplitMetrics {
    /// Windows evaluated (positive + negative).
    pub windows: usize,
    /// Positive windows among them.
    pub positive_windows: usize,
    /// Area under the precision–recall curve (average precision).
    pub pr_auc: Option<f64>,
    /// Area under the ROC curve.
    pub roc_auc: Option<f64>,
    /// Threshold the figures below use.
    pub threshold: f64,
    /// Window precision.
    pub precision: f64,
    /// Window recall.
    pub recall: f64,
    /// Window F1.
    pub f1: f64,
    /// Predictable failures in the split.
    pub failures: usize,
    /// Of those, caught.
    pub caught: usize,
    /// Sudden failures in the split's time range (not predictable, not counted as misses).
    pub sudden_failures: usize,
    /// Lead times of caught failures in seconds, sorted.
    pub lead_times_s: Vec<f64>,
    /// Per fault kind: (failures, caught).
    pub by_kind: BTreeMap<String, (usize, usize)>,
    /// Alarm runs on negative windows.
    pub false_alarms: usize,
    /// Agent-days covered by the split's windows.
    pub agent_days: f64,
}

impl SplitMetrics {
    /// Caught / failures (0 without failures).
    pub fn event_recall(&self) -> f64 {
        if self.failures == 0 {
            0.0
        } else {
            self.caught as f64 / self.failures as f64
        }
    }

    /// False alarms per agent-day (0 without coverage).
    pub fn false_alarms_per_agent_day(&self) -> f64 {
        if self.agent_days > 0.0 {
            self.false_alarms as f64 / self.agent_days
        } else {
            0.0
        }
    }

    /// The `q`-quantile (nearest rank) of the lead times, if any failure was caught.
    pub fn lead_time_quantile_s(&self, q: f64) -> Option<f64> {
        if self.lead_times_s.is_empty() {
            return None;
        }
        let k = ((q * (self.lead_times_s.len() - 1) as f64).round() as usize)
            .min(self.lead_times_s.len() - 1);
        Some(self.lead_times_s[k])
    }

    /// The figures as flat `prefix_name → value` pairs for the model card.
    pub fn to_map(&self, prefix: &str) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: f64| {
            m.insert(format!("{prefix}_{k}"), v);
        };
        put("windows", self.windows as f64);
        put("positive_windows", self.positive_windows as f64);
        if let Some(v) = self.pr_auc {
            put("pr_auc", v);
        }
        if let Some(v) = self.roc_auc {
            put("roc_auc", v);
        }
        put("precision", self.precision);
        put("recall", self.recall);
        put("f1", self.f1);
        put("failures", self.failures as f64);
        put("failures_caught", self.caught as f64);
        put("event_recall", self.event_recall());
        put("sudden_failures", self.sudden_failures as f64);
        put("false_alarms", self.false_alarms as f64);
        put("agent_days", self.agent_days);
        put(
            "false_alarms_per_agent_day",
            self.false_alarms_per_agent_day(),
        );
        for (name, q) in [("p10", 0.1), ("median", 0.5), ("p90", 0.9)] {
            if let Some(v) = self.lead_time_quantile_s(q) {
                put(&format!("lead_time_{name}_s"), v);
            }
        }
        for (kind, (n, c)) in &self.by_kind {
            if *n > 0 {
                put(&format!("event_recall_{kind}"), *c as f64 / *n as f64);
            }
        }
        m
    }
}

/// The threshold with the best window F1 on (`scores`, `labels`); 0.5 without positives.
pub fn max_f1_threshold(scores: &[f64], labels: &[bool]) -> f64 {
    best_f1(scores, labels).map_or(0.5, |p| p.threshold)
}

/// Evaluates the windows `idx` of `ds` (positive and negative windows of one split, in
/// dataset order) with probabilities `probs` (same order) at `threshold`. `series` is the
/// input the dataset was built from (for failure times).
pub fn evaluate(
    ds: &Dataset,
    series: &[AgentSeries],
    idx: &[usize],
    probs: &[f32],
    threshold: f64,
) -> SplitMetrics {
    let scores: Vec<f64> = probs.iter().map(|&p| p as f64).collect();
    let labels: Vec<bool> = idx.iter().map(|&i| ds.y[i] > 0.5).collect();
    let prf = prf_at(&scores, &labels, threshold);
    let mut m = SplitMetrics {
        windows: idx.len(),
        positive_windows: labels.iter().filter(|&&l| l).count(),
        pr_auc: average_precision(&scores, &labels),
        roc_auc: roc_auc(&scores, &labels),
        threshold,
        precision: prf.precision,
        recall: prf.recall,
        f1: prf.f1,
        ..SplitMetrics::default()
    };
    // Per agent: (end time, probability, label) in time order.
    let mut per_agent: BTreeMap<u32, Vec<(medic_core::Timestamp, f64, WindowLabel)>> =
        BTreeMap::new();
    for (k, &i) in idx.iter().enumerate() {
        let info = &ds.info[i];
        per_agent
            .entry(info.agent)
            .or_default()
            .push((info.end, scores[k], info.label));
    }
    let horizon = ds.horizon;
    for (agent, rows) in &mut per_agent {
        rows.sort_by_key(|r| r.0);
        let (first, last) = (rows[0].0, rows[rows.len() - 1].0);
        m.agent_days += (last.since(first) + ds.step).as_secs_f64() / 86_400.0;
        let mut prev_alarm = false;
        for &(_, p, label) in rows.iter() {
            let alarm = p >= threshold;
            if alarm && !prev_alarm && label == WindowLabel::Negative {
                m.false_alarms += 1;
            }
            prev_alarm = alarm;
        }
        let Some(s) = series.get(*agent as usize) else {
            continue;
        };
        for f in &s.failures {
            if !f.predictable {
                if f.at > first && f.at <= last + horizon {
                    m.sudden_failures += 1;
                }
                continue;
            }
            let before: Vec<_> = rows
                .iter()
                .filter(|r| r.0 < f.at && r.0 + horizon >= f.at)
                .collect();
            if before.is_empty() {
                continue;
            }
            m.failures += 1;
            let e = m.by_kind.entry(f.kind.clone()).or_default();
            e.0 += 1;
            if let Some(r) = before.iter().find(|r| r.1 >= threshold) {
                m.caught += 1;
                e.1 += 1;
                m.lead_times_s.push(f.at.since(r.0).as_secs_f64());
            }
        }
    }
    m.lead_times_s.sort_by(f64::total_cmp);
    m
}
