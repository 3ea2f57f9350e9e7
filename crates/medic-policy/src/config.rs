//! The raw configuration as written in YAML: `*Config` structs, decoded from located
//! [`Node`]s with every structural problem (unknown key, wrong type, bad duration, ratio out of
//! range, empty argv, bad URL or address, unknown strategy) recorded by the [`Decoder`].
//!
//! Checks that need the whole file (tier resolution, duplicate names, `depends_on`, cycles,
//! inheritance) happen in `validate`, which turns these into the model.
//!
//! The key lists (`*_KEYS`) are the single source of the accepted keys: the decoder rejects
//! anything else and the JSON Schema in `schema` is tested against them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use medic_core::{AnomalyKind, DiagnosisCategory, HealthState, ProbeLevel, Risk, Strategy};

use crate::model::{
    ActionKind, ActionSpec, Check, Condition, LevelSchedule, MAX_COUNTED, MetricsSpec,
    PerformanceLimits, ProbeSpec, ProcessSelector, Replicas, ResourceLimits, Rule, SuperviseSpec,
};
use crate::yaml::{Decoder, Loc, MapView, Node, Value, join};

/// Top-level keys of a policy file.
pub const POLICIES_KEYS: &[&str] = &["healing_policies"];
/// Keys of a named (non-default) tier.
pub const TIER_KEYS: &[&str] = &["agents", "labels", "policy"];
/// Keys of a policy (the `default` tier, or a named tier's `policy:`).
pub const POLICY_KEYS: &[&str] = &[
    "max_restart_attempts",
    "restart_cooldown",
    "attempt_window",
    "scale_threshold",
    "circuit_break_duration",
    "preemptive_scaling",
    "backup_instances",
    "aggressive_recycling",
    "memory_limit_buffer",
    "backoff",
    "crash_loop",
    "max_concurrent",
    "max_group_unavailable",
    "auto_approve_risk",
    "confidence_threshold",
    "approval_timeout",
    "verify_deadline",
    "scaling",
    "rules",
];
/// Keys of `backoff:`.
pub const BACKOFF_KEYS: &[&str] = &["initial", "max", "multiplier", "reset_after"];
/// Keys of `crash_loop:`.
pub const CRASH_LOOP_KEYS: &[&str] = &["restarts", "window"];
/// Keys of `scaling:`.
pub const SCALING_KEYS: &[&str] = &["tolerance", "scale_down_stabilization"];
/// Keys of one rule.
pub const RULE_KEYS: &[&str] = &["name", "when", "then", "confidence", "risk"];
/// Keys of a rule's `when:`.
pub const CONDITION_KEYS: &[&str] = &[
    "health",
    "failing",
    "utilization_above",
    "utilization_above_scale_threshold",
    "memory_ratio_above",
    "error_rate_above",
    "anomaly_kind",
    "diagnosis",
    "predicted_failure",
    "version_changed_within",
    "minority_of_group",
];

/// Top-level keys of fleet.yaml.
pub const FLEET_KEYS: &[&str] = &["targets"];
/// Keys of one target.
pub const TARGET_KEYS: &[&str] = &[
    "name",
    "tier",
    "labels",
    "group",
    "probes",
    "metrics",
    "depends_on",
    "actions",
    "fallback",
    "supervise",
    "startup_delay",
    "replicas",
];
/// Probe levels that can be configured under `probes:` (`dependencies` follows `depends_on`).
pub const PROBES_KEYS: &[&str] = &["liveness", "readiness", "performance", "resources"];
/// Keys of an active probe (liveness, readiness).
pub const ACTIVE_PROBE_KEYS: &[&str] = &[
    "http",
    "tcp",
    "process",
    "exec",
    "every",
    "timeout",
    "failure_threshold",
    "success_threshold",
];
/// Keys of a post-condition check.
pub const CHECK_KEYS: &[&str] = &["http", "tcp", "process", "exec"];
/// Keys of an `http:` check.
pub const HTTP_CHECK_KEYS: &[&str] = &[
    "url",
    "status_min",
    "status_max",
    "body_contains",
    "max_latency",
    "timeout",
];
/// Keys of a `tcp:` check.
pub const TCP_CHECK_KEYS: &[&str] = &["addr", "timeout"];
/// Keys of a `process:` check.
pub const PROCESS_CHECK_KEYS: &[&str] = &["pid_file", "name", "supervised"];
/// Keys of `probes.performance`.
pub const PERFORMANCE_KEYS: &[&str] = &[
    "max_latency",
    "max_error_rate",
    "max_queue_depth",
    "every",
    "timeout",
    "failure_threshold",
    "success_threshold",
];
/// Keys of `probes.resources`.
pub const RESOURCES_KEYS: &[&str] = &[
    "max_rss",
    "max_cpu",
    "max_open_fds",
    "every",
    "timeout",
    "failure_threshold",
    "success_threshold",
];
/// Keys of `metrics:`.
pub const METRICS_KEYS: &[&str] = &["url", "every", "timeout"];
/// Keys of one action.
pub const ACTION_KEYS: &[&str] = &[
    "exec",
    "shell",
    "http",
    "supervisor",
    "timeout",
    "post_condition",
    "close",
];
/// Keys of an action's `http:`.
pub const ACTION_HTTP_KEYS: &[&str] = &["method", "url", "body", "expect_status"];
/// Keys of `supervise:`.
pub const SUPERVISE_KEYS: &[&str] = &["command", "env", "state_dir", "workdir", "port"];
/// Keys of `replicas:`.
pub const REPLICAS_KEYS: &[&str] = &["initial", "min", "max"];

const STRATEGIES: &[(&str, Strategy)] = &[
    ("restart", Strategy::Restart),
    ("reset", Strategy::Reset),
    ("recreate", Strategy::Recreate),
    ("scale", Strategy::Scale),
    ("circuit_break", Strategy::CircuitBreak),
    ("rollback", Strategy::Rollback),
    ("reroute", Strategy::Reroute),
    ("repair", Strategy::Repair),
    ("escalate", Strategy::Escalate),
    ("observe", Strategy::Observe),
];
const RISKS: &[(&str, Risk)] = &[
    ("low", Risk::Low),
    ("medium", Risk::Medium),
    ("high", Risk::High),
];
const HEALTH: &[(&str, HealthState)] = &[
    ("healthy", HealthState::Healthy),
    ("degraded", HealthState::Degraded),
    ("unhealthy", HealthState::Unhealthy),
    ("unknown", HealthState::Unknown),
];
const LEVELS: &[(&str, ProbeLevel)] = &[
    ("liveness", ProbeLevel::Liveness),
    ("readiness", ProbeLevel::Readiness),
    ("performance", ProbeLevel::Performance),
    ("resources", ProbeLevel::Resources),
    ("dependencies", ProbeLevel::Dependencies),
];
const ANOMALY_KINDS: &[(&str, AnomalyKind)] = &[
    ("latency", AnomalyKind::Latency),
    ("errors", AnomalyKind::Errors),
    ("resource", AnomalyKind::Resource),
    ("saturation", AnomalyKind::Saturation),
    ("traffic_drop", AnomalyKind::TrafficDrop),
    ("mixed", AnomalyKind::Mixed),
];
const HTTP_METHODS: &[(&str, ())] = &[
    ("GET", ()),
    ("POST", ()),
    ("PUT", ()),
    ("PATCH", ()),
    ("DELETE", ()),
    ("HEAD", ()),
];

/// Strategy names as written in YAML, in [`Strategy::ALL`] order.
pub fn strategy_names() -> Vec<&'static str> {
    STRATEGIES.iter().map(|(n, _)| *n).collect()
}

/// Names accepted for the enum-valued keys, for the schema: strategies, risks, health states,
/// probe levels, anomaly kinds, diagnosis categories.
pub(crate) fn enum_names(which: &str) -> Vec<&'static str> {
    match which {
        "strategy" => STRATEGIES.iter().map(|(n, _)| *n).collect(),
        "risk" => RISKS.iter().map(|(n, _)| *n).collect(),
        "health" => HEALTH.iter().map(|(n, _)| *n).collect(),
        "level" => LEVELS.iter().map(|(n, _)| *n).collect(),
        "anomaly_kind" => ANOMALY_KINDS.iter().map(|(n, _)| *n).collect(),
        "diagnosis" => DiagnosisCategory::ALL.iter().map(|c| c.as_str()).collect(),
        "method" => HTTP_METHODS.iter().map(|(n, _)| *n).collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Policies

/// A policy file (`policies/*.yaml`): `healing_policies:` maps tier names to tiers.
#[derive(Clone, Debug, Default)]
pub struct PoliciesConfig {
    /// Tiers in file order.
    pub tiers: Vec<TierConfig>,
}

/// One tier as written. `default` is a bare policy; every other tier has `agents`, `labels`
/// and a `policy:` of overrides.
#[derive(Clone, Debug)]
pub struct TierConfig {
    /// The tier's name (the key under `healing_policies`).
    pub name: String,
    /// File the tier was written in.
    pub file: String,
    /// Where the name was written.
    pub loc: Loc,
    /// Agent types (label `type`, or target-name prefix) that belong to the tier.
    pub agents: Vec<String>,
    /// A label selector: targets carrying all these labels belong to the tier.
    pub labels: BTreeMap<String, String>,
    /// The keys this tier sets; everything else is inherited from `default`.
    pub policy: PolicyConfig,
}

/// A partial policy: only the keys that were written. See [`crate::TierPolicy`] for the
/// meaning of each key; `None` means "inherit".
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)] // each field is the TierPolicy field of the same name
pub struct PolicyConfig {
    /// Where the policy map starts and its key path (for cross-key errors).
    pub loc: Loc,
    /// Key path of the policy map, e.g. `healing_policies.critical_agents.policy`.
    pub path: String,
    pub max_restart_attempts: Option<u32>,
    pub restart_cooldown: Option<Duration>,
    pub attempt_window: Option<Duration>,
    pub scale_threshold: Option<f64>,
    pub circuit_break_duration: Option<Duration>,
    pub preemptive_scaling: Option<bool>,
    pub backup_instances: Option<u32>,
    pub aggressive_recycling: Option<bool>,
    pub memory_limit_buffer: Option<f64>,
    pub backoff: BackoffConfig,
    pub crash_loop: CrashLoopConfig,
    pub max_concurrent: Option<u32>,
    pub max_group_unavailable: Option<f64>,
    pub auto_approve_risk: Option<Risk>,
    pub confidence_threshold: Option<f64>,
    pub approval_timeout: Option<Duration>,
    pub verify_deadline: Option<Duration>,
    pub scaling: ScalingConfig,
    /// When set, replaces the inherited rules entirely.
    pub rules: Option<Vec<Rule>>,
}

/// `backoff:` overrides.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)] // fields of crate::Backoff
pub struct BackoffConfig {
    pub initial: Option<Duration>,
    pub max: Option<Duration>,
    pub multiplier: Option<f64>,
    pub reset_after: Option<Duration>,
}

/// `crash_loop:` overrides.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)] // fields of crate::CrashLoop
pub struct CrashLoopConfig {
    pub restarts: Option<u32>,
    pub window: Option<Duration>,
}

/// `scaling:` overrides.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)] // fields of crate::Scaling
pub struct ScalingConfig {
    pub tolerance: Option<f64>,
    pub scale_down_stabilization: Option<Duration>,
}

/// Decodes a policy file's root node.
pub fn decode_policies(dec: &mut Decoder, root: &Node) -> PoliciesConfig {
    let mut out = PoliciesConfig::default();
    let tolerated = with_extensions(root, &["targets"]);
    let Some(top) = dec.map_tolerating(root, "", POLICIES_KEYS, &tolerated) else {
        return out;
    };
    if let Some(k) = top.key_node("targets") {
        // The usual mistake: a fleet file saved in the policy directory under another name.
        dec.error_at(
            k.loc,
            "targets",
            "expected healing_policies in a policy file, found targets (name fleet files fleet*.yaml or keep them elsewhere)",
        );
        return out;
    }
    let Some(hp) = dec.require(&top, "healing_policies", "", "a map of tiers") else {
        return out;
    };
    let Some(tiers) = dec.free_map(hp, "healing_policies") else {
        return out;
    };
    for (name, key, node) in tiers.entries() {
        let path = join("healing_policies", &name);
        if !valid_name(&name) {
            dec.expected(key, &path, NAME_EXPECTED);
            continue;
        }
        let mut tier = TierConfig {
            name: name.clone(),
            file: dec.file().to_owned(),
            loc: key.loc,
            agents: Vec::new(),
            labels: BTreeMap::new(),
            policy: PolicyConfig::default(),
        };
        if name == "default" {
            if let Value::Map(entries) = &node.value
                && let Some((k, _)) = entries
                    .iter()
                    .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == "policy"))
            {
                // By analogy with the named tiers; default's keys sit directly under it.
                dec.error_at(
                    k.loc,
                    &join(&path, "policy"),
                    "expected the policy keys directly under default, found policy:",
                );
            } else if node.value != Value::Null {
                tier.policy = decode_policy(dec, node, &path);
            }
        } else if let Value::Null = node.value {
            // An empty tier: inherits everything and matches nothing by itself.
        } else if let Some(m) = dec.map_tolerating(node, &path, TIER_KEYS, POLICY_KEYS) {
            for key in POLICY_KEYS {
                if let Some(k) = m.key_node(key) {
                    dec.error_at(
                        k.loc,
                        &join(&path, key),
                        format!(
                            "expected {key} under {path}.policy, found it beside agents and labels"
                        ),
                    );
                }
            }
            tier.agents = dec.string_list(m.get("agents"), &join(&path, "agents"));
            tier.labels = dec.string_map(m.get("labels"), &join(&path, "labels"));
            if let Some(p) = m.get("policy") {
                tier.policy = decode_policy(dec, p, &join(&path, "policy"));
            }
        }
        out.tiers.push(tier);
    }
    out
}

fn decode_policy(dec: &mut Decoder, node: &Node, path: &str) -> PolicyConfig {
    let mut p = PolicyConfig {
        loc: node.loc,
        path: path.to_owned(),
        ..PolicyConfig::default()
    };
    let Some(m) = dec.map(node, path, POLICY_KEYS) else {
        return p;
    };
    let k = |key: &str| join(path, key);
    p.max_restart_attempts = m.get("max_restart_attempts").and_then(|n| {
        dec.int_in(n, &k("max_restart_attempts"), 0, i128::from(MAX_COUNTED))
            .and_then(|i| u32::try_from(i).ok())
    });
    p.restart_cooldown = dec.opt_duration(m.get("restart_cooldown"), &k("restart_cooldown"));
    p.attempt_window = dec.opt_positive_duration(m.get("attempt_window"), &k("attempt_window"));
    p.scale_threshold = dec.opt_ratio(m.get("scale_threshold"), &k("scale_threshold"));
    p.circuit_break_duration = dec.opt_duration(
        m.get("circuit_break_duration"),
        &k("circuit_break_duration"),
    );
    p.preemptive_scaling = dec.opt_bool(m.get("preemptive_scaling"), &k("preemptive_scaling"));
    p.backup_instances = dec.opt_u32_min(m.get("backup_instances"), &k("backup_instances"), 0);
    p.aggressive_recycling =
        dec.opt_bool(m.get("aggressive_recycling"), &k("aggressive_recycling"));
    p.memory_limit_buffer = dec.opt_ratio(m.get("memory_limit_buffer"), &k("memory_limit_buffer"));
    if let Some(b) = m.get("backoff") {
        let bp = k("backoff");
        if let Some(bm) = dec.map(b, &bp, BACKOFF_KEYS) {
            p.backoff.initial = dec.opt_positive_duration(bm.get("initial"), &join(&bp, "initial"));
            p.backoff.max = dec.opt_positive_duration(bm.get("max"), &join(&bp, "max"));
            p.backoff.multiplier = bm
                .get("multiplier")
                .and_then(|n| dec.number_min(n, &join(&bp, "multiplier"), 1.0));
            p.backoff.reset_after =
                dec.opt_positive_duration(bm.get("reset_after"), &join(&bp, "reset_after"));
        }
    }
    if let Some(c) = m.get("crash_loop") {
        let cp = k("crash_loop");
        if let Some(cm) = dec.map(c, &cp, CRASH_LOOP_KEYS) {
            p.crash_loop.restarts = cm.get("restarts").and_then(|n| {
                dec.int_in(n, &join(&cp, "restarts"), 1, i128::from(MAX_COUNTED))
                    .and_then(|i| u32::try_from(i).ok())
            });
            p.crash_loop.window = dec.opt_positive_duration(cm.get("window"), &join(&cp, "window"));
        }
    }
    p.max_concurrent = dec.opt_u32_min(m.get("max_concurrent"), &k("max_concurrent"), 1);
    p.max_group_unavailable =
        dec.opt_ratio(m.get("max_group_unavailable"), &k("max_group_unavailable"));
    p.auto_approve_risk = m
        .get("auto_approve_risk")
        .and_then(|n| dec.one_of(n, &k("auto_approve_risk"), RISKS));
    p.confidence_threshold =
        dec.opt_ratio(m.get("confidence_threshold"), &k("confidence_threshold"));
    p.approval_timeout =
        dec.opt_positive_duration(m.get("approval_timeout"), &k("approval_timeout"));
    p.verify_deadline = dec.opt_positive_duration(m.get("verify_deadline"), &k("verify_deadline"));
    if let Some(s) = m.get("scaling") {
        let sp = k("scaling");
        if let Some(sm) = dec.map(s, &sp, SCALING_KEYS) {
            p.scaling.tolerance = dec.opt_ratio(sm.get("tolerance"), &join(&sp, "tolerance"));
            p.scaling.scale_down_stabilization = dec.opt_duration(
                sm.get("scale_down_stabilization"),
                &join(&sp, "scale_down_stabilization"),
            );
        }
    }
    if let Some(r) = m.get("rules") {
        p.rules = Some(decode_rules(dec, r, &k("rules")));
    } else if m.key_node("rules").is_some() {
        // `rules:` with nothing after it: the tier explicitly has no rules.
        p.rules = Some(Vec::new());
    }
    p
}

fn decode_rules(dec: &mut Decoder, node: &Node, path: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, item) in dec.list(Some(node), path).iter().enumerate() {
        let rp = format!("{path}[{i}]");
        let Some(m) = dec.map(item, &rp, RULE_KEYS) else {
            continue;
        };
        let name = dec.required_string(&m, "name", &rp);
        if let Some(n) = &name {
            if seen.contains(n) {
                let at = m.get("name").map_or(item.loc, |x| x.loc);
                dec.error_at(
                    at,
                    &join(&rp, "name"),
                    format!("expected a rule name unique in this tier, found {n:?} again"),
                );
            }
            seen.push(n.clone());
        }
        let when = dec
            .require(&m, "when", &rp, "a map of conditions")
            .and_then(|w| decode_condition(dec, w, &join(&rp, "when")));
        let then = dec
            .require(&m, "then", &rp, "a strategy")
            .and_then(|t| dec.one_of(t, &join(&rp, "then"), STRATEGIES));
        let confidence = m
            .get("confidence")
            .map_or(Some(0.8), |c| dec.ratio(c, &join(&rp, "confidence")));
        let risk = m
            .get("risk")
            .map(|r| dec.one_of(r, &join(&rp, "risk"), RISKS));
        if let (Some(name), Some(when), Some(then), Some(confidence), None | Some(Some(_))) =
            (name, when, then, confidence, risk)
        {
            rules.push(Rule {
                name,
                when,
                then,
                confidence,
                risk: risk.flatten(),
            });
        }
    }
    rules
}

fn decode_condition(dec: &mut Decoder, node: &Node, path: &str) -> Option<Condition> {
    let m = dec.map(node, path, CONDITION_KEYS)?;
    if !CONDITION_KEYS.iter().any(|k| m.has(k)) {
        dec.expected(
            node,
            path,
            &format!("at least one of {}", CONDITION_KEYS.join(", ")),
        );
        return None;
    }
    let k = |key: &str| join(path, key);
    let number = |dec: &mut Decoder, key: &str| {
        m.get(key)
            .and_then(|n| dec.number_min(n, &join(path, key), 0.0))
    };
    let errors_before = dec.error_count();
    let c = Condition {
        health: dec.list_of(m.get("health"), &k("health"), HEALTH),
        failing: dec.list_of(m.get("failing"), &k("failing"), LEVELS),
        utilization_above: number(dec, "utilization_above"),
        utilization_above_scale_threshold: dec
            .opt_bool(
                m.get("utilization_above_scale_threshold"),
                &k("utilization_above_scale_threshold"),
            )
            .unwrap_or(false),
        memory_ratio_above: number(dec, "memory_ratio_above"),
        error_rate_above: dec.opt_ratio(m.get("error_rate_above"), &k("error_rate_above")),
        anomaly_kind: dec.list_of(m.get("anomaly_kind"), &k("anomaly_kind"), ANOMALY_KINDS),
        diagnosis: {
            let cats: Vec<(&str, DiagnosisCategory)> = DiagnosisCategory::ALL
                .iter()
                .map(|c| (c.as_str(), *c))
                .collect();
            dec.list_of(m.get("diagnosis"), &k("diagnosis"), &cats)
        },
        predicted_failure: dec.opt_bool(m.get("predicted_failure"), &k("predicted_failure")),
        version_changed_within: dec.opt_positive_duration(
            m.get("version_changed_within"),
            &k("version_changed_within"),
        ),
        minority_of_group: dec.opt_bool(m.get("minority_of_group"), &k("minority_of_group")),
    };
    // A partially decoded condition would match more than the user wrote: drop the rule.
    (dec.error_count() == errors_before).then_some(c)
}

// ---------------------------------------------------------------------------------------------
// Fleet

/// fleet.yaml: the targets medic looks after.
#[derive(Clone, Debug, Default)]
pub struct FleetConfig {
    /// Targets in file order.
    pub targets: Vec<TargetConfig>,
}

/// One target as written. Leaf values are already checked; names, tiers and `depends_on` keep
/// their location for the whole-file checks.
#[derive(Clone, Debug, Default)]
pub struct TargetConfig {
    /// Where the target's map starts.
    pub loc: Loc,
    /// Key path, e.g. `targets[2]`.
    pub path: String,
    /// `name:` and where it was written.
    pub name: Option<(String, Loc)>,
    /// `tier:` and where it was written.
    pub tier: Option<(String, Loc)>,
    /// `labels:`.
    pub labels: BTreeMap<String, String>,
    /// `group:`.
    pub group: Option<String>,
    /// Active probes (liveness, readiness).
    pub probes: Vec<ProbeSpec>,
    /// Where a `process: {supervised: true}` probe was written, to check `supervise:` exists.
    pub supervised_probe_at: Option<(Loc, String)>,
    /// `probes.performance`.
    pub performance: Option<PerformanceLimits>,
    /// `probes.resources`.
    pub resources: Option<ResourceLimits>,
    /// Where `probes.performance` was written.
    pub performance_at: Option<Loc>,
    /// Where `probes.resources` was written.
    pub resources_at: Option<Loc>,
    /// `metrics:`.
    pub metrics: Option<MetricsSpec>,
    /// `depends_on:` entries with their locations.
    pub depends_on: Vec<(String, Loc)>,
    /// `actions:` by strategy, with the location of each key.
    pub actions: BTreeMap<Strategy, (ActionSpec, Loc)>,
    /// `fallback:`.
    pub fallback: Option<ActionSpec>,
    /// `supervise:`.
    pub supervise: Option<SuperviseSpec>,
    /// `startup_delay:`.
    pub startup_delay: Option<Duration>,
    /// `replicas:`.
    pub replicas: Option<Replicas>,
}

/// `keys` plus the top-level `x-*` keys of `root`: free space for YAML anchors, as in
/// docker-compose (`x-probe: &probe {every: 5s}` then `<<: *probe`).
fn with_extensions<'k>(root: &'k Node, keys: &[&'k str]) -> Vec<&'k str> {
    let mut out = keys.to_vec();
    if let Value::Map(entries) = &root.value {
        for (k, _) in entries {
            if let Value::Str(name) = &k.value
                && name.starts_with("x-")
            {
                out.push(name);
            }
        }
    }
    out
}

const NAME_EXPECTED: &str = "a name of letters, digits, '-', '_' and '.'";

/// Names of targets and tiers: what fits in a log line, a metric label and a file name.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Decodes fleet.yaml's root node.
pub fn decode_fleet(dec: &mut Decoder, root: &Node) -> FleetConfig {
    let mut out = FleetConfig::default();
    let Some(top) = dec.map_tolerating(root, "", FLEET_KEYS, &with_extensions(root, &[])) else {
        return out;
    };
    let Some(targets) = dec.require(&top, "targets", "", "a list of targets") else {
        return out;
    };
    for (i, node) in dec.list(Some(targets), "targets").iter().enumerate() {
        let path = format!("targets[{i}]");
        if let Some(t) = decode_target(dec, node, &path) {
            out.targets.push(t);
        }
    }
    out
}

fn decode_target(dec: &mut Decoder, node: &Node, path: &str) -> Option<TargetConfig> {
    let m = dec.map(node, path, TARGET_KEYS)?;
    let k = |key: &str| join(path, key);
    let mut t = TargetConfig {
        loc: node.loc,
        path: path.to_owned(),
        ..TargetConfig::default()
    };
    if let Some(n) = dec.require(&m, "name", path, NAME_EXPECTED) {
        match &n.value {
            Value::Str(s) => {
                if !valid_name(s) {
                    dec.expected(n, &k("name"), NAME_EXPECTED);
                }
                // Kept even when invalid, so `depends_on` naming it raises no second error.
                t.name = Some((s.clone(), n.loc));
            }
            _ => dec.expected(n, &k("name"), NAME_EXPECTED),
        }
    }
    if let Some(n) = m.get("tier") {
        t.tier = dec.string(n, &k("tier")).map(|s| (s, n.loc));
    }
    t.labels = dec.string_map(m.get("labels"), &k("labels"));
    t.group = dec.opt_string(m.get("group"), &k("group"));
    if let Some(mn) = m.get("metrics") {
        let mp = k("metrics");
        if let Some(mm) = dec.map(mn, &mp, METRICS_KEYS) {
            let url = dec
                .require(&mm, "url", &mp, "an http:// or https:// URL")
                .and_then(|u| url(dec, u, &join(&mp, "url")));
            let every = dec.opt_positive_duration(mm.get("every"), &join(&mp, "every"));
            let timeout = dec.opt_positive_duration(mm.get("timeout"), &join(&mp, "timeout"));
            if let Some(url) = url {
                t.metrics = Some(MetricsSpec {
                    url,
                    every: every.unwrap_or(Duration::from_secs(15)),
                    timeout: timeout.unwrap_or(Duration::from_secs(5)),
                });
            }
        }
    }
    // After `metrics:`, whose timing is the performance level's default. (Errors are
    // sorted by position, so the order of decoding does not show.)
    if let Some(p) = m.get("probes") {
        decode_probes(dec, p, &k("probes"), &mut t);
    }
    t.depends_on = dec.located_string_list(m.get("depends_on"), &k("depends_on"));
    if let Some(a) = m.get("actions") {
        let ap = k("actions");
        if let Some(am) = dec.map(a, &ap, &strategy_names()) {
            for (name, key, v) in am.entries() {
                let Some(strategy) = Strategy::parse(&name) else {
                    continue; // reported by `map` as an unknown key
                };
                if let Some(spec) = decode_action(dec, v, &join(&ap, &name)) {
                    t.actions.insert(strategy, (spec, key.loc));
                }
            }
        }
    }
    if let Some(f) = m.get("fallback") {
        t.fallback = decode_action(dec, f, &k("fallback"));
    }
    if let Some(s) = m.get("supervise") {
        t.supervise = decode_supervise(dec, s, &k("supervise"));
    }
    t.startup_delay = dec.opt_duration(m.get("startup_delay"), &k("startup_delay"));
    if let Some(r) = m.get("replicas") {
        t.replicas = decode_replicas(dec, r, &k("replicas"));
    }
    Some(t)
}

fn decode_probes(dec: &mut Decoder, node: &Node, path: &str, t: &mut TargetConfig) {
    let Some(m) = dec.map(node, path, PROBES_KEYS) else {
        return;
    };
    for (level, key) in [
        (ProbeLevel::Liveness, "liveness"),
        (ProbeLevel::Readiness, "readiness"),
    ] {
        if let Some(p) = m.get(key) {
            let pp = join(path, key);
            if let Some(spec) = decode_active_probe(dec, p, &pp, level, t) {
                t.probes.push(spec);
            }
        }
    }
    if let Some(p) = m.get("performance") {
        t.performance_at = m.key_node("performance").map(|k| k.loc);
        let pp = join(path, "performance");
        let performance_default =
            t.metrics
                .as_ref()
                .map_or(LevelSchedule::PERFORMANCE_DEFAULT, |metrics| {
                    LevelSchedule {
                        every: metrics.every,
                        timeout: metrics.timeout,
                        ..LevelSchedule::PERFORMANCE_DEFAULT
                    }
                });
        if let Some(pm) = dec.map(p, &pp, PERFORMANCE_KEYS) {
            t.performance = Some(PerformanceLimits {
                max_latency: dec
                    .opt_positive_duration(pm.get("max_latency"), &join(&pp, "max_latency")),
                max_error_rate: dec
                    .opt_ratio(pm.get("max_error_rate"), &join(&pp, "max_error_rate")),
                max_queue_depth: pm
                    .get("max_queue_depth")
                    .and_then(|n| dec.number_min(n, &join(&pp, "max_queue_depth"), 0.0)),
                schedule: decode_schedule(dec, &pm, &pp, performance_default),
            });
        }
    }
    if let Some(p) = m.get("resources") {
        t.resources_at = m.key_node("resources").map(|k| k.loc);
        let pp = join(path, "resources");
        if let Some(rm) = dec.map(p, &pp, RESOURCES_KEYS) {
            t.resources = Some(ResourceLimits {
                max_rss_bytes: rm
                    .get("max_rss")
                    .and_then(|n| bytes(dec, n, &join(&pp, "max_rss"))),
                max_cpu: rm
                    .get("max_cpu")
                    .and_then(|n| dec.number_min(n, &join(&pp, "max_cpu"), 0.0)),
                max_open_fds: rm
                    .get("max_open_fds")
                    .and_then(|n| dec.u32_min(n, &join(&pp, "max_open_fds"), 1))
                    .map(u64::from),
                schedule: decode_schedule(dec, &rm, &pp, LevelSchedule::RESOURCES_DEFAULT),
            });
        }
    }
}

/// `every`, `timeout`, `failure_threshold` and `success_threshold` of a measured level,
/// checked as on an active probe; absent keys take `default`'s value.
fn decode_schedule(
    dec: &mut Decoder,
    m: &MapView<'_>,
    path: &str,
    default: LevelSchedule,
) -> LevelSchedule {
    let every = dec.opt_positive_duration(m.get("every"), &join(path, "every"));
    let timeout = dec.opt_positive_duration(m.get("timeout"), &join(path, "timeout"));
    let failure_threshold = dec.opt_u32_min(
        m.get("failure_threshold"),
        &join(path, "failure_threshold"),
        1,
    );
    let success_threshold = dec.opt_u32_min(
        m.get("success_threshold"),
        &join(path, "success_threshold"),
        1,
    );
    LevelSchedule {
        every: every.unwrap_or(default.every),
        timeout: timeout.unwrap_or(default.timeout),
        failure_threshold: failure_threshold.unwrap_or(default.failure_threshold),
        success_threshold: success_threshold.unwrap_or(default.success_threshold),
    }
}

fn decode_active_probe(
    dec: &mut Decoder,
    node: &Node,
    path: &str,
    level: ProbeLevel,
    t: &mut TargetConfig,
) -> Option<ProbeSpec> {
    let m = dec.map(node, path, ACTIVE_PROBE_KEYS)?;
    // No early return on a broken check: the probe's other keys are still checked.
    let decoded = decode_check_kind(dec, &m, path, true);
    let inner_timeout = decoded.as_ref().and_then(|(_, t)| *t);
    if let Some((
        Check::Process {
            selector: ProcessSelector::Supervised,
        },
        _,
    )) = &decoded
    {
        t.supervised_probe_at = Some((node.loc, join(path, "process.supervised")));
    }
    let every = dec.opt_positive_duration(m.get("every"), &join(path, "every"));
    let outer_timeout = dec.opt_positive_duration(m.get("timeout"), &join(path, "timeout"));
    if let (Some(_), Some(_)) = (inner_timeout, outer_timeout) {
        let at = m.get("timeout").map_or(node.loc, |n| n.loc);
        dec.error_at(
            at,
            &join(path, "timeout"),
            "expected the timeout in one place, found it both here and inside the check",
        );
    }
    let failure_threshold = dec.opt_u32_min(
        m.get("failure_threshold"),
        &join(path, "failure_threshold"),
        1,
    );
    let success_threshold = dec.opt_u32_min(
        m.get("success_threshold"),
        &join(path, "success_threshold"),
        1,
    );
    let (check, _) = decoded?;
    Some(ProbeSpec {
        level,
        check,
        every: every.unwrap_or(Duration::from_secs(10)),
        timeout: inner_timeout
            .or(outer_timeout)
            .unwrap_or(Duration::from_secs(1)),
        failure_threshold: failure_threshold.unwrap_or(3),
        success_threshold: success_threshold.unwrap_or(1),
    })
}

/// Exactly one of `http`, `tcp`, `process`, `exec` in `m`; returns the check and a timeout
/// written inside it (`http: {timeout: 2s}`), when `allow_timeout`.
fn decode_check_kind(
    dec: &mut Decoder,
    m: &MapView<'_>,
    path: &str,
    allow_timeout: bool,
) -> Option<(Check, Option<Duration>)> {
    let kinds: Vec<&str> = CHECK_KEYS.iter().copied().filter(|k| m.has(k)).collect();
    match kinds.as_slice() {
        [] => {
            dec.error_at(
                m.node.loc,
                path,
                "expected one of http, tcp, process, exec, found none",
            );
            return None;
        }
        [_] => {}
        [_, second, ..] => {
            let at = m.key_node(second).map_or(m.node.loc, |n| n.loc);
            dec.error_at(
                at,
                &join(path, second),
                format!(
                    "expected exactly one of http, tcp, process, exec, found {}",
                    kinds.join(" and ")
                ),
            );
            return None;
        }
    }
    let kind = kinds[0];
    let node = m.get(kind)?;
    let kp = join(path, kind);
    let strip = |keys: &[&'static str]| -> Vec<&'static str> {
        keys.iter()
            .copied()
            .filter(|k| allow_timeout || *k != "timeout")
            .collect()
    };
    match kind {
        "http" => {
            let hm = dec.map(node, &kp, &strip(HTTP_CHECK_KEYS))?;
            let url = dec
                .require(&hm, "url", &kp, "an http:// or https:// URL")
                .and_then(|u| url(dec, u, &join(&kp, "url")));
            let status = |dec: &mut Decoder, key: &str, default: u16| {
                hm.get(key).map_or(Some(default), |n| {
                    dec.int_in(n, &join(&kp, key), 100, 599)
                        .and_then(|i| u16::try_from(i).ok())
                })
            };
            let status_min = status(dec, "status_min", 200);
            let status_max = status(dec, "status_max", 399);
            if let (Some(lo), Some(hi)) = (status_min, status_max)
                && lo > hi
            {
                let at = hm.get("status_max").map_or(node.loc, |n| n.loc);
                dec.error_at(
                    at,
                    &join(&kp, "status_max"),
                    format!("expected a status of at least status_min ({lo}), found {hi}"),
                );
                return None;
            }
            let body_contains =
                dec.opt_string(hm.get("body_contains"), &join(&kp, "body_contains"));
            let max_latency =
                dec.opt_positive_duration(hm.get("max_latency"), &join(&kp, "max_latency"));
            let timeout = dec.opt_positive_duration(hm.get("timeout"), &join(&kp, "timeout"));
            Some((
                Check::Http {
                    url: url?,
                    status_min: status_min?,
                    status_max: status_max?,
                    body_contains,
                    max_latency,
                },
                timeout,
            ))
        }
        "tcp" => {
            let tm = dec.map(node, &kp, &strip(TCP_CHECK_KEYS))?;
            let addr = dec
                .require(&tm, "addr", &kp, "an address host:port")
                .and_then(|a| addr(dec, a, &join(&kp, "addr")));
            let timeout = dec.opt_positive_duration(tm.get("timeout"), &join(&kp, "timeout"));
            Some((Check::Tcp { addr: addr? }, timeout))
        }
        "process" => {
            let pm = dec.map(node, &kp, PROCESS_CHECK_KEYS)?;
            let set: Vec<&str> = PROCESS_CHECK_KEYS
                .iter()
                .copied()
                .filter(|k| pm.has(k))
                .collect();
            if set.len() != 1 {
                dec.error_at(
                    node.loc,
                    &kp,
                    format!(
                        "expected exactly one of pid_file, name, supervised, found {}",
                        if set.is_empty() {
                            "none".to_owned()
                        } else {
                            set.join(" and ")
                        }
                    ),
                );
                return None;
            }
            let selector = match set[0] {
                "pid_file" => ProcessSelector::PidFile(PathBuf::from(
                    dec.opt_string(pm.get("pid_file"), &join(&kp, "pid_file"))?,
                )),
                "name" => {
                    ProcessSelector::Name(dec.opt_string(pm.get("name"), &join(&kp, "name"))?)
                }
                _ => {
                    let n = pm.get("supervised")?;
                    match dec.bool(n, &join(&kp, "supervised"))? {
                        true => ProcessSelector::Supervised,
                        false => {
                            dec.expected(n, &join(&kp, "supervised"), "true");
                            return None;
                        }
                    }
                }
            };
            Some((Check::Process { selector }, None))
        }
        _ => {
            let argv = argv(dec, node, &kp)?;
            Some((Check::Exec { argv }, None))
        }
    }
}

const ARGV_EXPECTED: &str = "a non-empty list of strings (program and arguments)";

fn argv(dec: &mut Decoder, node: &Node, path: &str) -> Option<Vec<String>> {
    let Value::Seq(items) = &node.value else {
        dec.expected(node, path, ARGV_EXPECTED);
        return None;
    };
    if items.is_empty() {
        dec.error_at(
            node.loc,
            path,
            format!("expected {ARGV_EXPECTED}, found an empty list"),
        );
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        // Arguments may be numbers (`--port, 8101`); the program itself must be a string.
        let text = if i == 0 {
            dec.string(item, &p)
        } else {
            dec.scalar_text(item, &p)
        };
        match text {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn decode_action(dec: &mut Decoder, node: &Node, path: &str) -> Option<ActionSpec> {
    let m = dec.map(node, path, ACTION_KEYS)?;
    let kinds: Vec<&str> = ["exec", "http", "supervisor"]
        .into_iter()
        .filter(|k| m.has(k))
        .collect();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(" and ")
        };
        dec.error_at(
            node.loc,
            path,
            format!("expected exactly one of exec, http, supervisor, found {found}"),
        );
        return None;
    }
    let shell = dec.opt_bool(m.get("shell"), &join(path, "shell"));
    if shell.is_some() && kinds[0] != "exec" {
        let at = m.key_node("shell").map_or(node.loc, |n| n.loc);
        dec.error_at(
            at,
            &join(path, "shell"),
            format!("expected shell only with exec, found it with {}", kinds[0]),
        );
    }
    let timeout = dec.opt_positive_duration(m.get("timeout"), &join(path, "timeout"));
    // `Some(None)`: no post-condition; `None`: a broken one (already reported). Decoded before
    // the action itself without returning early, so that both report their problems.
    let post_condition: Option<Option<Check>> = match m.get("post_condition") {
        Some(pc) => {
            let pcp = join(path, "post_condition");
            dec.map(pc, &pcp, CHECK_KEYS)
                .and_then(|pm| decode_check_kind(dec, &pm, &pcp, false))
                .map(|(check, _)| Some(check))
        }
        None => Some(None),
    };
    // `Some(None)`: no close action; `None`: a broken one (already reported).
    let close: Option<Option<Box<ActionSpec>>> = match m.get("close") {
        Some(c) => {
            let cp = join(path, "close");
            let at = m.key_node("close").map_or(node.loc, |n| n.loc);
            if !path.ends_with(".circuit_break") {
                dec.error_at(
                    at,
                    &cp,
                    "expected close only on actions.circuit_break (it lets work flow again when the circuit closes)"
                        .to_owned(),
                );
                None
            } else {
                match decode_action(dec, c, &cp) {
                    Some(a) if a.kind == ActionKind::Supervisor => {
                        dec.error_at(
                            at,
                            &join(&cp, "supervisor"),
                            "expected exec or http to close a circuit, found supervisor".to_owned(),
                        );
                        None
                    }
                    Some(a) => Some(Some(Box::new(a))),
                    None => None,
                }
            }
        }
        None => Some(None),
    };
    let kind = match kinds[0] {
        "exec" => ActionKind::Exec {
            argv: argv(dec, m.get("exec")?, &join(path, "exec"))?,
            shell: shell.unwrap_or(false),
        },
        "http" => {
            let hp = join(path, "http");
            let hm = dec.map(m.get("http")?, &hp, ACTION_HTTP_KEYS)?;
            let method = hm.get("method").map_or(Some(()), |n| {
                dec.one_of(n, &join(&hp, "method"), HTTP_METHODS)
            });
            let url = dec
                .require(&hm, "url", &hp, "an http:// or https:// URL")
                .and_then(|u| url(dec, u, &join(&hp, "url")));
            let body = dec.opt_string(hm.get("body"), &join(&hp, "body"));
            let expect_status = match hm.get("expect_status") {
                Some(n) => Some(
                    dec.int_in(n, &join(&hp, "expect_status"), 100, 599)
                        .and_then(|i| u16::try_from(i).ok())?,
                ),
                None => None,
            };
            method?;
            let method = match hm.get("method").map(|n| &n.value) {
                Some(Value::Str(s)) => s.clone(),
                _ => "POST".to_owned(),
            };
            ActionKind::Http {
                method,
                url: url?,
                body,
                expect_status,
            }
        }
        _ => {
            let n = m.get("supervisor")?;
            if !dec.bool(n, &join(path, "supervisor"))? {
                dec.expected(n, &join(path, "supervisor"), "true");
                return None;
            }
            ActionKind::Supervisor
        }
    };
    Some(ActionSpec {
        kind,
        timeout: timeout.unwrap_or(Duration::from_secs(30)),
        post_condition: post_condition?,
        close: close?,
    })
}

fn decode_supervise(dec: &mut Decoder, node: &Node, path: &str) -> Option<SuperviseSpec> {
    let m = dec.map(node, path, SUPERVISE_KEYS)?;
    let command = dec
        .require(&m, "command", path, ARGV_EXPECTED)
        .and_then(|c| argv(dec, c, &join(path, "command")));
    let env = dec.string_map(m.get("env"), &join(path, "env"));
    // A name the process environment cannot hold would only fail at the first start.
    if let Some(Node {
        value: Value::Map(entries),
        ..
    }) = m.get("env")
    {
        for (k, _) in entries {
            if let Some(name) = k.as_key()
                && (name.is_empty() || name.contains(['=', '\0']))
            {
                dec.error_at(
                    k.loc,
                    &join(path, "env"),
                    format!(
                        "expected an environment variable name (not empty, without = or NUL), found {name:?}"
                    ),
                );
            }
        }
    }
    let state_dir = dec
        .opt_string(m.get("state_dir"), &join(path, "state_dir"))
        .map(PathBuf::from);
    let workdir = dec
        .opt_string(m.get("workdir"), &join(path, "workdir"))
        .map(PathBuf::from);
    let port = match m.get("port") {
        Some(n) => Some(
            dec.int_in(n, &join(path, "port"), 1, i128::from(u16::MAX))
                .and_then(|p| u16::try_from(p).ok())?,
        ),
        None => None,
    };
    let command = command?;
    // The supervisor gives `{port}` the instance's port, counted from `port`: without one the
    // first start would fail.
    if port.is_none()
        && let Some(c) = m.get("command")
        && let Some(i) = command.iter().position(|a| a == "{port}")
    {
        let at = match &c.value {
            Value::Seq(items) => items.get(i).map_or(c.loc, |n| n.loc),
            _ => c.loc,
        };
        dec.error_at(
            at,
            &format!("{}[{i}]", join(path, "command")),
            "expected supervise.port (the base port) for a command with {port}, found no port"
                .to_owned(),
        );
        return None;
    }
    Some(SuperviseSpec {
        command,
        env,
        state_dir,
        workdir,
        port,
    })
}

fn decode_replicas(dec: &mut Decoder, node: &Node, path: &str) -> Option<Replicas> {
    let m = dec.map(node, path, REPLICAS_KEYS)?;
    let min = dec.opt_u32_min(m.get("min"), &join(path, "min"), 0);
    let max = dec.opt_u32_min(m.get("max"), &join(path, "max"), 1);
    let initial = dec.opt_u32_min(m.get("initial"), &join(path, "initial"), 0);
    let min = if m.has("min") { min? } else { 1 };
    let max = if m.has("max") { max? } else { min.max(1) };
    let initial = if m.has("initial") { initial? } else { min };
    if min > max {
        let at = m.get("max").map_or(node.loc, |n| n.loc);
        dec.error_at(
            at,
            &join(path, "max"),
            format!("expected at least min ({min}), found {max}"),
        );
        return None;
    }
    if !(min..=max).contains(&initial) {
        let at = m.get("initial").map_or(node.loc, |n| n.loc);
        dec.error_at(
            at,
            &join(path, "initial"),
            format!("expected a count between min ({min}) and max ({max}), found {initial}"),
        );
        return None;
    }
    Some(Replicas { initial, min, max })
}

/// An `http://` or `https://` URL with a host and, if given, a valid port.
fn url(dec: &mut Decoder, node: &Node, path: &str) -> Option<String> {
    const EXPECTED: &str = "an http:// or https:// URL with a host";
    let Value::Str(s) = &node.value else {
        dec.expected(node, path, EXPECTED);
        return None;
    };
    if check_url(s) {
        Some(s.clone())
    } else {
        dec.expected(node, path, EXPECTED);
        None
    }
}

/// Whether `s` is an absolute http(s) URL with a host and an optional numeric port.
pub(crate) fn check_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return false;
    };
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    check_host_port(host_port, false)
}

/// `host:port` (port required when `need_port`), host a name, IPv4, or `[IPv6]`.
fn check_host_port(s: &str, need_port: bool) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => ("v6", None),
            p => match p.strip_prefix(':') {
                Some(p) => ("v6", Some(p)),
                None => return false,
            },
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    let port_ok = match port {
        None => !need_port,
        Some(p) => p.parse::<u16>().is_ok_and(|p| p > 0),
    };
    host_ok && port_ok
}

fn addr(dec: &mut Decoder, node: &Node, path: &str) -> Option<String> {
    const EXPECTED: &str = "an address host:port with a port from 1 to 65535";
    match &node.value {
        Value::Str(s) if check_host_port(s, true) => Some(s.clone()),
        _ => {
            dec.expected(node, path, EXPECTED);
            None
        }
    }
}

/// A byte count: an integer, or a number with `K`, `M`, `G` (powers of 1000) or `Ki`, `Mi`,
/// `Gi` (powers of 1024), optionally followed by `B`.
fn bytes(dec: &mut Decoder, node: &Node, path: &str) -> Option<u64> {
    const EXPECTED: &str = "a size like 512Mi, 2Gi or 500M (or a number of bytes)";
    let parsed = match &node.value {
        Value::Int(i) if *i > 0 => u64::try_from(*i).ok(),
        Value::Str(s) => parse_bytes(s),
        _ => None,
    };
    if parsed.is_none() {
        dec.expected(node, path, EXPECTED);
    }
    parsed
}

/// Parses `512Mi`, `2GiB`, `500M`, `1024`; `None` on anything else or zero.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let scale: f64 = match unit {
        "" => 1.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let v = n * scale;
    (1.0..1.8e19).contains(&v).then_some(v as u64)
}
