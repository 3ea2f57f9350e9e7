//! medic's shared vocabulary.
//!
//! Every other crate speaks in these types: who a target is ([`TargetId`]), what time it is
//! ([`Clock`], [`Timestamp`]), what was seen ([`Observation`]), how a target is doing
//! ([`HealthState`]), what the detectors concluded ([`Finding`]), and what can be done about it
//! ([`Strategy`], [`Plan`], [`Outcome`]).
//!
//! Invariants: this crate does no I/O, spawns nothing and does not depend on tokio. The only
//! place in medic that reads the wall clock is [`SystemClock`]; everything else receives time
//! as a [`Timestamp`] argument so that decisions can be replayed in virtual time.

mod clock;
mod finding;
mod health;
mod id;
mod observation;
mod plan;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use finding::{
    AnomalyFinding, AnomalyKind, DiagnosisCategory, DiagnosisFinding, Finding, PredictionFinding,
    Severity,
};
pub use health::{HealthState, LevelSet, ProbeLevel};
pub use id::TargetId;
pub use observation::{MetricSample, Observation, ProbeKind, ProbeOutcome, ProbeResult};
pub use plan::{Outcome, Plan, PlanOption, Risk, Strategy};
