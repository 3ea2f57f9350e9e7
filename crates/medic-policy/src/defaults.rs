//! The built-in policy: what every key is when no file says otherwise.
//!
//! `policies/tiers.yaml`'s `default` tier is applied on top of this, and every named tier on
//! top of that. The values follow the original design and, for backoff, crash loops, probes
//! and scaling, Kubernetes' defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use medic_core::{AnomalyKind, DiagnosisCategory, HealthState, ProbeLevel, Risk, Strategy};

use crate::model::{Backoff, Condition, CrashLoop, Rule, Scaling, TierPolicy};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl TierPolicy {
    /// The documented defaults, named `default`, with [`default_rules`].
    ///
    /// | key | default |
    /// |---|---|
    /// | max_restart_attempts | 3 |
    /// | restart_cooldown | 300s |
    /// | attempt_window | 1h |
    /// | scale_threshold | 0.8 |
    /// | circuit_break_duration | 60s |
    /// | preemptive_scaling | false |
    /// | backup_instances | 0 |
    /// | aggressive_recycling | false |
    /// | memory_limit_buffer | 0.1 |
    /// | backoff | 10s doubling to 300s, reset after 10 min healthy |
    /// | crash_loop | 4 crashes in 15 min |
    /// | max_concurrent | none (only the global budget) |
    /// | max_group_unavailable | 0.1 |
    /// | auto_approve_risk | medium |
    /// | confidence_threshold | 0.85 |
    /// | approval_timeout | 15m |
    /// | verify_deadline | 30s |
    /// | scaling | tolerance 0.1, scale_down_stabilization 300s |
    pub fn builtin_default() -> TierPolicy {
        TierPolicy {
            name: "default".to_owned(),
            agents: Vec::new(),
            labels: BTreeMap::new(),
            max_restart_attempts: 3,
            restart_cooldown: secs(300),
            attempt_window: secs(3600),
            scale_threshold: 0.8,
            circuit_break_duration: secs(60),
            preemptive_scaling: false,
            backup_instances: 0,
            aggressive_recycling: false,
            memory_limit_buffer: 0.1,
            backoff: Backoff {
                initial: secs(10),
                max: secs(300),
                multiplier: 2.0,
                reset_after: secs(600),
            },
            crash_loop: CrashLoop {
                restarts: 4,
                window: secs(900),
            },
            max_concurrent: None,
            max_group_unavailable: 0.1,
            auto_approve_risk: Risk::Medium,
            confidence_threshold: 0.85,
            approval_timeout: secs(900),
            verify_deadline: secs(30),
            scaling: Scaling {
                tolerance: 0.1,
                scale_down_stabilization: secs(300),
            },
            rules: default_rules(),
        }
    }
}

/// The rules shipped under `default` in `policies/tiers.yaml` (and used when no file sets
/// `rules`). Specific causes come first so that they rank above the generic restart:
/// a bad deploy is rolled back rather than restarted, a configuration error repaired (or,
/// without a repair action or after a failed repair, escalated: restarting reloads the same
/// configuration).
pub fn default_rules() -> Vec<Rule> {
    // Confidences sit above the default `confidence_threshold` (0.85) for the low-risk
    // process-level remedies, so that they run unattended; repair (which rewrites
    // configuration) sits below it and rollback is high-risk, so both wait for approval.
    let rule = |name: &str, when: Condition, then: Strategy, risk: Option<Risk>| Rule {
        name: name.to_owned(),
        when,
        then,
        confidence: match name {
            "unresponsive" => 0.95,
            "config_error" => 0.8,
            "bad_deploy" => 0.85,
            _ => 0.9,
        },
        risk,
    };
    vec![
        rule(
            "config_error",
            Condition {
                diagnosis: vec![DiagnosisCategory::Configuration],
                ..Condition::default()
            },
            Strategy::Repair,
            None,
        ),
        rule(
            "config_error_unrepaired",
            Condition {
                diagnosis: vec![DiagnosisCategory::Configuration],
                ..Condition::default()
            },
            Strategy::Escalate,
            None,
        ),
        rule(
            "bad_deploy",
            Condition {
                version_changed_within: Some(secs(900)),
                health: vec![HealthState::Unhealthy, HealthState::Degraded],
                ..Condition::default()
            },
            Strategy::Rollback,
            Some(Risk::High),
        ),
        // Reroute only where the instance itself is the problem (down or unresponsive, or
        // leaking, slowing or erring ahead of a failure), not load or upstream trouble.
        rule(
            "lone_bad_instance",
            Condition {
                minority_of_group: Some(true),
                failing: vec![ProbeLevel::Liveness],
                ..Condition::default()
            },
            Strategy::Reroute,
            None,
        ),
        rule(
            "lone_degrading_instance",
            Condition {
                minority_of_group: Some(true),
                anomaly_kind: vec![
                    AnomalyKind::Resource,
                    AnomalyKind::Latency,
                    AnomalyKind::Errors,
                ],
                ..Condition::default()
            },
            Strategy::Reroute,
            None,
        ),
        rule(
            "unresponsive",
            Condition {
                failing: vec![ProbeLevel::Liveness],
                ..Condition::default()
            },
            Strategy::Restart,
            None,
        ),
        rule(
            "leak",
            Condition {
                anomaly_kind: vec![AnomalyKind::Resource],
                ..Condition::default()
            },
            Strategy::Restart,
            None,
        ),
        rule(
            "error_burst",
            Condition {
                error_rate_above: Some(0.2),
                ..Condition::default()
            },
            Strategy::CircuitBreak,
            None,
        ),
        rule(
            "saturated",
            Condition {
                utilization_above_scale_threshold: true,
                ..Condition::default()
            },
            Strategy::Scale,
            None,
        ),
    ]
}
