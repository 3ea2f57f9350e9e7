//! The per-minute metrics every simulated agent exposes.

use std::fmt;

/// One simulated metric. The order is the column order of [`crate::history::AgentHistory`]
/// rows and of the CSV files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// CPU use as a fraction of one core.
    Cpu,
    /// Resident memory in MiB.
    RssMb,
    /// Median request latency in milliseconds.
    LatencyP50Ms,
    /// 99th percentile request latency in milliseconds.
    LatencyP99Ms,
    /// Fraction of requests that failed in the minute.
    ErrorRate,
    /// Requests per second.
    RequestRate,
    /// Work items waiting.
    QueueDepth,
    /// Open file descriptors.
    OpenFds,
    /// Restarts so far (a counter: it only grows).
    Restarts,
}

/// How many metrics there are.
pub const N_METRICS: usize = 9;

impl Metric {
    /// All metrics in column order.
    pub const ALL: [Metric; N_METRICS] = [
        Metric::Cpu,
        Metric::RssMb,
        Metric::LatencyP50Ms,
        Metric::LatencyP99Ms,
        Metric::ErrorRate,
        Metric::RequestRate,
        Metric::QueueDepth,
        Metric::OpenFds,
        Metric::Restarts,
    ];

    /// The column name.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::RssMb => "rss_mb",
            Metric::LatencyP50Ms => "latency_p50_ms",
            Metric::LatencyP99Ms => "latency_p99_ms",
            Metric::ErrorRate => "error_rate",
            Metric::RequestRate => "request_rate",
            Metric::QueueDepth => "queue_depth",
            Metric::OpenFds => "open_fds",
            Metric::Restarts => "restarts",
        }
    }

    /// The column index.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Parses a column name.
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
