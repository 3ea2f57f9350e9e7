//! The probe scheduler: one loop plans every probe of the fleet; each run is its own task.
//!
//! * **Planning** uses the injected [`Clock`]: probe `i` first runs at `start + phase_i`, where
//!   the phase is drawn uniformly from `[0, every)` by a seeded ChaCha RNG (deterministic
//!   jitter that spreads a fleet's probes over the interval), then every `every` after that
//!   (fixed rate: a late run does not push later runs back).
//! * **Sleeping** uses tokio time, so a paused test runtime controls it.
//! * **Isolation**: each run is a separate task holding a permit of a global semaphore and
//!   bounded by its probe's own timeout; the planning loop never awaits a probe. A probe whose
//!   previous run is still going when it is due again is skipped for that round (counted),
//!   so a hanging target costs at most one task at a time.
//! * **Derived levels**: with [`Scheduler::with_measures`] it also scrapes metrics for the
//!   performance level and reads /proc for the resources level ([`measures_of`]), reported
//!   like probes (kinds `metrics` and `resources`). The performance reading is over the
//!   counters' change since the previous scrape (the first one, like `medic check`, over the
//!   target's lifetime).
//! * **Lag**: every report carries its planned and actual start (after the permit was taken),
//!   so a bench can compute lag percentiles.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medic_core::{
    Clock, Observation, ProbeKind, ProbeLevel, ProbeOutcome, ProbeResult, TargetId, Timestamp,
};
use medic_policy::{Check, Fleet, ProbeSpec, Target};
use rand::Rng;
use rand::SeedableRng;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::check::{CheckOptions, performance, resources_reading};
use crate::health::{LimitVerdict, evaluate_resources};
use crate::probe::Prober;
use crate::scrape::PerfSnapshot;

/// One probe the scheduler runs periodically.
#[derive(Clone, Debug)]
pub struct ScheduledProbe {
    /// The target probed.
    pub target: TargetId,
    /// The index of the target in the fleet.
    pub target_idx: usize,
    /// The index of this probe among the target's probes (its health slot).
    pub slot: usize,
    /// What to run, how often and with which timeout.
    pub spec: ProbeSpec,
}

/// Every probe of every target of a fleet, in fleet order.
pub fn probes_of(fleet: &Fleet) -> Vec<ScheduledProbe> {
    let mut out = Vec::new();
    for (target_idx, target) in fleet.targets.iter().enumerate() {
        for (slot, spec) in target.probes.iter().enumerate() {
            out.push(ScheduledProbe {
                target: target.name.clone(),
                target_idx,
                slot,
                spec: spec.clone(),
            });
        }
    }
    out
}

/// A derived level the scheduler measures periodically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasureKind {
    /// Scrape the metrics endpoint for history only (a target with `metrics:` and no
    /// performance limits); it has no health slot and yields no report, only samples.
    Scrape,
    /// Scrape the metrics endpoint and check the performance limits (on the level's
    /// schedule: `probes.performance.every`, by default `metrics.every`).
    Performance,
    /// Read the target's process in /proc and check the resource limits (on the level's
    /// schedule: `probes.resources.every`, by default 10 s).
    Resources,
}

/// One derived level of one target, measured periodically.
#[derive(Clone, Debug)]
pub struct ScheduledMeasure {
    /// The target (its limits, metrics endpoint and process probe).
    pub target: Arc<Target>,
    /// The index of the target in the fleet.
    pub target_idx: usize,
    /// The health slot: after the target's probes, performance first, then resources
    /// (the numbering of [`crate::health::FleetHealth`]); `usize::MAX` for [`MeasureKind::Scrape`].
    pub slot: usize,
    /// What is measured.
    pub kind: MeasureKind,
    /// How often.
    pub every: Duration,
    /// How long one measurement may take.
    pub timeout: Duration,
}

/// The performance and resources measurements of every target of a fleet, in fleet order.
pub fn measures_of(fleet: &Fleet) -> Vec<ScheduledMeasure> {
    let mut out = Vec::new();
    for (target_idx, target) in fleet.targets.iter().enumerate() {
        let shared = Arc::new(target.clone());
        let mut slot = target.probes.len();
        if let Some(limits) = &target.performance {
            out.push(ScheduledMeasure {
                target: Arc::clone(&shared),
                target_idx,
                slot,
                kind: MeasureKind::Performance,
                every: limits.schedule.every,
                timeout: limits.schedule.timeout,
            });
            slot += 1;
        }
        if target.performance.is_none()
            && let Some(metrics) = &target.metrics
        {
            out.push(ScheduledMeasure {
                target: Arc::clone(&shared),
                target_idx,
                slot: usize::MAX,
                kind: MeasureKind::Scrape,
                every: metrics.every,
                timeout: metrics.timeout,
            });
        }
        if let Some(limits) = &target.resources {
            out.push(ScheduledMeasure {
                target: Arc::clone(&shared),
                target_idx,
                slot,
                kind: MeasureKind::Resources,
                every: limits.schedule.every,
                timeout: limits.schedule.timeout,
            });
        }
    }
    out
}

/// Scheduler settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Probe runs in flight at once, fleet-wide (at least 1).
    pub max_concurrent: usize,
    /// Seed of the phase jitter.
    pub seed: u64,
}

/// One finished probe run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    /// The index of the probe in the scheduler's list.
    pub probe_idx: usize,
    /// The index of the target in the fleet.
    pub target_idx: usize,
    /// The probe's health slot within its target.
    pub slot: usize,
    /// When the run was planned to start.
    pub planned: Timestamp,
    /// The result; `result.at` is the actual start.
    pub result: ProbeResult,
}

impl ProbeReport {
    /// Actual start minus planned start (zero if it started early).
    pub fn lag(&self) -> Duration {
        self.result.at.since(self.planned)
    }

    /// The result as an [`Observation`].
    pub fn into_observation(self) -> Observation {
        Observation::Probe(self.result)
    }
}

/// The samples of one scrape, for history and detection (see [`Scheduler::with_samples`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapedSamples {
    /// The index of the target in the fleet.
    pub target_idx: usize,
    /// The target.
    pub target: TargetId,
    /// When the scrape started.
    pub at: Timestamp,
    /// Every valid sample of the page.
    pub samples: Vec<medic_core::MetricSample>,
    /// Malformed lines skipped on the page.
    pub skipped_lines: usize,
}

/// Counters of a scheduler run, readable while it runs.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Runs started.
    pub started: AtomicU64,
    /// Measurements that found nothing to check (no report is sent for them).
    pub no_data: AtomicU64,
    /// Rounds skipped because the previous run of the same probe was still going.
    pub skipped_overlapping: AtomicU64,
    /// Reports dropped because the receiver was gone.
    pub undelivered: AtomicU64,
    /// Scraped sample batches dropped because the samples channel was full or closed.
    pub samples_dropped: AtomicU64,
}

/// Drives a list of probes until `shutdown` resolves or the report receiver is dropped.
pub struct Scheduler {
    probes: Arc<[ScheduledProbe]>,
    measures: Arc<[ScheduledMeasure]>,
    config: SchedulerConfig,
    prober: Prober,
    clock: Arc<dyn Clock>,
    stats: Arc<SchedulerStats>,
    samples: Option<mpsc::Sender<ScrapedSamples>>,
}

impl Scheduler {
    /// A scheduler for `probes`.
    pub fn new(
        probes: Vec<ScheduledProbe>,
        config: SchedulerConfig,
        prober: Prober,
        clock: Arc<dyn Clock>,
    ) -> Scheduler {
        Scheduler {
            probes: probes.into(),
            measures: Arc::new([]),
            config,
            prober,
            clock,
            stats: Arc::new(SchedulerStats::default()),
            samples: None,
        }
    }

    /// Also delivers every scrape's samples (of performance and scrape-only measures) to
    /// `samples`. A full channel drops the batch (counted in
    /// [`SchedulerStats::samples_dropped`]) rather than delay the probes.
    pub fn with_samples(mut self, samples: mpsc::Sender<ScrapedSamples>) -> Scheduler {
        self.samples = Some(samples);
        self
    }

    /// Also measures these derived levels; their reports have `probe_idx` equal to
    /// `probes().len()` plus their index in `measures`.
    pub fn with_measures(mut self, measures: Vec<ScheduledMeasure>) -> Scheduler {
        self.measures = measures.into();
        self
    }

    /// The probes, indexed as [`ProbeReport::probe_idx`].
    pub fn probes(&self) -> &[ScheduledProbe] {
        &self.probes
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<SchedulerStats> {
        Arc::clone(&self.stats)
    }

    /// The first planned start of each probe relative to `start`: a deterministic phase in
    /// `[0, every)` drawn from the seed.
    pub fn first_runs(&self, start: Timestamp) -> Vec<Timestamp> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.config.seed);
        let intervals = self.probes.iter().map(|p| p.spec.every);
        let intervals = intervals.chain(self.measures.iter().map(|m| m.every));
        intervals
            .map(|every| {
                let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
                start + Duration::from_millis(rng.random_range(0..every_ms))
            })
            .collect()
    }

    /// Runs until `shutdown` completes or `reports` is closed; probe runs still in flight
    /// then are aborted (an exec probe's child is killed on drop).
    pub async fn run(self, reports: mpsc::Sender<ProbeReport>, shutdown: impl Future<Output = ()>) {
        let start = self.clock.now();
        let mut due: BinaryHeap<Reverse<(Timestamp, usize)>> = self
            .first_runs(start)
            .into_iter()
            .enumerate()
            .map(|(i, t)| Reverse((t, i)))
            .collect();
        let n_jobs = self.probes.len() + self.measures.len();
        let running: Arc<[AtomicBool]> = (0..n_jobs).map(|_| AtomicBool::new(false)).collect();
        let perf_windows: Arc<[Mutex<Option<PerfSnapshot>>]> =
            self.measures.iter().map(|_| Mutex::new(None)).collect();
        let permits = Arc::new(Semaphore::new(self.config.max_concurrent.max(1)));
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            // Reap finished runs so the set does not grow.
            while tasks.try_join_next().is_some() {}
            if reports.is_closed() {
                break;
            }
            let Some(Reverse((planned, idx))) = due.peek().copied() else {
                break;
            };
            let wait = planned.since(self.clock.now());
            if !wait.is_zero() {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            due.pop();
            let every = match idx.checked_sub(self.probes.len()) {
                None => self.probes[idx].spec.every,
                Some(m) => self.measures[m].every,
            };
            due.push(Reverse((
                planned + every.max(Duration::from_millis(1)),
                idx,
            )));
            if running[idx].swap(true, Ordering::AcqRel) {
                self.stats
                    .skipped_overlapping
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let run = ProbeRun {
                probes: Arc::clone(&self.probes),
                measures: Arc::clone(&self.measures),
                perf_windows: Arc::clone(&perf_windows),
                idx,
                planned,
                prober: self.prober.clone(),
                clock: Arc::clone(&self.clock),
                permits: Arc::clone(&permits),
                running: Arc::clone(&running),
                reports: reports.clone(),
                stats: Arc::clone(&self.stats),
                samples: self.samples.clone(),
            };
            tasks.spawn(run.go());
        }
        tasks.abort_all();
    }
}

struct ProbeRun {
    probes: Arc<[ScheduledProbe]>,
    measures: Arc<[ScheduledMeasure]>,
    /// Per measure: the last performance scrape, the start of the next window.
    perf_windows: Arc<[Mutex<Option<PerfSnapshot>>]>,
    idx: usize,
    planned: Timestamp,
    prober: Prober,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
    running: Arc<[AtomicBool]>,
    reports: mpsc::Sender<ProbeReport>,
    stats: Arc<SchedulerStats>,
    samples: Option<mpsc::Sender<ScrapedSamples>>,
}

impl ProbeRun {
    async fn go(self) {
        let report = {
            let Ok(_permit) = self.permits.acquire().await else {
                self.running[self.idx].store(false, Ordering::Release);
                return;
            };
            self.stats.started.fetch_add(1, Ordering::Relaxed);
            match self.idx.checked_sub(self.probes.len()) {
                None => {
                    let probe = &self.probes[self.idx];
                    let result = self
                        .prober
                        .run_probe(self.clock.as_ref(), &probe.target, &probe.spec)
                        .await;
                    Some(ProbeReport {
                        probe_idx: self.idx,
                        target_idx: probe.target_idx,
                        slot: probe.slot,
                        planned: self.planned,
                        result,
                    })
                }
                Some(m) => self.measure(m).await,
            }
        };
        self.running[self.idx].store(false, Ordering::Release);
        let Some(report) = report else {
            self.stats.no_data.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.reports.send(report).await.is_err() {
            self.stats.undelivered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ProbeRun {
    /// One measurement of a derived level; `None` when there was nothing to check.
    async fn measure(&self, m_idx: usize) -> Option<ProbeReport> {
        let m = &self.measures[m_idx];
        let at = self.clock.now();
        // Latency is reported, not decided on; tokio's clock is the one tests control.
        let started = tokio::time::Instant::now();
        let target = &m.target;
        let options = CheckOptions::DEFAULT;
        let work = async {
            match m.kind {
                MeasureKind::Performance | MeasureKind::Scrape => {
                    // One run per measure at a time (the running flag), so take/put back
                    // never races.
                    let slot = &self.perf_windows[m_idx];
                    let earlier = slot.lock().ok().and_then(|mut s| s.take());
                    let (verdict, snapshot, report) = performance(
                        &self.prober,
                        target,
                        target.performance.as_ref(),
                        at,
                        options,
                        earlier.as_ref(),
                    )
                    .await;
                    if let (Ok(mut s), Some(snapshot)) = (slot.lock(), snapshot) {
                        *s = Some(snapshot);
                    }
                    if let (Some(tx), Some(report)) = (&self.samples, report) {
                        let batch = ScrapedSamples {
                            target_idx: m.target_idx,
                            target: target.name.clone(),
                            at,
                            samples: report.samples,
                            skipped_lines: report.skipped_lines,
                        };
                        if tx.try_send(batch).is_err() {
                            self.stats.samples_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    verdict
                }
                MeasureKind::Resources => match &target.resources {
                    Some(limits) => {
                        match resources_reading(&self.prober, target, self.clock.as_ref(), options)
                            .await
                        {
                            Ok(reading) => evaluate_resources(limits, &reading),
                            Err(verdict) => verdict,
                        }
                    }
                    None => LimitVerdict::NoData,
                },
            }
        };
        let outcome = match tokio::time::timeout(m.timeout, work).await {
            Ok(LimitVerdict::Pass) => ProbeOutcome::Ok,
            Ok(LimitVerdict::Fail(why)) => ProbeOutcome::Failed(why),
            Ok(LimitVerdict::NoData) => return None,
            Err(_elapsed) => ProbeOutcome::TimedOut,
        };
        let (level, kind) = match m.kind {
            MeasureKind::Performance | MeasureKind::Scrape => {
                (ProbeLevel::Performance, ProbeKind::Metrics)
            }
            MeasureKind::Resources => (ProbeLevel::Resources, ProbeKind::Resources),
        };
        Some(ProbeReport {
            probe_idx: self.idx,
            target_idx: m.target_idx,
            slot: m.slot,
            planned: self.planned,
            result: ProbeResult {
                target: target.name.clone(),
                level,
                kind,
                at,
                latency: started.elapsed(),
                outcome,
            },
        })
    }
}

/// A probe spec with the defaults of the issue (every 10 s, timeout 1 s, failure 3,
/// success 1), for building fleets in code.
pub fn default_spec(level: medic_core::ProbeLevel, check: Check) -> ProbeSpec {
    ProbeSpec {
        level,
        check,
        every: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        failure_threshold: 3,
        success_threshold: 1,
    }
}
