//! Whole-file checks and the step from `*Config` to the model: tier inheritance, tier
//! resolution, unique names, `depends_on`, dependency cycles, actions that need a supervisor or
//! replica room.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use medic_core::{ProbeLevel, Strategy, TargetId};

use crate::config::{FleetConfig, PolicyConfig, TargetConfig, TierConfig};
use crate::model::{
    ActionKind, ActionSpec, Check, Fleet, ProbeSpec, ProcessSelector, Replicas, Target, TierPolicy,
};
use crate::yaml::{Loc, ValidationError, ValidationErrors, join};

fn push(errors: &mut ValidationErrors, file: &str, loc: Loc, path: &str, message: String) {
    errors.errors.push(ValidationError {
        file: file.to_owned(),
        line: loc.line,
        col: loc.col,
        path: path.to_owned(),
        message,
    });
}

/// Applies the keys set in `p` over `base`.
fn apply(p: &PolicyConfig, base: &TierPolicy) -> TierPolicy {
    let mut t = base.clone();
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = p.$f.clone() { t.$f = v; } )* };
    }
    set!(
        max_restart_attempts,
        restart_cooldown,
        attempt_window,
        scale_threshold,
        circuit_break_duration,
        preemptive_scaling,
        backup_instances,
        aggressive_recycling,
        memory_limit_buffer,
        max_group_unavailable,
        auto_approve_risk,
        confidence_threshold,
        approval_timeout,
        verify_deadline,
        rules
    );
    if p.max_concurrent.is_some() {
        t.max_concurrent = p.max_concurrent;
    }
    let b = &p.backoff;
    t.backoff.initial = b.initial.unwrap_or(t.backoff.initial);
    t.backoff.max = b.max.unwrap_or(t.backoff.max);
    t.backoff.multiplier = b.multiplier.unwrap_or(t.backoff.multiplier);
    t.backoff.reset_after = b.reset_after.unwrap_or(t.backoff.reset_after);
    t.crash_loop.restarts = p.crash_loop.restarts.unwrap_or(t.crash_loop.restarts);
    t.crash_loop.window = p.crash_loop.window.unwrap_or(t.crash_loop.window);
    t.scaling.tolerance = p.scaling.tolerance.unwrap_or(t.scaling.tolerance);
    t.scaling.scale_down_stabilization = p
        .scaling
        .scale_down_stabilization
        .unwrap_or(t.scaling.scale_down_stabilization);
    t
}

/// Builds the tier policies from every tier read (from one or several files): `default` over
/// the built-in defaults, every other tier over `default`. `errors` holds what decoding found;
/// the result is an error when either stage found anything.
pub fn build_policies(
    tiers: &[TierConfig],
    mut errors: ValidationErrors,
) -> Result<BTreeMap<String, TierPolicy>, ValidationErrors> {
    let mut first: HashMap<&str, &TierConfig> = HashMap::new();
    for t in tiers {
        if let Some(prev) = first.get(t.name.as_str()) {
            push(
                &mut errors,
                &t.file,
                t.loc,
                &join("healing_policies", &t.name),
                format!(
                    "expected each tier defined once, found {:?} again (first at {}:{}:{})",
                    t.name, prev.file, prev.loc.line, prev.loc.col
                ),
            );
        } else {
            first.insert(&t.name, t);
        }
    }
    let builtin = TierPolicy::builtin_default();
    let default = match first.get("default") {
        Some(d) => apply(&d.policy, &builtin),
        None => builtin,
    };
    let mut out = BTreeMap::new();
    let mut agent_owner: HashMap<&str, &str> = HashMap::new();
    for t in tiers {
        if out.contains_key(&t.name) {
            continue;
        }
        let mut policy = if t.name == "default" {
            default.clone()
        } else {
            apply(&t.policy, &default)
        };
        policy.name = t.name.clone();
        policy.agents = t.agents.clone();
        policy.labels = t.labels.clone();
        for agent in &t.agents {
            if let Some(owner) = agent_owner.insert(agent, &t.name)
                && owner != t.name
            {
                push(
                    &mut errors,
                    &t.file,
                    t.loc,
                    &join(&join("healing_policies", &t.name), "agents"),
                    format!("expected each agent in one tier, found {agent:?} also in {owner}"),
                );
            }
        }
        if policy.backoff.initial > policy.backoff.max {
            let path = if t.policy.path.is_empty() {
                join("healing_policies", &t.name)
            } else {
                t.policy.path.clone()
            };
            push(
                &mut errors,
                &t.file,
                if t.policy.loc.line > 0 {
                    t.policy.loc
                } else {
                    t.loc
                },
                &join(&path, "backoff"),
                format!(
                    "expected backoff.initial ({}) at most backoff.max ({}), found it larger",
                    fmt_duration(policy.backoff.initial),
                    fmt_duration(policy.backoff.max)
                ),
            );
        }
        out.insert(t.name.clone(), policy);
    }
    out.entry("default".to_owned()).or_insert(default);
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.normalize();
        Err(errors)
    }
}

/// A duration as a user would write it (`300s`, `1.5s`, `250ms`).
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 && d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Whether a target name belongs to `agent` by prefix: `crewai`, `crewai-1`, `crewai_2`,
/// `crewai3` do; `crewaix` does not.
pub fn name_matches_agent(name: &str, agent: &str) -> bool {
    name.strip_prefix(agent)
        .is_some_and(|rest| rest.is_empty() || !rest.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// The tiers a target matches by its label `type`, its name prefix, or a tier's label
/// selector (`default` never matches; it is the fallback).
pub fn matching_tiers<'t>(
    name: &str,
    labels: &BTreeMap<String, String>,
    tiers: &'t BTreeMap<String, TierPolicy>,
) -> Vec<&'t str> {
    tiers
        .values()
        .filter(|t| t.name != "default")
        .filter(|t| {
            let by_type = labels
                .get("type")
                .is_some_and(|ty| t.agents.iter().any(|a| a == ty));
            let by_name = t.agents.iter().any(|a| name_matches_agent(name, a));
            let by_labels =
                !t.labels.is_empty() && t.labels.iter().all(|(k, v)| labels.get(k) == Some(v));
            by_type || by_name || by_labels
        })
        .map(|t| t.name.as_str())
        .collect()
}

/// Validates a decoded fleet against the tiers and builds the model.
pub fn build_fleet(
    file: &str,
    cfg: FleetConfig,
    tiers: &BTreeMap<String, TierPolicy>,
    mut errors: ValidationErrors,
) -> Result<Fleet, ValidationErrors> {
    let mut tiers = tiers.clone();
    tiers
        .entry("default".to_owned())
        .or_insert_with(TierPolicy::builtin_default);
    let tiers = &tiers;
    let mut e = |loc: Loc, path: &str, message: String| push(&mut errors, file, loc, path, message);

    // Unique names.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        let Some((name, loc)) = &t.name else { continue };
        if let Some(&j) = index.get(name.as_str()) {
            let first = cfg.targets[j].name.as_ref().map_or(Loc::default(), |n| n.1);
            e(
                *loc,
                &join(&t.path, "name"),
                format!(
                    "expected a unique target name, found {name:?} again (first at line {})",
                    first.line
                ),
            );
        } else {
            index.insert(name, i);
        }
    }

    // depends_on names a target.
    for t in &cfg.targets {
        for (j, (dep, loc)) in t.depends_on.iter().enumerate() {
            if t.depends_on[..j].iter().any(|(d, _)| d == dep) {
                e(
                    *loc,
                    &format!("{}.depends_on[{j}]", t.path),
                    format!("expected each dependency once, found {dep:?} again"),
                );
            } else if !index.contains_key(dep.as_str()) {
                e(
                    *loc,
                    &format!("{}.depends_on[{j}]", t.path),
                    format!("expected the name of a target in this file, found {dep:?}"),
                );
            }
        }
    }

    // Dependency cycles, each reported once at the edge that leaves its first target.
    for (cycle, (i, j)) in find_cycles(&cfg.targets, &index) {
        let t = &cfg.targets[i];
        e(
            t.depends_on[j].1,
            &format!("{}.depends_on[{j}]", t.path),
            format!("expected no dependency cycle, found {}", cycle.join(" -> ")),
        );
    }

    let tier_names: Vec<&str> = tiers.keys().map(String::as_str).collect();
    let mut targets = Vec::with_capacity(cfg.targets.len());
    for t in cfg.targets {
        let Some((name, name_loc)) = t.name.clone() else {
            continue;
        };
        // Tier: explicit, else matched, else default.
        let tier = match &t.tier {
            Some((tier, loc)) => {
                if !tiers.contains_key(tier) {
                    e(
                        *loc,
                        &join(&t.path, "tier"),
                        format!("expected one of {}, found {tier:?}", tier_names.join(", ")),
                    );
                }
                tier.clone()
            }
            None => {
                let matched = matching_tiers(&name, &t.labels, tiers);
                match matched.as_slice() {
                    [] => "default".to_owned(),
                    [one] => (*one).to_owned(),
                    many => {
                        e(
                            name_loc,
                            &join(&t.path, "name"),
                            format!(
                                "expected a target matching at most one tier (set tier: to choose), found {name:?} matching {}",
                                many.join(" and ")
                            ),
                        );
                        "default".to_owned()
                    }
                }
            }
        };

        // Limits that nothing could ever measure would pass silently forever.
        if let (Some(loc), None) = (t.performance_at, &t.metrics) {
            e(
                loc,
                &join(&t.path, "probes.performance"),
                "expected metrics: to check performance limits against, found none".to_owned(),
            );
        }
        let finds_process = t.supervise.is_some()
            || t.probes
                .iter()
                .any(|p| matches!(p.check, Check::Process { .. }));
        if let (Some(loc), false) = (t.resources_at, finds_process) {
            e(
                loc,
                &join(&t.path, "probes.resources"),
                "expected a process probe or supervise: to find the process to measure, found neither"
                    .to_owned(),
            );
        }
        if let (Some((loc, path)), None) = (&t.supervised_probe_at, &t.supervise) {
            e(
                *loc,
                path,
                "expected a target with supervise: for a supervised process probe, found none"
                    .to_owned(),
            );
        }
        let mut actions: BTreeMap<Strategy, ActionSpec> = BTreeMap::new();
        let replicas = t.replicas.unwrap_or(Replicas {
            initial: 1,
            min: 1,
            max: 1,
        });
        for (strategy, (spec, loc)) in &t.actions {
            let path = join(&join(&t.path, "actions"), strategy.as_str());
            if spec.kind == ActionKind::Supervisor && t.supervise.is_none() {
                e(
                    *loc,
                    &join(&path, "supervisor"),
                    "expected a target with supervise: for a supervisor action, found none"
                        .to_owned(),
                );
            }
            if *strategy == Strategy::Scale && replicas.max <= replicas.min {
                e(
                    *loc,
                    &path,
                    format!(
                        "expected replicas.max greater than replicas.min for a scale action, found min {} and max {}",
                        replicas.min, replicas.max
                    ),
                );
            }
            actions.insert(*strategy, spec.clone());
        }
        if let Some(f) = &t.fallback
            && f.kind == ActionKind::Supervisor
            && t.supervise.is_none()
        {
            e(
                t.loc,
                &join(&t.path, "fallback.supervisor"),
                "expected a target with supervise: for a supervisor action, found none".to_owned(),
            );
        }

        let mut probes = t.probes.clone();
        if t.supervise.is_some() {
            // medic owns the process, so it can restart, reset and recreate it without a
            // script, and knows whether it is alive without a probe. Without recreate the
            // ladder of a crash-looping process ran out after three crashes, below the shipped
            // crash-loop limit of four, so the crash-loop rule could never give up on it.
            for s in [Strategy::Restart, Strategy::Reset, Strategy::Recreate] {
                actions.entry(s).or_insert(ActionSpec {
                    kind: ActionKind::Supervisor,
                    timeout: Duration::from_secs(30),
                    post_condition: None,
                    close: None,
                });
            }
            if !probes.iter().any(|p| p.level == ProbeLevel::Liveness) {
                probes.insert(
                    0,
                    ProbeSpec {
                        level: ProbeLevel::Liveness,
                        check: Check::Process {
                            selector: ProcessSelector::Supervised,
                        },
                        every: Duration::from_secs(10),
                        timeout: Duration::from_secs(1),
                        failure_threshold: 3,
                        success_threshold: 1,
                    },
                );
            }
        }

        targets.push(Target {
            name: TargetId::from(name.as_str()),
            tier,
            labels: t.labels,
            group: t.group,
            probes,
            performance: t.performance,
            resources: t.resources,
            metrics: t.metrics,
            depends_on: t
                .depends_on
                .iter()
                .map(|(d, _)| TargetId::from(d.as_str()))
                .collect(),
            actions,
            fallback: t.fallback,
            supervise: t.supervise,
            startup_delay: t.startup_delay.unwrap_or(Duration::from_secs(5)),
            replicas,
        });
    }

    if errors.is_empty() {
        Ok(Fleet {
            targets,
            tiers: tiers.clone(),
        })
    } else {
        errors.normalize();
        Err(errors)
    }
}

/// The cycles a depth-first search meets (at least one in every group of targets that depend
/// on each other in a circle), each once, as names from its first target (in file order) back
/// to it, with the (target, depends_on index) of its first edge.
fn find_cycles(
    targets: &[TargetConfig],
    index: &HashMap<&str, usize>,
) -> Vec<(Vec<String>, (usize, usize))> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let n = targets.len();
    let edges: Vec<Vec<(usize, usize)>> = targets
        .iter()
        .map(|t| {
            t.depends_on
                .iter()
                .enumerate()
                .filter_map(|(j, (d, _))| index.get(d.as_str()).map(|&k| (k, j)))
                .collect()
        })
        .collect();
    let mut mark = vec![Mark::New; n];
    let mut out = Vec::new();
    let mut seen_cycles: Vec<Vec<usize>> = Vec::new();
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next edge) frames; `stack` is the active path.
        let mut frames: Vec<(usize, usize)> = vec![(start, 0)];
        let mut path: Vec<(usize, usize)> = Vec::new(); // (node, edge index used to leave it)
        mark[start] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = frames.last_mut() {
            if *next < edges[node].len() {
                let (to, j) = edges[node][*next];
                *next += 1;
                match mark[to] {
                    Mark::New => {
                        path.push((node, j));
                        mark[to] = Mark::Active;
                        frames.push((to, 0));
                    }
                    Mark::Active => {
                        let mut cyc: Vec<(usize, usize)> =
                            path.iter().copied().skip_while(|(v, _)| *v != to).collect();
                        cyc.push((node, j));
                        let mut key: Vec<usize> = cyc.iter().map(|(v, _)| *v).collect();
                        key.sort_unstable();
                        if !seen_cycles.contains(&key) {
                            seen_cycles.push(key);
                            // Rotate so that the cycle starts at its first target in file order.
                            let first = cyc
                                .iter()
                                .enumerate()
                                .min_by_key(|(_, (v, _))| *v)
                                .map_or(0, |(i, _)| i);
                            cyc.rotate_left(first);
                            let mut names: Vec<String> =
                                cyc.iter().map(|(v, _)| name_of(&targets[*v])).collect();
                            names.push(name_of(&targets[cyc[0].0]));
                            out.push((names, cyc[0]));
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                frames.pop();
                path.pop();
            }
        }
    }
    out
}

fn name_of(t: &TargetConfig) -> String {
    t.name.as_ref().map_or_else(String::new, |(n, _)| n.clone())
}
