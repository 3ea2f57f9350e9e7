//! What can be done about a finding: strategies, plans and outcomes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::TargetId;

/// A recovery strategy. The escalation ladder is restart → reset → recreate → rollback → escalate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Stop and start the target.
    Restart,
    /// Clear its state, then restart.
    Reset,
    /// Replace it with a new instance.
    Recreate,
    /// Change the number of replicas.
    Scale,
    /// Stop sending it work for a while (open → half-open → closed).
    CircuitBreak,
    /// Go back to the previous version.
    Rollback,
    /// Eject one instance of a group from traffic.
    Reroute,
    /// Run a configured fix (rewrite a config value, free disk, …).
    Repair,
    /// Hand it to a human with the full context.
    Escalate,
    /// Record and watch; do nothing.
    Observe,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 10] = [
        Strategy::Restart,
        Strategy::Reset,
        Strategy::Recreate,
        Strategy::Scale,
        Strategy::CircuitBreak,
        Strategy::Rollback,
        Strategy::Reroute,
        Strategy::Repair,
        Strategy::Escalate,
        Strategy::Observe,
    ];

    /// The escalation ladder, in order.
    pub const LADDER: [Strategy; 5] = [
        Strategy::Restart,
        Strategy::Reset,
        Strategy::Recreate,
        Strategy::Rollback,
        Strategy::Escalate,
    ];

    /// The next rung of the escalation ladder after `self`, if `self` is on it.
    pub fn next_rung(self) -> Option<Strategy> {
        let i = Strategy::LADDER.iter().position(|s| *s == self)?;
        Strategy::LADDER.get(i + 1).copied()
    }

    /// The strategy's name as written in policies and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::Restart => "restart",
            Strategy::Reset => "reset",
            Strategy::Recreate => "recreate",
            Strategy::Scale => "scale",
            Strategy::CircuitBreak => "circuit_break",
            Strategy::Rollback => "rollback",
            Strategy::Reroute => "reroute",
            Strategy::Repair => "repair",
            Strategy::Escalate => "escalate",
            Strategy::Observe => "observe",
        }
    }

    /// Parses a name as written by [`Strategy::as_str`].
    pub fn parse(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much harm an option can do if it is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Safe to run automatically.
    Low,
    /// Interrupts work or changes capacity.
    Medium,
    /// Changes versions, data or configuration.
    High,
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        })
    }
}

/// One ranked option of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanOption {
    /// What to do.
    pub strategy: Strategy,
    /// Confidence that it will heal the target, in `[0, 1]`.
    pub confidence: f64,
    /// How much harm it can do.
    pub risk: Risk,
    /// Conditions that must hold before it runs, in words.
    pub preconditions: Vec<String>,
    /// Why this option, in words a human can check.
    pub reason: String,
    /// For [`Strategy::Scale`]: the desired replica count.
    pub replicas: Option<u32>,
}

/// The ranked options for one target; the first is the one to try.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The target.
    pub target: TargetId,
    /// Options, best first. Empty means nothing to do.
    pub options: Vec<PlanOption>,
}

impl Plan {
    /// The first option, if any.
    pub fn best(&self) -> Option<&PlanOption> {
        self.options.first()
    }
}

/// How an action ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum Outcome {
    /// The action ran and verification found the target healthy.
    Success,
    /// The action failed, or verification found the target still failing.
    Failure(String),
    /// Verification could not decide within its deadline.
    Unknown,
    /// The action was not run (dry run, maintenance, budget).
    Skipped(String),
}

impl Outcome {
    /// The outcome's name as printed and used in metric labels.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure(_) => "failure",
            Outcome::Unknown => "unknown",
            Outcome::Skipped(_) => "skipped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_climbs_to_escalate_and_stops() {
        let mut s = Strategy::Restart;
        let mut seen = vec![s];
        while let Some(next) = s.next_rung() {
            seen.push(next);
            s = next;
        }
        assert_eq!(seen, Strategy::LADDER);
        assert_eq!(Strategy::Scale.next_rung(), None);
    }

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
        }
        assert_eq!(Strategy::parse("reboot"), None);
    }
}
