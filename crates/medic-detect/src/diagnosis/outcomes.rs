//! Learning from outcomes, offline: finished incidents read from the journal, their
//! signatures clustered, and the success of each strategy per cluster — the model behind
//! `medic train signatures`, loaded into medic's one learner, [`medic_strategy::Learner`].
//!
//! # Incidents from the journal ([`records_from_journal`], [`OutcomeTracker`])
//! The engine journals `incident_opened` (with a summary of the finding: health, failing
//! levels, diagnosis category, anomaly kind; and the anomaly kind and top feature names as
//! fields), `intent` (target and strategy of an act) and `closed` (its verified result). An
//! incident collects the verified results (success or failure; unknown and skipped do not
//! count) of the heal acts on its target until the next incident of that target opens.
//! Incidents without a verified result are counted, not kept. The signature's anomaly kind and
//! top features come from the entry's fields; journals written before they were recorded have
//! no top features (and the anomaly kind is read from the summary). The tier comes from the
//! caller (the fleet file), `unknown` otherwise.
//!
//! [`OutcomeTracker`] reads the same entries one at a time: the daemon feeds it its journal at
//! start ([`replay`]) and every entry it writes afterwards, so the learner a restarted daemon
//! rebuilds is the one it had, and `medic train signatures` sees the same incidents.
//!
//! Each verified result is also keyed by the strategies whose acts had already failed
//! verification in the incident when its act was chosen
//! ([`IncidentSignature::after_failed`]): those since the incident opened, forgotten at a
//! verified success. (The engine's plans ask with the failures since the last success within
//! the tier's `attempt_window`, which the ladder climbs on; the two differ only when a target
//! fails again within that window after an incident that ended without a verified success.)
//!
//! # Trained journal mark
//! A model trained from a store records the store's data directory and the last journal
//! sequence number it read ([`TrainedJournal`]). A daemon loading it over that same store
//! replays only the verified outcomes after that number, so nothing is counted twice.
//!
//! # Clustering ([`train`])
//! Each signature is encoded by [`medic_strategy::SignatureSpace::encode`] (its layout is
//! documented there). k-means (`linfa-clustering`, k-means++ with linfa's fixed seed 42,
//! `n_runs` restarts) with the given k, or DBSCAN with `eps` and `min_points` (its noise
//! points are counted and left out of the clusters and the silhouette). The mean silhouette
//! over Euclidean distances is reported.
//!
//! # Estimates and prior
//! Per cluster, strategies already failed (`after_failed`, empty for first responses) and
//! strategy the file keeps the verified successes `s` and attempts `n`, and
//! for the card the posterior mean under a uniform Beta(1, 1) prior, `(s + 1) / (n + 2)`.
//! At selection time the learner uses the option's own confidence `c` as the prior mean
//! instead, Beta(4c, 4(1 − c)), so `(4c + s) / (4 + n)` ([`medic_strategy::learn`]).
//!
//! # File
//! `outcome_signatures.json`: `{format, version, card, space, centroids, rates}`, and
//! `outcome_signatures.card.json` with the card alone. [`OutcomeModel::load`] checks every
//! number and index, so a corrupt file is an error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use linfa::DatasetBase;
use linfa::ParamGuard;
use linfa::traits::{Fit, Transformer};
use linfa_clustering::{Dbscan, KMeans};
use medic_core::{AnomalyKind, ProbeLevel, Strategy};
use medic_orchestrator::{ActKind, JournalEntry};
use medic_strategy::{AttemptResult, IncidentSignature, LearnedRate, Learner, SignatureSpace};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::signatures::silhouette;
use super::{Error, parse_category};

/// Format tag of outcome models.
pub const FORMAT: &str = "medic-outcome-signatures";
/// Current version of the format.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the model.
pub const MODEL_FILE: &str = "outcome_signatures.json";
/// File name of its card.
pub const CARD_FILE: &str = "outcome_signatures.card.json";
/// linfa's k-means seed (`KMeans::params`).
pub const KMEANS_SEED: u64 = 42;

/// One finished incident: its signature and the verified results of the acts on it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentRecord {
    /// The target.
    pub target: String,
    /// Its signature.
    pub signature: IncidentSignature,
    /// (strategy, success) of each verified heal act, in order.
    pub attempts: Vec<(Strategy, bool)>,
}

/// What [`records_from_journal`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalRead {
    /// Incidents with at least one verified result.
    pub records: Vec<IncidentRecord>,
    /// Incidents opened.
    pub incidents: usize,
    /// Incidents without any verified result.
    pub without_outcome: usize,
}

/// The signature of an `incident_opened` entry: the summary's failing levels and diagnosis,
/// the entry's anomaly kind (else the summary's) and its first
/// [`medic_strategy::learn::TOP_FEATURES`] feature names (sorted, as
/// [`IncidentSignature::of`] keeps them).
pub fn signature_from_entry(
    summary: &str,
    anomaly: Option<AnomalyKind>,
    top_features: &[String],
    tier: &str,
) -> IncidentSignature {
    let mut sig = signature_from_summary(summary, tier);
    if anomaly.is_some() {
        sig.anomaly = anomaly;
    }
    sig.top_features = top_features
        .iter()
        .take(medic_strategy::learn::TOP_FEATURES)
        .cloned()
        .collect();
    sig.top_features.sort();
    sig
}

/// The signature in an `incident_opened` summary (see the module documentation).
pub fn signature_from_summary(summary: &str, tier: &str) -> IncidentSignature {
    let mut sig = IncidentSignature {
        tier: tier.to_owned(),
        ..IncidentSignature::default()
    };
    for part in summary.split("; ") {
        if let Some(levels) = part.strip_prefix("failing ") {
            sig.failing = ProbeLevel::ALL
                .into_iter()
                .filter(|l| levels.split(' ').any(|w| w == l.as_str()))
                .collect();
        } else if let Some(rest) = part.strip_prefix("diagnosis ") {
            sig.category = rest.split(' ').next().and_then(parse_category);
        } else if let Some(rest) = part.strip_prefix("anomaly ") {
            let name = rest.split(' ').next().unwrap_or("");
            sig.anomaly = medic_strategy::learn::ANOMALY_KINDS
                .into_iter()
                .find(|k: &AnomalyKind| k.as_str() == name);
        }
    }
    sig
}

/// What one journal entry meant to [`OutcomeTracker::push`].
#[derive(Clone, Debug, PartialEq)]
pub enum Tracked {
    /// An incident opened on `target` with `signature`.
    Opened {
        /// The target.
        target: String,
        /// Its signature.
        signature: IncidentSignature,
    },
    /// A heal act on `target` ended with a verified result, during its current incident
    /// (`signature`: `None` when the journal shows no incident of it before; its
    /// `after_failed` names the strategies that had failed in the incident when the act was
    /// chosen).
    Verified {
        /// The target.
        target: String,
        /// The signature of the target's current incident.
        signature: Option<IncidentSignature>,
        /// The strategy of the act.
        strategy: Strategy,
        /// Whether verification said it healed.
        success: bool,
    },
}

/// Follows journal entries one at a time: each target's current incident signature and the
/// target and strategy of each open heal act (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct OutcomeTracker {
    current: HashMap<String, IncidentSignature>,
    /// Per target: strategies that failed verification in its current incident.
    failed: HashMap<String, Vec<Strategy>>,
    /// Per open heal act: target, strategy, and what had failed when it was chosen.
    acts: HashMap<u64, (String, Strategy, Vec<Strategy>)>,
}

impl OutcomeTracker {
    /// Knows nothing yet.
    pub fn new() -> OutcomeTracker {
        OutcomeTracker::default()
    }

    /// The signature of `target`'s latest incident, if the entries showed one.
    pub fn current(&self, target: &str) -> Option<&IncidentSignature> {
        self.current.get(target)
    }

    /// Takes the next entry; what it meant, if anything. `tier_of` names a target's tier.
    pub fn push(
        &mut self,
        entry: &JournalEntry,
        tier_of: &dyn Fn(&str) -> String,
    ) -> Option<Tracked> {
        match entry {
            JournalEntry::IncidentOpened {
                target,
                summary,
                anomaly,
                top_features,
                ..
            } => {
                let name = target.as_str().to_owned();
                let signature =
                    signature_from_entry(summary, *anomaly, top_features, &tier_of(&name));
                self.current.insert(name.clone(), signature.clone());
                self.failed.remove(&name);
                Some(Tracked::Opened {
                    target: name,
                    signature,
                })
            }
            JournalEntry::Intent {
                action,
                target,
                kind: ActKind::Heal(s),
                ..
            } => {
                let name = target.as_str().to_owned();
                let failed = self.failed.get(&name).cloned().unwrap_or_default();
                self.acts.insert(action.0, (name, *s, failed));
                None
            }
            JournalEntry::Closed { action, result, .. } => {
                let (target, strategy, after) = self.acts.remove(&action.0)?;
                let success = match result {
                    AttemptResult::Success => true,
                    AttemptResult::Failure => false,
                    _ => return None,
                };
                let failed = self.failed.entry(target.clone()).or_default();
                if success {
                    failed.clear();
                } else if !failed.contains(&strategy) {
                    failed.push(strategy);
                }
                Some(Tracked::Verified {
                    signature: self.current.get(&target).map(|s| s.clone().after(&after)),
                    target,
                    strategy,
                    success,
                })
            }
            _ => None,
        }
    }
}

/// Incidents and their verified results from journal entries in journal order; `tier_of`
/// names a target's tier.
pub fn records_from_journal(
    entries: &[JournalEntry],
    tier_of: &dyn Fn(&str) -> String,
) -> JournalRead {
    let mut read = JournalRead::default();
    let mut all: Vec<IncidentRecord> = Vec::new();
    let mut current: HashMap<String, usize> = HashMap::new();
    let mut tracker = OutcomeTracker::new();
    for e in entries {
        match tracker.push(e, tier_of) {
            Some(Tracked::Opened { target, signature }) => {
                read.incidents += 1;
                current.insert(target.clone(), all.len());
                all.push(IncidentRecord {
                    target,
                    signature,
                    attempts: Vec::new(),
                });
            }
            Some(Tracked::Verified {
                target,
                strategy,
                success,
                ..
            }) => {
                if let Some(&i) = current.get(&target) {
                    all[i].attempts.push((strategy, success));
                }
            }
            None => {}
        }
    }
    for r in all {
        if r.attempts.is_empty() {
            read.without_outcome += 1;
        } else {
            read.records.push(r);
        }
    }
    read
}

/// What [`replay`] fed the learner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Verified outcomes observed.
    pub observed: usize,
    /// Verified outcomes at or before the model's trained mark (already in its counts).
    pub already_counted: usize,
    /// Verified outcomes of a target without an incident in the journal (not observed).
    pub without_incident: usize,
}

/// Feeds `learner` the verified outcomes of `entries` (sequence number, entry; in journal
/// order) through `tracker`, skipping those with a sequence number at or below
/// `counted_through` (the model's [`TrainedJournal::last_seq`] when it was trained on this
/// journal). The tracker is left after the last entry, ready for the entries that follow.
pub fn replay(
    learner: &mut Learner,
    tracker: &mut OutcomeTracker,
    entries: &[(u64, JournalEntry)],
    counted_through: Option<u64>,
    tier_of: &dyn Fn(&str) -> String,
) -> Replayed {
    let mut r = Replayed::default();
    for (seq, e) in entries {
        if let Some(Tracked::Verified {
            signature,
            strategy,
            success,
            ..
        }) = tracker.push(e, tier_of)
        {
            if counted_through.is_some_and(|through| *seq <= through) {
                r.already_counted += 1;
            } else if let Some(sig) = signature {
                learner.observe(&sig, strategy, success);
                r.observed += 1;
            } else {
                r.without_incident += 1;
            }
        }
    }
    r
}

/// The engine's entries in stored journal payloads, in order, and how many payloads were
/// not an engine entry (skipped and counted, never an error: the journal also holds the
/// daemon's own rows).
pub fn journal_entries<'a>(
    payloads: impl IntoIterator<Item = &'a serde_json::Value>,
) -> (Vec<JournalEntry>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for p in payloads {
        match JournalEntry::deserialize(p) {
            Ok(e) => out.push(e),
            Err(_) => skipped += 1,
        }
    }
    (out, skipped)
}

/// How to cluster.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Method {
    /// k-means with this k.
    KMeans {
        /// Clusters.
        k: usize,
        /// Restarts (best inertia kept).
        n_runs: usize,
    },
    /// DBSCAN.
    Dbscan {
        /// Neighbourhood radius (Euclidean).
        eps: f64,
        /// Points within `eps` that make a core point.
        min_points: usize,
    },
}

/// Per cluster, strategies already failed and strategy: counts and the Beta(1, 1) posterior
/// mean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateRow {
    /// The cluster.
    pub cluster: usize,
    /// Strategies that had already failed in the incident when the act was chosen
    /// ([`IncidentSignature::after_failed`]); empty for first responses, and in files written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_failed: Vec<Strategy>,
    /// The strategy.
    pub strategy: Strategy,
    /// Verified successes.
    pub successes: u32,
    /// Verified attempts.
    pub attempts: u32,
    /// `(successes + 1) / (attempts + 2)`.
    pub estimate: f64,
}

/// One cluster in the card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterCard {
    /// Its index.
    pub id: usize,
    /// Incidents in it.
    pub size: usize,
    /// Its most common exact signature key.
    pub typical: String,
}

/// The model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeCard {
    /// Where the incidents came from.
    pub source: String,
    /// The clustering method and its parameters.
    pub method: Method,
    /// Seed of the clustering (linfa's k-means seed; DBSCAN is deterministic).
    pub seed: u64,
    /// Clusters.
    pub k: usize,
    /// Mean silhouette (Euclidean), over the clustered incidents.
    pub silhouette: f64,
    /// Incidents used.
    pub incidents: usize,
    /// DBSCAN noise incidents (not in any cluster).
    pub noise: usize,
    /// Verified attempts counted.
    pub attempts: usize,
    /// The encoding, in words.
    pub encoding: String,
    /// The prior, in words.
    pub prior: String,
    /// The clusters.
    pub clusters: Vec<ClusterCard>,
    /// medic's version that trained it.
    pub medic_version: String,
    /// The store's journal it was trained from, when it was (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<TrainedJournal>,
}

/// Which journal a model was trained from, and how far it read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainedJournal {
    /// The store's data directory, canonical.
    pub data_dir: PathBuf,
    /// The last journal sequence number read.
    pub last_seq: u64,
}

impl TrainedJournal {
    /// The mark of a store in `data_dir` read through `last_seq` (the path made canonical
    /// when it can be).
    pub fn new(data_dir: &Path, last_seq: u64) -> TrainedJournal {
        TrainedJournal {
            data_dir: std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned()),
            last_seq,
        }
    }

    /// The last sequence number already counted, if the model was trained on the store in
    /// `data_dir`; `None` for another store.
    pub fn counted_through(&self, data_dir: &Path) -> Option<u64> {
        let here = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        (here == self.data_dir).then_some(self.last_seq)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct FileRepr {
    format: String,
    version: u32,
    card: OutcomeCard,
    space: SignatureSpace,
    centroids: Vec<Vec<f64>>,
    rates: Vec<RateRow>,
}

/// A trained outcome model.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeModel {
    repr: FileRepr,
}

const ENCODING: &str = "0/1 vector: diagnosis category one-hot (11 + none), anomaly kind one-hot (6 + none), failing probe levels multi-hot (5), top features multi-hot (space.features), tier one-hot (space.tiers)";
const PRIOR: &str = "card estimates: Beta(1,1), (s+1)/(n+2); at selection: Beta(4c, 4(1-c)) with c the option's confidence, (4c+s)/(4+n)";

impl OutcomeModel {
    /// The card.
    pub fn card(&self) -> &OutcomeCard {
        &self.repr.card
    }

    /// The per cluster × strategy rows.
    pub fn rates(&self) -> &[RateRow] {
        &self.repr.rates
    }

    /// Records the journal the model was trained from (see [`TrainedJournal`]).
    pub fn with_journal(mut self, journal: TrainedJournal) -> OutcomeModel {
        self.repr.card.journal = Some(journal);
        self
    }

    /// The tiers the model's encoding knows.
    pub fn tiers(&self) -> &[String] {
        &self.repr.space.tiers
    }

    /// The model as medic's learner: clusters, their counts under `cluster:N` keys (with the
    /// `|after:…` suffix of [`RateRow::after_failed`]).
    pub fn learner(&self) -> Learner {
        let mut l = Learner::clustered(self.repr.space.clone(), self.repr.centroids.clone())
            .unwrap_or_default();
        for r in &self.repr.rates {
            l.set(
                &format!(
                    "cluster:{}{}",
                    r.cluster,
                    medic_strategy::learn::after_suffix(&r.after_failed)
                ),
                r.strategy,
                LearnedRate {
                    successes: r.successes,
                    attempts: r.attempts,
                },
            );
        }
        l
    }

    /// Writes the model and its card into `dir` (created if missing); their paths.
    pub fn save(&self, dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::WriteModel {
            path: dir.to_owned(),
            source,
        })?;
        let write = |path: PathBuf, json: Result<String, serde_json::Error>| {
            let json = json.map_err(|source| Error::EncodeModel {
                path: path.clone(),
                source,
            })?;
            std::fs::write(&path, json + "\n").map_err(|source| Error::WriteModel {
                path: path.clone(),
                source,
            })?;
            Ok::<PathBuf, Error>(path)
        };
        let model = write(dir.join(MODEL_FILE), serde_json::to_string(&self.repr))?;
        let card = write(
            dir.join(CARD_FILE),
            serde_json::to_string_pretty(&self.repr.card),
        )?;
        Ok((model, card))
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<OutcomeModel, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadModel {
            path: path.to_owned(),
            source,
        })?;
        let repr: FileRepr = serde_json::from_str(&text).map_err(|source| Error::ParseModel {
            path: path.to_owned(),
            source,
        })?;
        validate(&repr).map_err(|reason| Error::InvalidModel {
            path: path.to_owned(),
            reason,
        })?;
        Ok(OutcomeModel { repr })
    }
}

fn validate(r: &FileRepr) -> Result<(), String> {
    if r.format != FORMAT {
        return Err(format!("format {:?}, expected {FORMAT:?}", r.format));
    }
    if r.version != FORMAT_VERSION {
        return Err(format!(
            "version {}, this medic reads {FORMAT_VERSION}",
            r.version
        ));
    }
    if r.card.k != r.centroids.len() {
        return Err(format!(
            "card says k = {}, the file has {} centroids",
            r.card.k,
            r.centroids.len()
        ));
    }
    if !r.card.silhouette.is_finite() {
        return Err("silhouette is not a number".to_owned());
    }
    Learner::clustered(r.space.clone(), r.centroids.clone())?;
    for (i, row) in r.rates.iter().enumerate() {
        if row.cluster >= r.centroids.len() {
            return Err(format!("rate {i}: cluster {} does not exist", row.cluster));
        }
        if row.successes > row.attempts {
            return Err(format!(
                "rate {i}: {} successes in {} attempts",
                row.successes, row.attempts
            ));
        }
        if !(0.0..=1.0).contains(&row.estimate) {
            return Err(format!(
                "rate {i}: estimate {} outside [0, 1]",
                row.estimate
            ));
        }
    }
    Ok(())
}

/// Clusters `records` with `method` and estimates success per cluster and strategy.
///
/// # Errors
/// Fewer than two incidents, or fewer than k; k-means failing; DBSCAN parameters refused or
/// every incident noise.
pub fn train(
    records: &[IncidentRecord],
    method: Method,
    source: &str,
) -> Result<OutcomeModel, Error> {
    let sigs: Vec<IncidentSignature> = records.iter().map(|r| r.signature.clone()).collect();
    let space = SignatureSpace::of(&sigs);
    let n = records.len();
    let need = match method {
        Method::KMeans { k, .. } => k.max(2),
        Method::Dbscan { min_points, .. } => min_points.max(2),
    };
    if n < need {
        return Err(Error::TooFewIncidents { found: n, need });
    }
    let dim = space.dim();
    let mut x = Array2::<f64>::zeros((n, dim));
    let mut v = Vec::new();
    for (i, s) in sigs.iter().enumerate() {
        space.encode(s, &mut v);
        x.row_mut(i).iter_mut().zip(&v).for_each(|(a, b)| *a = *b);
    }
    // Cluster of each incident; None = DBSCAN noise.
    let members: Vec<Option<usize>> = match method {
        Method::KMeans { k, n_runs } => {
            let model = KMeans::params(k)
                .n_runs(n_runs.max(1))
                .max_n_iterations(200)
                .tolerance(1e-6)
                .fit(&DatasetBase::from(x.clone()))
                .map_err(Error::Clustering)?;
            let c = model.centroids();
            (0..n)
                .map(|i| {
                    let mut best = (0, f64::INFINITY);
                    for (j, row) in c.rows().into_iter().enumerate() {
                        let d: f64 = row
                            .iter()
                            .zip(x.row(i))
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum();
                        if d < best.1 {
                            best = (j, d);
                        }
                    }
                    Some(best.0)
                })
                .collect()
        }
        Method::Dbscan { eps, min_points } => {
            let params = Dbscan::params(min_points)
                .tolerance(eps)
                .check()
                .map_err(Error::Dbscan)?;
            params.transform(&x).to_vec()
        }
    };
    // Renumber the non-empty clusters by size (largest first), ties by first member.
    let mut sizes: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        if let Some(c) = m {
            let e = sizes.entry(*c).or_insert((0, i));
            e.0 += 1;
        }
    }
    if sizes.is_empty() {
        return Err(Error::TooFewIncidents { found: 0, need });
    }
    let mut order: Vec<(usize, (usize, usize))> = sizes.into_iter().collect();
    order.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
    let renumber: HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(new, (old, _))| (*old, new))
        .collect();
    let members: Vec<Option<usize>> = members.iter().map(|m| m.map(|c| renumber[&c])).collect();
    let k = order.len();
    // Centroids: mean of members.
    let mut centroids = vec![vec![0.0; dim]; k];
    let mut counts = vec![0usize; k];
    for (i, m) in members.iter().enumerate() {
        if let Some(c) = *m {
            counts[c] += 1;
            centroids[c]
                .iter_mut()
                .zip(x.row(i))
                .for_each(|(a, b)| *a += b);
        }
    }
    for (c, n) in centroids.iter_mut().zip(&counts) {
        c.iter_mut().for_each(|a| *a /= *n as f64);
    }
    // Silhouette over clustered incidents.
    let kept: Vec<usize> = (0..n).filter(|&i| members[i].is_some()).collect();
    let dist = Array2::from_shape_fn((kept.len(), kept.len()), |(a, b)| {
        x.row(kept[a])
            .iter()
            .zip(x.row(kept[b]))
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>()
            .sqrt()
    });
    let kept_members: Vec<usize> = kept.iter().filter_map(|&i| members[i]).collect();
    let sil = silhouette(&dist, &kept_members, k);
    // Counts per cluster, strategies already failed in the incident (as the tracker keys
    // them: failed since the incident opened, forgotten at a success) and strategy.
    let mut table: BTreeMap<(usize, Vec<Strategy>, Strategy), (u32, u32)> = BTreeMap::new();
    let mut attempts = 0usize;
    let mut typical: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); k];
    for (r, m) in records.iter().zip(&members) {
        let Some(c) = *m else { continue };
        *typical[c].entry(r.signature.key()).or_default() += 1;
        let mut failed: Vec<Strategy> = Vec::new();
        for &(s, ok) in &r.attempts {
            let after = IncidentSignature::default().after(&failed).after_failed;
            let e = table.entry((c, after, s)).or_default();
            e.1 += 1;
            if ok {
                e.0 += 1;
                failed.clear();
            } else if !failed.contains(&s) {
                failed.push(s);
            }
            attempts += 1;
        }
    }
    let rates = table
        .into_iter()
        .map(|((cluster, after_failed, strategy), (s, n))| RateRow {
            cluster,
            after_failed,
            strategy,
            successes: s,
            attempts: n,
            estimate: (f64::from(s) + 1.0) / (f64::from(n) + 2.0),
        })
        .collect();
    let clusters = (0..k)
        .map(|c| ClusterCard {
            id: c,
            size: counts[c],
            typical: typical[c]
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(key, _)| key.clone())
                .unwrap_or_default(),
        })
        .collect();
    let card = OutcomeCard {
        source: source.to_owned(),
        method,
        seed: KMEANS_SEED,
        k,
        silhouette: sil,
        incidents: n,
        noise: n - kept.len(),
        attempts,
        encoding: ENCODING.to_owned(),
        prior: PRIOR.to_owned(),
        clusters,
        medic_version: env!("CARGO_PKG_VERSION").to_owned(),
        journal: None,
    };
    Ok(OutcomeModel {
        repr: FileRepr {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            card,
            space,
            centroids,
            rates,
        },
    })
}

/// The cluster each record falls in under `model` (nearest centroid).
pub fn assign(model: &OutcomeModel, records: &[IncidentRecord]) -> Vec<usize> {
    let l = model.learner();
    records
        .iter()
        .map(|r| l.cluster_of(&r.signature).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::{HealthState, Timestamp};
    use medic_orchestrator::ActionId;

    fn sig(
        category: Option<DiagnosisCategory>,
        anomaly: Option<AnomalyKind>,
        failing: &[ProbeLevel],
        tier: &str,
    ) -> IncidentSignature {
        IncidentSignature {
            category,
            anomaly,
            top_features: Vec::new(),
            failing: failing.to_vec(),
            tier: tier.to_owned(),
            after_failed: Vec::new(),
        }
    }

    use medic_core::DiagnosisCategory;

    /// Three groups of 10: crashes on critical (restart works), OOMs on critical with a
    /// resource anomaly (restart fails 3 of 4), configuration errors on default (repair
    /// works). Within a group the failing levels vary a little.
    fn groups() -> Vec<IncidentRecord> {
        use ProbeLevel::*;
        let mut out = Vec::new();
        for i in 0..10 {
            let extra: &[ProbeLevel] = if i % 2 == 0 {
                &[Liveness]
            } else {
                &[Liveness, Readiness]
            };
            out.push(IncidentRecord {
                target: format!("a-{i}"),
                signature: sig(Some(DiagnosisCategory::Crash), None, extra, "critical"),
                attempts: vec![(Strategy::Restart, true)],
            });
            out.push(IncidentRecord {
                target: format!("b-{i}"),
                signature: sig(
                    Some(DiagnosisCategory::ResourceExhaustion),
                    Some(AnomalyKind::Resource),
                    &[Resources],
                    "critical",
                ),
                attempts: vec![(Strategy::Restart, i % 4 == 0)],
            });
            out.push(IncidentRecord {
                target: format!("c-{i}"),
                signature: sig(
                    Some(DiagnosisCategory::Configuration),
                    None,
                    if i % 3 == 0 { &[Readiness] } else { extra },
                    "default",
                ),
                attempts: vec![(Strategy::Restart, false), (Strategy::Repair, true)],
            });
        }
        out
    }

    fn recovered(model: &OutcomeModel, records: &[IncidentRecord]) {
        let a = assign(model, records);
        for g in 0..3 {
            let first = a[g];
            for i in 0..10 {
                assert_eq!(a[3 * i + g], first, "group {g} split: {a:?}");
            }
        }
        assert_ne!(a[0], a[1]);
        assert_ne!(a[1], a[2]);
        assert_ne!(a[0], a[2]);
    }

    #[test]
    fn kmeans_and_dbscan_recover_hand_built_groups() {
        let records = groups();
        let m = train(&records, Method::KMeans { k: 3, n_runs: 4 }, "test").unwrap();
        assert_eq!(m.card().k, 3);
        assert!(m.card().silhouette > 0.5, "{}", m.card().silhouette);
        recovered(&m, &records);
        let d = train(
            &records,
            Method::Dbscan {
                eps: 1.5,
                min_points: 3,
            },
            "test",
        )
        .unwrap();
        assert_eq!(d.card().k, 3);
        assert_eq!(d.card().noise, 0);
        assert!(d.card().silhouette > 0.5);
        recovered(&d, &records);
        // A larger k splits the groups' variants; the silhouette is still reported.
        let over = train(&records, Method::KMeans { k: 6, n_runs: 4 }, "test").unwrap();
        assert!(over.card().k > 3 && over.card().k <= 6);
        assert!((-1.0..=1.0).contains(&over.card().silhouette));
        // Too few incidents for k is an error, not a panic.
        assert!(matches!(
            train(&records[..2], Method::KMeans { k: 3, n_runs: 1 }, "test"),
            Err(Error::TooFewIncidents { found: 2, need: 3 })
        ));
    }

    #[test]
    fn beta_estimates_on_hand_computed_counts() {
        let records = groups();
        let m = train(&records, Method::KMeans { k: 3, n_runs: 4 }, "test").unwrap();
        let oom = assign(&m, &records)[1];
        let row = m
            .rates()
            .iter()
            .find(|r| r.cluster == oom && r.strategy == Strategy::Restart)
            .unwrap();
        // restart succeeded for i = 0, 4, 8: 3 of 10; Beta(1,1): (3+1)/(10+2)
        assert_eq!((row.successes, row.attempts), (3, 10));
        assert!((row.estimate - 4.0 / 12.0).abs() < 1e-12);
        let cfg = assign(&m, &records)[2];
        let rows: Vec<(Strategy, u32, u32)> = m
            .rates()
            .iter()
            .filter(|r| r.cluster == cfg)
            .map(|r| (r.strategy, r.successes, r.attempts))
            .collect();
        assert_eq!(
            rows,
            [(Strategy::Restart, 0, 10), (Strategy::Repair, 10, 10)]
        );
        // The learner carries them under the cluster key; repair ran after restart failed.
        let l = m.learner();
        assert_eq!(
            l.get(&format!("cluster:{cfg}|after:restart"), Strategy::Repair),
            Some(LearnedRate {
                successes: 10,
                attempts: 10
            })
        );
        assert_eq!(l.get(&format!("cluster:{cfg}"), Strategy::Repair), None);
        assert_eq!(
            l.get(&format!("cluster:{cfg}"), Strategy::Restart),
            Some(LearnedRate {
                successes: 0,
                attempts: 10
            })
        );
        let repair = m
            .rates()
            .iter()
            .find(|r| r.cluster == cfg && r.strategy == Strategy::Repair)
            .unwrap();
        assert_eq!(repair.after_failed, [Strategy::Restart]);
    }

    #[test]
    fn model_file_round_trip_and_corrupt_files_refused() {
        let records = groups();
        let m = train(&records, Method::KMeans { k: 3, n_runs: 2 }, "test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (path, card) = m.save(dir.path()).unwrap();
        assert!(card.exists());
        let back = OutcomeModel::load(&path).unwrap();
        assert_eq!(back, m);
        let text = std::fs::read_to_string(&path).unwrap();
        let bad = dir.path().join("bad.json");
        for (from, to) in [
            ("\"successes\":", "\"successes\":99999,\"x\":"),
            ("\"version\":1", "\"version\":7"),
            ("\"cluster\":0", "\"cluster\":42"),
        ] {
            std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
            assert!(
                matches!(OutcomeModel::load(&bad), Err(Error::InvalidModel { .. })),
                "{from} → {to} accepted"
            );
        }
        std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
        assert!(matches!(
            OutcomeModel::load(&bad),
            Err(Error::ParseModel { .. })
        ));
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["centroids"][0].as_array_mut().unwrap().pop();
        std::fs::write(&bad, v.to_string()).unwrap();
        assert!(matches!(
            OutcomeModel::load(&bad),
            Err(Error::InvalidModel { .. })
        ));
    }

    #[test]
    fn journal_incidents_collect_their_verified_results() {
        let t = |s: &str| medic_core::TargetId::from(s);
        let at = Timestamp::ZERO;
        let intent = |id: u64, target: &str, s: Strategy| JournalEntry::Intent {
            at,
            action: ActionId(id),
            target: t(target),
            kind: ActKind::Heal(s),
            replicas: None,
            key: format!("{target}/a{id}"),
            dry_run: false,
            reason: String::new(),
        };
        let closed = |id: u64, result| JournalEntry::Closed {
            at,
            action: ActionId(id),
            result,
        };
        let entries = vec![
            JournalEntry::IncidentOpened {
                at,
                target: t("api-1"),
                health: HealthState::Unhealthy,
                summary: "unhealthy (critical); failing liveness readiness; diagnosis crash (0.80); anomaly resource (score 0.90); memory 97%".into(),
                anomaly: None,
                top_features: Vec::new(),
            },
            intent(1, "api-1", Strategy::Restart),
            closed(1, AttemptResult::Failure),
            intent(2, "api-1", Strategy::Reset),
            closed(2, AttemptResult::Success),
            JournalEntry::IncidentOpened {
                at,
                target: t("db-1"),
                health: HealthState::Degraded,
                summary: "degraded (warning); failing performance".into(),
                anomaly: None,
                top_features: Vec::new(),
            },
            intent(3, "db-1", Strategy::Scale),
            closed(3, AttemptResult::Unknown),
        ];
        let read = records_from_journal(&entries, &|name| {
            if name == "api-1" {
                "critical"
            } else {
                "default"
            }
            .to_owned()
        });
        assert_eq!(read.incidents, 2);
        assert_eq!(read.without_outcome, 1);
        assert_eq!(read.records.len(), 1);
        let r = &read.records[0];
        assert_eq!(
            r.signature.key(),
            "sig:crash|resource|-|liveness,readiness|critical"
        );
        assert_eq!(
            r.attempts,
            [(Strategy::Restart, false), (Strategy::Reset, true)]
        );
    }

    #[test]
    fn recorded_top_features_enter_the_signature_and_replay_skips_what_the_model_counted() {
        let t = |s: &str| medic_core::TargetId::from(s);
        let at = Timestamp::ZERO;
        // An entry as the engine writes it now, and one from an older journal (no fields).
        let new: JournalEntry = serde_json::from_value(serde_json::json!({
            "entry": "incident_opened", "at": 0, "target": "api-1", "health": "unhealthy",
            "summary": "unhealthy (critical); failing liveness; anomaly resource (score 0.90)",
            "anomaly": "resource",
            "top_features": ["rss_slope", "fd_count", "cpu", "latency_p99"]
        }))
        .unwrap();
        let old: JournalEntry = serde_json::from_value(serde_json::json!({
            "entry": "incident_opened", "at": 0, "target": "api-1", "health": "unhealthy",
            "summary": "unhealthy (critical); failing liveness; anomaly resource (score 0.90)"
        }))
        .unwrap();
        let tier = |_: &str| "critical".to_owned();
        let mut tracker = OutcomeTracker::new();
        let Some(Tracked::Opened { signature, .. }) = tracker.push(&new, &tier) else {
            panic!("not an opening")
        };
        assert_eq!(
            signature.key(),
            "sig:-|resource|cpu,fd_count,rss_slope|liveness|critical"
        );
        let Some(Tracked::Opened { signature, .. }) = tracker.push(&old, &tier) else {
            panic!("not an opening")
        };
        assert_eq!(signature.key(), "sig:-|resource|-|liveness|critical");
        // An old entry written again keeps its shape: no empty new fields.
        let text = serde_json::to_string(&old).unwrap();
        assert!(
            !text.contains("top_features") && !text.contains("\"anomaly\""),
            "{text}"
        );

        let intent = |id: u64, s: Strategy| JournalEntry::Intent {
            at,
            action: ActionId(id),
            target: t("api-1"),
            kind: ActKind::Heal(s),
            replicas: None,
            key: format!("api-1/a{id}"),
            dry_run: false,
            reason: String::new(),
        };
        let closed = |id: u64, result| JournalEntry::Closed {
            at,
            action: ActionId(id),
            result,
        };
        let entries: Vec<(u64, JournalEntry)> = vec![
            (1, new.clone()),
            (2, intent(1, Strategy::Restart)),
            (3, closed(1, AttemptResult::Failure)),
            (4, intent(2, Strategy::Restart)),
            (5, closed(2, AttemptResult::Failure)),
            (6, intent(3, Strategy::Reset)),
            (7, closed(3, AttemptResult::Skipped)),
            (8, intent(4, Strategy::Reset)),
            (9, closed(4, AttemptResult::Success)),
        ];
        let sig = signature_from_entry(
            "unhealthy (critical); failing liveness",
            Some(AnomalyKind::Resource),
            &["rss_slope".into(), "fd_count".into(), "cpu".into()],
            "critical",
        );
        let mut l = Learner::new();
        let r = replay(&mut l, &mut OutcomeTracker::new(), &entries, None, &tier);
        assert_eq!(
            (r.observed, r.already_counted, r.without_incident),
            (3, 0, 0)
        );
        // The first restart was the incident's first response; the second restart and the
        // reset were chosen after a restart had failed (the skipped reset changes nothing).
        let one = |successes| {
            Some(LearnedRate {
                successes,
                attempts: 1,
            })
        };
        let after_restart = sig.clone().after(&[Strategy::Restart]).key();
        assert!(after_restart.ends_with("|critical|after:restart"));
        assert_eq!(l.get(&sig.key(), Strategy::Restart), one(0));
        assert_eq!(l.get(&after_restart, Strategy::Restart), one(0));
        assert_eq!(l.get(&after_restart, Strategy::Reset), one(1));
        assert_eq!(l.get(&sig.key(), Strategy::Reset), None);
        // Trained through seq 3: the first restart is already in the model's counts.
        let mut l = Learner::new();
        let r = replay(&mut l, &mut OutcomeTracker::new(), &entries, Some(3), &tier);
        assert_eq!((r.observed, r.already_counted), (2, 1));
        assert_eq!(l.get(&sig.key(), Strategy::Restart), None);
        assert_eq!(l.get(&after_restart, Strategy::Restart), one(0));
        // A new incident starts with nothing failed; a verified success forgets the failures.
        let mut tracker = OutcomeTracker::new();
        let more: Vec<(u64, JournalEntry)> = vec![
            (1, new.clone()),
            (2, intent(1, Strategy::Restart)),
            (3, closed(1, AttemptResult::Failure)),
            (4, new.clone()),
            (5, intent(2, Strategy::Reset)),
            (6, closed(2, AttemptResult::Failure)),
            (7, intent(3, Strategy::Recreate)),
            (8, closed(3, AttemptResult::Success)),
            (9, intent(4, Strategy::Restart)),
            (10, closed(4, AttemptResult::Failure)),
        ];
        let mut l = Learner::new();
        replay(&mut l, &mut tracker, &more, None, &tier);
        assert_eq!(
            l.get(&sig.key(), Strategy::Restart),
            Some(LearnedRate {
                successes: 0,
                attempts: 2
            })
        );
        assert_eq!(l.get(&sig.key(), Strategy::Reset), one(0));
        let after_reset = sig.clone().after(&[Strategy::Reset]).key();
        assert_eq!(l.get(&after_reset, Strategy::Recreate), one(1));
        // Outcomes of a target the journal never opened an incident for are not observed.
        let mut l = Learner::new();
        let r = replay(
            &mut l,
            &mut OutcomeTracker::new(),
            &entries[1..3],
            None,
            &tier,
        );
        assert_eq!((r.observed, r.without_incident), (0, 1));
        // The mark names its store.
        let dir = tempfile::tempdir().unwrap();
        let mark = TrainedJournal::new(dir.path(), 42);
        assert_eq!(mark.counted_through(dir.path()), Some(42));
        let other = tempfile::tempdir().unwrap();
        assert_eq!(mark.counted_through(other.path()), None);
    }
}
