//! The engine's state machine. See the crate docs for the semantics.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound;
use std::time::Duration;

use medic_core::{Finding, HealthState, Outcome, Severity, Strategy, TargetId, Timestamp};
use medic_policy::{Fleet, Replicas, TierPolicy};
use medic_strategy::{
    AttemptHistory, AttemptResult, BreakerState, CircuitBreaker, HpaState, NoLearning,
    SuccessRates, default_risk, executed_since, hpa_desired, needs_approval, select_with,
};
use serde::Serialize;

use crate::Error;
use crate::types::*;

/// Strategies that start the target's process anew: one that fails leaves the target down
/// again, which crash-loop detection counts as a crash.
fn starts_process(s: Strategy) -> bool {
    matches!(
        s,
        Strategy::Restart | Strategy::Reset | Strategy::Recreate | Strategy::Rollback
    )
}

fn strategy_bit(s: Strategy) -> u16 {
    1 << strategy_idx(s)
}

/// Crashes remembered per target: enough for any `crash_loop.restarts` validation allows.
const CRASH_MEMORY: usize = medic_policy::MAX_COUNTED as usize;

fn strategy_idx(s: Strategy) -> usize {
    Strategy::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where an action is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Act sent; waiting for the actuator.
    Acting,
    /// Actuator done; verification becomes due at `due` (a Verify was sent when `sent`).
    Verifying {
        due: Timestamp,
        sent: Option<Timestamp>,
    },
    /// Circuit open; a half-open probe follows. `probes_failed` half-open probes failed.
    CircuitOpen { probes_failed: u32 },
    /// Half-open probe sent, answer due by `deadline`.
    Probing {
        deadline: Timestamp,
        probes_failed: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    action: ActionId,
    kind: ActKind,
    replicas: Option<u32>,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingApproval {
    approval: ApprovalId,
    strategy: Strategy,
    replicas: Option<u32>,
}

/// Why a target sits outside the queue with a pending finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Park {
    None,
    Dependency,
    Maintenance,
    Until(Timestamp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Hold {
    GaveUp,
    Escalated,
}

struct TargetState {
    name: TargetId,
    tier: u16,
    group: Option<u32>,
    deps: Vec<u32>,
    dependents: Vec<u32>,
    has_fallback: bool,
    startup_delay: Duration,
    bounds: Replicas,
    /// Bit per strategy (see `strategy_bit`) the target has an action for.
    executable: u16,
    // durable (changed only by `apply`)
    replicas: u32,
    history: AttemptHistory,
    failures: u32,
    backoff_until: Timestamp,
    inflight: Option<InFlight>,
    approval: Option<PendingApproval>,
    approved: Option<(Strategy, Option<u32>)>,
    hold: Option<Hold>,
    degraded: bool,
    breaker: CircuitBreaker,
    maintenance_until: Option<Timestamp>,
    /// When the target went down lately (oldest first, within the crash-loop window).
    crashes: Vec<Timestamp>,
    /// An incident is open as far as the journal shows: set by `IncidentOpened`, cleared by
    /// a verified heal, an unknown verification, a denied approval or `Recovered` (the target
    /// seen healthy).
    incident_open: bool,
    // volatile (rebuilt from findings)
    health: HealthState,
    healthy_since: Option<Timestamp>,
    finding: Option<Finding>,
    queued: Option<(u64, u64)>,
    waiting_since: Option<Timestamp>,
    park: Park,
    hpa: HpaState,
}

struct TierInfo {
    policy: TierPolicy,
    rank: u8,
    active: u32,
    members: Vec<u32>,
    maintenance_until: Option<Timestamp>,
}

struct GroupInfo {
    members: u32,
    active: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    VerifyDue,
    VerifyDeadline,
    ApprovalDeadline,
    HalfOpen,
    ProbeDeadline,
    Wake,
    MaintenanceEnd,
}

/// (when, seq, kind, target or tier index, action/approval id)
type Timer = (Timestamp, u64, TimerKind, u32, u64);

/// The healing engine: a pure state machine from [`Event`]s to [`Command`]s.
///
/// Build it with [`Engine::new`] (or [`Engine::from_fleet`]), drive it with [`Engine::step`],
/// rebuild it after a restart with [`Engine::recover`].
pub struct Engine {
    config: EngineConfig,
    tiers: Vec<TierInfo>,
    tier_by_name: HashMap<String, u16>,
    targets: Vec<TargetState>,
    by_name: HashMap<TargetId, u32>,
    groups: Vec<GroupInfo>,
    active: u32,
    queue: BTreeSet<(u64, u64, u32)>,
    timers: BinaryHeap<Reverse<Timer>>,
    actions: HashMap<ActionId, u32>,
    approvals: HashMap<ApprovalId, u32>,
    next_action: u64,
    next_approval: u64,
    seq: u64,
    last_now: Timestamp,
    learned: Box<dyn SuccessRates + Send + Sync>,
    stats: Stats,
}

impl Engine {
    /// An engine for `targets` under `tiers` (tier name → policy).
    ///
    /// # Errors
    /// Duplicate target names, unknown tiers or dependencies, dependency cycles, and a zero
    /// global concurrency are refused.
    pub fn new(
        targets: Vec<EngineTarget>,
        tiers: BTreeMap<String, TierPolicy>,
        config: EngineConfig,
    ) -> Result<Engine, Error> {
        if config.max_concurrent == 0 {
            return Err(Error::ZeroConcurrency);
        }
        let mut tier_by_name = HashMap::new();
        let mut tier_infos = Vec::new();
        for (name, policy) in tiers {
            let rank = config
                .tier_ranks
                .get(&name)
                .copied()
                .unwrap_or(if name.contains("critical") { 0 } else { 1 });
            tier_by_name.insert(name, u16::try_from(tier_infos.len()).unwrap_or(u16::MAX));
            tier_infos.push(TierInfo {
                policy,
                rank,
                active: 0,
                members: Vec::new(),
                maintenance_until: None,
            });
        }
        let mut by_name = HashMap::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            let idx = u32::try_from(i).map_err(|_| Error::TooManyTargets)?;
            if by_name.insert(t.name.clone(), idx).is_some() {
                return Err(Error::DuplicateTarget(t.name.clone()));
            }
        }
        let mut group_by_name: HashMap<&str, u32> = HashMap::new();
        let mut groups = Vec::new();
        let mut states = Vec::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            let tier = *tier_by_name
                .get(&t.tier)
                .ok_or_else(|| Error::UnknownTier {
                    target: t.name.clone(),
                    tier: t.tier.clone(),
                })?;
            let idx = u32::try_from(i).map_err(|_| Error::TooManyTargets)?;
            tier_infos[usize::from(tier)].members.push(idx);
            let group = t.group.as_deref().map(|g| {
                let gi = *group_by_name.entry(g).or_insert_with(|| {
                    groups.push(GroupInfo {
                        members: 0,
                        active: 0,
                    });
                    u32::try_from(groups.len() - 1).unwrap_or(u32::MAX)
                });
                groups[gi as usize].members += 1;
                gi
            });
            let mut deps = Vec::with_capacity(t.depends_on.len());
            for d in &t.depends_on {
                let di = *by_name.get(d).ok_or_else(|| Error::UnknownDependency {
                    target: t.name.clone(),
                    dependency: d.clone(),
                })?;
                if !deps.contains(&di) {
                    deps.push(di);
                }
            }
            states.push(TargetState {
                name: t.name.clone(),
                tier,
                group,
                deps,
                dependents: Vec::new(),
                has_fallback: t.has_fallback,
                startup_delay: t.startup_delay,
                bounds: t.replicas,
                executable: t.actions.as_ref().map_or(u16::MAX, |a| {
                    a.iter().fold(
                        strategy_bit(Strategy::Escalate) | strategy_bit(Strategy::Observe),
                        |m, s| m | strategy_bit(*s),
                    )
                }),
                replicas: t.replicas.initial,
                history: AttemptHistory::new(),
                failures: 0,
                backoff_until: Timestamp::ZERO,
                inflight: None,
                approval: None,
                approved: None,
                hold: None,
                degraded: false,
                breaker: CircuitBreaker::new(),
                maintenance_until: None,
                crashes: Vec::new(),
                incident_open: false,
                health: HealthState::Unknown,
                healthy_since: None,
                finding: None,
                queued: None,
                waiting_since: None,
                park: Park::None,
                hpa: HpaState::new(),
            });
        }
        for i in 0..states.len() {
            for d in states[i].deps.clone() {
                states[d as usize].dependents.push(i as u32);
            }
        }
        check_acyclic(&states)?;
        let first_id = config.run.saturating_mul(RUN_ID_SPAN).saturating_add(1);
        Ok(Engine {
            config,
            tiers: tier_infos,
            tier_by_name,
            targets: states,
            by_name,
            groups,
            active: 0,
            queue: BTreeSet::new(),
            timers: BinaryHeap::new(),
            actions: HashMap::new(),
            approvals: HashMap::new(),
            next_action: first_id,
            next_approval: first_id,
            seq: 0,
            last_now: Timestamp::ZERO,
            learned: Box::new(NoLearning),
            stats: Stats::default(),
        })
    }

    /// An engine for a validated fleet.
    ///
    /// # Errors
    /// As [`Engine::new`].
    pub fn from_fleet(fleet: &Fleet, config: EngineConfig) -> Result<Engine, Error> {
        Engine::new(
            fleet
                .targets
                .iter()
                .map(EngineTarget::from_target)
                .collect(),
            fleet.tiers.clone(),
            config,
        )
    }

    /// Rebuilds an engine from its journal: a restarted medic neither repeats a finished
    /// action nor forgets an unfinished one.
    ///
    /// Every entry is applied exactly as it was live. Afterwards, an action that has an
    /// intent but no actuator outcome may or may not have run: it is not run again but
    /// verified at the next tick (and its Act is never re-sent). Entries naming unknown
    /// targets or actions (a target removed from the fleet) are skipped and counted in
    /// [`Stats::recovery_skipped`].
    ///
    /// # Errors
    /// As [`Engine::new`].
    pub fn recover(
        targets: Vec<EngineTarget>,
        tiers: BTreeMap<String, TierPolicy>,
        config: EngineConfig,
        journal: impl IntoIterator<Item = JournalEntry>,
    ) -> Result<Engine, Error> {
        let mut e = Engine::new(targets, tiers, config)?;
        for entry in journal {
            e.apply(&entry);
            e.stats.journal_entries += 1;
            if let Some(at) = entry_time(&entry) {
                e.last_now = e.last_now.max(at);
            }
        }
        let now = e.last_now;
        for i in 0..e.targets.len() {
            // approved before the restart but not started: it runs under the usual rules
            if e.targets[i].approved.is_some() {
                e.enqueue(i as u32, now);
            }
            if let Some(f) = e.targets[i].inflight.as_mut()
                && f.phase == Phase::Acting
            {
                f.phase = Phase::Verifying {
                    due: Timestamp::ZERO,
                    sent: None,
                };
                let action = f.action.0;
                e.push_timer(Timestamp::ZERO, TimerKind::VerifyDue, i as u32, action);
            }
        }
        Ok(e)
    }

    /// Whether `id` lies in this engine's run range ([`EngineConfig::run`]): ids of other
    /// runs in the journal belong to other processes and never move this one's numbering,
    /// which stays within its own range.
    fn own_id(&self, id: u64) -> bool {
        id / RUN_ID_SPAN == self.config.run
    }

    /// Replaces the learned success rates used to re-rank plans.
    pub fn set_success_rates(&mut self, rates: Box<dyn SuccessRates + Send + Sync>) {
        self.learned = rates;
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The number of targets.
    pub fn n_targets(&self) -> usize {
        self.targets.len()
    }

    /// Actions running now (fleet-wide).
    pub fn n_active(&self) -> u32 {
        self.active
    }

    /// Targets waiting in the priority queue.
    pub fn n_queued(&self) -> usize {
        self.queue.len()
    }

    /// The engine's view of a target: `None` for an unknown name.
    pub fn target_view(&self, name: &str) -> Option<TargetView> {
        let i = *self.by_name.get(name)? as usize;
        let t = &self.targets[i];
        Some(TargetView {
            health: t.health,
            in_flight: t.inflight.map(|f| (f.action, f.kind)),
            awaiting_approval: t.approval.map(|a| a.approval),
            gave_up: t.hold == Some(Hold::GaveUp),
            escalated: t.hold == Some(Hold::Escalated),
            degraded: t.degraded,
            breaker: t.breaker.state(),
            replicas: t.replicas,
            queued: t.queued.is_some(),
            pending_finding: t.finding.is_some(),
            waiting: match t.park {
                Park::None => None,
                Park::Dependency => Some(Waiting::Dependency),
                Park::Maintenance => Some(Waiting::Maintenance),
                Park::Until(u) if u == t.backoff_until => Some(Waiting::Backoff(u)),
                Park::Until(u) => Some(Waiting::Cooldown(u)),
            },
        })
    }

    /// The part of the state that the journal determines, for comparing a live engine with a
    /// recovered one.
    pub fn durable_state(&self) -> DurableState {
        DurableState {
            next_action: self.next_action,
            next_approval: self.next_approval,
            tier_maintenance: self.tiers.iter().map(|t| t.maintenance_until).collect(),
            targets: self
                .targets
                .iter()
                .map(|t| DurableTarget {
                    replicas: t.replicas,
                    history: t.history.iter().copied().collect(),
                    failures: t.failures,
                    backoff_until: t.backoff_until,
                    in_flight: t.inflight.map(|f| (f.action, f.kind, f.replicas)),
                    approval: t.approval.map(|a| (a.approval, a.strategy)),
                    approved: t.approved,
                    gave_up: t.hold == Some(Hold::GaveUp),
                    escalated: t.hold == Some(Hold::Escalated),
                    degraded: t.degraded,
                    breaker: t.breaker.state(),
                    maintenance_until: t.maintenance_until,
                    half_open_failures: match t.inflight.map(|f| f.phase) {
                        Some(
                            Phase::CircuitOpen { probes_failed }
                            | Phase::Probing { probes_failed, .. },
                        ) => probes_failed,
                        _ => 0,
                    },
                    crashes: t.crashes.clone(),
                    incident_open: t.incident_open,
                })
                .collect(),
        }
    }

    /// Rough heap and inline bytes held per target (for the bench's memory figure).
    pub fn approx_bytes(&self) -> usize {
        let per_target = std::mem::size_of::<TargetState>();
        let vecs: usize = self
            .targets
            .iter()
            .map(|t| {
                (t.deps.capacity() + t.dependents.capacity()) * 4
                    + t.history.len() * std::mem::size_of::<medic_strategy::Attempt>()
                    + t.name.as_str().len()
            })
            .sum();
        per_target * self.targets.len()
            + vecs
            + self.by_name.capacity() * (std::mem::size_of::<TargetId>() + 4)
            + self.queue.len() * 24
            + self.timers.capacity() * std::mem::size_of::<Timer>()
    }

    /// Advances the engine by one event at `now`, appending commands to `out` in the order
    /// the driver must carry them out (a journal entry before the act it announces).
    ///
    /// Time never goes backwards: an earlier `now` than a previous step is treated as that
    /// step's time.
    pub fn step(&mut self, now: Timestamp, event: Event, out: &mut Vec<Command>) {
        let now = now.max(self.last_now);
        self.last_now = now;
        match event {
            Event::Finding(f) => self.on_finding(now, f, out),
            Event::ActionOutcome { action, outcome } => {
                self.on_action_outcome(now, action, outcome, out)
            }
            Event::VerifyResult { action, outcome } => self.on_verify(now, action, outcome, out),
            Event::Approval { approval, decision } => {
                self.on_approval(now, approval, decision, out)
            }
            Event::Maintenance { scope, until } => self.on_maintenance(now, scope, until, out),
            Event::Resume { target } => self.on_resume(now, &target, out),
            Event::Tick => {
                self.fire_timers(now, out);
                self.dispatch(now, out);
            }
        }
    }

    // ---------------------------------------------------------------- journal & apply

    fn journal(&mut self, out: &mut Vec<Command>, entry: JournalEntry) {
        self.apply(&entry);
        self.stats.journal_entries += 1;
        out.push(Command::Journal(entry));
    }

    fn idx(&self, name: &TargetId) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    fn push_timer(&mut self, at: Timestamp, kind: TimerKind, idx: u32, id: u64) {
        self.seq += 1;
        self.timers.push(Reverse((at, self.seq, kind, idx, id)));
    }

    fn backoff_delay(policy: &TierPolicy, failures: u32) -> Duration {
        let b = &policy.backoff;
        let exp = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = b.initial.as_secs_f64() * b.multiplier.max(1.0).powi(exp);
        if !secs.is_finite() || secs >= b.max.as_secs_f64() {
            b.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Remembers that target `i` went down at `at`, forgetting crashes outside the window.
    fn record_crash(&mut self, i: u32, at: Timestamp) {
        let t = &mut self.targets[i as usize];
        let window = self.tiers[usize::from(t.tier)].policy.crash_loop.window;
        let since = at - window;
        t.crashes.retain(|c| *c >= since);
        if t.crashes.len() == CRASH_MEMORY {
            t.crashes.remove(0);
        }
        t.crashes.push(at);
    }

    /// The only place durable state changes. Live steps and recovery both come through here.
    fn apply(&mut self, entry: &JournalEntry) {
        match entry {
            JournalEntry::Intent {
                at,
                action,
                target,
                kind,
                replicas,
                ..
            } => {
                let Some(i) = self.idx(target) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                let t = &mut self.targets[i as usize];
                if t.inflight.is_some() {
                    self.stats.recovery_skipped += 1;
                    return;
                }
                t.inflight = Some(InFlight {
                    action: *action,
                    kind: *kind,
                    replicas: *replicas,
                    phase: Phase::Acting,
                });
                t.approved = None;
                if let ActKind::Heal(s) = kind {
                    t.history.record(*s, *at);
                }
                let (tier, group) = (t.tier, t.group);
                self.active += 1;
                self.tiers[usize::from(tier)].active += 1;
                if let Some(g) = group {
                    self.groups[g as usize].active += 1;
                }
                self.actions.insert(*action, i);
                if self.own_id(action.0) {
                    self.next_action = self.next_action.max(action.0 + 1);
                }
            }
            JournalEntry::Acted {
                at,
                action,
                outcome,
            } => {
                let Some(&i) = self.actions.get(action) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                let t = &mut self.targets[i as usize];
                let Some(f) = t.inflight.as_mut() else { return };
                if matches!(outcome, Outcome::Success | Outcome::Unknown) {
                    if let (ActKind::Heal(Strategy::Scale), Some(r)) = (f.kind, f.replicas) {
                        t.replicas = r;
                    }
                    match f.kind {
                        ActKind::Heal(Strategy::CircuitBreak) => {
                            f.phase = Phase::CircuitOpen { probes_failed: 0 };
                        }
                        _ => {
                            let due = *at + t.startup_delay;
                            f.phase = Phase::Verifying { due, sent: None };
                            self.push_timer(due, TimerKind::VerifyDue, i, action.0);
                        }
                    }
                }
            }
            JournalEntry::Verified {
                action, outcome, ..
            } => {
                // A half-open probe that did not succeed: counted durably so that a recovered
                // engine gives up on the breaker after the same number of probes.
                let Some(&i) = self.actions.get(action) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                if let Some(f) = self.targets[i as usize].inflight.as_mut()
                    && f.kind == ActKind::Heal(Strategy::CircuitBreak)
                    && *outcome != Outcome::Success
                    && let Phase::CircuitOpen { probes_failed }
                    | Phase::Probing { probes_failed, .. } = f.phase
                {
                    f.phase = Phase::CircuitOpen {
                        probes_failed: probes_failed.saturating_add(1),
                    };
                }
            }
            JournalEntry::IncidentOpened {
                at, target, health, ..
            } => {
                let Some(i) = self.idx(target) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                let t = &mut self.targets[i as usize];
                t.incident_open = true;
                if *health == HealthState::Unhealthy {
                    self.record_crash(i, *at);
                }
            }
            JournalEntry::Closed { at, action, result } => {
                let Some(i) = self.actions.remove(action) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                let t = &mut self.targets[i as usize];
                let Some(f) = t.inflight.take() else { return };
                let policy = &self.tiers[usize::from(t.tier)].policy;
                let mut crashed = false;
                if let ActKind::Heal(s) = f.kind {
                    t.history.resolve(s, *result);
                    match result {
                        AttemptResult::Failure => {
                            t.failures = t.failures.saturating_add(1);
                            t.backoff_until = *at + Engine::backoff_delay(policy, t.failures);
                            crashed = starts_process(s);
                        }
                        AttemptResult::Success => {
                            t.degraded = false;
                            t.incident_open = false;
                        }
                        // the engine stops following the incident; the next finding decides
                        AttemptResult::Unknown => t.incident_open = false,
                        // not executed (dry run, or the actuator did not run it): nothing
                        // happened to the target, the incident goes on
                        AttemptResult::Skipped | AttemptResult::Pending => {}
                    }
                }
                let keep = policy.attempt_window.max(policy.crash_loop.window);
                t.history.prune(*at - keep);
                if crashed {
                    self.record_crash(i, *at);
                }
                let t = &self.targets[i as usize];
                let (tier, group) = (t.tier, t.group);
                self.active = self.active.saturating_sub(1);
                let ti = &mut self.tiers[usize::from(tier)];
                ti.active = ti.active.saturating_sub(1);
                if let Some(g) = group {
                    let g = &mut self.groups[g as usize];
                    g.active = g.active.saturating_sub(1);
                }
            }
            JournalEntry::ApprovalRequested {
                approval,
                target,
                strategy,
                replicas,
                deadline,
                ..
            } => {
                let Some(i) = self.idx(target) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                self.targets[i as usize].approval = Some(PendingApproval {
                    approval: *approval,
                    strategy: *strategy,
                    replicas: *replicas,
                });
                self.approvals.insert(*approval, i);
                if self.own_id(approval.0) {
                    self.next_approval = self.next_approval.max(approval.0 + 1);
                }
                self.push_timer(*deadline, TimerKind::ApprovalDeadline, i, approval.0);
            }
            JournalEntry::ApprovalDecided {
                approval, decision, ..
            } => {
                let Some(i) = self.approvals.remove(approval) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                let t = &mut self.targets[i as usize];
                if let Some(p) = t.approval.take() {
                    match decision {
                        Decision::Approve => t.approved = Some((p.strategy, p.replicas)),
                        // declined: the incident is closed
                        Decision::Deny => t.incident_open = false,
                    }
                }
            }
            JournalEntry::ApprovalWithdrawn { approval, .. } => {
                let Some(i) = self.approvals.remove(approval) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                let t = &mut self.targets[i as usize];
                t.approval.take_if(|p| p.approval == *approval);
            }
            JournalEntry::Escalated { target, reason, .. } => {
                let Some(i) = self.idx(target) else {
                    self.stats.recovery_skipped += 1;
                    return;
                };
                let t = &mut self.targets[i as usize];
                if let Some(p) = t.approval.take() {
                    self.approvals.remove(&p.approval);
                }
                t.approved = None;
                t.hold = Some(if *reason == EscalationReason::GaveUp {
                    Hold::GaveUp
                } else {
                    Hold::Escalated
                });
            }
            JournalEntry::Resumed { at, target } => {
                if let Some(i) = self.idx(target) {
                    let t = &mut self.targets[i as usize];
                    t.hold = None;
                    t.history.end_incident(*at);
                    // the operator looked at it: earlier crashes do not count again
                    t.crashes.clear();
                }
            }
            JournalEntry::Recovered { target, .. } => {
                if let Some(i) = self.idx(target) {
                    self.targets[i as usize].incident_open = false;
                }
            }
            JournalEntry::Degraded { target, .. } => {
                if let Some(i) = self.idx(target) {
                    self.targets[i as usize].degraded = true;
                }
            }
            JournalEntry::Breaker { target, state, .. } => {
                let Some(i) = self.idx(target) else { return };
                let t = &mut self.targets[i as usize];
                let d = self.tiers[usize::from(t.tier)]
                    .policy
                    .circuit_break_duration;
                t.breaker = CircuitBreaker::restore(*state, d);
                if let BreakerState::Open { until } = state
                    && let Some(f) = t.inflight
                {
                    self.push_timer(*until, TimerKind::HalfOpen, i, f.action.0);
                }
            }
            JournalEntry::BackoffReset { target, .. } => {
                if let Some(i) = self.idx(target) {
                    let t = &mut self.targets[i as usize];
                    t.failures = 0;
                    t.backoff_until = Timestamp::ZERO;
                }
            }
            JournalEntry::Maintenance { scope, until, .. } => match scope {
                MaintenanceScope::Target(name) => {
                    if let Some(i) = self.idx(name) {
                        self.targets[i as usize].maintenance_until = *until;
                        if let Some(u) = until {
                            self.push_timer(*u, TimerKind::MaintenanceEnd, i, 0);
                        }
                    }
                }
                MaintenanceScope::Tier(name) => {
                    if let Some(&ti) = self.tier_by_name.get(name) {
                        self.tiers[usize::from(ti)].maintenance_until = *until;
                        if let Some(u) = until {
                            self.push_timer(*u, TimerKind::MaintenanceEnd, u32::from(ti), 1);
                        }
                    }
                }
            },
        }
    }

    // ---------------------------------------------------------------- events

    fn on_finding(&mut self, now: Timestamp, f: Finding, out: &mut Vec<Command>) {
        self.stats.findings += 1;
        let Some(i) = self.idx(&f.target) else {
            self.stats.unknown_targets += 1;
            return;
        };
        let iu = i as usize;
        // The backoff resets once the target has been healthy for `reset_after` (as
        // Kubernetes forgets a crash-loop back-off after 10 min of running fine). Checked on
        // every finding, before an actionable one ends the healthy stretch: a target whose
        // failures are an hour apart starts each incident at the initial delay.
        let reset_after = self.tiers[usize::from(self.targets[iu].tier)]
            .policy
            .backoff
            .reset_after;
        let t = &self.targets[iu];
        if t.failures > 0 && t.healthy_since.is_some_and(|h| now.since(h) >= reset_after) {
            let target = t.name.clone();
            self.journal(out, JournalEntry::BackoffReset { at: now, target });
        }
        let t = &mut self.targets[iu];
        t.health = f.health;
        let alarm = f.prediction.as_ref().is_some_and(|p| p.alarm);
        match f.health {
            HealthState::Healthy => {
                if t.healthy_since.is_none() {
                    t.healthy_since = Some(now);
                }
            }
            HealthState::Unknown => {}
            HealthState::Degraded | HealthState::Unhealthy => t.healthy_since = None,
        }
        let actionable =
            matches!(f.health, HealthState::Degraded | HealthState::Unhealthy) || alarm;
        // A healthy target with too many replicas for its load: an HPA scale-down candidate.
        let policy = &self.tiers[usize::from(t.tier)].policy;
        let scale_down = f.health == HealthState::Healthy
            && t.replicas > t.bounds.min
            && f.utilization.is_some_and(|u| {
                hpa_desired(
                    t.replicas,
                    u,
                    policy.scale_threshold,
                    policy.scaling.tolerance,
                ) < t.replicas
            });
        if !actionable {
            if f.health == HealthState::Healthy {
                // Healed on its own (or by us): nothing left to do for the old finding, and
                // the incident, if any, is over.
                t.finding = None;
                if let Some(p) = t.approval {
                    let target = t.name.clone();
                    let entry = JournalEntry::ApprovalWithdrawn {
                        at: now,
                        approval: p.approval,
                        target,
                    };
                    self.journal(out, entry);
                }
                let t = &self.targets[iu];
                if t.hold == Some(Hold::Escalated) {
                    let target = t.name.clone();
                    self.journal(out, JournalEntry::Resumed { at: now, target });
                }
                // While an action, an approval or a hold is pending, its end decides.
                self.journal_recovered(now, i, out);
                let t = &mut self.targets[iu];
                if t.park != Park::None {
                    t.park = Park::None;
                }
                self.unqueue(i);
                self.settle(i);
            }
            if !scale_down {
                return;
            }
        }
        let maintenance = self.in_maintenance(i, now);
        let t = &self.targets[iu];
        if actionable
            && !t.incident_open
            && t.inflight.is_none()
            && t.approval.is_none()
            && t.hold.is_none()
        {
            self.stats.incidents += 1;
            let (anomaly, top_features) = incident_anomaly(&f);
            let entry = JournalEntry::IncidentOpened {
                at: now,
                target: t.name.clone(),
                health: f.health,
                summary: summarize(&f),
                anomaly,
                top_features,
            };
            self.journal(out, entry);
        }
        let t = &mut self.targets[iu];
        t.finding = Some(f);
        if maintenance {
            self.stats.findings_in_maintenance += 1;
        }
        if t.inflight.is_some() || t.approval.is_some() || t.hold.is_some() || t.park != Park::None
        {
            // single flight: the newer finding is kept for when the target is free again
            return;
        }
        if maintenance {
            t.park = Park::Maintenance;
            return;
        }
        self.enqueue(i, now);
    }

    /// The target and state of `action` if it is in flight (and, with `acting_only`, still
    /// waiting for its actuator); otherwise the event is stale and counted as such.
    fn in_flight(&mut self, action: ActionId, acting_only: bool) -> Option<(u32, InFlight)> {
        let found = self.actions.get(&action).and_then(|&i| {
            self.targets[i as usize]
                .inflight
                .filter(|f| f.action == action && (!acting_only || f.phase == Phase::Acting))
                .map(|f| (i, f))
        });
        if found.is_none() {
            self.stats.stale_events += 1;
        }
        found
    }

    fn on_action_outcome(
        &mut self,
        now: Timestamp,
        action: ActionId,
        outcome: Outcome,
        out: &mut Vec<Command>,
    ) {
        let Some((i, f)) = self.in_flight(action, true) else {
            return;
        };
        let target = self.targets[i as usize].name.clone();
        self.journal(
            out,
            JournalEntry::Acted {
                at: now,
                action,
                outcome: outcome.clone(),
            },
        );
        match (outcome, f.kind) {
            (Outcome::Success | Outcome::Unknown, ActKind::Heal(Strategy::CircuitBreak)) => {
                let t = &mut self.targets[i as usize];
                let d = self.tiers[usize::from(t.tier)]
                    .policy
                    .circuit_break_duration;
                let mut b = t.breaker;
                let tr = b.trip(now, d);
                self.breaker_change(now, i, &target, tr.to, out);
            }
            (Outcome::Success | Outcome::Unknown, ActKind::Fallback) => {
                self.journal(
                    out,
                    JournalEntry::Degraded {
                        at: now,
                        target: target.clone(),
                    },
                );
                out.push(Command::Notify(Notice::Degraded { target }));
                self.close(now, i, action, AttemptResult::Success, out);
            }
            (Outcome::Success | Outcome::Unknown, ActKind::Heal(_)) => {
                // verification is scheduled by `apply`
            }
            (Outcome::Failure(_), _) => {
                self.stats.failures += 1;
                self.close(now, i, action, AttemptResult::Failure, out);
                self.requeue(i, now);
            }
            (Outcome::Skipped(_), _) => {
                self.close(now, i, action, AttemptResult::Skipped, out);
                self.targets[i as usize].finding = None;
                self.settle(i);
            }
        }
    }

    fn on_verify(
        &mut self,
        now: Timestamp,
        action: ActionId,
        outcome: Outcome,
        out: &mut Vec<Command>,
    ) {
        let Some((i, f)) = self.in_flight(action, false) else {
            return;
        };
        match f.phase {
            Phase::Verifying { sent: Some(_), .. } => {
                self.journal_verified(now, action, &outcome, out);
                self.finish_verify(now, i, action, &outcome, out);
            }
            Phase::Probing { .. } => {
                self.journal_verified(now, action, &outcome, out);
                self.finish_probe(now, i, action, outcome == Outcome::Success, out);
            }
            _ => self.stats.stale_events += 1,
        }
    }

    fn finish_verify(
        &mut self,
        now: Timestamp,
        i: u32,
        action: ActionId,
        outcome: &Outcome,
        out: &mut Vec<Command>,
    ) {
        match outcome {
            Outcome::Success => {
                self.stats.successes += 1;
                let t = &mut self.targets[i as usize];
                t.health = HealthState::Healthy;
                t.healthy_since.get_or_insert(now);
                t.finding = None;
                self.close(now, i, action, AttemptResult::Success, out);
                let t = &self.targets[i as usize];
                if t.breaker.state() != BreakerState::Closed {
                    let name = t.name.clone();
                    self.breaker_change(now, i, &name, BreakerState::Closed, out);
                }
                self.settle(i);
            }
            Outcome::Failure(_) => {
                self.stats.failures += 1;
                self.close(now, i, action, AttemptResult::Failure, out);
                self.requeue(i, now);
            }
            Outcome::Unknown | Outcome::Skipped(_) => {
                self.stats.unknowns += 1;
                self.targets[i as usize].finding = None;
                self.targets[i as usize].health = HealthState::Unknown;
                self.close(now, i, action, AttemptResult::Unknown, out);
                self.settle(i);
            }
        }
    }

    /// The half-open probe's verdict, after its `Verified` entry (which counted a failed
    /// probe durably).
    fn finish_probe(
        &mut self,
        now: Timestamp,
        i: u32,
        action: ActionId,
        success: bool,
        out: &mut Vec<Command>,
    ) {
        let t = &self.targets[i as usize];
        let name = t.name.clone();
        let max = self.tiers[usize::from(t.tier)].policy.max_restart_attempts;
        let probes_failed = match t.inflight.map(|f| f.phase) {
            Some(Phase::CircuitOpen { probes_failed } | Phase::Probing { probes_failed, .. }) => {
                probes_failed
            }
            _ => 0,
        };
        let mut b = t.breaker;
        let Some(tr) = b.probe(now, success) else {
            return;
        };
        self.breaker_change(now, i, &name, tr.to, out);
        if success {
            self.finish_verify(now, i, action, &Outcome::Success, out);
        } else if probes_failed >= max {
            // The circuit stays open; the breaker has done what it can.
            self.stats.failures += 1;
            self.close(now, i, action, AttemptResult::Failure, out);
            self.requeue(i, now);
        }
    }

    /// Journals a verification verdict (a probe's answer, or unknown at its deadline).
    fn journal_verified(
        &mut self,
        now: Timestamp,
        action: ActionId,
        outcome: &Outcome,
        out: &mut Vec<Command>,
    ) {
        self.journal(
            out,
            JournalEntry::Verified {
                at: now,
                action,
                outcome: outcome.clone(),
            },
        );
    }

    fn on_approval(
        &mut self,
        now: Timestamp,
        approval: ApprovalId,
        decision: Decision,
        out: &mut Vec<Command>,
    ) {
        let Some(&i) = self.approvals.get(&approval) else {
            self.stats.stale_events += 1;
            return;
        };
        self.journal(
            out,
            JournalEntry::ApprovalDecided {
                at: now,
                approval,
                decision,
            },
        );
        match decision {
            Decision::Approve => self.enqueue(i, now),
            Decision::Deny => {
                self.targets[i as usize].finding = None;
                self.settle(i);
            }
        }
    }

    fn on_maintenance(
        &mut self,
        now: Timestamp,
        scope: MaintenanceScope,
        until: Option<Timestamp>,
        out: &mut Vec<Command>,
    ) {
        let known = match &scope {
            MaintenanceScope::Target(n) => self.by_name.contains_key(n),
            MaintenanceScope::Tier(n) => self.tier_by_name.contains_key(n),
        };
        if !known {
            self.stats.stale_events += 1;
            return;
        }
        self.journal(
            out,
            JournalEntry::Maintenance {
                at: now,
                scope: scope.clone(),
                until,
            },
        );
        // queued targets now in maintenance are parked when dispatch reaches them; parked
        // ones are released by `release_maintenance` when the window ends or is cleared
        if until.is_none_or(|u| u <= now) {
            self.release_maintenance(now, &scope);
        }
    }

    fn release_maintenance(&mut self, now: Timestamp, scope: &MaintenanceScope) {
        let members: Vec<u32> = match scope {
            MaintenanceScope::Target(n) => self.idx(n).into_iter().collect(),
            MaintenanceScope::Tier(n) => match self.tier_by_name.get(n) {
                Some(&ti) => self.tiers[usize::from(ti)].members.clone(),
                None => Vec::new(),
            },
        };
        for i in members {
            if self.targets[i as usize].park == Park::Maintenance && !self.in_maintenance(i, now) {
                self.targets[i as usize].park = Park::None;
                self.enqueue(i, now);
            }
        }
    }

    fn on_resume(&mut self, now: Timestamp, target: &TargetId, out: &mut Vec<Command>) {
        let Some(i) = self.idx(target) else {
            self.stats.stale_events += 1;
            return;
        };
        if self.targets[i as usize].hold.is_none() {
            return;
        }
        self.journal(
            out,
            JournalEntry::Resumed {
                at: now,
                target: target.clone(),
            },
        );
        self.journal_recovered(now, i, out);
        self.enqueue(i, now);
    }

    // ---------------------------------------------------------------- timers

    fn fire_timers(&mut self, now: Timestamp, out: &mut Vec<Command>) {
        while let Some(Reverse((at, _, kind, i, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let iu = i as usize;
            match kind {
                TimerKind::VerifyDue => {
                    let verify_deadline = self.tiers[usize::from(self.targets[iu].tier)]
                        .policy
                        .verify_deadline;
                    let Some(f) = self.targets[iu].inflight.as_mut() else {
                        continue;
                    };
                    if f.action.0 != id {
                        continue;
                    }
                    if let Phase::Verifying { due, sent: None } = f.phase {
                        let deadline = now + verify_deadline;
                        f.phase = Phase::Verifying {
                            due,
                            sent: Some(deadline),
                        };
                        let action = f.action;
                        out.push(Command::Verify {
                            action,
                            target: self.targets[iu].name.clone(),
                            deadline,
                        });
                        self.push_timer(deadline, TimerKind::VerifyDeadline, i, id);
                    }
                }
                TimerKind::VerifyDeadline => {
                    let Some(f) = self.targets[iu].inflight else {
                        continue;
                    };
                    if f.action.0 == id && matches!(f.phase, Phase::Verifying { sent: Some(_), .. })
                    {
                        self.journal_verified(now, f.action, &Outcome::Unknown, out);
                        self.finish_verify(now, i, f.action, &Outcome::Unknown, out);
                    }
                }
                TimerKind::HalfOpen => {
                    let t = &self.targets[iu];
                    let Some(f) = t.inflight else { continue };
                    let Phase::CircuitOpen { probes_failed } = f.phase else {
                        continue;
                    };
                    if f.action.0 != id {
                        continue;
                    }
                    let mut b = t.breaker;
                    // already half-open: a probe was due when medic restarted; send it again
                    let recovered_probe = b.state() == BreakerState::HalfOpen;
                    let tr = b.poll(now);
                    if tr.is_none() && !recovered_probe {
                        continue;
                    }
                    let name = t.name.clone();
                    let deadline = now + self.tiers[usize::from(t.tier)].policy.verify_deadline;
                    if let Some(tr) = tr {
                        self.breaker_change(now, i, &name, tr.to, out);
                    }
                    if let Some(f) = self.targets[iu].inflight.as_mut() {
                        f.phase = Phase::Probing {
                            deadline,
                            probes_failed,
                        };
                    }
                    out.push(Command::Verify {
                        action: f.action,
                        target: name,
                        deadline,
                    });
                    self.push_timer(deadline, TimerKind::ProbeDeadline, i, id);
                }
                TimerKind::ProbeDeadline => {
                    let Some(f) = self.targets[iu].inflight else {
                        continue;
                    };
                    if let Phase::Probing { deadline, .. } = f.phase
                        && f.action.0 == id
                        && deadline <= now
                    {
                        self.journal_verified(now, f.action, &Outcome::Unknown, out);
                        self.finish_probe(now, i, f.action, false, out);
                    }
                }
                TimerKind::ApprovalDeadline => {
                    let t = &self.targets[iu];
                    if t.approval.is_some_and(|a| a.approval.0 == id) {
                        let name = t.name.clone();
                        self.escalate(now, i, &name, EscalationReason::ApprovalTimedOut, out);
                    }
                }
                TimerKind::Wake => {
                    if let Park::Until(u) = self.targets[iu].park
                        && u <= now
                    {
                        self.targets[iu].park = Park::None;
                        self.enqueue(i, now);
                    }
                }
                TimerKind::MaintenanceEnd => {
                    let scope = if id == 0 {
                        MaintenanceScope::Target(self.targets[iu].name.clone())
                    } else {
                        let Some((name, _)) =
                            self.tier_by_name.iter().find(|(_, v)| u32::from(**v) == i)
                        else {
                            continue;
                        };
                        MaintenanceScope::Tier(name.clone())
                    };
                    self.release_maintenance(now, &scope);
                }
            }
        }
    }

    // ---------------------------------------------------------------- queue

    fn queue_key(&self, i: u32, now: Timestamp) -> u64 {
        let t = &self.targets[i as usize];
        let a = &self.config.aging;
        let since = t.waiting_since.unwrap_or(now);
        let sev = match t.finding.as_ref().map(|f| f.severity) {
            Some(Severity::Critical) => 0,
            Some(Severity::Warning) => ms(a.warning),
            _ => ms(a.info),
        };
        let rank = u64::from(self.tiers[usize::from(t.tier)].rank) * ms(a.per_tier_rank);
        let ttf = match t.finding.as_ref() {
            Some(f) if f.health == HealthState::Unhealthy => 0,
            Some(f) => f
                .prediction
                .as_ref()
                .filter(|p| p.alarm)
                .map_or(ms(a.ttf_cap), |p| {
                    p.horizon_s.saturating_mul(1000).min(ms(a.ttf_cap))
                }),
            None => ms(a.ttf_cap),
        };
        since
            .as_millis()
            .saturating_add(sev)
            .saturating_add(rank)
            .saturating_add(ttf)
    }

    fn enqueue(&mut self, i: u32, now: Timestamp) {
        let t = &self.targets[i as usize];
        if t.finding.is_none() && t.approved.is_none() {
            return;
        }
        if t.inflight.is_some() || t.approval.is_some() || t.hold.is_some() {
            return;
        }
        if t.waiting_since.is_none() {
            self.targets[i as usize].waiting_since = Some(now);
        }
        let key = self.queue_key(i, now);
        if let Some((k, s)) = self.targets[i as usize].queued {
            if k <= key {
                return;
            }
            self.queue.remove(&(k, s, i));
        }
        self.seq += 1;
        self.queue.insert((key, self.seq, i));
        let t = &mut self.targets[i as usize];
        t.queued = Some((key, self.seq));
        t.park = Park::None;
    }

    fn unqueue(&mut self, i: u32) {
        let t = &mut self.targets[i as usize];
        if let Some((k, s)) = t.queued.take() {
            self.queue.remove(&(k, s, i));
        }
        t.waiting_since = None;
    }

    fn requeue(&mut self, i: u32, now: Timestamp) {
        self.targets[i as usize].waiting_since = None;
        self.enqueue(i, now);
    }

    fn park(&mut self, i: u32, park: Park) {
        let t = &mut self.targets[i as usize];
        if let Some((k, s)) = t.queued.take() {
            self.queue.remove(&(k, s, i));
        }
        t.park = park;
        if let Park::Until(u) = park {
            self.push_timer(u, TimerKind::Wake, i, 0);
        }
    }

    fn in_maintenance(&self, i: u32, now: Timestamp) -> bool {
        let t = &self.targets[i as usize];
        t.maintenance_until.is_some_and(|u| now < u)
            || self.tiers[usize::from(t.tier)]
                .maintenance_until
                .is_some_and(|u| now < u)
    }

    /// Whether a target is fit to be depended on: not failing, not being healed, not waiting.
    /// A held target (gave up, which only a resume ends) is fit again once it is seen
    /// healthy: its dependents' failures are their own then.
    fn dep_ok(&self, d: u32) -> bool {
        let t = &self.targets[d as usize];
        !matches!(t.health, HealthState::Unhealthy | HealthState::Degraded)
            && t.inflight.is_none()
            && t.approval.is_none()
            && (t.hold.is_none() || t.health == HealthState::Healthy)
            && (t.queued.is_none() && t.park == Park::None || t.finding.is_none())
    }

    /// Wakes the dependents parked on `i` when `i` is fit to be depended on again.
    fn settle(&mut self, i: u32) {
        if self.dep_ok(i) {
            self.wake_dependents(i);
        }
    }

    fn wake_dependents(&mut self, i: u32) {
        for k in 0..self.targets[i as usize].dependents.len() {
            let d = self.targets[i as usize].dependents[k];
            let t = &mut self.targets[d as usize];
            if t.park == Park::Dependency {
                // What it saw while its dependency failed is blamed on the dependency: only a
                // fresh finding, made with the dependency healthy, may act on it.
                t.park = Park::None;
                t.finding = None;
                t.waiting_since = None;
            }
        }
    }

    fn dispatch(&mut self, now: Timestamp, out: &mut Vec<Command>) {
        let mut cursor: Option<(u64, u64, u32)> = None;
        while self.active < self.config.max_concurrent {
            let next = match cursor {
                None => self.queue.first().copied(),
                Some(c) => self
                    .queue
                    .range((Bound::Excluded(c), Bound::Unbounded))
                    .next()
                    .copied(),
            };
            let Some(key) = next else { break };
            cursor = Some(key);
            self.try_dispatch(now, key.2, out);
        }
    }

    /// Decides for one queued target. Leaves it queued only when a tier or group budget is
    /// full; otherwise it acts, waits for approval, is parked, held, or dropped.
    fn try_dispatch(&mut self, now: Timestamp, i: u32, out: &mut Vec<Command>) {
        let iu = i as usize;
        if self.in_maintenance(i, now) {
            self.park(i, Park::Maintenance);
            return;
        }
        if !self.targets[iu].deps.iter().all(|&d| self.dep_ok(d)) {
            self.park(i, Park::Dependency);
            return;
        }
        let tier = usize::from(self.targets[iu].tier);
        let t = &self.targets[iu];
        // budgets other than the global one (checked by `dispatch`); a give-up's fallback is
        // an act too
        let policy = &self.tiers[tier].policy;
        if let Some(m) = policy.max_concurrent
            && self.tiers[tier].active >= m
        {
            return;
        }
        if let Some(g) = t.group {
            let g = &self.groups[g as usize];
            let allowed =
                ((f64::from(g.members) * policy.max_group_unavailable).floor() as u32).max(1);
            if g.active >= allowed {
                return;
            }
        }
        // Crash loop: the target went down `crash_loop.restarts` times within the window and
        // is down again. An option a human approved still runs. Checked before the backoff:
        // giving up must not first wait out the backoff after the last failed attempt.
        let since = now - policy.crash_loop.window;
        if t.approved.is_none()
            && t.finding
                .as_ref()
                .is_some_and(|f| f.health == HealthState::Unhealthy)
            && t.crashes.iter().filter(|c| **c >= since).count()
                >= usize::try_from(policy.crash_loop.restarts).unwrap_or(usize::MAX)
        {
            let name = t.name.clone();
            self.unqueue(i);
            self.stats.gave_up += 1;
            self.escalate(now, i, &name, EscalationReason::GaveUp, out);
            self.fallback(now, i, out);
            return;
        }
        if now < t.backoff_until {
            let u = t.backoff_until;
            self.park(i, Park::Until(u));
            return;
        }

        // what to do: an approved option, or a fresh plan
        let options: Vec<(Strategy, Option<u32>, String, bool)> = if let Some((s, r)) = t.approved {
            vec![(s, r, "approved".to_owned(), false)]
        } else {
            let Some(f) = t.finding.as_ref() else {
                self.unqueue(i);
                return;
            };
            let plan = select_with(f, policy, &t.history, now, self.learned.as_ref());
            let executable = t.executable;
            let mut skipped = 0;
            let options = plan
                .options
                .into_iter()
                .filter_map(|mut o| {
                    // Never an act the target cannot carry out: a ladder rung without an
                    // action climbs to the next, any other option is dropped.
                    while executable & strategy_bit(o.strategy) == 0 {
                        skipped += 1;
                        let next = o.strategy.next_rung()?;
                        o.reason =
                            format!("{}; no {} action: next rung {next}", o.reason, o.strategy);
                        o.strategy = next;
                        o.risk = o.risk.max(default_risk(next));
                    }
                    let approval = needs_approval(&o, policy).is_some();
                    Some((o.strategy, o.replicas, o.reason, approval))
                })
                .collect();
            self.stats.not_executable += skipped;
            options
        };
        let name = t.name.clone();
        let mut exhausted = false;
        for (strategy, replicas, reason, approval) in options {
            let t = &self.targets[iu];
            let policy = &self.tiers[tier].policy;
            match strategy {
                Strategy::Observe => {
                    self.stats.observed += 1;
                    self.targets[iu].finding = None;
                    self.unqueue(i);
                    self.settle(i);
                    return;
                }
                Strategy::Escalate => {
                    self.unqueue(i);
                    self.escalate(now, i, &name, EscalationReason::LadderExhausted, out);
                    self.fallback(now, i, out);
                    return;
                }
                _ => {}
            }
            if executed_since(&t.history, strategy, now - policy.attempt_window)
                >= policy.max_restart_attempts
            {
                exhausted = true;
                continue;
            }
            let ready_at = t
                .history
                .iter()
                .rev()
                .find(|a| a.strategy == strategy)
                .map(|a| a.at + policy.restart_cooldown);
            if let Some(u) = ready_at
                && now < u
            {
                // Wait for the cooldown, or until an attempt leaves the window: the plan
                // may then differ (an exhausted rung becomes available again).
                let window = policy.attempt_window;
                let u = t
                    .history
                    .iter()
                    .filter(|a| a.at + window >= now)
                    .map(|a| a.at + window + Duration::from_millis(1))
                    .fold(u, Timestamp::min);
                self.park(i, Park::Until(u));
                return;
            }
            let replicas = if strategy == Strategy::Scale {
                let util = t.finding.as_ref().and_then(|f| f.utilization);
                // A scale that heals (the target degraded, unhealthy or predicted to fail)
                // adds capacity; only a healthy target's HPA recommendation may remove any.
                let heal = t.finding.as_ref().is_some_and(|f| {
                    matches!(f.health, HealthState::Degraded | HealthState::Unhealthy)
                        || f.prediction.as_ref().is_some_and(|p| p.alarm)
                });
                let current = t.replicas;
                let bounds = t.bounds;
                // one more (plus backups): a scale-up the load does not size
                let one_more = current
                    .saturating_add(1 + self.tiers[tier].policy.backup_instances)
                    .min(bounds.max);
                let r = match (replicas, util) {
                    (Some(r), _) => r,
                    (None, Some(u)) => {
                        let r = self.targets[iu].hpa.recommend(
                            now,
                            current,
                            u,
                            &self.tiers[tier].policy,
                            bounds,
                        );
                        if heal && r <= current { one_more } else { r }
                    }
                    (None, None) => one_more,
                };
                if r == current {
                    continue;
                }
                Some(r)
            } else {
                replicas
            };
            if approval {
                self.unqueue(i);
                let approval = ApprovalId(self.next_approval);
                let deadline = now + self.tiers[tier].policy.approval_timeout;
                self.stats.approvals_requested += 1;
                self.journal(
                    out,
                    JournalEntry::ApprovalRequested {
                        at: now,
                        approval,
                        target: name.clone(),
                        strategy,
                        replicas,
                        deadline,
                    },
                );
                out.push(Command::Notify(Notice::ApprovalRequested {
                    approval,
                    target: name,
                    strategy,
                    reason,
                    deadline,
                }));
                return;
            }
            self.unqueue(i);
            self.act(now, i, ActKind::Heal(strategy), replicas, reason, out);
            return;
        }
        self.unqueue(i);
        if exhausted {
            self.escalate(now, i, &name, EscalationReason::AttemptsExhausted, out);
        } else {
            self.stats.observed += 1;
            self.targets[iu].finding = None;
            self.settle(i);
        }
    }

    fn act(
        &mut self,
        now: Timestamp,
        i: u32,
        kind: ActKind,
        replicas: Option<u32>,
        reason: String,
        out: &mut Vec<Command>,
    ) {
        let action = ActionId(self.next_action);
        let target = self.targets[i as usize].name.clone();
        let key = format!("{target}/{action}");
        let dry_run = self.config.mode == RunMode::DryRun;
        self.journal(
            out,
            JournalEntry::Intent {
                at: now,
                action,
                target: target.clone(),
                kind,
                replicas,
                key: key.clone(),
                dry_run,
                reason,
            },
        );
        self.stats.acts += 1;
        match kind {
            ActKind::Heal(s) => self.stats.acts_by_strategy[strategy_idx(s)] += 1,
            ActKind::Fallback => self.stats.fallbacks += 1,
        }
        out.push(Command::Act(Act {
            action,
            target,
            kind,
            replicas,
            idempotency_key: key,
            dry_run,
        }));
        if dry_run {
            self.close(now, i, action, AttemptResult::Skipped, out);
            self.targets[i as usize].finding = None;
            self.settle(i);
        }
    }

    fn close(
        &mut self,
        now: Timestamp,
        i: u32,
        action: ActionId,
        result: AttemptResult,
        out: &mut Vec<Command>,
    ) {
        self.journal(
            out,
            JournalEntry::Closed {
                at: now,
                action,
                result,
            },
        );
        // seen healthy while the action ran, and it left the incident open (a failed
        // verification racing the target's own recovery): the incident is over all the same
        self.journal_recovered(now, i, out);
    }

    /// Journals the end of target `i`'s open incident when its latest finding was healthy
    /// and nothing of the incident is pending: no action in flight, approval waiting or hold.
    /// An actionable finding while something is pending belongs to the incident, so the
    /// pending thing's end (close, resume) checks again.
    fn journal_recovered(&mut self, now: Timestamp, i: u32, out: &mut Vec<Command>) {
        let t = &self.targets[i as usize];
        if t.incident_open
            && t.health == HealthState::Healthy
            && t.inflight.is_none()
            && t.approval.is_none()
            && t.hold.is_none()
        {
            let target = t.name.clone();
            self.journal(out, JournalEntry::Recovered { at: now, target });
        }
    }

    fn escalate(
        &mut self,
        now: Timestamp,
        i: u32,
        name: &TargetId,
        reason: EscalationReason,
        out: &mut Vec<Command>,
    ) {
        self.stats.escalations += 1;
        self.journal(
            out,
            JournalEntry::Escalated {
                at: now,
                target: name.clone(),
                reason,
            },
        );
        let t = &self.targets[i as usize];
        out.push(Command::Escalate(Box::new(Escalation {
            target: name.clone(),
            reason,
            finding: t.finding.clone(),
            history: t.history.iter().copied().collect(),
        })));
    }

    /// Graceful degradation: healing failed; run the fallback once if there is one.
    fn fallback(&mut self, now: Timestamp, i: u32, out: &mut Vec<Command>) {
        let t = &self.targets[i as usize];
        if !t.has_fallback || t.degraded || t.inflight.is_some() || self.in_maintenance(i, now) {
            return;
        }
        self.act(
            now,
            i,
            ActKind::Fallback,
            None,
            "healing failed: degrade gracefully".to_owned(),
            out,
        );
    }

    fn breaker_change(
        &mut self,
        now: Timestamp,
        i: u32,
        name: &TargetId,
        state: BreakerState,
        out: &mut Vec<Command>,
    ) {
        let _ = i;
        self.journal(
            out,
            JournalEntry::Breaker {
                at: now,
                target: name.clone(),
                state,
            },
        );
        out.push(Command::Circuit {
            target: name.clone(),
            state,
        });
    }
}

/// One line a human can read: what the finding said.
fn summarize(f: &Finding) -> String {
    use std::fmt::Write as _;
    let severity = match f.severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    };
    let mut s = format!("{} ({severity})", f.health);
    let mut levels = f.failing.iter().peekable();
    if levels.peek().is_some() {
        s.push_str("; failing");
        for l in levels {
            let _ = write!(s, " {l}");
        }
    }
    if let Some(d) = &f.diagnosis {
        let _ = write!(s, "; diagnosis {} ({:.2}", d.category, d.confidence);
        if let Some(p) = &d.pattern_id {
            let _ = write!(s, ", pattern {p}");
        }
        s.push(')');
    }
    if let Some(a) = f.anomaly.as_ref().filter(|a| a.anomalous) {
        let _ = write!(s, "; anomaly {} (score {:.2})", a.kind, a.score);
    }
    if let Some(p) = f.prediction.as_ref().filter(|p| p.alarm) {
        let _ = write!(
            s,
            "; failure predicted within {}s (p={:.2})",
            p.horizon_s, p.probability
        );
    }
    for (name, v) in [
        ("utilisation", f.utilization),
        ("memory", f.memory_ratio),
        ("error rate", f.error_rate),
    ] {
        if let Some(v) = v {
            let _ = write!(s, "; {name} {:.0}%", v * 100.0);
        }
    }
    if let Some(at) = f.version_changed_at {
        let _ = write!(s, "; version changed at {at}");
    }
    s
}

fn entry_time(e: &JournalEntry) -> Option<Timestamp> {
    Some(match e {
        JournalEntry::IncidentOpened { at, .. }
        | JournalEntry::Intent { at, .. }
        | JournalEntry::Acted { at, .. }
        | JournalEntry::Verified { at, .. }
        | JournalEntry::Closed { at, .. }
        | JournalEntry::ApprovalRequested { at, .. }
        | JournalEntry::ApprovalDecided { at, .. }
        | JournalEntry::ApprovalWithdrawn { at, .. }
        | JournalEntry::Escalated { at, .. }
        | JournalEntry::Resumed { at, .. }
        | JournalEntry::Recovered { at, .. }
        | JournalEntry::Degraded { at, .. }
        | JournalEntry::Breaker { at, .. }
        | JournalEntry::BackoffReset { at, .. }
        | JournalEntry::Maintenance { at, .. } => *at,
    })
}

fn check_acyclic(states: &[TargetState]) -> Result<(), Error> {
    // Kahn's algorithm over "depends on" edges.
    let mut indeg: Vec<u32> = states.iter().map(|t| t.deps.len() as u32).collect();
    let mut ready: Vec<u32> = (0..states.len() as u32)
        .filter(|&i| indeg[i as usize] == 0)
        .collect();
    let mut seen = 0usize;
    while let Some(i) = ready.pop() {
        seen += 1;
        for &d in &states[i as usize].dependents {
            indeg[d as usize] -= 1;
            if indeg[d as usize] == 0 {
                ready.push(d);
            }
        }
    }
    if seen == states.len() {
        Ok(())
    } else {
        let culprit = indeg.iter().position(|&n| n > 0).unwrap_or(0);
        Err(Error::DependencyCycle(states[culprit].name.clone()))
    }
}

/// A read-only summary of one target, for APIs, reports and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetView {
    /// Last known health.
    pub health: HealthState,
    /// The action in flight.
    pub in_flight: Option<(ActionId, ActKind)>,
    /// The approval request waiting.
    pub awaiting_approval: Option<ApprovalId>,
    /// Crash loop: the engine stopped acting.
    pub gave_up: bool,
    /// A human was called; the engine waits for resume or health.
    pub escalated: bool,
    /// Running its fallback.
    pub degraded: bool,
    /// Circuit breaker state.
    pub breaker: BreakerState,
    /// Current replicas.
    pub replicas: u32,
    /// In the priority queue.
    pub queued: bool,
    /// Holding a finding not yet acted on.
    pub pending_finding: bool,
    /// Why its pending finding waits outside the queue, if it does.
    pub waiting: Option<Waiting>,
}

/// Why a target with a pending finding is not acted on now (see [`TargetView::waiting`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// A dependency is failing or being healed; it goes first.
    Dependency,
    /// Maintenance holds healing of the target or its tier.
    Maintenance,
    /// Backing off after failed attempts, until then.
    Backoff(Timestamp),
    /// The chosen strategy was used on it within `restart_cooldown` (by this process or
    /// another sharing the journal); it is planned again then.
    Cooldown(Timestamp),
}

/// The journal-determined part of one target's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DurableTarget {
    /// Current replicas.
    pub replicas: u32,
    /// Attempts kept.
    pub history: Vec<medic_strategy::Attempt>,
    /// Consecutive failures counted by backoff.
    pub failures: u32,
    /// No attempt before this.
    pub backoff_until: Timestamp,
    /// The action in flight.
    pub in_flight: Option<(ActionId, ActKind, Option<u32>)>,
    /// The approval waiting.
    pub approval: Option<(ApprovalId, Strategy)>,
    /// An approved option not started yet.
    pub approved: Option<(Strategy, Option<u32>)>,
    /// Gave up (crash loop).
    pub gave_up: bool,
    /// Escalated and held.
    pub escalated: bool,
    /// Running its fallback.
    pub degraded: bool,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Target maintenance end.
    pub maintenance_until: Option<Timestamp>,
    /// Failed half-open probes of the circuit-break action in flight (0 without one).
    pub half_open_failures: u32,
    /// When the target went down within the crash-loop window, oldest first.
    pub crashes: Vec<Timestamp>,
    /// An incident is open as far as the journal shows (opened, and not yet closed by a
    /// verified heal, an unknown verification, a denied approval or the target seen healthy).
    pub incident_open: bool,
}

/// The journal-determined part of the engine's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DurableState {
    /// Next action id.
    pub next_action: u64,
    /// Next approval id.
    pub next_approval: u64,
    /// Per tier (in name order): maintenance end.
    pub tier_maintenance: Vec<Option<Timestamp>>,
    /// Per target, in fleet order.
    pub targets: Vec<DurableTarget>,
}
