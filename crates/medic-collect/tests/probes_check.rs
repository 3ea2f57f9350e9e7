//! One check round over a small fleet of real loopback servers: states per target from
//! probes, scraped performance metrics, /proc resources and dependencies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use medic_collect::check::{CheckOptions, TargetCheck, check_fleet};
use medic_collect::probe::Prober;
use medic_collect::scheduler::default_spec;
use medic_core::{HealthState, ProbeKind, ProbeLevel, SystemClock, TargetId};
use medic_policy::{
    Check, Fleet, MetricsSpec, PerformanceLimits, ProbeSpec, ProcessSelector, Replicas,
    ResourceLimits, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `body` with status 200 on every path, keep-alive.
async fn serve(body: &'static str) -> SocketAddr {
    serve_with(move |_| body.to_owned()).await
}

/// Serves `page(n)` for the n-th request (from 1), status 200, keep-alive.
async fn serve_with(page: impl Fn(u64) -> String + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let page = Arc::new(page);
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (page, served) = (Arc::clone(&page), Arc::clone(&served));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.clear();
                    let n = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let body = page(n);
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    if conn.write_all(head.as_bytes()).await.is_err()
                        || conn.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn target(name: &str, probes: Vec<ProbeSpec>) -> Target {
    Target {
        name: TargetId::new(name),
        tier: "default".into(),
        labels: BTreeMap::new(),
        group: None,
        probes,
        performance: None,
        resources: None,
        metrics: None,
        depends_on: Vec::new(),
        actions: BTreeMap::new(),
        fallback: None,
        supervise: None,
        startup_delay: Duration::from_secs(5),
        replicas: Replicas {
            initial: 1,
            min: 1,
            max: 1,
        },
    }
}

fn http_liveness(addr: SocketAddr) -> ProbeSpec {
    default_spec(
        ProbeLevel::Liveness,
        Check::Http {
            url: format!("http://{addr}/health"),
            status_min: 200,
            status_max: 299,
            body_contains: None,
            max_latency: None,
        },
    )
}

const GOOD_METRICS: &str = "\
# TYPE demo_request_duration_seconds histogram
demo_request_duration_seconds_bucket{le=\"0.05\"} 990
demo_request_duration_seconds_bucket{le=\"0.5\"} 1000
demo_request_duration_seconds_bucket{le=\"+Inf\"} 1000
demo_request_duration_seconds_sum 12
demo_request_duration_seconds_count 1000
# TYPE demo_requests_total counter
demo_requests_total 1000
# TYPE demo_errors_total counter
demo_errors_total 3
# TYPE demo_queue_depth gauge
demo_queue_depth 2
";

const ERRORING_METRICS: &str = "\
# TYPE http_requests_total counter
http_requests_total{code=\"200\"} 80
http_requests_total{code=\"500\"} 20
# TYPE work_queue_depth gauge
work_queue_depth 500
";

fn by_name<'a>(report: &'a [TargetCheck], name: &str) -> &'a TargetCheck {
    report.iter().find(|t| t.target.as_str() == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_gives_a_state_per_target() {
    let good = serve(GOOD_METRICS).await;
    let bad = serve(ERRORING_METRICS).await;
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let limits = PerformanceLimits {
        max_latency: Some(Duration::from_millis(100)),
        max_error_rate: Some(0.05),
        max_queue_depth: Some(100.0),
        schedule: medic_policy::LevelSchedule::PERFORMANCE_DEFAULT,
    };
    let metrics = |addr: SocketAddr| MetricsSpec {
        url: format!("http://{addr}/metrics"),
        every: Duration::from_secs(15),
        timeout: Duration::from_secs(5),
    };

    let mut web = target("web", vec![http_liveness(good)]);
    web.performance = Some(limits.clone());
    web.metrics = Some(metrics(good));

    let mut slow = target("busy", vec![http_liveness(bad)]);
    slow.performance = Some(limits);
    slow.metrics = Some(metrics(bad));

    let db = target(
        "db",
        vec![default_spec(
            ProbeLevel::Liveness,
            Check::Tcp {
                addr: closed.to_string(),
            },
        )],
    );
    let mut app = target("app", vec![http_liveness(good)]);
    app.depends_on = vec![TargetId::new("db"), TargetId::new("web")];

    // This test process itself, found by name, with a tiny fd limit that it exceeds.
    let exe = std::env::current_exe().unwrap();
    let me = exe.file_name().unwrap().to_str().unwrap().to_owned();
    let mut proc_target = target(
        "proc",
        vec![default_spec(
            ProbeLevel::Liveness,
            Check::Process {
                selector: ProcessSelector::Name(me),
            },
        )],
    );
    proc_target.resources = Some(ResourceLimits {
        max_rss_bytes: Some(u64::MAX),
        max_cpu: None,
        max_open_fds: Some(1),
        schedule: medic_policy::LevelSchedule::RESOURCES_DEFAULT,
    });

    let fleet = Fleet {
        targets: vec![app, web, slow, db, proc_target],
        tiers: BTreeMap::new(),
    };
    let options = CheckOptions {
        cpu_window: Duration::from_millis(50),
        ..CheckOptions::DEFAULT
    };
    let report = check_fleet(
        &fleet,
        &Prober::with_defaults().unwrap(),
        Arc::new(SystemClock),
        options,
    )
    .await;

    let web = by_name(&report, "web");
    assert_eq!(web.state, HealthState::Healthy, "{web:#?}");
    assert!(web.probes.iter().all(|p| p.ok), "{web:#?}");
    assert_eq!(
        web.probes.iter().map(|p| p.kind).collect::<Vec<_>>(),
        [ProbeKind::Http, ProbeKind::Metrics]
    );

    let busy = by_name(&report, "busy");
    assert_eq!(busy.state, HealthState::Degraded, "{busy:#?}");
    let perf = busy
        .probes
        .iter()
        .find(|p| p.level == ProbeLevel::Performance)
        .unwrap();
    let why = perf.error.as_deref().unwrap();
    assert!(
        why.contains("error rate 0.2000 above 0.05") && why.contains("queue depth 500 above 100"),
        "{why}"
    );

    assert_eq!(by_name(&report, "db").state, HealthState::Unhealthy);
    let app = by_name(&report, "app");
    assert_eq!(app.state, HealthState::Degraded, "{app:#?}");
    let deps = app.probes.last().unwrap();
    assert_eq!(deps.level, ProbeLevel::Dependencies);
    assert_eq!(deps.error.as_deref(), Some("dependency unhealthy: db"));

    let proc_check = by_name(&report, "proc");
    assert_eq!(proc_check.state, HealthState::Degraded, "{proc_check:#?}");
    let res = proc_check.probes.last().unwrap();
    assert_eq!(res.kind, ProbeKind::Resources);
    assert!(res.error.as_deref().unwrap().contains("open fds above 1"));

    // The JSON shape `medic check --json` prints.
    let json = serde_json::to_value(web).unwrap();
    let keys: Vec<&String> = json["probes"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error", "kind", "latency_ms", "level", "ok"]);
    assert_eq!(json["state"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_measures_derived_levels_into_fleet_health() {
    use medic_collect::health::FleetHealth;
    use medic_collect::scheduler::{
        MeasureKind, Scheduler, SchedulerConfig, measures_of, probes_of,
    };

    // Counters that grow with every request: each scrape window sees 20 % errors.
    let bad = serve_with(|n| {
        format!(
            "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {}\n\
             http_requests_total{{code=\"500\"}} {}\n",
            80 * n,
            20 * n
        )
    })
    .await;
    let mut busy = target("busy", vec![http_liveness(bad)]);
    busy.performance = Some(PerformanceLimits {
        max_latency: None,
        max_error_rate: Some(0.05),
        max_queue_depth: None,
        schedule: medic_policy::LevelSchedule::PERFORMANCE_DEFAULT,
    });
    busy.metrics = Some(MetricsSpec {
        url: format!("http://{bad}/metrics"),
        every: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    });
    let exe = std::env::current_exe().unwrap();
    let me = exe.file_name().unwrap().to_str().unwrap().to_owned();
    let mut proc_target = target(
        "proc",
        vec![default_spec(
            ProbeLevel::Liveness,
            Check::Process {
                selector: ProcessSelector::Name(me),
            },
        )],
    );
    proc_target.resources = Some(ResourceLimits {
        max_rss_bytes: None,
        max_cpu: None,
        max_open_fds: Some(1),
        schedule: medic_policy::LevelSchedule::RESOURCES_DEFAULT,
    });
    let fleet = Fleet {
        targets: vec![busy, proc_target],
        tiers: BTreeMap::new(),
    };
    let mut probes = probes_of(&fleet);
    for p in &mut probes {
        p.spec.every = Duration::from_millis(100);
        p.spec.timeout = Duration::from_secs(5);
    }
    let mut measures = measures_of(&fleet);
    assert_eq!(
        measures
            .iter()
            .map(|m| (m.target_idx, m.slot, m.kind))
            .collect::<Vec<_>>(),
        [
            (0, 1, MeasureKind::Performance),
            (1, 1, MeasureKind::Resources)
        ]
    );
    for m in &mut measures {
        m.every = Duration::from_millis(100);
    }
    let scheduler = Scheduler::new(
        probes,
        SchedulerConfig {
            max_concurrent: 8,
            seed: 3,
        },
        Prober::with_defaults().unwrap(),
        Arc::new(SystemClock),
    )
    .with_measures(measures);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(scheduler.run(tx, async {
        let _ = stop_rx.await;
    }));
    let mut health = FleetHealth::new(&fleet);
    let mut reasons = std::collections::HashMap::new();
    let degraded = |h: &FleetHealth, i| h.target(i).unwrap().state() == HealthState::Degraded;
    let watch = async {
        while !(degraded(&health, 0) && degraded(&health, 1)) {
            let r = rx.recv().await.expect("scheduler stopped early");
            if let Some(e) = r.result.outcome.error() {
                reasons.insert((r.target_idx, r.result.kind), e);
            }
            health.record(r.target_idx, r.slot, r.result.outcome.is_ok());
        }
    };
    tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .expect("both targets degraded within 30 s");
    let _ = stop_tx.send(());
    run.await.unwrap();
    assert_eq!(
        reasons.get(&(0, ProbeKind::Metrics)).map(String::as_str),
        Some("error rate 0.2000 above 0.05")
    );
    assert!(
        reasons[&(1, ProbeKind::Resources)].contains("open fds above 1"),
        "{reasons:?}"
    );
    assert_eq!(reasons.len(), 2, "liveness stayed ok: {reasons:?}");
}

/// A `depends_on` chain far longer than any stack can recurse through (`medic validate`
/// accepts it): `c0` depends on `c1`, …, the last one is probed against a real listener.
/// Every target resolves, each after the one it depends on, so the root's health reaches
/// the far end of the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_depends_on_chain_resolves_without_recursion() {
    const LEN: usize = 20_000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let mut targets: Vec<Target> = (0..LEN)
        .map(|k| {
            let mut t = target(&format!("c{k}"), Vec::new());
            if k + 1 < LEN {
                t.depends_on = vec![TargetId::new(format!("c{}", k + 1))];
            }
            t
        })
        .collect();
    targets[LEN - 1].probes = vec![default_spec(
        ProbeLevel::Liveness,
        Check::Tcp {
            addr: addr.to_string(),
        },
    )];
    let fleet = Fleet {
        targets,
        tiers: BTreeMap::new(),
    };
    let report = check_fleet(
        &fleet,
        &Prober::with_defaults().unwrap(),
        Arc::new(SystemClock),
        CheckOptions::DEFAULT,
    )
    .await;
    assert_eq!(report.len(), LEN);
    assert!(
        report.iter().all(|t| t.state == HealthState::Healthy),
        "first not healthy: {:?}",
        report.iter().find(|t| t.state != HealthState::Healthy)
    );
    let head = &report[0];
    assert_eq!(head.probes.len(), 1);
    assert_eq!(head.probes[0].level, ProbeLevel::Dependencies);
}

/// `every`, `timeout` and the thresholds written under `probes.performance` and
/// `probes.resources` drive the scheduler's measurements and the levels' debouncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_levels_follow_their_timing_from_fleet_yaml() {
    use medic_collect::health::FleetHealth;
    use medic_collect::scheduler::{Scheduler, SchedulerConfig, measures_of, probes_of};
    let exe = std::env::current_exe().unwrap();
    let me = exe.file_name().unwrap().to_str().unwrap().to_owned();
    let yaml = format!(
        "targets:\n  - name: p\n    probes:\n      liveness: {{ process: {{ name: \"{me}\" }}, every: 100ms, failure_threshold: 1 }}\n      \
         resources: {{ max_open_fds: 1, every: 200ms, timeout: 3s, failure_threshold: 1, success_threshold: 2 }}\n  \
         - name: m\n    metrics: {{ url: \"http://127.0.0.1:1/metrics\", every: 9s }}\n    probes:\n      \
         performance: {{ max_latency: 1s, every: 4s, timeout: 2s, failure_threshold: 2 }}\n"
    );
    let tiers = BTreeMap::from([(
        "default".to_owned(),
        medic_policy::TierPolicy::builtin_default(),
    )]);
    let fleet = medic_policy::parse_fleet_str(&yaml, "fleet.yaml", &tiers).unwrap();
    let measures = measures_of(&fleet);
    assert_eq!(
        measures
            .iter()
            .map(|m| (m.target_idx, m.every, m.timeout))
            .collect::<Vec<_>>(),
        [
            (0, Duration::from_millis(200), Duration::from_secs(3)),
            (1, Duration::from_secs(4), Duration::from_secs(2)),
        ]
    );

    // Thresholds: performance needs 2 failures; resources passes again after 2 successes.
    let mut h = FleetHealth::new(&fleet);
    let (perf_slot, res_slot) = (measures[1].slot, measures[0].slot);
    h.record(1, perf_slot, false);
    assert_eq!(h.target(1).unwrap().state(), HealthState::Unknown);
    h.record(1, perf_slot, false);
    assert_eq!(h.target(1).unwrap().state(), HealthState::Degraded);
    h.record(0, 0, true);
    h.record(0, res_slot, false);
    assert_eq!(h.target(0).unwrap().state(), HealthState::Degraded);
    h.record(0, res_slot, true);
    assert_eq!(h.target(0).unwrap().state(), HealthState::Degraded);
    h.record(0, res_slot, true);
    assert_eq!(h.target(0).unwrap().state(), HealthState::Healthy);

    // A real run of the target's own schedule: the first measurement over the limit
    // (failure_threshold 1) degrades it.
    let scheduler = Scheduler::new(
        probes_of(&fleet)
            .into_iter()
            .filter(|p| p.target_idx == 0)
            .collect(),
        SchedulerConfig {
            max_concurrent: 4,
            seed: 9,
        },
        Prober::with_defaults().unwrap(),
        Arc::new(SystemClock),
    )
    .with_measures(measures.into_iter().filter(|m| m.target_idx == 0).collect());
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(scheduler.run(tx, async {
        let _ = stop_rx.await;
    }));
    let mut health = FleetHealth::new(&fleet);
    let watch = async {
        loop {
            let r = rx.recv().await.expect("scheduler stopped early");
            health.record(r.target_idx, r.slot, r.result.outcome.is_ok());
            if r.result.kind == ProbeKind::Resources {
                return r;
            }
        }
    };
    let first = tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .expect("a resources measurement within 30 s");
    let _ = stop_tx.send(());
    run.await.unwrap();
    let why = first.result.outcome.error().unwrap();
    assert!(why.contains("open fds above 1"), "{why}");
    let (_, failing) = health.target(0).unwrap().levels();
    assert!(failing.contains(ProbeLevel::Resources), "{failing:?}");
}

/// A queue gauge of `+Inf` is above any `max_queue_depth` (it failed as "no data" before);
/// a NaN one says nothing and stays no data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_queue_fails_the_queue_limit_and_nan_gives_no_data() {
    let inf = serve("# TYPE work_queue_depth gauge\nwork_queue_depth +Inf\n").await;
    let nan = serve("# TYPE work_queue_depth gauge\nwork_queue_depth NaN\n").await;
    let with_metrics = |name: &str, addr: SocketAddr| {
        let mut t = target(name, Vec::new());
        t.performance = Some(PerformanceLimits {
            max_latency: None,
            max_error_rate: None,
            max_queue_depth: Some(100.0),
            schedule: medic_policy::LevelSchedule::PERFORMANCE_DEFAULT,
        });
        t.metrics = Some(MetricsSpec {
            url: format!("http://{addr}/metrics"),
            every: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
        });
        t
    };
    let fleet = Fleet {
        targets: vec![with_metrics("inf", inf), with_metrics("nan", nan)],
        tiers: BTreeMap::new(),
    };
    let report = check_fleet(
        &fleet,
        &Prober::with_defaults().unwrap(),
        Arc::new(SystemClock),
        CheckOptions::DEFAULT,
    )
    .await;
    let inf = by_name(&report, "inf");
    assert_eq!(inf.state, HealthState::Degraded, "{inf:#?}");
    assert_eq!(
        inf.probes[0].error.as_deref(),
        Some("queue depth inf above 100")
    );
    let nan = by_name(&report, "nan");
    assert_eq!(nan.state, HealthState::Unknown, "{nan:#?}");
    assert!(
        nan.probes[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("no data"),
        "{nan:#?}"
    );
}
