//! [`Notification`]: what medic tells people, built from the engine's [`Notice`]s and
//! [`Escalation`]s.

use std::fmt::Write as _;

use medic_core::{Finding, Severity, TargetId, Timestamp};
use medic_orchestrator::{ApprovalId, Command, Escalation, EscalationReason, Notice};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::dedup::{IncidentKey, IncidentKind, Status};

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NotificationKind {
    /// medic stopped acting on the target and calls a human.
    Escalation {
        /// Why.
        reason: EscalationReason,
    },
    /// An option waits for a human's approval (`POST /api/v1/approvals/{id}`).
    ApprovalRequested {
        /// The request to answer.
        id: ApprovalId,
    },
    /// The target runs its fallback (graceful degradation).
    Degraded,
    /// medic healed the target on its own (informational; never resolved).
    Healed,
}

impl NotificationKind {
    /// The incident kind it is deduplicated under.
    pub fn incident_kind(self) -> IncidentKind {
        match self {
            NotificationKind::Escalation { .. } => IncidentKind::Escalation,
            NotificationKind::ApprovalRequested { id } => IncidentKind::Approval(id),
            NotificationKind::Degraded => IncidentKind::Degraded,
            NotificationKind::Healed => IncidentKind::Healed,
        }
    }

    /// The Alertmanager `alertname`: `MedicEscalation`, `MedicApprovalRequested`,
    /// `MedicDegraded` or `MedicHealed`.
    pub fn alertname(self) -> &'static str {
        match self {
            NotificationKind::Escalation { .. } => "MedicEscalation",
            NotificationKind::ApprovalRequested { .. } => "MedicApprovalRequested",
            NotificationKind::Degraded => "MedicDegraded",
            NotificationKind::Healed => "MedicHealed",
        }
    }
}

/// One notification, as sent to every sink (the webhook body is its JSON).
///
/// Timestamps are milliseconds since the Unix epoch (as everywhere in medic's JSON). The
/// firing, its reminders and its resolution share `id` and `starts_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The incident's id, `{target}/{kind}/{start ms}` (see [`IncidentKey::incident_id`]).
    pub id: String,
    /// The target.
    pub target: TargetId,
    /// The target's tier.
    pub tier: String,
    /// How urgent it is: escalations are critical, approval requests and degradation
    /// warnings, healed notices info.
    pub severity: Severity,
    /// What it is about.
    pub kind: NotificationKind,
    /// One line for people.
    pub summary: String,
    /// A few lines for people: reason, latest finding, attempts, diagnosis.
    pub description: String,
    /// The context as data: `reason`, `finding`, `attempts`, `diagnosis`, … (per kind).
    pub details: serde_json::Value,
    /// Firing or resolved.
    pub status: Status,
    /// When the incident started.
    pub starts_at: Timestamp,
    /// When it ended (set when resolved).
    pub ends_at: Option<Timestamp>,
    /// Repeat firings suppressed by the cooldown since the previous send of this incident.
    #[serde(default)]
    pub suppressed_repeats: u64,
}

impl Notification {
    /// The call for a human for `escalation` on a target of `tier`, firing at `now`.
    pub fn escalation(escalation: &Escalation, tier: &str, now: Timestamp) -> Self {
        let target = &escalation.target;
        let why = match escalation.reason {
            EscalationReason::GaveUp => "crash loop, medic gave up restarting it",
            EscalationReason::LadderExhausted => "every rung of the escalation ladder was tried",
            EscalationReason::AttemptsExhausted => "every option used up its attempts",
            EscalationReason::ApprovalTimedOut => "an approval request timed out",
        };
        let summary = format!("{target} needs a human: {why}");
        let mut description = format!("{summary}.\n");
        describe_finding(&mut description, escalation.finding.as_ref());
        if !escalation.history.is_empty() {
            description.push_str("Attempts (oldest first):");
            for a in &escalation.history {
                let _ = write!(
                    description,
                    " {} at {} → {};",
                    a.strategy,
                    a.at.rfc3339(),
                    json!(a.result).as_str().unwrap_or("?")
                );
            }
            description.pop();
            description.push('\n');
        }
        let details = json!({
            "reason": escalation.reason,
            "finding": escalation.finding,
            "attempts": escalation.history,
            "diagnosis": escalation.finding.as_ref().and_then(|f| f.diagnosis.as_ref()),
        });
        Notification::firing(
            target.clone(),
            tier,
            Severity::Critical,
            NotificationKind::Escalation {
                reason: escalation.reason,
            },
            summary,
            description,
            details,
            now,
        )
    }

    /// The notification for an engine [`Notice`] on a target of `tier`, firing at `now`.
    pub fn notice(notice: &Notice, tier: &str, now: Timestamp) -> Self {
        match notice {
            Notice::ApprovalRequested {
                approval,
                target,
                strategy,
                reason,
                deadline,
            } => {
                let summary = format!("{target}: {strategy} waits for approval {approval}");
                let description = format!(
                    "{summary} (answer with POST /api/v1/approvals/{}; escalates at {}).\nWhy: {reason}\n",
                    approval.0,
                    deadline.rfc3339()
                );
                let details = json!({
                    "approval": approval,
                    "strategy": strategy,
                    "reason": reason,
                    "deadline": deadline,
                });
                Notification::firing(
                    target.clone(),
                    tier,
                    Severity::Warning,
                    NotificationKind::ApprovalRequested { id: *approval },
                    summary,
                    description,
                    details,
                    now,
                )
            }
            Notice::Degraded { target } => {
                let summary = format!("{target} is degraded: its fallback runs");
                Notification::firing(
                    target.clone(),
                    tier,
                    Severity::Warning,
                    NotificationKind::Degraded,
                    summary.clone(),
                    format!("{summary}.\n"),
                    json!({}),
                    now,
                )
            }
        }
    }

    /// The notification for a [`Command::Notify`] or [`Command::Escalate`]; `None` for every
    /// other command. `tier_of` names a target's tier.
    pub fn from_command(
        command: &Command,
        tier_of: impl FnOnce(&TargetId) -> String,
        now: Timestamp,
    ) -> Option<Self> {
        match command {
            Command::Notify(notice) => {
                let target = match notice {
                    Notice::ApprovalRequested { target, .. } | Notice::Degraded { target } => {
                        target
                    }
                };
                Some(Notification::notice(notice, &tier_of(target), now))
            }
            Command::Escalate(escalation) => Some(Notification::escalation(
                escalation,
                &tier_of(&escalation.target),
                now,
            )),
            _ => None,
        }
    }

    /// An informational "medic healed `target`" notice at `now`; `details` is the context the
    /// caller has (e.g. `{"strategy": "restart", "mttr_s": 0.8}`).
    pub fn healed(
        target: TargetId,
        tier: &str,
        summary: String,
        details: serde_json::Value,
        now: Timestamp,
    ) -> Self {
        let description = format!("{summary}.\n");
        Notification::firing(
            target,
            tier,
            Severity::Info,
            NotificationKind::Healed,
            summary,
            description,
            details,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn firing(
        target: TargetId,
        tier: &str,
        severity: Severity,
        kind: NotificationKind,
        summary: String,
        description: String,
        details: serde_json::Value,
        now: Timestamp,
    ) -> Self {
        let id = IncidentKey::new(target.clone(), kind.incident_kind()).incident_id(now);
        Notification {
            id,
            target,
            tier: tier.to_owned(),
            severity,
            kind,
            summary,
            description,
            details,
            status: Status::Firing,
            starts_at: now,
            ends_at: None,
            suppressed_repeats: 0,
        }
    }

    /// The resolution of this (firing) notification at `now`: same id, start and labels,
    /// status resolved, `ends_at` set, summary prefixed with `resolved: `.
    pub fn resolved(&self, now: Timestamp) -> Self {
        let mut n = self.clone();
        n.status = Status::Resolved;
        n.ends_at = Some(now.max(self.starts_at));
        n.summary = format!("resolved: {}", self.summary);
        n.description = format!("resolved at {}; was: {}", now.rfc3339(), self.description);
        n.suppressed_repeats = 0;
        n
    }

    /// The incident this notification belongs to.
    pub fn key(&self) -> IncidentKey {
        IncidentKey::new(self.target.clone(), self.kind.incident_kind())
    }
}

fn describe_finding(out: &mut String, finding: Option<&Finding>) {
    let Some(f) = finding else {
        return;
    };
    let _ = write!(
        out,
        "Latest finding at {}: {} ({})",
        f.at.rfc3339(),
        f.health,
        json!(f.severity).as_str().unwrap_or("?")
    );
    if let Some(rate) = f.error_rate {
        let _ = write!(out, ", error rate {:.1}%", rate * 100.0);
    }
    if let Some(mem) = f.memory_ratio {
        let _ = write!(out, ", memory {:.0}% of limit", mem * 100.0);
    }
    if let Some(a) = &f.anomaly {
        let _ = write!(out, ", anomaly {:.2} ({})", a.score, a.reason);
    }
    if let Some(p) = &f.prediction {
        let _ = write!(
            out,
            ", failure probability {:.2} within {} s",
            p.probability, p.horizon_s
        );
    }
    out.push('\n');
    if let Some(d) = &f.diagnosis {
        let _ = write!(
            out,
            "Diagnosis: {} (confidence {:.2})",
            d.category, d.confidence
        );
        if let Some(line) = d.evidence.first() {
            let _ = write!(out, ": {line}");
        }
        out.push('\n');
    }
}
