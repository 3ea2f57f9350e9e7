//! Evaluation on public benchmarks and the metrics they report.

pub mod metrics;
pub mod nab;
pub mod odds;
pub mod smd;
