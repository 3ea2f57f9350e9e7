//! Failure predictor: ONNX export vs the plain-Rust reference through tract, refusal of bad
//! files, dataset rules, train/score feature parity, factors and evaluation.

use std::time::Duration;

use medic_detect::predict::card::{PredictorCard, TrainingProvenance};
use medic_detect::predict::dataset::{AgentSeries, DatasetConfig, Split, WindowLabel, build};
use medic_detect::predict::eval::{EvalConfig, evaluate};
use medic_detect::predict::{
    LstmWeights, PredictError, Predictor, PredictorOptions, reference, write_model, write_onnx,
};
use medic_sim::{History, HistoryConfig, generate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn sim_series(h: &History) -> Vec<AgentSeries> {
    AgentSeries::from_sim(h)
}

fn random_windows(n: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * len).map(|_| rng.random_range(-2.0..2.0)).collect()
}

/// A model file (ONNX + card) from random weights over a small simulated dataset.
fn tiny_model(dir: &std::path::Path, lstm: &[usize], dense: &[usize]) -> std::path::PathBuf {
    let h = generate(&HistoryConfig::new(1, 8, 2.0));
    let ds = build(&sim_series(&h), &DatasetConfig::default()).expect("dataset");
    let w = LstmWeights::random(ds.seq_len, ds.n_features, lstm, dense, 3);
    let card = PredictorCard::for_dataset(
        &ds,
        &w,
        0.5,
        TrainingProvenance {
            source: "test: random weights".into(),
            ..Default::default()
        },
    );
    let path = dir.join("m.onnx");
    write_model(&w, &card, &path).expect("write model");
    path
}

/// The card a reader of a bare ONNX file (no card) would write by hand: identity scaler.
fn bare_card(lstm: &[usize], dense: &[usize]) -> PredictorCard {
    PredictorCard::untrained(lstm, dense)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tract_on_the_exported_onnx_matches_the_reference_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    for (k, (lstm, dense)) in [
        (vec![16usize], vec![]),
        (vec![32, 16, 8], vec![8usize]),
        (vec![128, 64, 32], vec![16]),
    ]
    .into_iter()
    .enumerate()
    {
        let w = LstmWeights::random(20, 10, &lstm, &dense, 11 + k as u64);
        // A larger input scale pushes gates into saturation too.
        let n = 24;
        let x: Vec<f32> = random_windows(n, 200, 5 + k as u64)
            .iter()
            .map(|v| v * 1.5)
            .collect();
        let expected: Vec<f32> = x.chunks(200).map(|c| reference::forward(&w, c)).collect();
        let path = dir.path().join(format!("m{k}.onnx"));
        write_onnx(&w, &path).unwrap();
        // No card beside the file: build one by hand, as a reader of bare ONNX would need.
        let card = bare_card(&lstm, &dense);
        card.save(&PredictorCard::path_for(&path)).unwrap();
        let mut p = Predictor::load_with(&path, PredictorOptions { batch: 8 }).unwrap();
        // Batch path (3 chunks of 8) and single path.
        let mut got = vec![0.0f32; n];
        p.predict_into(&x, &mut got).unwrap();
        let d = max_diff(&got, &expected);
        assert!(d < 1e-5, "{lstm:?}/{dense:?}: batch max abs diff {d}");
        for (i, c) in x.chunks(200).enumerate().take(5) {
            let one = p.predict_one(c).unwrap();
            assert!(
                (one - expected[i]).abs() < 1e-5,
                "{lstm:?}: single {one} vs {}",
                expected[i]
            );
        }
        // An uneven count pads the last chunk; a fork gives the same answers.
        let mut q = p.fork().unwrap();
        let mut got5 = vec![0.0f32; 5];
        q.predict_into(&x[..5 * 200], &mut got5).unwrap();
        assert!(max_diff(&got5, &expected[..5]) < 1e-5);
    }
}

#[test]
fn every_run_starts_from_the_zero_state_even_with_a_long_memory() {
    // Random weights forget within a few steps, which would hide a hidden state carried from
    // one run into the next. A forget gate held open (bias +6) remembers the whole window, so
    // any carry-over shows up as a different answer for the same window.
    let dir = tempfile::tempdir().unwrap();
    let mut w = LstmWeights::random(20, 10, &[16, 8], &[4], 3);
    for layer in &mut w.lstm {
        let h = layer.hidden;
        for b in &mut layer.b[h..2 * h] {
            *b += 6.0;
        }
    }
    let path = dir.path().join("m.onnx");
    write_onnx(&w, &path).unwrap();
    bare_card(&[16, 8], &[4])
        .save(&PredictorCard::path_for(&path))
        .unwrap();
    let n = 20;
    let x = random_windows(n, 200, 9);
    let expected: Vec<f32> = x.chunks(200).map(|c| reference::forward(&w, c)).collect();
    let mut p = Predictor::load_with(&path, PredictorOptions { batch: 4 }).unwrap();
    for round in 0..3 {
        let mut got = vec![0.0f32; n];
        p.predict_into(&x, &mut got).unwrap();
        let d = max_diff(&got, &expected);
        assert!(d < 1e-5, "round {round}: max abs diff {d}");
        let one = p.predict_one(&x[..200]).unwrap();
        assert!(
            (one - expected[0]).abs() < 1e-5,
            "round {round}: single {one}"
        );
    }
}

#[test]
fn the_card_travels_in_the_onnx_metadata_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path(), &[8], &[4]);
    let from_json = Predictor::load(&path).unwrap().card().clone();
    std::fs::remove_file(PredictorCard::path_for(&path)).unwrap();
    let from_meta = Predictor::load(&path).unwrap();
    assert_eq!(from_meta.card(), &from_json);
    assert_eq!(from_meta.card().feature_names.len(), 10);
}

#[test]
fn garbage_truncated_and_mismatched_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path(), &[8], &[]);
    let card_path = PredictorCard::path_for(&path);
    let bytes = std::fs::read(&path).unwrap();

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf \xff\xfe\x00\x01").unwrap();
    std::fs::copy(&card_path, PredictorCard::path_for(&garbage)).unwrap();
    let e = Predictor::load(&garbage).unwrap_err();
    assert!(matches!(e, PredictError::Model { .. }), "{e}");

    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(&card_path, PredictorCard::path_for(&truncated)).unwrap();
    assert!(Predictor::load(&truncated).is_err());

    // Weights for 9 features under a card for 10: the shapes do not match.
    let nine = dir.path().join("nine.onnx");
    write_onnx(&LstmWeights::random(20, 9, &[8], &[], 1), &nine).unwrap();
    std::fs::copy(&card_path, PredictorCard::path_for(&nine)).unwrap();
    let e = Predictor::load(&nine).unwrap_err();
    assert!(matches!(e, PredictError::Mismatch(_)), "{e}");
    assert!(e.to_string().contains("10"), "{e}");

    // A card whose names do not follow its spec.
    let mut card = PredictorCard::load(&card_path).unwrap();
    card.feature_names.swap(0, 1);
    let e = PredictorCard::from_json(&card.to_json()).unwrap_err();
    assert!(matches!(e, PredictError::Card(_)), "{e}");

    // Missing file, missing card.
    assert!(matches!(
        Predictor::load(&dir.path().join("absent.onnx")).unwrap_err(),
        PredictError::Io { .. }
    ));
    let bare = dir.path().join("bare.onnx");
    write_onnx(&LstmWeights::random(20, 10, &[8], &[], 1), &bare).unwrap();
    assert!(matches!(
        Predictor::load(&bare).unwrap_err(),
        PredictError::Card(_)
    ));

    // A fleet without a series the model needs, and a different feature list.
    let p = Predictor::load(&path).unwrap();
    let e = p.check_series(&["cpu", "rss_mb"]).unwrap_err();
    assert!(e.to_string().contains("latency_p50_ms"), "{e}");
    let mut names = p.card().feature_names.clone();
    names.pop();
    assert!(matches!(
        p.check_features(&names).unwrap_err(),
        PredictError::Mismatch(_)
    ));
    p.check_features(&p.card().feature_names.clone()).unwrap();

    // Wrong window lengths.
    let mut p = p;
    assert!(p.predict_one(&[0.0; 7]).is_err());
    let mut out = [0.0f32; 2];
    assert!(p.predict_into(&vec![0.0; 200 * 3], &mut out).is_err());
}

#[test]
fn invalid_weights_are_refused_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = LstmWeights::random(20, 10, &[8], &[4], 1);
    w.lstm[0].w_hh.pop();
    assert!(matches!(
        write_onnx(&w, &dir.path().join("x.onnx")).unwrap_err(),
        PredictError::Weights(_)
    ));
    let mut w = LstmWeights::random(20, 10, &[8], &[4], 1);
    w.dense[1].b[0] = f32::NAN;
    assert!(w.validate().is_err());
}

#[test]
fn dataset_labels_splits_and_scaler_follow_the_rules() {
    let h = generate(&HistoryConfig::new(2, 10, 4.0));
    let mut series = sim_series(&h);
    // A preemptive action on agent 0 at a quiet time: windows before it are averted.
    let quiet = (0..series[0].len() - 100)
        .rev()
        .map(|i| series[0].time(i))
        .find(|&t| {
            !series[0].failures.iter().any(|f| {
                f.at > t - Duration::from_secs(7200) && f.at <= t + Duration::from_secs(3600)
            })
        })
        .expect("a quiet time");
    series[0].preemptive_actions.push(quiet);
    let cfg = DatasetConfig {
        stride: 2,
        ..DatasetConfig::default()
    };
    let ds = build(&series, &cfg).unwrap();
    assert_eq!(ds.n_features, 10);
    assert_eq!(ds.x.len(), ds.len() * 20 * 10);
    assert_eq!(ds.weight.len(), ds.len());
    let c = ds.counts;
    assert!(c.train.positive > 0 && c.train.negative > 0, "{c:?}");
    assert!(c.val.total() > 0 && c.test.total() > 0, "{c:?}");
    assert!(c.purged > 0 && c.dark > 0, "{c:?}");
    let averted = c.train.averted + c.val.averted + c.test.averted;
    assert!(averted > 0, "{c:?}");
    let horizon = Duration::from_secs(1800);
    let balanced = c.train.negative as f32 / c.train.positive as f32;
    for (i, info) in ds.info.iter().enumerate() {
        let s = &series[info.agent as usize];
        let pos = s
            .failures
            .iter()
            .any(|f| f.predictable && f.at > info.end && f.at <= info.end + horizon);
        assert_eq!(ds.y[i] == 1.0, pos, "label of window {i}");
        assert_eq!(info.label == WindowLabel::Positive, pos);
        match info.label {
            WindowLabel::Positive => assert_eq!(ds.weight[i], balanced),
            WindowLabel::Negative => assert_eq!(ds.weight[i], 1.0),
            WindowLabel::Averted | WindowLabel::Sudden => assert_eq!(ds.weight[i], 0.0),
        }
        // Agent 4 and 9 (every 5th) are held out: test only.
        if info.agent % 5 == 4 {
            assert_eq!(info.split, Split::Test);
        }
    }
    // Time order: every train window ends (with its horizon) before any val window starts.
    let last_train = ds
        .info
        .iter()
        .filter(|i| i.split == Split::Train)
        .map(|i| i.end + horizon)
        .max()
        .unwrap();
    let first_val = ds
        .info
        .iter()
        .filter(|i| i.split == Split::Val)
        .map(|i| i.end)
        .min()
        .unwrap();
    assert!(last_train < first_val);
    // Scaled training windows are centred: the scaler was fitted on training rows.
    let train = ds.indices(Split::Train);
    let mean_rss: f64 = train
        .iter()
        .map(|&i| ds.window(i)[19 * 10 + 1] as f64)
        .sum::<f64>()
        / train.len() as f64;
    assert!(mean_rss.abs() < 0.5, "mean scaled rss on train {mean_rss}");
    // Same input, same dataset.
    let again = build(&series, &cfg).unwrap();
    assert_eq!(again.x, ds.x);
    // A series without a needed column is refused.
    let mut broken = series[..1].to_vec();
    broken[0].columns.retain(|c| c.name != "open_fds");
    assert!(matches!(
        build(&broken, &cfg).unwrap_err(),
        PredictError::Data(_)
    ));
}

#[test]
fn scoring_builds_the_same_window_as_training() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path(), &[8], &[]);
    let mut p = Predictor::load(&path).unwrap();
    let h = generate(&HistoryConfig::new(1, 8, 2.0));
    let series = sim_series(&h);
    // The model's scaler came from the same dataset, so its windows must match ours exactly.
    let ds = build(&series, &DatasetConfig::default()).unwrap();
    let names = p.raw_series();
    let mut window = vec![0.0f32; p.window_len()];
    let mut checked = 0;
    for i in (0..ds.len()).step_by(997) {
        let info = ds.info[i];
        let s = &series[info.agent as usize];
        let e = info.end_step as usize;
        // Up to 5 extra rows before the needed ones: they must be ignored.
        let lo = (e + 1 - p.raw_rows()).saturating_sub(5);
        let times: Vec<f64> = (lo..=e).map(|t| s.time(t).as_secs_f64()).collect();
        let cols: Vec<Vec<f64>> = names
            .iter()
            .map(|n| {
                s.column(n).unwrap()[lo..=e]
                    .iter()
                    .map(|&v| v as f64)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
        p.window_from_raw(&times, &refs, &mut window).unwrap();
        // The dataset keeps unscaled features as f32 before scaling, the predictor scales
        // from f64: equal up to f32 rounding of the slope features.
        let d = window
            .iter()
            .zip(ds.window(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "window {i}: max diff {d}");
        checked += 1;
    }
    assert!(checked > 5);
}

#[test]
fn alarms_come_with_named_factors_and_an_action() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path(), &[16], &[8]);
    let mut p = Predictor::load_with(&path, PredictorOptions { batch: 4 }).unwrap();
    let x = random_windows(9, p.window_len(), 77);
    let probs: Vec<f32> = x
        .chunks(p.window_len())
        .map(|c| p.predict_one(c).unwrap())
        .collect();
    let mut card_threshold_is_low = p.card().clone();
    card_threshold_is_low.threshold = 0.0;
    let preds = p.predict_batch(&x).unwrap();
    assert_eq!(preds.len(), 9);
    for (pr, &q) in preds.iter().zip(&probs) {
        assert!((pr.probability - q).abs() < 1e-6);
        assert_eq!(pr.alarm, f64::from(q) >= p.card().threshold);
    }
    for (i, c) in x.chunks(p.window_len()).enumerate() {
        let ex = p.explain(c, probs[i]).unwrap();
        assert!(ex.factors.len() <= 3);
        for f in &ex.factors {
            assert!(p.card().feature_names.contains(&f.feature));
            assert!(f.drop > 0.0);
        }
        assert!(ex.factors.windows(2).all(|w| w[0].drop >= w[1].drop));
        assert_eq!(ex.action.is_some(), !ex.factors.is_empty());
    }
}

#[test]
fn evaluation_runs_end_to_end_on_a_fresh_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path(), &[8], &[]);
    let mut p = Predictor::load(&path).unwrap();
    let h = generate(&HistoryConfig::new(99, 6, 2.0));
    let series = sim_series(&h);
    let r = evaluate(
        &mut p,
        &series,
        &EvalConfig {
            stride: 3,
            ..EvalConfig::default()
        },
    )
    .unwrap();
    let predictable = h.failures.iter().filter(|f| f.predictable()).count();
    assert_eq!(r.predictable_failures, predictable);
    assert_eq!(r.sudden_failures, h.failures.len() - predictable);
    assert_eq!(r.lookalikes, h.episodes.len());
    assert!(r.windows_scored > 1000);
    assert_eq!(r.alarm_episodes, r.true_alarms + r.false_alarms);
    assert!((r.agent_days - 12.0).abs() < 1e-9);
    assert!(r.caught <= r.predictable_failures);
    assert!((0.0..=1.0).contains(&r.precision) && (0.0..=1.0).contains(&r.recall));
    // Threshold 0 alarms everywhere: every predictable failure is caught.
    let all = evaluate(
        &mut p,
        &series,
        &EvalConfig {
            stride: 3,
            threshold: Some(0.0),
            ..EvalConfig::default()
        },
    )
    .unwrap();
    assert_eq!(all.caught, all.predictable_failures);
    assert_eq!(all.window.recall, 1.0);
}

/// One agent of 600 one-minute steps: a predictable failure at step 300, a look-alike episode
/// over steps 400–420; scores given by hand (no model), so every event rule is checked exactly.
fn hand_scored() -> (Vec<AgentSeries>, medic_detect::predict::eval::Scores) {
    use medic_core::Timestamp;
    use medic_detect::predict::dataset::{Column, EpisodeMark, FailureMark};
    let start = Timestamp::from_secs(1_000_000);
    let mut s = AgentSeries {
        agent: "a".into(),
        start,
        step: Duration::from_secs(60),
        columns: vec![Column {
            name: "cpu".into(),
            values: vec![0.0; 600],
        }],
        failures: Vec::new(),
        lookalikes: Vec::new(),
        preemptive_actions: Vec::new(),
    };
    s.failures.push(FailureMark {
        at: s.time(300),
        predictable: true,
        kind: "memory_leak".into(),
    });
    s.lookalikes.push(EpisodeMark {
        start: s.time(400),
        end: s.time(420),
        kind: "load_spike".into(),
    });
    let p = |i: usize| match i {
        220..=225 => 0.75, // 80 min before the failure, then quiet for 25 min: early
        250..=299 => 0.9,  // from 50 min before right up to the failure: one true episode
        312..=318 => 0.8,  // the restart still in view: after_failure
        410 => 0.7,        // during the look-alike
        550 => 0.6,        // nothing around: other
        _ => 0.1,
    };
    let steps: Vec<(Timestamp, f32)> = (29..600).map(|i| (s.time(i), p(i))).collect();
    let labels = (29..600).map(|i| Some((270..300).contains(&i))).collect();
    let scores = medic_detect::predict::eval::Scores {
        steps: vec![steps],
        labels: vec![labels],
        horizon: Duration::from_secs(1800),
        card_threshold: 0.5,
    };
    (vec![s], scores)
}

#[test]
fn alarm_episodes_are_true_while_they_warn_and_false_ones_are_named_by_context() {
    use medic_detect::predict::eval::analyze;
    let (series, scores) = hand_scored();
    let gap = Duration::from_secs(600);
    let r = analyze(&scores, &series, 0.85, gap).unwrap();
    // Starts 50 min before the failure but warns until it: true, and the lead time counts
    // from the first alarm within the horizon (30 min).
    assert_eq!((r.alarm_episodes, r.true_alarms, r.false_alarms), (1, 1, 0));
    assert_eq!((r.caught, r.predictable_failures), (1, 1));
    assert_eq!(r.lead_time_s.p50, Some(1800.0));
    assert_eq!(r.precision, 1.0);

    let r = analyze(&scores, &series, 0.55, gap).unwrap();
    assert_eq!((r.alarm_episodes, r.true_alarms, r.false_alarms), (5, 1, 4));
    let ctx = |k: &str| r.false_alarm_context.get(k).copied().unwrap_or(0);
    assert_eq!(
        (
            ctx("early"),
            ctx("after_failure"),
            ctx("lookalike"),
            ctx("other")
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((r.lookalikes, r.lookalikes_alarmed), (1, 1));
    assert!((r.false_alarms_per_agent_day - 4.0 / (600.0 / 1440.0)).abs() < 1e-9);
    // Window level: 30 positive windows, all above 0.55.
    assert_eq!(r.windows_positive, 30);
    assert_eq!(r.window.recall, 1.0);
}

#[test]
fn calibration_picks_the_best_f1_within_the_false_alarm_goal() {
    use medic_detect::predict::eval::{CalibrationGoal, calibrate};
    let (series, scores) = hand_scored();
    let (t, r) = calibrate(&scores, &series, &CalibrationGoal::default()).unwrap();
    // Only thresholds above 0.8 give no false alarm over these 0.42 agent-days.
    assert!(t > 0.8 && t <= 0.9, "threshold {t}");
    assert_eq!((r.false_alarms, r.caught), (0, 1));
    // A goal no threshold can meet falls back to the fewest false alarms.
    let goal = CalibrationGoal {
        max_false_alarms_per_agent_day: -1.0,
        ..CalibrationGoal::default()
    };
    let (t, r) = calibrate(&scores, &series, &goal).unwrap();
    assert!(t > 0.8, "threshold {t}");
    assert_eq!(r.false_alarms, 0);
}

#[test]
fn a_slice_keeps_the_rows_and_marks_of_its_range() {
    let (series, _) = hand_scored();
    let s = &series[0];
    let part = s.slice(s.time(250), s.time(410));
    assert_eq!(part.len(), 160);
    assert_eq!(part.start, s.time(250));
    assert_eq!(part.failures.len(), 1);
    assert_eq!(part.lookalikes.len(), 1, "an overlapping episode is kept");
    let empty = s.slice(s.time(500), s.time(400));
    assert!(empty.is_empty() && empty.failures.is_empty());
}

#[test]
fn hard_negatives_weigh_what_the_config_says() {
    let h = generate(&HistoryConfig::new(4, 6, 3.0));
    let series = sim_series(&h);
    let cfg = DatasetConfig {
        stride: 3,
        hard_negative_weight: 3.0,
        ..DatasetConfig::default()
    };
    let ds = build(&series, &cfg).unwrap();
    let horizon = cfg.horizon;
    let (mut hard, mut plain) = (0, 0);
    for (i, info) in ds.info.iter().enumerate() {
        if info.label != WindowLabel::Negative {
            continue;
        }
        let s = &series[info.agent as usize];
        let is_hard = s
            .failures
            .iter()
            .any(|f| f.at <= info.end && info.end <= f.at + horizon)
            || s.lookalikes
                .iter()
                .any(|l| info.end >= l.start && info.end < l.end);
        let expected = if is_hard { 3.0 } else { 1.0 };
        assert_eq!(ds.weight[i], expected, "window {i}");
        if is_hard { hard += 1 } else { plain += 1 }
    }
    assert!(hard > 0 && plain > 0, "{hard} hard, {plain} plain");
    let bad = DatasetConfig {
        hard_negative_weight: f32::NAN,
        ..DatasetConfig::default()
    };
    assert!(build(&series, &bad).is_err());
}
