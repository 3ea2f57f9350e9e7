//! The one learner of per-signature strategy success: failure signatures, their numeric
//! encoding, and the success counts that re-rank plans.
//!
//! # Signature
//! An [`IncidentSignature`] is what makes two incidents "the same kind": the diagnosis
//! category, the anomaly kind, the top anomaly features (at most [`TOP_FEATURES`] names), the
//! probe levels that failed, and the target's tier.
//!
//! An outcome is also kept apart by the strategies that had **already failed in the incident**
//! when its act was chosen ([`IncidentSignature::after_failed`]; empty for the incident's
//! first response). What works *after* something failed is another question than what works
//! first: a restart tried because a reroute just failed meets the failures a reroute cannot
//! end, and the rungs after restart and reset meet mostly the faults nothing ends. Mixed into
//! one count, those retries made restart look bad as a first response and sank the later
//! rungs in favour of options that had already failed (README, "Learning from outcomes").
//!
//! # Encoding ([`SignatureSpace::encode`])
//! A fixed-layout 0/1 vector, blocks in this order:
//! 1. diagnosis category, one-hot over [`DiagnosisCategory::ALL`] plus a last slot for "no
//!    diagnosis" (12 slots);
//! 2. anomaly kind, one-hot over [`ANOMALY_KINDS`] plus "no anomaly" (7 slots);
//! 3. failing probe levels, multi-hot over [`ProbeLevel::ALL`] (5 slots);
//! 4. top features, multi-hot over the space's feature vocabulary (names unknown to it are
//!    dropped);
//! 5. tier, one-hot over the space's tier vocabulary (an unknown tier is all zeros).
//!
//! `after_failed` is not encoded: clusters group kinds of incidents, and the strategies that
//! already failed are kept apart within a cluster (its key gets the same suffix).
//!
//! # Prior and estimate
//! Counts are kept per (signature key, strategy): verified successes and attempts with a
//! verified outcome. At selection time the option's own confidence `c` is the prior mean of a
//! Beta(`PRIOR_WEIGHT`·c, `PRIOR_WEIGHT`·(1 − c)) prior, so the posterior mean is
//! `(PRIOR_WEIGHT·c + successes) / (PRIOR_WEIGHT + attempts)` ([`posterior`]).
//!
//! # Keys
//! Without clusters, the key is the exact signature (`sig:…`, [`IncidentSignature::key`]);
//! with clusters (from `medic train signatures`), the nearest centroid's `cluster:N`, so a
//! failure that was never seen exactly borrows what its cluster learned. Either way a
//! non-empty `after_failed` adds `|after:s1,s2` (strategy order of [`Strategy::ALL`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use medic_core::{AnomalyKind, DiagnosisCategory, Finding, ProbeLevel, Strategy};
use serde::{Deserialize, Serialize};

use crate::select::{LearnedRate, SuccessRates};

/// Weight of an option's own confidence, in pseudo-attempts (the Beta prior's strength).
pub const PRIOR_WEIGHT: f64 = 4.0;

/// Top anomaly features kept in a signature.
pub const TOP_FEATURES: usize = 3;

/// The anomaly kinds in encoding order.
pub const ANOMALY_KINDS: [AnomalyKind; 6] = [
    AnomalyKind::Latency,
    AnomalyKind::Errors,
    AnomalyKind::Resource,
    AnomalyKind::Saturation,
    AnomalyKind::TrafficDrop,
    AnomalyKind::Mixed,
];

/// Posterior mean success of an option with base confidence `prior` after `rate` (see the
/// module documentation).
pub fn posterior(prior: f64, rate: LearnedRate) -> f64 {
    let c = prior.clamp(0.0, 1.0);
    (PRIOR_WEIGHT * c + f64::from(rate.successes)) / (PRIOR_WEIGHT + f64::from(rate.attempts))
}

/// The key suffix for strategies that had already failed: empty for none, else
/// `|after:s1,s2` in [`Strategy::ALL`] order (each once).
pub fn after_suffix(failed: &[Strategy]) -> String {
    let names: Vec<&str> = Strategy::ALL
        .into_iter()
        .filter(|s| failed.contains(s))
        .map(Strategy::as_str)
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("|after:{}", names.join(","))
    }
}

/// What identifies "the same kind of failure".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IncidentSignature {
    /// Diagnosis category, if diagnosed.
    pub category: Option<DiagnosisCategory>,
    /// Anomaly kind, if the anomaly detectors flagged it.
    pub anomaly: Option<AnomalyKind>,
    /// Names of the top anomaly features (at most [`TOP_FEATURES`], sorted).
    pub top_features: Vec<String>,
    /// Failing probe levels, in [`ProbeLevel::ALL`] order.
    pub failing: Vec<ProbeLevel>,
    /// The target's tier.
    pub tier: String,
    /// Strategies that had already failed in the incident when the act was chosen, in
    /// [`Strategy::ALL`] order; empty for the incident's first response. Absent in files
    /// written before it existed (read as empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_failed: Vec<Strategy>,
}

impl IncidentSignature {
    /// The signature of `finding` on a target of `tier`.
    pub fn of(finding: &Finding, tier: &str) -> IncidentSignature {
        let anomaly = finding.anomaly.as_ref().filter(|a| a.anomalous);
        let mut top_features: Vec<String> = anomaly
            .map(|a| {
                a.top_features
                    .iter()
                    .take(TOP_FEATURES)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        top_features.sort();
        IncidentSignature {
            category: finding.diagnosis.as_ref().map(|d| d.category),
            anomaly: anomaly.map(|a| a.kind),
            top_features,
            failing: ProbeLevel::ALL
                .into_iter()
                .filter(|l| finding.fails(*l))
                .collect(),
            tier: tier.to_owned(),
            after_failed: Vec::new(),
        }
    }

    /// The same signature for an act chosen after `failed` had failed in the incident (kept
    /// in [`Strategy::ALL`] order, each once).
    pub fn after(mut self, failed: &[Strategy]) -> IncidentSignature {
        self.after_failed = Strategy::ALL
            .into_iter()
            .filter(|s| failed.contains(s))
            .collect();
        self
    }

    /// The key suffix for [`IncidentSignature::after_failed`] ([`after_suffix`]).
    pub fn after_suffix(&self) -> String {
        after_suffix(&self.after_failed)
    }

    /// A stable text key, e.g. `sig:crash|-|-|liveness|critical_agents`, or
    /// `sig:crash|-|-|liveness|critical_agents|after:restart` for an act chosen after a
    /// restart failed in the incident.
    pub fn key(&self) -> String {
        let levels: Vec<&str> = self.failing.iter().map(|l| l.as_str()).collect();
        format!(
            "sig:{}|{}|{}|{}|{}{}",
            self.category.map_or("-", DiagnosisCategory::as_str),
            self.anomaly.map_or("-", AnomalyKind::as_str),
            if self.top_features.is_empty() {
                "-".to_owned()
            } else {
                self.top_features.join(",")
            },
            if levels.is_empty() {
                "-".to_owned()
            } else {
                levels.join(",")
            },
            self.tier,
            self.after_suffix()
        )
    }
}

/// The vocabularies that fix the encoding's layout (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureSpace {
    /// Feature names, in slot order.
    pub features: Vec<String>,
    /// Tier names, in slot order.
    pub tiers: Vec<String>,
}

impl SignatureSpace {
    /// Slots of the fixed blocks (category, anomaly, levels).
    pub const FIXED: usize = DiagnosisCategory::ALL.len() + 1 + ANOMALY_KINDS.len() + 1 + 5;

    /// The space of `signatures`: every feature and tier they name, sorted.
    pub fn of(signatures: &[IncidentSignature]) -> SignatureSpace {
        let mut features: Vec<String> = signatures
            .iter()
            .flat_map(|s| s.top_features.iter().cloned())
            .collect();
        features.sort();
        features.dedup();
        let mut tiers: Vec<String> = signatures.iter().map(|s| s.tier.clone()).collect();
        tiers.sort();
        tiers.dedup();
        SignatureSpace { features, tiers }
    }

    /// Length of an encoded vector.
    pub fn dim(&self) -> usize {
        Self::FIXED + self.features.len() + self.tiers.len()
    }

    /// Writes the encoding of `sig` into `out` (cleared first, then `dim()` values).
    pub fn encode(&self, sig: &IncidentSignature, out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.dim(), 0.0);
        let ncat = DiagnosisCategory::ALL.len();
        let cat = sig
            .category
            .and_then(|c| DiagnosisCategory::ALL.iter().position(|x| *x == c))
            .unwrap_or(ncat);
        out[cat] = 1.0;
        let base = ncat + 1;
        let an = sig
            .anomaly
            .and_then(|a| ANOMALY_KINDS.iter().position(|x| *x == a))
            .unwrap_or(ANOMALY_KINDS.len());
        out[base + an] = 1.0;
        let base = base + ANOMALY_KINDS.len() + 1;
        for l in &sig.failing {
            if let Some(i) = ProbeLevel::ALL.iter().position(|x| x == l) {
                out[base + i] = 1.0;
            }
        }
        let base = Self::FIXED;
        for f in &sig.top_features {
            if let Ok(i) = self.features.binary_search(f) {
                out[base + i] = 1.0;
            }
        }
        let base = base + self.features.len();
        if let Some(i) = self.tiers.iter().position(|t| *t == sig.tier) {
            out[base + i] = 1.0;
        }
    }
}

/// Success counts per signature key and strategy, optionally keyed by cluster.
///
/// This is medic's one learner: the engine reads it through [`SuccessRates`], the simulator
/// and the daemon feed it verified outcomes with [`Learner::observe`], and
/// `medic train signatures` builds it (clusters and counts) from the journal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Learner {
    space: SignatureSpace,
    centroids: Vec<Vec<f64>>,
    counts: BTreeMap<String, BTreeMap<Strategy, LearnedRate>>,
}

impl Learner {
    /// A learner keyed by exact signatures, knowing nothing yet.
    pub fn new() -> Learner {
        Learner::default()
    }

    /// A learner keyed by the nearest of `centroids` (each `space.dim()` long).
    ///
    /// # Errors
    /// A centroid of the wrong length or with a non-finite value, described.
    pub fn clustered(space: SignatureSpace, centroids: Vec<Vec<f64>>) -> Result<Learner, String> {
        let dim = space.dim();
        for (i, c) in centroids.iter().enumerate() {
            if c.len() != dim {
                return Err(format!(
                    "centroid {i} has {} values, expected {dim}",
                    c.len()
                ));
            }
            if c.iter().any(|x| !x.is_finite()) {
                return Err(format!("centroid {i} has a value that is not finite"));
            }
        }
        Ok(Learner {
            space,
            centroids,
            counts: BTreeMap::new(),
        })
    }

    /// The encoding's vocabularies.
    pub fn space(&self) -> &SignatureSpace {
        &self.space
    }

    /// The centroids (empty: exact keys).
    pub fn centroids(&self) -> &[Vec<f64>] {
        &self.centroids
    }

    /// The nearest centroid of `sig` (squared Euclidean distance), if there are centroids.
    pub fn cluster_of(&self, sig: &IncidentSignature) -> Option<usize> {
        if self.centroids.is_empty() {
            return None;
        }
        let mut v = Vec::new();
        self.space.encode(sig, &mut v);
        let mut best = (0, f64::INFINITY);
        for (i, c) in self.centroids.iter().enumerate() {
            let d: f64 = c.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum();
            if d < best.1 {
                best = (i, d);
            }
        }
        Some(best.0)
    }

    /// The key counts are kept under for `sig`: `cluster:N` or the exact `sig:…`, each with
    /// the `|after:…` suffix when something had already failed.
    pub fn key_of(&self, sig: &IncidentSignature) -> String {
        match self.cluster_of(sig) {
            Some(c) => format!("cluster:{c}{}", sig.after_suffix()),
            None => sig.key(),
        }
    }

    /// Adds one verified outcome of `strategy` on an incident with signature `sig`.
    pub fn observe(&mut self, sig: &IncidentSignature, strategy: Strategy, success: bool) {
        let key = self.key_of(sig);
        self.observe_key(&key, strategy, success);
    }

    /// Adds one verified outcome under an explicit key.
    pub fn observe_key(&mut self, key: &str, strategy: Strategy, success: bool) {
        let r = self
            .counts
            .entry(key.to_owned())
            .or_default()
            .entry(strategy)
            .or_default();
        r.attempts = r.attempts.saturating_add(1);
        if success {
            r.successes = r.successes.saturating_add(1);
        }
    }

    /// Sets the counts under `key` (loading a model).
    pub fn set(&mut self, key: &str, strategy: Strategy, rate: LearnedRate) {
        self.counts
            .entry(key.to_owned())
            .or_default()
            .insert(strategy, rate);
    }

    /// The counts of `strategy` under `key`.
    pub fn get(&self, key: &str, strategy: Strategy) -> Option<LearnedRate> {
        self.counts.get(key).and_then(|m| m.get(&strategy)).copied()
    }

    /// Every (key, strategy, counts), in key then strategy order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Strategy, LearnedRate)> {
        self.counts
            .iter()
            .flat_map(|(k, m)| m.iter().map(move |(s, r)| (k.as_str(), *s, *r)))
    }
}

impl SuccessRates for Learner {
    fn rate(&self, signature: &IncidentSignature, strategy: Strategy) -> Option<LearnedRate> {
        self.get(&self.key_of(signature), strategy)
    }
}

/// A [`Learner`] shared between the engine (reading) and whoever feeds it outcomes as they
/// happen (the simulator's loop, the daemon's brain). Cloning shares the same learner.
///
/// A poisoned lock (a panic while writing) reads as "nothing learned" and is not written to,
/// so learning can never stop healing.
#[derive(Clone, Debug, Default)]
pub struct SharedLearner(Arc<RwLock<Learner>>);

impl SharedLearner {
    /// Shares `learner`.
    pub fn new(learner: Learner) -> SharedLearner {
        SharedLearner(Arc::new(RwLock::new(learner)))
    }

    /// Adds one verified outcome (see [`Learner::observe`]).
    pub fn observe(&self, sig: &IncidentSignature, strategy: Strategy, success: bool) {
        if let Ok(mut l) = self.0.write() {
            l.observe(sig, strategy, success);
        }
    }

    /// A copy of the learner as it is now.
    pub fn snapshot(&self) -> Learner {
        self.0.read().map(|l| l.clone()).unwrap_or_default()
    }
}

impl SuccessRates for SharedLearner {
    fn rate(&self, signature: &IncidentSignature, strategy: Strategy) -> Option<LearnedRate> {
        self.0.read().ok()?.rate(signature, strategy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medic_core::{AnomalyFinding, DiagnosisFinding, HealthState, Timestamp};

    fn finding() -> Finding {
        let mut f = Finding::from_health(
            "api-1".into(),
            Timestamp::ZERO,
            HealthState::Unhealthy,
            [ProbeLevel::Readiness, ProbeLevel::Liveness]
                .into_iter()
                .collect(),
        );
        f.diagnosis = Some(DiagnosisFinding {
            category: DiagnosisCategory::Crash,
            confidence: 0.8,
            pattern_id: None,
            evidence: vec![],
        });
        f.anomaly = Some(AnomalyFinding {
            score: 0.9,
            anomalous: true,
            kind: AnomalyKind::Resource,
            top_features: vec![
                ("rss_slope".into(), 0.5),
                ("fd_count".into(), 0.3),
                ("cpu".into(), 0.1),
                ("latency_p99".into(), 0.05),
            ],
            reason: String::new(),
        });
        f
    }

    #[test]
    fn signature_and_encoding_follow_the_documented_layout() {
        let sig = IncidentSignature::of(&finding(), "critical");
        assert_eq!(sig.top_features, ["cpu", "fd_count", "rss_slope"]);
        assert_eq!(sig.failing, [ProbeLevel::Liveness, ProbeLevel::Readiness]);
        assert_eq!(
            sig.key(),
            "sig:crash|resource|cpu,fd_count,rss_slope|liveness,readiness|critical"
        );
        let space = SignatureSpace {
            features: vec!["cpu".into(), "rss_slope".into()],
            tiers: vec!["critical".into(), "default".into()],
        };
        assert_eq!(space.dim(), 24 + 2 + 2);
        let mut v = vec![9.0; 3];
        space.encode(&sig, &mut v);
        let ones: Vec<usize> = (0..v.len()).filter(|&i| v[i] == 1.0).collect();
        // crash is category 9; resource is anomaly 2 (slot 12 + 2); liveness and readiness
        // are levels 0 and 1 (slots 19, 20); cpu and rss_slope (24, 25; fd_count is not in
        // the vocabulary); tier critical (26).
        assert_eq!(ones, [9, 14, 19, 20, 24, 25, 26]);
        assert_eq!(v.iter().filter(|x| **x != 0.0).count(), ones.len());
        // No diagnosis, no anomaly, unknown tier: the "none" slots, no tier slot.
        let none = IncidentSignature {
            tier: "other".into(),
            ..IncidentSignature::default()
        };
        space.encode(&none, &mut v);
        let ones: Vec<usize> = (0..v.len()).filter(|&i| v[i] == 1.0).collect();
        assert_eq!(ones, [11, 18]);
    }

    #[test]
    fn outcomes_after_a_failure_are_kept_apart_from_first_responses() {
        let f = finding();
        let first = IncidentSignature::of(&f, "critical");
        assert!(first.after_failed.is_empty());
        // Strategy order, each once, whatever order they failed in.
        let retry = first
            .clone()
            .after(&[Strategy::Restart, Strategy::Reroute, Strategy::Restart]);
        assert_eq!(retry.after_failed, [Strategy::Restart, Strategy::Reroute]);
        assert_eq!(
            retry.key(),
            "sig:crash|resource|cpu,fd_count,rss_slope|liveness,readiness|critical\
             |after:restart,reroute"
        );
        let mut l = Learner::new();
        for _ in 0..3 {
            l.observe(&retry, Strategy::Reset, false);
        }
        l.observe(&first, Strategy::Reset, true);
        assert_eq!(
            l.rate(&retry, Strategy::Reset),
            Some(LearnedRate {
                successes: 0,
                attempts: 3
            })
        );
        assert_eq!(
            l.rate(&first, Strategy::Reset),
            Some(LearnedRate {
                successes: 1,
                attempts: 1
            })
        );
        // Not encoded (clusters group kinds of incidents); a cluster key gets the suffix.
        let space = SignatureSpace::of(std::slice::from_ref(&first));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        space.encode(&first, &mut a);
        space.encode(&retry, &mut b);
        assert_eq!(a, b);
        let l = Learner::clustered(space, vec![a]).unwrap();
        assert_eq!(l.key_of(&first), "cluster:0");
        assert_eq!(l.key_of(&retry), "cluster:0|after:restart,reroute");
        // Signatures written before the field existed read as first responses; a first
        // response is written without it.
        let old = r#"{"category":"crash","anomaly":null,"top_features":[],"failing":["liveness"],"tier":"t"}"#;
        let sig: IncidentSignature = serde_json::from_str(old).unwrap();
        assert!(sig.after_failed.is_empty());
        assert_eq!(serde_json::to_string(&sig).unwrap(), old);
        let back: IncidentSignature =
            serde_json::from_str(&serde_json::to_string(&retry).unwrap()).unwrap();
        assert_eq!(back, retry);
    }

    #[test]
    fn beta_posterior_on_hand_computed_counts() {
        let r = LearnedRate {
            successes: 3,
            attempts: 10,
        };
        // (4·0.5 + 3) / (4 + 10) = 5 / 14
        assert!((posterior(0.5, r) - 5.0 / 14.0).abs() < 1e-12);
        // (4·0.9 + 0) / (4 + 4) = 0.45
        let r = LearnedRate {
            successes: 0,
            attempts: 4,
        };
        assert!((posterior(0.9, r) - 0.45).abs() < 1e-12);
        assert_eq!(posterior(0.7, LearnedRate::default()), 0.7);
    }

    #[test]
    fn learner_keys_exactly_or_by_nearest_cluster() {
        let f = finding();
        let sig = IncidentSignature::of(&f, "critical");
        let mut l = Learner::new();
        l.observe(&sig, Strategy::Restart, false);
        l.observe(&sig, Strategy::Restart, true);
        assert_eq!(
            l.rate(&IncidentSignature::of(&f, "critical"), Strategy::Restart),
            Some(LearnedRate {
                successes: 1,
                attempts: 2
            })
        );
        assert_eq!(
            l.rate(&IncidentSignature::of(&f, "default"), Strategy::Restart),
            None
        );

        let space = SignatureSpace::of(std::slice::from_ref(&sig));
        let mut a = Vec::new();
        space.encode(&sig, &mut a);
        let far = vec![0.0; space.dim()];
        assert!(Learner::clustered(space.clone(), vec![vec![0.0; 3]]).is_err());
        let mut l = Learner::clustered(space, vec![far, a]).unwrap();
        assert_eq!(l.key_of(&sig), "cluster:1");
        l.observe(&sig, Strategy::Reset, true);
        // A different tier is not in the space, but the nearest cluster is still 1.
        assert_eq!(
            l.rate(&IncidentSignature::of(&f, "other"), Strategy::Reset)
                .map(|r| r.successes),
            Some(1)
        );
        let shared = SharedLearner::new(l);
        shared.observe(&sig, Strategy::Reset, false);
        assert_eq!(
            shared.rate(&sig, Strategy::Reset),
            Some(LearnedRate {
                successes: 1,
                attempts: 2
            })
        );
    }
}
