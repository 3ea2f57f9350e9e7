//! The validated configuration: what engine, collectors and actuators see.
//!
//! Nothing here is deserialised directly: the `*Config` types in [`crate::config`] are decoded
//! from YAML and turned into these by [`crate::validate`], which checks every value and reports
//! every problem.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use medic_core::{
    AnomalyKind, DiagnosisCategory, HealthState, ProbeLevel, Risk, Strategy, TargetId,
};
use serde::Serialize;

/// A whole validated fleet with its tier policies.
#[derive(Clone, Debug, Serialize)]
pub struct Fleet {
    /// Targets in file order; names are unique.
    pub targets: Vec<Target>,
    /// Tier policies by name; `default` is always present.
    pub tiers: BTreeMap<String, TierPolicy>,
}

impl Fleet {
    /// The target named `name`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name.as_str() == name)
    }

    /// The policy of a target's tier.
    ///
    /// # Panics
    /// Never for a validated fleet: validation guarantees every target's tier exists.
    pub fn policy_of(&self, target: &Target) -> &TierPolicy {
        &self.tiers[&target.tier]
    }
}

/// One target: an agent, worker or service medic looks after.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// Unique name.
    pub name: TargetId,
    /// The tier whose policy applies (resolved from `tier:`, the tier's `agents` list, or label `type`).
    pub tier: String,
    /// Free-form labels; `type` is used for tier matching.
    pub labels: BTreeMap<String, String>,
    /// Replicas that serve the same traffic share a group (for reroute and group budgets).
    pub group: Option<String>,
    /// Active probes, each at one level.
    pub probes: Vec<ProbeSpec>,
    /// Performance limits checked against scraped metrics.
    pub performance: Option<PerformanceLimits>,
    /// Resource limits checked against the target's process in /proc.
    pub resources: Option<ResourceLimits>,
    /// Where to scrape Prometheus metrics.
    pub metrics: Option<MetricsSpec>,
    /// Targets this one needs; healed first, and their failures are not blamed on this one.
    pub depends_on: Vec<TargetId>,
    /// How to carry out each strategy on this target.
    pub actions: BTreeMap<Strategy, ActionSpec>,
    /// Run when healing fails, to degrade gracefully (e.g. switch to read-only).
    pub fallback: Option<ActionSpec>,
    /// When set, medic spawns and owns the process.
    pub supervise: Option<SuperviseSpec>,
    /// How long to wait after an action before verifying (default 5 s).
    pub startup_delay: Duration,
    /// Replica bounds and the current count, for scaling.
    pub replicas: Replicas,
}

/// Replica bounds for scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Replicas {
    /// Replicas at start.
    pub initial: u32,
    /// Never scale below this.
    pub min: u32,
    /// Never scale above this.
    pub max: u32,
}

/// One probe of a target.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeSpec {
    /// The level it decides.
    pub level: ProbeLevel,
    /// What it checks.
    pub check: Check,
    /// How often it runs (default 10 s).
    pub every: Duration,
    /// How long one run may take (default 1 s).
    pub timeout: Duration,
    /// Consecutive failures before the level fails (default 3).
    pub failure_threshold: u32,
    /// Consecutive successes before a failed level passes again (default 1).
    pub success_threshold: u32,
}

/// An active check: used by probes and by action post-conditions.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// An HTTP request.
    Http {
        /// The URL, `http://` or `https://`.
        url: String,
        /// Lowest passing status (default 200).
        status_min: u16,
        /// Highest passing status (default 399).
        status_max: u16,
        /// The body must contain this text.
        body_contains: Option<String>,
        /// Slower answers fail the check.
        max_latency: Option<Duration>,
    },
    /// A TCP connect to `host:port`.
    Tcp {
        /// `host:port`.
        addr: String,
    },
    /// A process that must be alive and neither zombie nor stopped.
    Process {
        /// How to find it.
        selector: ProcessSelector,
    },
    /// A command run as argv (never through a shell); exit code 0 passes.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
    },
}

/// How a process probe finds its process.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessSelector {
    /// Read the pid from this file.
    PidFile(PathBuf),
    /// The first process whose `comm` (or `argv[0]` basename) equals this name.
    Name(String),
    /// The supervised process of this target (filled in by the supervisor).
    Supervised,
}

/// How often and how strictly a measured level (performance, resources) is checked: the
/// keys of an active probe, written beside the level's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LevelSchedule {
    /// How often it is measured.
    pub every: Duration,
    /// How long one measurement may take.
    pub timeout: Duration,
    /// Consecutive failed measurements before the level fails (default 3).
    pub failure_threshold: u32,
    /// Consecutive passing measurements before a failed level passes again (default 1).
    pub success_threshold: u32,
}

impl LevelSchedule {
    /// The performance level without `metrics:` timing: the metrics defaults, every 15 s with
    /// a 5 s timeout (with `metrics:` the level follows its `every` and `timeout`), failure 3,
    /// success 1.
    pub const PERFORMANCE_DEFAULT: LevelSchedule = LevelSchedule {
        every: Duration::from_secs(15),
        timeout: Duration::from_secs(5),
        failure_threshold: 3,
        success_threshold: 1,
    };

    /// The resources level: every 10 s, timeout 5 s (the CPU figure needs two /proc
    /// readings 500 ms apart), failure 3, success 1.
    pub const RESOURCES_DEFAULT: LevelSchedule = LevelSchedule {
        every: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        failure_threshold: 3,
        success_threshold: 1,
    };
}

/// Limits checked against scraped metrics (the performance level).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerformanceLimits {
    /// p99 (or mean, when no histogram) request latency above this fails.
    pub max_latency: Option<Duration>,
    /// Error fraction above this fails.
    pub max_error_rate: Option<f64>,
    /// Queue depth above this fails.
    pub max_queue_depth: Option<f64>,
    /// When and how strictly (default: `metrics.every` and `metrics.timeout`, 3/1).
    pub schedule: LevelSchedule,
}

/// Limits checked against the target's process (the resources level).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceLimits {
    /// Resident memory limit in bytes.
    pub max_rss_bytes: Option<u64>,
    /// CPU as a fraction of one core.
    pub max_cpu: Option<f64>,
    /// Open file descriptors.
    pub max_open_fds: Option<u64>,
    /// When and how strictly (default [`LevelSchedule::RESOURCES_DEFAULT`]).
    pub schedule: LevelSchedule,
}

/// Where and how often to scrape metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsSpec {
    /// The metrics URL.
    pub url: String,
    /// Scrape interval (default 15 s).
    pub every: Duration,
    /// Scrape timeout (default 5 s).
    pub timeout: Duration,
}

/// How to perform one strategy on one target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionSpec {
    /// What to run.
    pub kind: ActionKind,
    /// How long it may take before it is killed (default 30 s).
    pub timeout: Duration,
    /// Checked after the action reports success; a failure is a shadow error.
    pub post_condition: Option<Check>,
    /// Only on `actions.circuit_break` (which stops work going to the target): what lets work
    /// flow again when the circuit closes. Never `supervisor`, never nested.
    pub close: Option<Box<ActionSpec>>,
}

/// The two ways to act.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Run a program. Placeholders such as `{target}` or `{replicas}` are replaced in whole
    /// arguments only. `shell` is true only when the policy says `shell: true` explicitly.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
        /// Run `argv` through `/bin/sh -c` (explicit opt-in).
        shell: bool,
    },
    /// Send an HTTP request.
    Http {
        /// Method, e.g. `POST`.
        method: String,
        /// URL.
        url: String,
        /// Request body.
        body: Option<String>,
        /// Status that counts as success (default any 2xx).
        expect_status: Option<u16>,
    },
    /// Use the supervisor's own implementation of the strategy (supervised targets).
    Supervisor,
}

/// A process medic spawns and owns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SuperviseSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Removed on reset.
    pub state_dir: Option<PathBuf>,
    /// Working directory.
    pub workdir: Option<PathBuf>,
    /// The base port: instance `k` (slot `k`, after a scale) gets the first free port from
    /// `port + k` upwards, passed as `{port}` and `MEDIC_PORT`. Required when the command
    /// uses `{port}`.
    pub port: Option<u16>,
}

/// The most attempts and crashes the engine remembers per target, so the largest
/// `max_restart_attempts` and `crash_loop.restarts` validation accepts: a limit the engine's
/// memory cannot reach would never trigger.
pub const MAX_COUNTED: u32 = 32;

/// The healing policy of a tier. Every tier inherits `default` and overrides some keys.
///
/// Written in `policies/*.yaml` under `healing_policies:` (see `policies/README.md`). The keys
/// of the original design:
/// - `max_restart_attempts`: restarts allowed within `attempt_window`; then the escalation
///   ladder moves on (reset → recreate → rollback → escalate). Default 3.
/// - `restart_cooldown`: minimum time between two actions of the same strategy on one target.
///   Default 300s.
/// - `scale_threshold`: utilisation (fraction of the scaling target) above which a target is
///   scaled out. Default 0.8.
/// - `circuit_break_duration`: how long a circuit stays open before a half-open probe.
///   Default 60s.
/// - `preemptive_scaling`: scale out on a failure prediction, before the failure. Default false.
/// - `backup_instances`: extra replicas kept above the computed desired count. Default 0.
/// - `aggressive_recycling`: recycle leaking targets early, at `1 - memory_limit_buffer` of their
///   memory limit. Default false.
/// - `memory_limit_buffer`: fraction of the memory limit kept free when recycling
///   aggressively. Default 0.1.
///
/// The other fields (backoff, crash loop, budgets, approval, verification, scaling, rules) are
/// documented on each field; [`TierPolicy::builtin_default`] lists every default.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierPolicy {
    /// The tier's name, e.g. `critical_agents`.
    pub name: String,
    /// Agent types (label `type` or name prefix) that belong to this tier.
    pub agents: Vec<String>,
    /// A label selector: targets carrying all of these labels belong to this tier (empty: none).
    pub labels: BTreeMap<String, String>,
    /// Restarts allowed within `attempt_window` before giving up on restarts.
    pub max_restart_attempts: u32,
    /// Minimum time between two actions of the same strategy on one target.
    pub restart_cooldown: Duration,
    /// The window in which `max_restart_attempts` counts (default 1 h).
    pub attempt_window: Duration,
    /// Utilisation (fraction of target) above which the target is scaled.
    pub scale_threshold: f64,
    /// How long a circuit stays open before a half-open probe.
    pub circuit_break_duration: Duration,
    /// Scale on a failure prediction, before the failure.
    pub preemptive_scaling: bool,
    /// Extra replicas kept above the computed desired count.
    pub backup_instances: u32,
    /// Recycle leaking targets early, at `1 - memory_limit_buffer` of their memory limit.
    pub aggressive_recycling: bool,
    /// Fraction of the memory limit kept free when recycling aggressively.
    pub memory_limit_buffer: f64,
    /// Delay between attempts on a target.
    pub backoff: Backoff,
    /// When to stop acting on a crash-looping target.
    pub crash_loop: CrashLoop,
    /// Actions of this tier running at once, fleet-wide (`None`: only the global budget).
    pub max_concurrent: Option<u32>,
    /// Fraction of a group that may be acted on at once (at least one target).
    pub max_group_unavailable: f64,
    /// Options up to this risk run automatically; riskier ones wait for approval.
    pub auto_approve_risk: Risk,
    /// Options below this confidence wait for approval.
    pub confidence_threshold: f64,
    /// How long an approval may wait before the incident escalates.
    pub approval_timeout: Duration,
    /// After the startup delay, verification must succeed within this.
    pub verify_deadline: Duration,
    /// HPA-style scaling parameters.
    pub scaling: Scaling,
    /// Strategy rules, checked in order; the first matching rules rank first.
    pub rules: Vec<Rule>,
}

/// Exponential backoff between attempts (Kubernetes-like defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Backoff {
    /// First delay (default 10 s).
    pub initial: Duration,
    /// Cap (default 300 s).
    pub max: Duration,
    /// Growth factor (default 2).
    pub multiplier: f64,
    /// Healthy this long resets the backoff (default 10 min).
    pub reset_after: Duration,
}

/// Crash-loop detection: `restarts` crashes (the target went down) within `window` → give
/// up and escalate once. The engine documents what counts as a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CrashLoop {
    /// Crashes that make a loop (default 4).
    pub restarts: u32,
    /// Within this window (default 15 min).
    pub window: Duration,
}

/// Kubernetes HPA parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scaling {
    /// No change while |metric/target − 1| ≤ tolerance (default 0.1).
    pub tolerance: f64,
    /// Scale down only to the highest recommendation within this window (default 300 s).
    pub scale_down_stabilization: Duration,
}

/// A strategy rule from policy YAML: when every present condition holds, propose `then`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rule {
    /// Name shown in plan reasons.
    pub name: String,
    /// The conditions; all must hold.
    pub when: Condition,
    /// The strategy proposed.
    pub then: Strategy,
    /// Base confidence of the option (default 0.8).
    pub confidence: f64,
    /// Risk of the option (default from the strategy).
    pub risk: Option<Risk>,
}

/// Conditions of a [`Rule`]; absent fields are not checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Condition {
    /// The target's health is one of these.
    pub health: Vec<HealthState>,
    /// All these levels are failing.
    pub failing: Vec<ProbeLevel>,
    /// Utilisation above this (use the tier's `scale_threshold` when `utilization_above_scale_threshold`).
    pub utilization_above: Option<f64>,
    /// Utilisation above the tier's `scale_threshold`.
    pub utilization_above_scale_threshold: bool,
    /// Memory ratio above this.
    pub memory_ratio_above: Option<f64>,
    /// Error rate above this.
    pub error_rate_above: Option<f64>,
    /// Anomaly kind is one of these.
    pub anomaly_kind: Vec<AnomalyKind>,
    /// Diagnosis category is one of these.
    pub diagnosis: Vec<DiagnosisCategory>,
    /// A failure is predicted (prediction alarm).
    pub predicted_failure: Option<bool>,
    /// The version changed within this long before the finding.
    pub version_changed_within: Option<Duration>,
    /// The target is the only (or a minority) unhealthy instance of a healthy group.
    pub minority_of_group: Option<bool>,
}
