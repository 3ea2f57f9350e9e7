//! From probe verdicts to a [`HealthState`]: thresholds per probe, levels per target, and the
//! verdicts of the derived levels (performance, resources, dependencies).
//!
//! Pure code: no I/O, no clock, no allocation when a result is recorded.
//!
//! Threshold semantics follow Kubernetes probes: a probe's level is *unknown* until its first
//! verdict; it becomes *failing* after `failure_threshold` consecutive failures and *passing*
//! after `success_threshold` consecutive successes, and then only flips after that many
//! consecutive results of the other kind.

use std::time::Duration;

use medic_core::{HealthState, LevelSet, ProbeLevel};
use medic_policy::{PerformanceLimits, ResourceLimits};

/// The verdict state of one probe under its thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    failure_threshold: u32,
    success_threshold: u32,
    consecutive_failures: u32,
    consecutive_successes: u32,
    verdict: Verdict,
}

/// The current verdict of a thresholded probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No threshold crossed yet.
    Unknown,
    /// The success threshold was crossed last.
    Passing,
    /// The failure threshold was crossed last.
    Failing,
}

impl Threshold {
    /// A fresh state; thresholds of 0 are treated as 1.
    pub fn new(failure_threshold: u32, success_threshold: u32) -> Threshold {
        Threshold {
            failure_threshold: failure_threshold.max(1),
            success_threshold: success_threshold.max(1),
            consecutive_failures: 0,
            consecutive_successes: 0,
            verdict: Verdict::Unknown,
        }
    }

    /// Records one result; returns the new verdict if it changed.
    pub fn record(&mut self, ok: bool) -> Option<Verdict> {
        let before = self.verdict;
        if ok {
            self.consecutive_failures = 0;
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            if self.consecutive_successes >= self.success_threshold {
                self.verdict = Verdict::Passing;
            }
        } else {
            self.consecutive_successes = 0;
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            if self.consecutive_failures >= self.failure_threshold {
                self.verdict = Verdict::Failing;
            }
        }
        (self.verdict != before).then_some(self.verdict)
    }

    /// The current verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Consecutive failures so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

/// The thresholded probes of one target, each at one level.
///
/// Built once per target (one slot per probe, in a fixed order the caller indexes by);
/// recording a result touches one slot and allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    slots: Vec<(ProbeLevel, Threshold)>,
    /// The dependencies level: not thresholded, it follows the dependencies' states.
    dependencies: Verdict,
}

impl TargetHealth {
    /// One slot per `(level, failure_threshold, success_threshold)`, in this order.
    pub fn new(slots: impl IntoIterator<Item = (ProbeLevel, u32, u32)>) -> TargetHealth {
        TargetHealth {
            slots: slots
                .into_iter()
                .map(|(level, f, s)| (level, Threshold::new(f, s)))
                .collect(),
            dependencies: Verdict::Unknown,
        }
    }

    /// Sets the dependencies level (see [`evaluate_dependencies`]; a level without a verdict
    /// is [`Verdict::Unknown`]).
    pub fn set_dependencies(&mut self, verdict: Verdict) {
        self.dependencies = verdict;
    }

    /// The dependencies level.
    pub fn dependencies(&self) -> Verdict {
        self.dependencies
    }

    /// Number of slots.
    pub fn n_slots(&self) -> usize {
        self.slots.len()
    }

    /// Records a result of the probe in slot `slot_idx`; returns its new verdict if it changed,
    /// `None` also when the slot does not exist.
    pub fn record(&mut self, slot_idx: usize, ok: bool) -> Option<Verdict> {
        self.slots.get_mut(slot_idx)?.1.record(ok)
    }

    /// The verdict of slot `slot_idx`.
    pub fn verdict(&self, slot_idx: usize) -> Option<Verdict> {
        self.slots.get(slot_idx).map(|(_, t)| t.verdict())
    }

    /// Levels with a verdict, and the subset that fails. A level with several probes fails
    /// when any of them fails and is known when any of them is.
    pub fn levels(&self) -> (LevelSet, LevelSet) {
        let mut known = LevelSet::EMPTY;
        let mut failing = LevelSet::EMPTY;
        let dependencies = (ProbeLevel::Dependencies, self.dependencies);
        let slots = self.slots.iter().map(|(level, t)| (*level, t.verdict()));
        for (level, verdict) in slots.chain([dependencies]) {
            match verdict {
                Verdict::Unknown => {}
                Verdict::Passing => known.insert(level),
                Verdict::Failing => {
                    known.insert(level);
                    failing.insert(level);
                }
            }
        }
        (known, failing)
    }

    /// The combined state, by [`HealthState::combine`].
    pub fn state(&self) -> HealthState {
        let (known, failing) = self.levels();
        HealthState::combine(known, failing)
    }
}

/// The health of every target of a fleet, fed by scheduler reports.
///
/// Slot `i` of target `t` is `fleet.targets[t].probes[i]`, the indexing of
/// [`crate::scheduler::ProbeReport`]. Recording allocates nothing once warm.
///
/// **Dependencies level.** A target with `depends_on` also has the dependencies level,
/// computed by [`evaluate_dependencies`] from the current states of the targets it names
/// (failing while any of them is unhealthy, unknown while all are unknown). It is not
/// thresholded: the states it follows already are. When a recorded result changes a target's
/// state, the level of every target depending on it is recomputed, transitively (without
/// recursion); the state changes this causes are in [`FleetHealth::cascaded`]. This ends:
/// the dependencies level can make a target degraded but never unhealthy, so the set of
/// unhealthy targets it reads does not move while it spreads, and a target, once known,
/// stays known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetHealth {
    targets: Vec<TargetHealth>,
    /// Per target: the indexes of the targets in its `depends_on` (names of no target
    /// skipped; validation rejects them).
    deps: Vec<Vec<usize>>,
    /// Per target: the indexes of the targets whose `depends_on` names it.
    dependents: Vec<Vec<usize>>,
    /// Targets whose state changed and whose dependents are still to be recomputed.
    pending: Vec<usize>,
    /// State changes of dependents caused by the last [`FleetHealth::record`].
    cascaded: Vec<(usize, StateChange)>,
}

/// A target's combined state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The state before the result.
    pub from: HealthState,
    /// The state after it.
    pub to: HealthState,
}

impl FleetHealth {
    /// Every target starts unknown, with the thresholds of its probes, then one slot for the
    /// performance level (if the target has performance limits) and one for the resources
    /// level (if it has resource limits), as [`crate::scheduler::measures_of`] numbers them,
    /// with the thresholds of the level's schedule (default failure 3, success 1). A target with `depends_on`
    /// also has the dependencies level (no slot; see the type's doc).
    pub fn new(fleet: &medic_policy::Fleet) -> FleetHealth {
        let index: std::collections::HashMap<&str, usize> = fleet
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = fleet
            .targets
            .iter()
            .map(|t| {
                t.depends_on
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut dependents = vec![Vec::new(); fleet.targets.len()];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                if !dependents[d].contains(&i) {
                    dependents[d].push(i);
                }
            }
        }
        FleetHealth {
            deps,
            dependents,
            pending: Vec::new(),
            cascaded: Vec::new(),
            targets: fleet
                .targets
                .iter()
                .map(|t| {
                    let probes = t
                        .probes
                        .iter()
                        .map(|p| (p.level, p.failure_threshold, p.success_threshold));
                    let performance = t.performance.as_ref().map(|l| {
                        let s = l.schedule;
                        (
                            ProbeLevel::Performance,
                            s.failure_threshold,
                            s.success_threshold,
                        )
                    });
                    let resources = t.resources.as_ref().map(|l| {
                        let s = l.schedule;
                        (
                            ProbeLevel::Resources,
                            s.failure_threshold,
                            s.success_threshold,
                        )
                    });
                    TargetHealth::new(probes.chain(performance).chain(resources))
                })
                .collect(),
        }
    }

    /// Records one result; returns the target's state change, if any. The changes this
    /// causes through the dependencies level of other targets are then in
    /// [`FleetHealth::cascaded`].
    pub fn record(&mut self, target_idx: usize, slot: usize, ok: bool) -> Option<StateChange> {
        self.cascaded.clear();
        let target = self.targets.get_mut(target_idx)?;
        let from = target.state();
        target.record(slot, ok)?;
        let to = target.state();
        if from == to {
            return None;
        }
        self.spread(target_idx);
        Some(StateChange { from, to })
    }

    /// The state changes of other targets (index and change, in the order they happened)
    /// that the last [`FleetHealth::record`] caused through their dependencies level.
    pub fn cascaded(&self) -> &[(usize, StateChange)] {
        &self.cascaded
    }

    /// The targets in `target_idx`'s `depends_on` that are unhealthy now: why its
    /// dependencies level fails (empty when it does not).
    pub fn unhealthy_dependencies(&self, target_idx: usize) -> impl Iterator<Item = usize> + '_ {
        self.deps
            .get(target_idx)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&d| self.targets[d].state() == HealthState::Unhealthy)
    }

    /// Recomputes the dependencies level of everything depending on `changed`, transitively.
    fn spread(&mut self, changed: usize) {
        self.pending.clear();
        self.pending.push(changed);
        while let Some(t) = self.pending.pop() {
            for k in 0..self.dependents[t].len() {
                let d = self.dependents[t][k];
                let verdict = self.dependencies_verdict(d);
                let health = &mut self.targets[d];
                if health.dependencies() == verdict {
                    continue;
                }
                let from = health.state();
                health.set_dependencies(verdict);
                let to = health.state();
                if from != to {
                    self.cascaded.push((d, StateChange { from, to }));
                    self.pending.push(d);
                }
            }
        }
    }

    /// [`evaluate_dependencies`] over the current states of `t`'s dependencies, without
    /// building its reason.
    fn dependencies_verdict(&self, t: usize) -> Verdict {
        let mut verdict = Verdict::Unknown;
        for &d in &self.deps[t] {
            match self.targets[d].state() {
                HealthState::Unhealthy => return Verdict::Failing,
                HealthState::Healthy | HealthState::Degraded => verdict = Verdict::Passing,
                HealthState::Unknown => {}
            }
        }
        verdict
    }

    /// The target's health, if the index exists.
    pub fn target(&self, target_idx: usize) -> Option<&TargetHealth> {
        self.targets.get(target_idx)
    }
}

/// The outcome of checking measured values against limits.
#[derive(Clone, Debug, PartialEq)]
pub enum LimitVerdict {
    /// Every limit that could be checked holds.
    Pass,
    /// At least one limit is exceeded; the text names each.
    Fail(String),
    /// None of the configured limits had a value to check.
    NoData,
}

/// Performance values already extracted from a scrape (see the metrics extraction in the
/// scheduler or `medic check`); `None` where the target exposes no such metric.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerformanceReading {
    /// Request latency: p99 when a histogram or summary is exposed, else the mean.
    pub latency: Option<Duration>,
    /// Fraction of requests that failed.
    pub error_rate: Option<f64>,
    /// Current queue depth.
    pub queue_depth: Option<f64>,
}

/// Checks a performance reading against the limits.
pub fn evaluate_performance(
    limits: &PerformanceLimits,
    reading: &PerformanceReading,
) -> LimitVerdict {
    let mut checked = false;
    let mut problems = Vec::new();
    if let (Some(max), Some(v)) = (limits.max_latency, reading.latency) {
        checked = true;
        if v > max {
            problems.push(format!("latency {v:?} above {max:?}"));
        }
    }
    if let (Some(max), Some(v)) = (limits.max_error_rate, reading.error_rate) {
        checked = true;
        if v.is_nan() || v > max {
            problems.push(format!("error rate {v:.4} above {max}"));
        }
    }
    if let (Some(max), Some(v)) = (limits.max_queue_depth, reading.queue_depth) {
        checked = true;
        if v.is_nan() || v > max {
            problems.push(format!("queue depth {v} above {max}"));
        }
    }
    verdict_of(checked, problems)
}

/// Resource values of a target's process; `cpu` is `None` until two samples exist.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ResourceReading {
    /// Resident memory in bytes.
    pub rss_bytes: Option<u64>,
    /// CPU as a fraction of one core.
    pub cpu: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
}

/// Checks a resource reading against the limits.
pub fn evaluate_resources(limits: &ResourceLimits, reading: &ResourceReading) -> LimitVerdict {
    let mut checked = false;
    let mut problems = Vec::new();
    if let (Some(max), Some(v)) = (limits.max_rss_bytes, reading.rss_bytes) {
        checked = true;
        if v > max {
            problems.push(format!("rss {v} bytes above {max}"));
        }
    }
    if let (Some(max), Some(v)) = (limits.max_cpu, reading.cpu) {
        checked = true;
        if v > max {
            problems.push(format!("cpu {v:.3} cores above {max}"));
        }
    }
    if let (Some(max), Some(v)) = (limits.max_open_fds, reading.open_fds) {
        checked = true;
        if v > max {
            problems.push(format!("{v} open fds above {max}"));
        }
    }
    verdict_of(checked, problems)
}

fn verdict_of(checked: bool, problems: Vec<String>) -> LimitVerdict {
    if !problems.is_empty() {
        LimitVerdict::Fail(problems.join("; "))
    } else if checked {
        LimitVerdict::Pass
    } else {
        LimitVerdict::NoData
    }
}

/// The dependencies level from the states of the targets in `depends_on`.
///
/// Fails when any dependency is [`HealthState::Unhealthy`] (down); a degraded dependency
/// still serves, so it does not fail its dependents (this keeps one slow database from
/// marking the whole fleet degraded). No verdict while every dependency is unknown, or when
/// there are none.
pub fn evaluate_dependencies<'a>(
    deps: impl IntoIterator<Item = (&'a str, HealthState)>,
) -> LimitVerdict {
    let mut checked = false;
    let mut down = Vec::new();
    for (name, state) in deps {
        match state {
            HealthState::Unknown => {}
            HealthState::Unhealthy => {
                checked = true;
                down.push(name);
            }
            HealthState::Healthy | HealthState::Degraded => checked = true,
        }
    }
    if !down.is_empty() {
        LimitVerdict::Fail(format!("dependency unhealthy: {}", down.join(", ")))
    } else if checked {
        LimitVerdict::Pass
    } else {
        LimitVerdict::NoData
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeLevel::*;

    fn run(t: &mut Threshold, seq: &str) -> Vec<Verdict> {
        seq.chars()
            .map(|c| {
                t.record(c == '+');
                t.verdict()
            })
            .collect()
    }

    #[test]
    fn kubernetes_defaults_failure_3_success_1() {
        use Verdict::*;
        let mut t = Threshold::new(3, 1);
        assert_eq!(t.verdict(), Unknown);
        assert_eq!(
            run(&mut t, "--+---+"),
            [
                Unknown, Unknown, Passing, Passing, Passing, Failing, Passing
            ]
        );
    }

    #[test]
    fn starts_unknown_until_first_crossing() {
        use Verdict::*;
        let mut t = Threshold::new(3, 2);
        assert_eq!(
            run(&mut t, "+-+-+---"),
            [
                Unknown, Unknown, Unknown, Unknown, Unknown, Unknown, Unknown, Failing
            ]
        );
        assert_eq!(run(&mut t, "+-++"), [Failing, Failing, Failing, Passing]);
    }

    #[test]
    fn record_reports_only_changes() {
        let mut t = Threshold::new(2, 1);
        assert_eq!(t.record(true), Some(Verdict::Passing));
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(Verdict::Failing));
        assert_eq!(t.record(false), None);
        assert_eq!(t.consecutive_failures(), 3);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut t = Threshold::new(0, 0);
        assert_eq!(t.record(false), Some(Verdict::Failing));
        assert_eq!(t.record(true), Some(Verdict::Passing));
    }

    #[test]
    fn target_state_follows_levels() {
        let mut h = TargetHealth::new([(Liveness, 1, 1), (Readiness, 2, 1), (Readiness, 1, 1)]);
        assert_eq!(h.state(), HealthState::Unknown);
        h.record(1, false);
        assert_eq!(
            h.state(),
            HealthState::Unknown,
            "readiness needs 2 failures"
        );
        h.record(0, true);
        assert_eq!(h.state(), HealthState::Healthy);
        h.record(2, false);
        assert_eq!(
            h.state(),
            HealthState::Degraded,
            "one failing readiness probe suffices"
        );
        h.record(0, false);
        assert_eq!(h.state(), HealthState::Unhealthy);
        h.record(0, true);
        h.record(2, true);
        assert_eq!(h.state(), HealthState::Healthy);
        assert_eq!(h.record(9, true), None);
    }

    #[test]
    fn fleet_health_reports_state_changes_only() {
        use medic_policy::{Check, Fleet, ProbeSpec, Replicas, Target};
        let spec = |level, f| ProbeSpec {
            level,
            check: Check::Tcp {
                addr: "127.0.0.1:1".into(),
            },
            every: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            failure_threshold: f,
            success_threshold: 1,
        };
        let target = Target {
            name: "a".into(),
            tier: "default".into(),
            labels: Default::default(),
            group: None,
            probes: vec![spec(Liveness, 2), spec(Readiness, 1)],
            performance: None,
            resources: None,
            metrics: None,
            depends_on: vec![],
            actions: Default::default(),
            fallback: None,
            supervise: None,
            startup_delay: Duration::from_secs(5),
            replicas: Replicas {
                initial: 1,
                min: 1,
                max: 1,
            },
        };
        let fleet = Fleet {
            targets: vec![target],
            tiers: Default::default(),
        };
        let mut h = FleetHealth::new(&fleet);
        let change = |from, to| Some(StateChange { from, to });
        use HealthState::*;
        assert_eq!(h.record(0, 0, true), change(Unknown, Healthy));
        assert_eq!(h.record(0, 1, true), None);
        assert_eq!(
            h.record(0, 0, false),
            None,
            "one failure is under the threshold"
        );
        assert_eq!(h.record(0, 0, false), change(Healthy, Unhealthy));
        assert_eq!(h.record(0, 1, false), None, "still unhealthy");
        assert_eq!(h.record(0, 0, true), change(Unhealthy, Degraded));
        assert_eq!(h.record(1, 0, true), None, "no such target");
        assert_eq!(h.target(0).unwrap().state(), Degraded);
    }

    fn plain_target(name: &str, probes: usize, depends_on: &[&str]) -> medic_policy::Target {
        use medic_policy::{Check, ProbeSpec, Replicas, Target};
        let spec = ProbeSpec {
            level: Liveness,
            check: Check::Tcp {
                addr: "127.0.0.1:1".into(),
            },
            every: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            failure_threshold: 1,
            success_threshold: 1,
        };
        Target {
            name: name.into(),
            tier: "default".into(),
            labels: Default::default(),
            group: None,
            probes: vec![spec; probes],
            performance: None,
            resources: None,
            metrics: None,
            depends_on: depends_on.iter().map(|d| (*d).into()).collect(),
            actions: Default::default(),
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

    #[test]
    fn dependencies_level_follows_the_dependencies_states() {
        use HealthState::*;
        let fleet = medic_policy::Fleet {
            targets: vec![
                plain_target("web", 0, &["app"]),
                plain_target("app", 1, &["db"]),
                plain_target("db", 1, &[]),
            ],
            tiers: Default::default(),
        };
        let (web, app, db) = (0, 1, 2);
        let mut h = FleetHealth::new(&fleet);
        let change = |from, to| StateChange { from, to };
        assert_eq!(h.record(db, 0, true), Some(change(Unknown, Healthy)));
        assert_eq!(
            h.cascaded(),
            [
                (app, change(Unknown, Healthy)),
                (web, change(Unknown, Healthy))
            ],
            "a known dependency makes the dependents' level known, transitively"
        );
        assert_eq!(h.record(app, 0, true), None);
        assert_eq!(h.cascaded(), []);

        assert_eq!(h.record(db, 0, false), Some(change(Healthy, Unhealthy)));
        assert_eq!(
            h.cascaded(),
            [(app, change(Healthy, Degraded))],
            "a degraded dependency still serves: web stays healthy"
        );
        let (_, failing) = h.target(app).unwrap().levels();
        assert_eq!(failing, [Dependencies].into_iter().collect());
        assert_eq!(h.unhealthy_dependencies(app).collect::<Vec<_>>(), [db]);
        assert_eq!(h.target(web).unwrap().state(), Healthy);

        assert_eq!(h.record(app, 0, false), Some(change(Degraded, Unhealthy)));
        assert_eq!(h.cascaded(), [(web, change(Healthy, Degraded))]);
        h.record(app, 0, true);
        assert_eq!(h.cascaded(), [(web, change(Degraded, Healthy))]);
        assert_eq!(h.target(app).unwrap().state(), Degraded, "db still down");
        assert_eq!(h.record(db, 0, true), Some(change(Unhealthy, Healthy)));
        assert_eq!(h.cascaded(), [(app, change(Degraded, Healthy))]);
        assert_eq!(h.unhealthy_dependencies(app).count(), 0);
    }

    #[test]
    fn dependencies_spread_along_a_long_chain_without_recursion() {
        const LEN: usize = 20_000;
        let names: Vec<String> = (0..LEN).map(|k| format!("c{k}")).collect();
        let targets = (0..LEN)
            .map(|k| match names.get(k + 1) {
                Some(next) => plain_target(&names[k], 0, &[next.as_str()]),
                None => plain_target(&names[k], 1, &[]),
            })
            .collect();
        let fleet = medic_policy::Fleet {
            targets,
            tiers: Default::default(),
        };
        let mut h = FleetHealth::new(&fleet);
        h.record(LEN - 1, 0, true);
        assert_eq!(h.cascaded().len(), LEN - 1);
        assert!((0..LEN).all(|i| h.target(i).unwrap().state() == HealthState::Healthy));
    }

    #[test]
    fn performance_limits() {
        let limits = PerformanceLimits {
            max_latency: Some(Duration::from_millis(500)),
            max_error_rate: Some(0.05),
            max_queue_depth: None,
            schedule: medic_policy::LevelSchedule::PERFORMANCE_DEFAULT,
        };
        let ok = PerformanceReading {
            latency: Some(Duration::from_millis(100)),
            error_rate: Some(0.01),
            queue_depth: Some(1e9),
        };
        assert_eq!(evaluate_performance(&limits, &ok), LimitVerdict::Pass);
        let bad = PerformanceReading {
            latency: Some(Duration::from_millis(900)),
            error_rate: Some(0.2),
            queue_depth: None,
        };
        let LimitVerdict::Fail(why) = evaluate_performance(&limits, &bad) else {
            panic!("expected failure");
        };
        assert!(
            why.contains("latency") && why.contains("error rate"),
            "{why}"
        );
        assert_eq!(
            evaluate_performance(&limits, &PerformanceReading::default()),
            LimitVerdict::NoData
        );
    }

    #[test]
    fn resource_limits() {
        let limits = ResourceLimits {
            max_rss_bytes: Some(1000),
            max_cpu: Some(0.5),
            max_open_fds: Some(10),
            schedule: medic_policy::LevelSchedule::RESOURCES_DEFAULT,
        };
        let r = ResourceReading {
            rss_bytes: Some(999),
            cpu: None,
            open_fds: Some(11),
        };
        assert_eq!(
            evaluate_resources(&limits, &r),
            LimitVerdict::Fail("11 open fds above 10".into())
        );
        let r = ResourceReading {
            open_fds: Some(10),
            ..r
        };
        assert_eq!(evaluate_resources(&limits, &r), LimitVerdict::Pass);
    }

    #[test]
    fn dependencies_fail_only_on_unhealthy() {
        use HealthState::*;
        assert_eq!(
            evaluate_dependencies([("db", Healthy), ("cache", Degraded)]),
            LimitVerdict::Pass
        );
        assert_eq!(
            evaluate_dependencies([("db", Unhealthy), ("cache", Unknown)]),
            LimitVerdict::Fail("dependency unhealthy: db".into())
        );
        assert_eq!(
            evaluate_dependencies([("db", Unknown)]),
            LimitVerdict::NoData
        );
        assert_eq!(evaluate_dependencies([]), LimitVerdict::NoData);
    }
}
