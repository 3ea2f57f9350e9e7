//! Property tests of the deduper over random sequences of firings and resolves on a few keys.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use medic_core::{TargetId, Timestamp};
use medic_notify::{Deduper, IncidentKey, IncidentKind, Status, Verdict};
use medic_orchestrator::ApprovalId;
use proptest::prelude::*;

const COOLDOWN: Duration = Duration::from_secs(300);

fn keys() -> Vec<IncidentKey> {
    vec![
        IncidentKey::new(TargetId::new("web"), IncidentKind::Escalation),
        IncidentKey::new(TargetId::new("web"), IncidentKind::Degraded),
        IncidentKey::new(TargetId::new("db"), IncidentKind::Escalation),
        IncidentKey::new(TargetId::new("db"), IncidentKind::Approval(ApprovalId(1))),
        IncidentKey::new(TargetId::new("db"), IncidentKind::Healed),
    ]
}

/// (key index, resolved?, seconds since the previous event, prune after it?)
fn events() -> impl Strategy<Value = Vec<(usize, bool, u64, bool)>> {
    prop::collection::vec(
        (
            0usize..5,
            prop::bool::weighted(0.25),
            0u64..400,
            prop::bool::weighted(0.1),
        ),
        1..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sends_respect_the_cooldown_and_resolve_each_incident_at_most_once(evs in events()) {
        let keys = keys();
        let mut d = Deduper::new(COOLDOWN);
        let mut now = Timestamp::from_secs(1_000_000);
        // Per key: the open incident's start and its last sent firing, as the sends show them.
        let mut open: HashMap<usize, (Timestamp, Timestamp)> = HashMap::new();
        let mut resolved: HashSet<(usize, Timestamp)> = HashSet::new();
        let mut firing_starts: HashSet<(usize, Timestamp)> = HashSet::new();
        for (k, is_resolve, dt, prune) in evs {
            now += Duration::from_secs(dt);
            let key = &keys[k];
            let status = if is_resolve { Status::Resolved } else { Status::Firing };
            let verdict = d.offer(key, status, now);
            let one_shot = !key.kind.expects_resolution();
            match (status, verdict) {
                (Status::Firing, Verdict::Send { started, .. }) => {
                    if let Some((s, last)) = open.get(&k) {
                        // Never two sends of the same firing within the cooldown.
                        prop_assert!(now.since(*last) >= COOLDOWN, "{key}: resent within cooldown");
                        if !one_shot {
                            prop_assert_eq!(started, *s, "a reminder keeps its incident's start");
                        }
                    }
                    firing_starts.insert((k, started));
                    open.insert(k, (started, now));
                }
                (Status::Firing, Verdict::Suppress(_)) => {
                    // Only a repeat within the cooldown of an open incident is held back.
                    let (_, last) = open.get(&k).copied().expect("suppressed a first firing");
                    prop_assert!(now.since(last) < COOLDOWN);
                }
                (Status::Resolved, Verdict::Send { started, .. }) => {
                    prop_assert!(!one_shot, "resolved a one-shot kind");
                    prop_assert!(firing_starts.contains(&(k, started)), "resolved an incident never sent");
                    prop_assert!(resolved.insert((k, started)), "resolved twice");
                    prop_assert_eq!(open.remove(&k).map(|o| o.0), Some(started));
                }
                (Status::Resolved, Verdict::Suppress(_)) => {
                    // A sent, unresolved firing always gets its resolve.
                    prop_assert!(one_shot || !open.contains_key(&k), "lost a resolve");
                }
            }
            if prune {
                d.prune(now);
                // Pruning only forgets one-shot entries whose cooldown passed.
                for (idx, key) in keys.iter().enumerate() {
                    if !key.kind.expects_resolution()
                        && let Some((_, last)) = open.get(&idx)
                        && now.since(*last) >= COOLDOWN
                    {
                        open.remove(&idx);
                    }
                }
            }
        }
        let s = d.stats();
        prop_assert_eq!(s.sent_resolved as usize, resolved.len());
    }
}
