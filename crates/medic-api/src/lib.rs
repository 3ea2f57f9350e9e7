//! medic's HTTP API and dashboard.
//!
//! The daemon owns the truth; this crate shows it and forwards requests to change it. It does
//! not depend on the daemon (the daemon depends on it) and has exactly two seams with it:
//!
//! - **Read side**: a [`FleetView`] behind `Arc<RwLock<_>>` that the daemon rewrites (targets
//!   with state, last finding and bounded [`History`] sparklines, open incidents, the latest
//!   actions, MTTR, maintenance windows, pending approvals). Handlers serialize under the read
//!   lock and never hold it across an `.await`.
//! - **Write side**: an `mpsc` channel of [`ApiRequest`]s (maintenance, end of maintenance,
//!   approval, Alertmanager alerts), each with a `oneshot` reply the HTTP response waits for
//!   (at most [`REPLY_TIMEOUT`], then 503). The daemon turns them into engine events.
//!
//! Endpoints ([`router`]):
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /` | the dashboard (one self-contained HTML page, refreshes every 2 s) |
//! | `GET /health` | 200 `{"status":"ok"}` while the process serves |
//! | `GET /ready` | 200 once [`ApiState::set_ready`]`(true)`, else 503 |
//! | `GET /metrics` | Prometheus text format 0.0.4 (names in [`names`]) |
//! | `GET /api/v1/fleet` | the whole [`FleetView`] |
//! | `GET /api/v1/targets`, `/api/v1/targets/{name}` | [`TargetView`]s; 404 for an unknown name |
//! | `GET /api/v1/incidents`, `/actions`, `/maintenance`, `/approvals` | the lists of the view |
//! | `GET /api/v1/learned` | the [`LearnedView`]: success counts per signature and strategy |
//! | `POST /api/v1/maintenance` | `{"target"|"tier": …, "duration": "10m" or seconds, "reason"}` → 201 `{"id"}` |
//! | `DELETE /api/v1/maintenance/{id}` | ends a window → 200 |
//! | `POST /api/v1/approvals/{id}` | `{"decision": "approve"|"deny"}` → 200 |
//! | `POST /api/v1/alerts/alertmanager` | Alertmanager webhook v4 → `{"received","without_target","from_medic","matched"}` |
//!
//! Invariants:
//! - Every `POST`/`DELETE` requires `Authorization: Bearer <token>`, compared in constant
//!   time ([`constant_time_eq`]); missing or wrong → 401 with `WWW-Authenticate: Bearer`. With
//!   no token configured they answer 403: changes are never open to anyone who can connect.
//! - The token is a [`Secret`]: it prints as `***` and is never logged.
//! - Bodies over [`BODY_LIMIT`] → 413; a body that is not the expected JSON → 400 with serde's
//!   reason in `{"error": …}`. Every error body is `{"error": "<what was wrong>"}`.
//! - [`DEFAULT_LISTEN`] is loopback. The crate binds whatever listener it is handed, so a
//!   non-loopback address is always the operator's explicit choice ([`serve`] logs a warning).
//! - Memory is bounded however long the daemon runs: [`HISTORY_LEN`] points per series,
//!   [`ACTIONS_KEPT`] actions.

pub mod alertmanager;
mod auth;
mod request;
mod routes;
mod telemetry;
mod view;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use auth::{Secret, TOKEN_ENV, constant_time_eq, token_from};
pub use request::{ApiRequest, ExternalAlert, MAX_MAINTENANCE, Rejection, parse_duration};
pub use routes::{BODY_LIMIT, REPLY_TIMEOUT, router};
pub use telemetry::{
    HEALING_BUCKETS, PROBE_BUCKETS, install_metrics, names, record_action, record_prediction_alarm,
    record_probe, set_anomaly, set_mttr, set_prediction, set_queue_depth, set_target_states,
};
pub use view::{
    ACTIONS_KEPT, ActionLog, ActionView, ApprovalView, CircuitView, FindingSummary, FleetView,
    HISTORY_LEN, History, IncidentStatus, IncidentView, LearnedRow, LearnedView, MaintenanceView,
    Point, TargetView,
};

/// Where the API listens unless told otherwise: loopback, port 9797.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9797));

/// How often [`serve`] runs the metrics recorder's upkeep besides every `GET /metrics`.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token file could not be read.
    #[error("cannot read the API token file {}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds only whitespace.
    #[error("the API token file {} is empty", path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// The server stopped with an I/O error.
    #[error("the HTTP API server failed")]
    Serve(#[source] std::io::Error),
}

/// Everything the handlers share. Cheap to clone (one `Arc`); the daemon keeps a clone to
/// flip readiness.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    view: Arc<RwLock<FleetView>>,
    requests: mpsc::Sender<ApiRequest>,
    token: Option<Secret>,
    ready: AtomicBool,
    metrics: PrometheusHandle,
}

impl ApiState {
    /// State over the daemon's `view`, sending mutations on `requests`. With `token: None`
    /// every mutating endpoint answers 403. Not ready until [`ApiState::set_ready`].
    pub fn new(
        view: Arc<RwLock<FleetView>>,
        requests: mpsc::Sender<ApiRequest>,
        token: Option<Secret>,
        metrics: PrometheusHandle,
    ) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                view,
                requests,
                token,
                ready: AtomicBool::new(false),
                metrics,
            }),
        }
    }

    /// Sets what `GET /ready` answers (the daemon: true once its first probe round is in,
    /// false while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Release);
    }

    /// What `GET /ready` answers.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The view the handlers read.
    pub fn view(&self) -> &Arc<RwLock<FleetView>> {
        &self.inner.view
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("token", &self.inner.token)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// Serves [`router`]`(state)` on `listener` until `shutdown` completes, then finishes the
/// requests in flight and returns. While it serves, the metrics recorder's upkeep runs every
/// [`UPKEEP_EVERY`].
///
/// # Errors
/// [`Error::Serve`] when the server fails with an I/O error.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if let Ok(addr) = listener.local_addr() {
        if addr.ip().is_loopback() {
            tracing::info!(%addr, "HTTP API and dashboard listening");
        } else {
            tracing::warn!(%addr, "HTTP API listening beyond loopback: anyone who can reach it can read the fleet");
        }
    }
    // Histogram samples wait in the recorder until upkeep drains them into buckets; without
    // a scraper they would pile up, so upkeep also runs on a timer while the server lives.
    let metrics = state.inner.metrics.clone();
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    });
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve);
    upkeep.abort();
    result
}
