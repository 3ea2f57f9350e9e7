//! Isolation forest (Liu, Ting & Zhou 2008) with flat node arrays for scoring.
//!
//! Fitting follows the paper and scikit-learn's `IsolationForest`: `t` trees, each grown on a
//! subsample of `ψ = min(max_samples, n)` rows drawn without replacement, height limit
//! `ceil(log2 ψ)`; at each node a feature is drawn uniformly among those that are not constant
//! in the node sample (a node where every feature is constant is a leaf), and the split value is
//! drawn uniformly in `[min, max)` of that feature in the node sample. A row goes left when
//! `x <= split`. A leaf holding `m` training rows at depth `d` has path length `d + c(m)`, and the
//! score is `s = 2^(−E[h(x)] / c(ψ))`, in `(0, 1]`, higher = more anomalous.
//!
//! Fitting reads the training rows in place: each tree partitions an index array of its
//! subsample's row numbers, nothing is copied per tree or per node.
//!
//! Layout: all trees live in one contiguous [`Node`] array (16 bytes a node), the form of the
//! model file and of attribution. A leaf is a node whose split is `+∞` and whose child is
//! itself. For scoring, forests up to depth 11 (ψ ≤ 2048) are also laid out as complete trees
//! in heap order (`dense.rs`): [`IsolationForest::score_into`] copies rows a block at a time
//! into a column-major scratch block and walks each tree with 16 rows in flight, branch-free
//! and without bounds checks, comparing with the fitted `f64` splits, so its scores equal the
//! node-by-node walk's exactly. On CPUs with AVX-512 (detected at run time) the first three
//! levels of each tree are decided by vector compares of the same keys, with the same
//! result. Scoring allocates nothing per row (one scratch block per thread). Deeper forests
//! use the sparse walk.
//!
//! Rows that contain NaN go left at every split on that feature; fill missing values first
//! (see [`crate::scaler`]).

mod attribution;
mod dense;
mod model;

pub use attribution::{AnomalyFamily, Attribution, classify_anomaly, family_of};
pub use model::{FORMAT, FORMAT_VERSION, ModelCard, ModelFile, TrainingSummary};

use ndarray::ArrayView2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Errors of fitting, scoring and model files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The training matrix has no rows or no columns.
    #[error("cannot fit an isolation forest on {rows} rows x {cols} columns")]
    EmptyTrainingSet {
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
    },
    /// A parameter is out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Training data contains a NaN or an infinity.
    #[error("training data has a non-finite value at row {row}, column {col}")]
    NonFinite {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
    },
    /// Rows or output buffer do not match the model.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A model file could not be read.
    #[error("cannot read model file {path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A model file is not valid JSON of the expected shape (truncated or corrupt).
    #[error("model file is corrupt or truncated")]
    Corrupt(#[source] serde_json::Error),
    /// A model file parsed but its content is inconsistent.
    #[error("model file is invalid: {0}")]
    Invalid(String),
    /// A model file has another format or version.
    #[error(
        "unsupported model format {format:?} version {version} (expected {FORMAT:?} version {FORMAT_VERSION})"
    )]
    Version {
        /// Format tag found.
        format: String,
        /// Version found.
        version: u32,
    },
    /// The model's features are not the ones the caller provides.
    #[error("model features differ from the expected ones: {0}")]
    FeatureMismatch(FeatureDiff),
}

/// How a model's feature list differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureDiff {
    /// Expected by the caller, absent from the model.
    pub missing: Vec<String>,
    /// In the model, not expected by the caller.
    pub unexpected: Vec<String>,
    /// Same set of names but in another order.
    pub order_differs: bool,
}

impl std::fmt::Display for FeatureDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing from model: [{}]", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("not expected: [{}]", self.unexpected.join(", ")));
        }
        if self.order_differs {
            parts.push("same names in a different order".to_owned());
        }
        f.write_str(&parts.join("; "))
    }
}

/// Compares a model's feature names with the expected ones; `None` when identical.
pub fn feature_diff(model: &[String], expected: &[String]) -> Option<FeatureDiff> {
    if model == expected {
        return None;
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|n| !model.contains(n))
        .cloned()
        .collect();
    let unexpected: Vec<String> = model
        .iter()
        .filter(|n| !expected.contains(n))
        .cloned()
        .collect();
    let order_differs = missing.is_empty() && unexpected.is_empty();
    Some(FeatureDiff {
        missing,
        unexpected,
        order_differs,
    })
}

/// How the decision threshold is set from the training scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contamination {
    /// Score 0.5, the paper's "clearly anomalous" boundary.
    Auto,
    /// The given fraction of training rows lies above the threshold, in `(0, 0.5]`.
    Fraction(f64),
}

impl Default for Contamination {
    /// 0.1, as in medic's original design.
    fn default() -> Self {
        Contamination::Fraction(0.1)
    }
}

/// Parameters of [`IsolationForest::fit`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Number of trees `t` (default 100).
    pub n_trees: usize,
    /// Subsample size `ψ` (default 256; `n` when the data has fewer rows).
    pub max_samples: usize,
    /// Seed of the ChaCha8 generator; the same seed and data give the same forest.
    pub seed: u64,
    /// How the decision threshold is derived.
    pub contamination: Contamination,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            n_trees: 100,
            max_samples: 256,
            seed: 0,
            contamination: Contamination::default(),
        }
    }
}

/// Euler–Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// `c(n)`: the average path length of an unsuccessful search in a binary search tree of `n`
/// items, used to normalise path lengths. `c(0) = c(1) = 0`, `c(2) = 1`,
/// `c(n) = 2 H(n−1) − 2(n−1)/n` with `H(i) ≈ ln i + γ` (as scikit-learn).
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// One node of the flattened forest.
///
/// A split sends `x[feature] <= split` to `left` and the rest to `left + 1`. A leaf has
/// `split = +∞` and `left` = its own index, so descending from a leaf stays put.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub(crate) struct Node {
    pub(crate) split: f64,
    pub(crate) feature: u32,
    pub(crate) left: u32,
}

impl Node {
    pub(crate) fn is_leaf(&self, idx: usize) -> bool {
        self.left as usize == idx
    }
}

/// A fitted isolation forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    pub(crate) params: Params,
    pub(crate) n_features: usize,
    /// `ψ` actually used.
    pub(crate) psi: usize,
    /// All trees' nodes, tree `t` starting at `roots[t]`; `left` indices are absolute.
    pub(crate) nodes: Vec<Node>,
    /// Path length `depth + c(size)` at leaves (0 at splits; read only after descent).
    pub(crate) leaf_value: Vec<f64>,
    /// Training rows of the subsample that reached each node.
    pub(crate) size: Vec<u32>,
    pub(crate) roots: Vec<u32>,
    /// Deepest leaf of each tree: the number of descent steps.
    pub(crate) depths: Vec<u8>,
    pub(crate) threshold: f64,
    /// The same trees in the complete layout used for scoring (`None` when too deep).
    pub(crate) dense: Option<dense::Dense>,
}

/// Rows walked together by the sparse walk (forests deeper than the dense layout allows).
const BLOCK: usize = 16;

impl IsolationForest {
    /// Fits a forest on `x` (rows = samples). Every value must be finite.
    pub fn fit(x: ArrayView2<'_, f64>, params: Params) -> Result<Self, Error> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(Error::EmptyTrainingSet { rows: n, cols: d });
        }
        if params.n_trees == 0 {
            return Err(Error::InvalidParam {
                name: "n_trees",
                reason: "must be at least 1".into(),
            });
        }
        if params.max_samples == 0 {
            return Err(Error::InvalidParam {
                name: "max_samples",
                reason: "must be at least 1".into(),
            });
        }
        if d > u32::MAX as usize {
            return Err(Error::InvalidParam {
                name: "columns",
                reason: "too many".into(),
            });
        }
        if let Contamination::Fraction(c) = params.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return Err(Error::InvalidParam {
                name: "contamination",
                reason: format!("{c} is not in (0, 0.5]"),
            });
        }
        // A vectorisable pass over contiguous data; the position is looked up only on failure.
        let all_finite = match x.as_slice() {
            Some(flat) => all_finite(flat),
            None => x.iter().all(|v| v.is_finite()),
        };
        if !all_finite && let Some(((row, col), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(Error::NonFinite { row, col });
        }
        let psi = params.max_samples.min(n);
        let max_depth = (psi.max(2) as f64).log2().ceil() as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        if n > u32::MAX as usize {
            return Err(Error::InvalidParam {
                name: "rows",
                reason: "too many".into(),
            });
        }
        // Trees read the training rows in place (row-major); only a non-standard view is copied.
        let standard = x.as_standard_layout();
        let data = standard
            .as_slice()
            .ok_or_else(|| Error::Shape("training matrix is not contiguous".into()))?;
        let mut builder = Builder {
            data,
            d,
            idx: Vec::with_capacity(psi),
            feat: (0..d as u32).collect(),
            max_depth,
            nodes: Vec::with_capacity(params.n_trees * (2 * psi).min(1 << (max_depth + 1))),
            leaf_value: Vec::new(),
            size: Vec::new(),
            tree_depth: 0,
        };
        let mut roots = Vec::with_capacity(params.n_trees);
        let mut depths = Vec::with_capacity(params.n_trees);
        for _ in 0..params.n_trees {
            let sample = rand::seq::index::sample(&mut rng, n, psi);
            roots.push(builder.nodes.len() as u32);
            builder.tree_depth = 0;
            builder.idx.clear();
            builder.idx.extend(sample.iter().map(|r| r as u32));
            let root = builder.push_placeholder();
            builder.grow(&mut rng, root, 0, 0, psi);
            depths.push(builder.tree_depth as u8);
        }
        let mut forest = IsolationForest {
            params,
            n_features: d,
            psi,
            nodes: builder.nodes,
            leaf_value: builder.leaf_value,
            size: builder.size,
            roots,
            depths,
            threshold: 0.5,
            dense: None,
        };
        forest.dense = dense::Dense::build(
            &forest.nodes,
            &forest.leaf_value,
            &forest.roots,
            &forest.depths,
            d,
        );
        forest.threshold = match params.contamination {
            Contamination::Auto => 0.5,
            Contamination::Fraction(c) => {
                let mut scores = vec![0.0; n];
                forest.score_into(x, &mut scores)?;
                threshold_for_fraction(&mut scores, c)
            }
        };
        Ok(forest)
    }

    /// Number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Subsample size actually used (`min(max_samples, n)`).
    pub fn psi(&self) -> usize {
        self.psi
    }

    /// The parameters the forest was fitted with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Decision threshold: a score `>= threshold` is anomalous.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Replaces the decision threshold (e.g. one chosen on validation data).
    pub fn set_threshold(&mut self, threshold: f64) {
        self.threshold = threshold;
    }

    /// Total node count over all trees.
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Scores every row of `rows` into `out` (same length). Allocates nothing per row;
    /// a non-contiguous view is copied block by block into one scratch buffer per call.
    pub fn score_into(&self, rows: ArrayView2<'_, f64>, out: &mut [f64]) -> Result<(), Error> {
        let (n, d) = rows.dim();
        if d != self.n_features {
            return Err(Error::Shape(format!(
                "rows have {d} columns, the model expects {}",
                self.n_features
            )));
        }
        if out.len() != n {
            return Err(Error::Shape(format!(
                "output has length {}, rows has {n}",
                out.len()
            )));
        }
        match rows.as_slice() {
            Some(flat) => self.score_flat(flat, d, out),
            None => {
                const ROWS: usize = 256;
                let mut buf = vec![0.0; ROWS * d];
                for (b, chunk) in out.chunks_mut(ROWS).enumerate() {
                    for (i, r) in (b * ROWS..b * ROWS + chunk.len()).enumerate() {
                        for (f, v) in rows.row(r).iter().enumerate() {
                            buf[i * d + f] = *v;
                        }
                    }
                    self.score_flat(&buf[..chunk.len() * d], d, chunk);
                }
            }
        }
        Ok(())
    }

    /// Scores one row (`row.len() == n_features`, else an error).
    pub fn score_row(&self, row: &[f64]) -> Result<f64, Error> {
        if row.len() != self.n_features {
            return Err(Error::Shape(format!(
                "row has {} values, the model expects {}",
                row.len(),
                self.n_features
            )));
        }
        let mut out = [0.0];
        self.score_flat(row, row.len(), &mut out);
        Ok(out[0])
    }

    /// Mean path length `E[h(x)]` of a row (for tests and diagnostics).
    pub fn mean_path_length(&self, row: &[f64]) -> Result<f64, Error> {
        let s = self.score_row(row)?;
        Ok(-s.log2() * average_path_length(self.psi))
    }

    /// Scores a row-major slice of `out.len()` rows of `d` values.
    fn score_flat(&self, flat: &[f64], d: usize, out: &mut [f64]) {
        let norm = average_path_length(self.psi);
        let inv = if norm > 0.0 {
            -1.0 / (norm * self.roots.len() as f64)
        } else {
            0.0
        };
        if let Some(dense) = &self.dense {
            dense.path_sums(flat, out);
            for o in out.iter_mut() {
                *o = (*o * inv).exp2();
            }
            return;
        }
        let mut chunks = flat.chunks_exact(BLOCK * d);
        let mut outs = out.chunks_exact_mut(BLOCK);
        for (block, o) in (&mut chunks).zip(&mut outs) {
            let mut acc = [0.0f64; BLOCK];
            self.walk_block(block, d, &mut acc);
            for (o, a) in o.iter_mut().zip(acc) {
                *o = (a * inv).exp2();
            }
        }
        let rest = chunks.remainder();
        let o = outs.into_remainder();
        if !o.is_empty() {
            for (i, o) in o.iter_mut().enumerate() {
                let row = &rest[i * d..(i + 1) * d];
                let mut acc = 0.0;
                for (&root, &depth) in self.roots.iter().zip(&self.depths) {
                    let mut idx = root as usize;
                    for _ in 0..depth {
                        let node = &self.nodes[idx];
                        idx = node.left as usize
                            + usize::from(row[node.feature as usize] > node.split);
                    }
                    acc += self.leaf_value[idx];
                }
                *o = (acc * inv).exp2();
            }
        }
    }

    /// Sums path lengths of `BLOCK` rows over all trees into `acc`.
    #[inline]
    fn walk_block(&self, block: &[f64], d: usize, acc: &mut [f64; BLOCK]) {
        let nodes = self.nodes.as_slice();
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            let mut idx = [root as usize; BLOCK];
            for _ in 0..depth {
                for (r, i) in idx.iter_mut().enumerate() {
                    let node = &nodes[*i];
                    let x = block[r * d + node.feature as usize];
                    *i = node.left as usize + usize::from(x > node.split);
                }
            }
            for (a, i) in acc.iter_mut().zip(idx) {
                *a += self.leaf_value[i];
            }
        }
    }
}

/// Whether every value is finite: `v × 0` is 0 for finite `v` and NaN otherwise, summed in 8
/// independent lanes so the loop vectorises.
fn all_finite(flat: &[f64]) -> bool {
    let mut acc = [0.0f64; 8];
    let mut chunks = flat.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * 0.0;
        }
    }
    acc.iter().all(|a| *a == 0.0) && chunks.remainder().iter().all(|v| v.is_finite())
}

/// The score above which a `fraction` of `scores` lies (`scores` is reordered):
/// the `(1 − fraction)` quantile with linear interpolation, as numpy's default.
pub fn threshold_for_fraction(scores: &mut [f64], fraction: f64) -> f64 {
    if scores.is_empty() {
        return 0.5;
    }
    scores.sort_unstable_by(f64::total_cmp);
    let q = (1.0 - fraction).clamp(0.0, 1.0);
    let pos = q * (scores.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = pos - lo as f64;
    scores[lo] + (scores[hi] - scores[lo]) * w
}

/// Grows trees into the flat arrays.
struct Builder<'a> {
    /// The training rows, row-major: `data[r * d + f]`.
    data: &'a [f64],
    d: usize,
    /// Row indices of the current subsample, partitioned in place as the tree grows.
    idx: Vec<u32>,
    /// Feature order scratch for drawing features without replacement.
    feat: Vec<u32>,
    max_depth: usize,
    nodes: Vec<Node>,
    leaf_value: Vec<f64>,
    size: Vec<u32>,
    tree_depth: usize,
}

impl Builder<'_> {
    fn push_placeholder(&mut self) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            split: f64::INFINITY,
            feature: 0,
            left: i as u32,
        });
        self.leaf_value.push(0.0);
        self.size.push(0);
        i
    }

    fn make_leaf(&mut self, node: usize, depth: usize, m: usize) {
        self.nodes[node] = Node {
            split: f64::INFINITY,
            feature: 0,
            left: node as u32,
        };
        self.leaf_value[node] = depth as f64 + average_path_length(m);
        self.tree_depth = self.tree_depth.max(depth);
    }

    /// Grows the subtree at `node` over `idx[lo..hi]`.
    fn grow(&mut self, rng: &mut ChaCha8Rng, node: usize, depth: usize, lo: usize, hi: usize) {
        let m = hi - lo;
        self.size[node] = m as u32;
        if depth >= self.max_depth || m <= 1 {
            self.make_leaf(node, depth, m);
            return;
        }
        // Draw features without replacement until one is not constant in this node.
        let mut chosen = None;
        for k in 0..self.d {
            let j = rng.random_range(k..self.d);
            self.feat.swap(k, j);
            let f = self.feat[k] as usize;
            let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
            for &i in &self.idx[lo..hi] {
                let v = self.data[i as usize * self.d + f];
                mn = mn.min(v);
                mx = mx.max(v);
            }
            if mx > mn {
                chosen = Some((f, mn, mx));
                break;
            }
        }
        let Some((f, mn, mx)) = chosen else {
            self.make_leaf(node, depth, m);
            return;
        };
        let u: f64 = rng.random();
        let mut split = mn + (mx - mn) * u;
        if split >= mx {
            split = mn;
        }
        // Partition idx[lo..hi]: `<= split` first.
        let (data, d) = (self.data, self.d);
        let slice = &mut self.idx[lo..hi];
        let mut l = 0;
        for k in 0..slice.len() {
            if data[slice[k] as usize * d + f] <= split {
                slice.swap(l, k);
                l += 1;
            }
        }
        let left = self.push_placeholder();
        let right = self.push_placeholder();
        debug_assert_eq!(right, left + 1);
        self.nodes[node] = Node {
            split,
            feature: f as u32,
            left: left as u32,
        };
        self.grow(rng, left, depth + 1, lo, lo + l);
        self.grow(rng, right, depth + 1, lo + l, hi);
    }
}
