//! Simulated fleets on a virtual clock.
//!
//! One fault model serves two uses:
//! - [`history`]: years of per-minute metrics for a fleet of agents, with labelled failures,
//!   for training and evaluating the failure predictor and the anomaly models;
//! - the policy simulator, which drives the real healing engine over virtual time and uses
//!   [`fault::FaultKind::fixed_by`] to model what each strategy does to each fault.
//!
//! Everything is seeded: the same seed gives the same history, bit for bit.
//!
//! Invariant: this crate is never a dependency of the daemon's library crates; only the
//! `medic` binary (for `simulate`, `train --from sim`, `eval predict`) and tests use it.

pub mod agent;
pub mod csv;
pub mod fault;
pub mod fleet;
pub mod history;
pub mod metric;
pub mod policy_sim;
mod rng;

pub use agent::AgentKind;
pub use fault::{FaultKind, Lookalike};
pub use history::{AgentHistory, FailureLabel, History, HistoryConfig, generate};
pub use metric::{Metric, N_METRICS};
