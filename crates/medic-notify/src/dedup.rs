//! The pure, sans-IO deduplication of notifications by incident, driven by [`Timestamp`]s.
//!
//! An *incident* is identified by an [`IncidentKey`]: a target and an [`IncidentKind`]. For
//! each key the [`Deduper`] decides whether a notification is sent or suppressed:
//!
//! - The first `firing` for a key opens an incident and is **sent**; the incident starts then.
//! - A repeat `firing` for an open incident within `cooldown` of the last sent firing is
//!   **suppressed** and counted. Once `cooldown` has passed since the last sent firing, the next
//!   repeat is sent again as a reminder of the same incident (same start).
//! - A `resolved` for an open incident is **sent** once and closes it; a `resolved` for a key
//!   with no open incident (never sent, already resolved, or a kind that is never resolved) is
//!   suppressed and counted.
//! - After a resolve, the next `firing` for the key is a new incident and is sent at once:
//!   telling people that something fails again is never held back by the old incident.
//! - Kinds that are never resolved ([`IncidentKind::Healed`]) keep their entry only to
//!   suppress repeats within the cooldown; [`Deduper::prune`] forgets them after that.
//!
//! Time comes only from the caller. A `now` earlier than the last send (a clock step back)
//! counts as no time passed, so it suppresses rather than re-sends.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use medic_core::{TargetId, Timestamp};
use medic_orchestrator::ApprovalId;
use serde::{Deserialize, Serialize};

/// The default cooldown: 5 minutes.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(300);

/// What an incident is about, for deduplication (the escalation's reason is not part of it: a
/// target escalated again for another reason is the same open incident).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "approval")]
pub enum IncidentKind {
    /// A human was called; resolved when the target is healthy again.
    Escalation,
    /// One approval request (each request is its own incident); resolved when decided.
    Approval(ApprovalId),
    /// The target runs its fallback; resolved when a heal succeeds.
    Degraded,
    /// medic healed the target on its own: informational, never resolved.
    Healed,
}

impl IncidentKind {
    /// Whether incidents of this kind stay open until resolved (all but [`IncidentKind::Healed`]).
    pub fn expects_resolution(self) -> bool {
        !matches!(self, IncidentKind::Healed)
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncidentKind::Escalation => f.write_str("escalation"),
            IncidentKind::Approval(id) => write!(f, "approval-{id}"),
            IncidentKind::Degraded => f.write_str("degraded"),
            IncidentKind::Healed => f.write_str("healed"),
        }
    }
}

/// The identity of an incident: a target and what it is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IncidentKey {
    /// The target.
    pub target: TargetId,
    /// What it is about.
    pub kind: IncidentKind,
}

impl IncidentKey {
    /// The key of `kind` on `target`.
    pub fn new(target: TargetId, kind: IncidentKind) -> Self {
        IncidentKey { target, kind }
    }

    /// The incident's id: `{target}/{kind}/{start in ms}`, the same for its first firing, its
    /// reminders and its resolution, and different for a later incident of the same key.
    pub fn incident_id(&self, started: Timestamp) -> String {
        format!("{}/{}/{}", self.target, self.kind, started.as_millis())
    }
}

impl fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.target, self.kind)
    }
}

/// Whether a notification says that something is wrong or that it is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It is happening.
    Firing,
    /// It is over.
    Resolved,
}

/// Why a notification was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppressed {
    /// A repeat firing of an open incident within the cooldown.
    Cooldown,
    /// A resolve for a key with no open incident.
    NotOpen,
}

/// The [`Deduper`]'s decision on one notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it, as part of the incident that started at `started`.
    Send {
        /// When the incident started (its first sent firing).
        started: Timestamp,
        /// Repeat firings suppressed since the previous send of this incident.
        suppressed: u64,
        /// Whether this is a reminder: a repeat firing sent after the cooldown.
        reminder: bool,
    },
    /// Do not send it.
    Suppress(Suppressed),
}

impl Verdict {
    /// Whether the notification is to be sent.
    pub fn is_send(&self) -> bool {
        matches!(self, Verdict::Send { .. })
    }
}

/// Counters over everything the [`Deduper`] decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DedupStats {
    /// Firings sent (first ones and reminders).
    pub sent_firing: u64,
    /// Resolves sent.
    pub sent_resolved: u64,
    /// Repeat firings suppressed within the cooldown.
    pub suppressed_cooldown: u64,
    /// Resolves suppressed because nothing was open.
    pub suppressed_not_open: u64,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    started: Timestamp,
    last_sent: Timestamp,
    suppressed: u64,
}

/// Decides which notifications are sent; see the [module docs](self) for the rules.
///
/// Memory: one small entry per open incident, plus one per never-resolved kind until
/// [`Deduper::prune`] drops it after the cooldown.
#[derive(Clone, Debug)]
pub struct Deduper {
    cooldown: Duration,
    open: HashMap<IncidentKey, Open>,
    stats: DedupStats,
}

impl Deduper {
    /// A deduper that suppresses repeat firings for `cooldown` (see [`DEFAULT_COOLDOWN`]).
    pub fn new(cooldown: Duration) -> Self {
        Deduper {
            cooldown,
            open: HashMap::new(),
            stats: DedupStats::default(),
        }
    }

    /// The cooldown.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Decides on a notification of `status` for `key` at `now`, and records the decision.
    pub fn offer(&mut self, key: &IncidentKey, status: Status, now: Timestamp) -> Verdict {
        match status {
            Status::Firing => self.offer_firing(key, now),
            Status::Resolved => self.offer_resolved(key, now),
        }
    }

    fn offer_firing(&mut self, key: &IncidentKey, now: Timestamp) -> Verdict {
        if let Some(open) = self.open.get_mut(key) {
            if now.since(open.last_sent) < self.cooldown {
                open.suppressed += 1;
                self.stats.suppressed_cooldown += 1;
                return Verdict::Suppress(Suppressed::Cooldown);
            }
            let suppressed = std::mem::take(&mut open.suppressed);
            open.last_sent = now;
            self.stats.sent_firing += 1;
            if key.kind.expects_resolution() {
                return Verdict::Send {
                    started: open.started,
                    suppressed,
                    reminder: true,
                };
            }
            // A one-shot kind has no incident to remind of: this is a new one.
            open.started = now;
            return Verdict::Send {
                started: now,
                suppressed,
                reminder: false,
            };
        }
        self.open.insert(
            key.clone(),
            Open {
                started: now,
                last_sent: now,
                suppressed: 0,
            },
        );
        self.stats.sent_firing += 1;
        Verdict::Send {
            started: now,
            suppressed: 0,
            reminder: false,
        }
    }

    fn offer_resolved(&mut self, key: &IncidentKey, _now: Timestamp) -> Verdict {
        if !key.kind.expects_resolution() {
            self.stats.suppressed_not_open += 1;
            return Verdict::Suppress(Suppressed::NotOpen);
        }
        match self.open.remove(key) {
            Some(open) => {
                self.stats.sent_resolved += 1;
                Verdict::Send {
                    started: open.started,
                    suppressed: open.suppressed,
                    reminder: false,
                }
            }
            None => {
                self.stats.suppressed_not_open += 1;
                Verdict::Suppress(Suppressed::NotOpen)
            }
        }
    }

    /// Whether `key` has an open incident (a sent firing not yet resolved).
    pub fn is_open(&self, key: &IncidentKey) -> bool {
        key.kind.expects_resolution() && self.open.contains_key(key)
    }

    /// The open incidents of `target` (the keys a resolve would be sent for), in key order.
    pub fn open_for(&self, target: &TargetId) -> Vec<IncidentKey> {
        let mut keys: Vec<IncidentKey> = self
            .open
            .keys()
            .filter(|k| &k.target == target && k.kind.expects_resolution())
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Forgets the entries of never-resolved kinds whose cooldown has passed at `now`; open
    /// incidents are kept until resolved. Returns how many were dropped.
    pub fn prune(&mut self, now: Timestamp) -> usize {
        let before = self.open.len();
        let cooldown = self.cooldown;
        self.open.retain(|key, open| {
            key.kind.expects_resolution() || now.since(open.last_sent) < cooldown
        });
        before - self.open.len()
    }

    /// The counters so far.
    pub fn stats(&self) -> DedupStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: &str, kind: IncidentKind) -> IncidentKey {
        IncidentKey::new(TargetId::new(target), kind)
    }

    const T0: Timestamp = Timestamp::from_secs(1_000);

    #[test]
    fn first_firing_is_sent_and_repeats_within_cooldown_are_suppressed() {
        let mut d = Deduper::new(Duration::from_secs(300));
        let k = key("web", IncidentKind::Escalation);
        assert_eq!(
            d.offer(&k, Status::Firing, T0),
            Verdict::Send {
                started: T0,
                suppressed: 0,
                reminder: false
            }
        );
        for s in 1..=5 {
            assert_eq!(
                d.offer(&k, Status::Firing, T0 + Duration::from_secs(s * 10)),
                Verdict::Suppress(Suppressed::Cooldown)
            );
        }
        assert_eq!(d.stats().suppressed_cooldown, 5);
        assert_eq!(d.stats().sent_firing, 1);
    }

    #[test]
    fn a_repeat_after_the_cooldown_is_a_reminder_of_the_same_incident() {
        let mut d = Deduper::new(Duration::from_secs(300));
        let k = key("web", IncidentKind::Escalation);
        d.offer(&k, Status::Firing, T0);
        d.offer(&k, Status::Firing, T0 + Duration::from_secs(299));
        assert_eq!(
            d.offer(&k, Status::Firing, T0 + Duration::from_secs(300)),
            Verdict::Send {
                started: T0,
                suppressed: 1,
                reminder: true
            }
        );
        // The cooldown restarts from the reminder.
        assert!(
            !d.offer(&k, Status::Firing, T0 + Duration::from_secs(500))
                .is_send()
        );
    }

    #[test]
    fn resolved_is_sent_once_for_an_open_incident_and_never_otherwise() {
        let mut d = Deduper::new(Duration::from_secs(300));
        let k = key("web", IncidentKind::Escalation);
        assert_eq!(
            d.offer(&k, Status::Resolved, T0),
            Verdict::Suppress(Suppressed::NotOpen)
        );
        d.offer(&k, Status::Firing, T0);
        d.offer(&k, Status::Firing, T0 + Duration::from_secs(1));
        let t = T0 + Duration::from_secs(2);
        assert_eq!(
            d.offer(&k, Status::Resolved, t),
            Verdict::Send {
                started: T0,
                suppressed: 1,
                reminder: false
            }
        );
        assert_eq!(
            d.offer(&k, Status::Resolved, t),
            Verdict::Suppress(Suppressed::NotOpen)
        );
        assert_eq!(d.stats().sent_resolved, 1);
        assert_eq!(d.stats().suppressed_not_open, 2);
    }

    #[test]
    fn a_firing_after_a_resolve_is_a_new_incident_sent_at_once() {
        let mut d = Deduper::new(Duration::from_secs(300));
        let k = key("web", IncidentKind::Degraded);
        d.offer(&k, Status::Firing, T0);
        d.offer(&k, Status::Resolved, T0 + Duration::from_secs(1));
        let t = T0 + Duration::from_secs(2);
        assert_eq!(
            d.offer(&k, Status::Firing, t),
            Verdict::Send {
                started: t,
                suppressed: 0,
                reminder: false
            }
        );
        assert_ne!(k.incident_id(T0), k.incident_id(t));
    }

    #[test]
    fn keys_are_independent() {
        let mut d = Deduper::new(Duration::from_secs(300));
        assert!(
            d.offer(&key("a", IncidentKind::Escalation), Status::Firing, T0)
                .is_send()
        );
        assert!(
            d.offer(&key("b", IncidentKind::Escalation), Status::Firing, T0)
                .is_send()
        );
        assert!(
            d.offer(&key("a", IncidentKind::Degraded), Status::Firing, T0)
                .is_send()
        );
        assert!(
            d.offer(
                &key("a", IncidentKind::Approval(ApprovalId(1))),
                Status::Firing,
                T0
            )
            .is_send()
        );
        assert!(
            d.offer(
                &key("a", IncidentKind::Approval(ApprovalId(2))),
                Status::Firing,
                T0
            )
            .is_send()
        );
        assert_eq!(
            d.open_for(&TargetId::new("a")),
            vec![
                key("a", IncidentKind::Escalation),
                key("a", IncidentKind::Approval(ApprovalId(1))),
                key("a", IncidentKind::Approval(ApprovalId(2))),
                key("a", IncidentKind::Degraded),
            ]
        );
    }

    #[test]
    fn healed_is_one_shot_never_resolved_and_pruned_after_the_cooldown() {
        let mut d = Deduper::new(Duration::from_secs(60));
        let k = key("web", IncidentKind::Healed);
        assert!(d.offer(&k, Status::Firing, T0).is_send());
        assert!(
            !d.offer(&k, Status::Firing, T0 + Duration::from_secs(59))
                .is_send()
        );
        assert_eq!(
            d.offer(&k, Status::Resolved, T0 + Duration::from_secs(59)),
            Verdict::Suppress(Suppressed::NotOpen)
        );
        assert!(!d.is_open(&k));
        assert!(d.open_for(&TargetId::new("web")).is_empty());
        assert_eq!(d.prune(T0 + Duration::from_secs(59)), 0);
        assert_eq!(d.prune(T0 + Duration::from_secs(60)), 1);
        let t = T0 + Duration::from_secs(61);
        assert_eq!(
            d.offer(&k, Status::Firing, t),
            Verdict::Send {
                started: t,
                suppressed: 0,
                reminder: false
            }
        );
    }

    #[test]
    fn prune_keeps_open_incidents() {
        let mut d = Deduper::new(Duration::from_secs(60));
        let k = key("web", IncidentKind::Escalation);
        d.offer(&k, Status::Firing, T0);
        assert_eq!(d.prune(T0 + Duration::from_secs(86_400)), 0);
        assert!(d.offer(&k, Status::Resolved, T0).is_send());
    }

    #[test]
    fn a_clock_step_back_suppresses() {
        let mut d = Deduper::new(Duration::from_secs(60));
        let k = key("web", IncidentKind::Escalation);
        d.offer(&k, Status::Firing, T0);
        assert_eq!(
            d.offer(&k, Status::Firing, T0 - Duration::from_secs(3_600)),
            Verdict::Suppress(Suppressed::Cooldown)
        );
    }

    #[test]
    fn incident_ids_name_target_kind_and_start() {
        assert_eq!(
            key("web", IncidentKind::Escalation).incident_id(T0),
            "web/escalation/1000000"
        );
        assert_eq!(
            key("db", IncidentKind::Approval(ApprovalId(7))).incident_id(T0),
            "db/approval-p7/1000000"
        );
    }
}
