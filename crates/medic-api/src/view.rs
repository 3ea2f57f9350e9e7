//! The read side: the snapshot of the fleet that the daemon rewrites and the API serves.

use std::collections::VecDeque;

use medic_core::{HealthState, Severity, Strategy, TargetId, Timestamp};
use medic_orchestrator::{ActionId, ApprovalId, MaintenanceScope};
use medic_strategy::AttemptResult;
use serde::{Deserialize, Serialize};

/// Points kept per [`History`]: two minutes of one-second probes, or two hours of minutes.
pub const HISTORY_LEN: usize = 120;

/// Actions kept by an [`ActionLog`].
pub const ACTIONS_KEPT: usize = 200;

/// Everything the API shows: rewritten by the daemon (under the write lock, briefly), read by
/// the handlers (which serialize under the read lock and release it before answering).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    /// The daemon's clock when it last wrote the view; the dashboard shows ages relative to
    /// this, not to the browser's clock.
    pub now: Timestamp,
    /// Every target of the fleet, in fleet order.
    pub targets: Vec<TargetView>,
    /// Incidents not yet closed.
    pub incidents: Vec<IncidentView>,
    /// The latest actions, oldest first.
    pub actions: ActionLog,
    /// Mean time to recovery over the incidents healed so far (seconds), if any were.
    pub mttr_seconds: Option<f64>,
    /// How many incidents the MTTR is computed over.
    pub healed: u64,
    /// Maintenance windows in force.
    pub maintenance: Vec<MaintenanceView>,
    /// Options waiting for a human's decision.
    pub approvals: Vec<ApprovalView>,
    /// What the daemon learned from verified outcomes (read-only).
    #[serde(default)]
    pub learned: LearnedView,
}

/// The daemon's learner, read-only: where it started from and the verified successes and
/// attempts of each strategy per failure signature (or signature cluster).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LearnedView {
    /// Where the learner started, in words (a model file, or none) and how much of the
    /// journal it replayed.
    pub source: String,
    /// Verified outcomes observed since the daemon started (the replay included).
    pub observed: u64,
    /// The counts, by key then strategy.
    pub rates: Vec<LearnedRow>,
}

/// One strategy's record on one signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnedRow {
    /// The signature key (`sig:category|anomaly|features|levels|tier`) or `cluster:N`.
    pub key: String,
    /// The strategy.
    pub strategy: Strategy,
    /// Verified successes.
    pub successes: u32,
    /// Attempts with a verified outcome.
    pub attempts: u32,
}

impl FleetView {
    /// The target called `name`, if the fleet has one.
    pub fn target(&self, name: &str) -> Option<&TargetView> {
        self.targets.iter().find(|t| t.name.as_str() == name)
    }

    /// The target called `name`, for updating in place.
    pub fn target_mut(&mut self, name: &str) -> Option<&mut TargetView> {
        self.targets.iter_mut().find(|t| t.name.as_str() == name)
    }
}

/// One target as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetView {
    /// Its name in `fleet.yaml`.
    pub name: TargetId,
    /// Its tier.
    pub tier: String,
    /// Its combined health.
    pub state: HealthState,
    /// The latest finding that was not plain "healthy", if any.
    pub last_finding: Option<FindingSummary>,
    /// Recent anomaly scores (in `[0, 1]` for the isolation forest, higher is stranger).
    pub anomaly: History,
    /// Recent predicted failure probabilities, in `[0, 1]`.
    pub probability: History,
    /// The process id when medic supervises the target.
    pub pid: Option<u32>,
    /// A maintenance window covers the target.
    pub in_maintenance: bool,
    /// Its circuit breaker, once medic has opened it (`None`: never opened).
    #[serde(default)]
    pub circuit: Option<CircuitView>,
    /// The signature key of its open incident, if one is open.
    #[serde(default)]
    pub signature: Option<String>,
    /// What was learned on that signature, one row per strategy (empty: nothing yet).
    #[serde(default)]
    pub learned: Vec<LearnedRow>,
    /// Why its latest finding failed, by the error patterns: category, confidence, the
    /// pattern that matched best and the matching lines (`None`: no known cause). Goes with
    /// `last_finding`.
    #[serde(default)]
    pub diagnosis: Option<medic_core::DiagnosisFinding>,
}

/// A target's circuit breaker as the daemon last set it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitView {
    /// Where it is: `{"state": "open", "until": …}`, `{"state": "half_open"}` or
    /// `{"state": "closed"}`.
    pub breaker: medic_strategy::BreakerState,
    /// When it got there.
    pub since: Timestamp,
    /// Times it opened, re-opens after a failed half-open probe included.
    pub opened: u32,
}

impl TargetView {
    /// A target with no data yet: state unknown, empty histories.
    pub fn new(name: TargetId, tier: impl Into<String>) -> Self {
        TargetView {
            name,
            tier: tier.into(),
            state: HealthState::Unknown,
            last_finding: None,
            anomaly: History::default(),
            probability: History::default(),
            pid: None,
            in_maintenance: false,
            circuit: None,
            signature: None,
            learned: Vec::new(),
            diagnosis: None,
        }
    }
}

/// A finding reduced to what a person reads in a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindingSummary {
    /// When it was made.
    pub at: Timestamp,
    /// How bad.
    pub severity: Severity,
    /// One line, e.g. `liveness failing: connection refused`.
    pub summary: String,
}

/// One point of a [`History`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When.
    pub at: Timestamp,
    /// The value.
    pub value: f64,
}

/// The last [`HISTORY_LEN`] values of a series, oldest first (for sparklines).
///
/// Invariant: never longer than [`HISTORY_LEN`]; pushing onto a full history drops the oldest
/// point, so memory per target is bounded however long the daemon runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History(VecDeque<Point>);

impl History {
    /// Appends a point, dropping the oldest when full. Non-finite values are skipped (a
    /// sparkline cannot draw them and JSON cannot carry them).
    pub fn push(&mut self, at: Timestamp, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.0.len() == HISTORY_LEN {
            self.0.pop_front();
        }
        self.0.push_back(Point { at, value });
    }

    /// The newest point.
    pub fn last(&self) -> Option<Point> {
        self.0.back().copied()
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The points, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Point> + '_ {
        self.0.iter().copied()
    }
}

/// Where an open incident stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Detected, nothing started yet (queued, cooling down, or in maintenance).
    Open,
    /// An action is running or being verified.
    Healing,
    /// An option waits for approval.
    AwaitingApproval,
    /// Handed to a human; the engine holds off.
    Escalated,
}

/// An incident that is not closed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    /// The daemon's incident id.
    pub id: u64,
    /// The target.
    pub target: TargetId,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// Its worst severity so far.
    pub severity: Severity,
    /// One line on what is wrong.
    pub summary: String,
    /// Where it stands.
    pub status: IncidentStatus,
    /// Actions tried so far.
    pub attempts: u32,
    /// The latest diagnosis of the incident's evidence by the error patterns (`None`: no
    /// known cause).
    #[serde(default)]
    pub diagnosis: Option<medic_core::DiagnosisFinding>,
}

/// One action, running or finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionView {
    /// The engine's action id.
    pub id: ActionId,
    /// The target.
    pub target: TargetId,
    /// The strategy carried out; `None` for a fallback.
    pub strategy: Option<Strategy>,
    /// How it ended (`pending` while it runs).
    pub outcome: AttemptResult,
    /// When its intent was journaled.
    pub started_at: Timestamp,
    /// From intent to close, once closed (milliseconds).
    pub duration_ms: Option<u64>,
    /// Why it was chosen.
    pub reason: String,
    /// Decided but not executed.
    pub dry_run: bool,
    /// The last lines the action printed (stdout then stderr, or an http action's response
    /// body), capped by the daemon at a few KiB; empty while it runs.
    #[serde(default)]
    pub output: Vec<String>,
}

/// The latest [`ACTIONS_KEPT`] actions, oldest first.
///
/// Invariant: never longer than [`ACTIONS_KEPT`]; the full history lives in the journal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionLog(VecDeque<ActionView>);

impl ActionLog {
    /// Records a new action, dropping the oldest when full.
    pub fn push(&mut self, action: ActionView) {
        if self.0.len() == ACTIONS_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(action);
    }

    /// The kept action with this id, for updating its outcome and duration.
    pub fn get_mut(&mut self, id: ActionId) -> Option<&mut ActionView> {
        // Newest first: the action being updated is almost always a recent one.
        self.0.iter_mut().rev().find(|a| a.id == id)
    }

    /// Number of actions kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no action is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The actions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &ActionView> + '_ {
        self.0.iter()
    }
}

/// A maintenance window in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceView {
    /// The id `DELETE /api/v1/maintenance/{id}` takes.
    pub id: u64,
    /// Where it applies.
    pub scope: MaintenanceScope,
    /// When it ends on its own.
    pub until: Timestamp,
    /// Why, as given by whoever set it.
    pub reason: String,
}

/// An option waiting for a human's decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    /// The id `POST /api/v1/approvals/{id}` takes.
    pub id: ApprovalId,
    /// The target.
    pub target: TargetId,
    /// What would be done.
    pub strategy: Strategy,
    /// Why it needs approval and why it was chosen.
    pub reason: String,
    /// When it escalates instead.
    pub deadline: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let mut h = History::default();
        for i in 0..(HISTORY_LEN as u64 + 30) {
            h.push(Timestamp::from_secs(i), i as f64);
        }
        h.push(Timestamp::from_secs(999), f64::NAN);
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h.iter().next().map(|p| p.value), Some(30.0));
        assert_eq!(h.last().map(|p| p.value), Some(HISTORY_LEN as f64 + 29.0));
    }

    #[test]
    fn action_log_is_bounded_and_updatable() {
        let mut log = ActionLog::default();
        for i in 0..(ACTIONS_KEPT as u64 + 5) {
            log.push(ActionView {
                id: ActionId(i),
                target: TargetId::new("a"),
                strategy: Some(Strategy::Restart),
                outcome: AttemptResult::Pending,
                started_at: Timestamp::from_secs(i),
                duration_ms: None,
                reason: String::new(),
                dry_run: false,
                output: Vec::new(),
            });
        }
        assert_eq!(log.len(), ACTIONS_KEPT);
        assert!(log.get_mut(ActionId(0)).is_none());
        let a = log.get_mut(ActionId(100)).expect("kept");
        a.outcome = AttemptResult::Success;
        assert_eq!(
            log.iter()
                .find(|a| a.id == ActionId(100))
                .map(|a| a.outcome),
            Some(AttemptResult::Success)
        );
    }
}
