//! Ranking recovery options for one finding.

use std::fmt::Write as _;
use std::time::Duration;

use medic_core::{
    AnomalyKind, DiagnosisCategory, Finding, HealthState, Plan, PlanOption, ProbeLevel, Risk,
    Strategy, Timestamp,
};
use medic_policy::{Condition, TierPolicy};
use serde::{Deserialize, Serialize};

use crate::learn::{IncidentSignature, posterior};
use crate::{AttemptHistory, AttemptResult};

/// A failure this soon after a version change is blamed on the change (→ rollback).
pub const ROLLBACK_WINDOW: Duration = Duration::from_secs(30 * 60);

/// An error rate at or above this trips the circuit breaker.
pub const HIGH_ERROR_RATE: f64 = 0.5;

/// Without `aggressive_recycling`, a leaking target is recycled at this fraction of its limit.
pub const RECYCLE_AT_DEFAULT: f64 = 0.95;

/// A learned posterior below this, after at least [`SINK_MIN_ATTEMPTS`] verified attempts,
/// ranks the option after every option that is not sunk, whatever its source.
pub const SINK_BELOW: f64 = 0.5;

/// Verified attempts needed before learning may sink an option.
pub const SINK_MIN_ATTEMPTS: u32 = 3;

/// Verified attempts on a signature before learning touches an option's confidence at all.
/// One failure would otherwise move a 0.9 option to 0.72, under the usual auto-approve
/// threshold (0.85): in `medic demo`, one crash-looping agent's failed restart made the next
/// hang in its tier wait for a human approval that never came.
pub const LEARN_MIN_ATTEMPTS: u32 = 3;

/// The risk of a strategy when a rule does not say: what it can break if it is wrong.
pub const fn default_risk(strategy: Strategy) -> Risk {
    match strategy {
        Strategy::CircuitBreak | Strategy::Reroute | Strategy::Escalate | Strategy::Observe => {
            Risk::Low
        }
        Strategy::Restart | Strategy::Reset | Strategy::Recreate | Strategy::Scale => Risk::Medium,
        Strategy::Rollback | Strategy::Repair => Risk::High,
    }
}

/// Observed success of one strategy on one failure signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedRate {
    /// Verified successes.
    pub successes: u32,
    /// Attempts with a verified outcome.
    pub attempts: u32,
}

/// The learning hook: per-signature success rates that re-rank options.
///
/// Implemented by medic's one learner, [`crate::Learner`] (and its shared handle
/// [`crate::SharedLearner`]), and by [`NoLearning`].
pub trait SuccessRates {
    /// What was observed for `strategy` on incidents like `signature` (including the
    /// strategies that had already failed, [`IncidentSignature::after_failed`]); `None` when
    /// nothing is known.
    fn rate(&self, signature: &IncidentSignature, strategy: Strategy) -> Option<LearnedRate>;
}

/// Knows nothing: plans rank by their base confidence.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLearning;

impl SuccessRates for NoLearning {
    fn rate(&self, _: &IncidentSignature, _: Strategy) -> Option<LearnedRate> {
        None
    }
}

/// The strategies that failed in the target's current incident, in [`Strategy::ALL`] order:
/// failed since its last success (or since the incident started, [`AttemptHistory`]) within
/// the tier's `attempt_window` before `now` — what the escalation ladder climbs on. Learning
/// keys an act's outcome by them ([`IncidentSignature::after_failed`]); whoever feeds the
/// learner computes them with this function from the same history, before the act is
/// recorded.
pub fn failed_in_incident(
    history: &AttemptHistory,
    policy: &TierPolicy,
    now: Timestamp,
) -> Vec<Strategy> {
    let since = now - policy.attempt_window;
    Strategy::ALL
        .into_iter()
        .filter(|s| history.failed_since_success(*s, since).is_some())
        .collect()
}

/// Why an option may not run automatically.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Approval {
    /// Its risk is above the tier's `auto_approve_risk`.
    Risk {
        /// The option's risk.
        risk: Risk,
        /// The tier's limit.
        limit: Risk,
    },
    /// Its confidence is below the tier's `confidence_threshold`.
    Confidence {
        /// The option's confidence.
        confidence: f64,
        /// The tier's threshold.
        threshold: f64,
    },
}

/// Whether `option` needs a human's approval under `policy`; `None` means it runs
/// automatically. Escalate and observe never need approval: they change nothing.
pub fn needs_approval(option: &PlanOption, policy: &TierPolicy) -> Option<Approval> {
    if matches!(option.strategy, Strategy::Escalate | Strategy::Observe) {
        return None;
    }
    if option.risk > policy.auto_approve_risk {
        return Some(Approval::Risk {
            risk: option.risk,
            limit: policy.auto_approve_risk,
        });
    }
    if option.confidence < policy.confidence_threshold {
        return Some(Approval::Confidence {
            confidence: option.confidence,
            threshold: policy.confidence_threshold,
        });
    }
    None
}

/// Whether the target is the odd one out of a group that is otherwise healthy: at least two
/// members, the target not healthy, and fewer than half of the group unhealthy.
pub fn is_minority_of_group(finding: &Finding) -> bool {
    match finding.group_health {
        Some((healthy, total)) if total >= 2 && healthy <= total => {
            finding.health != HealthState::Healthy && (total - healthy) * 2 < total
        }
        _ => false,
    }
}

/// What in `finding` blames something every member of the target's group shares rather than
/// the instance itself, if anything: a configuration, network or service-dependency
/// diagnosis, the dependencies level failing, a version change within [`ROLLBACK_WINDOW`],
/// or utilisation above the tier's `scale_threshold` (load). Ejecting the instance does not
/// help then: its replacement gets the same configuration, version, upstreams and load.
pub fn shared_cause(
    finding: &Finding,
    policy: &TierPolicy,
    now: Timestamp,
) -> Option<&'static str> {
    if let Some(d) = &finding.diagnosis {
        match d.category {
            DiagnosisCategory::Configuration => return Some("a configuration diagnosis"),
            DiagnosisCategory::Network => return Some("a network diagnosis"),
            DiagnosisCategory::ServiceDependency => return Some("a dependency diagnosis"),
            _ => {}
        }
    }
    if finding.fails(ProbeLevel::Dependencies) {
        return Some("its dependencies failing");
    }
    if finding
        .version_changed_at
        .is_some_and(|at| at <= now && now.since(at) <= ROLLBACK_WINDOW)
    {
        return Some("a recent version change");
    }
    if above(finding.utilization, policy.scale_threshold) {
        return Some("load above the scale threshold");
    }
    None
}

/// Whether rerouting can help: the target is the odd one out of an otherwise healthy group
/// ([`is_minority_of_group`]) and the finding blames nothing the group shares
/// ([`shared_cause`]). This is what the rule condition `minority_of_group: true` means.
pub fn is_lone_bad_instance(finding: &Finding, policy: &TierPolicy, now: Timestamp) -> bool {
    is_minority_of_group(finding) && shared_cause(finding, policy, now).is_none()
}

/// Whether the finding shows a problem of the instance itself, which taking it out of traffic
/// ends: liveness failing (down or hung), a crash, timeout or resource-exhaustion diagnosis,
/// or a leak, latency or error anomaly (ahead of a failure). The built-in reroute needs one;
/// the shipped rules say the same in data (`failing: [liveness]`, `anomaly_kind`).
fn has_own_symptom(finding: &Finding) -> bool {
    finding.fails(ProbeLevel::Liveness)
        || finding.diagnosis.as_ref().is_some_and(|d| {
            matches!(
                d.category,
                DiagnosisCategory::Crash
                    | DiagnosisCategory::Timeout
                    | DiagnosisCategory::ResourceExhaustion
            )
        })
        || finding.anomaly.as_ref().is_some_and(|a| {
            a.anomalous
                && matches!(
                    a.kind,
                    AnomalyKind::Resource | AnomalyKind::Latency | AnomalyKind::Errors
                )
        })
}

fn above(value: Option<f64>, limit: f64) -> bool {
    value.is_some_and(|v| v > limit)
}

/// Whether every present condition of a policy rule holds for `finding` at `now`.
pub fn rule_matches(
    when: &Condition,
    finding: &Finding,
    policy: &TierPolicy,
    now: Timestamp,
) -> bool {
    let alarm = finding.prediction.as_ref().is_some_and(|p| p.alarm);
    (when.health.is_empty() || when.health.contains(&finding.health))
        && when.failing.iter().all(|l| finding.fails(*l))
        && when
            .utilization_above
            .is_none_or(|l| above(finding.utilization, l))
        && (!when.utilization_above_scale_threshold
            || above(finding.utilization, policy.scale_threshold))
        && when
            .memory_ratio_above
            .is_none_or(|l| above(finding.memory_ratio, l))
        && when
            .error_rate_above
            .is_none_or(|l| above(finding.error_rate, l))
        && (when.anomaly_kind.is_empty()
            || finding
                .anomaly
                .as_ref()
                .is_some_and(|a| a.anomalous && when.anomaly_kind.contains(&a.kind)))
        && (when.diagnosis.is_empty()
            || finding
                .diagnosis
                .as_ref()
                .is_some_and(|d| when.diagnosis.contains(&d.category)))
        && when.predicted_failure.is_none_or(|p| p == alarm)
        && when.version_changed_within.is_none_or(|d| {
            finding
                .version_changed_at
                .is_some_and(|at| at <= now && now.since(at) <= d)
        })
        && when
            .minority_of_group
            .is_none_or(|m| m == is_lone_bad_instance(finding, policy, now))
}

struct Candidate {
    strategy: Strategy,
    confidence: f64,
    risk: Risk,
    /// 0 for policy rules (they rank first, in policy order), 1 for built-ins.
    source: u8,
    /// Failed in the current incident: ranks after the candidates of its source that did not.
    demoted: bool,
    reason: String,
    preconditions: Vec<String>,
}

fn candidate(strategy: Strategy, confidence: f64, source: u8, reason: String) -> Candidate {
    Candidate {
        strategy,
        confidence,
        risk: default_risk(strategy),
        source,
        demoted: false,
        reason,
        preconditions: Vec::new(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// [`select_with`] without learned rates.
pub fn select(
    finding: &Finding,
    policy: &TierPolicy,
    history: &AttemptHistory,
    now: Timestamp,
) -> Plan {
    select_with(finding, policy, history, now, &NoLearning)
}

/// Ranks what to do about `finding` for a target under `policy`, given what was tried.
///
/// Candidates come from, in this order:
/// 1. the policy's `rules` whose conditions all hold ([`rule_matches`]), in policy order;
/// 2. the built-in rules:
///    - configuration diagnosis → **repair**;
///    - unhealthy within [`ROLLBACK_WINDOW`] of a version change → **rollback**;
///    - one bad instance of an otherwise healthy group, with nothing blamed that the group
///      shares ([`is_lone_bad_instance`]) and a problem of its own (liveness failing; a crash,
///      timeout or resource-exhaustion diagnosis; a leak, latency or error anomaly) →
///      **reroute**;
///    - error rate ≥ [`HIGH_ERROR_RATE`] → **circuit-break** for `circuit_break_duration`;
///    - utilisation above `scale_threshold` → **scale** (up); below
///      `scale_threshold × (1 − tolerance)` on a target that is not down → **scale** (down,
///      subject to the HPA's stabilisation window in the engine);
///    - failure predicted and the tier has `preemptive_scaling` → **scale** before the failure;
///      any other predicted failure → the predictor's recommended strategy, preemptively;
///    - memory at or above the recycle point (`1 − memory_limit_buffer` with
///      `aggressive_recycling`, else [`RECYCLE_AT_DEFAULT`]) → **restart** early;
///    - liveness failing (unresponsive), or a crash diagnosis → **restart**;
///    - only the dependencies level failing, or a service-dependency diagnosis → **observe**
///      (the failure is the dependency's; the engine heals the dependency first).
///
/// Then the **escalation ladder**: a ladder strategy (restart, reset, recreate, rollback) that
/// failed in the current incident (since the last success, within `attempt_window`), or that
/// already used its `max_restart_attempts` within `attempt_window`, is replaced by the next
/// rung, up to escalate. Other strategies that used up their attempts are dropped; ones that
/// failed in this incident keep half their confidence and rank after the untried options of
/// their source. Duplicates keep their best-ranked copy.
///
/// Ranking: policy rules first, in policy order (their confidence does not reorder them, so
/// a specific cause such as a configuration diagnosis → repair comes before the generic
/// restart); then the built-ins by confidence. **Learning**: when `learned` knows the
/// strategy for this finding's signature on this tier — together with the strategies that
/// already failed in this incident ([`failed_in_incident`],
/// [`IncidentSignature::after_failed`]) — from at least [`LEARN_MIN_ATTEMPTS`]
/// verified attempts, the option's confidence becomes the
/// Beta posterior `(c·4 + successes) / (4 + attempts)` ([`crate::learn`]) — for an option
/// whose risk is above the tier's `auto_approve_risk` only ever lowered, never raised, so
/// learning never lets a risky option run without approval — and an option whose posterior
/// is below [`SINK_BELOW`] after at least [`SINK_MIN_ATTEMPTS`] attempts is *sunk*: it ranks
/// after every option that is not, policy rules included. Learning does not by itself make
/// an automatic option wait for approval: one that would run on its own (confidence at or
/// above the tier's `confidence_threshold`, risk within `auto_approve_risk`), that learning
/// lowered under the threshold without sinking it — it works more often than not — keeps the
/// threshold while no other option in the plan is rated higher; a human is asked when there
/// is a better-rated choice to make, or when it keeps failing. A sunk *ladder* rung is passed
/// over like one that failed in this incident: its next rung joins right behind it (scored
/// the same way, so it may sink and pass on in turn), up to escalate — when every rung keeps
/// failing on this signature, the plan calls a human instead of trying them again. The
/// reason of every option learning touched says so (`learned: s/n succeeded on this
/// signature[ after x failed], confidence a → b`, `; next rung r`).
/// When options matched but every one used up its attempts, a degraded or unhealthy
/// target's plan is **escalate** (a human is called rather than the failure watched); with no
/// candidate at all, the plan is a single **observe**.
pub fn select_with(
    finding: &Finding,
    policy: &TierPolicy,
    history: &AttemptHistory,
    now: Timestamp,
    learned: &dyn SuccessRates,
) -> Plan {
    let mut cands: Vec<Candidate> = Vec::new();
    for rule in &policy.rules {
        if rule_matches(&rule.when, finding, policy, now) {
            let mut c = candidate(rule.then, rule.confidence, 0, format!("rule {}", rule.name));
            c.risk = rule.risk.unwrap_or(default_risk(rule.then));
            cands.push(c);
        }
    }
    builtin_candidates(finding, policy, now, &mut cands);
    let matched = cands.len();
    apply_history(policy, history, now, &mut cands);
    if matched > 0
        && cands.is_empty()
        && matches!(
            finding.health,
            HealthState::Degraded | HealthState::Unhealthy
        )
    {
        // Every option that matches used up its attempts: watching would leave a failing
        // target alone, with nobody told, until an attempt leaves the window.
        cands.push(candidate(
            Strategy::Escalate,
            0.9,
            1,
            format!(
                "every matching option used its {} attempts within {}s",
                policy.max_restart_attempts,
                policy.attempt_window.as_secs()
            ),
        ));
    }

    // Learned re-ranking (see the function documentation). The signature is built once,
    // and only when something may be known.
    let mut signature: Option<IncidentSignature> = None;
    let mut scored: Vec<(f64, bool, usize, Candidate)> = Vec::with_capacity(cands.len());
    for mut c in cands {
        loop {
            let sig = signature.get_or_insert_with(|| {
                IncidentSignature::of(finding, &policy.name)
                    .after(&failed_in_incident(history, policy, now))
            });
            let (score, sunk) = learned_score(&mut c, sig, policy, learned);
            // A ladder rung that keeps failing on this signature is passed over like one that
            // failed in this incident: its next rung joins right behind it (and is scored in
            // turn), up to escalate. The sunk rung stays in the plan, ranked last.
            let next = if sunk && Strategy::LADDER.contains(&c.strategy) {
                c.strategy.next_rung().map(|next| Candidate {
                    strategy: next,
                    confidence: c.confidence,
                    risk: c.risk.max(default_risk(next)),
                    source: c.source,
                    demoted: c.demoted,
                    reason: format!("{}; next rung {next}", c.reason),
                    preconditions: Vec::new(),
                })
            } else {
                None
            };
            let i = scored.len();
            scored.push((score, sunk, i, c));
            match next {
                Some(n) => c = n,
                None => break,
            }
        }
    }
    // Learning alone does not stop the plan for a human: an option that would run on its own
    // and that learning found to work more often than not (not sunk) stays at the tier's
    // confidence threshold when no other option is rated higher (see the function docs).
    for j in 0..scored.len() {
        let (score, sunk, _, c) = &scored[j];
        let lowered_under = c.confidence >= policy.confidence_threshold
            && *score < policy.confidence_threshold
            && c.risk <= policy.auto_approve_risk
            && !sunk;
        let rated_higher = scored
            .iter()
            .enumerate()
            .any(|(k, o)| k != j && !o.1 && o.0 > *score);
        if lowered_under && !rated_higher {
            let t = policy.confidence_threshold;
            let c = &mut scored[j].3;
            let _ = write!(
                c.reason,
                ", kept at the tier's threshold {t:.2}: it works more often than not and no \
                 option is rated higher"
            );
            scored[j].0 = t;
        }
    }
    // Sunk options last; then policy rules in the order the policy gives them (specific
    // causes before the generic restart); only built-ins are ranked by (learned) confidence.
    scored.sort_by(|a, b| {
        let by_score = if a.3.source == 0 && b.3.source == 0 {
            std::cmp::Ordering::Equal
        } else {
            b.0.total_cmp(&a.0)
        };
        a.1.cmp(&b.1)
            .then(a.3.source.cmp(&b.3.source))
            .then(a.3.demoted.cmp(&b.3.demoted))
            .then(by_score)
            .then(a.2.cmp(&b.2))
    });

    let mut options: Vec<PlanOption> = Vec::with_capacity(scored.len().max(1));
    for (s, _, _, c) in scored {
        if options.iter().any(|o| o.strategy == c.strategy) {
            continue;
        }
        let mut o = PlanOption {
            strategy: c.strategy,
            confidence: s.clamp(0.0, 1.0),
            risk: c.risk,
            preconditions: c.preconditions,
            reason: c.reason,
            replicas: None,
        };
        match needs_approval(&o, policy) {
            Some(Approval::Risk { risk, limit }) => o.preconditions.push(format!(
                "approval: risk {risk} above the tier's auto-approve {limit}"
            )),
            Some(Approval::Confidence {
                confidence,
                threshold,
            }) => o.preconditions.push(format!(
                "approval: confidence {confidence:.2} below the tier's threshold {threshold:.2}"
            )),
            None => {}
        }
        options.push(o);
    }
    if options.is_empty() {
        options.push(PlanOption {
            strategy: Strategy::Observe,
            confidence: 1.0,
            risk: Risk::Low,
            preconditions: Vec::new(),
            reason: format!("no rule matches a {} target; watching", finding.health),
            replicas: None,
        });
    }
    Plan {
        target: finding.target.clone(),
        options,
    }
}

/// The option's confidence after learning, and whether learning sank it (see
/// [`select_with`]); says so in its reason.
fn learned_score(
    c: &mut Candidate,
    signature: &IncidentSignature,
    policy: &TierPolicy,
    learned: &dyn SuccessRates,
) -> (f64, bool) {
    let Some(r) = learned
        .rate(signature, c.strategy)
        .filter(|r| r.attempts >= LEARN_MIN_ATTEMPTS)
    else {
        return (c.confidence, false);
    };
    let post = posterior(c.confidence, r);
    let before = c.confidence;
    let _ = write!(
        c.reason,
        "; learned: {}/{} succeeded on this signature",
        r.successes, r.attempts
    );
    if !signature.after_failed.is_empty() {
        let names: Vec<&str> = signature.after_failed.iter().map(|s| s.as_str()).collect();
        let _ = write!(c.reason, " after {} failed", names.join(", "));
    }
    let score = if c.risk > policy.auto_approve_risk {
        // Never lifted above what the tier allows without a human: only lowered.
        let score = post.min(before);
        let _ = write!(
            c.reason,
            ", confidence {before:.2} → {score:.2} (risk {} above auto-approve {}: not raised)",
            c.risk, policy.auto_approve_risk
        );
        score
    } else {
        let _ = write!(c.reason, ", confidence {before:.2} → {post:.2}");
        post
    };
    let sunk = post < SINK_BELOW && r.attempts >= SINK_MIN_ATTEMPTS;
    if sunk {
        c.reason
            .push_str(": keeps failing, ranked after the others");
    }
    (score, sunk)
}

fn builtin_candidates(
    finding: &Finding,
    policy: &TierPolicy,
    now: Timestamp,
    out: &mut Vec<Candidate>,
) {
    let unhealthy = finding.health == HealthState::Unhealthy;
    let not_healthy = matches!(
        finding.health,
        HealthState::Unhealthy | HealthState::Degraded
    );
    let mut specific = false;

    if let Some(d) = finding
        .diagnosis
        .as_ref()
        .filter(|d| d.category == DiagnosisCategory::Configuration)
    {
        specific = true;
        let mut c = candidate(
            Strategy::Repair,
            0.5 + 0.4 * d.confidence.clamp(0.0, 1.0),
            1,
            format!(
                "configuration diagnosis ({}, confidence {:.2})",
                d.pattern_id.as_deref().unwrap_or("no pattern"),
                d.confidence
            ),
        );
        c.preconditions
            .push("a repair action is configured".to_owned());
        out.push(c);
    }
    if let Some(at) = finding.version_changed_at
        && not_healthy
        && at <= now
        && now.since(at) <= ROLLBACK_WINDOW
    {
        specific = true;
        let mut c = candidate(
            Strategy::Rollback,
            0.85,
            1,
            format!(
                "{} {}s after a version change",
                finding.health,
                now.since(at).as_secs()
            ),
        );
        c.preconditions.push("a previous version exists".to_owned());
        out.push(c);
    }
    if is_lone_bad_instance(finding, policy, now) && has_own_symptom(finding) {
        let (healthy, total) = finding.group_health.unwrap_or((0, 0));
        out.push(candidate(
            Strategy::Reroute,
            0.7,
            1,
            format!("one bad instance in a healthy group ({healthy}/{total} healthy)"),
        ));
    }
    if let Some(rate) = finding.error_rate.filter(|r| *r >= HIGH_ERROR_RATE) {
        let mut c = candidate(
            Strategy::CircuitBreak,
            0.65,
            1,
            format!(
                "error rate {} ≥ {}: stop sending work for {}s",
                pct(rate),
                pct(HIGH_ERROR_RATE),
                policy.circuit_break_duration.as_secs()
            ),
        );
        c.preconditions
            .push("half-open probe decides after the open period".to_owned());
        out.push(c);
    }
    if let Some(u) = finding.utilization.filter(|u| *u > policy.scale_threshold) {
        let mut c = candidate(
            Strategy::Scale,
            0.75,
            1,
            format!(
                "utilisation {} above scale threshold {}",
                pct(u),
                pct(policy.scale_threshold)
            ),
        );
        c.preconditions.push("replicas below max".to_owned());
        out.push(c);
    }
    let low = policy.scale_threshold * (1.0 - policy.scaling.tolerance);
    if let Some(u) = finding.utilization.filter(|u| *u < low)
        && finding.health != HealthState::Unhealthy
    {
        let mut c = candidate(
            Strategy::Scale,
            0.7,
            1,
            format!(
                "utilisation {} below scale threshold {}: scale down",
                pct(u),
                pct(policy.scale_threshold)
            ),
        );
        c.preconditions.push(format!(
            "replicas above min; no higher recommendation within {}s",
            policy.scaling.scale_down_stabilization.as_secs()
        ));
        out.push(c);
    }
    if let Some(p) = finding.prediction.as_ref().filter(|p| p.alarm) {
        if policy.preemptive_scaling {
            let mut c = candidate(
                Strategy::Scale,
                (p.probability * 0.9).clamp(0.0, 1.0),
                1,
                format!(
                    "preemptive: failure predicted within {}s (p={:.2})",
                    p.horizon_s, p.probability
                ),
            );
            c.preconditions.push("replicas below max".to_owned());
            out.push(c);
        }
        if !matches!(p.recommended, Strategy::Scale | Strategy::Observe) {
            out.push(candidate(
                p.recommended,
                (p.probability * 0.7).clamp(0.0, 1.0),
                1,
                format!(
                    "preemptive: predictor recommends {} (p={:.2} within {}s)",
                    p.recommended, p.probability, p.horizon_s
                ),
            ));
        }
    }
    let recycle_at = if policy.aggressive_recycling {
        1.0 - policy.memory_limit_buffer
    } else {
        RECYCLE_AT_DEFAULT
    };
    let leaking = finding
        .anomaly
        .as_ref()
        .is_some_and(|a| a.anomalous && a.kind == AnomalyKind::Resource);
    if let Some(m) = finding.memory_ratio.filter(|m| *m >= recycle_at) {
        out.push(candidate(
            Strategy::Restart,
            if leaking { 0.85 } else { 0.75 },
            1,
            format!(
                "memory at {} of the limit ≥ recycle point {}{}",
                pct(m),
                pct(recycle_at),
                if leaking { " (leak pattern)" } else { "" }
            ),
        ));
    }
    let crash = finding
        .diagnosis
        .as_ref()
        .is_some_and(|d| d.category == DiagnosisCategory::Crash);
    if unhealthy || finding.fails(ProbeLevel::Liveness) || (crash && not_healthy) {
        out.push(candidate(
            Strategy::Restart,
            if specific { 0.5 } else { 0.8 },
            1,
            if crash {
                "crashed: restart".to_owned()
            } else {
                "unresponsive: liveness failing".to_owned()
            },
        ));
    }
    let dependency_only = finding.fails(ProbeLevel::Dependencies)
        && !finding.fails(ProbeLevel::Liveness)
        && !finding.fails(ProbeLevel::Readiness);
    let dependency_diag = finding
        .diagnosis
        .as_ref()
        .is_some_and(|d| d.category == DiagnosisCategory::ServiceDependency);
    if (dependency_only || dependency_diag) && out.is_empty() {
        out.push(candidate(
            Strategy::Observe,
            0.9,
            1,
            "the failure is a dependency's: heal the dependency first".to_owned(),
        ));
    }
}

/// Attempts of `strategy` decided at or after `since` that were carried out: attempts
/// closed [`Skipped`](crate::AttemptResult::Skipped) (a dry run's planned acts) did not
/// happen and do not count against `max_restart_attempts` (they still hold the strategy's
/// cooldown in the engine).
pub fn executed_since(history: &AttemptHistory, strategy: Strategy, since: Timestamp) -> u32 {
    let n = history
        .iter()
        .rev()
        .take_while(|a| a.at >= since)
        .filter(|a| a.strategy == strategy && a.result != AttemptResult::Skipped)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn apply_history(
    policy: &TierPolicy,
    history: &AttemptHistory,
    now: Timestamp,
    cands: &mut Vec<Candidate>,
) {
    let since = now - policy.attempt_window;
    let exhausted = |s: Strategy| executed_since(history, s, since) >= policy.max_restart_attempts;
    cands.retain_mut(|c| {
        if Strategy::LADDER.contains(&c.strategy) {
            while c.strategy != Strategy::Escalate {
                let failed = history.failed_since_success(c.strategy, since);
                if failed.is_none() && !exhausted(c.strategy) {
                    break;
                }
                let Some(next) = c.strategy.next_rung() else {
                    break;
                };
                let why = match failed {
                    Some(at) => format!("{} failed at {at}", c.strategy),
                    None => format!(
                        "{} used {} attempts within {}s",
                        c.strategy,
                        policy.max_restart_attempts,
                        policy.attempt_window.as_secs()
                    ),
                };
                let _ = write!(c.reason, "; {why}: next rung {next}");
                c.strategy = next;
                c.risk = c.risk.max(default_risk(next));
            }
            true
        } else if matches!(c.strategy, Strategy::Escalate | Strategy::Observe) {
            true
        } else if exhausted(c.strategy) {
            false
        } else {
            if let Some(at) = history.failed_since_success(c.strategy, since) {
                c.confidence *= 0.5;
                c.demoted = true;
                let _ = write!(c.reason, "; failed at {at}, confidence halved");
            }
            true
        }
    });
}

#[cfg(test)]
pub(crate) use tests::test_policy;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AttemptResult;
    use medic_core::{AnomalyFinding, DiagnosisFinding, LevelSet, PredictionFinding, Severity};
    use medic_policy::{Backoff, CrashLoop, Rule, Scaling};

    fn policy() -> TierPolicy {
        test_policy()
    }

    pub(crate) fn test_policy() -> TierPolicy {
        TierPolicy {
            name: "default".into(),
            agents: vec![],
            labels: Default::default(),
            max_restart_attempts: 3,
            restart_cooldown: Duration::from_secs(300),
            attempt_window: Duration::from_secs(3600),
            scale_threshold: 0.8,
            circuit_break_duration: Duration::from_secs(60),
            preemptive_scaling: false,
            backup_instances: 0,
            aggressive_recycling: false,
            memory_limit_buffer: 0.1,
            backoff: Backoff {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(300),
                multiplier: 2.0,
                reset_after: Duration::from_secs(600),
            },
            crash_loop: CrashLoop {
                restarts: 5,
                window: Duration::from_secs(600),
            },
            max_concurrent: None,
            max_group_unavailable: 0.1,
            auto_approve_risk: Risk::Medium,
            confidence_threshold: 0.6,
            approval_timeout: Duration::from_secs(900),
            verify_deadline: Duration::from_secs(60),
            scaling: Scaling {
                tolerance: 0.1,
                scale_down_stabilization: Duration::from_secs(300),
            },
            rules: vec![],
        }
    }

    const NOW: Timestamp = Timestamp::from_secs(10_000);

    fn unresponsive() -> Finding {
        Finding::from_health(
            "api-1".into(),
            NOW,
            HealthState::Unhealthy,
            [ProbeLevel::Liveness].into_iter().collect(),
        )
    }

    fn degraded() -> Finding {
        Finding::from_health(
            "api-1".into(),
            NOW,
            HealthState::Degraded,
            [ProbeLevel::Performance].into_iter().collect(),
        )
    }

    fn strategies(p: &Plan) -> Vec<Strategy> {
        p.options.iter().map(|o| o.strategy).collect()
    }

    #[test]
    fn unresponsive_restarts() {
        let p = select(&unresponsive(), &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Restart]);
        assert_eq!(p.options[0].reason, "unresponsive: liveness failing");
        assert_eq!(p.options[0].risk, Risk::Medium);
        assert_eq!(needs_approval(&p.options[0], &policy()), None);
    }

    #[test]
    fn utilisation_above_threshold_scales_and_preemptive_tier_scales_on_prediction() {
        let mut f = degraded();
        f.utilization = Some(0.95);
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Scale]);

        let mut f = degraded();
        f.health = HealthState::Healthy;
        f.failing = LevelSet::EMPTY;
        f.severity = Severity::Warning;
        f.prediction = Some(PredictionFinding {
            probability: 0.9,
            alarm: true,
            horizon_s: 600,
            factors: vec![],
            recommended: Strategy::Scale,
        });
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(
            strategies(&p),
            [Strategy::Observe],
            "non-preemptive tier waits"
        );
        let mut critical = policy();
        critical.preemptive_scaling = true;
        let p = select(&f, &critical, &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Scale]);
        assert!(p.options[0].reason.starts_with("preemptive"));
    }

    #[test]
    fn high_error_rate_circuit_breaks() {
        let mut f = degraded();
        f.error_rate = Some(0.6);
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::CircuitBreak]);
        assert_eq!(
            p.options[0].reason,
            "error rate 60% ≥ 50%: stop sending work for 60s"
        );
    }

    #[test]
    fn aggressive_recycling_restarts_early() {
        let mut f = degraded();
        f.memory_ratio = Some(0.85);
        f.anomaly = Some(AnomalyFinding {
            score: 0.9,
            anomalous: true,
            kind: AnomalyKind::Resource,
            top_features: vec![],
            reason: "rss slope".into(),
        });
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Observe], "0.85 < 0.95 default");
        let mut light = policy();
        light.aggressive_recycling = true;
        light.memory_limit_buffer = 0.2;
        let p = select(&f, &light, &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Restart]);
        assert_eq!(
            p.options[0].reason,
            "memory at 85% of the limit ≥ recycle point 80% (leak pattern)"
        );
    }

    #[test]
    fn version_change_rolls_back_and_needs_approval() {
        let mut f = unresponsive();
        f.version_changed_at = Some(NOW - Duration::from_secs(120));
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Rollback, Strategy::Restart]);
        assert_eq!(
            needs_approval(&p.options[0], &policy()),
            Some(Approval::Risk {
                risk: Risk::High,
                limit: Risk::Medium
            })
        );
        assert_eq!(
            needs_approval(&p.options[1], &policy()),
            Some(Approval::Confidence {
                confidence: 0.5,
                threshold: 0.6
            })
        );
        // long after the change, no rollback
        f.version_changed_at = Some(NOW - Duration::from_secs(3600));
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Restart]);
    }

    #[test]
    fn minority_of_group_reroutes_and_config_repairs() {
        let mut f = degraded();
        f.group_health = Some((9, 10));
        assert_eq!(
            strategies(&select(&f, &policy(), &AttemptHistory::new(), NOW)),
            [Strategy::Observe],
            "slow, but nothing of its own that ejecting it would end"
        );
        f.anomaly = Some(AnomalyFinding {
            score: 0.9,
            anomalous: true,
            kind: AnomalyKind::Latency,
            top_features: vec![],
            reason: String::new(),
        });
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Reroute]);
        f.group_health = Some((4, 10));
        assert_eq!(
            strategies(&select(&f, &policy(), &AttemptHistory::new(), NOW)),
            [Strategy::Observe]
        );

        let mut f = unresponsive();
        f.diagnosis = Some(DiagnosisFinding {
            category: DiagnosisCategory::Configuration,
            confidence: 1.0,
            pattern_id: Some("bad-port".into()),
            evidence: vec![],
        });
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Repair, Strategy::Restart]);
        assert_eq!(
            p.options[0].reason,
            "configuration diagnosis (bad-port, confidence 1.00)"
        );
    }

    #[test]
    fn a_failing_target_whose_options_used_their_attempts_is_escalated_not_watched() {
        let mut pol = policy();
        pol.max_restart_attempts = 1;
        let mut saturated = degraded();
        saturated.utilization = Some(1.2);
        let mut h = AttemptHistory::new();
        h.record(Strategy::Scale, NOW - Duration::from_secs(100));
        h.resolve(Strategy::Scale, AttemptResult::Success);
        let p = select(&saturated, &pol, &h, NOW);
        assert_eq!(strategies(&p), [Strategy::Escalate]);
        assert_eq!(
            p.options[0].reason,
            "every matching option used its 1 attempts within 3600s"
        );
        // a healthy target with a forecast is watched, not escalated
        let mut forecast = saturated.clone();
        forecast.health = HealthState::Healthy;
        forecast.failing = LevelSet::EMPTY;
        forecast.prediction = Some(PredictionFinding {
            probability: 0.9,
            alarm: true,
            horizon_s: 600,
            factors: vec![],
            recommended: Strategy::Scale,
        });
        assert_eq!(
            strategies(&select(&forecast, &pol, &h, NOW)),
            [Strategy::Observe]
        );
        // once the attempt leaves the window, scaling again is the plan
        let later = NOW + Duration::from_secs(3600);
        assert_eq!(
            strategies(&select(&saturated, &pol, &h, later)),
            [Strategy::Scale]
        );
    }

    #[test]
    fn repeated_failure_climbs_the_ladder() {
        let pol = policy();
        let mut h = AttemptHistory::new();
        h.record(Strategy::Restart, NOW - Duration::from_secs(100));
        h.resolve(Strategy::Restart, AttemptResult::Failure);
        let p = select(&unresponsive(), &pol, &h, NOW);
        assert_eq!(strategies(&p), [Strategy::Reset]);
        assert_eq!(
            p.options[0].reason,
            "unresponsive: liveness failing; restart failed at t+9900.000s: next rung reset"
        );
        for s in [Strategy::Reset, Strategy::Recreate] {
            h.record(s, NOW - Duration::from_secs(50));
            h.resolve(s, AttemptResult::Failure);
        }
        assert_eq!(
            strategies(&select(&unresponsive(), &pol, &h, NOW)),
            [Strategy::Rollback]
        );
        h.record(Strategy::Rollback, NOW - Duration::from_secs(10));
        h.resolve(Strategy::Rollback, AttemptResult::Failure);
        assert_eq!(
            strategies(&select(&unresponsive(), &pol, &h, NOW)),
            [Strategy::Escalate]
        );
        // a success ends the incident: back to restart
        h.record(Strategy::Restart, NOW - Duration::from_secs(5));
        h.resolve(Strategy::Restart, AttemptResult::Success);
        assert_eq!(
            strategies(&select(&unresponsive(), &pol, &h, NOW)),
            [Strategy::Restart]
        );
    }

    #[test]
    fn used_up_attempts_climb_or_drop() {
        let pol = policy();
        let mut h = AttemptHistory::new();
        for i in 0..3 {
            h.record(Strategy::Restart, NOW - Duration::from_secs(1000 - i));
            h.resolve(Strategy::Restart, AttemptResult::Success);
        }
        assert_eq!(
            strategies(&select(&unresponsive(), &pol, &h, NOW)),
            [Strategy::Reset]
        );
        // outside the window they no longer count
        assert_eq!(
            strategies(&select(
                &unresponsive(),
                &pol,
                &h,
                NOW + Duration::from_secs(3600)
            )),
            [Strategy::Restart]
        );
        let mut f = degraded();
        f.utilization = Some(0.95);
        for i in 0..3 {
            h.record(Strategy::Scale, NOW - Duration::from_secs(500 - i));
        }
        // scale is dropped, and with nothing left the degraded target is escalated
        assert_eq!(strategies(&select(&f, &pol, &h, NOW)), [Strategy::Escalate]);
    }

    #[test]
    fn policy_rules_rank_first_and_are_generic() {
        let mut pol = policy();
        pol.rules.push(Rule {
            name: "disk-full".into(),
            when: Condition {
                diagnosis: vec![DiagnosisCategory::Storage],
                ..Condition::default()
            },
            then: Strategy::Repair,
            confidence: 0.9,
            risk: Some(Risk::Low),
        });
        let mut f = unresponsive();
        f.diagnosis = Some(DiagnosisFinding {
            category: DiagnosisCategory::Storage,
            confidence: 0.8,
            pattern_id: None,
            evidence: vec![],
        });
        let p = select(&f, &pol, &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Repair, Strategy::Restart]);
        assert_eq!(p.options[0].reason, "rule disk-full");
        assert_eq!(p.options[0].risk, Risk::Low);
        assert!(!rule_matches(
            &pol.rules[0].when,
            &unresponsive(),
            &pol,
            NOW
        ));
    }

    #[test]
    fn policy_rules_keep_policy_order_and_a_failed_rule_moves_behind() {
        // As the shipped default tier: a specific cause (config → repair, 0.8) is listed before
        // the generic restart (0.95) and must rank before it despite its lower confidence.
        let rule = |name: &str, when: Condition, then, confidence| Rule {
            name: name.into(),
            when,
            then,
            confidence,
            risk: None,
        };
        let mut pol = policy();
        pol.rules = vec![
            rule(
                "config_error",
                Condition {
                    diagnosis: vec![DiagnosisCategory::Configuration],
                    ..Condition::default()
                },
                Strategy::Repair,
                0.8,
            ),
            rule(
                "lone_bad_instance",
                Condition {
                    minority_of_group: Some(true),
                    ..Condition::default()
                },
                Strategy::Reroute,
                0.9,
            ),
            rule(
                "unresponsive",
                Condition {
                    failing: vec![ProbeLevel::Liveness],
                    ..Condition::default()
                },
                Strategy::Restart,
                0.95,
            ),
        ];
        let mut f = unresponsive();
        f.group_health = Some((3, 4));
        f.diagnosis = Some(DiagnosisFinding {
            category: DiagnosisCategory::Configuration,
            confidence: 0.9,
            pattern_id: None,
            evidence: vec![],
        });
        let p = select(&f, &pol, &AttemptHistory::new(), NOW);
        // a configuration diagnosis blames what the group shares: no reroute
        assert_eq!(strategies(&p), [Strategy::Repair, Strategy::Restart]);
        let mut h = AttemptHistory::new();
        h.record(Strategy::Repair, NOW - Duration::from_secs(120));
        h.resolve(Strategy::Repair, AttemptResult::Failure);
        let p = select(&f, &pol, &h, NOW);
        assert_eq!(
            strategies(&p),
            [Strategy::Restart, Strategy::Repair],
            "the failed repair ranks after the rules not tried yet"
        );
        // a crash diagnosis is the instance's own: reroute, in policy order
        f.diagnosis.as_mut().unwrap().category = DiagnosisCategory::Crash;
        let p = select(&f, &pol, &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Reroute, Strategy::Restart]);
    }

    #[test]
    fn shipped_rules_reroute_only_an_instance_with_a_problem_of_its_own() {
        let pol = TierPolicy::builtin_default();
        let first = |f: &Finding| select(f, &pol, &AttemptHistory::new(), NOW).options[0].strategy;
        let diag = |category| {
            Some(DiagnosisFinding {
                category,
                confidence: 0.8,
                pattern_id: None,
                evidence: vec![],
            })
        };
        // down, in a group of 4 with 3 healthy: reroute
        let mut down = unresponsive();
        down.group_health = Some((3, 4));
        down.diagnosis = diag(DiagnosisCategory::Crash);
        assert_eq!(first(&down), Strategy::Reroute);
        assert_eq!(
            select(&down, &pol, &AttemptHistory::new(), NOW).options[0].reason,
            "rule lone_bad_instance"
        );
        // alone in its group, or one of two down: nobody to take its traffic
        for g in [(0, 1), (1, 2), (2, 4)] {
            let mut f = down.clone();
            f.group_health = Some(g);
            assert_eq!(first(&f), Strategy::Restart, "{g:?}");
        }
        // blamed on what the group shares: configuration, network, dependency, a new version
        for category in [
            DiagnosisCategory::Configuration,
            DiagnosisCategory::Network,
            DiagnosisCategory::ServiceDependency,
        ] {
            let mut f = down.clone();
            f.diagnosis = diag(category);
            assert!(!is_lone_bad_instance(&f, &pol, NOW), "{category:?}");
            assert_ne!(first(&f), Strategy::Reroute, "{category:?}");
        }
        let mut f = down.clone();
        f.version_changed_at = Some(NOW - Duration::from_secs(120));
        assert_eq!(shared_cause(&f, &pol, NOW), Some("a recent version change"));
        assert_eq!(first(&f), Strategy::Rollback);
        // degraded by load or an error burst, without a symptom of its own: not rerouted
        let mut f = degraded();
        f.group_health = Some((3, 4));
        f.utilization = Some(1.4);
        assert_eq!(first(&f), Strategy::Scale);
        let mut f = degraded();
        f.group_health = Some((3, 4));
        f.error_rate = Some(0.5);
        assert_eq!(first(&f), Strategy::CircuitBreak);
        // a leak, creeping latency or rising errors ahead of a failure: reroute early
        for kind in [
            AnomalyKind::Resource,
            AnomalyKind::Latency,
            AnomalyKind::Errors,
        ] {
            let mut f = degraded();
            f.group_health = Some((4, 4));
            f.anomaly = Some(AnomalyFinding {
                score: 0.9,
                anomalous: true,
                kind,
                top_features: vec![],
                reason: String::new(),
            });
            assert_eq!(first(&f), Strategy::Reroute, "{kind:?}");
        }
        // a saturation anomaly is load: scale, not reroute
        let mut f = degraded();
        f.group_health = Some((4, 4));
        f.utilization = Some(1.1);
        f.anomaly = Some(AnomalyFinding {
            score: 0.9,
            anomalous: true,
            kind: AnomalyKind::Saturation,
            top_features: vec![],
            reason: String::new(),
        });
        assert_eq!(first(&f), Strategy::Scale);
    }

    #[test]
    fn learned_rates_rerank_but_never_lift_risky_options() {
        let mut f = unresponsive();
        f.version_changed_at = Some(NOW - Duration::from_secs(60));
        f.utilization = Some(0.9);
        let mut table = crate::Learner::new();
        let sig = crate::IncidentSignature::of(&f, &policy().name);
        for _ in 0..20 {
            table.observe(&sig, Strategy::Scale, true);
            table.observe(&sig, Strategy::Rollback, true);
            table.observe(&sig, Strategy::Restart, false);
        }
        let base = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(
            strategies(&base),
            [Strategy::Rollback, Strategy::Scale, Strategy::Restart]
        );
        let learned = select_with(&f, &policy(), &AttemptHistory::new(), NOW, &table);
        // Restart keeps failing: sunk to the end, and its next rung (reset, nothing learned)
        // joins as if restart had failed in this incident.
        assert_eq!(
            strategies(&learned),
            [
                Strategy::Scale,
                Strategy::Rollback,
                Strategy::Reset,
                Strategy::Restart
            ]
        );
        assert_eq!(
            learned.options[1].confidence, 0.85,
            "high risk keeps its base confidence"
        );
        assert!(learned.options[0].confidence > 0.95);
        assert_eq!(learned.options[2].confidence, 0.5);
        assert!(learned.options[3].confidence < 0.1);
    }

    /// The test policy with one rule: liveness failing → restart at 0.95.
    fn restart_rule_policy() -> TierPolicy {
        let mut pol = policy();
        pol.rules = vec![Rule {
            name: "unresponsive".into(),
            when: Condition {
                failing: vec![ProbeLevel::Liveness],
                ..Condition::default()
            },
            then: Strategy::Restart,
            confidence: 0.95,
            risk: None,
        }];
        pol
    }

    #[test]
    fn fewer_than_three_outcomes_leave_confidence_and_approval_alone() {
        // One or two failures are too little to judge a strategy on a signature: the option
        // keeps its confidence and needs no approval it did not need before.
        let pol = restart_rule_policy();
        let f = unresponsive();
        let sig = crate::IncidentSignature::of(&f, &pol.name);
        let mut l = crate::Learner::new();
        for n in 1..LEARN_MIN_ATTEMPTS {
            l.observe(&sig, Strategy::Restart, false);
            let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
            let restart = &p.options[0];
            assert_eq!(restart.strategy, Strategy::Restart);
            assert_eq!(restart.confidence, 0.95, "after {n} failures");
            assert!(
                needs_approval(restart, &pol).is_none(),
                "after {n} failures"
            );
            assert!(!restart.reason.contains("learned"), "{}", restart.reason);
        }
        l.observe(&sig, Strategy::Restart, false);
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
        assert!((p.options[0].confidence - 3.8 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_rule_that_keeps_failing_sinks_but_risk_limits_hold() {
        // Policy: unresponsive → restart (a rule, so it ranks first without learning); the
        // finding also came right after a version change (built-in rollback, high risk).
        let pol = restart_rule_policy();
        let mut f = unresponsive();
        f.version_changed_at = Some(NOW - Duration::from_secs(60));
        let base = select(&f, &pol, &AttemptHistory::new(), NOW);
        assert_eq!(
            strategies(&base)[..2],
            [Strategy::Restart, Strategy::Rollback]
        );
        let sig = crate::IncidentSignature::of(&f, &pol.name);
        let mut l = crate::Learner::new();
        // Three failures: posterior (4·0.95 + 0) / 7 = 0.543, not sunk yet.
        for _ in 0..3 {
            l.observe(&sig, Strategy::Restart, false);
        }
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
        assert_eq!(strategies(&p)[0], Strategy::Restart);
        assert!((p.options[0].confidence - 3.8 / 7.0).abs() < 1e-9);
        // The fourth: 3.8 / 8 = 0.475 < 0.5, sunk behind rollback.
        l.observe(&sig, Strategy::Restart, false);
        for _ in 0..10 {
            l.observe(&sig, Strategy::Rollback, true);
        }
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
        // Sunk behind everything; the rule's next rung (reset) takes its place in policy
        // order, then the built-in rollback.
        assert_eq!(
            strategies(&p),
            [Strategy::Reset, Strategy::Rollback, Strategy::Restart]
        );
        assert!(p.options[0].reason.contains("next rung reset"));
        let restart = &p.options[2];
        assert!(
            restart
                .reason
                .contains("learned: 0/4 succeeded on this signature, confidence 0.95 → 0.47"),
            "{}",
            restart.reason
        );
        assert!(restart.reason.contains("keeps failing"));
        // Rollback rose by ranking, not by confidence: high risk is never raised and still
        // needs approval.
        let rollback = &p.options[1];
        assert_eq!(rollback.confidence, 0.85);
        assert!(
            rollback.reason.contains("not raised"),
            "{}",
            rollback.reason
        );
        assert!(needs_approval(rollback, &pol).is_some());
        assert!(
            rollback
                .preconditions
                .iter()
                .any(|c| c.starts_with("approval: risk high"))
        );
        // Another tier's signature is a different one: nothing learned there.
        let mut other = pol.clone();
        other.name = "critical".into();
        assert_eq!(
            strategies(&select_with(&f, &other, &AttemptHistory::new(), NOW, &l)),
            strategies(&select(&f, &other, &AttemptHistory::new(), NOW))
        );
    }

    #[test]
    fn failed_in_incident_is_what_the_ladder_climbs_on() {
        let pol = policy();
        let mut h = AttemptHistory::new();
        assert!(failed_in_incident(&h, &pol, NOW).is_empty());
        h.record(Strategy::Reroute, NOW - Duration::from_secs(300));
        h.resolve(Strategy::Reroute, AttemptResult::Failure);
        h.record(Strategy::Restart, NOW - Duration::from_secs(200));
        h.resolve(Strategy::Restart, AttemptResult::Failure);
        assert_eq!(
            failed_in_incident(&h, &pol, NOW),
            [Strategy::Restart, Strategy::Reroute]
        );
        // Outside the attempt window (1 h), they are another incident's.
        assert!(failed_in_incident(&h, &pol, NOW + Duration::from_secs(3600)).is_empty());
        // A success ends the incident.
        h.record(Strategy::Reset, NOW - Duration::from_secs(100));
        h.resolve(Strategy::Reset, AttemptResult::Success);
        assert!(failed_in_incident(&h, &pol, NOW).is_empty());
    }

    #[test]
    fn learning_after_a_failure_does_not_judge_the_first_response() {
        // Restart fails every time it is tried after a reroute failed (the failure was not
        // the instance's), and works as a first response.
        let pol = restart_rule_policy();
        let f = unresponsive();
        let first = crate::IncidentSignature::of(&f, &pol.name);
        let after_reroute = first.clone().after(&[Strategy::Reroute]);
        let mut l = crate::Learner::new();
        for _ in 0..10 {
            l.observe(&after_reroute, Strategy::Restart, false);
            l.observe(&first, Strategy::Restart, true);
        }
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
        assert_eq!(p.options[0].strategy, Strategy::Restart);
        assert!(p.options[0].confidence > 0.95, "{}", p.options[0].reason);
        assert!(needs_approval(&p.options[0], &pol).is_none());
        // In an incident where a reroute already failed, restart sinks and reset comes first.
        let mut h = AttemptHistory::new();
        h.record(Strategy::Reroute, NOW - Duration::from_secs(60));
        h.resolve(Strategy::Reroute, AttemptResult::Failure);
        let p = select_with(&f, &pol, &h, NOW, &l);
        assert_eq!(strategies(&p), [Strategy::Reset, Strategy::Restart]);
        assert!(
            p.options[1]
                .reason
                .contains("learned: 0/10 succeeded on this signature after reroute failed"),
            "{}",
            p.options[1].reason
        );
    }

    #[test]
    fn learning_alone_does_not_make_the_best_option_wait_for_approval() {
        // The shipped threshold: options under 0.85 wait for a human.
        let mut pol = restart_rule_policy();
        pol.confidence_threshold = 0.85;
        let f = unresponsive();
        let sig = crate::IncidentSignature::of(&f, &pol.name);
        let mut l = crate::Learner::new();
        for i in 0..20 {
            l.observe(&sig, Strategy::Restart, i < 13);
        }
        // 13/20: (4·0.95 + 13) / 24 = 0.70, under the threshold but not sunk, and nothing in
        // the plan is rated higher: restart still runs on its own, and says why.
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
        let restart = &p.options[0];
        assert_eq!(restart.strategy, Strategy::Restart);
        assert_eq!(restart.confidence, 0.85);
        assert!(needs_approval(restart, &pol).is_none());
        assert!(
            restart.reason.contains(
                "confidence 0.95 → 0.70, kept at the tier's threshold 0.85: it works more \
                 often than not and no option is rated higher"
            ),
            "{}",
            restart.reason
        );
        // With a better-rated choice in the plan (rollback after a version change), the
        // lowered restart asks a human.
        let mut after_deploy = unresponsive();
        after_deploy.version_changed_at = Some(NOW - Duration::from_secs(60));
        let sig = crate::IncidentSignature::of(&after_deploy, &pol.name);
        let mut l2 = crate::Learner::new();
        for i in 0..20 {
            l2.observe(&sig, Strategy::Restart, i < 13);
        }
        let p = select_with(&after_deploy, &pol, &AttemptHistory::new(), NOW, &l2);
        let restart = p
            .options
            .iter()
            .find(|o| o.strategy == Strategy::Restart)
            .unwrap();
        assert!((restart.confidence - 16.8 / 24.0).abs() < 1e-9);
        assert!(needs_approval(restart, &pol).is_some());
        // One that keeps failing is not held up: it sinks.
        let mut l3 = crate::Learner::new();
        for _ in 0..10 {
            l3.observe(
                &crate::IncidentSignature::of(&f, &pol.name),
                Strategy::Restart,
                false,
            );
        }
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l3);
        assert!(!p.options.iter().any(|o| o.reason.contains("kept at")));
    }

    #[test]
    fn when_every_rung_keeps_failing_the_plan_escalates() {
        // A configuration fault on a target without a repair action: restart, reset,
        // recreate and rollback have each failed on this signature every time.
        let pol = restart_rule_policy();
        let f = unresponsive();
        let sig = crate::IncidentSignature::of(&f, &pol.name);
        let mut l = crate::Learner::new();
        for s in [
            Strategy::Restart,
            Strategy::Reset,
            Strategy::Recreate,
            Strategy::Rollback,
        ] {
            for _ in 0..6 {
                l.observe(&sig, s, false);
            }
        }
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
        assert_eq!(
            strategies(&p),
            [
                Strategy::Escalate,
                Strategy::Restart,
                Strategy::Reset,
                Strategy::Recreate,
                Strategy::Rollback
            ]
        );
        assert!(
            p.options[0].reason.contains("next rung escalate"),
            "{}",
            p.options[0].reason
        );
        // Two failures of recreate are too few to judge: the climb stops there.
        let mut l2 = crate::Learner::new();
        for s in [Strategy::Restart, Strategy::Reset] {
            for _ in 0..6 {
                l2.observe(&sig, s, false);
            }
        }
        l2.observe(&sig, Strategy::Recreate, false);
        l2.observe(&sig, Strategy::Recreate, false);
        let p = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l2);
        assert_eq!(p.options[0].strategy, Strategy::Recreate);
    }

    proptest::proptest! {
        /// Whatever was learned, an option above the tier's auto-approve risk is never given
        /// more confidence than without learning and always still needs approval; every
        /// option's confidence stays in [0, 1].
        #[test]
        fn learning_never_lifts_risky_options(
            counts in proptest::collection::vec((0u32..30, 0u32..30), Strategy::ALL.len())
        ) {
            let mut pol = policy();
            pol.rules = vec![Rule {
                name: "unresponsive".into(),
                when: Condition { failing: vec![ProbeLevel::Liveness], ..Condition::default() },
                then: Strategy::Restart,
                confidence: 0.95,
                risk: None,
            }];
            let mut f = unresponsive();
            f.version_changed_at = Some(NOW - Duration::from_secs(60));
            f.utilization = Some(0.9);
            f.group_health = Some((3, 4));
            f.diagnosis = Some(DiagnosisFinding {
                category: DiagnosisCategory::Configuration,
                confidence: 0.9,
                pattern_id: None,
                evidence: vec![],
            });
            let sig = crate::IncidentSignature::of(&f, &pol.name);
            let mut l = crate::Learner::new();
            for (s, (ok, bad)) in Strategy::ALL.into_iter().zip(&counts) {
                for _ in 0..*ok {
                    l.observe(&sig, s, true);
                }
                for _ in 0..*bad {
                    l.observe(&sig, s, false);
                }
            }
            let base = select(&f, &pol, &AttemptHistory::new(), NOW);
            let learned = select_with(&f, &pol, &AttemptHistory::new(), NOW, &l);
            // Learning drops nothing; it may add the next rung of a ladder rung it sank.
            for b in &base.options {
                proptest::prop_assert!(learned.options.iter().any(|o| o.strategy == b.strategy));
            }
            let top = base.options.iter().map(|o| o.confidence).fold(0.0, f64::max);
            for o in &learned.options {
                proptest::prop_assert!((0.0..=1.0).contains(&o.confidence));
                // Escalate and observe change nothing (never approved), whatever the risk of
                // the rung they replaced.
                let acts = !matches!(o.strategy, Strategy::Escalate | Strategy::Observe);
                if o.risk > pol.auto_approve_risk && acts {
                    // A rung that joined behind a sunk one carries that one's confidence (as
                    // a rung climbed to after a failure does), never more than the best
                    // option had without learning; and it still needs approval.
                    proptest::prop_assert!(o.confidence <= top);
                    proptest::prop_assert!(needs_approval(o, &pol).is_some());
                }
            }
        }
    }

    #[test]
    fn dependency_failure_observes() {
        let f = Finding::from_health(
            "api-1".into(),
            NOW,
            HealthState::Degraded,
            [ProbeLevel::Dependencies].into_iter().collect(),
        );
        let p = select(&f, &policy(), &AttemptHistory::new(), NOW);
        assert_eq!(strategies(&p), [Strategy::Observe]);
        assert_eq!(
            p.options[0].reason,
            "the failure is a dependency's: heal the dependency first"
        );
    }
}
