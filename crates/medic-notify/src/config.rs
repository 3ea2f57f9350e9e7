//! [`NotifyConfig`], the `notify:` section of the daemon's configuration, and its validation
//! into [`NotifySettings`].
//!
//! ```yaml
//! notify:
//!   cooldown: 5m            # repeats of an open incident are held back this long (default 5m)
//!   timeout: 5s             # per delivery try (default 5s)
//!   attempts: 3             # tries per delivery, 1 to 10 (default 3)
//!   webhooks:
//!     - url: https://hooks.example.com/medic
//!       headers:
//!         Authorization: Bearer s3cr3t   # never logged, never in Debug output
//!   alertmanager:
//!     - url: http://127.0.0.1:9093       # posts to {url}/api/v2/alerts
//!       generator_url: http://127.0.0.1:9797/   # optional: the alert's link back to medic
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::dedup::DEFAULT_COOLDOWN;
use crate::sink::{AlertmanagerSink, Retry, Sink, WebhookSink};
use crate::{Error, redact_url};

/// Where and how medic's notifications go (the daemon config's `notify:` section).
///
/// Durations are text like `500ms`, `5s`, `5m`, `1h30m` or a number of seconds.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Generic JSON webhooks: each notification is POSTed as JSON.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Alertmanagers: each notification is POSTed as an alert to `{url}/api/v2/alerts`.
    #[serde(default)]
    pub alertmanager: Vec<AlertmanagerConfig>,
    /// Repeat firings of an open incident within this are not sent (default 5 minutes).
    #[serde(default, deserialize_with = "opt_duration")]
    pub cooldown: Option<Duration>,
    /// Deadline of one delivery try: connect, request and response (default 5 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Tries per delivery, 1 to 10 (default 3); waits 0.5 s, 1 s, 2 s… between tries.
    #[serde(default)]
    pub attempts: Option<u32>,
}

impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("webhooks", &self.webhooks)
            .field("alertmanager", &self.alertmanager)
            .field("cooldown", &self.cooldown)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// One webhook receiver.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL to POST to.
    pub url: String,
    /// Extra request headers, e.g. `Authorization`. Their values are secrets: they never
    /// appear in Debug output or logs.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One Alertmanager.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Its base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// The alerts' `generatorURL` (a link back to medic's dashboard); omitted when unset.
    #[serde(default)]
    pub generator_url: Option<String>,
}

impl fmt::Debug for AlertmanagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerConfig")
            .field("url", &redact_url(&self.url))
            .field("generator_url", &self.generator_url)
            .finish()
    }
}

/// A validated [`NotifyConfig`], ready for [`crate::Notifier::start`].
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// The sinks, webhooks first, in configuration order.
    pub sinks: Vec<Sink>,
    /// The deduplication cooldown.
    pub cooldown: Duration,
    /// Tries, per-try timeout and backoff.
    pub retry: Retry,
}

impl NotifySettings {
    /// No sinks (notifications are deduplicated and counted, and go nowhere), default
    /// cooldown and retry.
    pub fn none() -> Self {
        NotifySettings {
            sinks: Vec::new(),
            cooldown: DEFAULT_COOLDOWN,
            retry: Retry::standard(),
        }
    }
}

impl NotifyConfig {
    /// Checks everything and builds the settings; every problem is reported at once, each
    /// with its key path (e.g. `notify.webhooks[0].url: …`).
    pub fn validate(&self) -> Result<NotifySettings, Error> {
        let mut problems = Vec::new();
        let mut sinks = Vec::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            match WebhookSink::new(&w.url, &w.headers) {
                Ok(s) => sinks.push(Sink::Webhook(s)),
                Err(e) => problems.push(format!("notify.webhooks[{i}]: {e}")),
            }
        }
        for (i, a) in self.alertmanager.iter().enumerate() {
            match AlertmanagerSink::new(&a.url, a.generator_url.as_deref()) {
                Ok(s) => sinks.push(Sink::Alertmanager(s)),
                Err(e) => problems.push(format!("notify.alertmanager[{i}]: {e}")),
            }
        }
        let mut retry = Retry::standard();
        if let Some(t) = self.timeout {
            if t.is_zero() {
                problems.push("notify.timeout: must be more than zero".to_owned());
            }
            retry.timeout = t;
        }
        if let Some(n) = self.attempts {
            if !(1..=10).contains(&n) {
                problems.push(format!("notify.attempts: {n} is not between 1 and 10"));
            }
            retry.attempts = n.clamp(1, 10);
        }
        if problems.is_empty() {
            Ok(NotifySettings {
                sinks,
                cooldown: self.cooldown.unwrap_or(DEFAULT_COOLDOWN),
                retry,
            })
        } else {
            Err(Error::Config { problems })
        }
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Secs(s)) => Duration::try_from_secs_f64(s)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{s} is not a valid number of seconds"))),
        Some(Raw::Text(t)) => medic_policy::parse_duration(&t).map(Some).map_err(|why| {
            serde::de::Error::custom(format!(
                "{t:?}: {why}; expected {}",
                medic_policy::yaml::DURATION_EXPECTED
            ))
        }),
    }
}
