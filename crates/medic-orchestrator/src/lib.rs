//! The healing engine: a pure, sans-IO state machine from findings to journaled commands.
//!
//! [`Engine::step`]`(now, event, &mut out)` is the whole interface: the real driver, the
//! simulator and the tests feed it [`Event`]s with a time, and carry out the [`Command`]s it
//! appends. It never reads a clock, never does I/O and never depends on tokio, so a day of a
//! 10,000-target fleet runs in virtual time in seconds and every decision can be replayed.
//!
//! Main types: [`Engine`], [`Event`], [`Command`], [`JournalEntry`], [`EngineConfig`],
//! [`EngineTarget`]. Plans come from `medic-strategy`.
//!
//! # Semantics
//! - **Priority queue.** Targets with an actionable finding (degraded, unhealthy, or a failure
//!   predicted) wait in one queue ordered by a *virtual deadline*: the time they started
//!   waiting, plus an offset for severity (critical 0, warning [`Aging::warning`], info
//!   [`Aging::info`]), tier rank ([`Aging::per_tier_rank`] per rank, critical tiers rank 0),
//!   and predicted time to failure (0 for an unhealthy target, the predictor's horizon capped
//!   at [`Aging::ttf_cap`] otherwise). Ties keep arrival order (stable). Because the offsets
//!   are bounded, a waiting target eventually sorts before any newer one: no starvation.
//! - **Dispatch happens on [`Event::Tick`]**; findings only queue. Each tick fires due timers,
//!   then walks the queue in order while the global budget has room.
//! - **Single flight.** A target has at most one action, approval request or hold at a time.
//!   A newer finding replaces the stored one (and may raise its priority), never adds a second
//!   entry or action.
//! - **Budgets.** At most [`EngineConfig::max_concurrent`] actions fleet-wide, the tier's
//!   `max_concurrent`, and `max(1, ⌊members × max_group_unavailable⌋)` per group. An action
//!   counts from its intent until it is closed (after verification). A target blocked only by
//!   a tier or group budget stays queued in place.
//! - **Cooldown** per (target, strategy): the same strategy is not started again within the
//!   tier's `restart_cooldown` of its last start; the target waits (parked until then).
//! - **Max attempts**: a strategy is started at most `max_restart_attempts` times per
//!   `attempt_window` on a target; the planner then climbs the ladder or drops the option, and
//!   when every option is used up the target is escalated once. Only executed attempts count:
//!   an act closed skipped (a dry run's) did not happen.
//! - **Backoff**: after a failed attempt the target waits `initial × multiplier^(n−1)`, capped
//!   at `max` (10 s doubling to 300 s by default), where n counts consecutive failures; n
//!   starts over once the target has been healthy for `reset_after`.
//! - **Crash loop** counts *crashes*, not medic's restarts (like Kubernetes' restart count):
//!   the target went down when an unhealthy finding opened an incident
//!   ([`JournalEntry::IncidentOpened`]), and when a process-starting action (restart, reset,
//!   recreate, rollback) closed as failed (it was still or again down afterwards). Crashes
//!   the target has on its own while medic waits out a cooldown count too, so the shipped
//!   300 s cooldown cannot hide a loop. When the target is unhealthy and has
//!   `crash_loop.restarts` crashes within `crash_loop.window`, the next dispatch (after
//!   backoff and budgets) gives up: it journals `Escalated{GaveUp}`, escalates exactly once,
//!   runs the fallback if any, and does nothing more until [`Event::Resume`]. An option a
//!   human approved still runs. Resuming (by an operator, or by health after an escalation)
//!   forgets the earlier crashes. Acts closed skipped (dry run) are never crashes and do not
//!   end the incident, so a target that stays down counts once, not once per plan.
//! - **Dependency order**: a target is not acted on while any target in its `depends_on` is
//!   unhealthy, degraded, queued, waiting for approval, held (unless seen healthy since: a
//!   dependency that gave up and was fixed by a human blocks nothing) or being healed; it
//!   is parked and
//!   woken when the dependency is healthy again. So dependencies heal first and a failure
//!   that is a dependency's does not restart the dependents.
//! - **Maintenance** (per target or tier, with expiry): nothing is started on a target in
//!   maintenance; its findings are recorded (kept, counted) and acted on when it ends.
//!   Actions already running finish and are verified.
//! - **Executable options only**: a target states the strategies it has an action for
//!   ([`EngineTarget::actions`]). A plan option without one is never acted: a ladder rung
//!   climbs to the next rung (up to escalate), any other option (e.g. `repair` with no repair
//!   action) is dropped and the next option is tried ([`Stats::not_executable`]).
//! - **Approvals**: an option above the tier's `auto_approve_risk` or below its
//!   `confidence_threshold` is not run: an approval request is journaled and notified; on
//!   approve it is queued and run under the usual budgets; on deny the finding is dropped; at
//!   `approval_timeout` the target is escalated.
//! - **Verification**: an action the actuator reports done is verified after the target's
//!   `startup_delay` by a [`Command::Verify`] that must be answered within `verify_deadline`.
//!   Success closes it (and the incident); failure closes it as failed, applies backoff and
//!   re-plans, which climbs the escalation ladder; no answer or unknown closes it as unknown
//!   and waits for the next finding.
//! - **Scale** replica counts come from the HPA rule (`medic_strategy::hpa`) against the tier's
//!   `scale_threshold`, with its stabilisation window, bounds and `backup_instances`. A
//!   healthy finding whose utilisation says fewer replicas would do (and replicas above min)
//!   is queued as a scale-down candidate; the stabilisation window keeps the highest
//!   recommendation of the last `scale_down_stabilization`, so a recent spike blocks it.
//! - **Circuit breaker** per target (`medic_strategy::breaker`): a circuit-break action that
//!   ran opens it for `circuit_break_duration` ([`Command::Circuit`]); then it goes half-open
//!   and one [`Command::Verify`] decides: success closes it, failure re-opens it; after
//!   `max_restart_attempts` failed probes the action closes as failed (the circuit stays open)
//!   and the target is re-planned. Any later verified heal closes the circuit. Failed probes
//!   are counted from their journaled `Verified` entries, so a recovered engine gives up
//!   after the same number ([`DurableTarget::half_open_failures`]).
//! - **Graceful degradation**: when the ladder reaches escalate or the engine gives up, a
//!   target with a fallback action runs it once ([`ActKind::Fallback`]) and is marked degraded
//!   until a heal succeeds.
//! - **Dry run** ([`RunMode::DryRun`]): the decision a live run would make from the same
//!   state, journaled the same way; every act is marked `dry_run` and closed at once as
//!   skipped. Nothing was executed, so nothing is pretended to have happened: a skipped act
//!   is no attempt for `max_restart_attempts` or the ladder, no failure for backoff, no crash
//!   for crash-loop detection, and it does not end the incident (the target is as it was, so
//!   its next finding is the same incident, not a new crash). It does hold its (target,
//!   strategy) cooldown, so a persisting failure re-announces its plan once per
//!   `restart_cooldown`, the cadence a live run would retry at. Hence a dry run escalates
//!   only where a live run would without executing anything: a crash loop of real crashes
//!   (the target seen healthy in between, each new failure a new incident), a plan whose
//!   best option is escalate, an approval that times out; never because its own planned acts
//!   used up attempts or "failed". The fallback is announced (skipped), the target is not
//!   marked degraded.
//! - **Journal**: every durable change is a [`JournalEntry`] emitted as [`Command::Journal`]
//!   *before* the command it enables (an intent before its act), and outcomes after. The
//!   finding that opens an incident (actionable, while the target had nothing pending, in
//!   flight, waiting or held) is journaled first with a readable summary
//!   ([`JournalEntry::IncidentOpened`]), so a recovered journal shows why an action started;
//!   later findings of the same incident are not. An incident lasts until the target is seen
//!   healthy, a heal is verified, a verification ends unknown or an approval is denied; a
//!   failed, skipped or dry-run act, an observe plan or a finding dropped for a dependency's
//!   sake do not end it. Whether an incident is open is durable
//!   ([`DurableTarget::incident_open`]), so a recovered engine does not journal a second
//!   `IncidentOpened` (nor count a second crash) for an incident the journal shows open.
//!   A healthy finding ends an open incident with a [`JournalEntry::Recovered`], once per
//!   incident, so an engine recovered after the target was seen healthy opens a new incident
//!   for the next failure. What no finding saw (a target that recovered and failed again
//!   while medic was down) stays one incident. The
//!   engine changes its durable state only by applying entries, so
//!   [`Engine::recover`] — which applies a journal to a fresh engine — rebuilds exactly that
//!   state. An action with an intent and no outcome is verified, never re-run; finished
//!   actions are not repeated. Every act carries an idempotency key `target/a<id>`.
//! - **Ids across processes**: action and approval ids are numbered from
//!   `EngineConfig::run × RUN_ID_SPAN + 1`; recovery continues after the highest id of its own
//!   run's range and ignores other runs' ids, so processes sharing one journal with distinct
//!   run numbers (the daemon and `medic heal`, numbered by the store) never issue the same id.
//!
//! # Driving it (driver, simulator, tests)
//! ```text
//! loop every second (real or virtual):
//!     for each new finding:        engine.step(now, Event::Finding(f), &mut out)
//!     for each actuator result:    engine.step(now, Event::ActionOutcome{action, outcome}, &mut out)
//!     for each verification:       engine.step(now, Event::VerifyResult{action, outcome}, &mut out)
//!     approvals, maintenance, resume as they come
//!     engine.step(now, Event::Tick, &mut out)
//!     carry out `out` in order: Journal → append durably first; Act → run (dedupe by
//!     idempotency key), answer with ActionOutcome; Verify → probe, answer with VerifyResult
//!     before the deadline; Circuit → route traffic; Notify / Escalate → tell humans
//! ```
//! A simulator answers Act and Verify from its world model; [`Engine::stats`],
//! [`Engine::target_view`] and the commands give everything a report needs. After a crash,
//! [`Engine::recover`] with the journal's entries in order, then keep ticking.
//!
//! # Invariants
//! No I/O, no wall clock, no tokio. Stepping allocates nothing on ticks without decisions
//! beyond growing `out`; plans are built only for targets being dispatched.

mod engine;
mod types;

pub use engine::{DurableState, DurableTarget, Engine, TargetView, Waiting};
pub use types::*;

use medic_core::TargetId;

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two targets share a name.
    #[error("target {0} is defined twice")]
    DuplicateTarget(TargetId),
    /// A target names a tier with no policy.
    #[error("target {target} has unknown tier {tier}")]
    UnknownTier {
        /// The target.
        target: TargetId,
        /// The tier it names.
        tier: String,
    },
    /// A target depends on a target not in the fleet.
    #[error("target {target} depends on unknown target {dependency}")]
    UnknownDependency {
        /// The target.
        target: TargetId,
        /// The missing dependency.
        dependency: TargetId,
    },
    /// `depends_on` forms a cycle.
    #[error("dependency cycle through target {0}")]
    DependencyCycle(TargetId),
    /// The global budget is zero: nothing could ever run.
    #[error("max_concurrent must be at least 1")]
    ZeroConcurrency,
    /// More targets than the engine's u32 indices hold.
    #[error("too many targets")]
    TooManyTargets,
}
