//! What has been tried on one target lately, and how it went.

use std::collections::VecDeque;

use medic_core::{Strategy, Timestamp};
use serde::{Deserialize, Serialize};

/// How one attempt ended, as far as is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// Started, not finished yet.
    Pending,
    /// Verified healthy afterwards.
    Success,
    /// The action failed or verification found the target still failing.
    Failure,
    /// Verification could not decide.
    Unknown,
    /// Not executed (dry run): holds the strategy's cooldown in the engine, but is no attempt
    /// for attempt limits ([`crate::executed_since`]).
    Skipped,
}

/// One attempt of one strategy on one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attempt {
    /// What was tried.
    pub strategy: Strategy,
    /// When it was decided (the time of its journal intent).
    pub at: Timestamp,
    /// How it ended.
    pub result: AttemptResult,
}

/// The recent attempts on one target, oldest first, bounded by [`AttemptHistory::CAPACITY`].
///
/// Bounded so that memory per target is fixed: when full, the oldest attempt is forgotten.
/// Attempt limits are small (a handful per window), so the bound only matters for targets
/// that have been acted on far more often than any policy allows within one window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptHistory {
    attempts: VecDeque<Attempt>,
    /// Failures before this belong to an earlier incident (see [`AttemptHistory::end_incident`]).
    #[serde(default)]
    incident_start: Timestamp,
}

impl AttemptHistory {
    /// Attempts kept per target: enough for any `max_restart_attempts` validation allows.
    pub const CAPACITY: usize = medic_policy::MAX_COUNTED as usize;

    /// An empty history.
    pub fn new() -> Self {
        AttemptHistory::default()
    }

    /// Records a new pending attempt.
    pub fn record(&mut self, strategy: Strategy, at: Timestamp) {
        if self.attempts.len() == Self::CAPACITY {
            self.attempts.pop_front();
        }
        self.attempts.push_back(Attempt {
            strategy,
            at,
            result: AttemptResult::Pending,
        });
    }

    /// Sets the result of the most recent pending attempt of `strategy`; false if none.
    pub fn resolve(&mut self, strategy: Strategy, result: AttemptResult) -> bool {
        match self
            .attempts
            .iter_mut()
            .rev()
            .find(|a| a.strategy == strategy && a.result == AttemptResult::Pending)
        {
            Some(a) => {
                a.result = result;
                true
            }
            None => false,
        }
    }

    /// The attempts, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Attempt> {
        self.attempts.iter()
    }

    /// The number of attempts kept.
    pub fn len(&self) -> usize {
        self.attempts.len()
    }

    /// Whether nothing was tried.
    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }

    /// The most recent attempt.
    pub fn last(&self) -> Option<&Attempt> {
        self.attempts.back()
    }

    /// Attempts of `strategy` decided at or after `since`, whatever their result.
    pub fn count_since(&self, strategy: Strategy, since: Timestamp) -> u32 {
        self.count_matching_since(|s| s == strategy, since)
    }

    /// Attempts whose strategy satisfies `pred`, decided at or after `since`.
    pub fn count_matching_since(&self, pred: impl Fn(Strategy) -> bool, since: Timestamp) -> u32 {
        let n = self
            .attempts
            .iter()
            .rev()
            .take_while(|a| a.at >= since)
            .filter(|a| pred(a.strategy))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// When the last successful attempt was decided.
    pub fn last_success(&self) -> Option<Timestamp> {
        self.attempts
            .iter()
            .rev()
            .find(|a| a.result == AttemptResult::Success)
            .map(|a| a.at)
    }

    /// When `strategy` last failed in the current incident: after the last success, after
    /// [`AttemptHistory::end_incident`], and at or after `since`.
    pub fn failed_since_success(&self, strategy: Strategy, since: Timestamp) -> Option<Timestamp> {
        let since = since.max(self.incident_start);
        self.attempts
            .iter()
            .rev()
            .take_while(|a| a.at >= since && a.result != AttemptResult::Success)
            .find(|a| a.strategy == strategy && a.result == AttemptResult::Failure)
            .map(|a| a.at)
    }

    /// Ends the current incident at `at` without a successful attempt (the target recovered,
    /// or an operator took over): earlier failures no longer climb the ladder. Attempt counts
    /// per window are unaffected.
    pub fn end_incident(&mut self, at: Timestamp) {
        self.incident_start = self.incident_start.max(at);
    }

    /// Forgets attempts decided before `before`.
    pub fn prune(&mut self, before: Timestamp) {
        while self.attempts.front().is_some_and(|a| a.at < before) {
            self.attempts.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_windows_and_incidents() {
        let mut h = AttemptHistory::new();
        h.record(Strategy::Restart, Timestamp::from_secs(10));
        assert!(h.resolve(Strategy::Restart, AttemptResult::Success));
        h.record(Strategy::Restart, Timestamp::from_secs(100));
        h.resolve(Strategy::Restart, AttemptResult::Failure);
        h.record(Strategy::Reset, Timestamp::from_secs(200));
        assert_eq!(h.count_since(Strategy::Restart, Timestamp::ZERO), 2);
        assert_eq!(
            h.count_since(Strategy::Restart, Timestamp::from_secs(11)),
            1
        );
        assert_eq!(
            h.failed_since_success(Strategy::Restart, Timestamp::ZERO),
            Some(Timestamp::from_secs(100))
        );
        assert_eq!(
            h.failed_since_success(Strategy::Restart, Timestamp::from_secs(101)),
            None
        );
        assert!(!h.resolve(Strategy::Scale, AttemptResult::Failure));
        h.prune(Timestamp::from_secs(150));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn capacity_is_bounded() {
        let mut h = AttemptHistory::new();
        for i in 0..100 {
            h.record(Strategy::Restart, Timestamp::from_secs(i));
        }
        assert_eq!(h.len(), AttemptHistory::CAPACITY);
        assert_eq!(
            h.iter().next().map(|a| a.at),
            Some(Timestamp::from_secs(68))
        );
    }
}
