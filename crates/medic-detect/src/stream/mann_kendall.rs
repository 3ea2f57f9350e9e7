//! Mann-Kendall trend test with Sen's slope: a batch test and a sliding-window detector.
//!
//! The statistic over `n` samples `x_0..x_{n−1}` is `S = Σ_{i<j} sign(x_j − x_i)`. Its variance
//! under "no trend", corrected for ties (groups of `t` equal values), is
//! `Var(S) = [n(n−1)(2n+5) − Σ t(t−1)(2t+5)] / 18`, and with the continuity correction
//! `Z = (S − sign(S)) / √Var(S)` (0 when `S = 0`), two-sided `p = 2(1 − Φ(|Z|))`,
//! `τ = S / (n(n−1)/2)`. Sen's slope is the median of `(x_j − x_i)/(j − i)` over `i < j`, and
//! the intercept `median(x) − median(0..n) · slope`. This is the "original test" of Hamed &
//! Rao / Hipel & McLeod as computed by `pymannkendall.original_test` and `sens_slope`, whose
//! outputs the tests reproduce.
//!
//! The test assumes independent samples; on autocorrelated series it is over-confident, so as a
//! detector its limit ranks trends rather than calibrating a false-alarm rate.

use statrs::distribution::{ContinuousCDF, Normal};

use super::{Detection, StreamDetector, StreamError, check};

/// Direction of a monotonic trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendDirection {
    /// Significantly increasing.
    Increasing,
    /// Significantly decreasing.
    Decreasing,
    /// No significant trend.
    NoTrend,
}

/// Result of [`mann_kendall`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendallTest {
    /// Samples.
    pub n: usize,
    /// `S`.
    pub s: i64,
    /// Tie-corrected variance of `S`.
    pub var_s: f64,
    /// Standardised statistic with continuity correction.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Kendall's τ.
    pub tau: f64,
    /// Whether `p < alpha`.
    pub significant: bool,
    /// Direction (`NoTrend` unless significant).
    pub trend: TrendDirection,
    /// Sen's slope per sample.
    pub sen_slope: f64,
    /// Intercept of Sen's line at position 0.
    pub intercept: f64,
}

/// `f(t) = t(t−1)(2t+5)`, one tie group's share of the variance correction.
fn tie_term(t: i64) -> i64 {
    t * (t - 1) * (2 * t + 5)
}

fn sign(d: f64) -> i64 {
    i64::from(d > 0.0) - i64::from(d < 0.0)
}

/// `Var(S)` from `n` and the summed tie terms.
fn variance(n: usize, ties: i64) -> f64 {
    let n = n as i64;
    (n * (n - 1) * (2 * n + 5) - ties) as f64 / 18.0
}

/// `Z` with continuity correction.
fn z_of(s: i64, var_s: f64) -> f64 {
    if s == 0 || var_s <= 0.0 {
        0.0
    } else {
        (s - s.signum()) as f64 / var_s.sqrt()
    }
}

fn two_sided_p(z: f64) -> f64 {
    // Φ from statrs; the standard normal always exists.
    Normal::new(0.0, 1.0).map_or(f64::NAN, |d| 2.0 * (1.0 - d.cdf(z.abs())))
}

/// Median of `v` (reordered); mean of the two middle values for an even length.
fn median(v: &mut [f64]) -> f64 {
    let m = v.len();
    let (lo, mid, _) = v.select_nth_unstable_by(m / 2, f64::total_cmp);
    let mid = *mid;
    if m % 2 == 1 {
        mid
    } else {
        let below = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + mid) / 2.0
    }
}

/// Sen's slope and intercept of `x` (`n ≥ 2`), with `scratch` for the `n(n−1)/2` pairwise
/// slopes and a copy of `x`.
fn sen(x: &[f64], scratch: &mut Vec<f64>) -> (f64, f64) {
    let n = x.len();
    scratch.clear();
    for j in 1..n {
        for i in 0..j {
            scratch.push((x[j] - x[i]) / (j - i) as f64);
        }
    }
    let slope = median(scratch);
    scratch.clear();
    scratch.extend_from_slice(x);
    let intercept = median(scratch) - (n - 1) as f64 / 2.0 * slope;
    (slope, intercept)
}

/// The Mann-Kendall test of `x` at two-sided level `alpha`, with Sen's slope.
///
/// O(n²) time and memory (Sen's slope takes every pair): meant for a history of up to a few
/// thousand samples, not for a per-sample path (use [`MannKendall`] there). Errors when
/// `x` has fewer than 3 samples, a non-finite sample, or `alpha` is outside `(0, 0.5)`.
pub fn mann_kendall(x: &[f64], alpha: f64) -> Result<MannKendallTest, StreamError> {
    check("samples", x.len() as f64, x.len() >= 3, "at least 3")?;
    check("alpha", alpha, alpha > 0.0 && alpha < 0.5, "in (0, 0.5)")?;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(StreamError::NonFinite { index: i });
    }
    let n = x.len();
    let mut s = 0i64;
    for j in 1..n {
        for i in 0..j {
            s += sign(x[j] - x[i]);
        }
    }
    let mut sorted = x.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let mut ties = 0i64;
    let mut k = 0;
    while k < n {
        let mut e = k + 1;
        while e < n && sorted[e] == sorted[k] {
            e += 1;
        }
        ties += tie_term((e - k) as i64);
        k = e;
    }
    let var_s = variance(n, ties);
    let z = z_of(s, var_s);
    let p = two_sided_p(z);
    let significant = p < alpha;
    let trend = match (significant, z > 0.0) {
        (false, _) => TrendDirection::NoTrend,
        (true, true) => TrendDirection::Increasing,
        (true, false) => TrendDirection::Decreasing,
    };
    let (sen_slope, intercept) = sen(x, &mut sorted);
    Ok(MannKendallTest {
        n,
        s,
        var_s,
        z,
        p,
        tau: s as f64 / (n * (n - 1)) as f64 * 2.0,
        significant,
        trend,
        sen_slope,
        intercept,
    })
}

/// Sliding-window Mann-Kendall detector over the last `window` samples.
///
/// `S` and the tie correction are updated exactly when a sample enters and the oldest leaves:
/// each costs one pass of sign comparisons over the window, O(w) with fixed memory (no
/// allocation after construction) and no special-function work (the critical `|Z|` for `alpha`
/// is computed once). The state always equals [`mann_kendall`] over the window's samples.
/// Score `min(1, |Z| / (2 z_crit))`, given once the window is full. Non-finite samples are
/// skipped (they neither enter the window nor change the state) and score 0.
#[derive(Debug, Clone)]
pub struct MannKendall {
    buf: Box<[f64]>,
    head: usize,
    len: usize,
    s: i64,
    ties: i64,
    z_crit: f64,
    /// Scratch for [`MannKendall::sen_slope`]: `w(w−1)/2` pairwise slopes.
    scratch: Vec<f64>,
    ordered: Box<[f64]>,
}

/// Largest window: Sen's slope scratch grows with `w²`.
pub const MANN_KENDALL_MAX_WINDOW: usize = 1024;

impl MannKendall {
    /// A detector over `window` samples (3..=[`MANN_KENDALL_MAX_WINDOW`]) at two-sided level
    /// `alpha` in (0, 0.5).
    pub fn new(window: usize, alpha: f64) -> Result<MannKendall, StreamError> {
        check(
            "window",
            window as f64,
            (3..=MANN_KENDALL_MAX_WINDOW).contains(&window),
            "in 3..=1024",
        )?;
        check("alpha", alpha, alpha > 0.0 && alpha < 0.5, "in (0, 0.5)")?;
        let z_crit = Normal::new(0.0, 1.0)
            .map(|d| d.inverse_cdf(1.0 - alpha / 2.0))
            .unwrap_or(f64::NAN);
        check("z_crit", z_crit, z_crit > 0.0, "a finite critical value")?;
        Ok(MannKendall {
            buf: vec![0.0; window].into_boxed_slice(),
            head: 0,
            len: 0,
            s: 0,
            ties: 0,
            z_crit,
            scratch: Vec::with_capacity(window * (window - 1) / 2),
            ordered: vec![0.0; window].into_boxed_slice(),
        })
    }

    /// Samples in the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no sample has been seen since construction or reset.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `S` over the window.
    pub fn s(&self) -> i64 {
        self.s
    }

    /// Tie-corrected `Var(S)` over the window.
    pub fn var_s(&self) -> f64 {
        variance(self.len, self.ties)
    }

    /// `Z` over the window (0 with fewer than 3 samples).
    pub fn z(&self) -> f64 {
        if self.len < 3 {
            0.0
        } else {
            z_of(self.s, self.var_s())
        }
    }

    /// Two-sided p-value over the window (1 with fewer than 3 samples).
    pub fn p(&self) -> f64 {
        if self.len < 3 {
            1.0
        } else {
            two_sided_p(self.z())
        }
    }

    /// The critical `|Z|` of the configured `alpha`.
    pub fn z_crit(&self) -> f64 {
        self.z_crit
    }

    /// Sen's slope and intercept (position 0 = oldest sample) over the window; `None` with
    /// fewer than 2 samples. O(w²) time into buffers sized at construction: call it when a
    /// trend was flagged, not per sample.
    pub fn sen_slope(&mut self) -> Option<(f64, f64)> {
        if self.len < 2 {
            return None;
        }
        let cap = self.buf.len();
        let start = (self.head + cap - self.len) % cap;
        for k in 0..self.len {
            self.ordered[k] = self.buf[(start + k) % cap];
        }
        Some(sen(&self.ordered[..self.len], &mut self.scratch))
    }

    /// The window's samples as at most two slices (in ring order, oldest first).
    fn slices(&self) -> (&[f64], &[f64]) {
        let cap = self.buf.len();
        let start = (self.head + cap - self.len) % cap;
        if start + self.len <= cap {
            (&self.buf[start..start + self.len], &[])
        } else {
            (&self.buf[start..], &self.buf[..start + self.len - cap])
        }
    }

    /// `Σ sign(x − v)` and the count of `v == x` over the window's samples.
    fn compare(&self, x: f64) -> (i64, i64) {
        let (a, b) = self.slices();
        let (mut ds, mut equal) = (0i64, 0i64);
        for &v in a.iter().chain(b) {
            ds += sign(x - v);
            equal += i64::from(v == x);
        }
        (ds, equal)
    }

    /// Removes the oldest sample from `S` and the ties.
    fn pop_oldest(&mut self) {
        let cap = self.buf.len();
        let start = (self.head + cap - self.len) % cap;
        let old = self.buf[start];
        // Comparing with itself adds 0 to the sign sum and 1 to the equal count.
        let (ds, equal_self) = self.compare(old);
        let equal = equal_self - 1;
        self.s += ds;
        self.ties -= tie_term(equal + 1) - tie_term(equal);
        self.len -= 1;
    }
}

impl StreamDetector for MannKendall {
    fn update(&mut self, x: f64) -> Detection {
        if !x.is_finite() {
            return Detection::default();
        }
        let cap = self.buf.len();
        if self.len == cap {
            self.pop_oldest();
        }
        let (ds, equal) = self.compare(x);
        self.s += ds;
        self.ties += tie_term(equal + 1) - tie_term(equal);
        self.buf[self.head] = x;
        self.head = if self.head + 1 == cap {
            0
        } else {
            self.head + 1
        };
        self.len += 1;
        if self.len < cap {
            return Detection::default();
        }
        Detection::from_ratio(self.z().abs(), self.z_crit)
    }

    fn reset(&mut self) {
        self.head = 0;
        self.len = 0;
        self.s = 0;
        self.ties = 0;
    }
}
