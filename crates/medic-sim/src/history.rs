//! Seeded per-minute fleet histories with labelled failures.
//!
//! Each agent gets its own random stream, its own scale (load, latency, memory) and its own
//! diurnal phase. Faults arrive as a Poisson process; a fault with a precursor bends one or
//! more metrics for 20–150 minutes (its *precursor*), then the agent fails: it stops answering
//! (rows of NaN) for a few minutes and restarts. Sudden crashes fail with no precursor and are
//! labelled as such, so evaluation can keep them apart. Look-alike episodes (load spikes,
//! planned restarts, GC pauses, cache warm-up) bend the same metrics and never fail.

use std::f64::consts::TAU;

use medic_core::Timestamp;
use rand::Rng;

use crate::agent::{AgentKind, Profile};
use crate::fault::{FaultKind, Lookalike};
use crate::metric::{Metric, N_METRICS};
use crate::rng::{SimRng, exponential, normal, poisson, rng_for, uniform};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryConfig {
    /// Seed; the same seed gives the same history.
    pub seed: u64,
    /// Number of agents (kinds cycle through [`AgentKind::ALL`]).
    pub agents: usize,
    /// Length in days.
    pub days: f64,
    /// Time of the first row.
    pub start: Timestamp,
    /// Seconds between rows.
    pub step_s: u64,
    /// Mean faults per agent per day.
    pub faults_per_agent_day: f64,
    /// Fraction of faults that are sudden crashes (no precursor).
    pub sudden_fraction: f64,
    /// Mean look-alike episodes per agent per day.
    pub lookalikes_per_agent_day: f64,
    /// Shortest and longest precursor, in minutes.
    pub precursor_minutes: (f64, f64),
}

impl HistoryConfig {
    /// Defaults for a fleet of `agents` over `days`, seeded with `seed`.
    pub fn new(seed: u64, agents: usize, days: f64) -> Self {
        HistoryConfig {
            seed,
            agents,
            days,
            start: Timestamp::from_secs(1_767_225_600), // 2026-01-01T00:00:00Z
            step_s: 60,
            faults_per_agent_day: 0.6,
            sudden_fraction: 0.15,
            lookalikes_per_agent_day: 1.5,
            precursor_minutes: (20.0, 150.0),
        }
    }

    /// Rows per agent.
    pub fn steps(&self) -> usize {
        ((self.days * 86_400.0) / self.step_s as f64)
            .round()
            .max(0.0) as usize
    }
}

/// A failure: when it happened and what led to it.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureLabel {
    /// Index of the agent in [`History::agents`].
    pub agent: usize,
    /// Row at which the agent stopped answering.
    pub at_step: usize,
    /// The fault behind it.
    pub kind: FaultKind,
    /// First row of the precursor (equal to `at_step` for sudden failures).
    pub precursor_start: usize,
}

impl FailureLabel {
    /// Whether the failure had a precursor (and so can be predicted at all).
    pub fn predictable(&self) -> bool {
        self.kind.has_precursor()
    }
}

/// A look-alike episode that did not fail.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeLabel {
    /// Index of the agent.
    pub agent: usize,
    /// First row.
    pub start: usize,
    /// Row after the last.
    pub end: usize,
    /// What it was.
    pub kind: Lookalike,
}

/// One agent's rows: `rows[step][metric]`, NaN where the agent did not answer.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentHistory {
    /// The agent's name, e.g. `crewai-3`.
    pub name: String,
    /// Its kind.
    pub kind: AgentKind,
    /// One row per step, columns in [`Metric::ALL`] order.
    pub rows: Vec<[f32; N_METRICS]>,
}

impl AgentHistory {
    /// The values of one metric over time.
    pub fn series(&self, metric: Metric) -> impl Iterator<Item = f32> + '_ {
        self.rows.iter().map(move |r| r[metric.index()])
    }
}

/// A generated fleet history.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// Time of row 0.
    pub start: Timestamp,
    /// Seconds between rows.
    pub step_s: u64,
    /// The agents.
    pub agents: Vec<AgentHistory>,
    /// Every failure, ordered by agent then time.
    pub failures: Vec<FailureLabel>,
    /// Every look-alike episode.
    pub episodes: Vec<EpisodeLabel>,
}

impl History {
    /// The time of row `step`.
    pub fn timestamp(&self, step: usize) -> Timestamp {
        self.start + std::time::Duration::from_secs(self.step_s * step as u64)
    }
}

/// Generates a history. Deterministic in `config`.
pub fn generate(config: &HistoryConfig) -> History {
    let steps = config.steps();
    let mut agents = Vec::with_capacity(config.agents);
    let mut failures = Vec::new();
    let mut episodes = Vec::new();
    for i in 0..config.agents {
        let kind = AgentKind::ALL[i % AgentKind::ALL.len()];
        let name = format!("{}-{}", kind.name(), i / AgentKind::ALL.len() + 1);
        let mut sim = AgentSim::new(config, i, kind);
        let mut rows = Vec::with_capacity(steps);
        for step in 0..steps {
            rows.push(sim.step(step, &mut failures, &mut episodes));
        }
        agents.push(AgentHistory { name, kind, rows });
    }
    History {
        start: config.start,
        step_s: config.step_s,
        agents,
        failures,
        episodes,
    }
}

enum Phase {
    Normal,
    Precursor {
        kind: FaultKind,
        start: usize,
        fail_at: usize,
        shape: f64,
    },
    Down {
        until: usize,
    },
}

struct Episode {
    kind: Lookalike,
    start: usize,
    end: usize,
    magnitude: f64,
}

/// The state of one simulated agent while its rows are generated.
struct AgentSim<'c> {
    config: &'c HistoryConfig,
    index: usize,
    rng: SimRng,
    profile: Profile,
    load_scale: f64,
    latency_scale: f64,
    rss_scale: f64,
    phase_offset: f64,
    restarts: f64,
    phase: Phase,
    episode: Option<Episode>,
    next_fault: usize,
    next_episode: usize,
    /// Slow wandering of memory around its base (fragmentation, caches), in MiB.
    rss_drift: f64,
    gc_phase: f64,
}

impl<'c> AgentSim<'c> {
    fn new(config: &'c HistoryConfig, index: usize, kind: AgentKind) -> Self {
        let mut rng = rng_for(config.seed, index as u64);
        let steps_per_day = 86_400.0 / config.step_s as f64;
        let next_fault = draw_gap(&mut rng, config.faults_per_agent_day, steps_per_day);
        let next_episode = draw_gap(&mut rng, config.lookalikes_per_agent_day, steps_per_day);
        AgentSim {
            config,
            index,
            profile: kind.profile(),
            load_scale: uniform(&mut rng, 0.6, 1.5),
            latency_scale: uniform(&mut rng, 0.8, 1.25),
            rss_scale: uniform(&mut rng, 0.85, 1.2),
            phase_offset: uniform(&mut rng, 0.0, TAU),
            gc_phase: uniform(&mut rng, 0.0, TAU),
            rng,
            restarts: 0.0,
            phase: Phase::Normal,
            episode: None,
            next_fault,
            next_episode,
            rss_drift: 0.0,
        }
    }

    fn steps_per_day(&self) -> f64 {
        86_400.0 / self.config.step_s as f64
    }

    fn step(
        &mut self,
        step: usize,
        failures: &mut Vec<FailureLabel>,
        episodes: &mut Vec<EpisodeLabel>,
    ) -> [f32; N_METRICS] {
        self.advance_phase(step, failures);
        if let Phase::Down { .. } = self.phase {
            return [f32::NAN; N_METRICS];
        }
        self.advance_episode(step, episodes);
        if let Some(Episode {
            kind: Lookalike::DeployRestart,
            start,
            ..
        }) = self.episode
            && step == start
        {
            // The planned restart itself: one row without answers.
            self.restarts += 1.0;
            self.rss_drift = 0.0;
            return [f32::NAN; N_METRICS];
        }
        self.normal_row(step)
    }

    /// Starts, fails and recovers faults.
    fn advance_phase(&mut self, step: usize, failures: &mut Vec<FailureLabel>) {
        let spd = self.steps_per_day();
        let minutes_per_step = self.config.step_s as f64 / 60.0;
        match self.phase {
            Phase::Normal if step >= self.next_fault => {
                self.episode = None; // a fault ends any look-alike, so labels stay clean
                let sudden = self.rng.random::<f64>() < self.config.sudden_fraction;
                if sudden {
                    failures.push(FailureLabel {
                        agent: self.index,
                        at_step: step,
                        kind: FaultKind::SuddenCrash,
                        precursor_start: step,
                    });
                    self.go_down(step);
                } else {
                    let kind = FaultKind::WITH_PRECURSOR
                        [self.rng.random_range(0..FaultKind::WITH_PRECURSOR.len())];
                    let (lo, hi) = match kind {
                        // An outage upstream shows only a short while before errors cascade.
                        FaultKind::DependencyOutage => (
                            self.config.precursor_minutes.0 * 0.5,
                            self.config.precursor_minutes.0 * 2.0,
                        ),
                        _ => self.config.precursor_minutes,
                    };
                    let minutes = uniform(&mut self.rng, lo, hi);
                    let len = ((minutes / minutes_per_step).round() as usize).max(2);
                    let shape = uniform(&mut self.rng, 0.7, 1.6);
                    self.phase = Phase::Precursor {
                        kind,
                        start: step,
                        fail_at: step + len,
                        shape,
                    };
                }
            }
            Phase::Precursor {
                kind,
                start,
                fail_at,
                ..
            } if step >= fail_at => {
                failures.push(FailureLabel {
                    agent: self.index,
                    at_step: step,
                    kind,
                    precursor_start: start,
                });
                self.go_down(step);
            }
            Phase::Down { until } if step >= until => {
                self.restarts += 1.0;
                self.rss_drift = 0.0;
                self.phase = Phase::Normal;
                self.next_fault =
                    step + draw_gap(&mut self.rng, self.config.faults_per_agent_day, spd).max(30);
                self.next_episode = self.next_episode.max(step + 10);
            }
            _ => {}
        }
    }

    fn go_down(&mut self, step: usize) {
        let minutes_per_step = self.config.step_s as f64 / 60.0;
        let down_minutes = uniform(&mut self.rng, 3.0, 10.0);
        let len = ((down_minutes / minutes_per_step).round() as usize).max(1);
        self.phase = Phase::Down { until: step + len };
    }

    /// Starts and ends look-alike episodes (only while no fault is active).
    fn advance_episode(&mut self, step: usize, episodes: &mut Vec<EpisodeLabel>) {
        if let Some(e) = &self.episode
            && step >= e.end
        {
            self.episode = None;
        }
        if self.episode.is_some()
            || !matches!(self.phase, Phase::Normal)
            || step < self.next_episode
        {
            return;
        }
        let minutes_per_step = self.config.step_s as f64 / 60.0;
        let kind = Lookalike::ALL[self.rng.random_range(0..Lookalike::ALL.len())];
        let (minutes, magnitude) = match kind {
            Lookalike::LoadSpike => (
                uniform(&mut self.rng, 10.0, 45.0),
                uniform(&mut self.rng, 2.0, 3.5),
            ),
            Lookalike::DeployRestart => (4.0, 1.0),
            Lookalike::SlowGc => (
                uniform(&mut self.rng, 20.0, 90.0),
                uniform(&mut self.rng, 2.0, 4.0),
            ),
            Lookalike::CacheWarmup => (
                uniform(&mut self.rng, 30.0, 90.0),
                uniform(&mut self.rng, 0.2, 0.4),
            ),
        };
        let len = ((minutes / minutes_per_step).round() as usize).max(2);
        self.episode = Some(Episode {
            kind,
            start: step,
            end: step + len,
            magnitude,
        });
        episodes.push(EpisodeLabel {
            agent: self.index,
            start: step,
            end: step + len,
            kind,
        });
        let spd = self.steps_per_day();
        self.next_episode =
            step + len + draw_gap(&mut self.rng, self.config.lookalikes_per_agent_day, spd);
    }

    /// One row of metrics for an answering agent.
    fn normal_row(&mut self, step: usize) -> [f32; N_METRICS] {
        let p = self.profile;
        let rng = &mut self.rng;
        let day_frac = (step as f64 * self.config.step_s as f64) / 86_400.0;
        let diurnal = 1.0 + 0.4 * (TAU * day_frac + self.phase_offset).sin();
        let mut load = diurnal * (1.0 + 0.06 * normal(rng));
        let mut latency_mult = 1.0;
        let mut p99_mult = 1.0;
        let mut extra_errors = 0.0;
        let mut extra_queue = 0.0;
        let mut extra_fds = 0.0;
        let mut extra_cpu = 0.0;
        let base_rss = p.rss_mb * self.rss_scale;
        // Memory wanders slowly (mean-reverting) and saws with garbage collection.
        self.rss_drift = 0.98 * self.rss_drift + 0.01 * base_rss * normal(rng);
        self.gc_phase += 0.35;
        let mut gc_amp = 0.03 * base_rss;
        let mut rss = base_rss + self.rss_drift + gc_amp * self.gc_phase.sin();

        if let Some(e) = &self.episode {
            let q = (step - e.start) as f64 / (e.end - e.start).max(1) as f64;
            match e.kind {
                Lookalike::LoadSpike => {
                    // Ramp up over the first fifth, hold, ramp down over the last fifth.
                    let envelope = (q / 0.2).min(1.0).min((1.0 - q) / 0.2).clamp(0.0, 1.0);
                    load *= 1.0 + (e.magnitude - 1.0) * envelope;
                }
                Lookalike::DeployRestart => {
                    extra_errors += 0.03 * (1.0 - q);
                    rss = base_rss * (0.7 + 0.3 * q);
                }
                Lookalike::SlowGc => {
                    if (step - e.start).is_multiple_of(4) {
                        p99_mult *= e.magnitude;
                    }
                    gc_amp *= 3.0;
                    rss += gc_amp * self.gc_phase.sin();
                    extra_cpu += 0.08;
                }
                Lookalike::CacheWarmup => {
                    rss += base_rss * e.magnitude * (q * 2.0).min(1.0);
                }
            }
        }

        if let Phase::Precursor {
            kind,
            start,
            fail_at,
            shape,
        } = self.phase
        {
            let q = ((step - start) as f64 / (fail_at - start) as f64).clamp(0.0, 1.0);
            match kind {
                FaultKind::MemoryLeak => rss += (p.rss_limit_mb * 0.99 - rss) * q.powf(shape),
                FaultKind::LatencyCreep => {
                    latency_mult *= (30f64.ln() * q.powf(2.0 * shape)).exp();
                    extra_cpu += 0.1 * q;
                }
                FaultKind::ErrorRise => extra_errors += 0.35 * q.powf(1.5 * shape),
                FaultKind::QueueGrowth => {
                    extra_queue += p.queue_cap * q.powf(1.5 * shape);
                    latency_mult *= 1.0 + 3.0 * q.powf(2.0);
                }
                FaultKind::FdLeak => extra_fds += (p.fd_limit - p.fds) * q.powf(shape),
                FaultKind::DependencyOutage => {
                    extra_errors += 0.5 * smoothstep(q.powf(shape));
                    p99_mult *= 1.0 + 3.0 * q;
                }
                _ => {}
            }
        }

        let rps = (p.rps * self.load_scale * load).max(0.0);
        let cpu =
            (p.cpu_base + p.cpu_per_rps * rps + extra_cpu + 0.02 * normal(rng)).clamp(0.0, 8.0);
        let util = load.max(0.2);
        let p50 = p.latency_ms
            * self.latency_scale
            * (1.0 + 0.35 * (util - 1.0)).max(0.4)
            * (0.08 * normal(rng)).exp()
            * latency_mult;
        let p99 = p50 * (3.0 + 0.6 * normal(rng).abs()) * p99_mult;
        let error_rate = (p.error_rate * (0.5 * normal(rng)).exp() + extra_errors).clamp(0.0, 1.0);
        let queue = poisson(rng, p.queue * util) + extra_queue;
        let fds = (p.fds + 4.0 * normal(rng)).round().max(3.0) + extra_fds.round();
        let rss = (rss + 0.01 * base_rss * normal(rng)).max(10.0);

        let mut row = [0f32; N_METRICS];
        row[Metric::Cpu.index()] = cpu as f32;
        row[Metric::RssMb.index()] = rss as f32;
        row[Metric::LatencyP50Ms.index()] = p50 as f32;
        row[Metric::LatencyP99Ms.index()] = p99 as f32;
        row[Metric::ErrorRate.index()] = error_rate as f32;
        row[Metric::RequestRate.index()] = rps as f32;
        row[Metric::QueueDepth.index()] = queue as f32;
        row[Metric::OpenFds.index()] = fds as f32;
        row[Metric::Restarts.index()] = self.restarts as f32;
        row
    }
}

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// Steps until the next event of a Poisson process with `per_day` events a day.
fn draw_gap(rng: &mut SimRng, per_day: f64, steps_per_day: f64) -> usize {
    if per_day <= 0.0 {
        return usize::MAX / 2;
    }
    exponential(rng, steps_per_day / per_day).round() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_history_other_seed_differs() {
        let a = generate(&HistoryConfig::new(7, 8, 2.0));
        let b = generate(&HistoryConfig::new(7, 8, 2.0));
        let c = generate(&HistoryConfig::new(8, 8, 2.0));
        let bits = |h: &History| {
            h.agents
                .iter()
                .flat_map(|a| a.rows.iter().flatten().map(|v| v.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(a.failures, b.failures);
        assert_ne!(bits(&a), bits(&c));
    }

    #[test]
    fn failures_have_precursors_rows_go_dark_and_restarts_count() {
        let h = generate(&HistoryConfig::new(3, 12, 5.0));
        assert!(
            h.failures.len() > 10,
            "expected some failures, got {}",
            h.failures.len()
        );
        assert!(h.failures.iter().any(|f| !f.predictable()));
        assert!(h.failures.iter().any(|f| f.predictable()));
        for f in &h.failures {
            let agent = &h.agents[f.agent];
            assert!(
                agent.rows[f.at_step].iter().all(|v| v.is_nan()),
                "row at failure is dark"
            );
            assert!(f.precursor_start <= f.at_step);
            if f.predictable() {
                assert!(f.at_step - f.precursor_start >= 2);
            }
        }
        // Restarts never decrease.
        for a in &h.agents {
            let mut last = 0.0f32;
            for r in a.series(Metric::Restarts).filter(|v| !v.is_nan()) {
                assert!(r >= last);
                last = r;
            }
        }
    }

    #[test]
    fn leak_reaches_the_limit_before_the_crash() {
        let h = generate(&HistoryConfig::new(11, 40, 6.0));
        let leak = h
            .failures
            .iter()
            .find(|f| f.kind == FaultKind::MemoryLeak)
            .expect("a leak in 240 agent-days");
        let agent = &h.agents[leak.agent];
        let before = agent.rows[leak.at_step - 1][Metric::RssMb.index()] as f64;
        let limit = agent.kind.profile().rss_limit_mb;
        assert!(
            before > 0.85 * limit,
            "rss {before} close to limit {limit} just before the OOM"
        );
    }

    #[test]
    fn lookalikes_never_fail_during_their_episode() {
        let h = generate(&HistoryConfig::new(5, 20, 4.0));
        assert!(!h.episodes.is_empty());
        for e in &h.episodes {
            assert!(!h.failures.iter().any(|f| f.agent == e.agent
                && f.at_step > e.start
                && f.at_step < e.end
                && f.precursor_start < e.start));
        }
    }
}
