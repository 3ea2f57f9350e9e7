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
//! * **Lag**: every report carries its planned and actual start (after the permit was taken),
//!   so a bench can compute lag percentiles.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use medic_core::{Clock, Observation, ProbeResult, TargetId, Timestamp};
use medic_policy::{Check, Fleet, ProbeSpec};
use rand::Rng;
use rand::SeedableRng;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::probe::{Prober, kind_of};

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

/// Counters of a scheduler run, readable while it runs.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Runs started.
    pub started: AtomicU64,
    /// Rounds skipped because the previous run of the same probe was still going.
    pub skipped_overlapping: AtomicU64,
    /// Reports dropped because the receiver was gone.
    pub undelivered: AtomicU64,
}

/// Drives a list of probes until `shutdown` resolves or the report receiver is dropped.
pub struct Scheduler {
    probes: Arc<[ScheduledProbe]>,
    config: SchedulerConfig,
    prober: Prober,
    clock: Arc<dyn Clock>,
    stats: Arc<SchedulerStats>,
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
            config,
            prober,
            clock,
            stats: Arc::new(SchedulerStats::default()),
        }
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
        self.probes
            .iter()
            .map(|p| {
                let every_ms = u64::try_from(p.spec.every.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
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
        let running: Arc<[AtomicBool]> =
            self.probes.iter().map(|_| AtomicBool::new(false)).collect();
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
            let probe = &self.probes[idx];
            due.push(Reverse((
                planned + probe.spec.every.max(Duration::from_millis(1)),
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
                idx,
                planned,
                prober: self.prober.clone(),
                clock: Arc::clone(&self.clock),
                permits: Arc::clone(&permits),
                running: Arc::clone(&running),
                reports: reports.clone(),
                stats: Arc::clone(&self.stats),
            };
            tasks.spawn(run.go());
        }
        tasks.abort_all();
    }
}

struct ProbeRun {
    probes: Arc<[ScheduledProbe]>,
    idx: usize,
    planned: Timestamp,
    prober: Prober,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
    running: Arc<[AtomicBool]>,
    reports: mpsc::Sender<ProbeReport>,
    stats: Arc<SchedulerStats>,
}

impl ProbeRun {
    async fn go(self) {
        let probe = &self.probes[self.idx];
        let result = {
            let Ok(_permit) = self.permits.acquire().await else {
                self.running[self.idx].store(false, Ordering::Release);
                return;
            };
            self.stats.started.fetch_add(1, Ordering::Relaxed);
            self.prober
                .run_probe(self.clock.as_ref(), &probe.target, &probe.spec)
                .await
        };
        self.running[self.idx].store(false, Ordering::Release);
        debug_assert_eq!(result.kind, kind_of(&probe.spec.check));
        let report = ProbeReport {
            probe_idx: self.idx,
            target_idx: probe.target_idx,
            slot: probe.slot,
            planned: self.planned,
            result,
        };
        if self.reports.send(report).await.is_err() {
            self.stats.undelivered.fetch_add(1, Ordering::Relaxed);
        }
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
