//! Probe levels and the health state they combine into.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a probe checks, from "is it alive at all" to "are the things it needs alive".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeLevel {
    /// The target answers at all (process alive, port open, `/health` 2xx).
    Liveness,
    /// The target is willing to take work (`/ready`).
    Readiness,
    /// Latency, error rate and queue depth are within the policy's limits.
    Performance,
    /// RSS, CPU and open file descriptors are within the policy's limits.
    Resources,
    /// The targets in `depends_on` are healthy.
    Dependencies,
}

impl ProbeLevel {
    /// All levels, in order of importance.
    pub const ALL: [ProbeLevel; 5] = [
        ProbeLevel::Liveness,
        ProbeLevel::Readiness,
        ProbeLevel::Performance,
        ProbeLevel::Resources,
        ProbeLevel::Dependencies,
    ];

    /// The level's name as written in configuration and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProbeLevel::Liveness => "liveness",
            ProbeLevel::Readiness => "readiness",
            ProbeLevel::Performance => "performance",
            ProbeLevel::Resources => "resources",
            ProbeLevel::Dependencies => "dependencies",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for ProbeLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of probe levels, stored as bits (no allocation).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LevelSet(u8);

impl LevelSet {
    /// The empty set.
    pub const EMPTY: LevelSet = LevelSet(0);

    /// Adds a level.
    pub fn insert(&mut self, level: ProbeLevel) {
        self.0 |= level.bit();
    }

    /// Removes a level.
    pub fn remove(&mut self, level: ProbeLevel) {
        self.0 &= !level.bit();
    }

    /// Whether `level` is in the set.
    pub const fn contains(self, level: ProbeLevel) -> bool {
        self.0 & level.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The levels in the set, in [`ProbeLevel::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = ProbeLevel> {
        ProbeLevel::ALL
            .into_iter()
            .filter(move |l| self.contains(*l))
    }
}

impl FromIterator<ProbeLevel> for LevelSet {
    fn from_iter<I: IntoIterator<Item = ProbeLevel>>(iter: I) -> Self {
        let mut s = LevelSet::EMPTY;
        for l in iter {
            s.insert(l);
        }
        s
    }
}

impl fmt::Debug for LevelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for LevelSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for LevelSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let levels = Vec::<ProbeLevel>::deserialize(d)?;
        Ok(levels.into_iter().collect())
    }
}

/// How a target is doing, as decided from its probe levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Every level with data passes.
    Healthy,
    /// Alive, but readiness, performance, resources or dependencies fail.
    Degraded,
    /// Liveness fails.
    Unhealthy,
    /// No level has reached a verdict yet.
    Unknown,
}

impl HealthState {
    /// Combines per-level verdicts into one state.
    ///
    /// `known` holds the levels that have reached a verdict (their failure or success
    /// threshold was crossed at least once); `failing` the subset of those that currently fail.
    /// The rule:
    /// 1. nothing known → [`HealthState::Unknown`];
    /// 2. liveness failing → [`HealthState::Unhealthy`];
    /// 3. any other level failing → [`HealthState::Degraded`];
    /// 4. otherwise [`HealthState::Healthy`].
    pub fn combine(known: LevelSet, failing: LevelSet) -> HealthState {
        if known.is_empty() {
            HealthState::Unknown
        } else if failing.contains(ProbeLevel::Liveness) {
            HealthState::Unhealthy
        } else if !failing.is_empty() {
            HealthState::Degraded
        } else {
            HealthState::Healthy
        }
    }

    /// The state's name as printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeLevel::*;

    #[test]
    fn combine_follows_documented_rule() {
        let set = |l: &[ProbeLevel]| l.iter().copied().collect::<LevelSet>();
        assert_eq!(
            HealthState::combine(LevelSet::EMPTY, LevelSet::EMPTY),
            HealthState::Unknown
        );
        assert_eq!(
            HealthState::combine(set(&[Liveness]), set(&[Liveness])),
            HealthState::Unhealthy
        );
        assert_eq!(
            HealthState::combine(set(&[Liveness, Readiness]), set(&[Readiness])),
            HealthState::Degraded
        );
        assert_eq!(
            HealthState::combine(set(&[Liveness, Performance]), LevelSet::EMPTY),
            HealthState::Healthy
        );
    }

    #[test]
    fn level_set_round_trips_through_json() {
        let s: LevelSet = [Readiness, Dependencies].into_iter().collect();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"["readiness","dependencies"]"#);
        assert_eq!(serde_json::from_str::<LevelSet>(&json).unwrap(), s);
    }
}
