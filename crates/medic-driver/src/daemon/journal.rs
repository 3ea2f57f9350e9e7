//! Writing the engine's journal entries to the store: the one path used by the daemon's brain
//! and by `medic heal --preemptive`, so both write the same rows.
//!
//! Every stored row carries the target it is about and, for the entries of an action (intent,
//! acted, verified, closed), the action's idempotency key `target/a<id>`, so a restarted
//! daemon or an operator can find an action's entries with
//! [`medic_store::Store::journal_by_key`]. The engine's own entries name the target only in
//! the intent; [`JournalWriter`] remembers the target of every intent it has seen (and of the
//! intents of the journal it was recovered from) to fill in the later ones.

use std::collections::HashMap;

use medic_core::{TargetId, Timestamp};
use medic_orchestrator::{ActionId, JournalEntry, MaintenanceScope};
use medic_store::Store;

/// Why a journal entry could not be written.
#[derive(Debug, thiserror::Error)]
pub enum JournalWriteError {
    /// The entry could not be encoded as JSON.
    #[error("encoding a journal entry")]
    Encode(#[source] serde_json::Error),
    /// The store refused it.
    #[error("appending to the journal")]
    Store(#[source] medic_store::StoreError),
}

/// Turns engine entries into store rows with their target and idempotency key.
#[derive(Debug, Default)]
pub(crate) struct JournalWriter {
    action_targets: HashMap<ActionId, TargetId>,
}

impl JournalWriter {
    /// A writer that knows the actions of `recovered` (the journal the engine was rebuilt from).
    pub(crate) fn new(recovered: &[JournalEntry]) -> JournalWriter {
        let mut w = JournalWriter::default();
        for entry in recovered {
            w.learn(entry);
        }
        w
    }

    fn learn(&mut self, entry: &JournalEntry) {
        if let JournalEntry::Intent { action, target, .. } = entry {
            self.action_targets.insert(*action, target.clone());
        }
    }

    /// The store row for `entry`, journaled at `now`.
    pub(crate) fn row(
        &mut self,
        now: Timestamp,
        entry: &JournalEntry,
    ) -> Result<medic_store::JournalEntry, JournalWriteError> {
        self.learn(entry);
        let payload = serde_json::to_value(entry).map_err(JournalWriteError::Encode)?;
        let kind = payload
            .get("entry")
            .and_then(|k| k.as_str())
            .unwrap_or("unknown")
            .to_owned();
        let (target, idempotency_key) = self.target_and_key(entry);
        Ok(medic_store::JournalEntry {
            at: now,
            target,
            kind,
            idempotency_key,
            payload,
        })
    }

    /// Appends `entry` to `store` (synced before it returns); its sequence number.
    pub(crate) fn append(
        &mut self,
        store: &mut Store,
        now: Timestamp,
        entry: &JournalEntry,
    ) -> Result<u64, JournalWriteError> {
        let row = self.row(now, entry)?;
        store.append_journal(&row).map_err(JournalWriteError::Store)
    }

    fn target_and_key(&self, entry: &JournalEntry) -> (TargetId, Option<String>) {
        let by_action = |action: &ActionId| match self.action_targets.get(action) {
            Some(target) => (target.clone(), Some(format!("{target}/{action}"))),
            // An outcome of an action whose intent is not known (a journal written by an
            // older medic): kept, without a target rather than with a wrong one.
            None => (TargetId::new(""), None),
        };
        match entry {
            JournalEntry::Intent { target, key, .. } => (target.clone(), Some(key.clone())),
            JournalEntry::Acted { action, .. }
            | JournalEntry::Verified { action, .. }
            | JournalEntry::Closed { action, .. } => by_action(action),
            JournalEntry::ApprovalRequested { target, .. }
            | JournalEntry::IncidentOpened { target, .. }
            | JournalEntry::Escalated { target, .. }
            | JournalEntry::Resumed { target, .. }
            | JournalEntry::Recovered { target, .. }
            | JournalEntry::ApprovalWithdrawn { target, .. }
            | JournalEntry::Degraded { target, .. }
            | JournalEntry::Breaker { target, .. }
            | JournalEntry::BackoffReset { target, .. } => (target.clone(), None),
            JournalEntry::Maintenance {
                scope: MaintenanceScope::Target(target),
                ..
            } => (target.clone(), None),
            JournalEntry::ApprovalDecided { .. } | JournalEntry::Maintenance { .. } => {
                (TargetId::new(""), None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use medic_core::{Outcome, Strategy};
    use medic_orchestrator::ActKind;
    use medic_strategy::AttemptResult;

    use super::*;

    fn intent(action: u64, target: &str) -> JournalEntry {
        JournalEntry::Intent {
            at: Timestamp::from_secs(1),
            action: ActionId(action),
            target: TargetId::new(target),
            kind: ActKind::Heal(Strategy::Restart),
            replicas: None,
            key: format!("{target}/a{action}"),
            dry_run: false,
            reason: "test".into(),
        }
    }

    #[test]
    fn every_entry_of_an_action_carries_its_target_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_data_dir(dir.path()).unwrap();
        // a1 comes from a recovered journal, a2 is seen now.
        let mut w = JournalWriter::new(&[intent(1, "old")]);
        let now = Timestamp::from_secs(5);
        let entries = [
            JournalEntry::Acted {
                at: now,
                action: ActionId(1),
                outcome: Outcome::Success,
            },
            intent(2, "web"),
            JournalEntry::Acted {
                at: now,
                action: ActionId(2),
                outcome: Outcome::Success,
            },
            JournalEntry::Verified {
                at: now,
                action: ActionId(2),
                outcome: Outcome::Success,
            },
            JournalEntry::Closed {
                at: now,
                action: ActionId(2),
                result: AttemptResult::Success,
            },
            JournalEntry::Closed {
                at: now,
                action: ActionId(9),
                result: AttemptResult::Success,
            },
        ];
        for e in &entries {
            w.append(&mut store, now, e).unwrap();
        }
        let rows = store.journal_all().unwrap();
        let got: Vec<(&str, &str, Option<&str>)> = rows
            .iter()
            .map(|r| {
                (
                    r.entry.kind.as_str(),
                    r.entry.target.as_str(),
                    r.entry.idempotency_key.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("acted", "old", Some("old/a1")),
                ("intent", "web", Some("web/a2")),
                ("acted", "web", Some("web/a2")),
                ("verified", "web", Some("web/a2")),
                ("closed", "web", Some("web/a2")),
                ("closed", "", None),
            ]
        );
        assert_eq!(store.journal_by_key("web/a2").unwrap().len(), 4);
        // The payload round-trips into the engine's entry.
        let back: JournalEntry = serde_json::from_value(rows[1].entry.payload.clone()).unwrap();
        assert_eq!(back, entries[1]);
    }
}
