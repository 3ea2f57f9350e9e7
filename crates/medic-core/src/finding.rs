//! What detection concludes about a target: a [`Finding`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{HealthState, LevelSet, ProbeLevel, Strategy, TargetId, Timestamp};

/// How urgent a finding is. Ordered: `Critical` sorts last (highest).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording, not acting on.
    #[default]
    Info,
    /// Degraded, anomalous, or predicted to fail.
    Warning,
    /// Down or failing requests.
    Critical,
}

/// The kind of anomaly, named from the features that contributed most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Latency features dominate.
    Latency,
    /// Error counts or error rate dominate.
    Errors,
    /// Memory or other resource usage dominates (leaks).
    Resource,
    /// Queue depth or CPU saturation dominates.
    Saturation,
    /// Request rate fell away.
    TrafficDrop,
    /// No single family dominates.
    Mixed,
}

impl AnomalyKind {
    /// The kind's name as printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Latency => "latency",
            AnomalyKind::Errors => "errors",
            AnomalyKind::Resource => "resource",
            AnomalyKind::Saturation => "saturation",
            AnomalyKind::TrafficDrop => "traffic_drop",
            AnomalyKind::Mixed => "mixed",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The anomaly detectors' verdict on a target's recent window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyFinding {
    /// Combined anomaly score in `[0, 1]`.
    pub score: f64,
    /// Whether the score crossed the model's decision threshold.
    pub anomalous: bool,
    /// The kind named from the top features.
    pub kind: AnomalyKind,
    /// Feature names with their contribution, largest first (at most a handful).
    pub top_features: Vec<(String, f64)>,
    /// Human-readable reason, e.g. "rss_slope 4.1σ above training mean".
    pub reason: String,
}

/// The failure predictor's verdict on a target's recent window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionFinding {
    /// Probability that a failure starts within the model's horizon.
    pub probability: f64,
    /// Whether it crossed the model card's threshold.
    pub alarm: bool,
    /// The model's horizon in seconds.
    pub horizon_s: u64,
    /// Contributing features with the drop in probability when each is neutralised, largest first.
    pub factors: Vec<(String, f64)>,
    /// The preemptive action the factors suggest.
    pub recommended: Strategy,
}

/// Root-cause categories of the failure analyzer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisCategory {
    /// KVM, libvirt, hypervisor.
    Virtualization,
    /// DNS, connection refused/reset, unreachable hosts, TLS transport.
    Network,
    /// Disk full, I/O errors, read-only filesystems.
    Storage,
    /// A service the target needs is down or failing.
    ServiceDependency,
    /// Authentication, authorisation, expired certificates or tokens.
    Credential,
    /// OOM, too many open files, CPU starvation.
    ResourceExhaustion,
    /// Bad or missing configuration.
    Configuration,
    /// Operations that exceeded their deadline.
    Timeout,
    /// The world disagrees with what was reported (shadow errors).
    StateMismatch,
    /// Panics, segfaults, aborts, uncaught exceptions.
    Crash,
    /// Nothing matched.
    Unknown,
}

impl DiagnosisCategory {
    /// All categories.
    pub const ALL: [DiagnosisCategory; 11] = [
        DiagnosisCategory::Virtualization,
        DiagnosisCategory::Network,
        DiagnosisCategory::Storage,
        DiagnosisCategory::ServiceDependency,
        DiagnosisCategory::Credential,
        DiagnosisCategory::ResourceExhaustion,
        DiagnosisCategory::Configuration,
        DiagnosisCategory::Timeout,
        DiagnosisCategory::StateMismatch,
        DiagnosisCategory::Crash,
        DiagnosisCategory::Unknown,
    ];

    /// The category's name as written in patterns and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            DiagnosisCategory::Virtualization => "virtualization",
            DiagnosisCategory::Network => "network",
            DiagnosisCategory::Storage => "storage",
            DiagnosisCategory::ServiceDependency => "service_dependency",
            DiagnosisCategory::Credential => "credential",
            DiagnosisCategory::ResourceExhaustion => "resource_exhaustion",
            DiagnosisCategory::Configuration => "configuration",
            DiagnosisCategory::Timeout => "timeout",
            DiagnosisCategory::StateMismatch => "state_mismatch",
            DiagnosisCategory::Crash => "crash",
            DiagnosisCategory::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DiagnosisCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The failure analyzer's best explanation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisFinding {
    /// The most likely root-cause category.
    pub category: DiagnosisCategory,
    /// Confidence in `[0, 1]`.
    pub confidence: f64,
    /// The id of the pattern that matched best, if any.
    pub pattern_id: Option<String>,
    /// The lines that matched.
    pub evidence: Vec<String>,
}

/// Everything detection concluded about one target at one time; the input to strategy
/// selection.
///
/// Optional parts are `None` when that detector has nothing to say (no model, no metrics).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The target.
    pub target: TargetId,
    /// When the finding was made.
    pub at: Timestamp,
    /// Combined health state.
    pub health: HealthState,
    /// Levels currently failing.
    pub failing: LevelSet,
    /// How urgent this is.
    pub severity: Severity,
    /// Utilisation against the scaling target (1.0 = exactly at target), e.g. CPU or queue.
    pub utilization: Option<f64>,
    /// Resident memory as a fraction of the target's memory limit.
    pub memory_ratio: Option<f64>,
    /// Fraction of requests failing over the recent window.
    pub error_rate: Option<f64>,
    /// When the target's version last changed, if known.
    pub version_changed_at: Option<Timestamp>,
    /// Of the target's group (replicas serving the same traffic): (healthy, total).
    pub group_health: Option<(u32, u32)>,
    /// Anomaly detection verdict.
    pub anomaly: Option<AnomalyFinding>,
    /// Failure prediction verdict.
    pub prediction: Option<PredictionFinding>,
    /// Root-cause diagnosis.
    pub diagnosis: Option<DiagnosisFinding>,
}

impl Finding {
    /// A finding with only a health verdict; severity follows from it.
    pub fn from_health(
        target: TargetId,
        at: Timestamp,
        health: HealthState,
        failing: LevelSet,
    ) -> Self {
        let severity = match health {
            HealthState::Unhealthy => Severity::Critical,
            HealthState::Degraded => Severity::Warning,
            HealthState::Healthy | HealthState::Unknown => Severity::Info,
        };
        Finding {
            target,
            at,
            health,
            failing,
            severity,
            utilization: None,
            memory_ratio: None,
            error_rate: None,
            version_changed_at: None,
            group_health: None,
            anomaly: None,
            prediction: None,
            diagnosis: None,
        }
    }

    /// Whether the given level is failing.
    pub fn fails(&self, level: ProbeLevel) -> bool {
        self.failing.contains(level)
    }
}
