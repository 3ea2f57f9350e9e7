//! The per-target circuit breaker, as an explicit state machine.
//!
//! ```text
//!            trip(now, d)                       poll(now ≥ until)
//!  Closed ───────────────▶ Open{until=now+d} ─────────────────▶ HalfOpen
//!    ▲                        ▲                                   │
//!    │                        └──── probe failed: Open{now+d} ────┤
//!    └─────────────────────── probe succeeded ────────────────────┘
//! ```
//!
//! - **Closed**: work flows to the target.
//! - **Open**: no work is sent until `until`; the breaker was tripped because the error rate
//!   was high. Tripping an open breaker only extends `until`.
//! - **HalfOpen**: `until` has passed; one probe decides. Success closes the breaker, failure
//!   opens it again for the same duration.
//!
//! Transitions happen only through [`CircuitBreaker::trip`], [`CircuitBreaker::poll`] and
//! [`CircuitBreaker::probe`]; each returns the [`Transition`] it made so the caller can journal it.

use std::time::Duration;

use medic_core::Timestamp;
use serde::{Deserialize, Serialize};

/// Where the breaker is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BreakerState {
    /// Work flows.
    #[default]
    Closed,
    /// No work flows until `until`.
    Open {
        /// When a half-open probe becomes due.
        until: Timestamp,
    },
    /// Waiting for one probe to decide.
    HalfOpen,
}

/// A state change, for the journal and the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
}

/// One target's breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    state: BreakerState,
    duration: Duration,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new() -> Self {
        CircuitBreaker::default()
    }

    /// A breaker restored to a journaled state; `duration` is the open period of re-opens.
    pub fn restore(state: BreakerState, duration: Duration) -> Self {
        CircuitBreaker { state, duration }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether work may be sent (closed, or half-open for the one probe).
    pub fn allows_work(&self) -> bool {
        !matches!(self.state, BreakerState::Open { .. })
    }

    /// Opens the breaker for `duration` from `now` (from any state).
    pub fn trip(&mut self, now: Timestamp, duration: Duration) -> Transition {
        self.duration = duration;
        self.set(BreakerState::Open {
            until: now + duration,
        })
    }

    /// Moves Open → HalfOpen once `until` has passed; `None` when nothing changes.
    pub fn poll(&mut self, now: Timestamp) -> Option<Transition> {
        match self.state {
            BreakerState::Open { until } if now >= until => Some(self.set(BreakerState::HalfOpen)),
            _ => None,
        }
    }

    /// The half-open probe's verdict: success closes, failure re-opens for the last duration.
    /// `None` when the breaker is not half-open (a stale probe changes nothing).
    pub fn probe(&mut self, now: Timestamp, success: bool) -> Option<Transition> {
        if self.state != BreakerState::HalfOpen {
            return None;
        }
        Some(if success {
            self.set(BreakerState::Closed)
        } else {
            self.set(BreakerState::Open {
                until: now + self.duration,
            })
        })
    }

    /// Closes the breaker from any state (a verified heal by another strategy).
    pub fn close(&mut self) -> Option<Transition> {
        (self.state != BreakerState::Closed).then(|| self.set(BreakerState::Closed))
    }

    fn set(&mut self, to: BreakerState) -> Transition {
        let from = self.state;
        self.state = to;
        Transition { from, to }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(60);

    #[test]
    fn documented_transitions() {
        let mut b = CircuitBreaker::new();
        assert!(b.allows_work());
        assert_eq!(b.poll(Timestamp::from_secs(1)), None);
        assert_eq!(
            b.probe(Timestamp::from_secs(1), true),
            None,
            "closed ignores probes"
        );

        let t = b.trip(Timestamp::from_secs(10), D);
        assert_eq!(t.from, BreakerState::Closed);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: Timestamp::from_secs(70)
            }
        );
        assert!(!b.allows_work());
        assert_eq!(b.poll(Timestamp::from_secs(69)), None);
        assert_eq!(
            b.poll(Timestamp::from_secs(70)).map(|t| t.to),
            Some(BreakerState::HalfOpen)
        );
        assert!(b.allows_work());

        // failed probe re-opens for the same duration from the probe time
        b.probe(Timestamp::from_secs(75), false);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: Timestamp::from_secs(135)
            }
        );
        b.poll(Timestamp::from_secs(135));
        assert_eq!(
            b.probe(Timestamp::from_secs(136), true).map(|t| t.to),
            Some(BreakerState::Closed)
        );
        assert_eq!(b.close(), None);
    }
}
