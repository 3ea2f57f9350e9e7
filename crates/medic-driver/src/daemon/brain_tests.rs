//! The brain driven input by input on a manual clock: a real store (SQLite in a temporary
//! directory), the real engine and policies, a real runtime for the acts it spawns; no
//! threads of its own, so every step is deterministic.

use std::path::PathBuf;

use medic_core::{ManualClock, ProbeKind, ProbeOutcome, ProbeResult};

use super::*;

#[allow(dead_code)] // not every test reads every part
pub(super) struct Harness {
    pub(super) brain: Brain,
    /// What the brain sends itself (act and verify results).
    pub(super) inputs: Receiver<Input>,
    pub(super) clock: ManualClock,
    pub(super) dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

pub(super) const START: Timestamp = Timestamp::from_secs(1_800_000_000);

/// A brain over `fleet` (the body of a fleet.yaml) with the repository's policies.
pub(super) fn harness(fleet: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let fleet = load(&dir, fleet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let clock = ManualClock::new(START);
    let store = Store::open_data_dir(dir.path().join("data")).unwrap();
    let (tx, inputs) = std::sync::mpsc::channel();
    let (proc_tx, _) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = Supervisor::new(proc_tx);
    let client = medic_collect::http::client().unwrap();
    let prober = Prober::new(client.clone(), medic_collect::http::DEFAULT_MAX_BODY_BYTES);
    let dispatcher = Dispatcher::new(client, prober.clone(), Some(supervisor.clone()));
    let learning = DaemonLearning::start(None, dir.path(), None, &fleet, &[]).unwrap();
    let brain = Brain::new(
        fleet,
        EngineConfig::standard(8),
        Vec::new(),
        store,
        Arc::new(clock.clone()),
        tx,
        rt.handle().clone(),
        dispatcher,
        prober,
        supervisor,
        Arc::new(RwLock::new(DaemonSnapshot::default())),
        Duration::from_millis(200),
        Arc::new(RwLock::new(medic_api::FleetView::default())),
        None,
        ModelSet::none(),
        learning,
    )
    .unwrap();
    Harness {
        brain,
        inputs,
        clock,
        dir,
        _rt: rt,
    }
}

/// `fleet` validated against the repository's policies.
pub(super) fn load(dir: &tempfile::TempDir, fleet: &str) -> Fleet {
    let path = dir.path().join("fleet.yaml");
    std::fs::write(&path, fleet).unwrap();
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    medic_policy::load(&path, &policies).unwrap()
}

/// One target, `svc`, with one liveness probe that fails at once.
pub(super) const ONE: &str = "targets:\n  - name: svc\n    startup_delay: 1ms\n    probes:\n      liveness: { exec: [\"true\"], every: 1s, failure_threshold: 1 }\n";

/// A liveness probe result of target `i` started at `at`.
pub(super) fn probe(i: usize, at: Timestamp, outcome: ProbeOutcome) -> ProbeReport {
    ProbeReport {
        probe_idx: 0,
        target_idx: i,
        slot: 0,
        planned: at,
        result: ProbeResult {
            target: TargetId::new("svc"),
            level: ProbeLevel::Liveness,
            kind: ProbeKind::Exec,
            at,
            latency: Duration::from_millis(1),
            outcome,
        },
    }
}

impl Harness {
    pub(super) fn view_target(&self, name: &str) -> medic_api::TargetView {
        self.brain
            .view
            .read()
            .unwrap()
            .target(name)
            .cloned()
            .unwrap()
    }
}

#[test]
fn the_last_finding_keeps_the_time_it_was_made() {
    let mut h = harness(ONE);
    let failed = ProbeOutcome::Failed("exit status 1".into());
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, START, failed.clone()),
    });
    h.clock.advance(Duration::from_secs(5));
    let later = START + Duration::from_secs(5);
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, later, failed),
    });
    h.brain.publish(later);
    let f = h.view_target("svc").last_finding.expect("a finding");
    assert_eq!(f.summary, "liveness: exit status 1");
    assert_eq!(
        f.at, START,
        "made at the first failed probe, not at publish"
    );
    assert_eq!(f.severity, Severity::Critical);

    // Recovered: the finding stays, with its time, as the latest that was not healthy.
    h.clock.advance(Duration::from_secs(5));
    let healed = later + Duration::from_secs(5);
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, healed, ProbeOutcome::Ok),
    });
    h.brain.publish(healed);
    let v = h.view_target("svc");
    assert_eq!(v.state, HealthState::Healthy);
    assert_eq!(v.last_finding.map(|f| f.at), Some(START));
}

#[test]
fn the_probability_sparkline_drops_to_zero_when_the_forecast_is_gone() {
    let mut h = harness(ONE);
    h.brain.publish(START);
    assert!(
        h.view_target("svc").probability.is_empty(),
        "never forecast: no line"
    );
    h.brain.targets[0].prediction = Some(PredictionFinding {
        probability: 0.9,
        alarm: true,
        horizon_s: 600,
        factors: Vec::new(),
        recommended: Strategy::Restart,
    });
    let t1 = START + Duration::from_secs(1);
    h.brain.publish(t1);
    let last = h.view_target("svc").probability.last().unwrap();
    assert_eq!((last.at, last.value), (t1, 0.9));
    // A heal clears the forecast (see `on_acted`): the line shows now, not the alarm.
    h.brain.targets[0].prediction = None;
    let t2 = START + Duration::from_secs(2);
    h.brain.publish(t2);
    let last = h.view_target("svc").probability.last().unwrap();
    assert_eq!((last.at, last.value), (t2, 0.0));
}

/// `svc` and a new `web` ahead of it: after the reload `svc` is target 1, and index 0 is `web`.
const TWO: &str = "targets:\n  - name: web\n    startup_delay: 1ms\n    probes:\n      liveness: { exec: [\"true\"], every: 1s, failure_threshold: 1 }\n  - name: svc\n    startup_delay: 1ms\n    probes:\n      liveness: { exec: [\"true\"], every: 1s, failure_threshold: 1 }\n";

fn reload(h: &mut Harness, fleet: Fleet, generation: u64) -> bool {
    let (accepted, mut answer) = tokio::sync::oneshot::channel();
    h.brain.handle(Input::Reload {
        fleet: Box::new(fleet),
        generation,
        accepted,
    });
    answer.try_recv().expect("answered at once")
}

#[test]
fn reports_of_the_fleet_before_a_reload_are_dropped_not_misapplied() {
    let mut h = harness(ONE);
    let failed = ProbeOutcome::Failed("exit status 1".into());
    let two = load(&h.dir, TWO);
    assert!(reload(&mut h, two, 1));
    assert_eq!(h.brain.generation, 1);

    // The old scheduler's report for its target 0 (`svc`) arrives after the reload: index 0
    // is `web` now, which must not be marked failing.
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, START, failed.clone()),
    });
    assert_eq!(h.brain.stale_reports, 1);
    assert!(h.brain.targets[0].first_fail_at.is_none());
    assert!(h.brain.targets[0].incident.is_none());
    h.brain.handle(Input::Samples {
        generation: 0,
        batch: ScrapedSamples {
            target_idx: 0,
            target: TargetId::new("svc"),
            at: START,
            samples: Vec::new(),
            skipped_lines: 0,
        },
    });
    assert_eq!(h.brain.stale_reports, 2);

    // The new scheduler's reports are applied.
    h.brain.handle(Input::Probe {
        generation: 1,
        report: probe(1, START, failed),
    });
    assert_eq!(h.brain.stale_reports, 2);
    assert_eq!(h.brain.targets[1].first_fail_at, Some(START));
    assert!(h.brain.targets[0].first_fail_at.is_none());
}

#[test]
fn a_rejected_reload_keeps_the_running_fleet_and_its_reports() {
    let mut h = harness(ONE);
    let mut bad = load(&h.dir, TWO);
    // Validation passed, the engine refuses it (a target twice).
    let dup = bad.targets[0].clone();
    bad.targets.push(dup);
    assert!(!reload(&mut h, bad, 1));
    assert_eq!(h.brain.generation, 0);
    assert_eq!(h.brain.fleet.targets.len(), 1);
    h.brain.handle(Input::Probe {
        generation: 0,
        report: probe(0, START, ProbeOutcome::Failed("exit status 1".into())),
    });
    assert_eq!(h.brain.stale_reports, 0);
    assert_eq!(h.brain.targets[0].first_fail_at, Some(START));
}

fn sample(at: Timestamp, value: f64) -> medic_core::MetricSample {
    medic_core::MetricSample {
        target: TargetId::new("svc"),
        name: "queue_depth".into(),
        labels: Vec::new(),
        value,
        at,
    }
}

#[test]
fn the_store_is_pruned_at_once_and_then_hourly() {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let mut h = harness(ONE);
    h.brain.retention = Some(7 * DAY);
    let old = START - 30 * DAY;
    let recent = START - DAY;
    h.brain
        .store
        .insert_samples(&[sample(old, 1.0), sample(recent, 2.0)])
        .unwrap();
    let all = Timestamp::from_secs(0)..START + DAY;
    assert_eq!(
        h.brain
            .store
            .samples("svc", "queue_depth", all.clone())
            .unwrap()
            .len(),
        2
    );

    h.brain.prune(START);
    let kept = h
        .brain
        .store
        .samples("svc", "queue_depth", all.clone())
        .unwrap();
    assert_eq!(kept.iter().map(|s| s.at).collect::<Vec<_>>(), [recent]);

    // Not again before an hour passed; then what fell out of the window goes.
    let later = START + 6 * DAY + Duration::from_secs(60);
    h.brain.prune(START + Duration::from_secs(60));
    h.brain.store.insert_samples(&[sample(old, 3.0)]).unwrap();
    h.brain.prune(START + Duration::from_secs(120));
    assert_eq!(
        h.brain
            .store
            .samples("svc", "queue_depth", all.clone())
            .unwrap()
            .len(),
        2
    );
    h.brain.prune(later);
    assert!(
        h.brain
            .store
            .samples("svc", "queue_depth", all)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn without_retention_nothing_is_pruned() {
    let mut h = harness(ONE);
    let old = START - Duration::from_secs(400 * 24 * 3600);
    h.brain.store.insert_samples(&[sample(old, 1.0)]).unwrap();
    h.brain.prune(START);
    let all = Timestamp::from_secs(0)..START;
    assert_eq!(
        h.brain
            .store
            .samples("svc", "queue_depth", all)
            .unwrap()
            .len(),
        1
    );
}
