//! Property tests: random fleets and event schedules, every invariant checked after EVERY step,
//! and the journal replayed into a fresh engine after every step.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use medic_core::{
    HealthState, Outcome, PredictionFinding, Risk, Severity, Strategy, TargetId, Timestamp,
};
use medic_orchestrator::*;
use medic_policy::TierPolicy;
use proptest::prelude::{
    ProptestConfig, TestCaseError, any, prop_assert, prop_assert_eq, prop_oneof, proptest,
};
use proptest::strategy::Strategy as _;

#[derive(Clone, Debug)]
struct FleetSpec {
    targets: Vec<(u8, Option<u8>, Vec<usize>, bool)>, // tier, group, deps, fallback
    max_concurrent: u32,
    tier_max: [Option<u32>; 2],
    cooldown: u64,
    max_attempts: u32,
    crash_restarts: u32,
    auto_high: bool,
    dry_run: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Finding(usize, u8),
    Advance(u64),
    Outcome(usize, u8),
    Verify(usize, u8),
    Approval(usize, bool),
    Maintenance(usize, bool, Option<u64>),
    Resume(usize),
}

fn fleet() -> impl proptest::strategy::Strategy<Value = FleetSpec> {
    (2usize..9)
        .prop_flat_map(|n| {
            let targets = proptest::collection::vec(
                (
                    0u8..2,
                    proptest::option::of(0u8..2),
                    proptest::collection::vec(0usize..100, 0..3),
                    any::<bool>(),
                ),
                n,
            )
            .prop_map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (tier, g, deps, fb))| {
                        let mut d: Vec<usize> = if i == 0 {
                            vec![]
                        } else {
                            deps.into_iter().map(|x| x % i).collect()
                        };
                        d.sort_unstable();
                        d.dedup();
                        (tier, g, d, fb)
                    })
                    .collect::<Vec<_>>()
            });
            (
                targets,
                1u32..5,
                proptest::option::of(1u32..3),
                0u64..90,
                1u32..4,
                2u32..5,
                any::<bool>(),
                proptest::bool::weighted(0.15),
            )
        })
        .prop_map(
            |(
                targets,
                max_concurrent,
                tmax,
                cooldown,
                max_attempts,
                crash_restarts,
                auto_high,
                dry_run,
            )| {
                FleetSpec {
                    targets,
                    max_concurrent,
                    tier_max: [tmax, None],
                    cooldown,
                    max_attempts,
                    crash_restarts,
                    auto_high,
                    dry_run,
                }
            },
        )
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..100, 0u8..7).prop_map(|(t, k)| Op::Finding(t, k)),
        4 => (1u64..40).prop_map(Op::Advance),
        3 => (0usize..100, 0u8..4).prop_map(|(p, r)| Op::Outcome(p, r)),
        3 => (0usize..100, 0u8..3).prop_map(|(p, r)| Op::Verify(p, r)),
        1 => (0usize..100, any::<bool>()).prop_map(|(p, a)| Op::Approval(p, a)),
        1 => (0usize..100, any::<bool>(), proptest::option::of(1u64..200)).prop_map(|(s, t, d)| Op::Maintenance(s, t, d)),
        1 => (0usize..100).prop_map(Op::Resume),
    ]
}

const TIER_NAMES: [&str; 2] = ["critical", "default"];

fn build(
    spec: &FleetSpec,
) -> (
    Vec<EngineTarget>,
    BTreeMap<String, TierPolicy>,
    EngineConfig,
) {
    let targets = spec
        .targets
        .iter()
        .enumerate()
        .map(|(i, (tier, g, deps, fb))| {
            let mut t = target(&format!("t{i}"), TIER_NAMES[*tier as usize]);
            t.group = g.map(|g| format!("g{g}"));
            t.depends_on = deps
                .iter()
                .map(|d| TargetId::new(format!("t{d}")))
                .collect();
            t.has_fallback = *fb;
            t
        })
        .collect();
    let pols = (0..2)
        .map(|k| {
            let mut p = policy(TIER_NAMES[k]);
            p.max_concurrent = spec.tier_max[k];
            p.restart_cooldown = secs(spec.cooldown);
            p.max_restart_attempts = spec.max_attempts;
            p.attempt_window = secs(600);
            p.crash_loop.restarts = spec.crash_restarts;
            p.crash_loop.window = secs(300);
            p.backoff.initial = secs(5);
            p.backoff.max = secs(40);
            p.backoff.reset_after = secs(120);
            p.approval_timeout = secs(120);
            p.verify_deadline = secs(30);
            p.max_group_unavailable = 0.3;
            p.auto_approve_risk = if spec.auto_high {
                Risk::High
            } else {
                Risk::Medium
            };
            p
        })
        .collect();
    let mut cfg = EngineConfig::standard(spec.max_concurrent);
    if spec.dry_run {
        cfg.mode = RunMode::DryRun;
    }
    (targets, tiers(pols), cfg)
}

fn finding(name: &str, now: Timestamp, kind: u8) -> medic_core::Finding {
    let s = now.as_millis() / 1000;
    let mut f = match kind {
        0 => unhealthy(name, s),
        1 => {
            let mut f = degraded(name, s);
            f.utilization = Some(1.3);
            f
        }
        2 => {
            let mut f = degraded(name, s);
            f.error_rate = Some(0.8);
            f
        }
        3 => healthy(name, s),
        4 => {
            // quiet: an HPA scale-down candidate
            let mut f = healthy(name, s);
            f.utilization = Some(0.2);
            f
        }
        5 => {
            let mut f = unhealthy(name, s);
            f.version_changed_at = Some(now);
            f
        }
        _ => {
            let mut f = healthy(name, s);
            f.severity = Severity::Warning;
            f.prediction = Some(PredictionFinding {
                probability: 0.9,
                alarm: true,
                horizon_s: 120,
                factors: vec![],
                recommended: Strategy::Restart,
            });
            f
        }
    };
    f.at = now;
    f
}

/// Mirrors what the engine must respect, from the events fed and the commands it emits.
struct Checker {
    spec_targets: Vec<(usize, Option<usize>, Vec<usize>)>, // tier, group, deps
    policies: Vec<TierPolicy>,
    max_concurrent: u32,
    group_members: HashMap<usize, u32>,
    open: HashMap<ActionId, (usize, ActKind)>,
    /// Heal intents per target: when, what, and whether it was a dry run's.
    intents: Vec<Vec<(Timestamp, Strategy, bool)>>,
    health: Vec<HealthState>,
    maint_target: Vec<Option<Timestamp>>,
    maint_tier: [Option<Timestamp>; 2],
    held: Vec<bool>,
    /// When each target went down, as its journal says (crash-loop detection's input).
    crashes: Vec<Vec<Timestamp>>,
}

impl Checker {
    fn new(spec: &FleetSpec, tiers: &BTreeMap<String, TierPolicy>) -> Self {
        let spec_targets: Vec<_> = spec
            .targets
            .iter()
            .map(|(t, g, d, _)| (*t as usize, g.map(|g| g as usize), d.clone()))
            .collect();
        let mut group_members = HashMap::new();
        for (_, g, _) in &spec_targets {
            if let Some(g) = g {
                *group_members.entry(*g).or_insert(0) += 1;
            }
        }
        let n = spec_targets.len();
        Checker {
            spec_targets,
            policies: TIER_NAMES.iter().map(|n| tiers[*n].clone()).collect(),
            max_concurrent: spec.max_concurrent,
            group_members,
            open: HashMap::new(),
            intents: vec![vec![]; n],
            health: vec![HealthState::Unknown; n],
            maint_target: vec![None; n],
            maint_tier: [None, None],
            held: vec![false; n],
            crashes: vec![vec![]; n],
        }
    }

    fn in_maintenance(&self, i: usize, now: Timestamp) -> bool {
        self.maint_target[i].is_some_and(|u| now < u)
            || self.maint_tier[self.spec_targets[i].0].is_some_and(|u| now < u)
    }

    fn idx(name: &TargetId) -> usize {
        name.as_str()[1..].parse().unwrap()
    }

    fn observe_event(&mut self, ev: &Event) {
        match ev {
            Event::Finding(f) => {
                let i = Self::idx(&f.target);
                self.health[i] = f.health;
            }
            Event::Maintenance { scope, until } => match scope {
                MaintenanceScope::Target(t) => self.maint_target[Self::idx(t)] = *until,
                MaintenanceScope::Tier(n) => {
                    let k = TIER_NAMES.iter().position(|x| x == n).unwrap();
                    self.maint_tier[k] = *until;
                }
            },
            _ => {}
        }
    }

    fn check(&mut self, now: Timestamp, cmds: &[Command]) -> Result<(), String> {
        for (k, c) in cmds.iter().enumerate() {
            match c {
                Command::Journal(JournalEntry::IncidentOpened { target, health, .. }) => {
                    let i = Self::idx(target);
                    if self.open.values().any(|(t, _)| *t == i) || self.held[i] {
                        return Err(format!("incident opened on busy or held {target}"));
                    }
                    if *health == HealthState::Unhealthy {
                        self.crashes[i].push(now);
                    }
                }
                Command::Journal(JournalEntry::Intent {
                    action,
                    target,
                    kind,
                    key,
                    reason,
                    dry_run,
                    ..
                }) => {
                    let i = Self::idx(target);
                    let (tier, group, deps) = self.spec_targets[i].clone();
                    let p = &self.policies[tier];
                    if self.open.values().any(|(t, _)| *t == i) {
                        return Err(format!("two actions at once on {target}"));
                    }
                    if self.in_maintenance(i, now) {
                        return Err(format!("act on {target} during maintenance"));
                    }
                    match cmds.get(k + 1) {
                        Some(Command::Act(a))
                            if a.action == *action && &a.idempotency_key == key => {}
                        other => {
                            return Err(format!(
                                "intent {action} not followed by its act: {other:?}"
                            ));
                        }
                    }
                    if let ActKind::Heal(s) = kind {
                        let hist = &self.intents[i];
                        // a dry run's planned act holds the cooldown too
                        if let Some((last, _, _)) = hist.iter().rev().find(|(_, x, _)| x == s)
                            && now < *last + p.restart_cooldown
                        {
                            return Err(format!(
                                "{s} on {target} at {now} inside cooldown from {last}"
                            ));
                        }
                        // only executed acts are attempts; a dry run's are not
                        let n = hist
                            .iter()
                            .filter(|(t, x, dry)| !dry && x == s && *t >= now - p.attempt_window)
                            .count()
                            + usize::from(!dry_run);
                        if n as u32 > p.max_restart_attempts {
                            return Err(format!("{n} {s} on {target} within the attempt window"));
                        }
                        let since = now - p.crash_loop.window;
                        let crashes = self.crashes[i].iter().filter(|c| **c >= since).count();
                        if reason != "approved"
                            && self.health[i] == HealthState::Unhealthy
                            && crashes as u32 >= p.crash_loop.restarts
                        {
                            return Err(format!(
                                "{s} on {target}, down again after {crashes} crashes within \
                                 the crash-loop window"
                            ));
                        }
                        for d in deps {
                            if self.open.values().any(|(t, _)| *t == d) {
                                return Err(format!(
                                    "{target} acted on while its dependency t{d} is being healed"
                                ));
                            }
                            if matches!(
                                self.health[d],
                                HealthState::Unhealthy | HealthState::Degraded
                            ) {
                                return Err(format!(
                                    "{target} acted on while its dependency t{d} is {}",
                                    self.health[d]
                                ));
                            }
                        }
                        self.intents[i].push((now, *s, *dry_run));
                    }
                    self.open.insert(*action, (i, *kind));
                    let global = self.open.len() as u32;
                    if global > self.max_concurrent {
                        return Err(format!("{global} actions above the global budget"));
                    }
                    let in_tier = self
                        .open
                        .values()
                        .filter(|(t, _)| self.spec_targets[*t].0 == tier)
                        .count() as u32;
                    if let Some(m) = p.max_concurrent
                        && in_tier > m
                    {
                        return Err(format!("{in_tier} actions above tier budget {m}"));
                    }
                    if let Some(g) = group {
                        let members = self.group_members[&g];
                        let allowed =
                            ((f64::from(members) * p.max_group_unavailable).floor() as u32).max(1);
                        let n = self
                            .open
                            .values()
                            .filter(|(t, _)| self.spec_targets[*t].1 == Some(g))
                            .count() as u32;
                        if n > allowed {
                            return Err(format!("{n} actions in group g{g} above {allowed}"));
                        }
                    }
                }
                Command::Act(a) => match k.checked_sub(1).map(|j| &cmds[j]) {
                    Some(Command::Journal(JournalEntry::Intent { action, .. }))
                        if *action == a.action => {}
                    _ => return Err(format!("act {} without its intent just before", a.action)),
                },
                Command::Journal(JournalEntry::Closed { action, result, .. }) => {
                    let Some((i, kind)) = self.open.remove(action) else {
                        return Err(format!("closed unknown action {action}"));
                    };
                    if *result == medic_strategy::AttemptResult::Failure
                        && matches!(
                            kind,
                            ActKind::Heal(
                                Strategy::Restart
                                    | Strategy::Reset
                                    | Strategy::Recreate
                                    | Strategy::Rollback
                            )
                        )
                    {
                        self.crashes[i].push(now);
                    }
                }
                Command::Journal(JournalEntry::Verified {
                    action, outcome, ..
                }) => {
                    let (i, _) = self.open.get(action).ok_or("verified a closed action")?;
                    match outcome {
                        Outcome::Success => self.health[*i] = HealthState::Healthy,
                        Outcome::Unknown => self.health[*i] = HealthState::Unknown,
                        _ => {}
                    }
                }
                Command::Journal(JournalEntry::Escalated { target, reason, .. }) => {
                    let i = Self::idx(target);
                    if self.held[i] {
                        return Err(format!("{target} escalated twice without a resume"));
                    }
                    self.held[i] = true;
                    match cmds.get(k + 1) {
                        Some(Command::Escalate(e))
                            if e.target == *target && e.reason == *reason => {}
                        other => {
                            return Err(format!(
                                "escalation of {target} not followed by its command: {other:?}"
                            ));
                        }
                    }
                }
                Command::Journal(JournalEntry::Resumed { target, .. }) => {
                    self.held[Self::idx(target)] = false;
                    self.crashes[Self::idx(target)].clear();
                }
                Command::Escalate(e) => match k.checked_sub(1).map(|j| &cmds[j]) {
                    Some(Command::Journal(JournalEntry::Escalated { target, .. }))
                        if *target == e.target => {}
                    _ => return Err(format!("escalate {} without its journal entry", e.target)),
                },
                _ => {}
            }
        }
        Ok(())
    }
}

fn run(spec: FleetSpec, ops: Vec<Op>) -> Result<Coverage, TestCaseError> {
    let mut cov = Coverage::default();
    let (targets, tiers_map, cfg) = build(&spec);
    let n = targets.len();
    let mut engine = Engine::new(targets.clone(), tiers_map.clone(), cfg.clone()).unwrap();
    let mut checker = Checker::new(&spec, &tiers_map);
    let mut journal: Vec<JournalEntry> = vec![];
    let mut now = Timestamp::from_secs(1);
    let mut open_acts: Vec<ActionId> = vec![];
    let mut open_verifies: Vec<ActionId> = vec![];
    let mut approvals: Vec<ApprovalId> = vec![];
    let mut out = Vec::new();
    // the engine recovered from the journal after the previous step
    let mut recovered: Option<Engine> = None;
    for op in ops {
        let ev = match op {
            Op::Finding(t, k) => Event::Finding(finding(&format!("t{}", t % n), now, k)),
            Op::Advance(s) => {
                now += secs(s);
                Event::Tick
            }
            Op::Outcome(p, r) if !open_acts.is_empty() => {
                let action = open_acts.remove(p % open_acts.len());
                let outcome = match r {
                    0 | 1 => Outcome::Success,
                    2 => Outcome::Failure("no".into()),
                    _ => Outcome::Unknown,
                };
                Event::ActionOutcome { action, outcome }
            }
            Op::Verify(p, r) if !open_verifies.is_empty() => {
                let action = open_verifies.remove(p % open_verifies.len());
                let outcome = match r {
                    0 => Outcome::Success,
                    1 => Outcome::Failure("still".into()),
                    _ => Outcome::Unknown,
                };
                Event::VerifyResult { action, outcome }
            }
            Op::Approval(p, a) if !approvals.is_empty() => {
                let approval = approvals.remove(p % approvals.len());
                Event::Approval {
                    approval,
                    decision: if a { Decision::Approve } else { Decision::Deny },
                }
            }
            Op::Maintenance(s, is_target, d) => Event::Maintenance {
                scope: if is_target {
                    MaintenanceScope::Target(TargetId::new(format!("t{}", s % n)))
                } else {
                    MaintenanceScope::Tier(TIER_NAMES[s % 2].to_owned())
                },
                until: d.map(|d| now + secs(d)),
            },
            Op::Resume(t) => Event::Resume {
                target: TargetId::new(format!("t{}", t % n)),
            },
            _ => Event::Tick,
        };
        checker.observe_event(&ev);
        // A recovered engine given the same finding never journals an incident the live one
        // does not (no duplicate IncidentOpened after recovery).
        let recovered_opened = match (&ev, recovered.as_mut()) {
            (Event::Finding(_), Some(r)) => {
                out.clear();
                r.step(now, ev.clone(), &mut out);
                out.iter()
                    .any(|c| matches!(c, Command::Journal(JournalEntry::IncidentOpened { .. })))
            }
            _ => false,
        };
        out.clear();
        engine.step(now, ev, &mut out);
        let opened = out
            .iter()
            .any(|c| matches!(c, Command::Journal(JournalEntry::IncidentOpened { .. })));
        prop_assert!(
            opened || !recovered_opened,
            "at {}: a recovered engine reopened an open incident",
            now
        );
        if recovered_opened {
            cov.recovered_reopened += 1;
        }
        if let Err(e) = checker.check(now, &out) {
            return Err(TestCaseError::fail(format!(
                "at {now}: {e}\ncommands: {out:#?}"
            )));
        }
        for c in &out {
            match c {
                Command::Journal(j) => journal.push(j.clone()),
                Command::Act(a) if !a.dry_run => open_acts.push(a.action),
                Command::Verify { action, .. } => open_verifies.push(*action),
                Command::Notify(Notice::ApprovalRequested { approval, .. }) => {
                    approvals.push(*approval)
                }
                _ => {}
            }
        }
        for c in &out {
            match c {
                Command::Act(a) => match a.kind {
                    ActKind::Heal(s) => *cov.acts.entry(s.as_str()).or_default() += 1,
                    ActKind::Fallback => cov.fallbacks += 1,
                },
                Command::Escalate(e) => {
                    *cov.escalations
                        .entry(format!("{:?}", e.reason))
                        .or_default() += 1
                }
                Command::Verify { .. } => cov.verifies += 1,
                Command::Circuit { .. } => cov.circuits += 1,
                Command::Notify(Notice::ApprovalRequested { .. }) => cov.approvals += 1,
                _ => {}
            }
        }
        prop_assert_eq!(engine.n_active() as usize, checker.open.len());
        let r = Engine::recover(
            targets.clone(),
            tiers_map.clone(),
            cfg.clone(),
            journal.clone(),
        )
        .unwrap();
        let state = engine.durable_state();
        prop_assert_eq!(r.durable_state(), state.clone());
        recovered = Some(r);
        for t in &state.targets {
            if t.half_open_failures > 0 {
                cov.recovered_half_open_failures += 1;
            }
            if !t.crashes.is_empty() {
                cov.recovered_crashes += 1;
            }
        }
    }
    cov.in_maintenance += engine.stats().findings_in_maintenance;
    Ok(cov)
}

/// What a batch of random schedules exercised, so the properties are known not to be vacuous.
#[derive(Debug, Default)]
struct Coverage {
    acts: BTreeMap<&'static str, u64>,
    escalations: BTreeMap<String, u64>,
    fallbacks: u64,
    verifies: u64,
    circuits: u64,
    approvals: u64,
    in_maintenance: u64,
    /// Steps after which a recovered engine had to restore failed half-open probes.
    recovered_half_open_failures: u64,
    /// Steps after which a recovered engine had to restore crashes.
    recovered_crashes: u64,
    /// Findings on which a recovered engine opened an incident (the live one did too).
    recovered_reopened: u64,
}

#[test]
fn random_schedules_exercise_every_path() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strat = (fleet(), proptest::collection::vec(op(), 100..200));
    let mut total = Coverage::default();
    for _ in 0..64 {
        let (spec, ops) =
            proptest::strategy::ValueTree::current(&strat.new_tree(&mut runner).unwrap());
        let c = run(spec, ops).unwrap();
        for (k, v) in c.acts {
            *total.acts.entry(k).or_default() += v;
        }
        for (k, v) in c.escalations {
            *total.escalations.entry(k).or_default() += v;
        }
        total.fallbacks += c.fallbacks;
        total.verifies += c.verifies;
        total.circuits += c.circuits;
        total.approvals += c.approvals;
        total.in_maintenance += c.in_maintenance;
        total.recovered_half_open_failures += c.recovered_half_open_failures;
        total.recovered_crashes += c.recovered_crashes;
        total.recovered_reopened += c.recovered_reopened;
    }
    eprintln!("{total:#?}");
    for s in ["restart", "reset", "scale", "circuit_break"] {
        assert!(
            total.acts.get(s).copied().unwrap_or(0) > 0,
            "no {s}: {total:#?}"
        );
    }
    for r in ["GaveUp", "LadderExhausted", "ApprovalTimedOut"] {
        assert!(
            total.escalations.get(r).copied().unwrap_or(0) > 0,
            "no {r}: {total:#?}"
        );
    }
    assert!(total.fallbacks > 0 && total.verifies > 0 && total.circuits > 0);
    assert!(total.approvals > 0 && total.in_maintenance > 0);
    // recovery was compared on the state this session made durable, not only on empty state
    assert!(total.recovered_half_open_failures > 0 && total.recovered_crashes > 0);
    assert!(
        total.recovered_reopened > 0,
        "recovered engines never opened an incident"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_step(spec in fleet(), ops in proptest::collection::vec(op(), 1..160)) {
        run(spec, ops)?;
    }
}

/// A target that crashes again 20 s after every heal, under any policy in which the crash-loop
/// threshold fits inside its window (N restarts spaced by the cooldown), always ends held
/// (gave up, or escalated when the ladder or attempts ran out first) with exactly one
/// escalation, and is never acted on again until resumed.
fn crash_loop_case(
    cooldown: u64,
    restarts: u32,
    window: u64,
    attempts: u32,
) -> Result<(), TestCaseError> {
    let mut p = policy("default");
    p.restart_cooldown = secs(cooldown);
    p.crash_loop.restarts = restarts;
    p.crash_loop.window = secs(window);
    p.max_restart_attempts = attempts;
    p.auto_approve_risk = Risk::High;
    let mut h = Harness::new(
        vec![target("api", "default")],
        tiers(vec![p]),
        EngineConfig::standard(1),
    );
    let mut down = true;
    let mut crash_at = 0u64;
    let mut escalations = 0;
    let mut acts_after_hold = 0;
    let mut held = false;
    let mut pending: Vec<(u64, Event)> = vec![];
    for s in 0..20_000u64 {
        if !down && s >= crash_at {
            down = true;
        }
        if down && s % 10 == 0 {
            h.step(s, Event::Finding(unhealthy("api", s)));
        }
        let due: Vec<Event> = pending
            .iter()
            .filter(|(d, _)| *d == s)
            .map(|(_, e)| e.clone())
            .collect();
        pending.retain(|(d, _)| *d != s);
        let mut lines = vec![];
        for ev in due {
            if let Event::VerifyResult {
                outcome: Outcome::Success,
                ..
            } = ev
            {
                down = false;
                crash_at = s + 20;
            }
            lines.extend(h.step(s, ev));
        }
        lines.extend(h.step(s, Event::Tick));
        for l in &lines {
            let w: Vec<&str> = l.split(' ').collect();
            match w[0] {
                "act" => {
                    if held {
                        acts_after_hold += 1;
                    }
                    let id: u64 = w[1][1..].parse().unwrap();
                    pending.push((
                        s + 1,
                        Event::ActionOutcome {
                            action: ActionId(id),
                            outcome: Outcome::Success,
                        },
                    ));
                }
                "verify" => {
                    let id: u64 = w[1][1..].parse().unwrap();
                    pending.push((
                        s + 1,
                        Event::VerifyResult {
                            action: ActionId(id),
                            outcome: Outcome::Success,
                        },
                    ));
                }
                "escalate" => {
                    escalations += 1;
                    held = true;
                }
                _ => {}
            }
        }
    }
    let v = h.engine.target_view("api").unwrap();
    prop_assert!(v.gave_up || v.escalated, "not held: {v:?}");
    prop_assert_eq!(escalations, 1);
    // a fallback is the only act allowed after the hold, and this target has none
    prop_assert_eq!(acts_after_hold, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn crash_loop_always_ends_held_with_one_escalation(
        cooldown in 0u64..60,
        restarts in 2u32..6,
        extra in 1u64..600,
        attempts in 1u32..6,
    ) {
        let window = cooldown * u64::from(restarts) + 30 * u64::from(restarts) + extra;
        crash_loop_case(cooldown, restarts, window, attempts)?;
    }
}
