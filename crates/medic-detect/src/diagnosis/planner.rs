//! The recovery planner: a [`Diagnosis`] (with its context and known fixes) → ranked options.
//!
//! Four kinds of option, each with a confidence and a risk:
//! - retry/restart-class actions suggested by the matched patterns, low risk when the
//!   infrastructure around the target is healthy (dependencies reachable, disks not full,
//!   memory available), medium otherwise;
//! - repairs from the known-fix library ([`super::fixes`]);
//! - a manual fix: the diagnostic commands and steps for the cause, for a human;
//! - escalation with the whole context, always last.
//!
//! An option runs without approval only if its confidence reaches the tier's threshold
//! (default 0.85) and its risk is within the tier's auto-approve risk.

use medic_core::{DiagnosisCategory, PlanOption, Risk, Strategy};
use serde::{Deserialize, Serialize};

use super::analyze::{Cause, DISK_FULL_RATIO, Diagnosis};
use super::context::DiagnosticContext;
use super::fixes::{FixKind, ProposedFix};

/// Default confidence below which options wait for approval.
pub const DEFAULT_CONFIDENCE_THRESHOLD: f64 = 0.85;

/// The tier's limits on automatic execution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoPolicy {
    /// Options below this confidence wait for approval.
    pub confidence_threshold: f64,
    /// Options above this risk wait for approval.
    pub auto_approve_risk: Risk,
}

impl AutoPolicy {
    /// The defaults: confidence 0.85, low risk.
    pub const DEFAULT: AutoPolicy = AutoPolicy {
        confidence_threshold: DEFAULT_CONFIDENCE_THRESHOLD,
        auto_approve_risk: Risk::Low,
    };
}

/// The kind of a recovery option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionKind {
    /// Retry/restart-class action.
    Retry,
    /// A known fix.
    Repair,
    /// Steps for a human.
    Manual,
    /// Hand over with the whole context.
    Escalate,
}

/// Whether an option may run on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reason")]
pub enum Approval {
    /// Runs without asking.
    Auto,
    /// Waits for the approval gate, for this reason.
    NeedsApproval(String),
}

/// One ranked option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryOption {
    /// Its kind.
    pub kind: OptionKind,
    /// The strategy with confidence, risk and reason.
    pub option: PlanOption,
    /// Commands and steps for a human (manual fixes) or what to check.
    pub steps: Vec<String>,
    /// The known fix, for repairs.
    pub fix: Option<ProposedFix>,
    /// Whether it may run on its own.
    pub approval: Approval,
}

/// Options best first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPlan {
    /// Ranked options; escalation is always present and last.
    pub options: Vec<RecoveryOption>,
    /// Whether the infrastructure around the target looked healthy.
    pub infrastructure_healthy: bool,
}

impl RecoveryPlan {
    /// The first option that may run without approval, if any.
    pub fn first_auto(&self) -> Option<&RecoveryOption> {
        self.options
            .iter()
            .find(|o| o.approval == Approval::Auto && o.kind != OptionKind::Escalate)
    }
}

/// How likely a restart-class action is to help, per category: restarts clear crashes and
/// stuck state, not full disks or wrong passwords.
fn restart_fit(category: DiagnosisCategory) -> f64 {
    match category {
        DiagnosisCategory::Crash => 0.9,
        DiagnosisCategory::StateMismatch => 0.7,
        DiagnosisCategory::Timeout => 0.6,
        DiagnosisCategory::ResourceExhaustion => 0.6,
        DiagnosisCategory::Unknown => 0.5,
        DiagnosisCategory::Network => 0.4,
        DiagnosisCategory::Virtualization => 0.3,
        DiagnosisCategory::ServiceDependency => 0.2,
        DiagnosisCategory::Storage => 0.1,
        DiagnosisCategory::Configuration | DiagnosisCategory::Credential => 0.05,
    }
}

/// Whether dependencies answer, disks have room and memory is available. No context means
/// nothing is known to be wrong.
pub fn infrastructure_healthy(ctx: Option<&DiagnosticContext>) -> bool {
    let Some(ctx) = ctx else { return true };
    let deps_ok = ctx.dependencies.iter().all(|d| d.reachable);
    let disks_ok = ctx
        .disks
        .iter()
        .all(|d| d.used_ratio.is_none_or(|r| r <= DISK_FULL_RATIO));
    let mem_ok = match (ctx.system.mem_total_bytes, ctx.system.mem_available_bytes) {
        (Some(total), Some(avail)) if total > 0 => avail as f64 / total as f64 >= 0.05,
        _ => true,
    };
    deps_ok && disks_ok && mem_ok
}

fn base_risk(strategy: Strategy, healthy: bool) -> Risk {
    match strategy {
        Strategy::Restart | Strategy::CircuitBreak | Strategy::Reroute | Strategy::Observe => {
            if healthy {
                Risk::Low
            } else {
                Risk::Medium
            }
        }
        Strategy::Reset | Strategy::Recreate | Strategy::Scale => Risk::Medium,
        Strategy::Rollback | Strategy::Repair => Risk::High,
        Strategy::Escalate => Risk::Low,
    }
}

fn fix_risk(kind: FixKind) -> Risk {
    match kind {
        FixKind::CallGcEndpoint => Risk::Low,
        FixKind::FreeDisk => Risk::Medium,
        // These change configuration values; they are bounded and reverted on a failed
        // verification, but still configuration changes.
        FixKind::RaiseMemoryLimit | FixKind::RaiseTimeout | FixKind::RestoreConfig => Risk::High,
    }
}

fn option(strategy: Strategy, confidence: f64, risk: Risk, reason: String) -> PlanOption {
    PlanOption {
        strategy,
        confidence: confidence.clamp(0.0, 1.0),
        risk,
        preconditions: Vec::new(),
        reason,
        replicas: None,
    }
}

/// Plans recovery options for a diagnosis.
pub fn plan(
    diagnosis: &Diagnosis,
    context: Option<&DiagnosticContext>,
    fixes: &[ProposedFix],
    policy: &AutoPolicy,
) -> RecoveryPlan {
    let healthy = infrastructure_healthy(context);
    let mut options: Vec<RecoveryOption> = Vec::new();
    let unknown = Cause {
        category: DiagnosisCategory::Unknown,
        confidence: 0.0,
        patterns: Vec::new(),
        evidence: Vec::new(),
        n_evidence: 0,
        strategies: Vec::new(),
        commands: Vec::new(),
        descriptions: Vec::new(),
    };
    let top = diagnosis.causes.first().unwrap_or(&unknown);
    let cause_conf = if top.category == DiagnosisCategory::Unknown {
        // Nothing is known: a restart is a coin toss at best.
        0.5
    } else {
        top.confidence
    };
    let infra_note = if healthy {
        "infrastructure healthy"
    } else {
        "infrastructure degraded (dependency down, disk full or memory short)"
    };

    // Repairs from known fixes, for the top cause's category first.
    for fix in fixes {
        let same = fix.category == top.category;
        let cause = diagnosis
            .causes
            .iter()
            .find(|c| c.category == fix.category)
            .map_or(0.0, |c| c.confidence);
        let confidence = cause * if same { 0.95 } else { 0.7 };
        let mut opt = option(
            Strategy::Repair,
            confidence,
            fix_risk(fix.kind),
            format!("{} ({} diagnosis)", fix.reason, fix.category),
        );
        opt.preconditions
            .push(format!("record the old value {:?} for revert", fix.old));
        options.push(RecoveryOption {
            kind: OptionKind::Repair,
            option: opt,
            steps: Vec::new(),
            fix: Some(fix.clone()),
            approval: Approval::Auto,
        });
    }

    // Retry/restart-class actions suggested by the patterns, in their order.
    let mut suggested: Vec<Strategy> = top
        .strategies
        .iter()
        .copied()
        .filter(|s| !matches!(s, Strategy::Repair | Strategy::Escalate))
        .collect();
    if suggested.is_empty() && restart_fit(top.category) >= 0.3 {
        suggested.push(Strategy::Restart);
    }
    for (i, strategy) in suggested.into_iter().enumerate() {
        let mut confidence = cause_conf * restart_fit(top.category) * 0.95f64.powi(i as i32);
        if !healthy {
            confidence *= 0.5;
        }
        options.push(RecoveryOption {
            kind: OptionKind::Retry,
            option: option(
                strategy,
                confidence,
                base_risk(strategy, healthy),
                format!(
                    "{strategy} for a {} diagnosis (confidence {:.2}); {infra_note}",
                    top.category, top.confidence
                ),
            ),
            steps: Vec::new(),
            fix: None,
            approval: Approval::Auto,
        });
    }

    // Manual fix: the diagnostic commands of the cause.
    if !top.commands.is_empty() || !top.descriptions.is_empty() {
        let mut steps: Vec<String> = top.descriptions.iter().map(|d| format!("# {d}")).collect();
        steps.extend(top.commands.iter().cloned());
        options.push(RecoveryOption {
            kind: OptionKind::Manual,
            option: option(
                Strategy::Escalate,
                top.confidence,
                Risk::Low,
                format!(
                    "manual fix for {}: run the diagnostic commands",
                    top.category
                ),
            ),
            steps,
            fix: None,
            approval: Approval::NeedsApproval("a human performs the steps".to_owned()),
        });
    }

    options.sort_by(|a, b| {
        let rank = |o: &RecoveryOption| o.kind == OptionKind::Manual;
        rank(a)
            .cmp(&rank(b))
            .then(b.option.confidence.total_cmp(&a.option.confidence))
            .then(a.option.risk.cmp(&b.option.risk))
    });

    // Escalation's confidence is the chance that no automated option heals the target.
    let best_auto = options
        .iter()
        .filter(|o| o.kind != OptionKind::Manual)
        .map(|o| o.option.confidence)
        .fold(0.0, f64::max);
    options.push(RecoveryOption {
        kind: OptionKind::Escalate,
        option: option(
            Strategy::Escalate,
            1.0 - best_auto,
            Risk::Low,
            format!(
                "escalate with the whole context (top cause {} at {:.2})",
                top.category, top.confidence
            ),
        ),
        steps: Vec::new(),
        fix: None,
        approval: Approval::Auto,
    });

    for o in &mut options {
        if matches!(o.kind, OptionKind::Manual | OptionKind::Escalate) {
            continue;
        }
        o.approval = decide(&o.option, policy);
    }
    RecoveryPlan {
        options,
        infrastructure_healthy: healthy,
    }
}

/// Auto only above the confidence threshold and within the risk level.
pub fn decide(option: &PlanOption, policy: &AutoPolicy) -> Approval {
    if option.confidence < policy.confidence_threshold {
        Approval::NeedsApproval(format!(
            "confidence {:.2} below threshold {:.2}",
            option.confidence, policy.confidence_threshold
        ))
    } else if option.risk > policy.auto_approve_risk {
        Approval::NeedsApproval(format!(
            "risk {} above auto-approve level {}",
            option.risk, policy.auto_approve_risk
        ))
    } else {
        Approval::Auto
    }
}
