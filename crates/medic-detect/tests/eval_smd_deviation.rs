//! SMD attribution rankings and HitRate pooling on hand-computed cases.

use medic_detect::eval::smd::{ChangeRanker, DeviationRanker, HitRateSums, hit_rate};
use ndarray::array;

#[test]
fn deviation_is_causal_and_standardised_by_the_train_spread() {
    // Column 0 spreads over [0, 1] in train (1st–99th percentile spread 1.0), column 1 is
    // constant (spread floored at 0.01). Medians 0.5 and 2.0.
    let train = array![[0.0, 2.0], [0.25, 2.0], [0.5, 2.0], [0.75, 2.0], [1.0, 2.0]];
    let mut r = DeviationRanker::from_train(&train, 0.5);
    let mut out = [0.0; 2];
    r.deviations_into(&[1.5, 2.02], &mut out);
    assert!((out[0] - 1.0).abs() < 1e-12, "{out:?}");
    assert!((out[1] - 2.0).abs() < 1e-9, "{out:?}");
    // The baseline moved half-way to the previous row (α = 0.5): 1.0 and 2.01.
    r.deviations_into(&[1.0, 2.01], &mut out);
    assert!(out[0].abs() < 1e-12, "{out:?}");
    assert!(out[1].abs() < 1e-9, "{out:?}");
    // A missing value scores 0 and leaves its baseline alone.
    r.deviations_into(&[f64::NAN, 2.01], &mut out);
    assert_eq!(out[0], 0.0);
    r.deviations_into(&[2.0, 2.01], &mut out);
    assert!((out[0] - 1.0).abs() < 1e-12, "{out:?}");
}

#[test]
fn the_metric_that_jumped_ranks_first() {
    let train = array![
        [0.1, 0.5, 0.9],
        [0.2, 0.6, 0.8],
        [0.3, 0.4, 0.7],
        [0.2, 0.5, 0.8]
    ];
    let mut r = DeviationRanker::from_train(&train, 1.0 / 30.0);
    let mut out = [0.0; 3];
    for _ in 0..100 {
        r.deviations_into(&[0.2, 0.5, 0.8], &mut out);
    }
    r.deviations_into(&[0.2, 0.95, 0.8], &mut out);
    let mut ranked: Vec<usize> = (0..3).collect();
    ranked.sort_by(|&a, &b| out[b].total_cmp(&out[a]));
    assert_eq!(ranked[0], 1);
    assert_eq!(hit_rate(&ranked, &[1], 150.0), Some(1.0));
}

/// Train column 0 = [0, 1, 0, 1], column 1 constant 2. Medians (upper of the two middle
/// values) 1 and 2. EWMA with α = 0.5 from the median: column 0 residuals 1, 0.5, 0.75,
/// 0.625 (baselines 0.5, 0.75, 0.375, 0.6875), column 1 residuals all 0.
fn change_train() -> ndarray::Array2<f64> {
    array![[0.0, 2.0], [1.0, 2.0], [0.0, 2.0], [1.0, 2.0]]
}

/// Population standard deviation of column 0's train residuals {1, 0.5, 0.75, 0.625}.
fn sigma0() -> f64 {
    let r = [1.0, 0.5, 0.75, 0.625];
    let mean = 0.71875;
    (r.iter().map(|v: &f64| (v - mean) * (v - mean)).sum::<f64>() / 4.0).sqrt()
}

#[test]
fn change_surprise_is_the_tail_probability_of_the_residual_among_train_residuals() {
    let mut r = ChangeRanker::from_train(&change_train(), 0.5, 1);
    let mut out = [0.0; 2];
    // Test baselines restart at the medians (1, 2): no change scores 0.
    r.scores_into(&[1.0, 2.0], &mut out);
    assert_eq!(out, [0.0, 0.0]);
    // Residual 0.7: 2 of the 4 train residuals (0.75, 1) are ≥ 0.7 → −ln(3/5), plus the
    // 1e-3 · r / σ tie-break.
    r.scores_into(&[0.3, 2.0], &mut out);
    let want = (5.0f64 / 3.0).ln() + 1e-3 * 0.7 / sigma0();
    assert!((out[0] - want).abs() < 1e-12, "{out:?} vs {want}");
    assert_eq!(out[1], 0.0);
    // Baseline now 1 + 0.5 · (0.3 − 1) = 0.65; residual 4.35 beyond every train residual:
    // −ln(1/5). Column 1 never moved in train (σ floored at 1e-6): residual 0.01 is beyond all
    // train residuals too and its tie-break (10) ranks it above column 0.
    r.scores_into(&[5.0, 2.01], &mut out);
    let want0 = 5.0f64.ln() + 1e-3 * 4.35 / sigma0();
    let want1 = 5.0f64.ln() + 1e-3 * 0.01 / 1e-6;
    assert!((out[0] - want0).abs() < 1e-9, "{out:?} vs {want0}");
    assert!((out[1] - want1).abs() < 1e-6, "{out:?} vs {want1}");
    assert!(out[1] > out[0]);
    // A missing value scores 0 and leaves its baseline alone. Column 1's baseline is now
    // 2.005, so 2.015 is again a residual of 0.01.
    r.scores_into(&[f64::NAN, 2.015], &mut out);
    assert_eq!(out[0], 0.0);
    assert!((out[1] - want1).abs() < 1e-6, "{out:?}");
    // Column 0's baseline stayed at 0.65 + 0.5 · (5 − 0.65) = 2.825.
    r.scores_into(&[2.825, 2.01], &mut out);
    assert!(out[0].abs() < 1e-9, "{out:?}");
}

#[test]
fn change_surprise_averages_the_last_rows() {
    let mut one = ChangeRanker::from_train(&change_train(), 0.5, 1);
    let mut two = ChangeRanker::from_train(&change_train(), 0.5, 2);
    let rows = [[1.0, 2.0], [0.3, 2.0], [5.0, 2.01], [0.65, 2.0]];
    let mut single = Vec::new();
    let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
    for (k, row) in rows.iter().enumerate() {
        one.scores_into(row, &mut a);
        two.scores_into(row, &mut b);
        single.push(a);
        // The first row averages over itself only, later ones over two rows.
        let want = if k == 0 {
            a
        } else {
            [
                (single[k][0] + single[k - 1][0]) / 2.0,
                (single[k][1] + single[k - 1][1]) / 2.0,
            ]
        };
        assert!(
            (b[0] - want[0]).abs() < 1e-12 && (b[1] - want[1]).abs() < 1e-12,
            "{k}: {b:?} {want:?}"
        );
    }
}

#[test]
fn hit_rates_pool_over_all_rows_and_over_detected_rows() {
    let mut s = HitRateSums::default();
    // GT {2, 5, 7}, ranking 5, 1, 7, 2, 0: @100 top 3 → 2/3, @150 top 4 → 1. Detected.
    s.add(&[5, 1, 7, 2, 0], &[2, 5, 7], true);
    // GT {1}, ranking 0, 1, 2: @100 and @150 both look at ⌊1.5⌋ = 1 metric → 0. Missed.
    s.add(&[0, 1, 2], &[1], false);
    // GT {1}, ranking 1, 0: 1 and 1. Detected.
    s.add(&[1, 0], &[1], true);
    // No ground truth: not counted.
    s.add(&[0, 1], &[], true);
    assert_eq!((s.rows(), s.detected()), (3, 2));
    let h = s.finish("x");
    assert!((h.all_100 - 5.0 / 9.0).abs() < 1e-12, "{h:?}");
    assert!((h.all_150 - 2.0 / 3.0).abs() < 1e-12, "{h:?}");
    // OmniAnomaly's definition: only the two detected rows.
    assert!((h.detected_100 - 5.0 / 6.0).abs() < 1e-12, "{h:?}");
    assert!((h.detected_150 - 1.0).abs() < 1e-12, "{h:?}");
    // Nothing counted: zeros, not NaN.
    let e = HitRateSums::default().finish("e");
    assert_eq!((e.all_150, e.detected_150), (0.0, 0.0));
}
