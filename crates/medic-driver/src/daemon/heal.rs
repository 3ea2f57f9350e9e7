//! `medic heal --preemptive`: one preemptive healing run over the whole fleet.
//!
//! 1. Scrape every target with metrics `rounds` times, `interval` apart, into the store
//!    (not in a dry run), so a fresh store has enough points for a trend;
//! 2. forecast every target at once from its recent RSS history in the store (the daemon's
//!    forecast, [`super::LeakForecast`], over the last `history`) and, when models are loaded
//!    ([`super::model`]), build every scraped target's raw rows from the store's samples and
//!    this run's scrapes (the step in progress closed with what it has) and run the failure
//!    predictor over the whole fleet in one batch and the anomaly forest on each latest row;
//!    a target is forecast to fail when the trend or the model alarms (the more probable
//!    prediction goes into its finding);
//! 3. probe the fleet once (`medic check`'s round) for each target's health;
//! 4. hand the findings of the targets forecast to fail to the same engine the daemon uses,
//!    rebuilt from the same journal — so budgets, cooldowns and attempt limits include the
//!    daemon's recent actions and a run never fights it, and with the daemon's learner of
//!    strategy success (the outcome model and the journal's verified outcomes, see
//!    `learning`) — and carry out its commands:
//!    journal first, then act (exec and http actions; supervised processes belong to the
//!    daemon that spawned them), then verify. An action of another process that was in
//!    flight in the journal (the daemon's) counts against budgets but is left to that
//!    process: not verified, not journaled, not waited for;
//! 5. report, per target forecast to fail: probability, factors, action and outcome.
//!
//! In a dry run the engine runs in [`RunMode::DryRun`]: the plan is decided and printed,
//! nothing is executed and nothing is written: the store is opened read-only (or not at all
//! when the data directory has none yet), so the journal still counts.
//!
//! Every target forecast to fail gets a reason: the plan's when acted on, otherwise the
//! engine's for leaving it alone (e.g. a cooldown after the daemon's recent restart). The
//! run is ok ([`HealReport::ok`]) only when each of them was healed.

use std::sync::Arc;
use std::time::Duration;

use medic_collect::check::{CheckOptions, check_fleet};
use medic_collect::probe::Prober;
use medic_core::{Clock, Finding, Outcome, SystemClock};
use medic_orchestrator::{ActKind, Command, EngineConfig, Event, JournalEntry, RunMode, Waiting};
use medic_policy::Fleet;
use serde::Serialize;

use super::detect::LeakForecast;
use super::journal::JournalWriter;
use super::{DaemonError, DaemonOptions};
use crate::dispatch::Dispatcher;

/// How a preemptive run gathers evidence.
#[derive(Clone, Copy, Debug)]
pub struct HealOptions {
    /// Scrape rounds before deciding.
    pub rounds: usize,
    /// Between rounds.
    pub interval: Duration,
    /// How far back the store's history counts.
    pub history: Duration,
    /// Give up waiting for actions and verifications after this long.
    pub deadline: Duration,
}

impl Default for HealOptions {
    fn default() -> Self {
        HealOptions {
            rounds: 8,
            interval: Duration::from_secs(1),
            history: Duration::from_secs(600),
            deadline: Duration::from_secs(120),
        }
    }
}

/// One target forecast to fail, and what was done.
#[derive(Clone, Debug, Serialize)]
pub struct HealLine {
    /// The target.
    pub target: String,
    /// Failure probability (forecast confidence).
    pub probability: f64,
    /// Contributing factors.
    pub factors: Vec<(String, f64)>,
    /// Memory as a fraction of the limit.
    pub memory_ratio: Option<f64>,
    /// The strategy decided, if any.
    pub action: Option<String>,
    /// Why: the plan's reason when it was acted on; otherwise the engine's reason for
    /// leaving it (cooldown, backoff, held, budget, maintenance, approval, dependency).
    pub reason: Option<String>,
    /// How it ended: `success`, `failure: …`, `planned (dry run)`, `not acted`.
    pub outcome: String,
}

/// The report of a run.
#[derive(Clone, Debug, Serialize)]
pub struct HealReport {
    /// Targets considered.
    pub targets: usize,
    /// The ones forecast to fail.
    pub lines: Vec<HealLine>,
    /// Nothing was executed.
    pub dry_run: bool,
}

impl HealReport {
    /// Nothing needed doing, or every target forecast to fail was healed by this run (its
    /// action verified). A target left alone (cooldown, hold, budget, maintenance, approval:
    /// see its `reason`) or whose action failed or could not be verified is not ok. A dry run
    /// is always ok: it only plans.
    pub fn ok(&self) -> bool {
        self.dry_run || self.lines.iter().all(|l| l.outcome == "success")
    }
}

/// Runs one preemptive healing pass.
///
/// # Errors
/// An unreadable store or journal, or an engine that rejects the fleet.
pub async fn heal_once(
    options: &DaemonOptions,
    fleet: &Fleet,
    heal: HealOptions,
) -> Result<HealReport, DaemonError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut store = open_store(options)?;
    let client = medic_collect::http::client()?;
    let prober = Prober::new(client.clone(), medic_collect::http::DEFAULT_MAX_BODY_BYTES);

    let mut models = super::load_models(options.models.clone(), fleet).await;
    let started = clock.now();
    // This run's RSS samples, by target index (kept in memory: a dry run writes nothing).
    let mut fresh: Vec<Vec<(medic_core::Timestamp, f64)>> = vec![Vec::new(); fleet.targets.len()];
    // This run's whole scrapes, for the models' raw rows.
    let mut scrapes: Vec<Vec<(medic_core::Timestamp, Vec<medic_core::MetricSample>)>> =
        vec![Vec::new(); fleet.targets.len()];
    for round in 0..heal.rounds.max(1) {
        if round > 0 {
            tokio::time::sleep(heal.interval).await;
        }
        for (i, target) in fleet.targets.iter().enumerate() {
            let Some(m) = &target.metrics else { continue };
            match medic_collect::scrape::scrape(
                &client,
                &target.name,
                &m.url,
                m.timeout,
                medic_collect::http::DEFAULT_MAX_BODY_BYTES,
                clock.now(),
            )
            .await
            {
                Ok(report) => {
                    fresh[i].extend(
                        report
                            .samples
                            .iter()
                            .filter(|s| s.name == "process_resident_memory_bytes")
                            .map(|s| (s.at, s.value)),
                    );
                    if !options.dry_run
                        && let Some(store) = store.as_mut()
                    {
                        store.insert_samples(&report.samples)?;
                    }
                    if !models.is_empty() {
                        let at = report.samples.first().map_or_else(|| clock.now(), |s| s.at);
                        scrapes[i].push((at, report.samples));
                    }
                }
                Err(e) => {
                    tracing::warn!(target = %target.name, error = %crate::error_chain(&e), "scrape failed; skipped");
                }
            }
        }
    }

    let now = clock.now();
    let checks = check_fleet(fleet, &prober, Arc::clone(&clock), CheckOptions::DEFAULT).await;
    // The models: every target's raw rows from the store and this run's scrapes, then the
    // whole fleet in one batch.
    let mut model_verdicts = vec![(None, None); fleet.targets.len()];
    if !models.is_empty() {
        let span = Duration::from_secs(models.step_s() * (models.history_rows() as u64 + 1));
        let mut series = Vec::with_capacity(fleet.targets.len());
        for (i, target) in fleet.targets.iter().enumerate() {
            let Some(mut s) = models.series() else {
                series.push(None);
                continue;
            };
            if target.metrics.is_none() {
                series.push(None);
                continue;
            }
            for (at, samples) in
                stored_scrapes(store.as_ref(), target.name.as_str(), (now - span)..started)?
                    .into_iter()
                    .chain(scrapes[i].drain(..))
            {
                s.push(at, &samples, 0.0);
            }
            s.close_current(0.0);
            series.push(Some(s));
        }
        let mut refs: Vec<Option<&mut super::model::TargetSeries>> =
            series.iter_mut().map(Option::as_mut).collect();
        match models.run(&mut refs) {
            Ok(verdicts) => {
                for v in verdicts {
                    model_verdicts[v.target] = (v.prediction, v.anomaly);
                }
            }
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "model inference failed; deciding without the models");
            }
        }
    }
    let mut findings = Vec::new();
    for (i, (target, check)) in fleet.targets.iter().zip(&checks).enumerate() {
        let limit = target
            .resources
            .as_ref()
            .and_then(|r| r.max_rss_bytes)
            .map(|b| b as f64);
        let (mut prediction, mut anomaly, mut memory_ratio) = (None, None, None);
        if let Some(limit) = limit {
            let mut forecast = LeakForecast::default();
            let history = match &store {
                Some(store) => store.samples(
                    target.name.as_str(),
                    "process_resident_memory_bytes",
                    (now - heal.history)..started,
                )?,
                None => Vec::new(),
            };
            let mut last = None;
            let points = history.iter().map(|s| (s.at, s.value));
            for (at, value) in points.chain(fresh[i].iter().copied()) {
                forecast.push(at, value);
                last = Some(value);
            }
            memory_ratio = last.map(|r| r / limit);
            prediction = forecast.prediction(limit).filter(|p| p.alarm);
            anomaly = forecast.anomaly(limit);
        }
        let (model_prediction, model_anomaly) = std::mem::take(&mut model_verdicts[i]);
        if let Some(m) = model_prediction.filter(|p| p.alarm)
            && prediction
                .as_ref()
                .is_none_or(|p| p.probability < m.probability)
        {
            prediction = Some(m);
        }
        if anomaly.is_none() {
            anomaly = model_anomaly.filter(|a| a.anomalous);
        }
        if prediction.is_none() {
            continue;
        }
        let mut f = Finding::from_health(target.name.clone(), now, check.state, Default::default());
        f.memory_ratio = memory_ratio;
        f.anomaly = anomaly;
        f.prediction = prediction;
        findings.push(f);
    }

    let mut config = EngineConfig::standard(options.max_concurrent.max(1));
    if options.dry_run {
        config.mode = RunMode::DryRun;
    } else if let Some(store) = store.as_mut() {
        // Its own range of action ids: a daemon sharing the journal has another.
        config.run = store.begin_run(clock.now(), "heal")?;
    }
    let records = match &store {
        Some(store) => store.journal_all()?,
        None => Vec::new(),
    };
    let numbered = records
        .into_iter()
        .map(|r| {
            serde_json::from_value(r.entry.payload)
                .map(|e| (r.seq, e))
                .map_err(|source| DaemonError::Journal { seq: r.seq, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The same learner the daemon would have: its plans rank strategies alike.
    let mut learning = super::learning::DaemonLearning::start(
        options.signatures.as_deref(),
        &options.data_dir,
        options.models.as_deref(),
        fleet,
        &numbered,
    )?;
    let journal: Vec<_> = numbered.into_iter().map(|(_, e)| e).collect();
    let mut writer = JournalWriter::new(&journal);
    let mut engine = super::brain::recover(fleet, &config, journal)?;
    engine.set_success_rates(learning.rates());
    let dispatcher = Dispatcher::new(client, prober.clone(), None);
    let mut lines: Vec<HealLine> = findings
        .iter()
        .map(|f| {
            let p = f.prediction.as_ref();
            HealLine {
                target: f.target.to_string(),
                probability: p.map_or(0.0, |p| p.probability),
                factors: p.map(|p| p.factors.clone()).unwrap_or_default(),
                memory_ratio: f.memory_ratio,
                action: None,
                reason: None,
                outcome: "not acted".into(),
            }
        })
        .collect();

    let mut out = Vec::new();
    let mut pending: Vec<Event> = findings.into_iter().map(Event::Finding).collect();
    pending.push(Event::Tick);
    let deadline = clock.now() + heal.deadline;
    let mut inflight = 0usize;
    let mut targets_of = std::collections::HashMap::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    loop {
        for event in pending.drain(..) {
            engine.step(clock.now(), event, &mut out);
        }
        for command in out.drain(..) {
            match command {
                Command::Journal(entry) => {
                    if let JournalEntry::Intent { target, reason, .. } = &entry
                        && let Some(line) = lines.iter_mut().find(|l| l.target == target.as_str())
                    {
                        line.reason = Some(reason.clone());
                    }
                    if options.dry_run {
                        continue;
                    }
                    // An action of another process (the daemon's, in flight when this run
                    // read the journal) is that process's to finish and journal.
                    if let JournalEntry::Acted { action, .. }
                    | JournalEntry::Verified { action, .. }
                    | JournalEntry::Closed { action, .. } = &entry
                        && !targets_of.contains_key(action)
                    {
                        continue;
                    }
                    // A live run always has its store (opened read-write above).
                    if let Some(store) = store.as_mut() {
                        writer.append(store, clock.now(), &entry)?;
                    }
                    learning.observe(&entry);
                }
                Command::Act(act) => {
                    targets_of.insert(act.action, act.target.to_string());
                    let line = lines.iter_mut().find(|l| l.target == act.target.as_str());
                    if let (Some(line), ActKind::Heal(s)) = (line, act.kind) {
                        line.action = Some(s.as_str().to_owned());
                        line.outcome = if act.dry_run {
                            "planned (dry run)".into()
                        } else {
                            "running".into()
                        };
                    }
                    // The engine closes a dry-run act itself; nothing is carried out.
                    if act.dry_run {
                        continue;
                    }
                    let Some(target) = fleet.target(act.target.as_str()).cloned() else {
                        continue;
                    };
                    let (dispatcher, tx) = (dispatcher.clone(), tx.clone());
                    inflight += 1;
                    tokio::spawn(async move {
                        let report = dispatcher.carry_out(&act, &target).await;
                        let _ = tx.send(Event::ActionOutcome {
                            action: act.action,
                            outcome: report.outcome,
                        });
                    });
                }
                Command::Verify {
                    action,
                    target,
                    deadline,
                } => {
                    // Not ours: the process that acted verifies it (see above).
                    if !targets_of.contains_key(&action) {
                        continue;
                    }
                    let Some(target) = fleet.target(target.as_str()).cloned() else {
                        continue;
                    };
                    let (prober, tx, clock) = (prober.clone(), tx.clone(), Arc::clone(&clock));
                    inflight += 1;
                    tokio::spawn(async move {
                        let outcome =
                            super::brain::verify(&prober, None, &target, deadline, clock).await;
                        let _ = tx.send(Event::VerifyResult { action, outcome });
                    });
                }
                Command::Circuit { .. } | Command::Notify(_) | Command::Escalate(_) => {}
            }
        }
        // Done when this run's own actions are: another process's action in flight (it
        // counts against budgets) is not waited for.
        let ours_active = targets_of.iter().any(|(a, t)| {
            engine
                .target_view(t)
                .is_some_and(|v| v.in_flight.is_some_and(|f| f.0 == *a))
        });
        if inflight == 0 && !ours_active || clock.now() >= deadline {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            Ok(Some(event)) => {
                inflight -= 1;
                let (action, outcome, verified) = match &event {
                    Event::ActionOutcome { action, outcome } => (*action, outcome.clone(), false),
                    Event::VerifyResult { action, outcome } => (*action, outcome.clone(), true),
                    _ => continue,
                };
                if let Some(line) = targets_of
                    .get(&action)
                    .and_then(|t| lines.iter_mut().find(|l| &l.target == t))
                {
                    match outcome {
                        Outcome::Failure(why) => line.outcome = format!("failure: {why}"),
                        Outcome::Success if verified => line.outcome = "success".into(),
                        Outcome::Unknown if verified => line.outcome = "unknown".into(),
                        Outcome::Skipped(why) => line.outcome = format!("skipped: {why}"),
                        _ => {}
                    }
                }
                pending.push(event);
            }
            Ok(None) => break,
            Err(_) => {}
        }
        pending.push(Event::Tick);
    }
    let now = clock.now();
    for line in &mut lines {
        if line.outcome == "running" {
            line.outcome = "unknown (deadline passed)".into();
        }
        if line.action.is_none() {
            line.reason = Some(not_acted_reason(&engine, &line.target, &targets_of, now));
        }
    }
    Ok(HealReport {
        targets: fleet.targets.len(),
        lines,
        dry_run: options.dry_run,
    })
}

/// The store: read-write in a live run; in a dry run read-only, or none when the data
/// directory holds no database yet (a dry run creates and writes nothing, and still reads
/// the journal so that a running daemon's cooldowns and budgets count).
fn open_store(options: &DaemonOptions) -> Result<Option<medic_store::Store>, DaemonError> {
    if options.dry_run {
        let db = options.data_dir.join(medic_store::DB_FILE);
        if !db.exists() {
            tracing::info!(db = %db.display(), "dry run: no store yet; deciding without history or journal");
            return Ok(None);
        }
        return Ok(Some(medic_store::Store::open_read_only(&db)?));
    }
    std::fs::create_dir_all(&options.data_dir).map_err(|e| {
        DaemonError::Config(format!(
            "{}: expected a writable data directory, found {e}",
            options.data_dir.display()
        ))
    })?;
    Ok(Some(medic_store::Store::open_data_dir(&options.data_dir)?))
}

/// Why the engine did not act on `target` in this run, from its state after the run.
fn not_acted_reason(
    engine: &medic_orchestrator::Engine,
    target: &str,
    ours: &std::collections::HashMap<medic_orchestrator::ActionId, String>,
    now: medic_core::Timestamp,
) -> String {
    let Some(v) = engine.target_view(target) else {
        return "not in the engine's fleet".into();
    };
    let until = |u: medic_core::Timestamp| format!("{:.0} s from now", u.since(now).as_secs_f64());
    if let Some(p) = v.awaiting_approval {
        return format!("held: waiting for approval {p} (POST /api/v1/approvals/{p})");
    }
    if v.gave_up {
        return "held: gave up after a crash loop; waits for a human".into();
    }
    if v.escalated {
        return "held: escalated to a human (attempts exhausted or nothing left to try)".into();
    }
    if let Some((action, kind)) = v.in_flight
        && !ours.contains_key(&action)
    {
        let kind = match kind {
            ActKind::Heal(s) => s.as_str(),
            ActKind::Fallback => "fallback",
        };
        return format!("another action is in flight on it: {action} {kind} (e.g. the daemon's)");
    }
    match v.waiting {
        Some(Waiting::Maintenance) => "maintenance holds healing".into(),
        Some(Waiting::Dependency) => {
            "a dependency is failing or being healed; it goes first".into()
        }
        Some(Waiting::Backoff(u)) => {
            format!("backoff after failed attempts: next try {}", until(u))
        }
        Some(Waiting::Cooldown(u)) => format!(
            "cooldown: the strategy was used on it recently (restart_cooldown, this run's or \
             the daemon's); planned again {}",
            until(u)
        ),
        None if v.queued => {
            "budget: the tier's, group's or fleet's concurrent actions are all in use".into()
        }
        None => "the engine planned no action for it (observe)".into(),
    }
}

/// The stored samples of `target` in `range`, grouped into scrapes (one per timestamp), oldest
/// first: what the daemon's scrapes were, for the models' raw rows. None without a store.
fn stored_scrapes(
    store: Option<&medic_store::Store>,
    target: &str,
    range: std::ops::Range<medic_core::Timestamp>,
) -> Result<Vec<(medic_core::Timestamp, Vec<medic_core::MetricSample>)>, DaemonError> {
    let Some(store) = store else {
        return Ok(Vec::new());
    };
    let mut metrics: Vec<String> = store
        .series(target)?
        .into_iter()
        .map(|k| k.metric)
        .collect();
    metrics.dedup();
    let mut by_time: std::collections::BTreeMap<
        medic_core::Timestamp,
        Vec<medic_core::MetricSample>,
    > = std::collections::BTreeMap::new();
    for metric in &metrics {
        for s in store.samples(target, metric, range.clone())? {
            by_time.entry(s.at).or_default().push(s);
        }
    }
    Ok(by_time.into_iter().collect())
}
