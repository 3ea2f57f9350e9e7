//! Model files: a versioned JSON document holding the model card and the trees.
//!
//! ```text
//! { "format": "medic-iforest", "version": 1,
//!   "card": { feature_names, scaler, psi, n_trees, seed, contamination, threshold, training },
//!   "trees": [ { "feature": [..], "split": [..], "left": [..], "size": [..] }, .. ] }
//! ```
//! In a tree, node `i` is a leaf when `left[i] == 0` (the root is never a child); otherwise it
//! sends `x[feature[i]] <= split[i]` to `left[i]` and the rest to `left[i] + 1`, and
//! `left[i] > i`. `size[i]` is the number of subsample rows that reached node `i`. Leaf path
//! lengths are recomputed on load. Loading validates every index, so a corrupt file is an
//! error, never a panic or an out-of-bounds walk.

use std::collections::BTreeMap;
use std::path::Path;

use medic_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    Contamination, Error, IsolationForest, Node, Params, average_path_length, feature_diff,
};
use crate::scaler::Scaler;

/// Format tag of iForest model files.
pub const FORMAT: &str = "medic-iforest";
/// Current version of the format.
pub const FORMAT_VERSION: u32 = 1;

/// Deepest tree a model file may hold (a fitted forest's depth is `ceil(log2 ψ)`).
const MAX_DEPTH: usize = 64;

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingSummary {
    /// Training rows.
    pub rows: usize,
    /// First and last sample time, when the data had times.
    pub time_range: Option<[Timestamp; 2]>,
    /// Where the data came from (file, store query, …).
    pub source: String,
    /// Evaluation figures, e.g. `{"auc": 0.93}`.
    pub metrics: BTreeMap<String, f64>,
}

/// The model card: everything needed to use and judge the model, besides the trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Feature names in column order; rows must follow this order.
    pub feature_names: Vec<String>,
    /// Scaler applied to feature rows before scoring, if any.
    pub scaler: Option<Scaler>,
    /// Subsample size used.
    pub psi: usize,
    /// Number of trees.
    pub n_trees: usize,
    /// RNG seed.
    pub seed: u64,
    /// How the threshold was set.
    pub contamination: Contamination,
    /// Decision threshold on the score.
    pub threshold: f64,
    /// Training data summary.
    pub training: TrainingSummary,
    /// The feature spec the rows were computed with, when they came from the feature path
    /// (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_spec: Option<crate::features::FeatureSpec>,
    /// Trailing raw rows behind each feature row, when the rows are per-step features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_window: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct TreeRepr {
    feature: Vec<u32>,
    split: Vec<f64>,
    left: Vec<u32>,
    size: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct FileRepr {
    format: String,
    version: u32,
    card: ModelCard,
    trees: Vec<TreeRepr>,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// A forest with its card, as stored on disk.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// The card.
    pub card: ModelCard,
    /// The forest.
    pub forest: IsolationForest,
}

impl ModelFile {
    /// Wraps a fitted forest; the card's forest fields are taken from it.
    pub fn new(
        forest: IsolationForest,
        feature_names: Vec<String>,
        scaler: Option<Scaler>,
        training: TrainingSummary,
    ) -> Result<Self, Error> {
        if feature_names.len() != forest.n_features() {
            return Err(Error::Shape(format!(
                "{} feature names for a forest of {} features",
                feature_names.len(),
                forest.n_features()
            )));
        }
        if let Some(s) = &scaler
            && s.width() != forest.n_features()
        {
            return Err(Error::Shape(format!(
                "scaler of width {} for a forest of {} features",
                s.width(),
                forest.n_features()
            )));
        }
        let card = ModelCard {
            feature_names,
            scaler,
            psi: forest.psi,
            n_trees: forest.n_trees(),
            seed: forest.params.seed,
            contamination: forest.params.contamination,
            threshold: forest.threshold,
            training,
            feature_spec: None,
            feature_window: None,
        };
        Ok(ModelFile { card, forest })
    }

    /// The JSON text of the model file.
    pub fn to_json(&self) -> String {
        let f = &self.forest;
        let mut trees = Vec::with_capacity(f.n_trees());
        for t in 0..f.n_trees() {
            let start = f.roots[t] as usize;
            let end = f.roots.get(t + 1).map_or(f.nodes.len(), |&r| r as usize);
            let mut tr = TreeRepr {
                feature: Vec::with_capacity(end - start),
                split: Vec::with_capacity(end - start),
                left: Vec::with_capacity(end - start),
                size: f.size[start..end].to_vec(),
            };
            for (i, node) in f.nodes[start..end].iter().enumerate() {
                if node.is_leaf(start + i) {
                    tr.feature.push(0);
                    tr.split.push(0.0);
                    tr.left.push(0);
                } else {
                    tr.feature.push(node.feature);
                    tr.split.push(node.split);
                    tr.left.push(node.left - start as u32);
                }
            }
            trees.push(tr);
        }
        let mut card = self.card.clone();
        card.threshold = f.threshold;
        let repr = FileRepr {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            card,
            trees,
        };
        // Serialising plain structs of numbers and strings cannot fail; non-finite floats are
        // excluded by construction (splits are finite, leaves are written as 0).
        serde_json::to_string(&repr).unwrap_or_default()
    }

    /// Parses and validates a model file's text.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let header: Header = serde_json::from_str::<Header>(text).map_err(Error::Corrupt)?;
        if header.format != FORMAT || header.version != FORMAT_VERSION {
            return Err(Error::Version {
                format: header.format,
                version: header.version,
            });
        }
        let repr: FileRepr = serde_json::from_str(text).map_err(Error::Corrupt)?;
        let card = repr.card;
        let d = card.feature_names.len();
        if d == 0 {
            return Err(Error::Invalid("no feature names".into()));
        }
        if repr.trees.is_empty() || repr.trees.len() != card.n_trees {
            return Err(Error::Invalid(format!(
                "card says {} trees, file has {}",
                card.n_trees,
                repr.trees.len()
            )));
        }
        if card.psi == 0 {
            return Err(Error::Invalid("psi is 0".into()));
        }
        if !card.threshold.is_finite() {
            return Err(Error::Invalid("threshold is not finite".into()));
        }
        if let Some(s) = &card.scaler
            && (s.width() != d
                || s.scale.len() != d
                || s.scale.iter().any(|v| !(*v > 0.0 && v.is_finite()))
                || s.center.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::Invalid("scaler does not match the features".into()));
        }
        let mut nodes = Vec::new();
        let mut leaf_value = Vec::new();
        let mut size = Vec::new();
        let mut roots = Vec::new();
        let mut depths = Vec::new();
        let mut depth_buf = Vec::new();
        for (t, tree) in repr.trees.iter().enumerate() {
            let n = tree.feature.len();
            if n == 0 || tree.split.len() != n || tree.left.len() != n || tree.size.len() != n {
                return Err(Error::Invalid(format!(
                    "tree {t}: arrays of unequal or zero length"
                )));
            }
            let start = nodes.len();
            if start + n > u32::MAX as usize {
                return Err(Error::Invalid("too many nodes".into()));
            }
            roots.push(start as u32);
            depth_buf.clear();
            depth_buf.resize(n, 0usize);
            let mut tree_depth = 0;
            for i in 0..n {
                let l = tree.left[i] as usize;
                let depth = depth_buf[i];
                if l == 0 {
                    nodes.push(Node {
                        split: f64::INFINITY,
                        feature: 0,
                        left: (start + i) as u32,
                    });
                    leaf_value.push(depth as f64 + average_path_length(tree.size[i] as usize));
                    tree_depth = tree_depth.max(depth);
                } else {
                    let f = tree.feature[i] as usize;
                    if l <= i || l + 1 >= n {
                        return Err(Error::Invalid(format!("tree {t} node {i}: bad child {l}")));
                    }
                    if f >= d {
                        return Err(Error::Invalid(format!(
                            "tree {t} node {i}: feature {f} out of {d}"
                        )));
                    }
                    if !tree.split[i].is_finite() {
                        return Err(Error::Invalid(format!(
                            "tree {t} node {i}: split not finite"
                        )));
                    }
                    if depth + 1 > MAX_DEPTH {
                        return Err(Error::Invalid(format!("tree {t} deeper than {MAX_DEPTH}")));
                    }
                    depth_buf[l] = depth + 1;
                    depth_buf[l + 1] = depth + 1;
                    nodes.push(Node {
                        split: tree.split[i],
                        feature: f as u32,
                        left: (start + l) as u32,
                    });
                    leaf_value.push(0.0);
                }
                size.push(tree.size[i]);
            }
            depths.push(tree_depth as u8);
        }
        let params = Params {
            n_trees: card.n_trees,
            max_samples: card.psi,
            seed: card.seed,
            contamination: card.contamination,
        };
        let dense = super::dense::Dense::build(&nodes, &leaf_value, &roots, &depths, d);
        let forest = IsolationForest {
            params,
            n_features: d,
            psi: card.psi,
            nodes,
            leaf_value,
            size,
            roots,
            depths,
            threshold: card.threshold,
            dense,
        };
        Ok(ModelFile { card, forest })
    }

    /// Parses a model and refuses it when its features are not `expected` (names and order).
    pub fn from_json_expecting(text: &str, expected: &[String]) -> Result<Self, Error> {
        let m = Self::from_json(text)?;
        m.check_features(expected)?;
        Ok(m)
    }

    /// Errors with the difference when the model's features are not `expected`.
    pub fn check_features(&self, expected: &[String]) -> Result<(), Error> {
        match feature_diff(&self.card.feature_names, expected) {
            None => Ok(()),
            Some(diff) => Err(Error::FeatureMismatch(diff)),
        }
    }

    /// Writes the model file (to a temporary file renamed into place, so a crash leaves either
    /// the old or the new file).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_json()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Reads a model file and checks its features against `expected`.
    pub fn load_expecting(path: &Path, expected: &[String]) -> Result<Self, Error> {
        let m = Self::load(path)?;
        m.check_features(expected)?;
        Ok(m)
    }
}
