//! Failure signatures: recorded failures grouped into clusters offline (k-means from
//! `linfa-clustering`, k chosen by silhouette), and a pure nearest-centroid assignment at run
//! time that needs no linfa.
//!
//! # The vector of a failure
//! Each line of the failure's text is cut into tokens: ASCII letters and digits (and `_`),
//! lower-cased, digits removed (so pids, ports, sizes and times vanish), hexadecimal ids and
//! `0x…` addresses dropped, one-letter tokens, month/weekday names and a few English stop
//! words dropped. The terms of a failure are its tokens and the bigrams of adjacent tokens
//! within a line, plus pseudo-terms for the non-text [`Signals`]
//! (`~signal_kill`, `~rss_near_limit`, `~disk_full`), so "SIGKILL near the memory limit" is
//! part of a signature like any word. The vector is TF-IDF over the training vocabulary
//! (terms found in at least `min_df` failures; sublinear term frequency `1 + ln tf`, smoothed
//! idf `ln((1 + n) / (1 + df)) + 1`), L2-normalised.
//!
//! # Training ([`train`])
//! k-means (Euclidean, k-means++ initialisation, `n_runs` restarts, fixed seed inside
//! linfa) for every k of a range; the k with the best mean silhouette (over the same
//! Euclidean distances) wins, ties to the smaller k. Each cluster keeps its centroid (sparse
//! in the file), its size, its majority category (from the failures' labels, when they have
//! them) and its top terms.
//!
//! # Run time ([`SignatureModel::assign`])
//! The nearest centroid wins. A failure is **novel** — a kind not seen before, to escalate
//! rather than act on automatically — when none of its terms is in the vocabulary, or when
//! its cosine similarity to the nearest centroid is below that cluster's floor:
//! `min(q05 of the cluster's member similarities, median of all member similarities) /
//! novelty_margin` (the median keeps tiny, tight clusters from calling everything novel).
//! Similarity rather than distance, because a text sharing no term with a centroid is
//! orthogonal to it, while its Euclidean distance stays close to that of a loose member.
//!
//! # Files
//! `signatures.json` holds `{format, version, card, vocabulary, idf, clusters}`;
//! `signatures.card.json` beside it holds the card alone. Loading validates every index and
//! number, so a corrupt file is an error, never a panic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::KMeans;
use medic_core::DiagnosisCategory;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::analyze::{DISK_FULL_RATIO, OOM_RSS_RATIO, Signals};
use super::{Error, parse_category};

/// Format tag of signature model files.
pub const FORMAT: &str = "medic-signatures";
/// Current version of the format.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the model inside the output directory.
pub const MODEL_FILE: &str = "signatures.json";
/// File name of the card inside the output directory.
pub const CARD_FILE: &str = "signatures.card.json";

/// Lines of one failure's text that are read.
const MAX_LINES: usize = 200;
/// Longer tokens are ids or blobs, not words.
const MAX_TOKEN_LEN: usize = 40;
/// Top terms kept per cluster.
const TOP_TERMS: usize = 8;

/// Dropped tokens: timestamps' month and weekday names and English glue words.
const STOP_WORDS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "mon",
    "tue", "wed", "thu", "fri", "sat", "sun", "the", "an", "of", "to", "in", "for", "on", "at",
    "is", "was", "by", "with", "and", "or", "be", "it", "this", "that", "from", "as", "are",
];

/// One recorded failure to learn from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailureRecord {
    /// Its text: output tail, error lines, journal strings.
    pub text: String,
    /// Its non-text signals.
    pub signals: Signals,
    /// Its category when known (a labelled corpus, or a diagnosis), used to name clusters and
    /// to measure purity; never used to form the clusters.
    pub label: Option<DiagnosisCategory>,
}

/// Tokens of one line, in order (see the module documentation).
pub fn line_tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if raw.is_empty() || raw.len() > MAX_TOKEN_LEN {
            continue;
        }
        let has_digit = raw.bytes().any(|b| b.is_ascii_digit());
        if has_digit
            && (raw.bytes().all(|b| b.is_ascii_hexdigit())
                || raw.starts_with("0x")
                || raw.starts_with("0X"))
        {
            continue;
        }
        let token: String = raw
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let token = token.trim_matches('_');
        if token.len() < 2 || STOP_WORDS.contains(&token) {
            continue;
        }
        out.push(token.to_owned());
    }
    out
}

/// The terms of a failure: tokens, in-line bigrams and signal pseudo-terms.
pub fn terms(text: &str, signals: &Signals) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().take(MAX_LINES) {
        let tokens = line_tokens(line);
        for pair in tokens.windows(2) {
            out.push(format!("{} {}", pair[0], pair[1]));
        }
        out.extend(tokens);
    }
    if signals.exit_signal == Some(9) {
        out.push("~signal_kill".to_owned());
    }
    if signals.rss_ratio.is_some_and(|r| r >= OOM_RSS_RATIO) {
        out.push("~rss_near_limit".to_owned());
    }
    if signals.disk_used.iter().any(|(_, r)| *r > DISK_FULL_RATIO) {
        out.push("~disk_full".to_owned());
    }
    out
}

/// A sparse vector: (term index, weight), indices ascending.
type Sparse = Vec<(u32, f64)>;

/// Vocabulary and idf: terms → L2-normalised TF-IDF vectors.
#[derive(Clone, Debug)]
struct Vectorizer {
    index: HashMap<String, u32>,
    idf: Vec<f64>,
}

impl Vectorizer {
    fn new(vocabulary: &[String], idf: Vec<f64>) -> Self {
        let index = vocabulary
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Vectorizer { index, idf }
    }

    /// The vector of `terms`; empty when no term is in the vocabulary.
    fn vector(&self, terms: &[String]) -> Sparse {
        let mut tf: BTreeMap<u32, u32> = BTreeMap::new();
        for t in terms {
            if let Some(&i) = self.index.get(t) {
                *tf.entry(i).or_default() += 1;
            }
        }
        let mut v: Sparse = tf
            .into_iter()
            .map(|(i, n)| (i, (1.0 + f64::from(n).ln()) * self.idf[i as usize]))
            .collect();
        let norm = v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|(_, w)| *w /= norm);
        }
        v
    }
}

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainParams {
    /// Smallest k tried.
    pub k_min: usize,
    /// Largest k tried (capped at a third of the failures).
    pub k_max: usize,
    /// A term enters the vocabulary when this many failures contain it.
    pub min_df: usize,
    /// Most terms kept (the most frequent).
    pub max_vocabulary: usize,
    /// k-means restarts per k (best inertia kept).
    pub n_runs: usize,
    /// Divisor of the novelty floor (larger: fewer failures called novel).
    pub novelty_margin: f64,
    /// Where the failures came from, for the card.
    pub source: String,
}

impl Default for TrainParams {
    /// k from 4 to 30, min_df 2, at most 2000 terms, 4 runs, novelty margin 1.25.
    fn default() -> Self {
        TrainParams {
            k_min: 4,
            k_max: 30,
            min_df: 2,
            max_vocabulary: 2000,
            n_runs: 4,
            novelty_margin: 1.25,
            source: String::new(),
        }
    }
}

/// Silhouette and inertia of one k.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KScore {
    /// Clusters asked for.
    pub k: usize,
    /// Mean silhouette over all failures (singletons count 0).
    pub silhouette: f64,
    /// linfa's mean squared distance to the nearest centroid.
    pub inertia: f64,
}

/// One cluster: a failure signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// Index in the model.
    pub id: usize,
    /// Training failures assigned to it.
    pub size: usize,
    /// Novelty floor: a failure less similar (cosine) than this to the centroid is not this
    /// signature.
    pub min_similarity: f64,
    /// Majority category of its labelled members, if any were labelled.
    pub category: Option<String>,
    /// Share of the labelled members in that category.
    pub category_share: Option<f64>,
    /// Heaviest terms of the centroid, heaviest first.
    pub top_terms: Vec<String>,
}

/// The model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureCard {
    /// Where the failures came from.
    pub source: String,
    /// Failures used (with at least one vocabulary term).
    pub records: usize,
    /// Failures dropped because none of their terms made the vocabulary.
    pub skipped_empty: usize,
    /// Clusters kept (non-empty).
    pub k: usize,
    /// Mean silhouette of the chosen clustering.
    pub silhouette: f64,
    /// Every k tried.
    pub scan: Vec<KScore>,
    /// Purity w.r.t. the labels (share of failures in their cluster's majority category), when
    /// the failures were labelled.
    pub purity: Option<f64>,
    /// Vocabulary size.
    pub vocabulary_size: usize,
    /// The `min_df` used.
    pub min_df: usize,
    /// The `n_runs` used.
    pub n_runs: usize,
    /// Divisor of the novelty floor.
    pub novelty_margin: f64,
    /// How distances are measured.
    pub distance: String,
    /// The clusters, without centroids.
    pub clusters: Vec<ClusterSummary>,
    /// medic's version that trained it.
    pub medic_version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CentroidRepr {
    /// (term index, weight), indices ascending.
    terms: Vec<(u32, f64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct FileRepr {
    format: String,
    version: u32,
    card: SignatureCard,
    vocabulary: Vec<String>,
    idf: Vec<f64>,
    centroids: Vec<CentroidRepr>,
}

/// A trained signature model, ready to assign failures.
#[derive(Clone, Debug)]
pub struct SignatureModel {
    card: SignatureCard,
    vocabulary: Vec<String>,
    vectorizer: Vectorizer,
    /// Dense centroids, one row per cluster.
    centroids: Vec<Vec<f64>>,
    /// Squared norms of the centroids.
    norms2: Vec<f64>,
}

/// Where a failure belongs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The nearest cluster; `None` when no term of the failure is in the vocabulary.
    pub cluster: Option<usize>,
    /// Cosine similarity to its centroid (0: no term in common).
    pub similarity: f64,
    /// The cluster's novelty floor.
    pub min_similarity: f64,
    /// Far from every signature seen in training: escalate rather than act automatically.
    pub novel: bool,
    /// The cluster's majority category, if it has one.
    pub category: Option<DiagnosisCategory>,
    /// Terms of the failure found in the vocabulary.
    pub known_terms: usize,
}

impl Assignment {
    /// A stable key for learning: `cluster:N`, or `novel` for novel failures.
    pub fn key(&self) -> String {
        match (self.novel, self.cluster) {
            (false, Some(c)) => format!("cluster:{c}"),
            _ => "novel".to_owned(),
        }
    }
}

/// The result of [`train`].
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// The model.
    pub model: SignatureModel,
    /// Cluster of each input failure (in input order); `None` for skipped (empty) ones.
    pub assignments: Vec<Option<usize>>,
}

impl SignatureModel {
    /// The card.
    pub fn card(&self) -> &SignatureCard {
        &self.card
    }

    /// The vocabulary, in index order.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// Assigns one failure to its nearest signature, or calls it novel.
    pub fn assign(&self, text: &str, signals: &Signals) -> Assignment {
        let v = self.vectorizer.vector(&terms(text, signals));
        if v.is_empty() || self.centroids.is_empty() {
            return Assignment {
                cluster: None,
                similarity: 0.0,
                min_similarity: 0.0,
                novel: true,
                category: None,
                known_terms: v.len(),
            };
        }
        // Nearest by Euclidean distance, as k-means assigned (|v| = 1).
        let (best, _, dot) = self
            .centroids
            .iter()
            .zip(&self.norms2)
            .enumerate()
            .map(|(c, (centroid, n2))| {
                let dot: f64 = v.iter().map(|&(i, w)| w * centroid[i as usize]).sum();
                (c, 1.0 + n2 - 2.0 * dot, dot)
            })
            .fold(
                (0, f64::INFINITY, 0.0),
                |acc, x| if x.1 < acc.1 { x } else { acc },
            );
        let summary = &self.card.clusters[best];
        let norm = self.norms2[best].sqrt();
        let similarity = if norm > 0.0 { dot / norm } else { 0.0 };
        Assignment {
            cluster: Some(best),
            similarity,
            min_similarity: summary.min_similarity,
            novel: similarity < summary.min_similarity,
            category: summary.category.as_deref().and_then(parse_category),
            known_terms: v.len(),
        }
    }

    /// Writes `signatures.json` and `signatures.card.json` into `dir` (created if missing);
    /// returns their paths.
    pub fn save(&self, dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
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
        std::fs::create_dir_all(dir).map_err(|source| Error::WriteModel {
            path: dir.to_owned(),
            source,
        })?;
        let repr = FileRepr {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            card: self.card.clone(),
            vocabulary: self.vocabulary.clone(),
            idf: self.vectorizer.idf.clone(),
            centroids: self
                .centroids
                .iter()
                .map(|c| CentroidRepr {
                    terms: c
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| **w != 0.0)
                        .map(|(i, w)| (i as u32, *w))
                        .collect(),
                })
                .collect(),
        };
        let model = write(dir.join(MODEL_FILE), serde_json::to_string(&repr))?;
        let card = write(
            dir.join(CARD_FILE),
            serde_json::to_string_pretty(&self.card),
        )?;
        Ok((model, card))
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadModel {
            path: path.to_owned(),
            source,
        })?;
        let repr: FileRepr = serde_json::from_str(&text).map_err(|source| Error::ParseModel {
            path: path.to_owned(),
            source,
        })?;
        Self::from_repr(repr).map_err(|reason| Error::InvalidModel {
            path: path.to_owned(),
            reason,
        })
    }

    fn from_repr(repr: FileRepr) -> Result<Self, String> {
        if repr.format != FORMAT {
            return Err(format!("format {:?}, expected {FORMAT:?}", repr.format));
        }
        if repr.version != FORMAT_VERSION {
            return Err(format!(
                "version {}, this medic reads {FORMAT_VERSION}",
                repr.version
            ));
        }
        let v = repr.vocabulary.len();
        if repr.idf.len() != v {
            return Err(format!("{} idf values for {v} terms", repr.idf.len()));
        }
        if repr.idf.iter().any(|x| !x.is_finite() || *x <= 0.0) {
            return Err("an idf value is not a positive number".to_owned());
        }
        if repr.vocabulary.iter().collect::<HashSet<_>>().len() != v {
            return Err("the vocabulary has duplicate terms".to_owned());
        }
        if repr.centroids.len() != repr.card.clusters.len() {
            return Err(format!(
                "{} centroids for {} clusters",
                repr.centroids.len(),
                repr.card.clusters.len()
            ));
        }
        let mut centroids = Vec::with_capacity(repr.centroids.len());
        for (c, (centroid, summary)) in repr.centroids.iter().zip(&repr.card.clusters).enumerate() {
            if !summary.min_similarity.is_finite() {
                return Err(format!("cluster {c}: min_similarity is not a number"));
            }
            let mut dense = vec![0.0; v];
            for &(i, w) in &centroid.terms {
                if i as usize >= v {
                    return Err(format!(
                        "cluster {c}: term index {i} outside the vocabulary"
                    ));
                }
                if !w.is_finite() {
                    return Err(format!("cluster {c}: weight of term {i} is not finite"));
                }
                dense[i as usize] = w;
            }
            centroids.push(dense);
        }
        let norms2 = centroids
            .iter()
            .map(|c| c.iter().map(|w| w * w).sum())
            .collect();
        Ok(SignatureModel {
            vectorizer: Vectorizer::new(&repr.vocabulary, repr.idf),
            vocabulary: repr.vocabulary,
            card: repr.card,
            centroids,
            norms2,
        })
    }
}

/// Clusters `records` (see the module documentation). Errors when fewer than
/// `2 × params.k_min` failures have a vector, or when k-means fails.
pub fn train(records: &[FailureRecord], params: &TrainParams) -> Result<TrainReport, Error> {
    let all_terms: Vec<Vec<String>> = records.iter().map(|r| terms(&r.text, &r.signals)).collect();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for ts in &all_terms {
        let unique: HashSet<&str> = ts.iter().map(String::as_str).collect();
        for t in unique {
            *df.entry(t).or_default() += 1;
        }
    }
    let mut vocab: Vec<(&str, usize)> = df
        .into_iter()
        .filter(|(_, n)| *n >= params.min_df.max(1))
        .collect();
    vocab.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    vocab.truncate(params.max_vocabulary);
    vocab.sort_by(|a, b| a.0.cmp(b.0));
    let n_docs = records.len() as f64;
    let vocabulary: Vec<String> = vocab.iter().map(|(t, _)| (*t).to_owned()).collect();
    let idf: Vec<f64> = vocab
        .iter()
        .map(|(_, n)| ((1.0 + n_docs) / (1.0 + *n as f64)).ln() + 1.0)
        .collect();
    let vectorizer = Vectorizer::new(&vocabulary, idf);

    let vectors: Vec<Option<Sparse>> = all_terms
        .iter()
        .map(|ts| Some(vectorizer.vector(ts)).filter(|v| !v.is_empty()))
        .collect();
    let used: Vec<usize> = (0..records.len())
        .filter(|&i| vectors[i].is_some())
        .collect();
    let n = used.len();
    let need = 2 * params.k_min.max(2);
    if n < need {
        return Err(Error::TooFewFailures { found: n, need });
    }
    let dim = vocabulary.len();
    let mut x = Array2::<f64>::zeros((n, dim));
    for (row, &i) in used.iter().enumerate() {
        for &(j, w) in vectors[i].as_ref().into_iter().flatten() {
            x[[row, j as usize]] = w;
        }
    }
    // Pairwise distances once; every k's silhouette reuses them. Rows are unit vectors.
    let gram = x.dot(&x.t());
    let dist = Array2::from_shape_fn((n, n), |(i, j)| {
        (gram[[i, i]] + gram[[j, j]] - 2.0 * gram[[i, j]])
            .max(0.0)
            .sqrt()
    });
    let dataset = DatasetBase::from(x.clone());
    let k_max = params.k_max.min(n / 3).max(params.k_min.max(2));
    let mut scan = Vec::new();
    let mut best: Option<(f64, Array2<f64>, Vec<usize>)> = None;
    for k in params.k_min.max(2)..=k_max {
        let model = KMeans::params(k)
            .n_runs(params.n_runs.max(1))
            .max_n_iterations(200)
            .tolerance(1e-6)
            .fit(&dataset)
            .map_err(Error::Clustering)?;
        let centroids = model.centroids().clone();
        let members = nearest(&x, &centroids);
        let s = silhouette(&dist, &members, k);
        scan.push(KScore {
            k,
            silhouette: s,
            inertia: model.inertia(),
        });
        if best.as_ref().is_none_or(|(b, _, _)| s > *b) {
            best = Some((s, centroids, members));
        }
    }
    let Some((silhouette_best, centroids, members)) = best else {
        return Err(Error::TooFewFailures { found: n, need });
    };

    // Keep non-empty clusters, renumbered in order of size (largest first).
    let k = centroids.nrows();
    let mut sizes = vec![0usize; k];
    for &m in &members {
        sizes[m] += 1;
    }
    let mut order: Vec<usize> = (0..k).filter(|&c| sizes[c] > 0).collect();
    order.sort_by(|a, b| sizes[*b].cmp(&sizes[*a]).then(a.cmp(b)));
    let renumber: HashMap<usize, usize> = order.iter().enumerate().map(|(n, &o)| (o, n)).collect();
    let members: Vec<usize> = members.iter().map(|m| renumber[m]).collect();
    let centroids: Vec<Vec<f64>> = order.iter().map(|&o| centroids.row(o).to_vec()).collect();

    // Member similarities → novelty floors.
    let member_sim: Vec<f64> = (0..n)
        .map(|row| {
            let c = &centroids[members[row]];
            let norm = c.iter().map(|w| w * w).sum::<f64>().sqrt();
            let dot: f64 = x.row(row).iter().zip(c).map(|(a, b)| a * b).sum();
            if norm > 0.0 { dot / norm } else { 0.0 }
        })
        .collect();
    let median = quantile(member_sim.clone(), 0.5);
    let mut clusters = Vec::new();
    let mut purity_hits = 0usize;
    let mut labelled = 0usize;
    for (c, centroid) in centroids.iter().enumerate() {
        let rows: Vec<usize> = (0..n).filter(|&r| members[r] == c).collect();
        let sims: Vec<f64> = rows.iter().map(|&r| member_sim[r]).collect();
        let min_similarity = quantile(sims, 0.05).min(median) / params.novelty_margin.max(1e-9);
        let mut counts: BTreeMap<DiagnosisCategory, usize> = BTreeMap::new();
        for &r in &rows {
            if let Some(l) = records[used[r]].label {
                *counts.entry(l).or_default() += 1;
            }
        }
        let n_labelled: usize = counts.values().sum();
        let majority = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(cat, n)| (*cat, *n));
        if let Some((_, m)) = majority {
            purity_hits += m;
            labelled += n_labelled;
        }
        let mut weights: Vec<(usize, f64)> = centroid
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, w)| *w > 0.0)
            .collect();
        weights.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        clusters.push(ClusterSummary {
            id: c,
            size: rows.len(),
            min_similarity,
            category: majority.map(|(cat, _)| cat.as_str().to_owned()),
            category_share: majority.map(|(_, m)| m as f64 / n_labelled as f64),
            top_terms: weights
                .iter()
                .take(TOP_TERMS)
                .map(|(i, _)| vocabulary[*i].clone())
                .collect(),
        });
    }
    let card = SignatureCard {
        source: params.source.clone(),
        records: n,
        skipped_empty: records.len() - n,
        k: clusters.len(),
        silhouette: silhouette_best,
        scan,
        purity: (labelled > 0).then(|| purity_hits as f64 / labelled as f64),
        vocabulary_size: vocabulary.len(),
        min_df: params.min_df,
        n_runs: params.n_runs,
        novelty_margin: params.novelty_margin,
        distance: "euclidean between L2-normalised tf-idf vectors".to_owned(),
        clusters,
        medic_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let norms2 = centroids
        .iter()
        .map(|c| c.iter().map(|w| w * w).sum())
        .collect();
    let mut assignments = vec![None; records.len()];
    for (row, &i) in used.iter().enumerate() {
        assignments[i] = Some(members[row]);
    }
    Ok(TrainReport {
        model: SignatureModel {
            card,
            vocabulary,
            vectorizer,
            centroids,
            norms2,
        },
        assignments,
    })
}

/// Index of the nearest centroid of each row.
fn nearest(x: &Array2<f64>, centroids: &Array2<f64>) -> Vec<usize> {
    x.rows()
        .into_iter()
        .map(|row| {
            let mut best = (0, f64::INFINITY);
            for (c, centroid) in centroids.rows().into_iter().enumerate() {
                let d: f64 = row
                    .iter()
                    .zip(centroid.iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                if d < best.1 {
                    best = (c, d);
                }
            }
            best.0
        })
        .collect()
}

/// Mean silhouette from a distance matrix; members of singleton clusters count 0.
pub fn silhouette(dist: &Array2<f64>, members: &[usize], k: usize) -> f64 {
    let n = members.len();
    if n == 0 {
        return 0.0;
    }
    let mut sizes = vec![0usize; k];
    for &m in members {
        sizes[m] += 1;
    }
    let mut total = 0.0;
    let mut sums = vec![0.0; k];
    for (i, &own) in members.iter().enumerate() {
        if sizes[own] <= 1 {
            continue;
        }
        sums.iter_mut().for_each(|s| *s = 0.0);
        for (&m, d) in members.iter().zip(dist.row(i)) {
            sums[m] += d;
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            let m = a.max(b);
            if m > 0.0 {
                total += (b - a) / m;
            }
        }
    }
    total / n as f64
}

/// The `q` quantile (nearest rank) of `values`; 0 for none.
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let idx = ((values.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    values[idx]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_drop_numbers_ids_and_glue() {
        assert_eq!(
            line_tokens(
                "Mar 06 [22831] ruby: segfault at 0x7f2a ip:7f2a1c3d4e5f in libruby.so.3.1"
            ),
            ["ruby", "segfault", "ip", "libruby", "so"]
        );
        assert_eq!(line_tokens("x509: EXT4-fs"), ["ext", "fs"]);
        let t = terms("a OOM Killed\n", &Signals::default());
        assert_eq!(t, ["oom killed", "oom", "killed"]);
        let s = Signals {
            exit_signal: Some(9),
            rss_ratio: Some(0.95),
            disk_used: vec![("/".into(), 0.99)],
        };
        assert_eq!(
            terms("", &s),
            ["~signal_kill", "~rss_near_limit", "~disk_full"]
        );
    }

    #[test]
    fn silhouette_of_two_clear_groups_is_high() {
        let pts = [0.0, 0.1, 0.2, 10.0, 10.1, 10.2];
        let dist = Array2::from_shape_fn((6, 6), |(i, j)| pts[i] - pts[j]);
        let dist = dist.mapv(f64::abs);
        let good = silhouette(&dist, &[0, 0, 0, 1, 1, 1], 2);
        let bad = silhouette(&dist, &[0, 1, 0, 1, 0, 1], 2);
        assert!(good > 0.9, "{good}");
        assert!(bad < 0.0, "{bad}");
    }
}
