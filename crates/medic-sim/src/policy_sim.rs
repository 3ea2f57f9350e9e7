//! The policy simulator: the real healing engine driven over virtual time by a modelled fleet.
//!
//! "What would this policy have done?" — [`simulate`] generates a seeded [`Scenario`] (faults
//! and maintenance windows over the run) and [`run`] plays it against a fresh
//! [`Engine`]: the world turns each target's true condition into the [`Finding`] the probes
//! and detectors would produce, answers every [`Command::Act`] and [`Command::Verify`] from
//! the fault model ([`FaultKind::fixed_by`]), and checks invariants on the command stream as
//! it goes. The result is a [`SimReport`]; [`compare`] lines two up.
//!
//! # The world model
//! - **Faults** start at their scheduled time on a healthy target (a fault for a target that
//!   already has one is skipped and counted). Kinds with a precursor (leak, latency creep,
//!   error rise, queue growth, fd leak) first show an anomaly and a failure prediction — with
//!   probability [`SimConfig::precursor_recall`], one third of the way to the failure — and
//!   fail after their `time_to_failure`; a preemptive action that fixes them before then
//!   *averts* the failure. Other kinds fail at once. Error bursts and dependency outages end
//!   on their own after `lasts`.
//! - **Detection delay**: a failure visible to the liveness probe is reported after the
//!   target's `liveness_delay` (probe interval × failure threshold), a metric symptom after
//!   its `metrics_delay`. While a fault lasts, its finding is repeated every
//!   [`REFRESH`] (the probes keep failing); flapping alternates unhealthy and healthy.
//! - **Dependencies**: when a target's failure is detected, each of its dependents without a
//!   fault of its own reports a degraded finding blamed on the dependency (dependencies
//!   level failing, service-dependency diagnosis), healthy again when the dependency is.
//! - **Actions**: an act finishes after a per-kind duration ([`action_duration`]) with a
//!   successful outcome; if `fault.fixed_by(strategy)` the fault ends then. A reroute ends
//!   an instance-local fault only while another member of the target's group is free of
//!   faults to take its traffic. Whether a target *has* an action for a strategy (every
//!   third generated target has no `repair`) is the engine's business: it never acts a
//!   strategy the target has no action for. A verification is
//!   answered one second later: success when the target has no fault and no failing
//!   dependency, failure otherwise. A target healed by anything reports healthy at its next
//!   liveness probe (10 s later).
//! - **Humans**: approval requests are approved after [`SimConfig::approval_delay`] (or never,
//!   when `None`: they time out into escalations); an escalated target is fixed by a human
//!   [`SimConfig::human_fix_after`] later.
//!
//! # Time
//! Events sit in a binary heap ordered by (time, sequence) and are handled at their own time.
//! [`Event::Tick`] is sent every [`SimConfig::tick`] (1 s by default) while anything is open
//! (a fault, a queued or running action); while nothing is, the clock jumps to the next
//! event, rounded up to the tick grid. So quiet stretches cost nothing and busy ones are
//! dispatched at the engine's intended cadence.
//!
//! # Measures
//! An *incident* is a fault that became a visible failure. *MTTR* is, per resolved incident,
//! the time from the failure's onset (the fault's start, or the end of a precursor) to the
//! fault's end; mean and p95 over incidents resolved within the run. *Averted* counts
//! precursor faults ended by an engine action before they failed.
//!
//! # Invariants checked on the command stream ([`SimReport::violations`])
//! `act_without_intent` (an act not preceded by its journaled intent), `two_in_flight` (an
//! act on a target whose previous act is not closed), `act_in_maintenance` (an act on a
//! target or tier inside a maintenance window the simulator opened), `global_budget`,
//! `tier_budget`, `group_budget` (open intents above the engine's, the tier's or
//! `max(1, ⌊members × max_group_unavailable⌋)` of the group).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Duration;

use medic_core::{
    AnomalyFinding, AnomalyKind, DiagnosisCategory, DiagnosisFinding, Finding, HealthState,
    LevelSet, Outcome, PredictionFinding, ProbeLevel, Strategy, TargetId, Timestamp,
};
use medic_orchestrator::{
    ActKind, ActionId, ApprovalId, Command, Decision, Engine, EngineConfig, EscalationReason,
    Event, JournalEntry, MaintenanceScope, Notice, Stats,
};
use medic_strategy::{
    AttemptHistory, AttemptResult, IncidentSignature, Learner, SharedLearner, failed_in_incident,
};
use rand::Rng;
use serde::Serialize;

use crate::fault::FaultKind;
use crate::fleet::SimFleet;
use crate::rng::{rng_for, uniform};

/// How often the probes of a faulty target repeat their finding.
pub const REFRESH: Duration = Duration::from_secs(60);

/// When a healed target's next liveness probe reports it healthy.
const HEALTHY_AFTER: u64 = 10_000;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused the fleet.
    #[error("the engine refused the fleet")]
    Engine(#[source] medic_orchestrator::Error),
    /// A scheduled fault or window names a target index outside the fleet.
    #[error("scenario names target #{0}, the fleet has fewer")]
    UnknownTarget(usize),
}

/// Settings of one simulation run. [`SimConfig::standard`] documents the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Length of the run in virtual time.
    pub duration: Duration,
    /// Seeds the scenario.
    pub seed: u64,
    /// Faults per target per day.
    pub faults_per_target_day: f64,
    /// Maintenance windows (one hour each) per target per day.
    pub maintenance_per_target_day: f64,
    /// The engine's global budget.
    pub max_concurrent: u32,
    /// Tick cadence while anything is open.
    pub tick: Duration,
    /// A human approves each approval request after this; `None`: nobody answers.
    pub approval_delay: Option<Duration>,
    /// A human fixes an escalated target this long after the escalation.
    pub human_fix_after: Duration,
    /// Probability that detection sees a precursor before the failure.
    pub precursor_recall: f64,
    /// Learning from outcomes: every verified outcome of a heal act is fed, as it happens,
    /// to a [`SharedLearner`] keyed by the signature of the finding the act answered, and
    /// the engine ranks its plans with it (see [`medic_strategy::learn`]).
    pub learning: bool,
    /// What the learner knows at the start (e.g. a model from `medic train signatures`);
    /// `None`: nothing. Only used with `learning`.
    pub prior_learner: Option<Learner>,
}

impl SimConfig {
    /// `days` days with seed `seed`: 0.2 faults and 0.005 maintenance windows per target per
    /// day, a global budget of 200 actions, 1 s ticks, approvals after 2 min, humans fix
    /// escalated targets after 30 min, precursors seen 80 % of the time, no learning.
    pub fn standard(days: f64, seed: u64) -> SimConfig {
        SimConfig {
            duration: Duration::from_secs_f64((days * 86_400.0).max(0.0)),
            seed,
            faults_per_target_day: 0.2,
            maintenance_per_target_day: 0.005,
            max_concurrent: 200,
            tick: Duration::from_secs(1),
            approval_delay: Some(Duration::from_secs(120)),
            human_fix_after: Duration::from_secs(1800),
            precursor_recall: 0.8,
            learning: false,
            prior_learner: None,
        }
    }
}

/// One fault of a scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduledFault {
    /// Start, in seconds from the beginning of the run.
    pub at: u64,
    /// Index into [`SimFleet::targets`].
    pub target: usize,
    /// What goes wrong.
    pub kind: FaultKind,
    /// For kinds with a precursor: seconds from start to failure.
    pub time_to_failure: u64,
    /// Ends on its own this many seconds after it started.
    pub lasts: Option<u64>,
    /// Whether detection sees the precursor.
    pub precursor_seen: bool,
}

impl ScheduledFault {
    /// A fault of `kind` on `target` at `at` seconds: a precursor 30 min before failure
    /// (seen), error bursts lasting 10 min and dependency outages 20 min; for scripted tests.
    pub fn new(at: u64, target: usize, kind: FaultKind) -> ScheduledFault {
        ScheduledFault {
            at,
            target,
            kind,
            time_to_failure: if kind.has_precursor() { 1800 } else { 0 },
            lasts: match kind {
                FaultKind::ErrorBurst => Some(600),
                FaultKind::DependencyOutage => Some(1200),
                _ => None,
            },
            precursor_seen: true,
        }
    }
}

/// A maintenance window on one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MaintenanceWindow {
    /// Index into [`SimFleet::targets`].
    pub target: usize,
    /// Start, seconds from the beginning.
    pub from: u64,
    /// End, seconds from the beginning.
    pub until: u64,
}

/// Everything that happens to the fleet on its own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scenario {
    /// Faults, by start time.
    pub faults: Vec<ScheduledFault>,
    /// Maintenance windows, by start time.
    pub windows: Vec<MaintenanceWindow>,
}

/// Relative frequency of each fault kind in generated scenarios.
const WEIGHTS: [(FaultKind, u32); 14] = [
    (FaultKind::SuddenCrash, 15),
    (FaultKind::Hang, 8),
    (FaultKind::MemoryLeak, 14),
    (FaultKind::FdLeak, 4),
    (FaultKind::LatencyCreep, 8),
    (FaultKind::ErrorRise, 5),
    (FaultKind::QueueGrowth, 5),
    (FaultKind::ErrorBurst, 10),
    (FaultKind::DependencyOutage, 5),
    (FaultKind::CrashLoop, 3),
    (FaultKind::Flapping, 4),
    (FaultKind::BadDeploy, 8),
    (FaultKind::BadConfig, 5),
    (FaultKind::Saturation, 6),
];

/// A seeded scenario for `fleet`: depends only on the seed, the fleet's size and
/// dependencies, and the rates and duration of `cfg` — never on the policies, so two
/// policies compared with one seed meet the same faults. Dependency outages fall on targets
/// that others depend on when there are any.
pub fn scenario(fleet: &SimFleet, cfg: &SimConfig) -> Scenario {
    let n = fleet.targets.len();
    let mut sc = Scenario::default();
    if n == 0 {
        return sc;
    }
    let secs = cfg.duration.as_secs();
    let days = secs as f64 / 86_400.0;
    let mut rng = rng_for(cfg.seed, 0x5eed_fa17);
    let index: HashMap<&TargetId, usize> = fleet
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (&t.engine.name, i))
        .collect();
    let mut depended: Vec<usize> = fleet
        .targets
        .iter()
        .flat_map(|t| {
            t.engine
                .depends_on
                .iter()
                .filter_map(|d| index.get(d).copied())
        })
        .collect();
    depended.sort_unstable();
    depended.dedup();
    let total: u32 = WEIGHTS.iter().map(|w| w.1).sum();
    let n_faults = (n as f64 * days * cfg.faults_per_target_day).round() as usize;
    for _ in 0..n_faults {
        let at = rng.random_range(0..secs.max(1));
        let mut pick = rng.random_range(0..total);
        let mut kind = FaultKind::SuddenCrash;
        for (k, w) in WEIGHTS {
            if pick < w {
                kind = k;
                break;
            }
            pick -= w;
        }
        let target = if kind == FaultKind::DependencyOutage && !depended.is_empty() {
            depended[rng.random_range(0..depended.len())]
        } else {
            rng.random_range(0..n)
        };
        let time_to_failure = if kind.has_precursor() {
            uniform(&mut rng, 1200.0, 7200.0) as u64
        } else {
            0
        };
        let lasts = match kind {
            FaultKind::ErrorBurst => Some(uniform(&mut rng, 120.0, 900.0) as u64),
            FaultKind::DependencyOutage => Some(uniform(&mut rng, 300.0, 1800.0) as u64),
            _ => None,
        };
        let precursor_seen = rng.random::<f64>() < cfg.precursor_recall;
        sc.faults.push(ScheduledFault {
            at,
            target,
            kind,
            time_to_failure,
            lasts,
            precursor_seen,
        });
    }
    let n_windows = (n as f64 * days * cfg.maintenance_per_target_day).round() as usize;
    for _ in 0..n_windows {
        let from = rng.random_range(0..secs.max(1));
        sc.windows.push(MaintenanceWindow {
            target: rng.random_range(0..n),
            from,
            until: from + 3600,
        });
    }
    sc.faults.sort_by_key(|f| (f.at, f.target));
    sc.windows.sort_by_key(|w| (w.from, w.target));
    sc
}

/// Virtual time an act takes before the actuator reports.
pub fn action_duration(kind: ActKind) -> Duration {
    Duration::from_secs(match kind {
        ActKind::Fallback => 5,
        ActKind::Heal(s) => match s {
            Strategy::Restart => 10,
            Strategy::Reset => 15,
            Strategy::Recreate => 30,
            Strategy::Scale => 20,
            Strategy::CircuitBreak => 1,
            Strategy::Rollback => 60,
            Strategy::Reroute => 2,
            Strategy::Repair => 20,
            Strategy::Escalate | Strategy::Observe => 1,
        },
    })
}

/// Actions of one strategy by how they closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    /// Acts issued.
    pub started: u64,
    /// Closed verified healthy.
    pub success: u64,
    /// Closed failed.
    pub failure: u64,
    /// Closed unknown.
    pub unknown: u64,
    /// Closed skipped (dry run).
    pub skipped: u64,
}

/// What a run did. Equal seeds, fleets, policies and settings give equal reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// Targets simulated.
    pub targets: usize,
    /// Members per tier.
    pub tiers: BTreeMap<String, usize>,
    /// Virtual seconds simulated.
    pub virtual_secs: u64,
    /// The scenario's seed.
    pub seed: u64,
    /// Faults that started.
    pub faults: u64,
    /// Faults by kind.
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Scheduled faults skipped because their target already had one.
    pub faults_skipped_overlap: u64,
    /// Faults that became visible failures.
    pub incidents: u64,
    /// Dependents reported degraded because of a failed dependency.
    pub cascaded: u64,
    /// Precursor faults ended by an engine action before they failed.
    pub averted: u64,
    /// Incidents ended by an engine action.
    pub healed_by_engine: u64,
    /// Faults ended by a human after an escalation.
    pub healed_by_human: u64,
    /// Faults that ended on their own (bursts, outages).
    pub ended_on_their_own: u64,
    /// Faults still open at the end.
    pub unresolved: u64,
    /// Resolved incidents counted in MTTR.
    pub mttr_samples: u64,
    /// Mean time to repair, seconds.
    pub mttr_mean_s: f64,
    /// 95th percentile time to repair, seconds.
    pub mttr_p95_s: f64,
    /// Acts issued (heals and fallbacks).
    pub actions: u64,
    /// Heal acts by strategy and how they closed.
    pub actions_by_strategy: BTreeMap<String, OutcomeCounts>,
    /// Whether the engine learned from outcomes during the run ([`SimConfig::learning`]).
    pub learning: bool,
    /// Heal acts that closed failed.
    pub failed_actions: u64,
    /// `failed_actions / incidents` (0 without incidents).
    pub failed_actions_per_incident: f64,
    /// Verified outcomes fed to the learner.
    pub outcomes_learned: u64,
    /// Fallback acts.
    pub fallbacks: u64,
    /// Escalations (calls for a human), all reasons.
    pub escalations: u64,
    /// Escalations by reason.
    pub escalations_by_reason: BTreeMap<String, u64>,
    /// Crash loops given up on.
    pub gave_up: u64,
    /// Approval requests.
    pub approvals_requested: u64,
    /// Findings sent to the engine.
    pub findings: u64,
    /// Ticks sent to the engine.
    pub ticks: u64,
    /// Invariant violations on the command stream (0 expected).
    pub violations: u64,
    /// Violations by invariant.
    pub violations_by_kind: BTreeMap<String, u64>,
    /// The first few violations, described.
    pub violation_examples: Vec<String>,
    /// The engine's own counters.
    pub engine: Stats,
}

impl SimReport {
    /// The report's numbers as (name, value) rows, in a fixed order, for comparisons.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut m: Vec<(String, f64)> = vec![
            ("faults".into(), self.faults as f64),
            ("incidents".into(), self.incidents as f64),
            ("cascaded".into(), self.cascaded as f64),
            ("averted".into(), self.averted as f64),
            ("healed_by_engine".into(), self.healed_by_engine as f64),
            ("healed_by_human".into(), self.healed_by_human as f64),
            ("ended_on_their_own".into(), self.ended_on_their_own as f64),
            ("unresolved".into(), self.unresolved as f64),
            ("mttr_mean_s".into(), self.mttr_mean_s),
            ("mttr_p95_s".into(), self.mttr_p95_s),
            ("actions".into(), self.actions as f64),
            ("failed_actions".into(), self.failed_actions as f64),
            (
                "failed_actions_per_incident".into(),
                self.failed_actions_per_incident,
            ),
        ];
        for (s, c) in &self.actions_by_strategy {
            m.push((format!("actions.{s}"), c.started as f64));
            m.push((format!("actions.{s}.success"), c.success as f64));
            m.push((format!("actions.{s}.failure"), c.failure as f64));
        }
        m.push(("fallbacks".into(), self.fallbacks as f64));
        m.push(("escalations".into(), self.escalations as f64));
        for (r, n) in &self.escalations_by_reason {
            m.push((format!("escalations.{r}"), *n as f64));
        }
        m.push(("gave_up".into(), self.gave_up as f64));
        m.push((
            "approvals_requested".into(),
            self.approvals_requested as f64,
        ));
        m.push(("violations".into(), self.violations as f64));
        m
    }
}

/// One line of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareRow {
    /// The measure.
    pub name: String,
    /// Its value in the first run (0 when absent).
    pub a: f64,
    /// Its value in the second run (0 when absent).
    pub b: f64,
}

/// The measures of two runs side by side, in the first run's order then the second's extras.
pub fn compare(a: &SimReport, b: &SimReport) -> Vec<CompareRow> {
    let ma = a.metrics();
    let mb = b.metrics();
    let mut rows: Vec<CompareRow> = ma
        .iter()
        .map(|(name, va)| CompareRow {
            name: name.clone(),
            a: *va,
            b: mb.iter().find(|(n, _)| n == name).map_or(0.0, |x| x.1),
        })
        .collect();
    for (name, vb) in &mb {
        if !ma.iter().any(|(n, _)| n == name) {
            rows.push(CompareRow {
                name: name.clone(),
                a: 0.0,
                b: *vb,
            });
        }
    }
    rows
}

/// Generates the seeded scenario for `fleet` and runs it.
///
/// # Errors
/// As [`run`].
pub fn simulate(fleet: &SimFleet, cfg: &SimConfig) -> Result<SimReport, Error> {
    let sc = scenario(fleet, cfg);
    run(fleet, cfg, &sc)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    FaultStart(usize),
    Precursor { t: usize, epoch: u32 },
    Fail { t: usize, epoch: u32 },
    Detect { t: usize, epoch: u32 },
    Refresh { t: usize, epoch: u32 },
    NaturalEnd { t: usize, epoch: u32 },
    HealthyFinding { t: usize, epoch: u32 },
    HumanFix { t: usize, epoch: u32 },
    ActDone(u64),
    VerifyDue(u64),
    Approve(u64),
    MaintStart(usize),
}

#[derive(Clone, Copy, Debug)]
struct Active {
    kind: FaultKind,
    start: u64,
    /// When the failure became visible (ms); `None` while only a precursor.
    failed_at: Option<u64>,
    /// A finding about it was sent.
    detected: bool,
    /// Flapping: the last finding said unhealthy.
    flap_down: bool,
}

#[derive(Clone, Debug, Default)]
struct TargetWorld {
    fault: Option<Active>,
    epoch: u32,
    /// A dependency failed and this target's findings blame it.
    blamed: bool,
    group: Option<usize>,
    dependents: Vec<usize>,
    deps: Vec<usize>,
    tier: usize,
    maintenance_until: u64,
}

/// Checks the engine's command stream against the invariants (see the module docs).
struct Checker {
    global_limit: u32,
    tier_limit: Vec<u32>,
    group_limit: Vec<u32>,
    open: HashMap<ActionId, (usize, Option<usize>, usize)>,
    intents: HashMap<ActionId, usize>,
    act_in_flight: Vec<Option<ActionId>>,
    global: u32,
    tier: Vec<u32>,
    group: Vec<u32>,
    violations: BTreeMap<String, u64>,
    examples: Vec<String>,
}

impl Checker {
    fn violation(&mut self, kind: &str, at: u64, what: String) {
        *self.violations.entry(kind.to_owned()).or_default() += 1;
        if self.examples.len() < 10 {
            self.examples
                .push(format!("{kind} at {:.1}s: {what}", at as f64 / 1000.0));
        }
    }
}

struct Sim<'f> {
    fleet: &'f SimFleet,
    cfg: &'f SimConfig,
    engine: Engine,
    world: Vec<TargetWorld>,
    groups: Vec<Vec<usize>>,
    by_name: HashMap<TargetId, usize>,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    actions: HashMap<ActionId, (usize, ActKind)>,
    approvals: HashMap<u64, ApprovalId>,
    checker: Checker,
    open_faults: u64,
    mttr: Vec<u64>,
    report: SimReport,
    out: Vec<Command>,
    /// The learner fed during the run, when learning is on.
    learner: Option<SharedLearner>,
    /// Per target: the signature of its last finding that was not healthy.
    last_sig: Vec<Option<IncidentSignature>>,
    /// Per open act: the signature it answered, with the strategies that had already failed
    /// in the incident when it was chosen.
    act_sig: HashMap<ActionId, IncidentSignature>,
    /// Per target, when learning: the engine's attempt history, rebuilt from its journal
    /// entries (intents, closes, resumes) the way the engine applies them, so an outcome is
    /// keyed by the same failed strategies the engine's plan saw.
    history: Vec<AttemptHistory>,
}

/// Runs `scenario` on `fleet` against a fresh engine built from the fleet's tiers.
///
/// # Errors
/// The engine refuses the fleet (unknown tier, dependency cycle, …), or the scenario names
/// a target the fleet does not have.
pub fn run(fleet: &SimFleet, cfg: &SimConfig, scenario: &Scenario) -> Result<SimReport, Error> {
    let n = fleet.targets.len();
    if let Some(bad) = scenario
        .faults
        .iter()
        .map(|f| f.target)
        .chain(scenario.windows.iter().map(|w| w.target))
        .find(|t| *t >= n)
    {
        return Err(Error::UnknownTarget(bad));
    }
    let mut engine = Engine::new(
        fleet.targets.iter().map(|t| t.engine.clone()).collect(),
        fleet.tiers.clone(),
        EngineConfig::standard(cfg.max_concurrent.max(1)),
    )
    .map_err(Error::Engine)?;
    let learner = cfg
        .learning
        .then(|| SharedLearner::new(cfg.prior_learner.clone().unwrap_or_default()));
    if let Some(l) = &learner {
        engine.set_success_rates(Box::new(l.clone()));
    }
    let mut sim = Sim::new(fleet, cfg, engine);
    sim.learner = learner;
    for (i, f) in scenario.faults.iter().enumerate() {
        sim.push(f.at * 1000, Ev::FaultStart(i));
    }
    for (i, w) in scenario.windows.iter().enumerate() {
        sim.push(w.from * 1000, Ev::MaintStart(i));
    }
    sim.main_loop(scenario);
    Ok(sim.finish())
}

impl<'f> Sim<'f> {
    fn new(fleet: &'f SimFleet, cfg: &'f SimConfig, engine: Engine) -> Sim<'f> {
        let n = fleet.targets.len();
        let by_name: HashMap<TargetId, usize> = fleet
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.engine.name.clone(), i))
            .collect();
        let tier_names: Vec<&String> = fleet.tiers.keys().collect();
        let mut group_ids: BTreeMap<&str, usize> = BTreeMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut world: Vec<TargetWorld> = vec![TargetWorld::default(); n];
        for (i, t) in fleet.targets.iter().enumerate() {
            world[i].tier = tier_names
                .iter()
                .position(|n| **n == t.engine.tier)
                .unwrap_or(0);
            if let Some(g) = t.engine.group.as_deref() {
                let gi = *group_ids.entry(g).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[gi].push(i);
                world[i].group = Some(gi);
            }
            for d in &t.engine.depends_on {
                if let Some(&di) = by_name.get(d) {
                    world[i].deps.push(di);
                    world[di].dependents.push(i);
                }
            }
        }
        let tier_limit: Vec<u32> = fleet
            .tiers
            .values()
            .map(|p| p.max_concurrent.unwrap_or(u32::MAX))
            .collect();
        let group_limit: Vec<u32> = groups
            .iter()
            .map(|members| {
                let p = &fleet.tiers[&fleet.targets[members[0]].engine.tier];
                ((members.len() as f64 * p.max_group_unavailable).floor() as u32).max(1)
            })
            .collect();
        let checker = Checker {
            global_limit: cfg.max_concurrent.max(1),
            tier: vec![0; tier_limit.len()],
            tier_limit,
            group: vec![0; group_limit.len()],
            group_limit,
            open: HashMap::new(),
            intents: HashMap::new(),
            act_in_flight: vec![None; n],
            global: 0,
            violations: BTreeMap::new(),
            examples: Vec::new(),
        };
        let report = SimReport {
            targets: n,
            tiers: fleet.tier_members(),
            virtual_secs: cfg.duration.as_secs(),
            seed: cfg.seed,
            faults: 0,
            faults_by_kind: BTreeMap::new(),
            faults_skipped_overlap: 0,
            incidents: 0,
            cascaded: 0,
            averted: 0,
            healed_by_engine: 0,
            healed_by_human: 0,
            ended_on_their_own: 0,
            unresolved: 0,
            mttr_samples: 0,
            mttr_mean_s: 0.0,
            mttr_p95_s: 0.0,
            actions: 0,
            actions_by_strategy: BTreeMap::new(),
            learning: cfg.learning,
            failed_actions: 0,
            failed_actions_per_incident: 0.0,
            outcomes_learned: 0,
            fallbacks: 0,
            escalations: 0,
            escalations_by_reason: BTreeMap::new(),
            gave_up: 0,
            approvals_requested: 0,
            findings: 0,
            ticks: 0,
            violations: 0,
            violations_by_kind: BTreeMap::new(),
            violation_examples: Vec::new(),
            engine: Stats::default(),
        };
        Sim {
            fleet,
            cfg,
            engine,
            world,
            groups,
            by_name,
            heap: BinaryHeap::new(),
            seq: 0,
            actions: HashMap::new(),
            approvals: HashMap::new(),
            checker,
            open_faults: 0,
            mttr: Vec::new(),
            report,
            out: Vec::with_capacity(256),
            learner: None,
            last_sig: vec![None; n],
            act_sig: HashMap::new(),
            history: vec![AttemptHistory::new(); n],
        }
    }

    fn push(&mut self, at_ms: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at_ms, self.seq, ev)));
    }

    fn main_loop(&mut self, scenario: &Scenario) {
        let end = self.cfg.duration.as_millis() as u64;
        let tick = (self.cfg.tick.as_millis() as u64).max(1);
        let mut next_tick = 0u64;
        while next_tick <= end {
            match self.heap.peek() {
                Some(Reverse((at, _, _))) if *at <= next_tick => {
                    let Some(Reverse((at, _, ev))) = self.heap.pop() else {
                        break;
                    };
                    self.handle(at, ev, scenario);
                }
                _ => {
                    self.step(next_tick, Event::Tick);
                    self.report.ticks += 1;
                    let busy = self.open_faults > 0
                        || self.engine.n_active() > 0
                        || self.engine.n_queued() > 0;
                    next_tick = if busy {
                        next_tick + tick
                    } else {
                        match self.heap.peek() {
                            Some(Reverse((at, _, _))) => {
                                (at.div_ceil(tick) * tick).max(next_tick + tick)
                            }
                            None => end + 1,
                        }
                    };
                }
            }
        }
    }

    fn step(&mut self, now: u64, event: Event) {
        let mut out = std::mem::take(&mut self.out);
        self.engine
            .step(Timestamp::from_millis(now), event, &mut out);
        for c in out.drain(..) {
            self.command(now, c);
        }
        self.out = out;
    }

    fn name(&self, t: usize) -> TargetId {
        self.fleet.targets[t].engine.name.clone()
    }

    fn send_finding(&mut self, now: u64, f: Finding) {
        self.report.findings += 1;
        if self.learner.is_some()
            && f.health != HealthState::Healthy
            && let Some(&t) = self.by_name.get(&f.target)
        {
            let tier = &self.fleet.targets[t].engine.tier;
            self.last_sig[t] = Some(IncidentSignature::of(&f, tier));
        }
        self.step(now, Event::Finding(f));
    }

    fn handle(&mut self, now: u64, ev: Ev, scenario: &Scenario) {
        match ev {
            Ev::FaultStart(i) => {
                let f = scenario.faults[i];
                self.start_fault(now, &f);
            }
            Ev::Precursor { t, epoch } => {
                if let Some(a) = self.current(t, epoch).filter(|a| a.failed_at.is_none()) {
                    let f = self.precursor_finding(t, now, a.kind);
                    if let Some(a) = self.world[t].fault.as_mut() {
                        a.detected = true;
                    }
                    self.send_finding(now, f);
                }
            }
            Ev::Fail { t, epoch } => {
                if self.current(t, epoch).is_some() {
                    if let Some(a) = self.world[t].fault.as_mut() {
                        a.failed_at = Some(now);
                    }
                    self.report.incidents += 1;
                    let delay = self.detect_delay(t);
                    self.push(now + delay, Ev::Detect { t, epoch });
                }
            }
            Ev::Detect { t, epoch } => {
                if let Some(a) = self.current(t, epoch) {
                    let first = !a.detected || a.failed_at.is_some();
                    if let Some(a) = self.world[t].fault.as_mut() {
                        a.detected = true;
                        a.flap_down = true;
                    }
                    let f = self.failure_finding(t, now);
                    self.send_finding(now, f);
                    if first {
                        self.blame_dependents(t, now);
                    }
                    self.push(now + REFRESH.as_millis() as u64, Ev::Refresh { t, epoch });
                }
            }
            Ev::Refresh { t, epoch } => {
                if let Some(a) = self.current(t, epoch) {
                    let f = if a.kind == FaultKind::Flapping {
                        let down = !a.flap_down;
                        if let Some(a) = self.world[t].fault.as_mut() {
                            a.flap_down = down;
                        }
                        if down {
                            self.failure_finding(t, now)
                        } else {
                            self.healthy_finding(t, now)
                        }
                    } else {
                        self.failure_finding(t, now)
                    };
                    self.send_finding(now, f);
                    self.push(now + REFRESH.as_millis() as u64, Ev::Refresh { t, epoch });
                }
            }
            Ev::NaturalEnd { t, epoch } => {
                if self.current(t, epoch).is_some() {
                    self.report.ended_on_their_own += 1;
                    self.heal(t, now);
                }
            }
            Ev::HealthyFinding { t, epoch } => {
                if self.world[t].epoch == epoch && self.world[t].fault.is_none() {
                    let f = self.healthy_finding(t, now);
                    self.send_finding(now, f);
                    self.unblame_dependents(t, now);
                }
            }
            Ev::HumanFix { t, epoch } => {
                if self.current(t, epoch).is_some() {
                    self.report.healed_by_human += 1;
                    self.heal(t, now);
                }
            }
            Ev::ActDone(id) => {
                let action = ActionId(id);
                if let Some(&(t, kind)) = self.actions.get(&action) {
                    if let (ActKind::Heal(s), Some(a)) = (kind, self.world[t].fault)
                        && a.kind.fixed_by(s)
                        && (s != Strategy::Reroute || self.healthy_peer(t))
                    {
                        if a.failed_at.is_none() {
                            self.report.averted += 1;
                        } else {
                            self.report.healed_by_engine += 1;
                        }
                        self.heal(t, now);
                    }
                    self.step(
                        now,
                        Event::ActionOutcome {
                            action,
                            outcome: Outcome::Success,
                        },
                    );
                }
            }
            Ev::VerifyDue(id) => {
                let action = ActionId(id);
                if let Some(&(t, _)) = self.actions.get(&action) {
                    let w = &self.world[t];
                    let healthy = w.fault.is_none() && !w.blamed;
                    let outcome = if healthy {
                        Outcome::Success
                    } else {
                        Outcome::Failure("still failing".to_owned())
                    };
                    self.step(now, Event::VerifyResult { action, outcome });
                }
            }
            Ev::Approve(id) => {
                if let Some(approval) = self.approvals.remove(&id) {
                    self.step(
                        now,
                        Event::Approval {
                            approval,
                            decision: Decision::Approve,
                        },
                    );
                }
            }
            Ev::MaintStart(i) => {
                let w = scenario.windows[i];
                let until_ms = w.until * 1000;
                let tw = &mut self.world[w.target];
                tw.maintenance_until = tw.maintenance_until.max(until_ms);
                let scope = MaintenanceScope::Target(self.name(w.target));
                self.step(
                    now,
                    Event::Maintenance {
                        scope,
                        until: Some(Timestamp::from_millis(until_ms)),
                    },
                );
            }
        }
    }

    fn current(&self, t: usize, epoch: u32) -> Option<Active> {
        let w = &self.world[t];
        if w.epoch == epoch { w.fault } else { None }
    }

    fn detect_delay(&self, t: usize) -> u64 {
        let st = &self.fleet.targets[t];
        let kind = self.world[t].fault.map(|a| a.kind);
        let metric = matches!(
            kind,
            Some(FaultKind::Saturation | FaultKind::ErrorBurst | FaultKind::DependencyOutage)
        );
        if metric {
            st.metrics_delay.as_millis() as u64
        } else {
            st.liveness_delay.as_millis() as u64
        }
    }

    fn start_fault(&mut self, now: u64, f: &ScheduledFault) {
        let t = f.target;
        if self.world[t].fault.is_some() {
            self.report.faults_skipped_overlap += 1;
            return;
        }
        self.report.faults += 1;
        *self
            .report
            .faults_by_kind
            .entry(f.kind.name().to_owned())
            .or_default() += 1;
        self.open_faults += 1;
        let w = &mut self.world[t];
        w.epoch += 1;
        let epoch = w.epoch;
        w.fault = Some(Active {
            kind: f.kind,
            start: now,
            failed_at: None,
            detected: false,
            flap_down: false,
        });
        if f.kind.has_precursor() {
            let ttf = f.time_to_failure.max(1) * 1000;
            if f.precursor_seen {
                let lead = (ttf / 3).max(self.fleet.targets[t].metrics_delay.as_millis() as u64);
                if lead < ttf {
                    self.push(now + lead, Ev::Precursor { t, epoch });
                }
            }
            self.push(now + ttf, Ev::Fail { t, epoch });
        } else {
            if let Some(a) = self.world[t].fault.as_mut() {
                a.failed_at = Some(now);
            }
            self.report.incidents += 1;
            let delay = self.detect_delay(t);
            self.push(now + delay, Ev::Detect { t, epoch });
        }
        if let Some(l) = f.lasts {
            self.push(now + l * 1000, Ev::NaturalEnd { t, epoch });
        }
    }

    fn heal(&mut self, t: usize, now: u64) {
        let w = &mut self.world[t];
        let Some(a) = w.fault.take() else {
            return;
        };
        w.epoch += 1;
        let epoch = w.epoch;
        self.open_faults = self.open_faults.saturating_sub(1);
        if let Some(failed) = a.failed_at {
            self.mttr.push(now.saturating_sub(failed));
        }
        self.push(now + HEALTHY_AFTER, Ev::HealthyFinding { t, epoch });
    }

    fn blame_dependents(&mut self, t: usize, now: u64) {
        let Some(a) = self.world[t].fault else {
            return;
        };
        let down = matches!(
            a.kind,
            FaultKind::Saturation | FaultKind::ErrorBurst | FaultKind::Flapping
        );
        if down || a.failed_at.is_none() {
            return;
        }
        for d in self.world[t].dependents.clone() {
            if self.world[d].fault.is_none() && !self.world[d].blamed {
                self.world[d].blamed = true;
                self.report.cascaded += 1;
                let mut f = Finding::from_health(
                    self.name(d),
                    Timestamp::from_millis(now),
                    HealthState::Degraded,
                    levels(&[ProbeLevel::Dependencies]),
                );
                f.diagnosis = Some(DiagnosisFinding {
                    category: DiagnosisCategory::ServiceDependency,
                    confidence: 0.8,
                    pattern_id: None,
                    evidence: vec![format!("dependency {} is down", self.name(t))],
                });
                self.send_finding(now, f);
            }
        }
    }

    fn unblame_dependents(&mut self, t: usize, now: u64) {
        for d in self.world[t].dependents.clone() {
            let deps_ok = self.world[d]
                .deps
                .iter()
                .all(|x| self.world[*x].fault.is_none());
            if self.world[d].blamed && deps_ok {
                self.world[d].blamed = false;
                if self.world[d].fault.is_none() {
                    let f = self.healthy_finding(d, now);
                    self.send_finding(now, f);
                }
            }
        }
    }

    /// Whether another member of `t`'s group is free of faults and can take its traffic.
    fn healthy_peer(&self, t: usize) -> bool {
        self.world[t].group.is_some_and(|g| {
            self.groups[g]
                .iter()
                .any(|m| *m != t && self.world[*m].fault.is_none())
        })
    }

    fn group_health(&self, t: usize) -> Option<(u32, u32)> {
        let g = self.world[t].group?;
        let members = &self.groups[g];
        let healthy = members
            .iter()
            .filter(|m| {
                self.world[**m]
                    .fault
                    .is_none_or(|a| !a.detected || a.failed_at.is_none())
            })
            .count();
        Some((healthy as u32, members.len() as u32))
    }

    fn healthy_finding(&self, t: usize, now: u64) -> Finding {
        let mut f = Finding::from_health(
            self.name(t),
            Timestamp::from_millis(now),
            HealthState::Healthy,
            LevelSet::EMPTY,
        );
        f.group_health = self.group_health(t);
        f
    }

    fn precursor_finding(&self, t: usize, now: u64, kind: FaultKind) -> Finding {
        let (level, anomaly, recommended) = match kind {
            FaultKind::MemoryLeak | FaultKind::FdLeak => (
                ProbeLevel::Resources,
                AnomalyKind::Resource,
                Strategy::Restart,
            ),
            FaultKind::LatencyCreep => (
                ProbeLevel::Performance,
                AnomalyKind::Latency,
                Strategy::Restart,
            ),
            FaultKind::ErrorRise => (
                ProbeLevel::Performance,
                AnomalyKind::Errors,
                Strategy::Restart,
            ),
            _ => (
                ProbeLevel::Performance,
                AnomalyKind::Saturation,
                Strategy::Scale,
            ),
        };
        let mut f = Finding::from_health(
            self.name(t),
            Timestamp::from_millis(now),
            HealthState::Degraded,
            levels(&[level]),
        );
        match kind {
            FaultKind::MemoryLeak => f.memory_ratio = Some(0.93),
            FaultKind::ErrorRise => f.error_rate = Some(0.08),
            FaultKind::QueueGrowth => f.utilization = Some(1.1),
            _ => {}
        }
        f.anomaly = Some(AnomalyFinding {
            score: 0.9,
            anomalous: true,
            kind: anomaly,
            top_features: vec![],
            reason: format!("{kind} precursor"),
        });
        f.prediction = Some(PredictionFinding {
            probability: 0.9,
            alarm: true,
            horizon_s: 3600,
            factors: vec![],
            recommended,
        });
        f.group_health = self.group_health(t);
        f
    }

    fn failure_finding(&self, t: usize, now: u64) -> Finding {
        let Some(a) = self.world[t].fault else {
            return self.healthy_finding(t, now);
        };
        let at = Timestamp::from_millis(now);
        let name = self.name(t);
        let diag = |category, confidence| {
            Some(DiagnosisFinding {
                category,
                confidence,
                pattern_id: None,
                evidence: vec![],
            })
        };
        let mut f = match a.kind {
            FaultKind::Saturation => {
                let mut f = Finding::from_health(
                    name,
                    at,
                    HealthState::Degraded,
                    levels(&[ProbeLevel::Performance]),
                );
                f.utilization = Some(1.4);
                f
            }
            FaultKind::ErrorBurst | FaultKind::DependencyOutage => {
                let mut f = Finding::from_health(
                    name,
                    at,
                    HealthState::Degraded,
                    levels(&[ProbeLevel::Performance]),
                );
                f.error_rate = Some(0.5);
                if a.kind == FaultKind::DependencyOutage {
                    f.diagnosis = diag(DiagnosisCategory::Network, 0.7);
                }
                f
            }
            FaultKind::QueueGrowth => {
                let mut f = Finding::from_health(
                    name,
                    at,
                    HealthState::Unhealthy,
                    levels(&[ProbeLevel::Readiness, ProbeLevel::Performance]),
                );
                f.utilization = Some(1.6);
                f
            }
            FaultKind::BadConfig => {
                let mut f = Finding::from_health(
                    name,
                    at,
                    HealthState::Unhealthy,
                    levels(&[ProbeLevel::Liveness, ProbeLevel::Readiness]),
                );
                f.diagnosis = diag(DiagnosisCategory::Configuration, 0.9);
                f
            }
            FaultKind::BadDeploy => {
                let mut f = Finding::from_health(
                    name,
                    at,
                    HealthState::Unhealthy,
                    levels(&[ProbeLevel::Liveness]),
                );
                f.version_changed_at = Some(Timestamp::from_millis(a.start));
                f
            }
            FaultKind::LatencyCreep | FaultKind::Hang => {
                let mut f = Finding::from_health(
                    name,
                    at,
                    HealthState::Unhealthy,
                    levels(&[ProbeLevel::Liveness]),
                );
                f.diagnosis = diag(DiagnosisCategory::Timeout, 0.6);
                f
            }
            FaultKind::MemoryLeak
            | FaultKind::FdLeak
            | FaultKind::ErrorRise
            | FaultKind::SuddenCrash
            | FaultKind::CrashLoop
            | FaultKind::Flapping => {
                let mut f = Finding::from_health(
                    name,
                    at,
                    HealthState::Unhealthy,
                    levels(&[ProbeLevel::Liveness]),
                );
                let category = match a.kind {
                    FaultKind::MemoryLeak | FaultKind::FdLeak => {
                        DiagnosisCategory::ResourceExhaustion
                    }
                    _ => DiagnosisCategory::Crash,
                };
                f.diagnosis = diag(category, 0.8);
                if a.kind == FaultKind::MemoryLeak {
                    f.memory_ratio = Some(1.0);
                }
                f
            }
        };
        f.group_health = self.group_health(t);
        f
    }

    fn command(&mut self, now: u64, c: Command) {
        match c {
            Command::Journal(entry) => self.journal(now, entry),
            Command::Act(act) => {
                let Some(&t) = self.by_name.get(&act.target) else {
                    return;
                };
                let c = &mut self.checker;
                if c.intents.get(&act.action) != Some(&t) {
                    c.violation(
                        "act_without_intent",
                        now,
                        format!("{} on {}", act.action, act.target),
                    );
                }
                if let Some(prev) = c.act_in_flight[t] {
                    c.violation(
                        "two_in_flight",
                        now,
                        format!("{} on {} while {prev} is open", act.action, act.target),
                    );
                }
                c.act_in_flight[t] = Some(act.action);
                let tier_name = &self.fleet.targets[t].engine.tier;
                if now < self.world[t].maintenance_until {
                    let c = &mut self.checker;
                    c.violation(
                        "act_in_maintenance",
                        now,
                        format!("{} on {} ({tier_name})", act.action, act.target),
                    );
                }
                self.report.actions += 1;
                match act.kind {
                    ActKind::Fallback => self.report.fallbacks += 1,
                    ActKind::Heal(s) => {
                        self.report
                            .actions_by_strategy
                            .entry(s.to_string())
                            .or_default()
                            .started += 1;
                    }
                }
                self.actions.insert(act.action, (t, act.kind));
                if !act.dry_run {
                    let d = action_duration(act.kind).as_millis() as u64;
                    self.push(now + d, Ev::ActDone(act.action.0));
                }
            }
            Command::Verify { action, .. } => {
                self.push(now + 1000, Ev::VerifyDue(action.0));
            }
            Command::Notify(Notice::ApprovalRequested { approval, .. }) => {
                self.report.approvals_requested += 1;
                if let Some(d) = self.cfg.approval_delay {
                    self.approvals.insert(approval.0, approval);
                    self.push(now + d.as_millis() as u64, Ev::Approve(approval.0));
                }
            }
            Command::Notify(Notice::Degraded { .. }) | Command::Circuit { .. } => {}
            Command::Escalate(e) => {
                self.report.escalations += 1;
                *self
                    .report
                    .escalations_by_reason
                    .entry(reason_name(e.reason).to_owned())
                    .or_default() += 1;
                if e.reason == EscalationReason::GaveUp {
                    self.report.gave_up += 1;
                }
                if let Some(&t) = self.by_name.get(&e.target) {
                    let epoch = self.world[t].epoch;
                    if self.world[t].fault.is_some() {
                        let at = now + self.cfg.human_fix_after.as_millis() as u64;
                        self.push(at, Ev::HumanFix { t, epoch });
                    }
                }
            }
        }
    }

    fn journal(&mut self, now: u64, entry: JournalEntry) {
        match entry {
            JournalEntry::Intent {
                at,
                action,
                target,
                kind,
                ..
            } => {
                let Some(&t) = self.by_name.get(&target) else {
                    return;
                };
                if let (Some(_), ActKind::Heal(s)) = (&self.learner, kind) {
                    // What had failed when the plan chose this act: the history before it.
                    let policy = &self.fleet.tiers[&self.fleet.targets[t].engine.tier];
                    let failed = failed_in_incident(&self.history[t], policy, at);
                    if let Some(sig) = self.last_sig[t].clone() {
                        self.act_sig.insert(action, sig.after(&failed));
                    }
                    self.history[t].record(s, at);
                }
                let tier = self.world[t].tier;
                let group = self.world[t].group;
                let c = &mut self.checker;
                c.intents.insert(action, t);
                c.open.insert(action, (t, group, tier));
                c.global += 1;
                c.tier[tier] += 1;
                if c.global > c.global_limit {
                    c.violation(
                        "global_budget",
                        now,
                        format!("{} open actions, limit {}", c.global, c.global_limit),
                    );
                }
                if c.tier[tier] > c.tier_limit[tier] {
                    c.violation(
                        "tier_budget",
                        now,
                        format!("{} open in tier of {target}", c.tier[tier]),
                    );
                }
                if let Some(g) = group {
                    c.group[g] += 1;
                    if c.group[g] > c.group_limit[g] {
                        c.violation(
                            "group_budget",
                            now,
                            format!(
                                "{} open in group of {target}, limit {}",
                                c.group[g], c.group_limit[g]
                            ),
                        );
                    }
                }
            }
            JournalEntry::Closed { at, action, result } => {
                if let (Some(_), Some(&(t, ActKind::Heal(s)))) =
                    (&self.learner, self.actions.get(&action))
                {
                    let policy = &self.fleet.tiers[&self.fleet.targets[t].engine.tier];
                    let h = &mut self.history[t];
                    h.resolve(s, result);
                    h.prune(at - policy.attempt_window.max(policy.crash_loop.window));
                }
                let c = &mut self.checker;
                if let Some((t, group, tier)) = c.open.remove(&action) {
                    c.global -= 1;
                    c.tier[tier] -= 1;
                    if let Some(g) = group {
                        c.group[g] -= 1;
                    }
                    if c.act_in_flight[t] == Some(action) {
                        c.act_in_flight[t] = None;
                    }
                }
                if let Some(&(_, ActKind::Heal(s))) = self.actions.get(&action) {
                    let e = self
                        .report
                        .actions_by_strategy
                        .entry(s.to_string())
                        .or_default();
                    match result {
                        AttemptResult::Success => e.success += 1,
                        AttemptResult::Failure => {
                            e.failure += 1;
                            self.report.failed_actions += 1;
                        }
                        AttemptResult::Unknown => e.unknown += 1,
                        AttemptResult::Skipped => e.skipped += 1,
                        AttemptResult::Pending => {}
                    }
                    // Learning happens here, inside the loop, as each outcome is known.
                    let verified =
                        matches!(result, AttemptResult::Success | AttemptResult::Failure);
                    if let (Some(l), Some(sig), true) =
                        (&self.learner, self.act_sig.get(&action), verified)
                    {
                        l.observe(sig, s, result == AttemptResult::Success);
                        self.report.outcomes_learned += 1;
                    }
                }
                self.act_sig.remove(&action);
                self.actions.remove(&action);
            }
            JournalEntry::Resumed { at, target } => {
                if let Some(&t) = self.by_name.get(&target) {
                    self.history[t].end_incident(at);
                }
            }
            _ => {}
        }
    }

    fn finish(mut self) -> SimReport {
        let mut r = self.report;
        r.unresolved = self.open_faults;
        self.mttr.sort_unstable();
        r.mttr_samples = self.mttr.len() as u64;
        if !self.mttr.is_empty() {
            r.mttr_mean_s =
                self.mttr.iter().map(|m| *m as f64).sum::<f64>() / self.mttr.len() as f64 / 1000.0;
            let idx = ((self.mttr.len() as f64 * 0.95).ceil() as usize).clamp(1, self.mttr.len());
            r.mttr_p95_s = self.mttr[idx - 1] as f64 / 1000.0;
        }
        if r.incidents > 0 {
            r.failed_actions_per_incident = r.failed_actions as f64 / r.incidents as f64;
        }
        r.violations = self.checker.violations.values().sum();
        r.violations_by_kind = self.checker.violations;
        r.violation_examples = self.checker.examples;
        r.engine = *self.engine.stats();
        r
    }
}

fn reason_name(r: EscalationReason) -> &'static str {
    match r {
        EscalationReason::GaveUp => "gave_up",
        EscalationReason::LadderExhausted => "ladder_exhausted",
        EscalationReason::AttemptsExhausted => "attempts_exhausted",
        EscalationReason::ApprovalTimedOut => "approval_timed_out",
    }
}

fn levels(ls: &[ProbeLevel]) -> LevelSet {
    let mut s = LevelSet::EMPTY;
    for l in ls {
        s.insert(*l);
    }
    s
}
