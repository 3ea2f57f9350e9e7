//! The fault model: what goes wrong, how it shows before it fails, and what fixes it.

use std::fmt;

use medic_core::Strategy;

/// A fault that ends in a failure (or, for the engine simulator, needs healing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Memory grows until the OOM killer ends the process.
    MemoryLeak,
    /// Latency grows until the agent stops answering (hang).
    LatencyCreep,
    /// The error rate rises until the agent crashes.
    ErrorRise,
    /// Work piles up until the queue overflows.
    QueueGrowth,
    /// File descriptors leak until `accept`/`open` fail.
    FdLeak,
    /// A dependency goes away; errors cascade.
    DependencyOutage,
    /// A crash with no warning at all.
    SuddenCrash,
    /// A hang with no warning.
    Hang,
    /// A crash right after every start: nothing fixes it.
    CrashLoop,
    /// Health flips between passing and failing on its own.
    Flapping,
    /// A new version that fails; only rollback fixes it.
    BadDeploy,
    /// A bad configuration value; only repair fixes it.
    BadConfig,
    /// More load than the replicas can take; scaling fixes it.
    Saturation,
    /// A burst of errors (e.g. a flaky upstream); a circuit breaker rides it out.
    ErrorBurst,
}

impl FaultKind {
    /// Kinds with a measurable precursor, used for failure-prediction histories.
    pub const WITH_PRECURSOR: [FaultKind; 6] = [
        FaultKind::MemoryLeak,
        FaultKind::LatencyCreep,
        FaultKind::ErrorRise,
        FaultKind::QueueGrowth,
        FaultKind::FdLeak,
        FaultKind::DependencyOutage,
    ];

    /// Every kind.
    pub const ALL: [FaultKind; 14] = [
        FaultKind::MemoryLeak,
        FaultKind::LatencyCreep,
        FaultKind::ErrorRise,
        FaultKind::QueueGrowth,
        FaultKind::FdLeak,
        FaultKind::DependencyOutage,
        FaultKind::SuddenCrash,
        FaultKind::Hang,
        FaultKind::CrashLoop,
        FaultKind::Flapping,
        FaultKind::BadDeploy,
        FaultKind::BadConfig,
        FaultKind::Saturation,
        FaultKind::ErrorBurst,
    ];

    /// The kind's name.
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::MemoryLeak => "memory_leak",
            FaultKind::LatencyCreep => "latency_creep",
            FaultKind::ErrorRise => "error_rise",
            FaultKind::QueueGrowth => "queue_growth",
            FaultKind::FdLeak => "fd_leak",
            FaultKind::DependencyOutage => "dependency_outage",
            FaultKind::SuddenCrash => "sudden_crash",
            FaultKind::Hang => "hang",
            FaultKind::CrashLoop => "crash_loop",
            FaultKind::Flapping => "flapping",
            FaultKind::BadDeploy => "bad_deploy",
            FaultKind::BadConfig => "bad_config",
            FaultKind::Saturation => "saturation",
            FaultKind::ErrorBurst => "error_burst",
        }
    }

    /// Parses a kind name.
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the fault shows itself in the metrics before the failure.
    pub fn has_precursor(self) -> bool {
        FaultKind::WITH_PRECURSOR.contains(&self)
    }

    /// Whether the fault lives in one instance (its process or host state) rather than in
    /// what every replica shares (load, version, configuration, an upstream): leaks, creeping
    /// latency, rising errors, a crash, a hang, flapping.
    pub fn instance_local(self) -> bool {
        matches!(
            self,
            FaultKind::MemoryLeak
                | FaultKind::LatencyCreep
                | FaultKind::ErrorRise
                | FaultKind::FdLeak
                | FaultKind::SuddenCrash
                | FaultKind::Hang
                | FaultKind::Flapping
        )
    }

    /// Whether carrying out `strategy` on the faulty target ends the fault.
    ///
    /// The model: a restart (and anything stronger that replaces the process) clears state
    /// that lives in the process — leaks, creeping latency, rising errors, a hang — but not a
    /// bad configuration or a bad version; rollback fixes a bad deploy; repair fixes a bad
    /// configuration; scaling fixes saturation and queue growth; a circuit breaker rides out a
    /// burst of errors or a dependency outage; rerouting (ejecting the instance from its
    /// group's traffic; the platform replaces it out of band) ends an
    /// [instance-local](FaultKind::instance_local) fault for the service; nothing fixes a
    /// crash loop.
    pub fn fixed_by(self, strategy: Strategy) -> bool {
        use Strategy::*;
        let replaces_process = matches!(strategy, Restart | Reset | Recreate | Rollback);
        if strategy == Reroute {
            return self.instance_local();
        }
        match self {
            FaultKind::MemoryLeak
            | FaultKind::LatencyCreep
            | FaultKind::ErrorRise
            | FaultKind::FdLeak
            | FaultKind::SuddenCrash
            | FaultKind::Hang => replaces_process,
            FaultKind::QueueGrowth | FaultKind::Saturation => matches!(strategy, Scale),
            FaultKind::DependencyOutage | FaultKind::ErrorBurst => matches!(strategy, CircuitBreak),
            FaultKind::Flapping => matches!(strategy, Reset | Recreate),
            FaultKind::BadDeploy => matches!(strategy, Rollback),
            FaultKind::BadConfig => matches!(strategy, Repair),
            FaultKind::CrashLoop => false,
        }
    }

    /// The strategy that fixes the fault most directly, if any (for reports and tests).
    pub fn remedy(self) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| self.fixed_by(*s))
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Episodes that look like trouble but never fail: a model must not alarm on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lookalike {
    /// Request rate jumps 2–3.5× for a while; CPU, latency and queue follow, then recover.
    LoadSpike,
    /// A planned restart: one minute down, a restart counted, memory reset, a short error blip.
    DeployRestart,
    /// Garbage-collection pauses: p99 spikes and memory saws up and down.
    SlowGc,
    /// Caches warming: memory rises by a third, then plateaus well below the limit.
    CacheWarmup,
}

impl Lookalike {
    /// Every look-alike.
    pub const ALL: [Lookalike; 4] = [
        Lookalike::LoadSpike,
        Lookalike::DeployRestart,
        Lookalike::SlowGc,
        Lookalike::CacheWarmup,
    ];

    /// The episode's name.
    pub const fn name(self) -> &'static str {
        match self {
            Lookalike::LoadSpike => "load_spike",
            Lookalike::DeployRestart => "deploy_restart",
            Lookalike::SlowGc => "slow_gc",
            Lookalike::CacheWarmup => "cache_warmup",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_is_fixed_by_nothing_and_leaks_by_restart_not_repair() {
        assert!(
            Strategy::ALL
                .iter()
                .all(|s| !FaultKind::CrashLoop.fixed_by(*s))
        );
        assert!(FaultKind::MemoryLeak.fixed_by(Strategy::Restart));
        assert!(!FaultKind::BadConfig.fixed_by(Strategy::Restart));
        assert!(FaultKind::BadConfig.fixed_by(Strategy::Repair));
        assert!(FaultKind::BadDeploy.fixed_by(Strategy::Rollback));
        assert!(!FaultKind::BadDeploy.fixed_by(Strategy::Restart));
        assert!(FaultKind::Saturation.fixed_by(Strategy::Scale));
    }

    #[test]
    fn reroute_ends_instance_local_faults_only() {
        assert!(FaultKind::SuddenCrash.fixed_by(Strategy::Reroute));
        assert!(FaultKind::MemoryLeak.fixed_by(Strategy::Reroute));
        for k in [
            FaultKind::BadConfig,
            FaultKind::BadDeploy,
            FaultKind::Saturation,
            FaultKind::QueueGrowth,
            FaultKind::ErrorBurst,
            FaultKind::DependencyOutage,
            FaultKind::CrashLoop,
        ] {
            assert!(!k.fixed_by(Strategy::Reroute), "{k}");
        }
    }

    #[test]
    fn names_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(k.name()), Some(k));
        }
    }
}
