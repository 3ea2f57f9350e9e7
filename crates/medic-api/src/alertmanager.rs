//! Alertmanager's webhook payload (version 4) and how its alerts become [`ExternalAlert`]s.
//!
//! The target an alert is about is the first non-empty label of `target`, `instance`, `job`,
//! taken verbatim: put a `target: <fleet name>` label on alerts meant for medic (by the
//! alerting rule or a relabelling) to be sure; `instance` and `job` are fallbacks for rules
//! whose instance or job already is the fleet name. Alerts with none of the three are
//! counted and skipped. Alerts carrying the `medic_incident` label are medic's own
//! notifications (see `medic-notify`) routed back by Alertmanager: they are counted and
//! skipped too, so an escalation never turns into a finding that feeds another escalation.
//! Unknown fields are ignored, so newer Alertmanagers keep working.

use std::collections::BTreeMap;

use medic_core::{Severity, TargetId};
use serde::{Deserialize, Deserializer};

use crate::ExternalAlert;

/// The labels tried, in order, for the target name.
pub const TARGET_LABELS: [&str; 3] = ["target", "instance", "job"];

/// The webhook body Alertmanager posts (`version: "4"`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Payload format version (`"4"`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub version: String,
    /// Identifies the alert group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group_key: String,
    /// Alerts left out because of the receiver's `max_alerts`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub truncated_alerts: u64,
    /// `firing` or `resolved`, for the group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    /// The receiver's name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub receiver: String,
    /// The labels the group is formed by.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group_labels: BTreeMap<String, String>,
    /// Labels common to every alert.
    #[serde(default, deserialize_with = "null_as_default")]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations common to every alert.
    #[serde(default, deserialize_with = "null_as_default")]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's own URL.
    #[serde(default, rename = "externalURL", deserialize_with = "null_as_default")]
    pub external_url: String,
    /// The alerts.
    #[serde(deserialize_with = "null_as_default")]
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a [`WebhookPayload`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    /// Its labels.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start.
    #[serde(default, deserialize_with = "null_as_default")]
    pub starts_at: String,
    /// RFC 3339 end (`0001-01-01T00:00:00Z` while firing without an end).
    #[serde(default, deserialize_with = "null_as_default")]
    pub ends_at: String,
    /// Link to the expression that fired.
    #[serde(default, rename = "generatorURL", deserialize_with = "null_as_default")]
    pub generator_url: String,
    /// Stable hash of the label set.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fingerprint: String,
}

/// The label medic's own Alertmanager notifications carry.
pub const MEDIC_INCIDENT_LABEL: &str = "medic_incident";

/// A payload's alerts sorted into what medic acts on and what it skips.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conversion {
    /// Alerts naming a target.
    pub alerts: Vec<ExternalAlert>,
    /// Alerts without a `target`, `instance` or `job` label.
    pub without_target: usize,
    /// medic's own notifications (label [`MEDIC_INCIDENT_LABEL`]).
    pub from_medic: usize,
}

impl WebhookPayload {
    /// Sorts the alerts (see the module docs for the rules).
    pub fn convert(&self) -> Conversion {
        let mut out = Conversion {
            alerts: Vec::with_capacity(self.alerts.len()),
            ..Conversion::default()
        };
        for a in &self.alerts {
            if a.labels.contains_key(MEDIC_INCIDENT_LABEL) {
                out.from_medic += 1;
                continue;
            }
            match a.to_alert() {
                Some(x) => out.alerts.push(x),
                None => out.without_target += 1,
            }
        }
        out
    }
}

impl WebhookAlert {
    /// The alert as medic sees it; `None` when no [`TARGET_LABELS`] label names a target.
    pub fn to_alert(&self) -> Option<ExternalAlert> {
        let target = TARGET_LABELS
            .iter()
            .filter_map(|k| self.labels.get(*k))
            .map(|v| v.trim())
            .find(|v| !v.is_empty())?;
        let alertname = self.labels.get("alertname").cloned().unwrap_or_default();
        let severity = match self.labels.get("severity").map(|s| s.to_ascii_lowercase()) {
            Some(s) if matches!(s.as_str(), "critical" | "page" | "error") => Severity::Critical,
            Some(s) if matches!(s.as_str(), "info" | "none") => Severity::Info,
            _ => Severity::Warning,
        };
        let summary = ["summary", "description", "message"]
            .iter()
            .filter_map(|k| self.annotations.get(*k))
            .find(|v| !v.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| alertname.clone());
        Some(ExternalAlert {
            target: TargetId::new(target),
            alertname,
            severity,
            firing: self.status != "resolved",
            summary,
            fingerprint: self.fingerprint.clone(),
            starts_at: self.starts_at.trim().to_owned(),
        })
    }
}

/// Alertmanager (Go) writes an empty map or string as `null` in places, e.g.
/// `"commonAnnotations": null`; that means empty, not malformed.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
