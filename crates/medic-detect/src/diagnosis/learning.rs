//! Learning from outcomes: per failure signature and strategy, a Beta-posterior success rate
//! that re-ranks the planner's options.
//!
//! The planner's confidence in an option is taken as the prior mean of a Beta distribution of
//! strength [`PRIOR_STRENGTH`] (pseudo-observations); each finished incident with that
//! signature adds its outcome, so the posterior mean is
//! `(PRIOR_STRENGTH · confidence + successes) / (PRIOR_STRENGTH + attempts)`. A strategy that
//! keeps failing for a signature sinks, one that works rises. Approval is decided again with
//! the tier's policy afterwards, so learning never lifts an option above the risk limit.
//!
//! Pure and deterministic; clustering signatures (issue 5 item 7) is not part of this module:
//! the signature key here is exact ([`Signature::key`]).

use std::collections::BTreeMap;

use medic_core::{DiagnosisCategory, Strategy};
use serde::{Deserialize, Serialize};

use super::planner::{AutoPolicy, OptionKind, RecoveryPlan, decide};

/// Pseudo-observations given to the planner's own confidence.
pub const PRIOR_STRENGTH: f64 = 4.0;

/// What identifies "the same kind of failure".
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signature {
    /// Diagnosis category of the incident.
    pub category: DiagnosisCategory,
    /// Anomaly kind name, if an anomaly was part of it.
    pub anomaly: Option<String>,
    /// Probe levels that failed, sorted.
    pub failing_levels: Vec<String>,
    /// The target's tier.
    pub tier: String,
}

impl Signature {
    /// A stable text key, e.g. `crash|-|liveness,readiness|critical_agents`.
    pub fn key(&self) -> String {
        let mut levels = self.failing_levels.clone();
        levels.sort();
        format!(
            "{}|{}|{}|{}",
            self.category,
            self.anomaly.as_deref().unwrap_or("-"),
            levels.join(","),
            self.tier
        )
    }
}

/// Success and failure counts per (signature key, strategy).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SuccessRates {
    counts: BTreeMap<String, BTreeMap<Strategy, (u32, u32)>>,
}

impl SuccessRates {
    /// Records one finished attempt.
    pub fn observe(&mut self, signature: &str, strategy: Strategy, success: bool) {
        let c = self
            .counts
            .entry(signature.to_owned())
            .or_default()
            .entry(strategy)
            .or_insert((0, 0));
        if success {
            c.0 = c.0.saturating_add(1);
        } else {
            c.1 = c.1.saturating_add(1);
        }
    }

    /// (successes, failures) seen for this signature and strategy.
    pub fn counts(&self, signature: &str, strategy: Strategy) -> (u32, u32) {
        self.counts
            .get(signature)
            .and_then(|m| m.get(&strategy))
            .copied()
            .unwrap_or((0, 0))
    }

    /// Posterior mean success rate with the prior mean `prior`.
    pub fn posterior(&self, signature: &str, strategy: Strategy, prior: f64) -> f64 {
        let (s, f) = self.counts(signature, strategy);
        let n = f64::from(s) + f64::from(f);
        (PRIOR_STRENGTH * prior.clamp(0.0, 1.0) + f64::from(s)) / (PRIOR_STRENGTH + n)
    }
}

/// Re-ranks a plan's automated options (retry and repair) by their posterior success rate for
/// `signature`, says so in each reason, and decides approval again under `policy`. Manual
/// steps and escalation keep their places at the end.
pub fn rerank(plan: &mut RecoveryPlan, signature: &str, rates: &SuccessRates, policy: &AutoPolicy) {
    for o in plan
        .options
        .iter_mut()
        .filter(|o| matches!(o.kind, OptionKind::Retry | OptionKind::Repair))
    {
        let (s, f) = rates.counts(signature, o.option.strategy);
        if s + f == 0 {
            continue;
        }
        let before = o.option.confidence;
        o.option.confidence = rates.posterior(signature, o.option.strategy, before);
        o.option.reason.push_str(&format!(
            "; learned: {s}/{} successes for this signature, confidence {before:.2} → {:.2}",
            s + f,
            o.option.confidence
        ));
        o.approval = decide(&o.option, policy);
    }
    let tail = |o: &super::planner::RecoveryOption| match o.kind {
        OptionKind::Retry | OptionKind::Repair => 0,
        OptionKind::Manual => 1,
        OptionKind::Escalate => 2,
    };
    plan.options.sort_by(|a, b| {
        tail(a)
            .cmp(&tail(b))
            .then(b.option.confidence.total_cmp(&a.option.confidence))
            .then(a.option.risk.cmp(&b.option.risk))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::planner::{Approval, RecoveryOption};
    use medic_core::{PlanOption, Risk};

    fn opt(strategy: Strategy, confidence: f64, risk: Risk) -> RecoveryOption {
        RecoveryOption {
            kind: OptionKind::Retry,
            option: PlanOption {
                strategy,
                confidence,
                risk,
                preconditions: Vec::new(),
                reason: String::new(),
                replicas: None,
            },
            steps: Vec::new(),
            fix: None,
            approval: Approval::Auto,
        }
    }

    #[test]
    fn failing_strategy_sinks_and_working_one_rises_within_risk() {
        let sig = Signature {
            category: DiagnosisCategory::Crash,
            anomaly: None,
            failing_levels: vec!["readiness".into(), "liveness".into()],
            tier: "critical".into(),
        }
        .key();
        assert_eq!(sig, "crash|-|liveness,readiness|critical");
        let mut rates = SuccessRates::default();
        for _ in 0..6 {
            rates.observe(&sig, Strategy::Restart, false);
            rates.observe(&sig, Strategy::Rollback, true);
        }
        let mut plan = RecoveryPlan {
            options: vec![
                opt(Strategy::Restart, 0.9, Risk::Low),
                opt(Strategy::Rollback, 0.6, Risk::High),
            ],
            infrastructure_healthy: true,
        };
        rerank(&mut plan, &sig, &rates, &AutoPolicy::DEFAULT);
        assert_eq!(plan.options[0].option.strategy, Strategy::Rollback);
        assert!(plan.options[0].option.confidence > 0.8);
        assert!(plan.options[0].option.reason.contains("learned: 6/6"));
        // Rollback is high risk: learning never lets it run without approval.
        assert!(matches!(
            plan.options[0].approval,
            Approval::NeedsApproval(_)
        ));
        assert!(plan.options[1].option.confidence < 0.4);
        // Unknown signatures leave the plan as it was.
        let mut other = plan.clone();
        rerank(&mut other, "storage|-|-|x", &rates, &AutoPolicy::DEFAULT);
        assert_eq!(other, plan);
    }

    #[test]
    fn posterior_starts_at_the_prior() {
        let rates = SuccessRates::default();
        assert_eq!(rates.posterior("k", Strategy::Restart, 0.7), 0.7);
    }
}
