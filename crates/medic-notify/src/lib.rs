//! Notifications to people: medic's escalations, approval requests and degradations, sent
//! once per incident to JSON webhooks and Alertmanagers, and resolved when healed.
//!
//! Main types, in the order data flows through them:
//! - [`Notification`]: what people are told, built from the engine's
//!   [`Command::Notify`](medic_orchestrator::Command::Notify) /
//!   [`Command::Escalate`](medic_orchestrator::Command::Escalate)
//!   ([`Notification::from_command`]), or as a [`Notification::healed`] notice.
//! - [`Deduper`]: the pure, sans-IO decision of what is sent, keyed by incident
//!   ([`IncidentKey`]: target + kind) with a cooldown; the rules are in [`dedup`].
//! - [`Sink`]: a [`WebhookSink`] (the notification's JSON) or an [`AlertmanagerSink`]
//!   (`POST {base}/api/v2/alerts`); [`deliver`] makes one delivery with bounded retries.
//! - [`Notifier`]: the deduper in front of one worker task per sink; reports every delivery
//!   result ([`DeliveryReport`]).
//! - [`NotifyConfig`] → [`NotifySettings`]: the daemon's `notify:` configuration.
//!
//! Wiring it into a driver loop:
//!
//! ```no_run
//! # async fn wire(
//! #     commands: &[medic_orchestrator::Command],
//! #     now: medic_core::Timestamp,
//! # ) -> Result<(), medic_notify::Error> {
//! use std::sync::Arc;
//! use medic_notify::{DeliveryReport, Notification, Notifier, NotifyConfig};
//!
//! let config: NotifyConfig =
//!     serde_json::from_str(r#"{"webhooks": [{"url": "http://127.0.0.1:8080/hook"}]}"#).unwrap();
//! let on_report = Arc::new(|r: &DeliveryReport| {
//!     // count r.result.is_ok() per r.sink in metrics; failures are already logged
//! });
//! let mut notifier = Notifier::start(config.validate()?, on_report)?;
//! for command in commands {
//!     if let Some(n) = Notification::from_command(command, |_| "default".to_owned(), now) {
//!         notifier.notify(n, now); // sent, or suppressed as a repeat
//!     }
//! }
//! notifier.resolve_target(&medic_core::TargetId::new("web"), now); // healthy again
//! notifier.tick(now); // every few seconds
//! notifier.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! Invariants:
//! - Within the cooldown an open incident is sent at most once; each sent firing gets at most
//!   one resolution, and a resolution is sent only for a firing that was sent.
//! - Decisions read no clock: the caller passes `now`.
//! - A failing, slow or hanging sink never delays or fails another sink, nor the caller.
//! - Secrets (header values, URL credentials, paths and queries) never appear in Debug
//!   output, logs or reports: sinks are named by their URL's origin.

pub mod config;
pub mod dedup;
pub mod notification;
pub mod notifier;
pub mod sink;

pub use config::{AlertmanagerConfig, NotifyConfig, NotifySettings, WebhookConfig};
pub use dedup::{
    DEFAULT_COOLDOWN, DedupStats, Deduper, IncidentKey, IncidentKind, Status, Suppressed, Verdict,
};
pub use notification::{Notification, NotificationKind};
pub use notifier::{ALERTMANAGER_REFRESH, Notifier, NotifierStats, OnReport, QUEUE_CAPACITY};
pub use sink::{
    AlertmanagerSink, DeliveryError, DeliveryReport, RESPONSE_CAP, Retry, Sink, WebhookSink,
    deliver,
};

/// A notification setup problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sink URL does not parse or is not http(s); the URL is shown by its origin only.
    #[error("invalid url {url}: {reason}")]
    InvalidUrl {
        /// The URL's origin.
        url: String,
        /// Why.
        reason: String,
    },
    /// A header name or value is not valid HTTP (the value is not shown).
    #[error("invalid header {name}")]
    InvalidHeader {
        /// The header's name.
        name: String,
    },
    /// The configuration has problems, each with its key path.
    #[error("invalid notify configuration: {}", problems.join("; "))]
    Config {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(medic_collect::http::HttpError),
}

/// The origin of `url` (`scheme://host[:port]`), without credentials, path or query, which
/// may hold secrets; `<invalid url>` when it does not parse.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.host_str() {
            Some(host) => match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            },
            None => format!("{}:", u.scheme()),
        },
        Err(_) => "<invalid url>".to_owned(),
    }
}

/// `error: cause: cause…`, for logs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
