//! Quantiles from cumulative histogram buckets, computed as PromQL's `histogram_quantile` does.

/// The `q`-quantile of a classic histogram given as `(le, cumulative count)` buckets in any
/// order, by linear interpolation inside the bucket that holds the rank, exactly as Prometheus's
/// `histogram_quantile` (including its edge cases):
///
/// - `q < 0` gives `-Inf`, `q > 1` gives `+Inf`;
/// - `None` (Prometheus: NaN) when `q` is NaN, there is no `+Inf` bucket, fewer than two
///   buckets, or no observations;
/// - buckets with the same bound are merged, and counts that decrease with `le` are raised to
///   the running maximum (scrapes are not atomic, so this happens);
/// - a rank in the `+Inf` bucket gives the highest finite bound; the lowest bucket is assumed to
///   start at 0 unless its bound is not positive, in which case that bound is returned.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    let mut b: Vec<(f64, f64)> = buckets
        .iter()
        .copied()
        .filter(|(le, _)| !le.is_nan())
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.last().is_none_or(|&(le, _)| le != f64::INFINITY) {
        return None;
    }
    // merge equal bounds by summing their counts
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (le, c) in b {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for bucket in &mut merged {
        if bucket.1 < max {
            bucket.1 = max;
        } else {
            max = bucket.1;
        }
    }
    let n = merged.len();
    if n < 2 {
        return None;
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return None;
    }
    let mut rank = q * observations;
    let idx = merged[..n - 1]
        .iter()
        .position(|&(_, c)| c >= rank)
        .unwrap_or(n - 1);
    if idx == n - 1 {
        return Some(merged[n - 2].0);
    }
    if idx == 0 && merged[0].0 <= 0.0 {
        return Some(merged[0].0);
    }
    let bucket_end = merged[idx].0;
    let mut count = merged[idx].1;
    let mut bucket_start = 0.0;
    if idx > 0 {
        bucket_start = merged[idx - 1].0;
        count -= merged[idx - 1].1;
        rank -= merged[idx - 1].1;
    }
    let v = bucket_start + (bucket_end - bucket_start) * (rank / count);
    (!v.is_nan()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn interpolates_inside_the_bucket() {
        // 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.5], 10 in (0.5, 1]
        let b = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (INF, 100.0)];
        assert_eq!(histogram_quantile(0.5, &b), Some(0.1));
        let p = histogram_quantile(0.25, &b).unwrap();
        assert!((p - 0.05).abs() < 1e-12, "{p}");
        let p = histogram_quantile(0.7, &b).unwrap();
        assert!((p - 0.3).abs() < 1e-12, "{p}");
        let p = histogram_quantile(0.99, &b).unwrap();
        assert!((p - 0.95).abs() < 1e-12, "{p}");
    }

    #[test]
    fn rank_in_inf_bucket_gives_highest_finite_bound() {
        let b = [(0.1, 10.0), (1.0, 20.0), (INF, 100.0)];
        assert_eq!(histogram_quantile(0.99, &b), Some(1.0));
    }

    #[test]
    fn order_duplicates_and_non_monotonic_counts_are_repaired() {
        let b = [(INF, 100.0), (1.0, 100.0), (0.5, 90.0), (0.1, 50.0)];
        assert_eq!(histogram_quantile(0.5, &b), Some(0.1));
        // two label sets summed by `le`, as `sum by (le)` would
        let split = [
            (0.1, 25.0),
            (0.1, 25.0),
            (1.0, 50.0),
            (1.0, 50.0),
            (INF, 50.0),
            (INF, 50.0),
        ];
        assert_eq!(histogram_quantile(0.5, &split), Some(0.1));
        // the 0.5 bucket read lower than the 0.1 bucket: raised to 50
        let b = [(0.1, 50.0), (0.5, 40.0), (1.0, 100.0), (INF, 100.0)];
        let p = histogram_quantile(0.75, &b).unwrap();
        assert!((p - 0.75).abs() < 1e-12, "{p}");
    }

    #[test]
    fn edge_cases_match_prometheus() {
        let b = [(0.1, 50.0), (INF, 100.0)];
        assert_eq!(histogram_quantile(-0.1, &b), Some(f64::NEG_INFINITY));
        assert_eq!(histogram_quantile(1.1, &b), Some(INF));
        assert_eq!(histogram_quantile(f64::NAN, &b), None);
        assert_eq!(
            histogram_quantile(0.5, &[(0.1, 5.0), (1.0, 10.0)]),
            None,
            "no +Inf"
        );
        assert_eq!(histogram_quantile(0.5, &[(INF, 10.0)]), None, "one bucket");
        assert_eq!(
            histogram_quantile(0.5, &[(0.1, 0.0), (INF, 0.0)]),
            None,
            "empty"
        );
        assert_eq!(histogram_quantile(0.5, &[]), None);
        // lowest bucket with a non-positive bound returns that bound
        assert_eq!(
            histogram_quantile(0.1, &[(-1.0, 5.0), (INF, 10.0)]),
            Some(-1.0)
        );
    }
}
