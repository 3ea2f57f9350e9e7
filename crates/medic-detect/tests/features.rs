//! The feature path: names and order, values on hand-computed windows, missing data.

use medic_detect::features::{
    Aggregation, Extractor, FeatureError, FeatureSpec, SeriesSpec, Window,
};

#[test]
fn names_follow_the_spec_order() {
    let spec = FeatureSpec::new(
        vec![
            SeriesSpec {
                name: "rss".into(),
                aggregations: vec![Aggregation::Last, Aggregation::Slope],
            },
            SeriesSpec {
                name: "latency".into(),
                aggregations: vec![Aggregation::P95],
            },
        ],
        0.5,
    )
    .unwrap();
    assert_eq!(spec.names(), ["rss_last", "rss_slope", "latency_p95"]);
    assert_eq!(spec.series_of_feature(), [0, 0, 1]);
    let d = FeatureSpec::default_target();
    assert_eq!(d.names().len(), d.width());
    assert!(d.names().contains(&"latency_ms_p95".to_string()));
    assert!(FeatureSpec::new(vec![], 0.5).is_err());
    assert!(FeatureSpec::all_aggregations(&["a", "a"], 0.5).is_err());
    assert!(FeatureSpec::all_aggregations(&["a"], 0.0).is_err());
}

#[test]
fn values_on_a_hand_computed_window() {
    let spec = FeatureSpec::all_aggregations(&["x"], 0.5).unwrap();
    let mut ex = Extractor::new(spec);
    let times = [0.0, 10.0, 20.0, 30.0];
    let x = [1.0, 3.0, 5.0, 11.0];
    let series: [&[f64]; 1] = [&x];
    let w = Window::new(&times, &series).unwrap();
    let mut out = vec![0.0; 10];
    assert_eq!(ex.extract_into(&w, &mut out).unwrap(), 0);
    let [last, mean, std, min, max, slope, roc, ewma, p50, p95] = out[..] else {
        panic!()
    };
    assert_eq!(last, 11.0);
    assert_eq!(mean, 5.0);
    // deviations -4 -2 0 6: var = (16+4+0+36)/4 = 14
    assert!((std - 14f64.sqrt()).abs() < 1e-12);
    assert_eq!((min, max), (1.0, 11.0));
    // slope: t̄ = 15, Σ(t-t̄)(x-x̄) = (-15)(-4)+(-5)(-2)+5·0+15·6 = 160, Σ(t-t̄)² = 500
    assert!((slope - 0.32).abs() < 1e-12);
    assert!((roc - 0.6).abs() < 1e-12);
    // ewma: 1 → 2 → 3.5 → 7.25
    assert!((ewma - 7.25).abs() < 1e-12);
    assert_eq!(p50, 4.0);
    // p95: pos 2.85 → 5 + 0.85·6
    assert!((p95 - 10.1).abs() < 1e-12);
}

#[test]
fn missing_samples_are_skipped_and_missing_features_are_nan() {
    let spec = FeatureSpec::all_aggregations(&["a", "b"], 0.5).unwrap();
    let mut ex = Extractor::new(spec);
    let times = [0.0, 1.0, 2.0];
    let a = [2.0, f64::NAN, 4.0];
    let b = [f64::NAN, f64::NAN, f64::NAN];
    let series: [&[f64]; 2] = [&a, &b];
    let w = Window::new(&times, &series).unwrap();
    let mut out = vec![0.0; 20];
    let missing = ex.extract_into(&w, &mut out).unwrap();
    assert_eq!(missing, 10, "all of b's features are missing");
    assert_eq!(out[0], 4.0); // a_last skips nothing: the last present sample
    assert_eq!(out[1], 3.0); // a_mean over present samples
    assert!((out[5] - 1.0).abs() < 1e-12); // a_slope (4-2)/2
    assert!((out[6] - 1.0).abs() < 1e-12); // a_rate_of_change over the gap
    assert!(out[10..].iter().all(|v| v.is_nan()));
    // A single sample: std, slope and rate of change are missing, never 0.
    let one = [7.0];
    let none = [f64::NAN];
    let s: [&[f64]; 2] = [&one, &none];
    let w = Window::new(&[5.0], &s).unwrap();
    ex.extract_into(&w, &mut out).unwrap();
    assert!(out[2].is_nan() && out[5].is_nan() && out[6].is_nan());
    assert_eq!(out[0], 7.0);
}

#[test]
fn shape_errors() {
    let spec = FeatureSpec::all_aggregations(&["a"], 0.5).unwrap();
    let mut ex = Extractor::new(spec);
    let a = [1.0, 2.0];
    let s: [&[f64]; 1] = [&a];
    assert!(matches!(
        Window::new(&[0.0], &s),
        Err(FeatureError::Shape(_))
    ));
    let w = Window::new(&[0.0, 1.0], &s).unwrap();
    assert!(ex.extract_into(&w, &mut [0.0; 3]).is_err());
    let s2: [&[f64]; 2] = [&a, &a];
    let w2 = Window::new(&[0.0, 1.0], &s2).unwrap();
    assert!(ex.extract_into(&w2, &mut [0.0; 10]).is_err());
}

#[test]
fn scalers_fit_transform_and_fill_missing_with_the_centre() {
    use medic_detect::scaler::{Scaler, ScalerKind};
    use ndarray::array;
    let x = array![[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]];
    let robust = Scaler::fit(ScalerKind::Robust, x.view()).unwrap();
    // median 3, IQR 4 - 2 = 2; constant column: scale 1.
    assert_eq!(robust.center, [3.0, 5.0]);
    assert_eq!(robust.scale, [2.0, 1.0]);
    let standard = Scaler::fit(ScalerKind::Standard, x.view()).unwrap();
    assert!((standard.center[0] - 22.0).abs() < 1e-12);
    let mut row = [f64::NAN, 7.0];
    assert_eq!(robust.transform_row(&mut row).unwrap(), 1);
    assert_eq!(row, [0.0, 2.0]);
    robust.inverse_row(&mut row).unwrap();
    assert_eq!(row, [3.0, 7.0]);
    let mut m = x.clone();
    assert_eq!(robust.transform_in_place(m.view_mut()).unwrap(), 0);
    assert_eq!(m[[4, 0]], 48.5);
    assert!(robust.transform_row(&mut [1.0]).is_err());
    let json = serde_json::to_string(&robust).unwrap();
    assert_eq!(serde_json::from_str::<Scaler>(&json).unwrap(), robust);
    let empty = ndarray::Array2::<f64>::from_elem((3, 1), f64::NAN);
    assert!(Scaler::fit(ScalerKind::Standard, empty.view()).is_err());
}
