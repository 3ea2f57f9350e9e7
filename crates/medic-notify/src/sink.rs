//! Where notifications go: a generic JSON [`WebhookSink`] and an [`AlertmanagerSink`], and
//! [`deliver`], one delivery with bounded retries.
//!
//! Every request runs under one deadline covering connect, request and response, and at most
//! [`RESPONSE_CAP`] bytes of a response are read: a receiver is not trusted to answer quickly
//! or briefly. Header values and URL paths may hold secrets (tokens, webhook keys), so a
//! sink's [`Sink::name`] and Debug output show only the URL's origin and header names, and
//! transport errors are kept without their URL.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::dedup::Status;
use crate::notification::Notification;
use crate::{Error, redact_url};

/// Bytes of a receiver's response read at most (the rest is not read).
pub const RESPONSE_CAP: usize = 4 * 1024;

/// How one delivery is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Tries at most (at least 1).
    pub attempts: u32,
    /// Deadline of one try.
    pub timeout: Duration,
    /// Wait before the second try; doubled before each further one.
    pub backoff: Duration,
}

impl Retry {
    /// 3 tries, 5 s each, waiting 0.5 s then 1 s between them.
    pub fn standard() -> Self {
        Retry {
            attempts: 3,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(500),
        }
    }
}

/// Why one try failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No complete response within the try's deadline.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection could not be made.
    #[error("connect failed")]
    Connect(#[source] reqwest::Error),
    /// The request or its response broke off.
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// The receiver answered with a non-2xx status.
    #[error("status {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the response body (at most 200 characters).
        body: String,
    },
    /// The notification could not be encoded.
    #[error("could not encode the notification")]
    Encode(#[source] serde_json::Error),
    /// The sink's queue was full and the notification was dropped (see
    /// [`crate::Notifier`]).
    #[error("queue full ({0} waiting), notification dropped")]
    QueueFull(usize),
    /// The sink's worker is gone (the notifier is shutting down).
    #[error("sink worker stopped, notification dropped")]
    Stopped,
}

impl DeliveryError {
    /// Whether another try may succeed: timeouts, connection and transport failures, 5xx,
    /// 408 and 429. Other 4xx answers and encoding errors are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Timeout(_) | DeliveryError::Connect(_) | DeliveryError::Request(_) => {
                true
            }
            DeliveryError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            DeliveryError::Encode(_) | DeliveryError::QueueFull(_) | DeliveryError::Stopped => {
                false
            }
        }
    }
}

/// A generic JSON webhook: each notification is POSTed as its JSON ([`Notification`]'s serde
/// form) with `Content-Type: application/json` and the configured headers.
#[derive(Clone)]
pub struct WebhookSink {
    url: reqwest::Url,
    headers: HeaderMap,
}

impl WebhookSink {
    /// A webhook to `url` (`http` or `https`) sending `headers` with every request.
    pub fn new(url: &str, headers: &BTreeMap<String, String>) -> Result<Self, Error> {
        let url = parse_http_url(url)?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::InvalidHeader { name: name.clone() })?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidHeader { name: name.clone() })?;
            // Keeps the value out of reqwest's and http's Debug output.
            value.set_sensitive(true);
            map.insert(header, value);
        }
        Ok(WebhookSink { url, headers: map })
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(n).map_err(DeliveryError::Encode)?;
        let request = client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        send_capped(request, timeout).await
    }
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &redact_url(self.url.as_str()))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// An Alertmanager: each notification is POSTed to `{base}/api/v2/alerts` as a one-alert JSON
/// array (see [`AlertmanagerSink::alerts`]).
#[derive(Clone)]
pub struct AlertmanagerSink {
    alerts_url: reqwest::Url,
    generator_url: Option<String>,
}

impl AlertmanagerSink {
    /// An Alertmanager at `base_url` (e.g. `http://127.0.0.1:9093`); `generator_url`, when
    /// given, is every alert's link back to medic.
    pub fn new(base_url: &str, generator_url: Option<&str>) -> Result<Self, Error> {
        let base = parse_http_url(base_url)?;
        let alerts_url = reqwest::Url::parse(&format!(
            "{}/api/v2/alerts",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|source| Error::InvalidUrl {
            url: redact_url(base_url),
            reason: source.to_string(),
        })?;
        if let Some(g) = generator_url {
            parse_http_url(g)?;
        }
        Ok(AlertmanagerSink {
            alerts_url,
            generator_url: generator_url.map(str::to_owned),
        })
    }

    /// The request body for `n`: a JSON array of one alert, with labels `alertname`
    /// (`MedicEscalation`, `MedicApprovalRequested`, `MedicDegraded`, `MedicHealed`),
    /// `target`, `tier`, `severity` and `medic_incident` (the incident id, so that the
    /// resolution matches the firing alert and a later incident is a new alert); annotations
    /// `summary` and `description`; `startsAt`; `endsAt` when resolved; `generatorURL` when
    /// configured.
    ///
    /// A firing alert carries no `endsAt`: Alertmanager then resolves it by itself after its
    /// `resolve_timeout` (5 minutes by default) unless it is posted again.
    pub fn alerts(&self, n: &Notification) -> Value {
        let mut labels = Map::new();
        labels.insert("alertname".into(), n.kind.alertname().into());
        labels.insert("target".into(), n.target.as_str().into());
        if !n.tier.is_empty() {
            labels.insert("tier".into(), n.tier.as_str().into());
        }
        labels.insert("severity".into(), json!(n.severity));
        labels.insert("medic_incident".into(), n.id.as_str().into());
        let mut alert = Map::new();
        alert.insert("labels".into(), Value::Object(labels));
        alert.insert(
            "annotations".into(),
            json!({ "summary": n.summary, "description": n.description }),
        );
        alert.insert("startsAt".into(), n.starts_at.rfc3339().into());
        if n.status == Status::Resolved {
            let ends = n.ends_at.unwrap_or(n.starts_at);
            alert.insert("endsAt".into(), ends.rfc3339().into());
        }
        if let Some(g) = &self.generator_url {
            alert.insert("generatorURL".into(), g.as_str().into());
        }
        Value::Array(vec![Value::Object(alert)])
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&self.alerts(n)).map_err(DeliveryError::Encode)?;
        let request = client
            .post(self.alerts_url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        send_capped(request, timeout).await
    }
}

impl fmt::Debug for AlertmanagerSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerSink")
            .field("url", &redact_url(self.alerts_url.as_str()))
            .finish_non_exhaustive()
    }
}

/// One configured destination.
#[derive(Clone, Debug)]
pub enum Sink {
    /// A generic JSON webhook.
    Webhook(WebhookSink),
    /// An Alertmanager.
    Alertmanager(AlertmanagerSink),
}

impl Sink {
    /// A name for logs and reports: the kind and the URL's origin only (`webhook
    /// http://127.0.0.1:8080`), never its path, query or credentials.
    pub fn name(&self) -> String {
        match self {
            Sink::Webhook(w) => format!("webhook {}", redact_url(w.url.as_str())),
            Sink::Alertmanager(a) => {
                format!("alertmanager {}", redact_url(a.alerts_url.as_str()))
            }
        }
    }

    /// One try: POSTs `n` within `timeout`.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        match self {
            Sink::Webhook(w) => w.send(client, n, timeout).await,
            Sink::Alertmanager(a) => a.send(client, n, timeout).await,
        }
    }
}

/// The result of delivering one notification to one sink.
#[derive(Debug)]
pub struct DeliveryReport {
    /// The sink's [`Sink::name`].
    pub sink: String,
    /// The notification's incident id.
    pub id: String,
    /// Firing or resolved.
    pub status: Status,
    /// Tries made (0 when it was dropped before any).
    pub tries: u32,
    /// `Ok` when a try was answered with 2xx; else the last try's error.
    pub result: Result<(), DeliveryError>,
}

/// Delivers `n` to `sink`: up to `retry.attempts` tries while the error is retryable
/// ([`DeliveryError::is_retryable`]), waiting `retry.backoff`, doubled each time, between them.
pub async fn deliver(
    sink: &Sink,
    client: &reqwest::Client,
    n: &Notification,
    retry: Retry,
) -> DeliveryReport {
    let mut tries = 0;
    let mut wait = retry.backoff;
    let result = loop {
        tries += 1;
        match sink.send(client, n, retry.timeout).await {
            Ok(()) => break Ok(()),
            Err(e) if e.is_retryable() && tries < retry.attempts.max(1) => {
                tracing::debug!(sink = %sink.name(), id = %n.id, try_ = tries, error = %e, "notification delivery failed, retrying");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
            Err(e) => break Err(e),
        }
    };
    DeliveryReport {
        sink: sink.name(),
        id: n.id.clone(),
        status: n.status,
        tries,
        result,
    }
}

fn parse_http_url(url: &str) -> Result<reqwest::Url, Error> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::InvalidUrl {
        url: redact_url(url),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: format!("scheme {} is not http or https", parsed.scheme()),
        });
    }
    Ok(parsed)
}

async fn send_capped(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let exchange = async {
        let mut response = request.send().await.map_err(|e| {
            if e.is_connect() {
                DeliveryError::Connect(e.without_url())
            } else {
                DeliveryError::Request(e.without_url())
            }
        })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| DeliveryError::Request(e.without_url()))?
        {
            let room = RESPONSE_CAP - body.len();
            if chunk.len() >= room {
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            Ok(())
        } else {
            let body: String = String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(200)
                .collect();
            Err(DeliveryError::Status { status, body })
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_elapsed) => Err(DeliveryError::Timeout(timeout)),
    }
}
