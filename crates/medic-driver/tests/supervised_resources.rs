//! The resources level of a supervised target (`supervise:`, no pid file, no name): the
//! scheduler measures the process the real supervisor started, found through the pid
//! lookup the daemon gives the prober, and its limits are enforced like anyone's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medic_collect::health::FleetHealth;
use medic_collect::probe::{Prober, SupervisedPids};
use medic_collect::scheduler::{
    MeasureKind, Scheduler, SchedulerConfig, default_spec, measures_of, probes_of,
};
use medic_core::{HealthState, ProbeKind, ProbeLevel, SystemClock, TargetId};
use medic_driver::supervise::{Supervisor, Vars};
use medic_policy::{
    Check, Fleet, ProcessSelector, Replicas, ResourceLimits, SuperviseSpec, Target,
};

/// The daemon's pid lookup: the first pid the supervisor runs for the target.
struct Pids(Supervisor);

impl SupervisedPids for Pids {
    fn pid_of(&self, target: &TargetId) -> Option<u32> {
        self.0.pids(target).first().copied()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_process_over_its_fd_limit_degrades_its_target() {
    let spec = SuperviseSpec {
        command: vec!["sleep".into(), "60".into()],
        env: BTreeMap::new(),
        state_dir: None,
        workdir: None,
        port: None,
    };
    let name = TargetId::new("sleeper");
    let target = Target {
        name: name.clone(),
        tier: "default".into(),
        labels: BTreeMap::new(),
        group: None,
        probes: vec![default_spec(
            ProbeLevel::Liveness,
            Check::Process {
                selector: ProcessSelector::Supervised,
            },
        )],
        performance: None,
        // `sleep` holds at least stdin, stdout and stderr.
        resources: Some(ResourceLimits {
            max_rss_bytes: None,
            max_cpu: None,
            max_open_fds: Some(1),
            schedule: medic_policy::LevelSchedule::RESOURCES_DEFAULT,
        }),
        metrics: None,
        depends_on: Vec::new(),
        actions: BTreeMap::new(),
        fallback: None,
        supervise: Some(spec.clone()),
        startup_delay: Duration::from_secs(5),
        replicas: Replicas {
            initial: 1,
            min: 1,
            max: 1,
        },
    };
    let fleet = Fleet {
        targets: vec![target],
        tiers: BTreeMap::new(),
    };
    let (events, _events_rx) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = Supervisor::new(events);
    supervisor
        .start(&name, &spec, &Vars::default())
        .await
        .expect("sleep starts");
    let prober = Prober::with_defaults()
        .unwrap()
        .with_supervised_pids(Arc::new(Pids(supervisor.clone())));

    let mut probes = probes_of(&fleet);
    for p in &mut probes {
        p.spec.every = Duration::from_millis(100);
    }
    let mut measures = measures_of(&fleet);
    assert_eq!(measures.len(), 1);
    assert_eq!(measures[0].kind, MeasureKind::Resources);
    measures[0].every = Duration::from_millis(100);
    let scheduler = Scheduler::new(
        probes,
        SchedulerConfig {
            max_concurrent: 4,
            seed: 1,
        },
        prober,
        Arc::new(SystemClock),
    )
    .with_measures(measures);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(scheduler.run(tx, async {
        let _ = stop_rx.await;
    }));
    let mut health = FleetHealth::new(&fleet);
    let mut resources_reason = None;
    let watch = async {
        while health.target(0).unwrap().state() != HealthState::Degraded {
            let r = rx.recv().await.expect("scheduler stopped early");
            assert!(
                r.result.kind != ProbeKind::Process || r.result.outcome.is_ok(),
                "the supervised process is alive: {:?}",
                r.result.outcome
            );
            if r.result.kind == ProbeKind::Resources {
                resources_reason = r.result.outcome.error();
            }
            health.record(r.target_idx, r.slot, r.result.outcome.is_ok());
        }
    };
    let within = tokio::time::timeout(Duration::from_secs(30), watch).await;
    let _ = stop_tx.send(());
    run.await.unwrap();
    supervisor.stop_all().await.unwrap();
    within.expect("degraded within 30 s");
    let why = resources_reason.expect("a resources reason");
    assert!(why.contains("open fds above 1"), "{why}");
    let (_, failing) = health.target(0).unwrap().levels();
    assert!(failing.contains(ProbeLevel::Resources), "{failing:?}");
}
