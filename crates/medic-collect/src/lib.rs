//! Collection: probes (http, tcp, process, exec), the tolerant Prometheus text parser,
//! /proc resource readings and the scheduler that drives them.
//!
//! Main types: [`probe::Prober`] runs one check (http, tcp, process, exec) within its own
//! timeout and gives a [`medic_core::ProbeOutcome`]; [`scheduler::Scheduler`] runs every probe
//! of a fleet periodically and sends [`scheduler::ProbeReport`]s on a channel;
//! [`health::FleetHealth`] turns reports into a [`medic_core::HealthState`] per target under
//! each probe's thresholds; [`check::check_fleet`] is one round of everything (`medic check`);
//! [`http::fetch_capped`] is the one way a target's HTTP body is read.
//!
//! Invariants: one slow or hanging target never delays another (each probe run is its own
//! task with its own timeout, under a global concurrency limit); a target's answer never
//! costs more than the body cap in memory; probes report a verdict, never an error.

pub mod check;
pub mod health;
pub mod http;
pub mod probe;
pub mod procfs;
pub mod prom;
pub mod scheduler;
pub mod scrape;
