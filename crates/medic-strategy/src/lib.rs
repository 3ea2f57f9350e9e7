//! Pure strategy selection: what to do about a [`Finding`](medic_core::Finding).
//!
//! Given a finding, the target's [`TierPolicy`](medic_policy::TierPolicy) and its recent
//! [`AttemptHistory`], [`select`] returns a ranked [`Plan`](medic_core::Plan): each option with
//! confidence, risk, preconditions and a reason a human can check. Rules come from the
//! policy's `rules` (data, interpreted generically by [`rule_matches`]) and from the built-in
//! semantics documented on [`select`]; repeated failure climbs the escalation ladder
//! (restart → reset → recreate → rollback → escalate). [`needs_approval`] says whether an
//! option may run automatically under the tier's risk and confidence limits. Learned
//! per-signature success rates re-rank options through the [`SuccessRates`] hook; [`learn`]
//! holds medic's one learner ([`Learner`]: failure signatures, their numeric encoding, Beta
//! posterior success per signature or signature cluster and strategy).
//!
//! Also here, because they are pure decision rules the engine applies:
//! - [`hpa`]: the Kubernetes HPA rule with tolerance, scale-down stabilisation, bounds and
//!   backup instances;
//! - [`breaker`]: the circuit breaker state machine (closed / open / half-open).
//!
//! Invariants: no I/O, no clock reads (time is an argument), no tokio; the same inputs always
//! give the same plan. Learned rates never lift an option whose risk is above the tier's
//! auto-approve limit: for such options learning only ever lowers the confidence.

pub mod breaker;
mod history;
pub mod hpa;
pub mod learn;
mod select;

pub use breaker::{BreakerState, CircuitBreaker, Transition};
pub use history::{Attempt, AttemptHistory, AttemptResult};
pub use hpa::{HpaState, hpa_desired};
pub use learn::{IncidentSignature, Learner, SharedLearner, SignatureSpace};
pub use select::{
    Approval, HIGH_ERROR_RATE, LearnedRate, NoLearning, RECYCLE_AT_DEFAULT, ROLLBACK_WINDOW,
    SINK_BELOW, SINK_MIN_ATTEMPTS, SuccessRates, default_risk, executed_since, failed_in_incident,
    is_lone_bad_instance, is_minority_of_group, needs_approval, rule_matches, select, select_with,
    shared_cause,
};
