//! Agent types and their normal behaviour.

use std::fmt;

/// The kinds of agent in a simulated fleet. Each has its own load, latency and memory profile,
/// so that a model cannot learn one set of absolute thresholds for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentKind {
    /// A multi-agent orchestrator: moderate load, slow requests, large memory.
    CrewAi,
    /// An autonomous agent loop: bursty CPU, large memory.
    AutoGpt,
    /// A static-analysis worker: CPU-heavy, short-lived requests.
    Semgrep,
    /// A generic queue worker: high request rate, fast requests, a real queue.
    Worker,
}

impl AgentKind {
    /// All kinds, in the order fleets cycle through them.
    pub const ALL: [AgentKind; 4] = [
        AgentKind::CrewAi,
        AgentKind::AutoGpt,
        AgentKind::Semgrep,
        AgentKind::Worker,
    ];

    /// The kind's name (also the `type` label, which picks the tier).
    pub const fn name(self) -> &'static str {
        match self {
            AgentKind::CrewAi => "crewai",
            AgentKind::AutoGpt => "autogpt",
            AgentKind::Semgrep => "semgrep",
            AgentKind::Worker => "worker",
        }
    }

    /// Parses a kind name.
    pub fn parse(name: &str) -> Option<AgentKind> {
        AgentKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind's normal behaviour.
    pub const fn profile(self) -> Profile {
        match self {
            AgentKind::CrewAi => Profile {
                rps: 12.0,
                latency_ms: 450.0,
                rss_mb: 900.0,
                rss_limit_mb: 2048.0,
                cpu_base: 0.15,
                cpu_per_rps: 0.025,
                fds: 180.0,
                fd_limit: 1024.0,
                queue: 2.0,
                queue_cap: 200.0,
                error_rate: 0.004,
            },
            AgentKind::AutoGpt => Profile {
                rps: 4.0,
                latency_ms: 1200.0,
                rss_mb: 1400.0,
                rss_limit_mb: 3072.0,
                cpu_base: 0.3,
                cpu_per_rps: 0.08,
                fds: 120.0,
                fd_limit: 1024.0,
                queue: 1.0,
                queue_cap: 100.0,
                error_rate: 0.008,
            },
            AgentKind::Semgrep => Profile {
                rps: 25.0,
                latency_ms: 180.0,
                rss_mb: 350.0,
                rss_limit_mb: 768.0,
                cpu_base: 0.1,
                cpu_per_rps: 0.03,
                fds: 60.0,
                fd_limit: 512.0,
                queue: 3.0,
                queue_cap: 300.0,
                error_rate: 0.002,
            },
            AgentKind::Worker => Profile {
                rps: 80.0,
                latency_ms: 35.0,
                rss_mb: 220.0,
                rss_limit_mb: 512.0,
                cpu_base: 0.05,
                cpu_per_rps: 0.006,
                fds: 90.0,
                fd_limit: 1024.0,
                queue: 8.0,
                queue_cap: 1000.0,
                error_rate: 0.001,
            },
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Normal behaviour of an agent kind at average load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// Mean requests per second.
    pub rps: f64,
    /// Median latency in milliseconds.
    pub latency_ms: f64,
    /// Resident memory in MiB.
    pub rss_mb: f64,
    /// Memory limit in MiB (the OOM killer strikes here).
    pub rss_limit_mb: f64,
    /// CPU at zero load (fraction of a core).
    pub cpu_base: f64,
    /// CPU per request per second.
    pub cpu_per_rps: f64,
    /// Open file descriptors.
    pub fds: f64,
    /// File descriptor limit.
    pub fd_limit: f64,
    /// Mean queue depth.
    pub queue: f64,
    /// Queue capacity (overflow fails the agent).
    pub queue_cap: f64,
    /// Background error rate.
    pub error_rate: f64,
}
