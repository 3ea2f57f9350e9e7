//! Scoring layout: every tree padded to a complete binary tree of the forest's depth `D`.
//!
//! Tree `t` owns `2^D − 1` inner nodes stored in heap order (children of `i` are `2i + 1` and
//! `2i + 2`) and `2^D` leaf path lengths. A leaf of the fitted tree that is shallower than `D`
//! becomes a chain of `split = +∞` nodes (every row, NaN included, goes left) over copies of its
//! path length, so every row takes exactly `D` steps and `idx = 2 idx + 1 + (x > split)` needs no
//! child pointer.
//!
//! An inner node is one `u64`: the feature in the high half, the split as an `f32` in the low
//! half, so a step is one node load, one value load and a compare. Rows are converted to `f32`
//! once per block. The `f32` split is the largest `f32` not above the fitted `f64` split, so a
//! value goes the same way as in the `f64` trees unless it lies within one `f32` ulp (a relative
//! 1.2e-7) of a split; forests with a split beyond the `f32` range are not laid out densely.
//! The `dense_scores_equal_sparse_scores` test and the ODDS AUC (bench `iforest_vs_sklearn`)
//! check that this changes nothing measurable.
//!
//! Scoring is tree-major over blocks of [`BLOCK`] rows: one tree (2 KiB of nodes and 2 KiB of
//! leaves at ψ = 256) stays in L1 while the block's rows descend it, [`GROUP`] rows at a time
//! as independent dependency chains whose node indices stay in registers.

use super::Node;

/// Deepest forest laid out densely: `2^D` grows fast, deeper forests use the sparse walk.
pub(crate) const MAX_DENSE_DEPTH: usize = 11;

/// Rows converted together and walked through one tree before the next tree.
pub(crate) const BLOCK: usize = 32;

/// Rows descending a tree level by level together (their indices live in registers).
const GROUP: usize = 16;
const _: () = assert!(BLOCK.is_multiple_of(GROUP));

/// The packed node that sends every row left: split `+∞`, feature 0.
const PASS_LEFT: u64 = f32::INFINITY.to_bits() as u64;

/// Packs an inner node; `None` when the split has no finite `f32` lower bound.
fn pack(feature: u32, split: f64) -> Option<u64> {
    let mut s = split as f32;
    if f64::from(s) > split {
        s = s.next_down();
    }
    if !s.is_finite() {
        return None;
    }
    Some((u64::from(feature) << 32) | u64::from(s.to_bits()))
}

/// `x > split` for a packed node, with the feature index.
#[inline(always)]
fn unpack(node: u64) -> (usize, f32) {
    ((node >> 32) as usize, f32::from_bits(node as u32))
}

/// All trees in the complete layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense {
    /// `D`: descent steps per tree.
    depth: usize,
    /// `2^D − 1` packed inner nodes per tree, tree after tree.
    nodes: Vec<u64>,
    /// `2^D` path lengths per tree, tree after tree.
    leaves: Vec<f64>,
    /// Features of a row (every `feature < n_features`).
    n_features: usize,
}

impl Dense {
    /// Lays out the sparse trees (`roots`, `nodes`, `leaf_value`, `depths` as in
    /// [`super::IsolationForest`]); `None` when the forest is deeper than [`MAX_DENSE_DEPTH`].
    pub(crate) fn build(
        nodes: &[Node],
        leaf_value: &[f64],
        roots: &[u32],
        depths: &[u8],
        n_features: usize,
    ) -> Option<Dense> {
        let depth = depths.iter().copied().max().unwrap_or(0) as usize;
        if depth > MAX_DENSE_DEPTH {
            return None;
        }
        let inner = (1usize << depth) - 1;
        let n_leaves = 1usize << depth;
        let mut dense = Dense {
            depth,
            nodes: vec![PASS_LEFT; inner * roots.len()],
            leaves: vec![0.0; n_leaves * roots.len()],
            n_features,
        };
        for (t, &root) in roots.iter().enumerate() {
            let (tn, tl) = (
                &mut dense.nodes[t * inner..(t + 1) * inner],
                &mut dense.leaves[t * n_leaves..(t + 1) * n_leaves],
            );
            fill(
                nodes,
                leaf_value,
                root as usize,
                0,
                0,
                depth,
                tn,
                tl,
                n_features,
            )?;
        }
        Some(dense)
    }

    /// Sums the path lengths of the `out.len()` rows of `flat` (row-major, `n_features` wide)
    /// over all trees into `out` (overwritten). Allocates one block-sized buffer per call.
    pub(crate) fn path_sums(&self, flat: &[f64], out: &mut [f64]) {
        let d = self.n_features;
        assert_eq!(flat.len(), out.len() * d, "rows and output disagree");
        let mut block32 = vec![0.0f32; BLOCK * d];
        let mut blocks = flat.chunks_exact(BLOCK * d);
        let mut outs = out.chunks_exact_mut(BLOCK);
        for (block, o) in (&mut blocks).zip(&mut outs) {
            for (b, &x) in block32.iter_mut().zip(block) {
                *b = x as f32;
            }
            let acc: &mut [f64; BLOCK] = o.try_into().unwrap_or_else(|_| unreachable!());
            self.walk_block(&block32, acc);
        }
        let rest = blocks.remainder();
        for (i, o) in outs.into_remainder().iter_mut().enumerate() {
            *o = self.walk_row(&rest[i * d..(i + 1) * d]);
        }
    }

    /// Path-length sum of one row over all trees.
    fn walk_row(&self, row: &[f64]) -> f64 {
        let inner = (1usize << self.depth) - 1;
        let n_leaves = inner + 1;
        if inner == 0 {
            return self.leaves.iter().sum();
        }
        let mut acc = 0.0;
        for (tn, tl) in self
            .nodes
            .chunks_exact(inner)
            .zip(self.leaves.chunks_exact(n_leaves))
        {
            let mut i = 0usize;
            for _ in 0..self.depth {
                let (f, split) = unpack(tn[i]);
                i = 2 * i + 1 + usize::from(row[f] as f32 > split);
            }
            acc += tl[i - inner];
        }
        acc
    }

    /// Path-length sums of `BLOCK` rows (`block.len() == BLOCK * n_features`) into `acc`.
    #[allow(unsafe_code)] // unchecked loads in the innermost loop; bounds argued below
    fn walk_block(&self, block: &[f32], acc: &mut [f64; BLOCK]) {
        let d = self.n_features;
        assert_eq!(block.len(), BLOCK * d, "block has the wrong size");
        let inner = (1usize << self.depth) - 1;
        let n_leaves = inner + 1;
        acc.fill(0.0);
        if inner == 0 {
            // Depth 0: every tree is one leaf.
            let total: f64 = self.leaves.iter().sum();
            acc.fill(total);
            return;
        }
        for (tn, tl) in self
            .nodes
            .chunks_exact(inner)
            .zip(self.leaves.chunks_exact(n_leaves))
        {
            for (rows, acc) in block
                .chunks_exact(GROUP * d)
                .zip(acc.chunks_exact_mut(GROUP))
            {
                let mut idx = [0usize; GROUP];
                for _ in 0..self.depth {
                    for (r, i) in idx.iter_mut().enumerate() {
                        debug_assert!(*i < inner);
                        // SAFETY: before step k (0-based) of the D steps, `i` is in
                        // [2^k − 1, 2^(k+1) − 2] (it starts at 0 and each step maps i to 2i+1
                        // or 2i+2), so i ≤ 2^D − 2 < inner = tn.len().
                        let (f, split) = unpack(unsafe { *tn.get_unchecked(*i) });
                        debug_assert!(f < d);
                        // SAFETY: `build` packs only features < n_features = d (checked in
                        // `fill`; padding nodes use feature 0 < d), r < GROUP and
                        // rows.len() == GROUP * d (chunks_exact), so r * d + f < rows.len().
                        let x = unsafe { *rows.get_unchecked(r * d + f) };
                        *i = 2 * *i + 1 + usize::from(x > split);
                    }
                }
                for (a, &i) in acc.iter_mut().zip(&idx) {
                    // After D steps i is in [2^D − 1, 2^(D+1) − 2]: i − inner < n_leaves.
                    *a += tl[i - inner];
                }
            }
        }
    }
}

/// Copies the sparse subtree at `src` (depth `level`) into heap position `pos`.
#[allow(clippy::too_many_arguments)]
fn fill(
    nodes: &[Node],
    leaf_value: &[f64],
    src: usize,
    pos: usize,
    level: usize,
    depth: usize,
    tn: &mut [u64],
    tl: &mut [f64],
    n_features: usize,
) -> Option<()> {
    let node = nodes.get(src)?;
    let leaf = node.is_leaf(src);
    if level == depth {
        if !leaf {
            return None;
        }
        *tl.get_mut(pos - tn.len())? = *leaf_value.get(src)?;
        return Some(());
    }
    let (l, r) = if leaf {
        *tn.get_mut(pos)? = PASS_LEFT;
        (src, src)
    } else {
        if node.feature as usize >= n_features {
            return None;
        }
        *tn.get_mut(pos)? = pack(node.feature, node.split)?;
        (node.left as usize, node.left as usize + 1)
    };
    fill(
        nodes,
        leaf_value,
        l,
        2 * pos + 1,
        level + 1,
        depth,
        tn,
        tl,
        n_features,
    )?;
    fill(
        nodes,
        leaf_value,
        r,
        2 * pos + 2,
        level + 1,
        depth,
        tn,
        tl,
        n_features,
    )
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::{Contamination, IsolationForest, Params};

    /// The dense walk gives bit-for-bit the sparse walk's scores (no value here lies within an
    /// f32 ulp of a split), NaN and out-of-range values included, for block-sized and leftover
    /// rows and for shallow forests.
    #[test]
    fn dense_scores_equal_sparse_scores() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (n, psi) in [(300, 256), (40, 256), (5, 256), (1000, 64), (2, 256)] {
            // Column 2 is constant and column 3 has few values, so leaves are shallow.
            let x = Array2::from_shape_fn((n, 4), |(_, j)| match j {
                2 => 1.0,
                3 => f64::from(rng.random_range(0..3u8)),
                _ => rng.random_range(-3.0..3.0),
            });
            let params = Params {
                n_trees: 20,
                max_samples: psi,
                seed: 3,
                contamination: Contamination::Auto,
            };
            let forest = IsolationForest::fit(x.view(), params).unwrap();
            assert!(forest.dense.is_some());
            let mut sparse = forest.clone();
            sparse.dense = None;
            let rows = 101;
            let q = Array2::from_shape_fn((rows, 4), |(i, j)| match (i % 17, j) {
                (0, 1) => f64::NAN,
                (1, 0) => 1e300,
                (2, 3) => -1e300,
                _ => rng.random_range(-5.0..5.0),
            });
            let (mut a, mut b) = (vec![0.0; rows], vec![0.0; rows]);
            forest.score_into(q.view(), &mut a).unwrap();
            sparse.score_into(q.view(), &mut b).unwrap();
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "n {n} psi {psi} row {i}");
            }
            // A non-contiguous view (every other column of a wider matrix) scores the same.
            let wide = Array2::from_shape_fn((rows, 8), |(i, j)| q[[i, j / 2]]);
            let view = wide.slice(ndarray::s![.., ..;2]);
            forest.score_into(view, &mut b).unwrap();
            assert_eq!(a, b);
        }
    }
}
