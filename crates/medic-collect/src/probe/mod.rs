//! Active probes: http, tcp, process and exec, each bounded by its own timeout.
//!
//! A probe never returns an error: whatever goes wrong with the target (refused, hung,
//! garbage, a missing binary) is the target's verdict, [`ProbeOutcome::Failed`] with a reason
//! or [`ProbeOutcome::TimedOut`].

mod exec;
mod http;
mod process;
mod tcp;

use std::sync::Arc;
use std::time::Duration;

use medic_core::{Clock, ProbeKind, ProbeOutcome, ProbeResult, TargetId};
use medic_policy::{Check, ProbeSpec, ProcessSelector};

pub use exec::{ExecError, ExecOutput, MAX_EXEC_OUTPUT_BYTES, run_exec};
pub(crate) use http::error_chain;
pub use process::check_process;

/// Looks up the pid of a target's supervised process (implemented by the supervisor).
pub trait SupervisedPids: Send + Sync {
    /// The pid of `target`'s supervised process, if it is running.
    fn pid_of(&self, target: &TargetId) -> Option<u32>;
}

/// What probes share: the HTTP client, the body cap and the supervisor's pids.
#[derive(Clone)]
pub struct Prober {
    client: reqwest::Client,
    max_body_bytes: usize,
    supervised: Option<Arc<dyn SupervisedPids>>,
}

impl Prober {
    /// A prober using `client` for HTTP and capping bodies at `max_body_bytes`.
    pub fn new(client: reqwest::Client, max_body_bytes: usize) -> Prober {
        Prober {
            client,
            max_body_bytes,
            supervised: None,
        }
    }

    /// A prober with the shared client and the default 1 MiB body cap.
    pub fn with_defaults() -> Result<Prober, crate::http::HttpError> {
        Ok(Prober::new(
            crate::http::client()?,
            crate::http::DEFAULT_MAX_BODY_BYTES,
        ))
    }

    /// Resolves [`ProcessSelector::Supervised`] through `pids`.
    pub fn with_supervised_pids(mut self, pids: Arc<dyn SupervisedPids>) -> Prober {
        self.supervised = Some(pids);
        self
    }

    /// The pid of `target`'s supervised process: `None` when there is no supervisor to ask
    /// (`medic check`), `Some(None)` when the supervisor runs no process for it.
    pub fn supervised_pid(&self, target: &TargetId) -> Option<Option<u32>> {
        self.supervised.as_ref().map(|s| s.pid_of(target))
    }

    /// The HTTP client (shared with metric scrapes).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Runs `check` once for `target` within `timeout`; returns the verdict and the latency.
    ///
    /// The latency of a timed-out probe is the timeout.
    pub async fn run_check(
        &self,
        target: &TargetId,
        check: &Check,
        timeout: Duration,
    ) -> (ProbeOutcome, Duration) {
        // Latency is a measurement for reports, not a decision input, so tokio's monotonic
        // clock is used (it is also the one a paused test runtime controls).
        let started = tokio::time::Instant::now();
        let outcome = match check {
            // exec enforces its own deadline so that it can kill the process group.
            Check::Exec { argv } => exec::exec_probe(argv, timeout).await,
            _ => match tokio::time::timeout(timeout, self.run_unbounded(target, check)).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => ProbeOutcome::TimedOut,
            },
        };
        let latency = match outcome {
            ProbeOutcome::TimedOut => timeout,
            _ => started.elapsed(),
        };
        let outcome = match (check, outcome) {
            (
                Check::Http {
                    max_latency: Some(max),
                    ..
                },
                ProbeOutcome::Ok,
            ) if latency > *max => {
                ProbeOutcome::Failed(format!("latency {latency:?} above limit {max:?}"))
            }
            (_, outcome) => outcome,
        };
        (outcome, latency)
    }

    async fn run_unbounded(&self, target: &TargetId, check: &Check) -> ProbeOutcome {
        match check {
            Check::Http {
                url,
                status_min,
                status_max,
                body_contains,
                max_latency: _,
            } => {
                http::http_probe(
                    &self.client,
                    url,
                    (*status_min, *status_max),
                    body_contains.as_deref(),
                    self.max_body_bytes,
                )
                .await
            }
            Check::Tcp { addr } => tcp::tcp_probe(addr).await,
            Check::Process { selector } => match selector {
                ProcessSelector::Supervised => {
                    match self.supervised.as_ref().and_then(|s| s.pid_of(target)) {
                        Some(pid) => process::check_pid(pid),
                        None => ProbeOutcome::Failed("supervised process is not running".into()),
                    }
                }
                other => check_process(other),
            },
            Check::Exec { argv } => {
                // Only reached without a deadline from outside `run_check`; keep a generous one.
                exec::exec_probe(argv, Duration::from_secs(3600)).await
            }
        }
    }

    /// Runs one probe of `target` and stamps the result with `clock`'s start time.
    pub async fn run_probe(
        &self,
        clock: &dyn Clock,
        target: &TargetId,
        spec: &ProbeSpec,
    ) -> ProbeResult {
        let at = clock.now();
        let (outcome, latency) = self.run_check(target, &spec.check, spec.timeout).await;
        ProbeResult {
            target: target.clone(),
            level: spec.level,
            kind: kind_of(&spec.check),
            at,
            latency,
            outcome,
        }
    }
}

/// The [`ProbeKind`] of a check.
pub fn kind_of(check: &Check) -> ProbeKind {
    match check {
        Check::Http { .. } => ProbeKind::Http,
        Check::Tcp { .. } => ProbeKind::Tcp,
        Check::Process { .. } => ProbeKind::Process,
        Check::Exec { .. } => ProbeKind::Exec,
    }
}
