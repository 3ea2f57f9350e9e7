//! What collection produces: probe results and metric samples.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{ProbeLevel, TargetId, Timestamp};

/// How a probe reaches its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// An HTTP request with an expected status range (and optionally a body substring).
    Http,
    /// A TCP connect.
    Tcp,
    /// A process looked up by pid file or name in `/proc`.
    Process,
    /// A command run as argv (no shell); exit code 0 passes.
    Exec,
    /// Thresholds over scraped metrics (the performance level).
    Metrics,
    /// /proc resource usage against policy limits (the resources level).
    Resources,
    /// The state of the targets in `depends_on` (the dependencies level).
    Dependency,
}

impl ProbeKind {
    /// The kind's name as printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Process => "process",
            ProbeKind::Exec => "exec",
            ProbeKind::Metrics => "metrics",
            ProbeKind::Resources => "resources",
            ProbeKind::Dependency => "dependency",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict of one probe execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "reason")]
pub enum ProbeOutcome {
    /// The probe passed.
    Ok,
    /// The probe ran to completion and the target failed it; the reason says how.
    Failed(String),
    /// The probe did not finish within its timeout.
    TimedOut,
}

impl ProbeOutcome {
    /// Whether the probe passed.
    pub fn is_ok(&self) -> bool {
        matches!(self, ProbeOutcome::Ok)
    }

    /// A human-readable error, or `None` when the probe passed.
    pub fn error(&self) -> Option<String> {
        match self {
            ProbeOutcome::Ok => None,
            ProbeOutcome::Failed(reason) => Some(reason.clone()),
            ProbeOutcome::TimedOut => Some("timed out".to_owned()),
        }
    }
}

/// One probe execution against one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The probed target.
    pub target: TargetId,
    /// The level this probe belongs to.
    pub level: ProbeLevel,
    /// How the target was reached.
    pub kind: ProbeKind,
    /// When the probe started.
    pub at: Timestamp,
    /// How long it took (up to the timeout for a timed-out probe).
    pub latency: Duration,
    /// The verdict.
    pub outcome: ProbeOutcome,
}

/// One metric value of one target at one time, e.g. from a Prometheus scrape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// The target that exposed the metric.
    pub target: TargetId,
    /// The metric name, e.g. `process_resident_memory_bytes`.
    pub name: String,
    /// Label pairs in the order they were exposed.
    pub labels: Vec<(String, String)>,
    /// The value (may be NaN or ±Inf, as Prometheus allows).
    pub value: f64,
    /// When it was sampled (the exposition's timestamp if present, else scrape time).
    pub at: Timestamp,
}

/// Anything collection observed about a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Observation {
    /// A probe result.
    Probe(ProbeResult),
    /// A metric sample.
    Metric(MetricSample),
}

impl Observation {
    /// The target observed.
    pub fn target(&self) -> &TargetId {
        match self {
            Observation::Probe(p) => &p.target,
            Observation::Metric(m) => &m.target,
        }
    }

    /// When it was observed.
    pub fn at(&self) -> Timestamp {
        match self {
            Observation::Probe(p) => p.at,
            Observation::Metric(m) => m.at,
        }
    }
}
