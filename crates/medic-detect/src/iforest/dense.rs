//! Scoring layout: every tree padded to a complete binary tree of the forest's depth `D`.
//!
//! Tree `t` is stored in heap order with the root at position 1: the children of `i` are `2i`
//! and `2i + 1`, inner nodes occupy `[1, 2^D)` and leaves `[2^D, 2^(D+1))`. A leaf of the
//! fitted tree that is shallower than `D` becomes a chain of padding nodes (split key
//! `u64::MAX`: every row goes left) over copies of its path length, so every row takes exactly `D` steps of
//! `i = 2i + (split < x)`, branch-free and without child pointers.
//!
//! Each tree owns three arrays of `N = 2^8` (or `2^11` for deeper forests) entries: the split
//! as a `u64` key whose unsigned order is the order of `f64` comparisons (see [`key`]; the
//! fitted `f64` split itself, so every comparison is the fitted tree's), the feature as a `u16`
//! column offset into the row block, and the leaf path lengths at `i mod N` (inner and leaf
//! positions never collide modulo `N` since `D ≤ log2 N`). An index masked by `N − 1` is in
//! bounds of an `[_; N]` by construction, so the descent has no bounds checks and no `unsafe`
//! (the module's one `unsafe` is the call into the AVX-512 kernel, made only once the CPU
//! feature is detected).
//! Integer keys also keep LLVM from turning the 16 independent descents into SSE2 vectors with
//! lane extractions (it did with `f64` compares, and scoring took 0.47 instead of 0.32 µs/row;
//! SSE2 has no 64-bit unsigned compare).
//!
//! Rows are copied a block at a time into a scratch buffer as keys, in groups of [`GROUP`]
//! rows stored column by column (`x[f * GROUP + r]`). Every offset is below
//! `n_features × GROUP ≤ 2^16`, so reading `x[off + r]` from a fixed-size window of
//! `2^16 + GROUP` values starting at the group needs no check either (the window's tail past
//! the group is never read; it only lets the type prove the bound).
//!
//! Scoring is tree-major within a block: one tree (4.5 KiB at ψ = 256) and the block's rows
//! (at most [`BLOCK_VALUES`] values) stay in L1 while every group of the block descends it, the
//! group's [`GROUP`] rows as independent dependency chains whose node indices stay in
//! registers. Path lengths are summed over trees in tree order for each row, the same order
//! as the sparse walk, so both give bit-identical sums.
//!
//! The first levels of each tree can go through a vector kernel chosen at run time
//! ([`Kernel::best`]; the build targets baseline x86-64): with AVX-512, the first 3 levels of
//! a group's 16 rows take 14 compares of 8 keys each instead of 48 dependent scalar steps
//! (see [`x86`]). Every kernel compares the same keys, so all give bit-identical sums.

use std::cell::RefCell;

use super::Node;

/// Rows descending a tree level by level together (their node indices live in registers).
pub(crate) const GROUP: usize = 16;

/// Values of a block of rows kept in L1 while the trees pass over it (16 KiB of keys).
const BLOCK_VALUES: usize = 2048;

/// At most this many rows per block (the accumulator lives on the stack).
const MAX_BLOCK: usize = 256;
const _: () = assert!(MAX_BLOCK.is_multiple_of(GROUP));

/// Span of a `u16` offset plus a lane: indexing a window of this size by `off + r` with
/// `off: u16` and `r < GROUP` is in bounds by type.
const WINDOW: usize = (u16::MAX as usize + 1) + GROUP;

/// Deepest forest laid out densely (`N = 2^11`); deeper forests use the sparse walk.
pub(crate) const MAX_DENSE_DEPTH: usize = 11;

/// Complete-tree arrays of one forest for one array size `N` (a power of two `≥ 2^depth`).
#[derive(Debug, Clone, PartialEq)]
struct Trees {
    /// `N` per tree: the [`key`] of the split at heap position `i` (`u64::MAX` for padding).
    split: Vec<u64>,
    /// `N` per tree: `feature × GROUP` at heap position `i` (0 for padding).
    offset: Vec<u16>,
    /// `N` per tree: the path length of the leaf at heap position `i`, stored at `i mod N`.
    leaf: Vec<f64>,
}

/// All trees in the complete layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense {
    /// `D`: descent steps per tree.
    depth: usize,
    /// `N`: entries per tree in each array (256, or 2048 for forests deeper than 8).
    width: usize,
    trees: Trees,
    /// Features of a row (every `feature < n_features`).
    n_features: usize,
}

/// Maps a value to a `u64` whose unsigned order is the order of `f64` comparisons, so that
/// `key(s) < key(x)` exactly when `x > s` (the fitted trees' "go right"): the bits of a
/// non-negative value with the sign bit set, the complement of a negative one's, −0 taken as
/// +0 (they compare equal). NaN maps to 0, below every value's key, so a NaN row goes left at
/// every split as in the fitted trees (`NaN > s` is false); a NaN split maps to `u64::MAX`,
/// above every key, so every row goes left there as well.
#[inline(always)]
fn key(v: f64) -> u64 {
    let b = (v + 0.0).to_bits();
    let k = if b >> 63 == 1 { !b } else { b | (1 << 63) };
    if v.is_nan() { 0 } else { k }
}

/// [`key`] of a split: NaN (possible only in a hand-edited model file) sends every row left.
fn split_key(s: f64) -> u64 {
    if s.is_nan() { u64::MAX } else { key(s) }
}

thread_local! {
    /// Row block of [`Dense::path_sums`], kept per thread so scoring small batches does not
    /// allocate (and zero) the window's span on every call.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl Dense {
    /// Lays out the sparse trees (`roots`, `nodes`, `leaf_value`, `depths` as in
    /// [`super::IsolationForest`]); `None` when the forest is deeper than [`MAX_DENSE_DEPTH`],
    /// has so many features that an offset does not fit a `u16`, or is inconsistent.
    pub(crate) fn build(
        nodes: &[Node],
        leaf_value: &[f64],
        roots: &[u32],
        depths: &[u8],
        n_features: usize,
    ) -> Option<Dense> {
        let depth = depths.iter().copied().max().unwrap_or(0) as usize;
        if depth > MAX_DENSE_DEPTH || n_features == 0 || n_features * GROUP > WINDOW - GROUP {
            return None;
        }
        let width = if depth <= 8 {
            1 << 8
        } else {
            1 << MAX_DENSE_DEPTH
        };
        let total = width * roots.len();
        let mut trees = Trees {
            split: vec![u64::MAX; total],
            offset: vec![0; total],
            leaf: vec![0.0; total],
        };
        let layout = Layout {
            nodes,
            leaf_value,
            depth,
            width,
            n_features,
        };
        for (t, &root) in roots.iter().enumerate() {
            let range = t * width..(t + 1) * width;
            layout.fill(
                root as usize,
                1,
                0,
                &mut trees.split[range.clone()],
                &mut trees.offset[range.clone()],
                &mut trees.leaf[range],
            )?;
        }
        Some(Dense {
            depth,
            width,
            trees,
            n_features,
        })
    }

    /// Sums the path lengths of the `out.len()` rows of `flat` (row-major, `n_features` wide)
    /// over all trees into `out` (overwritten), with the fastest kernel this CPU runs.
    /// Allocates nothing after a thread's first call.
    pub(crate) fn path_sums(&self, flat: &[f64], out: &mut [f64]) {
        self.path_sums_with(Kernel::best(), flat, out);
    }

    /// [`Dense::path_sums`] with a given kernel (every kernel gives bit-identical sums).
    pub(crate) fn path_sums_with(&self, kernel: Kernel, flat: &[f64], out: &mut [f64]) {
        let d = self.n_features;
        assert_eq!(flat.len(), out.len() * d, "rows and output disagree");
        let full = out.len() - out.len() % GROUP;
        let (flat_groups, flat_rest) = flat.split_at(full * d);
        let (out_groups, out_rest) = out.split_at_mut(full);
        if full > 0 {
            let block_rows = (BLOCK_VALUES / d / GROUP * GROUP).clamp(GROUP, MAX_BLOCK);
            SCRATCH.with_borrow_mut(|scratch| {
                let len = block_rows * d + WINDOW;
                if scratch.len() < len {
                    scratch.resize(len, 0);
                }
                for (rows, o) in flat_groups
                    .chunks(block_rows * d)
                    .zip(out_groups.chunks_mut(block_rows))
                {
                    self.block_sums(kernel, rows, scratch, o);
                }
            });
        }
        for (row, o) in flat_rest.chunks_exact(d).zip(out_rest) {
            *o = self.walk_row(row);
        }
    }

    /// Path-length sums of one block (a whole number of groups) into `out`.
    fn block_sums(&self, kernel: Kernel, rows: &[f64], scratch: &mut [u64], out: &mut [f64]) {
        let d = self.n_features;
        let groups = out.len() / GROUP;
        // Group g, feature f, lane r at g * GROUP * d + f * GROUP + r.
        for (g, rows) in rows.chunks_exact(GROUP * d).enumerate() {
            let dst = &mut scratch[g * GROUP * d..(g + 1) * GROUP * d];
            for (r, row) in rows.chunks_exact(d).enumerate() {
                for (f, &x) in row.iter().enumerate() {
                    dst[f * GROUP + r] = key(x);
                }
            }
        }
        let mut acc = [0.0f64; MAX_BLOCK];
        let acc = &mut acc[..groups * GROUP];
        match self.width {
            // ψ = 256, the default, gives depth 8: a fixed depth lets the levels unroll.
            256 if self.depth == 8 => self.descend::<256, 8>(kernel, scratch, acc),
            256 => self.descend::<256, 0>(kernel, scratch, acc),
            _ => self.descend::<{ 1 << MAX_DENSE_DEPTH }, 0>(kernel, scratch, acc),
        }
        out.copy_from_slice(acc);
    }

    /// Adds every tree's path length of each row of the scratch groups to `acc`.
    #[inline(always)]
    fn descend<const N: usize, const DEPTH: usize>(
        &self,
        kernel: Kernel,
        scratch: &[u64],
        acc: &mut [f64],
    ) {
        // DEPTH = 0: the forest's depth, known at run time only.
        let depth = if DEPTH > 0 { DEPTH } else { self.depth };
        let stride = GROUP * self.n_features;
        let t = &self.trees;
        // Heap positions after the first levels, one byte per row: row r of group g at
        // `tops[g][r]` (filled by a vector kernel, tree by tree).
        let mut tops = [[0u8; GROUP]; MAX_BLOCK / GROUP];
        let tops = &mut tops[..acc.len() / GROUP];
        for ((split, offset), leaf) in t
            .split
            .chunks_exact(N)
            .zip(t.offset.chunks_exact(N))
            .zip(t.leaf.chunks_exact(N))
        {
            let split: &[u64; N] = split.try_into().unwrap_or_else(|_| unreachable!());
            let offset: &[u16; N] = offset.try_into().unwrap_or_else(|_| unreachable!());
            let leaf: &[f64; N] = leaf.try_into().unwrap_or_else(|_| unreachable!());
            let done = match kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512(k) if depth >= x86::TOP => {
                    k.top_levels(split, offset, scratch, stride, tops);
                    x86::TOP
                }
                _ => 0,
            };
            let (root_off, root_split) = (usize::from(offset[1]), split[1]);
            for ((g, acc), top) in acc.chunks_exact_mut(GROUP).enumerate().zip(&*tops) {
                let x: &[u64; WINDOW] = scratch[g * stride..g * stride + WINDOW]
                    .try_into()
                    .unwrap_or_else(|_| unreachable!());
                let mut idx = [1usize; GROUP];
                let mut level = done;
                if done > 0 {
                    for (r, i) in idx.iter_mut().enumerate() {
                        *i = usize::from(top[r]);
                    }
                } else if depth > 0 {
                    // The root is the same node for every row: its split stays in a register.
                    for (r, i) in idx.iter_mut().enumerate() {
                        *i = 2 + usize::from(root_split < x[root_off + r]);
                    }
                    level = 1;
                }
                for _ in level..depth {
                    for (r, i) in idx.iter_mut().enumerate() {
                        let n = *i & (N - 1);
                        let v = x[usize::from(offset[n]) + r];
                        *i = 2 * n + usize::from(split[n] < v);
                    }
                }
                for (a, &i) in acc.iter_mut().zip(&idx) {
                    *a += leaf[i & (N - 1)];
                }
            }
        }
    }

    /// Path-length sum of one row over all trees (rows after the last whole group).
    fn walk_row(&self, row: &[f64]) -> f64 {
        let n = self.width;
        let t = &self.trees;
        let mut acc = 0.0;
        for ((split, offset), leaf) in t
            .split
            .chunks_exact(n)
            .zip(t.offset.chunks_exact(n))
            .zip(t.leaf.chunks_exact(n))
        {
            let mut i = 1usize;
            for _ in 0..self.depth {
                let x = key(row[usize::from(offset[i]) / GROUP]);
                i = 2 * i + usize::from(split[i] < x);
            }
            acc += leaf[i & (n - 1)];
        }
        acc
    }
}

/// How the first levels of each tree are walked; every kernel gives bit-identical sums.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kernel {
    /// Every level one row at a time in scalar code (any CPU).
    Portable,
    /// The first [`x86::TOP`] levels with AVX-512 compares (see [`x86`]), the rest scalar.
    #[cfg(target_arch = "x86_64")]
    Avx512(x86::Avx512),
}

impl Kernel {
    /// The fastest kernel this CPU runs (detection is a cached load after the first call).
    pub(crate) fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = x86::Avx512::detect() {
            return Kernel::Avx512(k);
        }
        Kernel::Portable
    }

    /// Every kernel this CPU runs, for tests that compare them.
    #[cfg(test)]
    pub(crate) fn supported() -> Vec<Kernel> {
        let mut all = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        all.extend(x86::Avx512::detect().map(Kernel::Avx512));
        all
    }
}

/// The AVX-512 kernel for the first levels of a tree, chosen at run time (the build targets
/// baseline x86-64).
///
/// Why: the scalar descent is a chain of two dependent loads per level and row (node, then
/// the row's value at the node's feature). The first [`TOP`] levels hold only `2^TOP − 1`
/// nodes, so every row can be compared with all of them, with no chain: per node, one
/// compare of 8 rows' keys (contiguous in the column-major group) against the broadcast
/// split gives a bit per row, and bit-parallel logic over the group's 16 rows turns those
/// bits into each row's heap position at level `TOP`. The rest of the tree is walked by the
/// scalar code. Comparisons are the same unsigned `u64` key compares as the scalar ones, so
/// the positions, and the sums, are identical. (Letting the compiler vectorise the whole
/// descent with AVX-512 gathers instead was twice as slow as the scalar code here; an AVX2
/// version of this kernel, 28 signed compares of 4 keys with the top bits flipped, was no
/// faster than the scalar code, 0.335 against 0.34 µs/row, so it is not included.)
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m512i, _mm512_cmplt_epu64_mask, _mm512_set_epi64, _mm512_set1_epi64, _pdep_u64,
    };

    use super::{GROUP, WINDOW};

    /// Levels decided by the vector compares (3 measured fastest: 0.255 µs/row against 0.29
    /// with 4 and 0.32 with none, on synthetic depth-8 forests).
    pub(super) const TOP: usize = 3;
    const _: () = assert!(GROUP == 16 && TOP <= 7);

    /// Proof that this CPU runs AVX-512F and BMI2: only [`Avx512::detect`] makes one.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx512(());

    impl Avx512 {
        /// `Some` when the CPU has AVX-512F and BMI2.
        pub(super) fn detect() -> Option<Avx512> {
            (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("bmi2"))
                .then_some(Avx512(()))
        }

        /// For every group of the block in `scratch` (`stride` keys apart), the heap
        /// positions of its rows after [`TOP`] levels of the tree (`split`, `offset`), one
        /// byte per row: row `r` of group `g` at `tops[g][r]`.
        pub(super) fn top_levels<const N: usize>(
            self,
            split: &[u64; N],
            offset: &[u16; N],
            scratch: &[u64],
            stride: usize,
            tops: &mut [[u8; GROUP]],
        ) {
            #[allow(unsafe_code)]
            // SAFETY: an `Avx512` exists only when `detect` found AVX-512F and BMI2 on this
            // CPU, the features `top_levels_avx512` is compiled for.
            unsafe {
                top_levels_avx512(split, offset, scratch, stride, tops)
            }
        }
    }

    /// Keys of 8 consecutive rows of a group column from `at`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load8(x: &[u64; WINDOW], at: usize) -> __m512i {
        let v: &[u64; 8] = x[at..at + 8].try_into().unwrap_or_else(|_| unreachable!());
        let i = |k: usize| v[k].cast_signed();
        _mm512_set_epi64(i(7), i(6), i(5), i(4), i(3), i(2), i(1), i(0))
    }

    /// See [`Avx512::top_levels`].
    #[target_feature(enable = "avx512f,bmi2")]
    fn top_levels_avx512<const N: usize>(
        split: &[u64; N],
        offset: &[u16; N],
        scratch: &[u64],
        stride: usize,
        tops: &mut [[u8; GROUP]],
    ) {
        const BYTES: u64 = 0x0101_0101_0101_0101;
        const NODES: usize = 1 << TOP;
        // The tree's first nodes, the same for every group (position 0 is unused).
        let mut splits = [_mm512_set1_epi64(0); NODES];
        let mut offsets = [0usize; NODES];
        for j in 1..NODES {
            splits[j] = _mm512_set1_epi64(split[j].cast_signed());
            offsets[j] = usize::from(offset[j]);
        }
        for (g, top) in tops.iter_mut().enumerate() {
            let x: &[u64; WINDOW] = scratch[g * stride..g * stride + WINDOW]
                .try_into()
                .unwrap_or_else(|_| unreachable!());
            // reach[j]: the rows (bit r) that arrive at heap position j; right[l]: the rows
            // that go right at level l.
            let mut reach = [0u32; NODES];
            reach[1] = (1 << GROUP) - 1;
            let mut right = [0u32; TOP];
            for j in 1..NODES {
                let level = j.ilog2() as usize;
                let (s, off) = (splits[j], offsets[j]);
                let above = u32::from(_mm512_cmplt_epu64_mask(s, load8(x, off)))
                    | u32::from(_mm512_cmplt_epu64_mask(s, load8(x, off + 8))) << 8;
                let go_right = reach[j] & above;
                right[level] |= go_right;
                if 2 * j < NODES {
                    reach[2 * j] = reach[j] & !above;
                    reach[2 * j + 1] = go_right;
                }
            }
            // Position 2^TOP + the level bits, most significant first; one byte per row.
            let (mut lo, mut hi) = ((1 << TOP) * BYTES, (1 << TOP) * BYTES);
            for (level, &right) in right.iter().enumerate() {
                let shift = TOP - 1 - level;
                lo |= _pdep_u64(u64::from(right & 0xFF), BYTES) << shift;
                hi |= _pdep_u64(u64::from(right >> 8), BYTES) << shift;
            }
            top[..8].copy_from_slice(&lo.to_le_bytes());
            top[8..].copy_from_slice(&hi.to_le_bytes());
        }
    }
}

/// What [`Layout::fill`] reads.
struct Layout<'a> {
    nodes: &'a [Node],
    leaf_value: &'a [f64],
    depth: usize,
    width: usize,
    n_features: usize,
}

impl Layout<'_> {
    /// Copies the sparse subtree at `src` (depth `level`) into heap position `pos`.
    fn fill(
        &self,
        src: usize,
        pos: usize,
        level: usize,
        split: &mut [u64],
        offset: &mut [u16],
        leaf: &mut [f64],
    ) -> Option<()> {
        let node = self.nodes.get(src)?;
        let is_leaf = node.is_leaf(src);
        if level == self.depth {
            if !is_leaf {
                return None;
            }
            *leaf.get_mut(pos & (self.width - 1))? = *self.leaf_value.get(src)?;
            return Some(());
        }
        let (l, r) = if is_leaf {
            // Padding keeps split = +∞ and offset 0: every row goes left.
            (src, src)
        } else {
            let f = node.feature as usize;
            if f >= self.n_features {
                return None;
            }
            *split.get_mut(pos)? = split_key(node.split);
            *offset.get_mut(pos)? = u16::try_from(f * GROUP).ok()?;
            (node.left as usize, node.left as usize + 1)
        };
        self.fill(l, 2 * pos, level + 1, split, offset, leaf)?;
        self.fill(r, 2 * pos + 1, level + 1, split, offset, leaf)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::{Contamination, IsolationForest, Params, average_path_length};
    use super::Kernel;

    /// The reference: each tree walked node by node in the fitted `f64` nodes until its leaf,
    /// path lengths summed over trees, `s = 2^(−E[h] / c(ψ))`.
    fn reference_score(forest: &IsolationForest, row: &[f64]) -> f64 {
        let mut sum = 0.0;
        for &root in &forest.roots {
            let mut i = root as usize;
            while !forest.nodes[i].is_leaf(i) {
                let node = forest.nodes[i];
                i = if row[node.feature as usize] <= node.split {
                    node.left as usize
                } else {
                    node.left as usize + 1
                };
            }
            sum += forest.leaf_value[i];
        }
        let c = average_path_length(forest.psi);
        if c > 0.0 {
            (-sum / (c * forest.roots.len() as f64)).exp2()
        } else {
            1.0
        }
    }

    /// The splits of the forest's inner nodes, per feature.
    fn splits(forest: &IsolationForest) -> Vec<Vec<f64>> {
        let mut per = vec![Vec::new(); forest.n_features];
        for (i, n) in forest.nodes.iter().enumerate() {
            if !n.is_leaf(i) {
                per[n.feature as usize].push(n.split);
            }
        }
        per
    }

    /// The complete layout scores every row as the node-by-node walk does, within 1e-12:
    /// random forests of several widths, depths and ψ, row counts that are not multiples of
    /// the group or the block, and rows whose values hit splits exactly (or sit one `f64` ulp
    /// either side).
    #[test]
    fn dense_scores_equal_the_reference_walk() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let cases = [
            // (training rows, features, ψ, trees, scored rows)
            (300, 1, 256, 30, 37),
            (300, 3, 256, 30, 333),
            (500, 7, 256, 40, 1000),
            (200, 37, 64, 25, 259),
            (4, 2, 256, 10, 17),
            (1, 3, 256, 5, 20),
            (1200, 5, 600, 8, 85),
            (3000, 4, 2048, 3, 50),
        ];
        let mut depths = Vec::new();
        for (case, &(n, d, psi, trees, rows)) in cases.iter().enumerate() {
            // Some columns have few distinct values, so nodes go constant and leaves shallow.
            let x = Array2::from_shape_fn((n, d), |(_, j)| match j % 3 {
                2 => f64::from(rng.random_range(0..3u8)),
                _ => rng.random_range(-3.0..3.0),
            });
            let params = Params {
                n_trees: trees,
                max_samples: psi,
                seed: case as u64,
                contamination: Contamination::Auto,
            };
            let forest = IsolationForest::fit(x.view(), params).unwrap();
            assert!(forest.dense.is_some(), "case {case}");
            let splits = splits(&forest);
            let q = Array2::from_shape_fn((rows, d), |(i, j)| {
                let s = &splits[j];
                match (i + j) % 4 {
                    _ if s.is_empty() => rng.random_range(-4.0..4.0),
                    0 => s[rng.random_range(0..s.len())],
                    1 => s[rng.random_range(0..s.len())].next_up(),
                    2 => s[rng.random_range(0..s.len())].next_down(),
                    _ => rng.random_range(-4.0..4.0),
                }
            });
            let mut got = vec![0.0; rows];
            forest.score_into(q.view(), &mut got).unwrap();
            for (i, g) in got.iter().enumerate() {
                let want = reference_score(&forest, q.row(i).as_slice().unwrap());
                assert!(
                    (g - want).abs() <= 1e-12,
                    "case {case} row {i}: {g} vs {want}"
                );
            }
            // Every kernel this CPU runs, not only the one `score_into` picks.
            let dense = forest.dense.as_ref().unwrap();
            depths.push(dense.depth);
            let flat = q.as_slice().unwrap();
            let norm = average_path_length(forest.psi) * forest.roots.len() as f64;
            let mut first: Option<Vec<f64>> = None;
            for kernel in Kernel::supported() {
                let mut sums = vec![0.0; rows];
                dense.path_sums_with(kernel, flat, &mut sums);
                for (i, sum) in sums.iter().enumerate() {
                    let g = if norm > 0.0 {
                        (-sum / norm).exp2()
                    } else {
                        1.0
                    };
                    let want = reference_score(&forest, q.row(i).as_slice().unwrap());
                    assert!(
                        (g - want).abs() <= 1e-12,
                        "{kernel:?} case {case} row {i}: {g} vs {want}"
                    );
                }
                match &first {
                    None => first = Some(sums),
                    Some(f) => assert!(
                        f.iter().zip(&sums).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{kernel:?} case {case}: sums differ from the portable kernel's"
                    ),
                }
            }
        }
        // Both the fixed-depth (ψ = 256, depth 8) and the run-time-depth descents ran.
        assert!(
            depths.contains(&8) && depths.iter().any(|&d| d != 8),
            "{depths:?}"
        );
        eprintln!("kernels compared: {:?}", Kernel::supported());
    }

    /// The dense walk gives bit-for-bit the sparse walk's scores, NaN, infinities and
    /// out-of-range values included, for group-sized and leftover rows and for shallow forests.
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
                (3, 0) => f64::INFINITY,
                (4, 1) => f64::NEG_INFINITY,
                (5, _) => f64::NAN,
                _ => rng.random_range(-5.0..5.0),
            });
            let (mut a, mut b) = (vec![0.0; rows], vec![0.0; rows]);
            forest.score_into(q.view(), &mut a).unwrap();
            sparse.score_into(q.view(), &mut b).unwrap();
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "n {n} psi {psi} row {i}");
            }
            // Every kernel this CPU runs: the scores `score_into` makes of its sums.
            let norm = average_path_length(forest.psi) * forest.roots.len() as f64;
            let inv = if norm > 0.0 { -1.0 / norm } else { 0.0 };
            for kernel in Kernel::supported() {
                let mut sums = vec![0.0; rows];
                let dense = forest.dense.as_ref().unwrap();
                dense.path_sums_with(kernel, q.as_slice().unwrap(), &mut sums);
                for (i, (sum, b)) in sums.iter().zip(&b).enumerate() {
                    let a = (sum * inv).exp2();
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{kernel:?} n {n} psi {psi} row {i}"
                    );
                }
            }
            // A non-contiguous view (every other column of a wider matrix) scores the same.
            let wide = Array2::from_shape_fn((rows, 8), |(i, j)| q[[i, j / 2]]);
            let view = wide.slice(ndarray::s![.., ..;2]);
            forest.score_into(view, &mut b).unwrap();
            assert_eq!(a, b);
        }
    }
}
