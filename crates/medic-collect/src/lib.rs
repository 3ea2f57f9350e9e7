//! Collection: probes (http, tcp, process, exec), the tolerant Prometheus text parser,
//! /proc resource readings and the scheduler that drives them.
//!
//! Invariant: one slow or hanging target never delays another.

pub mod check;
pub mod health;
pub mod http;
pub mod probe;
pub mod procfs;
pub mod prom;
pub mod scheduler;
pub mod scrape;
