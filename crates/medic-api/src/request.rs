//! The write side: what the API asks of the daemon, and how request bodies become it.

use std::fmt;
use std::time::Duration;

use medic_core::{Severity, TargetId};
use medic_orchestrator::{ApprovalId, Decision, MaintenanceScope};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// The longest maintenance window the API sets (30 days): longer is almost surely a typo, and
/// a forgotten window silently disables healing.
pub const MAX_MAINTENANCE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A mutation the API hands to the daemon over its `mpsc` channel. The daemon carries it out
/// (through the engine's events) and answers on `reply`; the HTTP response waits for that
/// answer, so a client learns whether its request took effect.
#[derive(Debug)]
pub enum ApiRequest {
    /// Set a maintenance window from now for `duration`. Answer: the window's id.
    Maintenance {
        /// Where.
        scope: MaintenanceScope,
        /// How long, already checked to be in `(0, MAX_MAINTENANCE]`.
        duration: Duration,
        /// Why (may be empty).
        reason: String,
        /// The daemon's answer.
        reply: oneshot::Sender<Result<u64, Rejection>>,
    },
    /// End the maintenance window `id` now.
    EndMaintenance {
        /// The window's id.
        id: u64,
        /// The daemon's answer.
        reply: oneshot::Sender<Result<(), Rejection>>,
    },
    /// A human's decision on an approval request.
    Approval {
        /// The request.
        id: ApprovalId,
        /// The decision.
        decision: Decision,
        /// The daemon's answer.
        reply: oneshot::Sender<Result<(), Rejection>>,
    },
    /// Alerts from Alertmanager, to become findings. Answer: how many matched a fleet target.
    Alerts {
        /// The alerts that named a target (see [`crate::alertmanager`] for the rule).
        alerts: Vec<ExternalAlert>,
        /// The daemon's answer.
        reply: oneshot::Sender<Result<usize, Rejection>>,
    },
}

/// Why the daemon refused an [`ApiRequest`]; the message is shown to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The target, tier, window or approval named does not exist (HTTP 404).
    NotFound(String),
    /// It exists but the request cannot apply now, e.g. an approval already decided (409).
    Conflict(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotFound(m) | Rejection::Conflict(m) => f.write_str(m),
        }
    }
}

/// One alert from outside (Alertmanager), reduced to what becomes a finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExternalAlert {
    /// The target it is about (not yet checked against the fleet: the daemon does that).
    pub target: TargetId,
    /// The alert's `alertname` label (empty when absent).
    pub alertname: String,
    /// From the `severity` label: `critical`/`page`/`error` → critical, `info`/`none` →
    /// info, anything else or absent → warning.
    pub severity: Severity,
    /// Firing (`true`) or resolved.
    pub firing: bool,
    /// The `summary` annotation, else `description`, else `message`, else the alertname.
    pub summary: String,
    /// Alertmanager's fingerprint, stable per label set (for deduplication).
    pub fingerprint: String,
    /// When it started firing (RFC 3339, as Alertmanager sends it; empty when absent). The
    /// same fingerprint with another start is a new firing of the alert.
    #[serde(default)]
    pub starts_at: String,
}

/// The body of `POST /api/v1/maintenance`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceBody {
    target: Option<String>,
    tier: Option<String>,
    duration: serde_json::Value,
    #[serde(default)]
    reason: String,
}

impl MaintenanceBody {
    /// The scope and duration, or why they are wrong.
    pub(crate) fn validate(self) -> Result<(MaintenanceScope, Duration, String), String> {
        let scope = match (self.target, self.tier) {
            (Some(t), None) if !t.is_empty() => MaintenanceScope::Target(TargetId::from(t)),
            (None, Some(t)) if !t.is_empty() => MaintenanceScope::Tier(t),
            (Some(_), Some(_)) => return Err("give either `target` or `tier`, not both".into()),
            _ => return Err("give a non-empty `target` or `tier`".into()),
        };
        let duration = match &self.duration {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(s) if s.is_finite() && s > 0.0 && s <= MAX_MAINTENANCE.as_secs_f64() => {
                    Duration::from_secs_f64(s)
                }
                _ => return Err(duration_bounds()),
            },
            serde_json::Value::String(s) => parse_duration(s)?,
            _ => {
                return Err(
                    "`duration` must be seconds (a number) or text like \"10m\" or \"1h30m\""
                        .into(),
                );
            }
        };
        if duration.is_zero() || duration > MAX_MAINTENANCE {
            return Err(duration_bounds());
        }
        Ok((scope, duration, self.reason))
    }
}

fn duration_bounds() -> String {
    format!(
        "`duration` must be more than 0 and at most {} days",
        MAX_MAINTENANCE.as_secs() / 86_400
    )
}

/// The body of `POST /api/v1/approvals/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalBody {
    pub(crate) decision: Decision,
}

/// Parses a duration written as whole numbers with units, e.g. `90s`, `10m`, `1h30m`, `2d`,
/// `500ms`; a bare number is seconds.
///
/// # Errors
/// A message naming what was not understood.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("cannot read duration {text:?}: write e.g. \"90s\", \"10m\", \"1h30m\"");
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Reads an id written as a number, optionally behind its display prefix (`p3` for approval
/// 3, `m3` for maintenance window 3).
pub(crate) fn parse_id(text: &str, prefix: char) -> Option<u64> {
    text.strip_prefix(prefix).unwrap_or(text).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "m",
            "10x",
            "1.5h",
            "-3s",
            "99999999999999999999h",
            "10 m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn maintenance_body_rules() {
        let body = |j: &str| {
            serde_json::from_str::<MaintenanceBody>(j)
                .unwrap()
                .validate()
        };
        let (scope, d, reason) =
            body(r#"{"target":"web-1","duration":"10m","reason":"deploy"}"#).unwrap();
        assert_eq!(scope, MaintenanceScope::Target(TargetId::new("web-1")));
        assert_eq!(d, Duration::from_secs(600));
        assert_eq!(reason, "deploy");
        let (scope, d, _) = body(r#"{"tier":"critical","duration":90}"#).unwrap();
        assert_eq!(scope, MaintenanceScope::Tier("critical".into()));
        assert_eq!(d, Duration::from_secs(90));
        assert!(body(r#"{"target":"a","tier":"b","duration":9}"#).is_err());
        assert!(body(r#"{"duration":9}"#).is_err());
        assert!(body(r#"{"target":"a","duration":0}"#).is_err());
        assert!(body(r#"{"target":"a","duration":"31d"}"#).is_err());
        assert!(body(r#"{"target":"a","duration":true}"#).is_err());
        assert!(
            serde_json::from_str::<MaintenanceBody>(r#"{"target":"a","duration":1,"x":1}"#)
                .is_err()
        );
    }

    #[test]
    fn ids_with_or_without_prefix() {
        assert_eq!(parse_id("p3", 'p'), Some(3));
        assert_eq!(parse_id("3", 'p'), Some(3));
        assert_eq!(parse_id("x3", 'p'), None);
        assert_eq!(parse_id("", 'p'), None);
    }
}
