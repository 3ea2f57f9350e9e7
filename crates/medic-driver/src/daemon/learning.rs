//! Learning from outcomes in the daemon: medic's one learner ([`medic_strategy::Learner`],
//! shared with the engine as its [`medic_strategy::SuccessRates`]), started from the trained
//! outcome model when there is one, rebuilt from the journal at every start, and fed every
//! verified outcome as the brain journals it.
//!
//! The incident signatures come from the journal itself ([`OutcomeTracker`]: each
//! `incident_opened` entry with its failing levels, diagnosis, anomaly kind and top features),
//! the same reading `medic train signatures` does, so the counts a restarted daemon replays
//! are exactly the ones it had observed live. A model trained on this very store records how
//! far it read the journal; only later outcomes are replayed on top of its counts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use medic_detect::diagnosis::outcomes::{self, OutcomeModel, OutcomeTracker, Tracked};
use medic_orchestrator::JournalEntry;
use medic_policy::Fleet;
use medic_strategy::{Learner, SharedLearner, SuccessRates};

use super::DaemonError;

/// The daemon's learner and what it needs to keep learning.
pub(crate) struct DaemonLearning {
    shared: SharedLearner,
    tracker: OutcomeTracker,
    tiers: HashMap<String, String>,
    source: String,
    observed: u64,
    /// A copy of the learner and its view, rebuilt only after a change.
    view: Option<(Learner, medic_api::LearnedView)>,
}

/// Where the model file comes from.
enum ModelFile {
    /// `--signatures FILE`: a file that cannot be used stops the start.
    Explicit(PathBuf),
    /// Found in the data or models directory: a file that cannot be used is logged and left
    /// out.
    Found(PathBuf),
}

fn tiers_of(fleet: &Fleet) -> HashMap<String, String> {
    fleet
        .targets
        .iter()
        .map(|t| (t.name.as_str().to_owned(), t.tier.clone()))
        .collect()
}

/// Checks that `model` can key this fleet's incidents: a model trained with tier names
/// (`medic train signatures --fleet`) must know at least one of the fleet's tiers. A model
/// trained without the fleet (every tier `unknown`) fits any fleet.
fn check_fits(model: &OutcomeModel, fleet: &Fleet) -> Result<(), String> {
    let known: Vec<&String> = model.tiers().iter().filter(|t| *t != "unknown").collect();
    if known.is_empty() {
        return Ok(());
    }
    let mut ours: Vec<&str> = fleet.targets.iter().map(|t| t.tier.as_str()).collect();
    ours.sort_unstable();
    ours.dedup();
    if ours.iter().any(|t| known.iter().any(|k| k.as_str() == *t)) {
        Ok(())
    } else {
        Err(format!(
            "it was trained on tiers {known:?}, this fleet's targets are in {ours:?}: \
             its clusters would not match this fleet's incidents"
        ))
    }
}

/// The learner a usable outcome model starts, the journal sequence number through which the
/// model already counted this store's outcomes (if it was trained on it), and how to name it.
fn from_model(
    model: &OutcomeModel,
    path: &Path,
    data_dir: &Path,
) -> (Learner, Option<u64>, String) {
    let counted_through = model
        .card()
        .journal
        .as_ref()
        .and_then(|j| j.counted_through(data_dir));
    let source = format!("{} ({} clusters)", path.display(), model.card().k);
    (model.learner(), counted_through, source)
}

impl DaemonLearning {
    /// The learner at start: the model (`signatures`, else `outcome_signatures.json` in
    /// `data_dir`, else in `models`), then the journal's verified outcomes it has not
    /// counted.
    ///
    /// # Errors
    /// An explicit `signatures` file that cannot be read, is corrupt or does not fit the
    /// fleet. A file found in a directory is refused with a logged error instead.
    pub(crate) fn start(
        signatures: Option<&Path>,
        data_dir: &Path,
        models: Option<&Path>,
        fleet: &Fleet,
        journal: &[(u64, JournalEntry)],
    ) -> Result<DaemonLearning, DaemonError> {
        let file = match signatures {
            Some(p) => Some(ModelFile::Explicit(p.to_owned())),
            None => [Some(data_dir), models]
                .into_iter()
                .flatten()
                .map(|d| d.join(outcomes::MODEL_FILE))
                .find(|p| p.is_file())
                .map(ModelFile::Found),
        };
        let mut source = String::new();
        let mut learner = Learner::new();
        let mut counted_through = None;
        match file {
            None => {
                source.push_str("no outcome model: exact signatures");
            }
            Some(ModelFile::Explicit(path)) => {
                let model = OutcomeModel::load(&path).map_err(|e| DaemonError::Signatures {
                    path: path.clone(),
                    reason: crate::error_chain(&e),
                })?;
                check_fits(&model, fleet).map_err(|reason| DaemonError::Signatures {
                    path: path.clone(),
                    reason,
                })?;
                (learner, counted_through, source) = from_model(&model, &path, data_dir);
            }
            Some(ModelFile::Found(path)) => {
                let loaded = OutcomeModel::load(&path)
                    .map_err(|e| crate::error_chain(&e))
                    .and_then(|m| check_fits(&m, fleet).map(|()| m));
                match loaded {
                    Ok(model) => {
                        (learner, counted_through, source) = from_model(&model, &path, data_dir);
                    }
                    Err(reason) => {
                        tracing::error!(
                            path = %path.display(),
                            %reason,
                            "outcome model refused; learning from this journal's outcomes only"
                        );
                        source = format!("{} refused: exact signatures", path.display());
                    }
                }
            }
        }
        let tiers = tiers_of(fleet);
        let mut tracker = OutcomeTracker::new();
        let tier_of = |name: &str| {
            tiers
                .get(name)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let replayed = outcomes::replay(
            &mut learner,
            &mut tracker,
            journal,
            counted_through,
            &tier_of,
        );
        source.push_str(&format!(
            "; {} verified outcomes replayed from the journal",
            replayed.observed
        ));
        if replayed.already_counted > 0 {
            source.push_str(&format!(
                " ({} already in the model)",
                replayed.already_counted
            ));
        }
        tracing::info!(
            learner = %source,
            keys = learner.iter().count(),
            "learning from outcomes: plans re-rank strategies by their verified success"
        );
        Ok(DaemonLearning {
            shared: SharedLearner::new(learner),
            tracker,
            tiers,
            source,
            observed: replayed.observed as u64,
            view: None,
        })
    }

    /// The learner as the engine reads it.
    pub(crate) fn rates(&self) -> Box<dyn SuccessRates + Send + Sync> {
        Box::new(self.shared.clone())
    }

    /// The fleet changed (reload): tiers of new targets.
    pub(crate) fn set_fleet(&mut self, fleet: &Fleet) {
        self.tiers = tiers_of(fleet);
    }

    /// Follows one entry the brain journaled; a verified outcome is learned at once.
    pub(crate) fn observe(&mut self, entry: &JournalEntry) {
        let tiers = &self.tiers;
        let tier_of = |name: &str| {
            tiers
                .get(name)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned())
        };
        match self.tracker.push(entry, &tier_of) {
            Some(Tracked::Opened { .. }) => {}
            Some(Tracked::Verified {
                target,
                signature: Some(sig),
                strategy,
                success,
            }) => {
                self.shared.observe(&sig, strategy, success);
                self.observed += 1;
                self.view = None;
                tracing::info!(
                    %target,
                    signature = %sig.key(),
                    strategy = strategy.as_str(),
                    success,
                    "learned a verified outcome"
                );
            }
            Some(Tracked::Verified {
                signature: None, ..
            })
            | None => {}
        }
    }

    /// The whole learner, read-only.
    pub(crate) fn view(&mut self) -> &medic_api::LearnedView {
        &self.snapshot().1
    }

    /// What was learned on the signature of `target`'s latest incident: its key and one row
    /// per strategy (`None` without an incident in the journal).
    pub(crate) fn of_target(
        &mut self,
        target: &str,
    ) -> Option<(String, Vec<medic_api::LearnedRow>)> {
        let sig = self.tracker.current(target)?.clone();
        let (learner, view) = self.snapshot();
        let key = learner.key_of(&sig);
        let rows = view
            .rates
            .iter()
            .filter(|r| r.key == key)
            .cloned()
            .collect();
        Some((key, rows))
    }

    fn snapshot(&mut self) -> &(Learner, medic_api::LearnedView) {
        let (source, observed, shared) = (&self.source, self.observed, &self.shared);
        self.view.get_or_insert_with(|| {
            let learner = shared.snapshot();
            let rates = learner
                .iter()
                .map(|(key, strategy, r)| medic_api::LearnedRow {
                    key: key.to_owned(),
                    strategy,
                    successes: r.successes,
                    attempts: r.attempts,
                })
                .collect();
            let view = medic_api::LearnedView {
                source: source.clone(),
                observed,
                rates,
            };
            (learner, view)
        })
    }
}
