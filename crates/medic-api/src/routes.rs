//! The axum router: handlers, the token check, and the one place errors become responses.

use std::sync::PoisonError;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use medic_orchestrator::ApprovalId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::alertmanager::{Conversion, WebhookPayload};
use crate::request::{ApprovalBody, MaintenanceBody, parse_id};
use crate::{ApiRequest, ApiState, FleetView, Rejection, TOKEN_ENV};

/// Request bodies larger than this are refused with 413 (64 KiB: a maintenance request is a
/// few dozen bytes, a large Alertmanager group a few KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// How long a mutating request waits for the daemon's answer before 503.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

const DASHBOARD: &str = include_str!("../assets/dashboard.html");

/// The router with every endpoint (see the crate docs for the list).
pub fn router(state: ApiState) -> Router {
    let mutating = Router::new()
        .route("/api/v1/maintenance", post(post_maintenance))
        .route("/api/v1/maintenance/{id}", delete(delete_maintenance))
        .route("/api/v1/approvals/{id}", post(post_approval))
        .route("/api/v1/alerts/alertmanager", post(post_alertmanager))
        // route_layer: the token is checked only for routes that exist, and before the body
        // is read, so an unauthenticated client cannot make the server buffer anything.
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/", get(dashboard))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus))
        .route("/api/v1/fleet", get(fleet))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/{name}", get(target))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/actions", get(actions))
        .route("/api/v1/maintenance", get(maintenance))
        .route("/api/v1/approvals", get(approvals))
        .route("/api/v1/learned", get(learned))
        .merge(mutating)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// An error answer: `{"error": message}` with its status.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let status = match r {
            Rejection::NotFound(_) => StatusCode::NOT_FOUND,
            Rejection::Conflict(_) => StatusCode::CONFLICT,
        };
        ApiError::new(status, r.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = json(self.status, &serde_json::json!({ "error": self.message }));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialize an API response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serializes part of the view under the read lock, which is released before the response is
/// sent. A poisoned lock still holds the last complete view the daemon wrote, so it is read.
fn read_view<T: Serialize + ?Sized>(
    state: &ApiState,
    pick: impl FnOnce(&FleetView) -> Option<&T>,
) -> Response {
    let view = state
        .inner
        .view
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    match pick(&view) {
        Some(v) => json(StatusCode::OK, v),
        None => ApiError::new(StatusCode::NOT_FOUND, "no such target").into_response(),
    }
}

async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(secret) = &state.inner.token else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "no API token is configured, so changes through the API are disabled: set {TOKEN_ENV} or give a token file"
            ),
        )
        .into_response();
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    match presented {
        Some(p) if secret.matches(p) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header",
        )
        .into_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then_some(rest)
}

fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// Sends a request to the daemon and waits (at most [`REPLY_TIMEOUT`]) for its answer.
async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<Result<T, Rejection>>) -> ApiRequest,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    let unavailable = |m: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m);
    let exchange = async {
        state
            .inner
            .requests
            .send(make(tx))
            .await
            .map_err(|_| unavailable("the daemon is not accepting requests"))?;
        rx.await
            .map_err(|_| unavailable("the daemon dropped the request"))
    };
    match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(rejection))) => Err(rejection.into()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(unavailable("the daemon did not answer in time")),
    }
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything is inline and same-origin; nothing else may load or run.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DASHBOARD,
    )
        .into_response()
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn ready(State(state): State<ApiState>) -> Response {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &serde_json::json!({ "ready": ready }))
}

async fn prometheus(State(state): State<ApiState>) -> Response {
    // The exporter's docs require upkeep (histogram maintenance) to run periodically; a scrape
    // is the natural period, and nothing else reads the histograms.
    state.inner.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.inner.metrics.render(),
    )
        .into_response()
}

async fn fleet(State(state): State<ApiState>) -> Response {
    read_view(&state, |v| Some(v))
}

async fn targets(State(state): State<ApiState>) -> Response {
    read_view(&state, |v| Some(&v.targets))
}

async fn target(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    read_view(&state, |v| v.target(&name))
}

async fn incidents(State(state): State<ApiState>) -> Response {
    read_view(&state, |v| Some(&v.incidents))
}

async fn actions(State(state): State<ApiState>) -> Response {
    read_view(&state, |v| Some(&v.actions))
}

async fn maintenance(State(state): State<ApiState>) -> Response {
    read_view(&state, |v| Some(&v.maintenance))
}

async fn approvals(State(state): State<ApiState>) -> Response {
    read_view(&state, |v| Some(&v.approvals))
}

async fn learned(State(state): State<ApiState>) -> Response {
    read_view(&state, |v| Some(&v.learned))
}

async fn post_maintenance(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: MaintenanceBody = parse_body(body)?;
    let (scope, duration, reason) = body
        .validate()
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    tracing::info!(?scope, ?duration, %reason, "maintenance requested through the API");
    let id = ask(&state, |reply| ApiRequest::Maintenance {
        scope,
        duration,
        reason,
        reply,
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "id": id, "duration_s": duration.as_secs_f64() }),
    ))
}

async fn delete_maintenance(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, 'm').ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "maintenance ids are numbers, e.g. 3",
        )
    })?;
    tracing::info!(id, "end of maintenance requested through the API");
    ask(&state, |reply| ApiRequest::EndMaintenance { id, reply }).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "id": id, "ended": true }),
    ))
}

async fn post_approval(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, 'p')
        .map(ApprovalId)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "approval ids look like p3 or 3"))?;
    let ApprovalBody { decision } = parse_body(body)?;
    tracing::info!(approval = %id, ?decision, "approval decided through the API");
    ask(&state, |reply| ApiRequest::Approval {
        id,
        decision,
        reply,
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "approval": id.to_string(), "decision": decision }),
    ))
}

async fn post_alertmanager(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let payload: WebhookPayload = parse_body(body)?;
    let Conversion {
        alerts,
        without_target,
        from_medic,
    } = payload.convert();
    let received = payload.alerts.len();
    if without_target > 0 {
        tracing::warn!(
            without_target,
            group = %payload.group_key,
            "alerts without a target, instance or job label skipped"
        );
    }
    let matched = if alerts.is_empty() {
        0
    } else {
        ask(&state, |reply| ApiRequest::Alerts { alerts, reply }).await?
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "received": received,
            "without_target": without_target,
            "from_medic": from_medic,
            "matched": matched,
        }),
    ))
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").into_response()
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
