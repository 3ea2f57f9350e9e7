//! The daemon: the tokio driver around the pure engine (`medic run`, `medic demo`).
//!
//! ```text
//!  Scheduler ──ProbeReport/ScrapedSamples──┐
//!  Supervisor ──ProcessEvent───────────────┤
//!  act / verify tasks ──outcomes───────────┼──▶ brain thread (std::thread)
//!  API ──maintenance/approvals/alerts──────┤      health, detection, Engine::step,
//!  reload / shutdown ──────────────────────┘      journal (SQLite, synced) BEFORE acts
//!                                                  │ spawns on the runtime
//!                                                  ▼
//!                           Dispatcher (exec / http / supervisor), verification probes
//! ```
//!
//! The *brain* is one OS thread that owns the [`medic_orchestrator::Engine`], the
//! [`medic_store::Store`] and the detectors. It is the only writer of decisions, it does the
//! CPU-bound work (scoring) and the blocking work (SQLite with `synchronous=FULL`) away from
//! the async workers, and it appends every journal entry the engine emits *before* it spawns
//! the act that entry enables. The async side only performs I/O: probes, scrapes, actions,
//! verification, the HTTP API.
//!
//! Start-up replays the journal into the engine ([`medic_orchestrator::Engine::recover`]):
//! after a `kill -9` an action whose intent was journaled but whose outcome was not is
//! verified, never repeated, and finished actions are not forgotten.
//!
//! Reload (SIGHUP in `medic run`): the fleet and policies are parsed and validated again; an
//! invalid config is rejected with its errors and the running one stays. A valid one replaces
//! the engine by replaying the journal against the new fleet (targets removed from the fleet
//! are skipped and counted).
//!
//! Reports of the probe scheduler carry the fleet generation it was started for; the brain
//! drops (and counts) those of a generation it no longer runs, and a new scheduler starts only
//! after the brain accepted the new fleet.
//!
//! Alerts (Alertmanager, through the API) are part of a target's finding while they fire. A
//! verified heal consumes the alerts firing at that moment: Alertmanager's re-sends of the
//! same firing (fingerprint and `startsAt`) are ignored until it resolves or fires anew, and an
//! incident is not settled while an alert not yet healed fires.
//!
//! Retention: with [`DaemonOptions::retention`] the brain prunes samples and health
//! transitions older than it at its first tick and every [`PRUNE_EVERY`].
//!
//! Diagnosis (`diagnose`): the error-pattern library (the policies directory's
//! `patterns.yaml`, else the shipped one built in) is validated with the policies
//! ([`load_fleet`]), loaded at start and again with each accepted reload; a failing
//! target's evidence (its supervised output tail, exec and dependency probe errors, a failed
//! action's output, an exit signal with memory near the limit) is diagnosed on the brain's
//! thread when it changes, and a known cause goes into its findings (`Finding::diagnosis`),
//! its incident, and its API view, so the diagnosis rules (configuration → repair or
//! escalate, …) decide the plan.
//!
//! Shutdown: the brain stops taking findings, waits (bounded) for actions in flight to report
//! so their outcomes are journaled, then the supervisor stops every supervised process.
//!
//! Learning: the brain keeps medic's one learner of strategy success per failure signature
//! (`learning`): started from the outcome model (`--signatures`, or `outcome_signatures.json`
//! in the data or models directory), then the journal's verified outcomes it has not counted
//! are replayed into it, and every verified outcome the brain journals is learned at once. The
//! engine re-ranks its plans with it (the plan's reason says so); the API shows it read-only
//! (`GET /api/v1/learned`, and each target's `signature` and `learned` rows).
//!
//! Circuits: the brain reads each target's error rate from its scrapes ([`ErrorRate`]) into
//! its findings, so the engine can choose `circuit_break`; the act runs the target's
//! `actions.circuit_break` (work stops). The engine's [`medic_orchestrator::Command::Circuit`]
//! transitions are recorded per target (API `circuit`), the half-open probe is a single check
//! of the liveness and readiness probes, and a close runs `actions.circuit_break.close` (work
//! flows again) — after its journal entry, like every act, and again at start for a circuit
//! the journal says is closed, since a `kill -9` may have come between the two.

mod brain;
mod detect;
mod diagnose;
mod heal;
mod journal;
mod learning;
pub mod model;

pub use brain::{
    ActionRecord, DaemonSnapshot, IncidentRecord, OUTPUT_KEPT, OUTPUT_LINE_KEPT, TargetRecord,
};
pub use detect::{ErrorRate, LeakForecast};
pub use diagnose::{BUILTIN_PATTERNS, MAX_TEXT_BYTES, PATTERNS_FILE};
pub use heal::{HealLine, HealOptions, HealReport, heal_once};
pub use journal::JournalWriteError;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use medic_collect::probe::{Prober, SupervisedPids};
use medic_collect::scheduler::{Scheduler, SchedulerConfig, measures_of, probes_of};
use medic_core::{Clock, SystemClock, TargetId};
use medic_orchestrator::{EngineConfig, RunMode};
use medic_policy::Fleet;
use tokio::sync::{mpsc, oneshot};

use crate::dispatch::Dispatcher;
use crate::supervise::{Supervisor, Vars as SuperviseVars};
use brain::{Brain, Input};

/// How to run the daemon.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The fleet file.
    pub fleet_path: PathBuf,
    /// The directory of tier policies.
    pub policies_dir: PathBuf,
    /// Where the SQLite store (samples, incidents, journal) lives.
    pub data_dir: PathBuf,
    /// Decide and journal, but execute nothing.
    pub dry_run: bool,
    /// How often the engine ticks (default 200 ms).
    pub tick: Duration,
    /// Actions at once, fleet-wide.
    pub max_concurrent: u32,
    /// Probes at once, fleet-wide.
    pub max_probes: usize,
    /// Seed of the probe phase jitter.
    pub seed: u64,
    /// Where the HTTP API and dashboard listen (`None`: no API).
    pub listen: Option<SocketAddr>,
    /// The bearer token of the API's mutating endpoints (`None`: they answer 403).
    pub token: Option<medic_api::Secret>,
    /// Where notifications go.
    pub notify: medic_notify::NotifySettings,
    /// The directory of the learned models (`failure_lstm.onnx`, `anomaly_iforest.json`);
    /// `None` or missing files: no model.
    pub models: Option<PathBuf>,
    /// The outcome model (`medic train signatures`) the learner starts from. `None`:
    /// `outcome_signatures.json` in the data directory, else in `models`, when present (a
    /// corrupt one found there is logged and left out; an explicit one that cannot be used
    /// stops the start).
    pub signatures: Option<PathBuf>,
    /// How long samples and health transitions are kept in the store (`None`: for ever).
    /// The brain prunes older ones at start and then every [`PRUNE_EVERY`]; the journal and
    /// incidents are always kept.
    pub retention: Option<Duration>,
}

/// The retention `medic run` and [`DaemonOptions::new`] use unless told otherwise: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the brain prunes the store (besides once at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl DaemonOptions {
    /// Options with the defaults: tick 200 ms, 8 actions and 256 probes at once, live, no
    /// API, no notifications, no models.
    pub fn new(fleet_path: PathBuf, policies_dir: PathBuf, data_dir: PathBuf) -> DaemonOptions {
        DaemonOptions {
            fleet_path,
            policies_dir,
            data_dir,
            dry_run: false,
            tick: Duration::from_millis(200),
            max_concurrent: 8,
            max_probes: 256,
            seed: 0x006d_6564_6963,
            listen: None,
            token: None,
            notify: medic_notify::NotifySettings::none(),
            models: None,
            signatures: None,
            retention: Some(DEFAULT_RETENTION),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The fleet or policies are invalid (every error, one per line).
    #[error("invalid configuration:\n{0}")]
    Config(String),
    /// The store could not be opened or read.
    #[error("store")]
    Store(#[from] medic_store::StoreError),
    /// The engine rejected the fleet.
    #[error("engine")]
    Engine(#[from] medic_orchestrator::Error),
    /// A journal entry could not be decoded.
    #[error("journal entry {seq} is not an engine entry")]
    Journal {
        /// Its sequence number.
        seq: u64,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A journal entry could not be written.
    #[error("journal")]
    JournalWrite(#[from] JournalWriteError),
    /// The HTTP client could not be built.
    #[error("http client")]
    Http(#[from] medic_collect::http::HttpError),
    /// The outcome model given with `--signatures` cannot be used.
    #[error("outcome model {path}: {reason}")]
    Signatures {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The brain thread could not be started.
    #[error("starting the decision thread")]
    Thread(#[source] std::io::Error),
    /// The notifier could not be started.
    #[error("notifications")]
    Notify(#[from] medic_notify::Error),
    /// The API address could not be bound.
    #[error("binding the API to {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Loads and validates the fleet and policies (the policies directory's `patterns.yaml`
/// included, when there is one); every error, one per line.
pub fn load_fleet(options: &DaemonOptions) -> Result<Fleet, DaemonError> {
    let fleet =
        medic_policy::load(&options.fleet_path, &options.policies_dir).map_err(|e| e.to_string());
    let patterns = diagnose::load_patterns(&options.policies_dir);
    match (fleet, patterns) {
        (Ok(fleet), Ok(_)) => Ok(fleet),
        (Err(e), Ok(_)) => Err(DaemonError::Config(e)),
        (Ok(_), Err(p)) => Err(p),
        (Err(e), Err(p)) => Err(DaemonError::Config(format!("{e}\n{}", error_message(&p)))),
    }
}

/// A pattern error's text without the `invalid configuration:` heading.
fn error_message(e: &DaemonError) -> String {
    match e {
        DaemonError::Config(text) => text.clone(),
        other => crate::error_chain(other),
    }
}

/// What a (re)started scheduler needs.
#[derive(Clone)]
struct CollectParts {
    prober: Prober,
    clock: Arc<dyn Clock>,
    max_probes: usize,
    seed: u64,
}

/// A running daemon: its state for readers (API, demo) and its control.
pub struct DaemonHandle {
    snapshot: Arc<RwLock<DaemonSnapshot>>,
    inputs: std::sync::mpsc::Sender<Input>,
    supervisor: Supervisor,
    brain: Option<std::thread::JoinHandle<()>>,
    tasks: tokio::task::JoinSet<()>,
    stop_probes: Option<oneshot::Sender<()>>,
    /// The fleet generation the brain runs and the running scheduler's reports carry.
    generation: u64,
    collect: CollectParts,
    api: Option<(SocketAddr, oneshot::Sender<()>)>,
    models: String,
    /// Where the pattern library is read again on reload.
    policies_dir: PathBuf,
}

impl DaemonHandle {
    /// The latest published state (refreshed every tick).
    pub fn snapshot(&self) -> DaemonSnapshot {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The supervisor of the `supervise:` targets.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The models loaded at start, in words (`none` without any).
    pub fn models(&self) -> &str {
        &self.models
    }

    /// The address the API listens on, if it runs.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|(a, _)| *a)
    }

    /// Loads `fleet` (already validated) in place of the running one: the engine is rebuilt
    /// from the journal against it, probes are rescheduled, and supervised targets new in it
    /// are started (supervised targets removed from it keep running until shutdown).
    /// Once it runs, the policies directory's pattern library is read again (an invalid one,
    /// e.g. changed since [`load_fleet`] checked it, is logged and the running one stays).
    ///
    /// The brain decides first: only once it accepted the new fleet are supervised targets
    /// started and the scheduler swapped; if it rejects it (the engine refuses the fleet, the
    /// journal cannot be read), the running fleet, engine and scheduler all stay. Reports
    /// carry their scheduler's fleet generation, so those of the old scheduler still on their
    /// way (with the old fleet's target indexes) are dropped, not misapplied. Returns whether
    /// the new fleet runs.
    pub async fn reload(&mut self, fleet: Fleet) -> bool {
        let generation = self.generation + 1;
        let (accepted, answer) = oneshot::channel();
        let sent = self.inputs.send(Input::Reload {
            fleet: Box::new(fleet.clone()),
            generation,
            accepted,
        });
        if sent.is_err() || !answer.await.unwrap_or(false) {
            return false;
        }
        self.generation = generation;
        // The pattern library goes with the policies (validated with them by `load_fleet`);
        // read again off the async workers (the regexes are compiled).
        let dir = self.policies_dir.clone();
        match tokio::task::spawn_blocking(move || diagnose::load_patterns(&dir)).await {
            Ok(Ok(patterns)) => {
                tracing::info!(
                    patterns = patterns.library.patterns().len(),
                    source = %patterns.source,
                    "diagnosis pattern library reloaded"
                );
                let _ = self
                    .inputs
                    .send(Input::Patterns(Box::new(patterns.library)));
            }
            Ok(Err(e)) => tracing::error!(
                errors = %error_message(&e),
                "reload: the pattern library is invalid; the running one stays"
            ),
            Err(e) => {
                tracing::error!(error = %e, "reload: reading the pattern library failed; the running one stays")
            }
        }
        start_supervised(&self.supervisor, &fleet, &[]).await;
        if let Some(stop) = self.stop_probes.take() {
            let _ = stop.send(());
        }
        self.stop_probes = Some(spawn_collect(
            &mut self.tasks,
            &fleet,
            self.collect.clone(),
            self.inputs.clone(),
            generation,
        ));
        true
    }

    /// Stops the daemon: no new probes, in-flight actions are waited for (at most `grace`)
    /// and journaled, then the API stops and supervised processes are stopped.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(stop) = self.stop_probes.take() {
            let _ = stop.send(());
        }
        let (done_tx, done_rx) = oneshot::channel();
        let _ = self.inputs.send(Input::Stop {
            grace,
            done: done_tx,
        });
        let _ = done_rx.await;
        if let Some(brain) = self.brain.take() {
            let _ = tokio::task::spawn_blocking(move || brain.join()).await;
        }
        if let Some((_, stop)) = self.api.take() {
            let _ = stop.send(());
        }
        self.tasks.abort_all();
        if let Err(e) = self.supervisor.stop_all().await {
            tracing::warn!(error = %crate::error_chain(&e), "stopping supervised processes");
        }
    }
}

struct SupervisorPids(Supervisor);

impl SupervisedPids for SupervisorPids {
    fn pid_of(&self, target: &TargetId) -> Option<u32> {
        self.0.pids(target).first().copied()
    }
}

/// Starts the supervised targets not running yet, each with the replicas the engine holds for
/// it (`replicas[i]` for the fleet's i-th target; `replicas.initial` when it has none), when
/// the supervisor is its scale.
async fn start_supervised(supervisor: &Supervisor, fleet: &Fleet, replicas: &[Option<u32>]) {
    for (i, target) in fleet.targets.iter().enumerate() {
        let Some(spec) = &target.supervise else {
            continue;
        };
        if supervisor.status(&target.name).is_some() {
            continue;
        }
        let vars = SuperviseVars {
            base_port: spec.port,
        };
        match supervisor.start(&target.name, spec, &vars).await {
            Ok(pid) => tracing::info!(target = %target.name, pid, "started supervised process"),
            Err(e) => {
                tracing::error!(
                    target = %target.name,
                    error = %crate::error_chain(&e),
                    "could not start supervised process"
                );
                continue;
            }
        }
        // The engine counts from `replicas.initial`, or from the last verified scale after a
        // restart of medic; the supervisor scales, so it runs that many.
        let scales = target
            .actions
            .get(&medic_core::Strategy::Scale)
            .is_some_and(|a| a.kind == medic_policy::ActionKind::Supervisor);
        let replicas = replicas
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(target.replicas.initial);
        if scales
            && replicas > 1
            && let Err(e) = supervisor.scale(&target.name, replicas).await
        {
            tracing::error!(
                target = %target.name,
                error = %crate::error_chain(&e),
                "could not start the initial replicas"
            );
        }
    }
}

/// Starts the daemon on the current tokio runtime: recovers the engine from the journal,
/// starts the supervised targets, the probe scheduler, the brain thread, the notifier and
/// (with `listen`) the HTTP API.
///
/// # Errors
/// An invalid or unreadable `patterns.yaml` in the policies directory, an unwritable data
/// directory, an unreadable store or journal, an engine that rejects the fleet, a notifier
/// that cannot start, or an API address that cannot be bound.
pub async fn start(options: DaemonOptions, fleet: Fleet) -> Result<DaemonHandle, DaemonError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // A bad pattern file stops the start before anything is written.
    let patterns = diagnose::load_patterns(&options.policies_dir)?;
    tracing::info!(
        patterns = patterns.library.patterns().len(),
        source = %patterns.source,
        "diagnosis pattern library loaded"
    );
    std::fs::create_dir_all(&options.data_dir).map_err(|e| {
        DaemonError::Config(format!(
            "{}: expected a writable data directory, found {e}",
            options.data_dir.display()
        ))
    })?;
    let mut store = medic_store::Store::open_data_dir(&options.data_dir)?;
    // This start's own range of action ids: a `medic heal` sharing the journal takes
    // another, so the two never issue the same id.
    let run = store.begin_run(clock.now(), "daemon")?;
    let mut numbered = Vec::new();
    for record in store.journal_all()? {
        let entry = serde_json::from_value(record.entry.payload).map_err(|source| {
            DaemonError::Journal {
                seq: record.seq,
                source,
            }
        })?;
        numbered.push((record.seq, entry));
    }
    let learning = learning::DaemonLearning::start(
        options.signatures.as_deref(),
        &options.data_dir,
        options.models.as_deref(),
        &fleet,
        &numbered,
    )?;
    let entries = numbered.into_iter().map(|(_, e)| e).collect();
    let mut config = EngineConfig::standard(options.max_concurrent.max(1));
    config.run = run;
    if options.dry_run {
        config.mode = RunMode::DryRun;
    }

    let (proc_tx, mut proc_rx) = mpsc::unbounded_channel();
    let supervisor = Supervisor::new(proc_tx);
    let (inputs, inputs_rx) = std::sync::mpsc::channel::<Input>();
    let snapshot = Arc::new(RwLock::new(DaemonSnapshot::default()));
    let client = medic_collect::http::client()?;
    let prober = Prober::new(client.clone(), medic_collect::http::DEFAULT_MAX_BODY_BYTES)
        .with_supervised_pids(Arc::new(SupervisorPids(supervisor.clone())));
    let dispatcher = Dispatcher::new(client, prober.clone(), Some(supervisor.clone()));

    let view = Arc::new(RwLock::new(medic_api::FleetView::default()));
    let (api_tx, mut api_rx) = mpsc::channel::<medic_api::ApiRequest>(64);
    let api_state = medic_api::ApiState::new(
        Arc::clone(&view),
        api_tx,
        options.token.clone(),
        medic_api::install_metrics(),
    );
    let on_report: medic_notify::OnReport = Arc::new(|r: &medic_notify::DeliveryReport| {
        let outcome = if r.result.is_ok() { "ok" } else { "failed" };
        metrics::counter!("medic_notifications_total", "outcome" => outcome).increment(1);
    });
    let notifier = if options.notify.sinks.is_empty() {
        None
    } else {
        Some(medic_notify::Notifier::start(
            options.notify.clone(),
            on_report,
        )?)
    };

    let models = load_models(options.models.clone(), &fleet).await;
    let models_text = models.describe();

    let brain = Brain::new(
        fleet.clone(),
        config,
        entries,
        store,
        Arc::clone(&clock),
        inputs.clone(),
        tokio::runtime::Handle::current(),
        dispatcher,
        prober.clone(),
        supervisor.clone(),
        Arc::clone(&snapshot),
        options.tick,
        view,
        notifier,
        models,
        learning,
    )?
    .with_retention(options.retention)
    .with_patterns(patterns.library);
    // Supervised targets are started before the first probe, with the replicas the recovered
    // engine holds.
    let replicas: Vec<Option<u32>> = fleet
        .targets
        .iter()
        .map(|t| brain.replicas(t.name.as_str()))
        .collect();
    start_supervised(&supervisor, &fleet, &replicas).await;
    let brain = std::thread::Builder::new()
        .name("medic-brain".into())
        .spawn(move || brain.run(inputs_rx))
        .map_err(DaemonError::Thread)?;

    let mut tasks = tokio::task::JoinSet::new();
    let to_brain = inputs.clone();
    tasks.spawn(async move {
        while let Some(request) = api_rx.recv().await {
            if to_brain.send(Input::Api(request)).is_err() {
                break;
            }
        }
    });
    // Process exits go straight to the brain: a crash is seen at once, not at the next probe.
    let to_brain = inputs.clone();
    tasks.spawn(async move {
        while let Some(event) = proc_rx.recv().await {
            if to_brain.send(Input::Exited(event)).is_err() {
                break;
            }
        }
    });
    let collect = CollectParts {
        prober,
        clock,
        max_probes: options.max_probes,
        seed: options.seed,
    };
    let stop_probes = spawn_collect(&mut tasks, &fleet, collect.clone(), inputs.clone(), 0);
    let api = match options.listen {
        Some(addr) => Some(spawn_api(&mut tasks, addr, api_state).await?),
        None => None,
    };
    Ok(DaemonHandle {
        snapshot,
        inputs,
        supervisor,
        brain: Some(brain),
        tasks,
        stop_probes: Some(stop_probes),
        generation: 0,
        collect,
        api,
        models: models_text,
        policies_dir: options.policies_dir,
    })
}

/// Loads the models of `dir` off the async workers (tract optimises the plans) and says once
/// which are loaded, or that none is, and why a model present was refused.
pub(crate) async fn load_models(dir: Option<PathBuf>, fleet: &Fleet) -> model::ModelSet {
    let available = model::available_series(fleet);
    let Some(dir) = dir else {
        say_models(&model::ModelSet::none(), None);
        return model::ModelSet::none();
    };
    let shown = dir.clone();
    let loaded = tokio::task::spawn_blocking(move || model::ModelSet::load(&dir, &available)).await;
    let (set, errors) = match loaded {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "loading the models failed; running without them");
            (model::ModelSet::none(), Vec::new())
        }
    };
    for e in &errors {
        tracing::error!(error = %crate::error_chain(e), "model refused; running without it");
    }
    say_models(&set, Some(&shown));
    set
}

fn say_models(set: &model::ModelSet, dir: Option<&std::path::Path>) {
    if set.is_empty() {
        tracing::info!(
            models_dir = ?dir,
            "no anomaly or failure-prediction model is loaded; findings come from probes, \
             process exits, alerts and the RSS trend forecast"
        );
    } else {
        tracing::info!(models = %set.describe(), "models loaded");
    }
}

/// Starts the probe scheduler for `fleet`, forwarding its reports and samples to the brain
/// tagged with the fleet's `generation`.
fn spawn_collect(
    tasks: &mut tokio::task::JoinSet<()>,
    fleet: &Fleet,
    parts: CollectParts,
    to_brain: std::sync::mpsc::Sender<Input>,
    generation: u64,
) -> oneshot::Sender<()> {
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (report_tx, mut report_rx) = mpsc::channel(4096);
    let (samples_tx, mut samples_rx) = mpsc::channel(1024);
    let scheduler = Scheduler::new(
        probes_of(fleet),
        SchedulerConfig {
            max_concurrent: parts.max_probes.max(1),
            seed: parts.seed,
        },
        parts.prober,
        parts.clock,
    )
    .with_measures(measures_of(fleet))
    .with_samples(samples_tx);
    tasks.spawn(async move {
        scheduler
            .run(report_tx, async {
                let _ = stop_rx.await;
            })
            .await;
    });
    tasks.spawn(async move {
        loop {
            let input = tokio::select! {
                Some(report) = report_rx.recv() => Input::Probe { generation, report },
                Some(batch) = samples_rx.recv() => Input::Samples { generation, batch },
                else => break,
            };
            if to_brain.send(input).is_err() {
                break;
            }
        }
    });
    stop
}

/// Binds the API and serves it until the returned sender fires.
async fn spawn_api(
    tasks: &mut tokio::task::JoinSet<()>,
    addr: SocketAddr,
    state: medic_api::ApiState,
) -> Result<(SocketAddr, oneshot::Sender<()>), DaemonError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen { addr, source })?;
    let (stop, stop_rx) = oneshot::channel::<()>();
    state.set_ready(true);
    tasks.spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        if let Err(e) = medic_api::serve(listener, state, shutdown).await {
            tracing::error!(error = %crate::error_chain(&e), "the HTTP API stopped");
        }
    });
    tracing::info!(url = %format!("http://{bound}/"), "API and dashboard listening");
    Ok((bound, stop))
}
