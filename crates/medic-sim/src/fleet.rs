//! Fleets for the policy simulator: generated from the tiers, or read from a fleet file.
//!
//! A [`SimFleet`] is what the engine needs ([`EngineTarget`]s and tier policies) plus what the
//! simulated probes need: how long each target's probes take to notice a failure.

use std::collections::BTreeMap;
use std::time::Duration;

use medic_core::{ProbeLevel, Strategy, TargetId};
use medic_orchestrator::EngineTarget;
use medic_policy::{Fleet, Replicas, TierPolicy, validate::matching_tiers};

/// The agent types a generated fleet cycles through: with the shipped policies,
/// crewai/autogpt/bigagi join `critical_agents`, semgrep/shellgpt join `lightweight_agents`
/// and worker stays in `default`.
pub const AGENT_TYPES: [&str; 6] = [
    "crewai", "autogpt", "semgrep", "worker", "shellgpt", "bigagi",
];

/// Replicas per generated group.
pub const GROUP_SIZE: usize = 4;

/// One target as the simulator sees it.
#[derive(Clone, Debug)]
pub struct SimTarget {
    /// What the engine knows.
    pub engine: EngineTarget,
    /// Liveness probe interval × failure threshold: from a crash to the finding.
    pub liveness_delay: Duration,
    /// Metrics interval × the samples a detector needs: from a metric symptom to the finding.
    pub metrics_delay: Duration,
}

/// A fleet to simulate.
#[derive(Clone, Debug)]
pub struct SimFleet {
    /// Targets in a fixed order (indices are used throughout the simulator).
    pub targets: Vec<SimTarget>,
    /// Tier policies by name.
    pub tiers: BTreeMap<String, TierPolicy>,
}

impl SimFleet {
    /// `n` targets generated from `tiers`: agent types cycle through [`AGENT_TYPES`]; target
    /// `i` is named `<type>-<i>` and joins the tier its name matches (else `default`). Every
    /// other block of `6 × GROUP_SIZE` targets forms groups of [`GROUP_SIZE`] replicas of one
    /// type. Every target has an action for every strategy except that every third one
    /// (`i % 3 == 0`) has no `repair` action, so a configuration fault there must be healed
    /// another way (or by a human). Every fifth critical-type target depends on a `worker` with a lower index, and
    /// workers depend on nothing, so `depends_on` is acyclic. Every seventh target has a
    /// fallback. Probes: liveness every 10 s with threshold 3 (30 s to notice), metrics every
    /// 15 s with 4 samples (60 s to notice).
    pub fn generate(n: usize, tiers: BTreeMap<String, TierPolicy>) -> SimFleet {
        let mut targets = Vec::with_capacity(n);
        let mut last_worker: Option<usize> = None;
        for i in 0..n {
            let ty = AGENT_TYPES[i % AGENT_TYPES.len()];
            let name = format!("{ty}-{i}");
            let labels: BTreeMap<String, String> =
                [("type".to_owned(), ty.to_owned())].into_iter().collect();
            let tier = matching_tiers(&name, &labels, &tiers)
                .first()
                .map_or_else(|| "default".to_owned(), |t| (*t).to_owned());
            let block = i / (AGENT_TYPES.len() * GROUP_SIZE);
            let group = block.is_multiple_of(2).then(|| format!("{ty}-g{block}"));
            let critical_type = matches!(ty, "crewai" | "autogpt" | "bigagi");
            let depends_on = match last_worker {
                Some(w) if critical_type && (i / AGENT_TYPES.len()).is_multiple_of(5) => {
                    vec![TargetId::new(format!("worker-{w}"))]
                }
                _ => vec![],
            };
            if ty == "worker" {
                last_worker = Some(i);
            }
            targets.push(SimTarget {
                engine: EngineTarget {
                    name: TargetId::new(name),
                    tier,
                    group,
                    depends_on,
                    has_fallback: i.is_multiple_of(7),
                    startup_delay: Duration::from_secs(5),
                    replicas: Replicas {
                        initial: 2,
                        min: 1,
                        max: 10,
                    },
                    actions: Some(
                        Strategy::ALL
                            .into_iter()
                            .filter(|s| *s != Strategy::Repair || !i.is_multiple_of(3))
                            .collect(),
                    ),
                },
                liveness_delay: Duration::from_secs(30),
                metrics_delay: Duration::from_secs(60),
            });
        }
        SimFleet { targets, tiers }
    }

    /// The targets of a validated fleet file, with delays from their probes: the liveness
    /// probe's `every × failure_threshold` (30 s without one), the metrics interval × 4
    /// (60 s without metrics).
    pub fn from_fleet(fleet: &Fleet) -> SimFleet {
        let targets = fleet
            .targets
            .iter()
            .map(|t| {
                let liveness_delay = t
                    .probes
                    .iter()
                    .filter(|p| p.level == ProbeLevel::Liveness)
                    .map(|p| p.every.saturating_mul(p.failure_threshold.max(1)))
                    .min()
                    .unwrap_or(Duration::from_secs(30));
                let metrics_delay = t
                    .metrics
                    .as_ref()
                    .map_or(Duration::from_secs(60), |m| m.every.saturating_mul(4));
                SimTarget {
                    engine: EngineTarget::from_target(t),
                    liveness_delay,
                    metrics_delay,
                }
            })
            .collect();
        SimFleet {
            targets,
            tiers: fleet.tiers.clone(),
        }
    }

    /// Members per tier, for reports.
    pub fn tier_members(&self) -> BTreeMap<String, usize> {
        let mut m: BTreeMap<String, usize> = self.tiers.keys().map(|k| (k.clone(), 0)).collect();
        for t in &self.targets {
            *m.entry(t.engine.tier.clone()).or_default() += 1;
        }
        m
    }
}
