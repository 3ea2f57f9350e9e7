//! The decision thread: health, detection, the engine, the journal, incidents.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use medic_collect::health::{FleetHealth, StateChange};
use medic_collect::probe::Prober;
use medic_collect::scheduler::{ProbeReport, ScrapedSamples};
use medic_core::{
    Clock, Finding, HealthState, LevelSet, Outcome, PredictionFinding, ProbeLevel, Severity,
    Strategy, TargetId, Timestamp,
};
use medic_orchestrator::{
    ActKind, ActionId, Command, Engine, EngineConfig, EngineTarget, Event, JournalEntry, Stats,
};
use medic_policy::{Fleet, Target};
use medic_store::{IncidentId, Store};
use medic_strategy::{AttemptResult, BreakerState};
use serde::Serialize;
use serde_json::json;

use super::DaemonError;
use super::detect::{ErrorRate, LeakForecast, Load, Version};
use super::diagnose::{Inputs as DiagnoseInputs, TargetDiagnosis};
use super::journal::JournalWriter;
use super::learning::DaemonLearning;
use super::model::{ModelSet, TargetSeries};
use crate::dispatch::{ActReport, Dispatcher, InstancesCheck};
use crate::supervise::{ProcessEvent, Supervisor};

/// What the brain is told.
pub(crate) enum Input {
    /// A probe result from the scheduler of fleet `generation`.
    Probe {
        generation: u64,
        report: ProbeReport,
    },
    /// Scraped samples from the scheduler of fleet `generation`.
    Samples {
        generation: u64,
        batch: ScrapedSamples,
    },
    Acted {
        action: ActionId,
        report: ActReport,
    },
    Verified {
        action: ActionId,
        outcome: Outcome,
    },
    Exited(ProcessEvent),
    /// A request of the HTTP API.
    Api(medic_api::ApiRequest),
    /// Run `fleet` as fleet `generation`; `accepted` says whether it does.
    Reload {
        fleet: Box<Fleet>,
        generation: u64,
        accepted: tokio::sync::oneshot::Sender<bool>,
    },
    Stop {
        grace: Duration,
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Diagnose with this pattern library from now on (a reload read it again).
    Patterns(Box<medic_detect::diagnosis::PatternLibrary>),
}

/// Everything a reader (API, dashboard, demo) sees of the daemon, refreshed every tick.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DaemonSnapshot {
    /// When the snapshot was taken.
    pub at: Timestamp,
    /// Every target, in fleet order.
    pub targets: Vec<TargetRecord>,
    /// Open incidents and the most recent closed ones (at most 200), oldest first.
    pub incidents: Vec<IncidentRecord>,
    /// The most recent actions (at most 200), oldest first.
    pub actions: Vec<ActionRecord>,
    /// Mean time to recovery over the healed incidents, seconds.
    pub mttr_s: Option<f64>,
    /// The engine's counters.
    pub stats: Stats,
    /// Targets waiting in the engine's queue.
    pub queue_depth: usize,
    /// Whether the daemon executes nothing.
    pub dry_run: bool,
    /// What the daemon learned from verified outcomes.
    pub learned: medic_api::LearnedView,
}

/// One target as the daemon sees it.
#[derive(Clone, Debug, Serialize)]
pub struct TargetRecord {
    /// Its name.
    pub name: TargetId,
    /// Its tier.
    pub tier: String,
    /// Combined health.
    pub state: HealthState,
    /// The levels failing.
    pub failing: Vec<&'static str>,
    /// The latest finding, in words.
    pub last_finding: Option<String>,
    /// When that finding was made: the process exit, or the first failed probe that gave
    /// its error (a failure that goes on keeps the time it started).
    pub last_finding_at: Option<Timestamp>,
    /// RSS as a fraction of its limit.
    pub memory_ratio: Option<f64>,
    /// Failure forecast probability.
    pub probability: Option<f64>,
    /// The anomaly score of its latest step (anomaly model), or of the RSS trend anomaly.
    pub anomaly_score: Option<f64>,
    /// The supervised process, if any.
    pub pid: Option<u32>,
    /// Recent failure-forecast probabilities (oldest first), for sparklines.
    pub probability_history: Vec<f32>,
    /// The error rate of its requests over the last scrapes, when it answered enough.
    pub error_rate: Option<f64>,
    /// Its circuit breaker, once opened.
    pub circuit: Option<medic_api::CircuitView>,
    /// What the error patterns say its failure is (while it fails and a cause is known).
    pub diagnosis: Option<medic_core::DiagnosisFinding>,
}

impl TargetRecord {
    /// Whether its circuit is open (work stopped, waiting for the half-open probe).
    pub fn circuit_open(&self) -> bool {
        self.circuit
            .is_some_and(|c| matches!(c.breaker, BreakerState::Open { .. }))
    }
}

/// One incident: from the first sign of failure to the verified heal.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentRecord {
    /// Durable id (the store's).
    pub id: i64,
    /// The target.
    pub target: TargetId,
    /// When the failure was first observed (process exit, first failed probe, forecast).
    pub failed_at: Timestamp,
    /// When the daemon decided it was a failure (threshold crossed, exit, forecast alarm).
    pub detected_at: Timestamp,
    /// How: `process-exit`, `probe:<level>`, `prediction`.
    pub detected_by: String,
    /// What was wrong, in words.
    pub summary: String,
    /// The first strategy run.
    pub strategy: Option<Strategy>,
    /// When the first action started.
    pub acted_at: Option<Timestamp>,
    /// When a heal was verified.
    pub healed_at: Option<Timestamp>,
    /// Acted on a forecast while the target was still healthy.
    pub preemptive: bool,
    /// A human was called.
    pub escalated: bool,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// What its latest action printed (see [`ActionRecord::output`]); kept with the
    /// incident in the store.
    pub action_output: Vec<String>,
    /// The latest diagnosis of the incident's evidence (`None`: unknown); kept with the
    /// incident in the store.
    pub diagnosis: Option<medic_core::DiagnosisFinding>,
}

/// One action.
#[derive(Clone, Debug, Serialize)]
pub struct ActionRecord {
    /// Its id.
    pub id: u64,
    /// The target.
    pub target: TargetId,
    /// The strategy, or `fallback`.
    pub kind: String,
    /// Why it was chosen.
    pub reason: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it closed.
    pub finished_at: Option<Timestamp>,
    /// `success`, `failure`, `unknown`, `skipped` once closed, or the actuator's outcome.
    pub outcome: Option<String>,
    /// The actuator that ran it.
    pub via: Option<&'static str>,
    /// Not executed.
    pub dry_run: bool,
    /// The last lines it printed (stdout, then stderr; an http action's response body; a
    /// supervised target's own output), at most [`OUTPUT_KEPT`] bytes, kept for diagnosis.
    /// Shown by the API; logged only at debug level, since it may hold secrets.
    pub output: Vec<String>,
}

/// Bytes of an action's output kept with its record (the tail, whole lines, each line cut
/// to [`OUTPUT_LINE_KEPT`] bytes).
pub const OUTPUT_KEPT: usize = 4096;

/// Bytes kept of one output line.
pub const OUTPUT_LINE_KEPT: usize = 512;

/// The tail of `lines` within [`OUTPUT_KEPT`] bytes, each line within [`OUTPUT_LINE_KEPT`].
fn output_tail(lines: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for line in lines.iter().rev() {
        let mut end = line.len().min(OUTPUT_LINE_KEPT);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let line = &line[..end];
        if bytes + line.len() > OUTPUT_KEPT {
            break;
        }
        bytes += line.len();
        kept.push(line.to_owned());
    }
    kept.reverse();
    kept
}

const HISTORY: usize = 120;
const KEEP_RECORDS: usize = 200;
/// A failing target is re-reported to the engine at most this often.
const REFINDING: Duration = Duration::from_millis(500);

#[derive(Default)]
struct TargetRt {
    exited_at: Option<Timestamp>,
    exit_reason: Option<String>,
    first_fail_at: Option<Timestamp>,
    last_error: Option<String>,
    /// When `last_error` was first seen in the current run of failures.
    last_error_at: Option<Timestamp>,
    leak: LeakForecast,
    errors: ErrorRate,
    /// Utilisation against the target's queue and CPU limits, for the scale rules.
    load: Load,
    /// Its `*_build_info` version, for the rollback rule.
    version: Version,
    circuit: Option<medic_api::CircuitView>,
    memory_ratio: Option<f64>,
    prediction: Option<PredictionFinding>,
    anomaly: Option<medic_core::AnomalyFinding>,
    last_sent: Option<(Timestamp, HealthState, bool)>,
    /// External alerts (Alertmanager) firing and not yet healed.
    alerts: Vec<ActiveAlert>,
    /// Firings (alert key, start) a verified heal consumed: Alertmanager re-sends a firing
    /// alert until it resolves, and a re-send of one of these is not a new failure.
    healed_alerts: VecDeque<(String, String)>,
    incident: Option<usize>,
    probability_history: VecDeque<f32>,
    /// Raw rows at the models' step (only with models).
    series: Option<TargetSeries>,
    /// Restarts medic carried out (the `restarts` raw series).
    restarts: u32,
    /// The failure predictor's latest verdict.
    model_prediction: Option<PredictionFinding>,
    /// The anomaly forest's latest verdict.
    model_anomaly: Option<medic_core::AnomalyFinding>,
    /// The evidence of its failure and the diagnosis made from it.
    diagnosis: TargetDiagnosis,
}

/// A firing external alert of a target.
#[derive(Clone, Debug)]
struct ActiveAlert {
    /// Alertmanager's fingerprint, else the alert's name.
    key: String,
    /// When it started firing, as Alertmanager sent it.
    starts_at: String,
    severity: Severity,
    name: String,
    summary: String,
    /// When medic first received this firing.
    since: Timestamp,
}

/// Healed firings remembered per target (the oldest is forgotten first).
const HEALED_ALERTS_KEPT: usize = 32;

impl TargetRt {
    /// The most severe firing alert (the first received among equals).
    fn alert(&self) -> Option<&ActiveAlert> {
        self.alerts.iter().rev().max_by_key(|a| a.severity)
    }

    /// A verified heal consumes the alerts firing now: each counts as healed until
    /// Alertmanager resolves it or it fires again with another start.
    fn consume_alerts(&mut self, target: &TargetId) {
        for a in self.alerts.drain(..) {
            tracing::info!(%target, alert = %a.name, starts_at = %a.starts_at, "external alert consumed by the verified heal");
            if self.healed_alerts.len() == HEALED_ALERTS_KEPT {
                self.healed_alerts.pop_front();
            }
            self.healed_alerts.push_back((a.key, a.starts_at));
        }
    }

    /// The prediction the finding carries: the alarming one of the RSS trend forecast and
    /// the model (the more probable when both alarm or neither does).
    fn prediction(&self) -> Option<&PredictionFinding> {
        match (&self.prediction, &self.model_prediction) {
            (Some(a), Some(b)) => Some(if (a.alarm, a.probability) >= (b.alarm, b.probability) {
                a
            } else {
                b
            }),
            (a, b) => a.as_ref().or(b.as_ref()),
        }
    }

    /// The anomaly the finding carries: the trend's resource anomaly, else the forest's
    /// (an anomalous one first).
    fn anomaly(&self) -> Option<&medic_core::AnomalyFinding> {
        match (&self.anomaly, &self.model_anomaly) {
            (Some(a), Some(b)) if b.anomalous && !a.anomalous => Some(b),
            (a, b) => a.as_ref().or(b.as_ref()),
        }
    }
}

pub(crate) struct Brain {
    fleet: Fleet,
    index: HashMap<TargetId, usize>,
    /// Each `group`'s members, by target index.
    groups: Vec<Vec<usize>>,
    /// Each target's group, an index into `groups`.
    group_of: Vec<Option<usize>>,
    engine: Engine,
    config: EngineConfig,
    store: Store,
    clock: Arc<dyn Clock>,
    inputs: Sender<Input>,
    rt: tokio::runtime::Handle,
    dispatcher: Dispatcher,
    prober: Prober,
    supervisor: Supervisor,
    snapshot: Arc<RwLock<DaemonSnapshot>>,
    tick: Duration,
    health: FleetHealth,
    targets: Vec<TargetRt>,
    /// Writes journal rows with their target and key (knows every action's target).
    journal: JournalWriter,
    /// Reasons of intents whose act has not been logged yet.
    reasons: HashMap<ActionId, String>,
    action_log: VecDeque<ActionRecord>,
    incidents: VecDeque<IncidentRecord>,
    incident_ids: HashMap<i64, IncidentId>,
    incident_seq: u64,
    mttr: Vec<f64>,
    inflight: usize,
    out: Vec<Command>,
    journal_broken: bool,
    view: Arc<RwLock<medic_api::FleetView>>,
    notifier: Option<medic_notify::Notifier>,
    maintenance: Vec<medic_api::MaintenanceView>,
    maintenance_seq: u64,
    approvals: Vec<medic_api::ApprovalView>,
    /// Targets whose circuit is closed in the journal: closed again at start.
    reclose: Vec<TargetId>,
    /// The learned models (possibly none), run on this thread.
    models: ModelSet,
    /// A model failure is logged once, not every tick.
    model_failed: bool,
    /// When the models run next (once per step, see [`ModelSet::next_run`]).
    next_model_run: Timestamp,
    /// The learner of strategy success the engine's plans use.
    learning: DaemonLearning,
    /// The fleet generation running (0 at start, one more per accepted reload); reports of
    /// another are stale.
    generation: u64,
    /// Stale reports dropped.
    stale_reports: u64,
    /// How long samples and transitions are kept (`None`: for ever).
    retention: Option<Duration>,
    /// When the store is pruned next (at the first tick, then every [`super::PRUNE_EVERY`]).
    next_prune: Timestamp,
    /// The error patterns failing targets are diagnosed with (`None`: no diagnosis).
    patterns: Option<medic_detect::diagnosis::PatternLibrary>,
}

impl Brain {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        fleet: Fleet,
        config: EngineConfig,
        journal: Vec<JournalEntry>,
        store: Store,
        clock: Arc<dyn Clock>,
        inputs: Sender<Input>,
        rt: tokio::runtime::Handle,
        dispatcher: Dispatcher,
        prober: Prober,
        supervisor: Supervisor,
        snapshot: Arc<RwLock<DaemonSnapshot>>,
        tick: Duration,
        view: Arc<RwLock<medic_api::FleetView>>,
        notifier: Option<medic_notify::Notifier>,
        models: ModelSet,
        learning: DaemonLearning,
    ) -> Result<Brain, DaemonError> {
        let writer = JournalWriter::new(&journal);
        // A circuit whose last journaled state is closed gets its close action again at
        // start: a kill -9 between the journal entry and the action must not leave the
        // target without work for good (closing is idempotent).
        let mut last_breaker: HashMap<TargetId, BreakerState> = HashMap::new();
        for e in &journal {
            if let JournalEntry::Breaker { target, state, .. } = e {
                last_breaker.insert(target.clone(), *state);
            }
        }
        let reclose = fleet
            .targets
            .iter()
            .filter(|t| last_breaker.get(&t.name) == Some(&BreakerState::Closed))
            .map(|t| t.name.clone())
            .collect();
        let mut engine = recover(&fleet, &config, journal)?;
        engine.set_success_rates(learning.rates());
        if engine.stats().journal_entries > 0 {
            tracing::info!(
                entries = engine.stats().journal_entries,
                skipped = engine.stats().recovery_skipped,
                "recovered the engine from the journal"
            );
        }
        let mut brain = Brain {
            index: HashMap::new(),
            groups: Vec::new(),
            group_of: Vec::new(),
            health: FleetHealth::new(&fleet),
            targets: Vec::new(),
            fleet,
            engine,
            config,
            store,
            clock,
            inputs,
            rt,
            dispatcher,
            prober,
            supervisor,
            snapshot,
            tick,
            journal: writer,
            reasons: HashMap::new(),
            action_log: VecDeque::new(),
            incidents: VecDeque::new(),
            incident_ids: HashMap::new(),
            incident_seq: 0,
            mttr: Vec::new(),
            inflight: 0,
            out: Vec::new(),
            journal_broken: false,
            view,
            notifier,
            maintenance: Vec::new(),
            maintenance_seq: 0,
            approvals: Vec::new(),
            reclose: Vec::new(),
            models,
            model_failed: false,
            next_model_run: Timestamp::default(),
            learning,
            generation: 0,
            stale_reports: 0,
            retention: None,
            next_prune: Timestamp::default(),
            patterns: None,
        };
        brain.reindex();
        let now = brain.clock.now();
        for i in 0..brain.fleet.targets.len() {
            let breaker = brain
                .engine
                .target_view(brain.fleet.targets[i].name.as_str())
                .map_or(BreakerState::Closed, |v| v.breaker);
            if breaker != BreakerState::Closed {
                brain.targets[i].circuit = Some(medic_api::CircuitView {
                    breaker,
                    since: now,
                    opened: u32::from(matches!(breaker, BreakerState::Open { .. })),
                });
            }
        }
        brain.reclose = reclose;
        Ok(brain)
    }

    /// Keeps samples and health transitions for `retention` (`None`: for ever).
    pub(crate) fn with_retention(mut self, retention: Option<Duration>) -> Brain {
        self.retention = retention;
        self
    }

    /// The replicas the engine holds for `target`: `replicas.initial`, or the last verified
    /// scale recovered from the journal.
    pub(crate) fn replicas(&self, target: &str) -> Option<u32> {
        self.engine.target_view(target).map(|v| v.replicas)
    }

    /// Diagnoses failing targets with `patterns` (see `super::diagnose`).
    pub(crate) fn with_patterns(
        mut self,
        patterns: medic_detect::diagnosis::PatternLibrary,
    ) -> Brain {
        self.patterns = Some(patterns);
        self
    }

    /// Deletes samples and health transitions older than the retention, at the first tick
    /// and then every [`super::PRUNE_EVERY`]. On this thread, which owns the store: one
    /// connection writes, so the prune never makes a journal append wait for a lock, and
    /// no async worker is blocked; after the first prune each deletes about an hour's rows.
    fn prune(&mut self, now: Timestamp) {
        let Some(keep) = self.retention else {
            return;
        };
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + super::PRUNE_EVERY;
        let older_than = now - keep;
        match self.store.prune(older_than) {
            Ok(r) => tracing::info!(
                samples = r.samples,
                transitions = r.transitions,
                older_than = %older_than.rfc3339(),
                "pruned the store"
            ),
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "pruning the store failed; retried at the next prune");
            }
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .fleet
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        self.groups.clear();
        self.group_of.clear();
        for (i, t) in self.fleet.targets.iter().enumerate() {
            let g = t.group.as_deref().map(|name| {
                *by_name.entry(name).or_insert_with(|| {
                    self.groups.push(Vec::new());
                    self.groups.len() - 1
                })
            });
            if let Some(g) = g {
                self.groups[g].push(i);
            }
            self.group_of.push(g);
        }
        self.targets
            .resize_with(self.fleet.targets.len(), TargetRt::default);
        for rt in &mut self.targets {
            if rt.series.is_none() {
                rt.series = self.models.series();
            }
        }
    }

    pub(crate) fn run(mut self, inputs: Receiver<Input>) {
        for target in std::mem::take(&mut self.reclose) {
            self.close_circuit(&target);
        }
        let mut next_tick = self.clock.now();
        loop {
            let now = self.clock.now();
            if now >= next_tick {
                self.prune(now);
                self.run_models(now);
                self.step(now, Event::Tick);
                self.publish(now);
                next_tick = now + self.tick;
            }
            let wait = next_tick.since(self.clock.now());
            match inputs.recv_timeout(wait) {
                Ok(Input::Stop { grace, done }) => {
                    self.drain(&inputs, grace);
                    self.publish(self.clock.now());
                    let _ = done.send(());
                    return;
                }
                Ok(input) => self.handle(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Keeps taking outcomes (not findings) until nothing is in flight or `grace` passed.
    fn drain(&mut self, inputs: &Receiver<Input>, grace: Duration) {
        let deadline = self.clock.now() + grace;
        while self.inflight > 0 {
            let now = self.clock.now();
            if now >= deadline {
                tracing::warn!(
                    inflight = self.inflight,
                    "shutting down with actions in flight; they will be verified at the next start"
                );
                return;
            }
            match inputs.recv_timeout(deadline.since(now).min(self.tick)) {
                Ok(input @ (Input::Acted { .. } | Input::Verified { .. })) => self.handle(input),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn handle(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Probe { generation, report } => {
                if self.current(generation) {
                    self.on_probe(now, report);
                }
            }
            Input::Samples { generation, batch } => {
                if self.current(generation) {
                    self.on_samples(now, batch);
                }
            }
            Input::Acted { action, report } => self.on_acted(now, action, report),
            Input::Verified { action, outcome } => {
                self.inflight = self.inflight.saturating_sub(1);
                self.step(now, Event::VerifyResult { action, outcome });
            }
            Input::Exited(event) => self.on_exit(now, event),
            Input::Api(request) => self.on_api(now, request),
            Input::Reload {
                fleet,
                generation,
                accepted,
            } => {
                let ok = self.reload(*fleet);
                if ok {
                    self.generation = generation;
                }
                let _ = accepted.send(ok);
            }
            Input::Stop { done, .. } => {
                let _ = done.send(());
            }
            Input::Patterns(patterns) => self.patterns = Some(*patterns),
        }
    }

    /// Whether a report of fleet `generation` is about the running fleet. One of an older
    /// one (a scheduler stopped by a reload, its reports still on their way) indexes targets
    /// of a fleet no longer running: it is dropped and counted.
    fn current(&mut self, generation: u64) -> bool {
        if generation == self.generation {
            return true;
        }
        self.stale_reports += 1;
        metrics::counter!("medic_stale_reports_total").increment(1);
        tracing::debug!(
            generation,
            running = self.generation,
            dropped = self.stale_reports,
            "dropped a report of a fleet no longer running"
        );
        false
    }

    fn on_probe(&mut self, now: Timestamp, report: ProbeReport) {
        let i = report.target_idx;
        if i >= self.targets.len() {
            return;
        }
        metrics::histogram!("medic_probe_duration_seconds", "level" => report.result.level.as_str())
            .record(report.result.latency.as_secs_f64());
        let ok = report.result.outcome.is_ok();
        let rt = &mut self.targets[i];
        if ok {
            if rt.exited_at.is_none() {
                rt.first_fail_at = None;
            }
        } else {
            let error = report
                .result
                .outcome
                .error()
                .map(|e| format!("{}: {e}", report.result.level.as_str()));
            if rt.first_fail_at.is_none() || error != rt.last_error {
                rt.last_error_at = Some(report.result.at);
            }
            if let Some(e) = &error {
                rt.diagnosis
                    .on_probe_failure(report.result.kind, report.result.level, e);
            }
            rt.first_fail_at.get_or_insert(report.result.at);
            rt.last_error = error;
        }
        let changed = self.health.record(i, report.slot, ok);
        if let Some(change) = changed {
            tracing::info!(target = %self.fleet.targets[i].name, from = ?change.from, to = ?change.to, "health changed");
            let _ = self
                .store
                .record_transition(&medic_store::HealthTransition {
                    target: self.fleet.targets[i].name.clone(),
                    at: now,
                    from: change.from,
                    to: change.to,
                    reason: self.targets[i].last_error.clone().unwrap_or_default(),
                });
        }
        self.report(i, now, changed.is_some());
        // Targets whose dependencies level changed with this one's state: usually none, so
        // nothing is allocated on the common path.
        if !self.health.cascaded().is_empty() {
            let cascaded = self.health.cascaded().to_vec();
            for (j, change) in cascaded {
                self.on_dependencies_changed(now, j, change);
            }
        }
    }

    /// Target `j`'s state changed through its dependencies level (a target it depends on
    /// went down or came back): journal the transition and send its finding.
    fn on_dependencies_changed(&mut self, now: Timestamp, j: usize, change: StateChange) {
        let down: Vec<&str> = self
            .health
            .unhealthy_dependencies(j)
            .map(|d| self.fleet.targets[d].name.as_str())
            .collect();
        let reason = if down.is_empty() {
            "dependencies: no dependency unhealthy".to_owned()
        } else {
            format!("dependencies: dependency unhealthy: {}", down.join(", "))
        };
        tracing::info!(target = %self.fleet.targets[j].name, from = ?change.from, to = ?change.to, %reason, "health changed");
        if !down.is_empty() {
            let rt = &mut self.targets[j];
            if rt.last_error.as_deref() != Some(reason.as_str()) {
                rt.last_error_at = Some(now);
            }
            rt.last_error = Some(reason.clone());
        }
        let _ = self
            .store
            .record_transition(&medic_store::HealthTransition {
                target: self.fleet.targets[j].name.clone(),
                at: now,
                from: change.from,
                to: change.to,
                reason,
            });
        self.report(j, now, true);
    }

    fn on_samples(&mut self, now: Timestamp, batch: ScrapedSamples) {
        let i = batch.target_idx;
        if i >= self.targets.len() {
            return;
        }
        if let Err(e) = self.store.insert_samples(&batch.samples) {
            tracing::warn!(target = %batch.target, error = %crate::error_chain(&e), "storing samples");
        }
        let limit = self.fleet.targets[i]
            .resources
            .as_ref()
            .and_then(|r| r.max_rss_bytes)
            .map(|b| b as f64);
        let rss = batch
            .samples
            .iter()
            .find(|s| s.name == "process_resident_memory_bytes")
            .map(|s| s.value);
        let (max_queue, max_cpu) = (
            self.fleet.targets[i]
                .performance
                .as_ref()
                .and_then(|p| p.max_queue_depth),
            self.fleet.targets[i]
                .resources
                .as_ref()
                .and_then(|r| r.max_cpu),
        );
        let rt = &mut self.targets[i];
        rt.errors.push(&batch.samples);
        rt.load.push(batch.at, &batch.samples, max_queue, max_cpu);
        rt.version.push(batch.at, &batch.samples);
        let restarts = f64::from(rt.restarts);
        if let Some(series) = rt.series.as_mut() {
            series.push(batch.at, &batch.samples, restarts);
        }
        if let Some(rss) = rss {
            rt.leak.push(batch.at, rss);
            if let Some(limit) = limit.filter(|l| *l > 0.0) {
                rt.memory_ratio = Some(rss / limit);
                rt.prediction = rt.leak.prediction(limit);
                rt.anomaly = rt.leak.anomaly(limit);
            }
        }
        self.record_probability(i);
        self.report(i, now, false);
    }

    /// Appends the target's current failure probability to its sparkline and gauge.
    fn record_probability(&mut self, i: usize) {
        let rt = &mut self.targets[i];
        let p = rt.prediction().map_or(0.0, |p| p.probability) as f32;
        let alarm = rt.prediction().is_some_and(|p| p.alarm);
        if rt.probability_history.len() == HISTORY {
            rt.probability_history.pop_front();
        }
        rt.probability_history.push_back(p);
        if alarm {
            metrics::counter!("medic_prediction_alarms_total").increment(1);
        }
        let target = self.fleet.targets[i].name.to_string();
        metrics::gauge!("medic_prediction_probability", "target" => target).set(f64::from(p));
    }

    /// Runs the models over every target whose history gained a step since the last run:
    /// once per step, a little after its boundary so that every target scraped since has
    /// closed its row, as one batched predictor call on this (the brain's) thread, never on
    /// an async worker.
    fn run_models(&mut self, now: Timestamp) {
        if self.models.is_empty() || now < self.next_model_run {
            return;
        }
        self.next_model_run = self.models.next_run(now);
        let mut series: Vec<Option<&mut TargetSeries>> = self
            .targets
            .iter_mut()
            .map(|rt| rt.series.as_mut())
            .collect();
        let verdicts = match self.models.run(&mut series) {
            Ok(v) => {
                self.model_failed = false;
                v
            }
            Err(e) => {
                if !self.model_failed {
                    tracing::error!(error = %crate::error_chain(&e), "model inference failed; retried at the next step");
                }
                self.model_failed = true;
                return;
            }
        };
        for v in verdicts {
            let i = v.target;
            let name = self.fleet.targets[i].name.to_string();
            if let Some(a) = &v.anomaly {
                metrics::gauge!("medic_anomaly_score", "target" => name.clone()).set(a.score);
            }
            if let Some(p) = v.prediction.as_ref().filter(|p| p.alarm) {
                tracing::warn!(target = %name, probability = p.probability, factors = ?p.factors, recommended = p.recommended.as_str(), "failure predicted");
            }
            let rt = &mut self.targets[i];
            rt.model_prediction = v.prediction;
            rt.model_anomaly = v.anomaly;
            self.record_probability(i);
            self.report(i, now, false);
        }
    }

    fn on_exit(&mut self, now: Timestamp, event: ProcessEvent) {
        if event.expected {
            return;
        }
        let Some(&i) = self.index.get(&event.target) else {
            return;
        };
        tracing::warn!(target = %event.target, pid = event.pid, exit = %event.exit, "supervised process exited");
        let rt = &mut self.targets[i];
        rt.exited_at = Some(event.at);
        rt.first_fail_at.get_or_insert(event.at);
        rt.exit_reason = Some(format!("process {} {}", event.pid, event.exit));
        rt.diagnosis.on_exit(event.instance, event.exit);
        self.report(i, now, true);
    }

    fn on_acted(&mut self, now: Timestamp, action: ActionId, report: ActReport) {
        self.inflight = self.inflight.saturating_sub(1);
        let output = output_tail(&report.output);
        if !output.is_empty() {
            tracing::debug!(%action, via = report.via, ?output, "action output");
        }
        if let Some(rec) = self.action_log.iter_mut().rev().find(|r| r.id == action.0) {
            rec.via = Some(report.via);
            rec.outcome = Some(report.outcome.as_str().to_owned());
            rec.output.clone_from(&output);
            if let Some(&i) = self.index.get(&rec.target)
                && let Some(k) = self.targets[i].incident
                && let Some(inc) = self.incidents.get_mut(k)
            {
                inc.action_output.clone_from(&output);
                // Stored at once, not only when the incident closes: a daemon killed
                // before then keeps it too.
                if let Some(id) = self.incident_ids.get(&inc.id).copied() {
                    let summary = serde_json::to_value(&*inc).unwrap_or_default();
                    if let Err(e) = self.store.update_incident(id, &summary) {
                        tracing::warn!(error = %crate::error_chain(&e), "storing an action's output with its incident");
                    }
                }
            }
            if let Some(&i) = self.index.get(&rec.target)
                && report.outcome == Outcome::Success
                && matches!(
                    rec.kind.as_str(),
                    "restart" | "reset" | "recreate" | "rollback"
                )
            {
                let rt = &mut self.targets[i];
                rt.exited_at = None;
                rt.exit_reason = None;
                rt.leak.reset();
                rt.errors.reset();
                rt.prediction = None;
                rt.anomaly = None;
                // The model's verdicts were about the process before; the next step
                // judges the new one (its history goes on, with one more restart).
                rt.model_prediction = None;
                rt.model_anomaly = None;
                rt.restarts += 1;
            }
        }
        if let Outcome::Failure(why) = &report.outcome {
            tracing::warn!(%action, reason = %why, "action failed");
            // A supervisor action's output is the process's own, which the diagnosis reads
            // from the supervisor anyway: counted once, not twice.
            if report.via != "supervisor"
                && let Some(rec) = self.action_log.iter().rev().find(|r| r.id == action.0)
                && let Some(&i) = self.index.get(&rec.target)
            {
                self.targets[i].diagnosis.on_action_failed(&output);
            }
        }
        self.step(
            now,
            Event::ActionOutcome {
                action,
                outcome: report.outcome,
            },
        );
    }

    /// Sends the target's finding to the engine when it changed or keeps failing.
    fn report(&mut self, i: usize, now: Timestamp, mut changed: bool) {
        let mut finding = self.finding(i, now);
        if matches!(
            finding.health,
            HealthState::Unhealthy | HealthState::Degraded
        ) && self.rediagnose(i)
        {
            finding.diagnosis = self.targets[i].diagnosis.finding().cloned();
            changed = true;
        }
        let alarm = finding.prediction.as_ref().is_some_and(|p| p.alarm);
        let rt = &mut self.targets[i];
        let due = match rt.last_sent {
            None => true,
            Some((at, state, was_alarm)) => {
                changed
                    || state != finding.health
                    || was_alarm != alarm
                    || (finding.health != HealthState::Healthy || alarm)
                        && now.since(at) >= REFINDING
            }
        };
        if !due {
            return;
        }
        rt.last_sent = Some((now, finding.health, alarm));
        self.track_incident(i, now, &finding);
        self.step(now, Event::Finding(finding));
    }

    /// Diagnoses target `i` again if its evidence changed (see `super::diagnose`); a changed
    /// diagnosis is kept with its open incident, in the store too. Returns whether it changed.
    fn rediagnose(&mut self, i: usize) -> bool {
        let Some(library) = &self.patterns else {
            return false;
        };
        let target = &self.fleet.targets[i];
        let rt = &mut self.targets[i];
        let inputs = DiagnoseInputs {
            library,
            supervisor: &self.supervisor,
            target: &target.name,
            supervised: target.supervise.is_some(),
            memory_ratio: rt.memory_ratio,
        };
        if !rt.diagnosis.refresh(&inputs) {
            return false;
        }
        if let Some(k) = rt.incident
            && let Some(inc) = self.incidents.get_mut(k)
        {
            inc.diagnosis = rt.diagnosis.finding().cloned();
            if let Some(id) = self.incident_ids.get(&inc.id).copied() {
                let summary = serde_json::to_value(&*inc).unwrap_or_default();
                if let Err(e) = self.store.update_incident(id, &summary) {
                    tracing::warn!(error = %crate::error_chain(&e), "storing a diagnosis with its incident");
                }
            }
        }
        true
    }

    fn finding(&self, i: usize, now: Timestamp) -> Finding {
        let target = &self.fleet.targets[i];
        let rt = &self.targets[i];
        let (state, failing) = match self.health.target(i) {
            Some(h) => (h.state(), h.levels().1),
            None => (HealthState::Unknown, LevelSet::EMPTY),
        };
        let mut f = Finding::from_health(target.name.clone(), now, state, failing);
        if rt.exited_at.is_some() {
            f.health = HealthState::Unhealthy;
            f.failing.insert(ProbeLevel::Liveness);
            f.severity = Severity::Critical;
        }
        if let Some(ActiveAlert { severity, .. }) = rt.alert() {
            if *severity == Severity::Critical {
                f.health = HealthState::Unhealthy;
                f.failing.insert(ProbeLevel::Liveness);
            } else if f.health != HealthState::Unhealthy {
                f.health = HealthState::Degraded;
                f.failing.insert(ProbeLevel::Performance);
            }
            f.severity = f.severity.max(*severity);
        }
        f.memory_ratio = rt.memory_ratio;
        f.prediction = rt.prediction().cloned();
        f.anomaly = rt.anomaly().cloned();
        f.error_rate = rt.errors.rate();
        f.utilization = rt.load.utilization();
        f.version_changed_at = rt.version.changed_at();
        if matches!(f.health, HealthState::Unhealthy | HealthState::Degraded) {
            f.diagnosis = rt.diagnosis.finding().cloned();
        }
        let group = self.group_of[i].map_or(&[][..], |g| &self.groups[g]);
        if group.len() > 1 {
            let healthy = group
                .iter()
                .filter(|&&j| {
                    self.targets[j].exited_at.is_none()
                        && self
                            .health
                            .target(j)
                            .is_some_and(|h| h.state() == HealthState::Healthy)
                })
                .count();
            f.group_health = Some((healthy as u32, group.len() as u32));
        }
        f
    }

    fn track_incident(&mut self, i: usize, now: Timestamp, f: &Finding) {
        let alarm = f.prediction.as_ref().is_some_and(|p| p.alarm);
        let failing = matches!(f.health, HealthState::Unhealthy | HealthState::Degraded);
        let rt = &self.targets[i];
        if rt.incident.is_some() || !(failing || alarm) {
            return;
        }
        let target = self.fleet.targets[i].name.clone();
        let error_limit = self.fleet.targets[i]
            .performance
            .as_ref()
            .and_then(|p| p.max_error_rate)
            .unwrap_or(medic_strategy::HIGH_ERROR_RATE);
        let (detected_by, summary) = if let Some(why) = &rt.exit_reason {
            ("process-exit".to_owned(), why.clone())
        } else if let Some(a) = rt.alert() {
            (format!("alert:{}", a.name), a.summary.clone())
        } else if let Some(rate) = f.error_rate.filter(|r| failing && *r > error_limit) {
            (
                "error-rate".to_owned(),
                format!(
                    "{:.0}% of requests failing (over {:.0}%)",
                    rate * 100.0,
                    error_limit * 100.0
                ),
            )
        } else if failing {
            let level = ProbeLevel::ALL
                .into_iter()
                .find(|l| f.failing.contains(*l))
                .map_or("health", |l| l.as_str());
            (
                format!("probe:{level}"),
                rt.last_error
                    .clone()
                    .unwrap_or_else(|| format!("{level} failing")),
            )
        } else if rt.prediction.as_ref().is_some_and(|p| p.alarm) {
            let p = f.prediction.as_ref().map_or(0.0, |p| p.probability);
            (
                "prediction".to_owned(),
                format!(
                    "memory at {:.0}% of its limit and rising (forecast p={p:.2})",
                    f.memory_ratio.unwrap_or(0.0) * 100.0
                ),
            )
        } else {
            let (p, factors, recommended) = f.prediction.as_ref().map_or_else(
                || (0.0, String::new(), "observe"),
                |p| {
                    let names: Vec<&str> = p.factors.iter().map(|(n, _)| n.as_str()).collect();
                    (p.probability, names.join(", "), p.recommended.as_str())
                },
            );
            (
                "prediction".to_owned(),
                format!(
                    "failure predicted by the model (p={p:.2}; factors: {factors}; recommended: {recommended})"
                ),
            )
        };
        let failed_at = if failing {
            rt.first_fail_at.unwrap_or(now)
        } else {
            now
        };
        let signature = json!({ "detected_by": detected_by, "summary": summary });
        // The diagnosis made from the first evidence is stored at once (the whole record
        // replaces this summary at the next update and at close).
        let opened = match &f.diagnosis {
            Some(d) => json!({ "diagnosis": d }),
            None => json!({}),
        };
        let id = match self
            .store
            .open_incident(&target, failed_at, &signature, &opened)
        {
            Ok(id) => id.0,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "opening an incident");
                -i64::try_from(self.incident_seq + 1).unwrap_or(i64::MAX)
            }
        };
        self.incident_ids.insert(id, IncidentId(id));
        tracing::warn!(target = %target, incident = id, %detected_by, %summary, "incident opened");
        let rec = IncidentRecord {
            id,
            target,
            failed_at,
            detected_at: now,
            detected_by,
            summary,
            strategy: None,
            acted_at: None,
            healed_at: None,
            preemptive: !failing,
            escalated: false,
            closed_at: None,
            action_output: Vec::new(),
            diagnosis: f.diagnosis.clone(),
        };
        self.push_incident(i, rec);
    }

    fn push_incident(&mut self, i: usize, rec: IncidentRecord) {
        self.incident_seq += 1;
        if self.incidents.len() == KEEP_RECORDS
            && let Some(front) = self.incidents.front()
            && front.closed_at.is_some()
        {
            self.incidents.pop_front();
            for rt in &mut self.targets {
                if let Some(k) = rt.incident.as_mut() {
                    *k = k.saturating_sub(1);
                }
            }
        }
        self.incidents.push_back(rec);
        self.targets[i].incident = Some(self.incidents.len() - 1);
    }

    fn close_incident(&mut self, i: usize, now: Timestamp, healed: bool) {
        let Some(k) = self.targets[i].incident.take() else {
            return;
        };
        self.targets[i].diagnosis.clear();
        let Some(rec) = self.incidents.get_mut(k) else {
            return;
        };
        rec.closed_at = Some(now);
        if healed {
            rec.healed_at = Some(now);
            let mttr = now.since(rec.failed_at).as_secs_f64();
            self.mttr.push(mttr);
            metrics::gauge!("medic_mttr_seconds").set(mean(&self.mttr).unwrap_or(0.0));
            tracing::info!(target = %rec.target, incident = rec.id, mttr_s = mttr, "healed");
            if let Some(n) = self.notifier.as_mut() {
                n.resolve_target(&rec.target, now);
            }
        }
        if let Some(id) = self.incident_ids.get(&rec.id).copied() {
            let summary = serde_json::to_value(&*rec).unwrap_or_default();
            if let Err(e) = self.store.close_incident(id, now, &summary) {
                tracing::warn!(error = %crate::error_chain(&e), "closing an incident");
            }
        }
    }

    fn step(&mut self, now: Timestamp, event: Event) {
        let mut out = std::mem::take(&mut self.out);
        self.engine.step(now, event, &mut out);
        for command in out.drain(..) {
            self.carry_out(now, command);
        }
        self.out = out;
    }

    fn carry_out(&mut self, now: Timestamp, command: Command) {
        match command {
            Command::Journal(entry) => self.journal(now, &entry),
            Command::Act(act) => {
                let Some(&i) = self.index.get(&act.target) else {
                    return;
                };
                let kind = match act.kind {
                    ActKind::Heal(s) => s.as_str().to_owned(),
                    ActKind::Fallback => "fallback".to_owned(),
                };
                tracing::info!(target = %act.target, action = %act.action, %kind, replicas = ?act.replicas, dry_run = act.dry_run, "act");
                if let Some(k) = self.targets[i].incident
                    && let Some(inc) = self.incidents.get_mut(k)
                    && inc.strategy.is_none()
                    && let ActKind::Heal(s) = act.kind
                {
                    inc.strategy = Some(s);
                    inc.acted_at = Some(now);
                }
                let reason = self.reasons.remove(&act.action).unwrap_or_default();
                self.log_action(ActionRecord {
                    id: act.action.0,
                    target: act.target.clone(),
                    kind,
                    reason,
                    started_at: now,
                    finished_at: None,
                    outcome: None,
                    via: None,
                    dry_run: act.dry_run,
                    output: Vec::new(),
                });
                if self.journal_broken {
                    // Never act on something the journal does not know about.
                    let _ = self.inputs.send(Input::Acted {
                        action: act.action,
                        report: ActReport {
                            outcome: Outcome::Skipped("the journal could not be written".into()),
                            output: Vec::new(),
                            via: "none",
                        },
                    });
                    self.inflight += 1;
                    return;
                }
                let target = Arc::new(self.fleet.targets[i].clone());
                let dispatcher = self.dispatcher.clone();
                let inputs = self.inputs.clone();
                self.inflight += 1;
                self.rt.spawn(async move {
                    let report = dispatcher.carry_out(&act, &target).await;
                    let _ = inputs.send(Input::Acted {
                        action: act.action,
                        report,
                    });
                });
            }
            Command::Verify {
                action,
                target,
                deadline,
            } => {
                let Some(&i) = self.index.get(&target) else {
                    return;
                };
                // A half-open probe is one probe: checked once, not polled until the
                // deadline, so a failing one re-opens the circuit at once.
                let half_open = self.engine.target_view(target.as_str()).is_some_and(|v| {
                    v.breaker == BreakerState::HalfOpen
                        && matches!(
                            v.in_flight,
                            Some((a, ActKind::Heal(Strategy::CircuitBreak))) if a == action
                        )
                });
                let deadline = if half_open { now } else { deadline };
                let target = Arc::new(self.fleet.targets[i].clone());
                let prober = self.prober.clone();
                let supervisor = self.supervisor.clone();
                let clock = Arc::clone(&self.clock);
                let inputs = self.inputs.clone();
                self.inflight += 1;
                self.rt.spawn(async move {
                    let outcome =
                        verify(&prober, Some(&supervisor), &target, deadline, clock).await;
                    let _ = inputs.send(Input::Verified { action, outcome });
                });
            }
            Command::Circuit { target, state } => self.on_circuit(now, &target, state),
            Command::Notify(notice) => {
                tracing::warn!(notice = ?notice, "notice");
                if let medic_orchestrator::Notice::ApprovalRequested {
                    approval,
                    target,
                    strategy,
                    reason,
                    deadline,
                } = &notice
                {
                    self.approvals.push(medic_api::ApprovalView {
                        id: *approval,
                        target: target.clone(),
                        strategy: *strategy,
                        reason: reason.clone(),
                        deadline: *deadline,
                    });
                }
                let target = match &notice {
                    medic_orchestrator::Notice::ApprovalRequested { target, .. }
                    | medic_orchestrator::Notice::Degraded { target } => target.clone(),
                };
                let tier = self.tier_of(&target);
                if !self.dry_run_unsent("notice")
                    && let Some(n) = self.notifier.as_mut()
                {
                    n.notify(medic_notify::Notification::notice(&notice, &tier, now), now);
                }
            }
            Command::Escalate(escalation) => {
                metrics::counter!("medic_escalations_total").increment(1);
                tracing::error!(
                    target = %escalation.target,
                    reason = ?escalation.reason,
                    attempts = escalation.history.len(),
                    "escalated to a human"
                );
                if let Some(&i) = self.index.get(&escalation.target)
                    && let Some(k) = self.targets[i].incident
                    && let Some(inc) = self.incidents.get_mut(k)
                {
                    inc.escalated = true;
                }
                let tier = self.tier_of(&escalation.target);
                if !self.dry_run_unsent("escalation")
                    && let Some(n) = self.notifier.as_mut()
                {
                    n.notify(
                        medic_notify::Notification::escalation(&escalation, &tier, now),
                        now,
                    );
                }
            }
        }
    }

    /// In a dry run nothing leaves medic, people included: a notice or escalation is logged
    /// (above, with its content) and not sent, so trying medic out pages nobody. Returns
    /// whether it was held back.
    fn dry_run_unsent(&self, what: &str) -> bool {
        let dry = self.config.mode == medic_orchestrator::RunMode::DryRun;
        if dry {
            tracing::info!(what, "dry run: not sent to the notifier");
        }
        dry
    }

    fn journal(&mut self, now: Timestamp, entry: &JournalEntry) {
        match self.journal.append(&mut self.store, now, entry) {
            Ok(_) => {
                self.journal_broken = false;
                // Only what is journaled is learned: a restart replays exactly this.
                self.learning.observe(entry);
            }
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "journal write failed: acting is suspended until it works again");
                self.journal_broken = true;
            }
        }
        self.after_journal(now, entry);
    }

    /// Bookkeeping that follows the engine's durable changes.
    fn after_journal(&mut self, now: Timestamp, entry: &JournalEntry) {
        match entry {
            JournalEntry::Intent { action, reason, .. } => {
                // The act that follows logs the record; keep the reason for it.
                self.reasons.insert(*action, reason.clone());
            }
            JournalEntry::Closed { action, result, .. } => {
                let Some(rec) = self.action_log.iter_mut().rev().find(|r| r.id == action.0) else {
                    return;
                };
                rec.finished_at = Some(now);
                let result_name = attempt_name(*result);
                rec.outcome = Some(result_name.to_owned());
                let target = rec.target.clone();
                let kind = rec.kind.clone();
                let duration = now.since(rec.started_at).as_secs_f64();
                let Some(&i) = self.index.get(&target) else {
                    return;
                };
                let tier = self.fleet.targets[i].tier.clone();
                metrics::counter!("medic_healing_actions_total", "strategy" => kind, "outcome" => result_name, "tier" => tier).increment(1);
                metrics::histogram!("medic_healing_duration_seconds").record(duration);
                if *result == AttemptResult::Success {
                    self.targets[i].consume_alerts(&target);
                    self.close_incident(i, now, true);
                }
            }
            JournalEntry::ApprovalWithdrawn {
                approval, target, ..
            } => {
                tracing::info!(id = %approval, %target, "approval request withdrawn: the target is healthy again");
                self.approvals.retain(|a| a.id != *approval);
                if let Some(n) = self.notifier.as_mut() {
                    n.resolve(
                        &medic_notify::IncidentKey {
                            target: target.clone(),
                            kind: medic_notify::IncidentKind::Approval(*approval),
                        },
                        now,
                    );
                }
            }
            _ => {}
        }
    }
}

impl Brain {
    /// The engine moved a target's circuit breaker: record it, and when it closed, let work
    /// flow again (the `close` of its `circuit_break` action). Opening needs nothing here:
    /// the circuit-break act that opened it already stopped the work, and a re-open after a
    /// failed half-open probe follows a probe, not work let through.
    fn on_circuit(&mut self, now: Timestamp, target: &TargetId, state: BreakerState) {
        let Some(&i) = self.index.get(target) else {
            return;
        };
        let rt = &mut self.targets[i];
        let opened = rt.circuit.map_or(0, |c| c.opened)
            + u32::from(matches!(state, BreakerState::Open { .. }));
        rt.circuit = Some(medic_api::CircuitView {
            breaker: state,
            since: now,
            opened,
        });
        let name = match state {
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Closed => "closed",
        };
        tracing::info!(target = %target, state = name, opened, "circuit breaker");
        if state == BreakerState::Closed {
            self.close_circuit(target);
        }
    }

    /// Runs the target's circuit `close` action (not in a dry run); its outcome is logged.
    fn close_circuit(&mut self, target: &TargetId) {
        let Some(&i) = self.index.get(target) else {
            return;
        };
        let spec = self.fleet.targets[i].actions.get(&Strategy::CircuitBreak);
        if spec.and_then(|s| s.close.as_ref()).is_none() {
            if spec.is_some() {
                tracing::warn!(target = %target, "circuit closed, but actions.circuit_break has no close: work stays stopped until someone resumes it");
            }
            return;
        }
        if self.config.mode == medic_orchestrator::RunMode::DryRun {
            tracing::info!(target = %target, "dry run: the circuit close action is not run");
            return;
        }
        let t = Arc::new(self.fleet.targets[i].clone());
        let dispatcher = self.dispatcher.clone();
        self.rt.spawn(async move {
            let Some(report) = dispatcher.close_circuit(&t).await else {
                return;
            };
            match &report.outcome {
                Outcome::Success => {
                    tracing::info!(target = %t.name, via = report.via, "circuit close action done: work flows again");
                }
                other => {
                    tracing::error!(
                        target = %t.name,
                        via = report.via,
                        outcome = ?other,
                        "circuit close action failed: work may still be stopped"
                    );
                    // Output may hold secrets: debug level only.
                    tracing::debug!(target = %t.name, output = ?report.output, "circuit close action output");
                }
            }
        });
    }

    fn log_action(&mut self, rec: ActionRecord) {
        if self.action_log.len() == KEEP_RECORDS {
            self.action_log.pop_front();
        }
        self.action_log.push_back(rec);
    }

    /// Health returned on its own (or after an action whose verification closed it): an open
    /// incident of a target that is healthy, not exited, without a firing alert not yet
    /// healed, and not forecast to fail is over. (The alert is part of the finding: closing
    /// under it would only reopen the incident at the next finding.)
    fn settle(&mut self, now: Timestamp) {
        for i in 0..self.targets.len() {
            let rt = &self.targets[i];
            if rt.incident.is_none() || rt.exited_at.is_some() || !rt.alerts.is_empty() {
                continue;
            }
            let healthy = self
                .health
                .target(i)
                .is_some_and(|h| h.state() == HealthState::Healthy);
            let alarm = rt.prediction().is_some_and(|p| p.alarm);
            let busy = self
                .engine
                .target_view(self.fleet.targets[i].name.as_str())
                .is_some_and(|v| v.in_flight.is_some() || v.awaiting_approval.is_some());
            if healthy && !alarm && !busy {
                let acted = rt
                    .incident
                    .and_then(|k| self.incidents.get(k))
                    .is_some_and(|inc| inc.acted_at.is_some());
                self.close_incident(i, now, acted);
            }
        }
    }

    /// Runs `fleet` in place of the running one; `false` (and the running one stays) when
    /// the journal cannot be read or the engine rejects it.
    fn reload(&mut self, fleet: Fleet) -> bool {
        let journal = match self.store.journal_all() {
            Ok(records) => records
                .into_iter()
                .filter_map(|r| serde_json::from_value::<JournalEntry>(r.entry.payload).ok())
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "reload: reading the journal; keeping the running config");
                return false;
            }
        };
        let mut engine = match recover(&fleet, &self.config, journal) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "reload rejected; keeping the running config");
                return false;
            }
        };
        let mut old: HashMap<TargetId, TargetRt> = self
            .fleet
            .targets
            .iter()
            .map(|t| t.name.clone())
            .zip(std::mem::take(&mut self.targets))
            .collect();
        self.targets = fleet
            .targets
            .iter()
            .map(|t| {
                let mut rt = old.remove(&t.name).unwrap_or_default();
                rt.incident = None;
                rt.last_sent = None;
                rt
            })
            .collect();
        // Incident positions are by index: re-link the open ones by target name.
        for (k, inc) in self.incidents.iter().enumerate() {
            if inc.closed_at.is_none()
                && let Some(i) = fleet.targets.iter().position(|t| t.name == inc.target)
            {
                self.targets[i].incident = Some(k);
            }
        }
        self.health = FleetHealth::new(&fleet);
        self.learning.set_fleet(&fleet);
        engine.set_success_rates(self.learning.rates());
        self.engine = engine;
        self.fleet = fleet;
        self.reindex();
        tracing::info!(targets = self.fleet.targets.len(), "configuration reloaded");
        true
    }

    fn publish(&mut self, now: Timestamp) {
        self.settle(now);
        let targets: Vec<TargetRecord> = self
            .fleet
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| self.target_record(i, t, now))
            .collect();
        for state in [
            HealthState::Healthy,
            HealthState::Degraded,
            HealthState::Unhealthy,
            HealthState::Unknown,
        ] {
            let n = targets.iter().filter(|t| t.state == state).count();
            metrics::gauge!("medic_targets", "state" => state.as_str()).set(n as f64);
        }
        metrics::gauge!("medic_queue_depth").set(self.engine.n_queued() as f64);
        let snapshot = DaemonSnapshot {
            at: now,
            targets,
            incidents: self.incidents.iter().cloned().collect(),
            actions: self.action_log.iter().cloned().collect(),
            mttr_s: mean(&self.mttr),
            stats: *self.engine.stats(),
            queue_depth: self.engine.n_queued(),
            dry_run: self.config.mode == medic_orchestrator::RunMode::DryRun,
            learned: self.learning.view().clone(),
        };
        self.publish_view(now, &snapshot);
        if let Some(n) = self.notifier.as_mut() {
            n.tick(now);
        }
        if let Ok(mut s) = self.snapshot.write() {
            *s = snapshot;
        }
    }

    fn target_record(&self, i: usize, t: &Target, now: Timestamp) -> TargetRecord {
        let f = self.finding(i, now);
        let rt = &self.targets[i];
        let (last_finding, last_finding_at) = match (&rt.exit_reason, rt.alert()) {
            (Some(why), _) => (Some(why.clone()), rt.exited_at),
            (None, Some(a)) => (
                Some(format!("alert {}: {}", a.name, a.summary)),
                Some(a.since),
            ),
            (None, None) if f.health != HealthState::Healthy && rt.last_error.is_some() => {
                (rt.last_error.clone(), rt.last_error_at)
            }
            _ => (None, None),
        };
        TargetRecord {
            name: t.name.clone(),
            tier: t.tier.clone(),
            state: f.health,
            failing: ProbeLevel::ALL
                .into_iter()
                .filter(|l| f.failing.contains(*l))
                .map(ProbeLevel::as_str)
                .collect(),
            last_finding,
            last_finding_at,
            memory_ratio: rt.memory_ratio,
            probability: rt.prediction().map(|p| p.probability),
            anomaly_score: rt.anomaly().map(|a| a.score),
            pid: self.supervisor.pids(&t.name).first().copied(),
            probability_history: rt.probability_history.iter().copied().collect(),
            error_rate: rt.errors.rate(),
            circuit: rt.circuit,
            diagnosis: f.diagnosis,
        }
    }
}

pub(crate) fn recover(
    fleet: &Fleet,
    config: &EngineConfig,
    journal: Vec<JournalEntry>,
) -> Result<Engine, DaemonError> {
    Ok(Engine::recover(
        fleet
            .targets
            .iter()
            .map(EngineTarget::from_target)
            .collect(),
        fleet.tiers.clone(),
        config.clone(),
        journal,
    )?)
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn attempt_name(r: AttemptResult) -> &'static str {
    match r {
        AttemptResult::Success => "success",
        AttemptResult::Failure => "failure",
        AttemptResult::Unknown => "unknown",
        AttemptResult::Skipped => "skipped",
        AttemptResult::Pending => "pending",
    }
}

/// Probes the target afresh until its liveness and readiness probes (and its supervised
/// process, if any) all pass, or the deadline is near.
pub(crate) async fn verify(
    prober: &Prober,
    supervisor: Option<&Supervisor>,
    target: &Target,
    deadline: Timestamp,
    clock: Arc<dyn Clock>,
) -> Outcome {
    let checks: Vec<_> = target
        .probes
        .iter()
        .filter(|p| matches!(p.level, ProbeLevel::Liveness | ProbeLevel::Readiness))
        .collect();
    if checks.is_empty() && target.supervise.is_none() {
        return Outcome::Unknown;
    }
    let margin = Duration::from_millis(300);
    let mut last = String::from("not checked");
    loop {
        let mut ok = true;
        if target.supervise.is_some()
            && let Some(supervisor) = supervisor
        {
            // Every instance (after a scale, the wanted number) must run, and be ready where
            // its own port can be probed; a process that is gone will not come back.
            match crate::dispatch::check_instances(supervisor, prober, target).await {
                InstancesCheck::Ok => {}
                InstancesCheck::Down(why) => return Outcome::Failure(why),
                InstancesCheck::NotReady(why) => {
                    ok = false;
                    last = why;
                }
            }
        }
        for p in &checks {
            if !ok {
                break;
            }
            let (outcome, _) = prober.run_check(&target.name, &p.check, p.timeout).await;
            if let Some(e) = outcome.error() {
                ok = false;
                last = format!("{}: {e}", p.level.as_str());
            }
        }
        if ok {
            return Outcome::Success;
        }
        let now = clock.now();
        if now + margin >= deadline {
            return Outcome::Failure(format!("still failing: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(200).min(deadline.since(now + margin))).await;
    }
}

impl Brain {
    fn tier_of(&self, target: &TargetId) -> String {
        self.index.get(target).map_or_else(
            || "default".to_owned(),
            |&i| self.fleet.targets[i].tier.clone(),
        )
    }

    fn on_api(&mut self, now: Timestamp, request: medic_api::ApiRequest) {
        use medic_api::{ApiRequest, Rejection};
        use medic_orchestrator::MaintenanceScope;
        match request {
            ApiRequest::Maintenance {
                scope,
                duration,
                reason,
                reply,
            } => {
                let known = match &scope {
                    MaintenanceScope::Target(t) => self.index.contains_key(t),
                    MaintenanceScope::Tier(t) => self.fleet.tiers.contains_key(t),
                };
                if !known {
                    let _ = reply.send(Err(Rejection::NotFound(format!("no such {scope:?}"))));
                    return;
                }
                self.maintenance_seq += 1;
                let id = self.maintenance_seq;
                let until = now + duration;
                tracing::info!(id, ?scope, %reason, ?duration, "maintenance started");
                self.maintenance.push(medic_api::MaintenanceView {
                    id,
                    scope: scope.clone(),
                    until,
                    reason,
                });
                self.step(
                    now,
                    Event::Maintenance {
                        scope,
                        until: Some(until),
                    },
                );
                let _ = reply.send(Ok(id));
            }
            ApiRequest::EndMaintenance { id, reply } => {
                let Some(pos) = self.maintenance.iter().position(|m| m.id == id) else {
                    let _ = reply.send(Err(Rejection::NotFound(format!(
                        "no maintenance window {id}"
                    ))));
                    return;
                };
                let m = self.maintenance.remove(pos);
                tracing::info!(id, scope = ?m.scope, "maintenance ended");
                self.step(
                    now,
                    Event::Maintenance {
                        scope: m.scope,
                        until: None,
                    },
                );
                let _ = reply.send(Ok(()));
            }
            ApiRequest::Approval {
                id,
                decision,
                reply,
            } => {
                let Some(pos) = self.approvals.iter().position(|a| a.id == id) else {
                    let _ = reply.send(Err(Rejection::NotFound(format!(
                        "no approval request {id} is waiting"
                    ))));
                    return;
                };
                let a = self.approvals.remove(pos);
                tracing::info!(%id, target = %a.target, ?decision, "approval decided");
                if let Some(n) = self.notifier.as_mut() {
                    n.resolve(
                        &medic_notify::IncidentKey {
                            target: a.target.clone(),
                            kind: medic_notify::IncidentKind::Approval(id),
                        },
                        now,
                    );
                }
                self.step(
                    now,
                    Event::Approval {
                        approval: id,
                        decision,
                    },
                );
                let _ = reply.send(Ok(()));
            }
            ApiRequest::Alerts { alerts, reply } => {
                let mut matched = 0;
                for alert in alerts {
                    let Some(&i) = self.index.get(&alert.target) else {
                        continue;
                    };
                    matched += 1;
                    let key = if alert.fingerprint.is_empty() {
                        alert.alertname.clone()
                    } else {
                        alert.fingerprint.clone()
                    };
                    let rt = &mut self.targets[i];
                    let previous = rt
                        .alerts
                        .iter()
                        .position(|a| a.key == key)
                        .map(|p| rt.alerts.remove(p));
                    let healed = rt
                        .healed_alerts
                        .iter()
                        .any(|(k, s)| *k == key && *s == alert.starts_at);
                    if !alert.firing {
                        // Resolved: its next firing is a new failure, whatever its start.
                        rt.healed_alerts.retain(|(k, _)| *k != key);
                    } else if healed {
                        // Alertmanager re-sends a firing alert (group interval, repeat
                        // interval) until it resolves: this firing was healed already.
                        tracing::info!(target = %alert.target, alert = %alert.alertname, starts_at = %alert.starts_at, "external alert already healed; ignored until it resolves or fires anew");
                        continue;
                    } else {
                        let since = previous
                            .filter(|p| p.starts_at == alert.starts_at)
                            .map_or(now, |p| p.since);
                        rt.alerts.push(ActiveAlert {
                            key,
                            starts_at: alert.starts_at.clone(),
                            severity: alert.severity,
                            name: alert.alertname.clone(),
                            summary: alert.summary.clone(),
                            since,
                        });
                    }
                    tracing::info!(target = %alert.target, alert = %alert.alertname, firing = alert.firing, "external alert");
                    self.report(i, now, true);
                }
                let _ = reply.send(Ok(matched));
            }
        }
    }

    fn publish_view(&mut self, now: Timestamp, snapshot: &DaemonSnapshot) {
        use medic_api::{ActionView, FindingSummary, IncidentStatus, IncidentView, TargetView};
        self.maintenance.retain(|m| m.until > now);
        self.approvals.retain(|a| a.deadline > now);
        let Ok(mut view) = self.view.write() else {
            return;
        };
        view.now = now;
        let mut targets = Vec::with_capacity(snapshot.targets.len());
        for (i, t) in snapshot.targets.iter().enumerate() {
            let mut tv = view
                .target(t.name.as_str())
                .cloned()
                .unwrap_or_else(|| TargetView::new(t.name.clone(), t.tier.clone()));
            tv.tier = t.tier.clone();
            tv.state = t.state;
            tv.pid = t.pid;
            // The latest finding that was not plain healthy stays shown (with its age)
            // after the target recovers, until a new one replaces it.
            if let Some(summary) = &t.last_finding {
                tv.last_finding = Some(FindingSummary {
                    at: t.last_finding_at.unwrap_or(now),
                    severity: match t.state {
                        HealthState::Unhealthy => Severity::Critical,
                        HealthState::Degraded => Severity::Warning,
                        _ => Severity::Info,
                    },
                    summary: summary.clone(),
                });
                // The diagnosis goes with the finding it explains (and stays with it).
                if tv.diagnosis != t.diagnosis {
                    tv.diagnosis.clone_from(&t.diagnosis);
                }
            }
            // Once a series has points it gets one every publish: with no forecast (or
            // score) now, e.g. after a heal reset it, the point is 0, so the sparkline shows
            // the present and not the last alarm. A target never forecast stays empty.
            match t.probability {
                Some(p) => tv.probability.push(now, p),
                None if !tv.probability.is_empty() => tv.probability.push(now, 0.0),
                None => {}
            }
            // The sparkline shows the anomaly score when there is one, else memory use.
            match t.anomaly_score.or(t.memory_ratio) {
                Some(m) => tv.anomaly.push(now, m),
                None if !tv.anomaly.is_empty() => tv.anomaly.push(now, 0.0),
                None => {}
            }
            let name = &self.fleet.targets[i].name;
            tv.circuit = t.circuit;
            // The signature of an open incident, and what was learned on it.
            (tv.signature, tv.learned) = if t.state == HealthState::Healthy {
                (None, Vec::new())
            } else {
                match self.learning.of_target(name.as_str()) {
                    Some((key, rows)) => (Some(key), rows),
                    None => (None, Vec::new()),
                }
            };
            tv.in_maintenance = self.maintenance.iter().any(|m| match &m.scope {
                medic_orchestrator::MaintenanceScope::Target(x) => x == name,
                medic_orchestrator::MaintenanceScope::Tier(x) => *x == t.tier,
            });
            targets.push(tv);
        }
        view.targets = targets;
        view.incidents = snapshot
            .incidents
            .iter()
            .filter(|inc| inc.closed_at.is_none())
            .map(|inc| IncidentView {
                id: u64::try_from(inc.id).unwrap_or(0),
                target: inc.target.clone(),
                opened_at: inc.detected_at,
                severity: if inc.preemptive {
                    Severity::Warning
                } else {
                    Severity::Critical
                },
                summary: format!("{} ({})", inc.summary, inc.detected_by),
                status: if inc.escalated {
                    IncidentStatus::Escalated
                } else if self.approvals.iter().any(|a| a.target == inc.target) {
                    IncidentStatus::AwaitingApproval
                } else if inc.acted_at.is_some() {
                    IncidentStatus::Healing
                } else {
                    IncidentStatus::Open
                },
                attempts: u32::try_from(
                    snapshot
                        .actions
                        .iter()
                        .filter(|a| a.target == inc.target && a.started_at >= inc.detected_at)
                        .count(),
                )
                .unwrap_or(u32::MAX),
                diagnosis: inc.diagnosis.clone(),
            })
            .collect();
        let mut log = medic_api::ActionLog::default();
        for a in &snapshot.actions {
            log.push(ActionView {
                id: ActionId(a.id),
                target: a.target.clone(),
                strategy: Strategy::parse(&a.kind),
                outcome: match a.outcome.as_deref() {
                    Some("success") => AttemptResult::Success,
                    Some("failure") => AttemptResult::Failure,
                    Some("unknown") => AttemptResult::Unknown,
                    Some("skipped") => AttemptResult::Skipped,
                    _ => AttemptResult::Pending,
                },
                started_at: a.started_at,
                duration_ms: a
                    .finished_at
                    .map(|f| f.since(a.started_at).as_millis() as u64),
                reason: a.reason.clone(),
                dry_run: a.dry_run,
                output: a.output.clone(),
            });
        }
        view.actions = log;
        view.mttr_seconds = snapshot.mttr_s;
        view.healed = self.mttr.len() as u64;
        view.maintenance = self.maintenance.clone();
        view.approvals = self.approvals.clone();
        if view.learned != *self.learning.view() {
            view.learned = self.learning.view().clone();
        }
    }
}

#[cfg(test)]
#[path = "brain_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "diagnose_tests.rs"]
mod diagnose_tests;
