//! Isolation forest: c(n), path lengths, reproducibility, planted outliers, attribution,
//! model files.

use medic_core::AnomalyKind;
use medic_detect::iforest::{
    Contamination, Error, IsolationForest, ModelFile, Params, TrainingSummary, average_path_length,
    classify_anomaly, threshold_for_fraction,
};
use medic_detect::scaler::{Scaler, ScalerKind};
use ndarray::{Array2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gaussian_like(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Array2<f64> {
    // Sum of uniforms: bell-shaped, bounded, deterministic.
    Array2::from_shape_fn((n, d), |_| {
        (0..4).map(|_| rng.random::<f64>()).sum::<f64>() - 2.0
    })
}

#[test]
fn c_of_n_matches_the_paper() {
    assert_eq!(average_path_length(0), 0.0);
    assert_eq!(average_path_length(1), 0.0);
    assert_eq!(average_path_length(2), 1.0);
    // c(n) = 2(ln(n-1) + γ) - 2(n-1)/n
    let c3 = 2.0 * (2f64.ln() + 0.5772156649015329) - 2.0 * 2.0 / 3.0;
    assert!((average_path_length(3) - c3).abs() < 1e-12);
    // c(256) ≈ 10.2448 (scikit-learn's _average_path_length(256)).
    assert!((average_path_length(256) - 10.244_770_920_116_851).abs() < 1e-9);
}

#[test]
fn path_lengths_on_a_hand_built_tree() {
    // Four distinct 1-d points, ψ = 4: height limit 2. For the extreme point 0, a 1-tree
    // forest gives exactly one of: isolated at the first split (1 + c(1) = 1), isolated at the
    // second (2 + c(1) = 2), or left with one neighbour at the height limit (2 + c(2) = 3).
    let x = Array2::from_shape_vec((4, 1), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
    for seed in 0..20 {
        let f = IsolationForest::fit(
            x.view(),
            Params {
                n_trees: 1,
                max_samples: 4,
                seed,
                contamination: Contamination::Auto,
            },
        )
        .unwrap();
        let h0 = f.mean_path_length(&[0.0]).unwrap();
        assert!(
            [1.0, 2.0, 3.0].iter().any(|h| (h0 - h).abs() < 1e-9),
            "seed {seed}: h(0) = {h0}"
        );
        // Far outside the data: same leaf as the extreme point.
        let h_far = f.mean_path_length(&[-100.0]).unwrap();
        assert!((h_far - h0).abs() < 1e-9);
        // Score from the path length: s = 2^(-h/c(4)).
        let s = f.score_row(&[0.0]).unwrap();
        assert!((s - 2f64.powf(-h0 / average_path_length(4))).abs() < 1e-12);
    }
    // Two identical points: the node is constant, so the root is a leaf with c(2) = 1.
    let x = Array2::from_shape_vec((2, 1), vec![5.0, 5.0]).unwrap();
    let f = IsolationForest::fit(
        x.view(),
        Params {
            n_trees: 3,
            max_samples: 2,
            seed: 1,
            contamination: Contamination::Auto,
        },
    )
    .unwrap();
    assert!((f.mean_path_length(&[5.0]).unwrap() - 1.0).abs() < 1e-12);
    assert!((f.score_row(&[5.0]).unwrap() - 0.5).abs() < 1e-12);
}

#[test]
fn same_seed_same_forest_different_seed_different_scores() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = gaussian_like(&mut rng, 2000, 5);
    let p = Params {
        seed: 42,
        ..Params::default()
    };
    let a = IsolationForest::fit(x.view(), p).unwrap();
    let b = IsolationForest::fit(x.view(), p).unwrap();
    let c = IsolationForest::fit(x.view(), Params { seed: 43, ..p }).unwrap();
    let mut sa = vec![0.0; 2000];
    let mut sb = vec![0.0; 2000];
    let mut sc = vec![0.0; 2000];
    a.score_into(x.view(), &mut sa).unwrap();
    b.score_into(x.view(), &mut sb).unwrap();
    c.score_into(x.view(), &mut sc).unwrap();
    assert_eq!(sa, sb);
    assert_ne!(sa, sc);
    assert_eq!(a.threshold(), b.threshold());
}

#[test]
fn planted_outliers_score_higher_and_cross_the_threshold() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut x = gaussian_like(&mut rng, 1000, 4);
    // Rows 0..10 are far out on feature 2.
    for i in 0..10 {
        x[[i, 2]] = 8.0 + i as f64;
    }
    let f = IsolationForest::fit(
        x.view(),
        Params {
            contamination: Contamination::Fraction(0.02),
            ..Params::default()
        },
    )
    .unwrap();
    let mut s = vec![0.0; 1000];
    f.score_into(x.view(), &mut s).unwrap();
    let min_out = s[..10].iter().copied().fold(f64::INFINITY, f64::min);
    let mut inl: Vec<f64> = s[10..].to_vec();
    inl.sort_by(f64::total_cmp);
    let p99_in = inl[(inl.len() * 99) / 100];
    assert!(
        min_out > p99_in,
        "outliers {min_out} vs inlier p99 {p99_in}"
    );
    assert!(s[..10].iter().all(|&v| v >= f.threshold()));
    // Scores in (0, 1].
    assert!(s.iter().all(|&v| v > 0.0 && v <= 1.0));
    // A non-contiguous view (every other row) scores like the same rows copied.
    let strided = x.slice(s![..;2, ..]);
    let mut s2 = vec![0.0; strided.nrows()];
    f.score_into(strided, &mut s2).unwrap();
    for (i, v) in s2.iter().enumerate() {
        assert_eq!(*v, s[2 * i]);
    }
    // Single-row scoring equals the batch path.
    for i in [0, 17, 999] {
        assert_eq!(f.score_row(x.row(i).as_slice().unwrap()).unwrap(), s[i]);
    }
}

#[test]
fn bad_input_is_an_error() {
    let x = Array2::<f64>::zeros((0, 3));
    assert!(matches!(
        IsolationForest::fit(x.view(), Params::default()),
        Err(Error::EmptyTrainingSet { .. })
    ));
    let mut x = Array2::<f64>::zeros((10, 2));
    x[[3, 1]] = f64::NAN;
    assert!(matches!(
        IsolationForest::fit(x.view(), Params::default()),
        Err(Error::NonFinite { row: 3, col: 1 })
    ));
    let x = Array2::<f64>::zeros((10, 2));
    assert!(
        IsolationForest::fit(
            x.view(),
            Params {
                contamination: Contamination::Fraction(0.9),
                ..Params::default()
            }
        )
        .is_err()
    );
    let f = IsolationForest::fit(x.view(), Params::default()).unwrap();
    let mut out = vec![0.0; 3];
    assert!(
        f.score_into(Array2::<f64>::zeros((3, 5)).view(), &mut out)
            .is_err()
    );
    assert!(
        f.score_into(Array2::<f64>::zeros((4, 2)).view(), &mut out)
            .is_err()
    );
}

#[test]
fn threshold_is_the_training_quantile() {
    let mut v: Vec<f64> = (0..=100).map(f64::from).collect();
    assert!((threshold_for_fraction(&mut v, 0.1) - 90.0).abs() < 1e-12);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = gaussian_like(&mut rng, 3000, 3);
    let f = IsolationForest::fit(x.view(), Params::default()).unwrap();
    let mut s = vec![0.0; 3000];
    f.score_into(x.view(), &mut s).unwrap();
    let above = s.iter().filter(|&&v| v > f.threshold()).count() as f64 / 3000.0;
    assert!(
        (above - 0.1).abs() < 0.01,
        "fraction above threshold {above}"
    );
    let auto = IsolationForest::fit(
        x.view(),
        Params {
            contamination: Contamination::Auto,
            ..Params::default()
        },
    )
    .unwrap();
    assert_eq!(auto.threshold(), 0.5);
}

fn names() -> Vec<String> {
    [
        "latency_mean",
        "errors_rate",
        "rss_last",
        "cpu_mean",
        "request_rate_mean",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn attribution_names_the_planted_feature() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = gaussian_like(&mut rng, 2000, 5);
    let f = IsolationForest::fit(x.view(), Params::default()).unwrap();
    let names = names();
    for planted in 0..5 {
        let mut row = [0.1, -0.2, 0.0, 0.3, -0.1];
        row[planted] = 6.0;
        let mut c = [0.0; 5];
        f.attribute_into(&row, &mut c).unwrap();
        assert!((c.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let top = (0..5).max_by(|&a, &b| c[a].total_cmp(&c[b])).unwrap();
        assert_eq!(top, planted, "contributions {c:?}");
        assert!(c[planted] > 0.5, "contributions {c:?}");
        let ex = f.explain(&row, &names, 3, None).unwrap();
        assert_eq!(ex.top[0].0, names[planted]);
        let expected = [
            AnomalyKind::Latency,
            AnomalyKind::Errors,
            AnomalyKind::Resource,
            AnomalyKind::Saturation,
            AnomalyKind::TrafficDrop,
        ][planted];
        assert_eq!(ex.kind, expected);
    }
}

#[test]
fn anomaly_kind_mapping() {
    let n = names();
    assert_eq!(
        classify_anomaly(&n, &[0.3, 0.3, 0.2, 0.1, 0.1], None),
        AnomalyKind::Mixed
    );
    assert_eq!(
        classify_anomaly(
            &n,
            &[0.0, 0.0, 0.0, 0.0, 1.0],
            Some(&[0.0, 0.0, 0.0, 0.0, -3.0])
        ),
        AnomalyKind::TrafficDrop
    );
    assert_eq!(
        classify_anomaly(
            &n,
            &[0.0, 0.0, 0.0, 0.0, 1.0],
            Some(&[0.0, 0.0, 0.0, 0.0, 3.0])
        ),
        AnomalyKind::Saturation
    );
    let other = vec!["x1".to_string(), "x2".to_string()];
    assert_eq!(
        classify_anomaly(&other, &[1.0, 0.0], None),
        AnomalyKind::Mixed
    );
}

fn fitted() -> (IsolationForest, Array2<f64>, Scaler) {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = gaussian_like(&mut rng, 500, 5);
    let scaler = Scaler::fit(ScalerKind::Robust, x.view()).unwrap();
    let f = IsolationForest::fit(
        x.view(),
        Params {
            n_trees: 20,
            seed: 77,
            ..Params::default()
        },
    )
    .unwrap();
    (f, x, scaler)
}

#[test]
fn model_round_trip() {
    let (f, x, scaler) = fitted();
    let m = ModelFile::new(
        f,
        names(),
        Some(scaler.clone()),
        TrainingSummary {
            rows: 500,
            source: "test".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    m.save(&path).unwrap();
    let back = ModelFile::load_expecting(&path, &names()).unwrap();
    assert_eq!(back.card, m.card);
    assert_eq!(back.card.scaler, Some(scaler));
    let mut a = vec![0.0; 500];
    let mut b = vec![0.0; 500];
    m.forest.score_into(x.view(), &mut a).unwrap();
    back.forest.score_into(x.view(), &mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(back.forest.threshold(), m.forest.threshold());
    let mut ca = [0.0; 5];
    let mut cb = [0.0; 5];
    m.forest
        .attribute_into(&[3.0, 0.0, 0.0, 0.0, 0.0], &mut ca)
        .unwrap();
    back.forest
        .attribute_into(&[3.0, 0.0, 0.0, 0.0, 0.0], &mut cb)
        .unwrap();
    assert_eq!(ca, cb);
}

#[test]
fn mismatched_features_are_refused_with_the_difference() {
    let (f, _, _) = fitted();
    let m = ModelFile::new(f, names(), None, TrainingSummary::default()).unwrap();
    let text = m.to_json();
    let mut expected = names();
    expected[2] = "heap_last".into();
    let err = ModelFile::from_json_expecting(&text, &expected).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::FeatureMismatch(_)));
    assert!(
        msg.contains("heap_last") && msg.contains("rss_last"),
        "{msg}"
    );
    let mut swapped = names();
    swapped.swap(0, 1);
    let msg = ModelFile::from_json_expecting(&text, &swapped)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("different order"), "{msg}");
}

#[test]
fn corrupt_and_truncated_files_are_clear_errors() {
    let (f, _, _) = fitted();
    let m = ModelFile::new(f, names(), None, TrainingSummary::default()).unwrap();
    let text = m.to_json();
    // Truncated anywhere: an error, never a panic.
    for cut in [0, 1, 10, text.len() / 3, text.len() / 2, text.len() - 1] {
        assert!(
            matches!(ModelFile::from_json(&text[..cut]), Err(Error::Corrupt(_))),
            "cut {cut}"
        );
    }
    // Other format version.
    let v2 = text.replacen("\"version\":1", "\"version\":2", 1);
    assert!(matches!(
        ModelFile::from_json(&v2),
        Err(Error::Version { version: 2, .. })
    ));
    // A child index pointing backwards or out of range.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["trees"][0]["left"][0] = serde_json::json!(100_000);
    assert!(matches!(
        ModelFile::from_json(&v.to_string()),
        Err(Error::Invalid(_))
    ));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["trees"][0]["feature"][0] = serde_json::json!(99);
    assert!(matches!(
        ModelFile::from_json(&v.to_string()),
        Err(Error::Invalid(_))
    ));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["trees"][3]["size"] = serde_json::json!([1]);
    assert!(matches!(
        ModelFile::from_json(&v.to_string()),
        Err(Error::Invalid(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        ModelFile::load(&dir.path().join("absent.json")),
        Err(Error::Io { .. })
    ));
}
