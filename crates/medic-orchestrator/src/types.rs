//! The engine's inputs and outputs: configuration, events, commands and journal entries.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use medic_core::{AnomalyKind, Finding, HealthState, Outcome, Strategy, TargetId, Timestamp};
use medic_policy::{Replicas, Target};
use medic_strategy::{Attempt, AttemptResult, BreakerState};
use serde::{Deserialize, Serialize};

/// An action's id: unique within one journal, never reused. An engine numbers its actions
/// within its run's range ([`EngineConfig::run`], [`RUN_ID_SPAN`] ids per run), so processes
/// sharing a journal with distinct run numbers never issue the same id; recovery continues
/// after the highest id of its own range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub u64);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// An approval request's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApprovalId(pub u64);

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// What the engine needs to know about one target (a subset of `medic_policy::Target`).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineTarget {
    /// Unique name.
    pub name: TargetId,
    /// Its tier's name; must be a key of the tier map.
    pub tier: String,
    /// Replicas serving the same traffic share a group (group budget, reroute).
    pub group: Option<String>,
    /// Targets this one needs.
    pub depends_on: Vec<TargetId>,
    /// Whether a fallback action (graceful degradation) is configured.
    pub has_fallback: bool,
    /// Wait this long after an action before verifying.
    pub startup_delay: Duration,
    /// Replica bounds and the initial count.
    pub replicas: Replicas,
    /// The strategies this target has an action for (its `actions:` keys, including the
    /// supervisor's restart and reset). `None`: not stated, every strategy is taken as
    /// executable (simulated fleets and tests that model every action). A strategy outside
    /// the set is never acted: a ladder rung climbs to the next executable one, any other
    /// option is dropped. Escalate and observe need no action.
    pub actions: Option<Vec<Strategy>>,
}

impl EngineTarget {
    /// The engine's view of a validated target.
    pub fn from_target(t: &Target) -> Self {
        EngineTarget {
            name: t.name.clone(),
            tier: t.tier.clone(),
            group: t.group.clone(),
            depends_on: t.depends_on.clone(),
            has_fallback: t.fallback.is_some(),
            startup_delay: t.startup_delay,
            replicas: t.replicas,
            actions: Some(t.actions.keys().copied().collect()),
        }
    }
}

/// Whether commands are carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Act commands are executed by the driver.
    Live,
    /// The same decisions are made and journaled, but every act is marked `dry_run` and
    /// closed as skipped at once: nothing is executed, nothing is verified.
    DryRun,
}

/// How waiting raises priority (see the crate docs on the queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aging {
    /// A warning waits this much longer than a critical finding of the same age.
    pub warning: Duration,
    /// An info finding waits this much longer than a critical one.
    pub info: Duration,
    /// Each tier rank below the first adds this.
    pub per_tier_rank: Duration,
    /// Predicted time to failure counts up to this.
    pub ttf_cap: Duration,
}

/// Engine-wide settings. No `Default`: the caller states what it wants, or uses
/// [`EngineConfig::standard`] whose values are documented there.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Actions running at once, fleet-wide (at least 1).
    pub max_concurrent: u32,
    /// Live or dry run.
    pub mode: RunMode,
    /// Queue aging.
    pub aging: Aging,
    /// Tier priority, lower first. Unlisted tiers: 0 when the name contains `critical`, else 1.
    pub tier_ranks: BTreeMap<String, u8>,
    /// This process's run number: its action and approval ids are numbered from
    /// `run * RUN_ID_SPAN + 1`. Processes that share one journal (the daemon, `medic heal`)
    /// each take a distinct run number (the store's `runs` table), so their ids never
    /// collide. 0 (the default): from 1, for a single process.
    pub run: u64,
}

/// How many action (and approval) ids one run may issue before it would reach the next run's
/// range: 10^9, so ids of runs below 9 million stay exact in JSON numbers (< 2^53) and read
/// as the run followed by nine digits.
pub const RUN_ID_SPAN: u64 = 1_000_000_000;

impl EngineConfig {
    /// `max_concurrent` actions at once, live; warnings age 60 s behind critical findings,
    /// info 600 s; each tier rank 30 s; predicted time to failure counts up to 600 s.
    pub fn standard(max_concurrent: u32) -> Self {
        EngineConfig {
            max_concurrent,
            mode: RunMode::Live,
            aging: Aging {
                warning: Duration::from_secs(60),
                info: Duration::from_secs(600),
                per_tier_rank: Duration::from_secs(30),
                ttf_cap: Duration::from_secs(600),
            },
            tier_ranks: BTreeMap::new(),
            run: 0,
        }
    }
}

/// Where maintenance applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceScope {
    /// One target.
    Target(TargetId),
    /// Every target of a tier.
    Tier(String),
}

/// A human's answer to an approval request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Run it.
    Approve,
    /// Do not run it; the incident is closed as declined.
    Deny,
}

/// Everything that can happen to the engine. Closed: the driver, the simulator and tests
/// speak only this.
#[derive(Clone, Debug, PartialEq)]
// Events are transient and moved once; boxing findings would cost an allocation per finding.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// Detection's latest verdict on a target.
    Finding(Finding),
    /// The actuator finished an [`Act`]: `Success` (it ran), `Failure` (it failed), `Unknown`
    /// (it may have run: verify), `Skipped` (it did not run).
    ActionOutcome {
        /// Which act.
        action: ActionId,
        /// How it ended.
        outcome: Outcome,
    },
    /// The answer to a [`Command::Verify`].
    VerifyResult {
        /// Which action was verified.
        action: ActionId,
        /// `Success` healthy, `Failure` still failing, `Unknown` could not tell.
        outcome: Outcome,
    },
    /// A human's decision on an approval request.
    Approval {
        /// Which request.
        approval: ApprovalId,
        /// The decision.
        decision: Decision,
    },
    /// Sets (`until: Some`) or clears (`None`) a maintenance window.
    Maintenance {
        /// Where.
        scope: MaintenanceScope,
        /// When it ends on its own.
        until: Option<Timestamp>,
    },
    /// An operator lets the engine act on a target it gave up on or escalated.
    Resume {
        /// The target.
        target: TargetId,
    },
    /// Time passed: timers fire and queued work is dispatched.
    Tick,
}

/// What an act does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "strategy")]
pub enum ActKind {
    /// Carry out a strategy.
    Heal(Strategy),
    /// Run the target's fallback action (graceful degradation).
    Fallback,
}

/// An instruction to an actuator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Act {
    /// The action's id (answer with [`Event::ActionOutcome`]).
    pub action: ActionId,
    /// The target.
    pub target: TargetId,
    /// What to do.
    pub kind: ActKind,
    /// For scale: the replica count to reach.
    pub replicas: Option<u32>,
    /// Unique per action; an actuator that sees a key twice must not act twice.
    pub idempotency_key: String,
    /// Not to be executed (dry run).
    pub dry_run: bool,
}

/// Why a human is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// Crash loop: the target went down `crash_loop.restarts` times within the window; the
    /// engine stopped acting.
    GaveUp,
    /// The escalation ladder reached its top.
    LadderExhausted,
    /// Every option used up its attempts within the window.
    AttemptsExhausted,
    /// An approval request timed out.
    ApprovalTimedOut,
}

/// A call for a human, with the context to act on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// The target.
    pub target: TargetId,
    /// Why.
    pub reason: EscalationReason,
    /// The latest finding, if any.
    pub finding: Option<Finding>,
    /// What was tried, oldest first.
    pub history: Vec<Attempt>,
}

/// Something a human should know that needs no decision, or an approval request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "notice")]
pub enum Notice {
    /// An option waits for approval until `deadline`.
    ApprovalRequested {
        /// The request.
        approval: ApprovalId,
        /// The target.
        target: TargetId,
        /// The option's strategy.
        strategy: Strategy,
        /// Why it needs approval and why it was chosen.
        reason: String,
        /// When it escalates.
        deadline: Timestamp,
    },
    /// The target runs its fallback and is degraded.
    Degraded {
        /// The target.
        target: TargetId,
    },
}

/// What the engine asks the driver to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Append to the durable journal (before anything that follows it).
    Journal(JournalEntry),
    /// Run an action.
    Act(Act),
    /// Probe the target afresh and answer with [`Event::VerifyResult`] before `deadline`.
    Verify {
        /// The action being verified.
        action: ActionId,
        /// The target.
        target: TargetId,
        /// After this the engine records the outcome as unknown.
        deadline: Timestamp,
    },
    /// Route traffic according to the target's circuit breaker.
    Circuit {
        /// The target.
        target: TargetId,
        /// Its new state.
        state: BreakerState,
    },
    /// Tell a human.
    Notify(Notice),
    /// Call a human.
    Escalate(Box<Escalation>),
}

/// What an [`JournalEntry::IncidentOpened`] records of `finding`'s anomaly, for learning from
/// outcomes (the incident's signature, `medic_strategy::IncidentSignature`): its kind and the
/// names of its top [`medic_strategy::learn::TOP_FEATURES`] features, when it is anomalous;
/// `(None, [])` otherwise.
pub fn incident_anomaly(finding: &Finding) -> (Option<AnomalyKind>, Vec<String>) {
    match finding.anomaly.as_ref().filter(|a| a.anomalous) {
        Some(a) => (
            Some(a.kind),
            a.top_features
                .iter()
                .take(medic_strategy::learn::TOP_FEATURES)
                .map(|(name, _)| name.clone())
                .collect(),
        ),
        None => (None, Vec::new()),
    }
}

/// One durable record. The engine's durable state is exactly the fold of its journal:
/// every change to it is made by applying an entry, live and in [`crate::Engine::recover`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "entry")]
pub enum JournalEntry {
    /// A finding opened an incident: the target had nothing pending, in flight, waiting for
    /// approval or held, and the finding is actionable (degraded, unhealthy or a failure
    /// predicted). Written before anything it leads to, so a recovered journal says why an
    /// action started. An unhealthy one counts as a crash for crash-loop detection.
    IncidentOpened {
        /// When.
        at: Timestamp,
        /// The target.
        target: TargetId,
        /// Its health in the finding.
        health: HealthState,
        /// What the finding said, for humans: health, failing levels, diagnosis, anomaly,
        /// prediction and the metrics present.
        summary: String,
        /// The anomaly's kind when the finding was anomalous (see [`incident_anomaly`];
        /// absent in journals written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anomaly: Option<AnomalyKind>,
        /// The names of the anomaly's top features, most contributing first (see
        /// [`incident_anomaly`]; empty without an anomaly and in older journals).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        top_features: Vec<String>,
    },
    /// An action is about to run (written before its act).
    Intent {
        /// When.
        at: Timestamp,
        /// The action.
        action: ActionId,
        /// The target.
        target: TargetId,
        /// What.
        kind: ActKind,
        /// For scale: the count to reach.
        replicas: Option<u32>,
        /// The act's idempotency key.
        key: String,
        /// Dry run: not executed.
        dry_run: bool,
        /// Why (the plan option's reason).
        reason: String,
    },
    /// The actuator reported.
    Acted {
        /// When.
        at: Timestamp,
        /// The action.
        action: ActionId,
        /// What it said.
        outcome: Outcome,
    },
    /// Verification reported (or its deadline passed: unknown).
    Verified {
        /// When.
        at: Timestamp,
        /// The action.
        action: ActionId,
        /// The verdict.
        outcome: Outcome,
    },
    /// The action is over; its slot is free.
    Closed {
        /// When.
        at: Timestamp,
        /// The action.
        action: ActionId,
        /// How it ended.
        result: AttemptResult,
    },
    /// An option waits for approval.
    ApprovalRequested {
        /// When.
        at: Timestamp,
        /// The request.
        approval: ApprovalId,
        /// The target.
        target: TargetId,
        /// The option.
        strategy: Strategy,
        /// For scale.
        replicas: Option<u32>,
        /// When it escalates.
        deadline: Timestamp,
    },
    /// A human decided.
    ApprovalDecided {
        /// When.
        at: Timestamp,
        /// The request.
        approval: ApprovalId,
        /// The decision.
        decision: Decision,
    },
    /// The target was seen healthy while its approval request waited: nothing is left to
    /// approve, so the request is gone (an answer to it is stale) and its deadline escalates
    /// nothing. The driver takes it off its list and resolves its notification.
    ApprovalWithdrawn {
        /// When.
        at: Timestamp,
        /// The request.
        approval: ApprovalId,
        /// The target.
        target: TargetId,
    },
    /// A human was called; the engine holds off the target until resumed or healthy.
    Escalated {
        /// When.
        at: Timestamp,
        /// The target.
        target: TargetId,
        /// Why.
        reason: EscalationReason,
    },
    /// Held targets may be acted on again.
    Resumed {
        /// When.
        at: Timestamp,
        /// The target.
        target: TargetId,
    },
    /// The target of an open incident was seen healthy: the incident is over, whether it
    /// healed on its own or an action's effect showed before its verification. Written once
    /// per incident, so that an engine recovered from the journal knows it too and opens a
    /// new incident (and counts a new crash) for the next failure.
    Recovered {
        /// When.
        at: Timestamp,
        /// The target.
        target: TargetId,
    },
    /// The fallback ran: the target is degraded until a heal succeeds.
    Degraded {
        /// When.
        at: Timestamp,
        /// The target.
        target: TargetId,
    },
    /// The circuit breaker changed state.
    Breaker {
        /// When.
        at: Timestamp,
        /// The target.
        target: TargetId,
        /// The new state.
        state: BreakerState,
    },
    /// The target stayed healthy for the backoff's `reset_after`: attempts start over at the
    /// initial delay.
    BackoffReset {
        /// When.
        at: Timestamp,
        /// The target.
        target: TargetId,
    },
    /// A maintenance window was set or cleared.
    Maintenance {
        /// When.
        at: Timestamp,
        /// Where.
        scope: MaintenanceScope,
        /// Its end (`None`: cleared).
        until: Option<Timestamp>,
    },
}

/// Counters for reports and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Findings received.
    pub findings: u64,
    /// Findings for targets the engine does not know (skipped).
    pub unknown_targets: u64,
    /// Findings recorded while their target was under maintenance.
    pub findings_in_maintenance: u64,
    /// Outcomes, verifications or approvals for unknown or finished ids (ignored).
    pub stale_events: u64,
    /// Act commands issued.
    pub acts: u64,
    /// Acts by strategy, in [`Strategy::ALL`] order; fallbacks are not counted here.
    pub acts_by_strategy: [u64; 10],
    /// Fallback acts.
    pub fallbacks: u64,
    /// Verified successes.
    pub successes: u64,
    /// Failed actions or verifications.
    pub failures: u64,
    /// Verifications that could not decide.
    pub unknowns: u64,
    /// Escalations.
    pub escalations: u64,
    /// Crash loops given up on.
    pub gave_up: u64,
    /// Approval requests.
    pub approvals_requested: u64,
    /// Plans whose best option was to observe.
    pub observed: u64,
    /// Journal entries written (including the ones of recovery's caller).
    pub journal_entries: u64,
    /// Journal entries skipped by recovery (unknown target or action).
    pub recovery_skipped: u64,
    /// Incidents opened ([`JournalEntry::IncidentOpened`]).
    pub incidents: u64,
    /// Plan options dropped or climbed past because the target has no action for them.
    pub not_executable: u64,
}
