//! Mann-Kendall test and Sen's slope against pymannkendall 1.4.3 (`original_test`, alpha 0.05),
//! and the sliding detector against the batch test.
//!
//! The reference numbers were printed by
//! `python3 -c "import pymannkendall as mk; print(mk.original_test(x, alpha=0.05))"`
//! for each series below and are embedded as printed.

use medic_detect::stream::{
    MannKendall, StreamDetector, StreamError, TrendDirection, mann_kendall,
};

struct Reference {
    x: Vec<f64>,
    trend: TrendDirection,
    p: f64,
    z: f64,
    tau: f64,
    s: i64,
    var_s: f64,
    slope: f64,
    intercept: f64,
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        "{what}: got {a}, reference {b}"
    );
}

fn check(r: &Reference) {
    let t = mann_kendall(&r.x, 0.05).expect("valid input");
    assert_eq!(t.n, r.x.len());
    assert_eq!(t.s, r.s);
    assert_eq!(t.trend, r.trend);
    assert_eq!(t.significant, r.trend != TrendDirection::NoTrend);
    close(t.var_s, r.var_s, "var_s");
    close(t.z, r.z, "z");
    close(t.p, r.p, "p");
    close(t.tau, r.tau, "tau");
    close(t.sen_slope, r.slope, "slope");
    close(t.intercept, r.intercept, "intercept");
}

#[test]
fn increasing_without_ties() {
    check(&Reference {
        x: vec![1.0, 2.0, 3.0, 5.0, 4.0, 6.0, 8.0, 7.0, 9.0, 10.0],
        trend: TrendDirection::Increasing,
        p: 0.00034661935113455833,
        z: 3.5777087639996634,
        tau: 0.9111111111111111,
        s: 41,
        var_s: 125.0,
        slope: 1.0,
        intercept: 1.0,
    });
}

#[test]
fn increasing_with_ties_uses_the_tie_correction() {
    // Ties: 3 ×3, 1 ×2, 5 ×3, 9 ×3: Σ t(t−1)(2t+5) = 66 + 18 + 66 + 66 = 216;
    // Var = (16·15·37 − 216)/18 = 481.333…, S = 48, Z = 47/√481.333 = 2.1423.
    check(&Reference {
        x: vec![
            3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0, 8.0, 9.0, 7.0, 9.0, 3.0,
        ],
        trend: TrendDirection::Increasing,
        p: 0.032171490663501334,
        z: 2.142273367256243,
        tau: 0.4,
        s: 48,
        var_s: 481.3333333333333,
        slope: 0.4,
        intercept: 2.0,
    });
}

#[test]
fn decreasing_with_oscillation() {
    // round(20 − 0.3 i + 2 sin i, 6) for i in 0..30.
    let x = vec![
        20.0, 21.382942, 21.218595, 19.38224, 17.286395, 16.582151, 17.641169, 19.213973,
        19.578716, 18.124237, 15.911958, 14.70002, 15.326854, 16.940334, 17.781215, 16.800576,
        14.624193, 12.977205, 13.098026, 14.599754, 15.825891, 15.373311, 13.382297, 11.407559,
        10.988843, 12.235296, 13.725117, 13.812752, 12.141812, 9.972732,
    ];
    check(&Reference {
        x,
        trend: TrendDirection::Decreasing,
        p: 5.8386512735708607e-08,
        z: -5.42367342506448,
        tau: -0.7011494252873564,
        s: -305,
        var_s: 3141.6666666666665,
        slope: -0.30347178947368425,
        intercept: 19.99994194736842,
    });
}

#[test]
fn no_trend() {
    check(&Reference {
        x: vec![5.0, 3.0, 6.0, 4.0, 5.0, 3.0, 6.0, 4.0, 5.0, 3.0],
        trend: TrendDirection::NoTrend,
        p: 0.7099483659814612,
        z: -0.3719254364242462,
        tau: -0.1111111111111111,
        s: -5,
        var_s: 115.66666666666667,
        slope: 0.0,
        intercept: 4.5,
    });
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(
        mann_kendall(&[1.0, 2.0], 0.05),
        Err(StreamError::OutOfRange { .. })
    ));
    assert_eq!(
        mann_kendall(&[1.0, f64::NAN, 2.0, 3.0], 0.05),
        Err(StreamError::NonFinite { index: 1 })
    );
    assert!(mann_kendall(&[1.0, 2.0, 3.0], 0.0).is_err());
    assert!(MannKendall::new(2, 0.05).is_err());
    assert!(MannKendall::new(10, 0.7).is_err());
}

#[test]
fn sliding_detector_equals_the_batch_test_over_its_window() {
    // Values on a coarse grid so ties enter and leave the window; a slow upward drift.
    let w = 24;
    let mut det = MannKendall::new(w, 0.05).expect("valid");
    let mut seed = 12345u64;
    let mut xs = Vec::new();
    let mut flagged = 0;
    for i in 0..400 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = ((seed >> 33) % 7) as f64;
        let x = noise + if i > 200 { (i - 200) as f64 * 0.2 } else { 0.0 };
        let d = det.update(x);
        xs.push(x);
        let lo = xs.len().saturating_sub(w);
        let win = &xs[lo..];
        if win.len() >= 3 {
            let t = mann_kendall(win, 0.05).expect("valid");
            assert_eq!(det.s(), t.s, "S at sample {i}");
            close(det.var_s(), t.var_s, "var_s");
            close(det.z(), t.z, "z");
            close(det.p(), t.p, "p");
            let (slope, intercept) = det.sen_slope().expect("two samples");
            close(slope, t.sen_slope, "slope");
            close(intercept, t.intercept, "intercept");
        }
        if win.len() == w {
            assert_eq!(d.flag, det.z().abs() >= det.z_crit(), "flag at sample {i}");
            flagged += usize::from(d.flag);
        } else {
            assert_eq!(d.score, 0.0, "no score before the window is full");
        }
    }
    assert!(flagged > 50, "the drift is flagged ({flagged} samples)");
    // A non-finite sample is skipped.
    let s = det.s();
    assert_eq!(det.update(f64::NAN).score, 0.0);
    assert_eq!(det.s(), s);
    det.reset();
    assert!(det.is_empty());
    assert_eq!(det.s(), 0);
}
