//! Streaming detectors on synthetic series: each catches the pattern it is for.

use medic_core::Timestamp;
use medic_detect::stream::{
    AnomalyLikelihood, CombinerWeights, Cusum, Ewma, RollingMad, RollingZScore, Seasonal,
    StreamDetector, TargetStream, Trend,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Standard normal noise (Box-Muller), seeded.
fn noise(seed: u64, n: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            let v: f64 = rng.random();
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}

fn flags(detector: &mut impl StreamDetector, xs: &[f64]) -> Vec<usize> {
    xs.iter()
        .enumerate()
        .filter_map(|(i, &x)| detector.update(x).flag.then_some(i))
        .collect()
}

#[test]
fn zscore_catches_a_spike_and_little_else() {
    let mut xs: Vec<f64> = noise(1, 2000).iter().map(|e| 50.0 + e).collect();
    xs[1500] += 12.0;
    let mut z = RollingZScore::new(100, 5.0).unwrap();
    let f = flags(&mut z, &xs);
    assert!(f.contains(&1500), "{f:?}");
    assert!(f.len() <= 3, "{f:?}");
}

#[test]
fn zscore_scores_are_in_unit_interval_and_constant_series_is_quiet() {
    let mut z = RollingZScore::new(20, 3.0).unwrap();
    for _ in 0..100 {
        let d = z.update(7.0);
        assert_eq!(d.score, 0.0);
    }
    let d = z.update(7.5);
    assert_eq!(d.score, 1.0);
    assert!(d.flag);
}

#[test]
fn cusum_catches_a_step_change_once() {
    let e = noise(2, 3000);
    let xs: Vec<f64> = e
        .iter()
        .enumerate()
        .map(|(i, e)| if i < 2000 { 10.0 + e } else { 11.5 + e })
        .collect();
    let mut c = Cusum::new(0.5, 8.0, 0.01).unwrap();
    let f = flags(&mut c, &xs);
    let before: Vec<_> = f.iter().filter(|&&i| i < 2000).collect();
    let after: Vec<_> = f.iter().filter(|&&i| (2000..2060).contains(&i)).collect();
    assert!(before.is_empty(), "false alarms {before:?}");
    assert!(!after.is_empty(), "step missed: {f:?}");
    // The reset re-centres on the new level: no alarm storm afterwards.
    assert!(f.iter().filter(|&&i| i >= 2100).count() <= 1, "{f:?}");
}

#[test]
fn ewma_catches_a_small_sustained_shift_that_zscore_misses() {
    let e = noise(3, 3000);
    let xs: Vec<f64> = e
        .iter()
        .enumerate()
        .map(|(i, e)| if i < 2000 { e * 1.0 } else { 1.2 + e })
        .collect();
    let mut ewma = Ewma::new(0.1, 3.5, 0.002).unwrap();
    let f = flags(&mut ewma, &xs);
    assert!(f.iter().filter(|&&i| i < 2000).count() <= 2, "{f:?}");
    assert!(f.iter().any(|&i| (2000..2100).contains(&i)), "{f:?}");
}

#[test]
fn trend_catches_a_ramp_and_not_noise() {
    let e = noise(4, 3000);
    let xs: Vec<f64> = e
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i < 2000 {
                e * 1.0
            } else {
                (i - 2000) as f64 * 0.05 + e
            }
        })
        .collect();
    let mut t = Trend::new(60, 0.001).unwrap();
    let f = flags(&mut t, &xs);
    let before = f.iter().filter(|&&i| i < 2000).count();
    assert!(before <= 20, "{before} flags on stationary noise");
    assert!(f.iter().any(|&i| (2000..2100).contains(&i)), "ramp missed");
    assert!(t.slope() > 0.03, "slope {}", t.slope());
}

#[test]
fn trend_slope_is_exact_on_a_line_and_survives_resums() {
    let mut t = Trend::new(10, 0.01).unwrap();
    for i in 0..1000 {
        t.update(1e6 + 2.5 * i as f64 + if i % 2 == 0 { 0.1 } else { -0.1 });
    }
    assert!((t.slope() - 2.5).abs() < 0.01, "{}", t.slope());
    assert!(t.t() > t.t_crit());
}

#[test]
fn mad_tracks_median_and_scale_and_ignores_outliers() {
    let mut xs: Vec<f64> = noise(5, 5000).iter().map(|e| 100.0 + 2.0 * e).collect();
    for i in (0..5000).step_by(50) {
        xs[i] = 1e6; // 2 % gross outliers
    }
    let mut m = RollingMad::new(0.01, 5.0).unwrap();
    for &x in &xs {
        m.update(x);
    }
    assert!((m.median() - 100.0).abs() < 0.5, "median {}", m.median());
    // MAD of N(0, 2²) is 2 × 0.6745 ≈ 1.35.
    assert!((m.mad() - 1.35).abs() < 0.4, "mad {}", m.mad());
    let d = m.update(130.0);
    assert!(d.flag && d.score > 0.9, "{d:?}");
    assert!(!m.update(101.0).flag);
}

#[test]
fn seasonal_baseline_catches_a_missing_daily_peak() {
    let five_min = 300_000_000i64;
    let e = noise(6, 288 * 10);
    let mut s = Seasonal::new(86_400_000_000, 288, 0.1, 3, 4.0).unwrap();
    let mut flagged = Vec::new();
    for (i, e) in e.iter().enumerate() {
        let phase = (i % 288) as f64 / 288.0;
        let peak = if (0.45..0.55).contains(&phase) {
            20.0
        } else {
            0.0
        };
        // Day 8 loses its peak.
        let peak = if i / 288 == 8 { 0.0 } else { peak };
        let d = s.update(i as i64 * five_min, 10.0 + peak + 0.5 * e);
        if d.flag {
            flagged.push(i);
        }
    }
    let day8 = 8 * 288..9 * 288;
    assert!(flagged.iter().any(|i| day8.contains(i)), "{flagged:?}");
    // After the profile is learnt (day 3 on), regular days raise (almost) nothing.
    let quiet = flagged
        .iter()
        .filter(|&&i| i >= 3 * 288 && !day8.contains(&i))
        .count();
    assert!(quiet <= 3, "{quiet} flags on regular days: {flagged:?}");
}

#[test]
fn likelihood_is_low_on_stationary_scores_and_high_after_a_change() {
    let mut l = AnomalyLikelihood::new(10, 500, 100, 1e-4).unwrap();
    let e = noise(7, 1200);
    let mut max_before = 0.0f64;
    let mut max_after = 0.0f64;
    for (i, e) in e.iter().enumerate() {
        let raw = if i < 1000 { 0.2 + 0.05 * e } else { 0.8 };
        let s = l.update(raw);
        assert!((0.0..=1.0).contains(&s));
        if i < 1000 {
            max_before = max_before.max(s);
        } else {
            max_after = max_after.max(s);
        }
    }
    assert!(max_before < 0.5, "{max_before}");
    assert!(max_after > 0.9, "{max_after}");
}

#[test]
fn combiner_merges_parts_and_explains_on_request() {
    let weights = CombinerWeights {
        iforest: 0.8,
        zscore: 0.6,
        mad: 0.6,
        ewma: 0.5,
        cusum: 0.7,
        trend: 0.4,
    };
    let mut target = TargetStream::new(weights).unwrap();
    let e = noise(8, 600);
    let mut last = None;
    for (i, e) in e.iter().enumerate() {
        let x = if i < 500 { 5.0 + e } else { 15.0 + e };
        let iforest = (i % 2 == 0).then_some(0.3);
        let c = target.update(Timestamp::from_millis(i as u64 * 1000), x, iforest);
        assert!((0.0..=1.0).contains(&c.score));
        assert_eq!(c.parts[0].is_some(), i % 2 == 0);
        if i == 500 {
            last = Some(c);
        }
    }
    let at_step = last.unwrap();
    assert!(at_step.flag && at_step.score > 0.8, "{at_step:?}");
    let reason = target.reason();
    assert!(reason.starts_with("score "), "{reason}");
    assert!(
        reason.contains("zscore") || reason.contains("mad") || reason.contains("cusum"),
        "{reason}"
    );
}

#[test]
fn invalid_parameters_are_refused() {
    assert!(RollingZScore::new(1, 3.0).is_err());
    assert!(RollingZScore::new(10, f64::NAN).is_err());
    assert!(RollingMad::new(1.5, 3.0).is_err());
    assert!(Ewma::new(0.0, 3.0, 0.01).is_err());
    assert!(Cusum::new(-1.0, 5.0, 0.01).is_err());
    assert!(Trend::new(3, 0.01).is_err());
    assert!(AnomalyLikelihood::new(10, 100, 200, 1e-4).is_err());
    assert!(Seasonal::new(86_400_000_000, 2, 0.1, 3, 3.0).is_err());
    let err = Trend::new(10, 0.7).unwrap_err().to_string();
    assert!(err.contains("alpha"), "{err}");
}

#[test]
fn non_finite_samples_do_not_poison_scores_into_nan() {
    let mut z = RollingZScore::new(10, 3.0).unwrap();
    for i in 0..50 {
        let d = z.update(i as f64);
        assert!(!d.score.is_nan());
    }
}
