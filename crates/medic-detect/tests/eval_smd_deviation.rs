//! SMD deviation ranking on hand-computed cases.

use medic_detect::eval::smd::{DeviationRanker, hit_rate};
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
