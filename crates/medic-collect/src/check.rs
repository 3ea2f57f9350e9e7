//! One round of every probe of a fleet, combined into a state per target: what `medic check`
//! prints.
//!
//! **Thresholds in a single round.** Failure and success thresholds debounce a level over
//! time; a one-shot check has no history to debounce, so each level's verdict is its one
//! result: one failed run fails the level, one passing run passes it (as if both thresholds
//! were 1). This errs on the side of showing a problem, which is what a check is run for.
//!
//! Derived levels: *performance* scrapes the metrics endpoint once and reads request latency
//! (p99, else mean), error rate and queue depth by naming convention (see
//! [`perf_metrics_for`]); *resources* reads the process named by the target's process probe
//! (a supervised target's through the prober's pid lookup, which only `medic run` has)
//! twice, `cpu_window` apart, for a CPU figure; *dependencies* uses the states of the targets
//! in `depends_on` computed in the same round. A derived level with nothing to measure is
//! listed with `ok: false` and a "no data" error but gives no verdict (it stays unknown).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medic_core::{
    Clock, HealthState, LevelSet, ProbeKind, ProbeLevel, ProbeOutcome, TargetId, Timestamp,
};
use medic_policy::{Check, Fleet, ProcessSelector, Target};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::health::{
    LimitVerdict, PerformanceReading, ResourceReading, evaluate_dependencies, evaluate_performance,
    evaluate_resources,
};
use crate::probe::{Prober, kind_of};
use crate::procfs::{self, SysConf};
use crate::scrape::{self, ErrorSource, PerfMetrics, PerfSnapshot, ScrapeReport};

/// How a check round runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Probe runs in flight at once.
    pub max_concurrent: usize,
    /// Time between the two /proc readings that give a CPU figure.
    pub cpu_window: Duration,
    /// Byte cap of a metrics page.
    pub max_metrics_bytes: usize,
}

impl CheckOptions {
    /// 64 at once, a 500 ms CPU window, 1 MiB metric pages.
    pub const DEFAULT: CheckOptions = CheckOptions {
        max_concurrent: 64,
        cpu_window: Duration::from_millis(500),
        max_metrics_bytes: crate::http::DEFAULT_MAX_BODY_BYTES,
    };
}

/// One line of a target's report: a probe or derived level and how it went.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeLine {
    /// The level it decides.
    pub level: ProbeLevel,
    /// How it was checked.
    pub kind: ProbeKind,
    /// Whether it passed.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// Why it did not pass.
    pub error: Option<String>,
    /// Whether this line decided its level (false for "no data").
    #[serde(skip)]
    pub verdict: bool,
}

/// A target's state after one round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetCheck {
    /// The target.
    pub target: TargetId,
    /// Its tier.
    pub tier: String,
    /// The combined state.
    pub state: HealthState,
    /// Every probe and derived level, in level order.
    pub probes: Vec<ProbeLine>,
}

/// Runs every probe of `fleet` once, concurrently, and combines the results per target.
pub async fn check_fleet(
    fleet: &Fleet,
    prober: &Prober,
    clock: Arc<dyn Clock>,
    options: CheckOptions,
) -> Vec<TargetCheck> {
    let permits = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
    let mut jobs = JoinSet::new();
    for (idx, target) in fleet.targets.iter().enumerate() {
        for spec in &target.probes {
            let (prober, clock, permits) =
                (prober.clone(), Arc::clone(&clock), Arc::clone(&permits));
            let (name, spec) = (target.name.clone(), spec.clone());
            jobs.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = prober.run_probe(clock.as_ref(), &name, &spec).await;
                (
                    idx,
                    line(
                        spec.level,
                        kind_of(&spec.check),
                        &result.outcome,
                        result.latency,
                    ),
                )
            });
        }
        if let Some(limits) = target.performance.clone() {
            let (prober, clock, permits) =
                (prober.clone(), Arc::clone(&clock), Arc::clone(&permits));
            let target = target.clone();
            jobs.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let started = tokio::time::Instant::now();
                let (verdict, _, _) =
                    performance(&prober, &target, Some(&limits), clock.now(), options, None).await;
                (
                    idx,
                    verdict_line(
                        ProbeLevel::Performance,
                        ProbeKind::Metrics,
                        verdict,
                        started,
                    ),
                )
            });
        }
        if let Some(limits) = target.resources.clone() {
            let (prober, clock, permits) =
                (prober.clone(), Arc::clone(&clock), Arc::clone(&permits));
            let target = target.clone();
            jobs.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let started = tokio::time::Instant::now();
                let verdict =
                    match resources_reading(&prober, &target, clock.as_ref(), options).await {
                        Ok(reading) => evaluate_resources(&limits, &reading),
                        Err(verdict) => verdict,
                    };
                (
                    idx,
                    verdict_line(
                        ProbeLevel::Resources,
                        ProbeKind::Resources,
                        verdict,
                        started,
                    ),
                )
            });
        }
    }
    let mut lines: Vec<Vec<ProbeLine>> = vec![Vec::new(); fleet.targets.len()];
    while let Some(joined) = jobs.join_next().await {
        match joined {
            Ok((idx, line)) => lines[idx].push(line),
            Err(e) => tracing::error!(error = %e, "a check task failed"),
        }
    }
    for l in &mut lines {
        l.sort_by_key(|l| l.level);
    }
    // Dependencies last: they need the other levels of the targets they name.
    let states = resolve_states(fleet, &mut lines);
    fleet
        .targets
        .iter()
        .zip(lines)
        .zip(states)
        .map(|((t, probes), state)| TargetCheck {
            target: t.name.clone(),
            tier: t.tier.clone(),
            state: state.unwrap_or(HealthState::Unknown),
            probes,
        })
        .collect()
}

/// Computes every target's state, adding a dependencies line to each target with
/// `depends_on`. Targets are resolved in dependency order (a target after everything it
/// depends on) found without recursion, so a `depends_on` chain of any length costs heap,
/// not stack. A dependency on a cycle (which validation rejects) counts as unknown.
fn resolve_states(fleet: &Fleet, lines: &mut [Vec<ProbeLine>]) -> Vec<Option<HealthState>> {
    let index: BTreeMap<&str, usize> = fleet
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let deps: Vec<Vec<Option<usize>>> = fleet
        .targets
        .iter()
        .map(|t| {
            t.depends_on
                .iter()
                .map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut states: Vec<Option<HealthState>> = vec![None; fleet.targets.len()];
    for i in dependency_order(&deps) {
        let target = &fleet.targets[i];
        if !target.depends_on.is_empty() {
            let verdict =
                evaluate_dependencies(target.depends_on.iter().zip(&deps[i]).map(|(name, j)| {
                    let state = j.and_then(|j| states[j]).unwrap_or(HealthState::Unknown);
                    (name.as_str(), state)
                }));
            lines[i].push(verdict_line_at(
                ProbeLevel::Dependencies,
                ProbeKind::Dependency,
                verdict,
                Duration::ZERO,
            ));
        }
        let mut known = LevelSet::EMPTY;
        let mut failing = LevelSet::EMPTY;
        for l in lines[i].iter().filter(|l| l.verdict) {
            known.insert(l.level);
            if !l.ok {
                failing.insert(l.level);
            }
        }
        states[i] = Some(HealthState::combine(known, failing));
    }
    states
}

/// Every index of `deps` once, each after the indexes it depends on (`deps[i]`; `None`
/// entries name no target and are ignored): a post-order depth-first walk with an explicit
/// stack. A dependency that closes a cycle is skipped, so the walk always ends.
pub(crate) fn dependency_order(deps: &[Vec<Option<usize>>]) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    // (target, index of its next dependency to visit)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..deps.len() {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Open;
        stack.push((root, 0));
        while let Some((i, next)) = stack.last_mut() {
            let i = *i;
            match deps[i].get(*next) {
                Some(dep) => {
                    *next += 1;
                    if let Some(j) = *dep
                        && mark.get(j) == Some(&Mark::New)
                    {
                        mark[j] = Mark::Open;
                        stack.push((j, 0));
                    }
                }
                None => {
                    stack.pop();
                    mark[i] = Mark::Done;
                    order.push(i);
                }
            }
        }
    }
    order
}

fn line(
    level: ProbeLevel,
    kind: ProbeKind,
    outcome: &ProbeOutcome,
    latency: Duration,
) -> ProbeLine {
    ProbeLine {
        level,
        kind,
        ok: outcome.is_ok(),
        latency_ms: millis(latency),
        error: outcome.error(),
        verdict: true,
    }
}

fn verdict_line(
    level: ProbeLevel,
    kind: ProbeKind,
    verdict: LimitVerdict,
    started: tokio::time::Instant,
) -> ProbeLine {
    verdict_line_at(level, kind, verdict, started.elapsed())
}

fn verdict_line_at(
    level: ProbeLevel,
    kind: ProbeKind,
    verdict: LimitVerdict,
    latency: Duration,
) -> ProbeLine {
    let (ok, error, decided) = match verdict {
        LimitVerdict::Pass => (true, None, true),
        LimitVerdict::Fail(why) => (false, Some(why), true),
        LimitVerdict::NoData => {
            let why = match level {
                ProbeLevel::Performance => "the metrics expose none of the limited values",
                ProbeLevel::Resources => {
                    "no process probe names the target's process, nor is it supervised by a running medic"
                }
                ProbeLevel::Dependencies => "the state of every dependency is unknown",
                ProbeLevel::Liveness | ProbeLevel::Readiness => "nothing to measure",
            };
            (false, Some(format!("no data: {why}")), false)
        }
    };
    ProbeLine {
        level,
        kind,
        ok,
        latency_ms: millis(latency),
        error,
        verdict: decided,
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Scrapes the target's metrics and checks the performance limits, over the counters'
/// change since `earlier` (the previous scrape) or over the target's lifetime without one.
/// Returns the verdict, this scrape's snapshot (for the next window) and its report.
/// Without `limits` the verdict is [`LimitVerdict::NoData`] (a scrape for history only).
pub(crate) async fn performance(
    prober: &Prober,
    target: &Target,
    limits: Option<&medic_policy::PerformanceLimits>,
    now: Timestamp,
    options: CheckOptions,
    earlier: Option<&PerfSnapshot>,
) -> (LimitVerdict, Option<PerfSnapshot>, Option<ScrapeReport>) {
    let Some(metrics) = &target.metrics else {
        let why = "performance limits are set but the target has no metrics endpoint";
        return (LimitVerdict::Fail(why.into()), None, None);
    };
    let report = match scrape::scrape(
        prober.client(),
        &target.name,
        &metrics.url,
        metrics.timeout,
        options.max_metrics_bytes,
        now,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            return (
                LimitVerdict::Fail(crate::probe::error_chain(&e)),
                None,
                None,
            );
        }
    };
    let spec = perf_metrics_for(&report.samples);
    let snapshot = PerfSnapshot::from_samples(&report.samples, &spec);
    let r = snapshot.reading(earlier);
    let reading = PerformanceReading {
        latency: r
            .latency_p99
            .or(r.latency_mean)
            .and_then(|s| Duration::try_from_secs_f64(s).ok()),
        error_rate: r.error_rate,
        queue_depth: r.queue_depth,
    };
    let verdict = limits.map_or(LimitVerdict::NoData, |l| evaluate_performance(l, &reading));
    (verdict, Some(snapshot), Some(report))
}

/// Picks a target's performance metrics by the usual naming conventions: a histogram or
/// summary named `*_request_duration_seconds`, a counter `*_requests_total`, errors from a
/// counter `*_errors_total` or else from the requests' `code`/`status` label starting with
/// `5`, and a gauge `*_queue_depth` / `*_queue_length`.
pub fn perf_metrics_for(samples: &[medic_core::MetricSample]) -> PerfMetrics {
    let mut spec = PerfMetrics::default();
    let mut error_counter = None;
    let mut error_label = None;
    for s in samples {
        let n = s.name.as_str();
        if spec.latency.is_none() {
            for suffix in ["_bucket", "_count"] {
                if let Some(base) = n.strip_suffix(suffix)
                    && base.ends_with("_request_duration_seconds")
                {
                    spec.latency = Some(base.to_owned());
                }
            }
        }
        if n.ends_with("_requests_total") {
            if spec.requests.is_none() {
                spec.requests = Some(n.to_owned());
            }
            if error_label.is_none() {
                error_label = s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "code" || k == "status")
                    .map(|(k, _)| k.clone());
            }
        }
        if error_counter.is_none() && n.ends_with("_errors_total") {
            error_counter = Some(n.to_owned());
        }
        if spec.queue_depth.is_none()
            && (n.ends_with("queue_depth") || n.ends_with("_queue_length"))
        {
            spec.queue_depth = Some(n.to_owned());
        }
    }
    spec.errors = match (error_counter, error_label) {
        (Some(counter), _) => Some(ErrorSource::Counter(counter)),
        (None, Some(label)) => Some(ErrorSource::Label {
            label,
            prefix: "5".into(),
        }),
        (None, None) => None,
    };
    spec
}

/// Reads RSS, open fds and CPU (over `cpu_window`) of the process the target's process
/// probe names, or of its supervised process (`supervise:`), whose pid `prober` asks the
/// supervisor for.
pub(crate) async fn resources_reading(
    prober: &Prober,
    target: &Target,
    clock: &dyn Clock,
    options: CheckOptions,
) -> Result<ResourceReading, LimitVerdict> {
    let selector = target
        .probes
        .iter()
        .find_map(|p| match &p.check {
            Check::Process { selector } => Some(selector),
            _ => None,
        })
        .or(target
            .supervise
            .as_ref()
            .map(|_| &ProcessSelector::Supervised));
    let pid = match selector {
        None => {
            return Err(LimitVerdict::NoData);
        }
        Some(ProcessSelector::PidFile(path)) => procfs::read_pid_file(path)
            .map_err(|e| LimitVerdict::Fail(crate::probe::error_chain(&e)))?,
        Some(ProcessSelector::Name(name)) => match procfs::find_by_name(name) {
            Ok(pids) => *pids
                .first()
                .ok_or_else(|| LimitVerdict::Fail(format!("no process named {name:?}")))?,
            Err(e) => return Err(LimitVerdict::Fail(crate::probe::error_chain(&e))),
        },
        // Without a supervisor (`medic check`) there is no process to measure.
        Some(ProcessSelector::Supervised) => match prober.supervised_pid(&target.name) {
            None => return Err(LimitVerdict::NoData),
            Some(None) => {
                return Err(LimitVerdict::Fail(
                    "supervised process is not running".into(),
                ));
            }
            Some(Some(pid)) => pid,
        },
    };
    let sys = SysConf::get();
    let first = procfs::sample_resources(pid, clock.now(), sys)
        .map_err(|e| LimitVerdict::Fail(crate::probe::error_chain(&e)))?;
    tokio::time::sleep(options.cpu_window).await;
    let cpu = procfs::sample_resources(pid, clock.now(), sys)
        .ok()
        .and_then(|second| procfs::cpu_fraction(&first, &second, sys));
    Ok(ResourceReading {
        rss_bytes: Some(first.rss_bytes),
        cpu,
        open_fds: Some(first.open_fds),
    })
}
