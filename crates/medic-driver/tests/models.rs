//! The daemon's learned models: raw rows from scrapes (the one mapping), windows through the
//! predictor's own feature path, one batched call per tick, refusal of a model the fleet
//! cannot feed, and a daemon that runs without any model.
//!
//! The models are written here from random weights (`LstmWeights::random` + a card, as
//! medic-detect's tests do) and a forest fitted on synthetic rows: medic-driver does not
//! depend on medic-train.

use std::path::Path;
use std::time::Duration;

use medic_core::{MetricSample, TargetId, Timestamp};
use medic_detect::features::{Aggregation, FeatureSpec, SeriesSpec};
use medic_detect::iforest::{IsolationForest, ModelFile, Params, TrainingSummary};
use medic_detect::predict::card::{CARD_FORMAT, CARD_VERSION, PredictorCard};
use medic_detect::predict::steps::{RAW_SERIES, StepFeaturizer, default_step_spec};
use medic_detect::predict::{LstmWeights, Predictor, write_model};
use medic_detect::scaler::{Scaler, ScalerKind};
use medic_driver::daemon::model::{IFOREST_FILE, LSTM_FILE, ModelSet, TargetSeries};

const SEQ: usize = 5;
const WINDOW: usize = 3;

/// A failure-prediction model of random weights over `spec`, 1 s steps, written as
/// `failure_lstm.onnx` + card into `dir`.
fn write_lstm(dir: &Path, spec: FeatureSpec, threshold: f64) {
    let names = spec.names();
    let n = names.len();
    let w = LstmWeights::random(SEQ, n, &[8], &[4], 5);
    let card = PredictorCard {
        format: CARD_FORMAT.into(),
        version: CARD_VERSION,
        feature_spec: spec,
        feature_names: names,
        feature_window: WINDOW,
        seq_len: SEQ,
        step_s: 1,
        horizon_s: 30,
        scaler: Scaler {
            kind: ScalerKind::Standard,
            center: vec![0.0; n],
            scale: vec![10.0; n],
        },
        threshold,
        lstm_sizes: vec![8],
        dense_sizes: vec![4],
        metrics: Default::default(),
        training: Default::default(),
    };
    write_model(&w, &card, &dir.join(LSTM_FILE)).expect("writing the model");
}

/// Scrape `k` (one every `step_s` seconds) of a demo-agent-like target: RSS growing by
/// `leak_mb` a scrape, a quarter core, 10 requests a second (an error every other second),
/// all answered within 100 ms.
fn scrape(k: u64, step_s: u64, leak_mb: f64) -> (Timestamp, Vec<MetricSample>) {
    let at = Timestamp::from_millis(1_000_000 + k * step_s * 1000 + 300);
    let t = TargetId::new("t");
    let s = |name: &str, labels: &[(&str, &str)], value: f64| MetricSample {
        target: t.clone(),
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
        value,
        at,
    };
    let kf = k as f64;
    let secs = (k * step_s) as f64;
    let requests = 10.0 * secs;
    (
        at,
        vec![
            s(
                "process_resident_memory_bytes",
                &[],
                (100.0 + leak_mb * kf) * 1_048_576.0,
            ),
            s("process_cpu_seconds_total", &[], 0.25 * secs),
            s("process_open_fds", &[], 20.0 + kf),
            s("demo_requests_total", &[], requests),
            s("demo_errors_total", &[], ((k * step_s) / 2) as f64),
            s("demo_queue_depth", &[], 3.0),
            s(
                "demo_request_duration_seconds_bucket",
                &[("le", "0.05")],
                0.0,
            ),
            s(
                "demo_request_duration_seconds_bucket",
                &[("le", "0.1")],
                requests,
            ),
            s(
                "demo_request_duration_seconds_bucket",
                &[("le", "+Inf")],
                requests,
            ),
            s("demo_request_duration_seconds_sum", &[], 0.08 * requests),
            s("demo_request_duration_seconds_count", &[], requests),
        ],
    )
}

fn feed(s: &mut TargetSeries, steps: std::ops::Range<u64>, step_s: u64, leak_mb: f64) {
    for k in steps {
        let (at, samples) = scrape(k, step_s, leak_mb);
        s.push(at, &samples, 2.0);
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[test]
fn raw_rows_follow_the_mapping_and_one_batch_scores_every_due_target() {
    let dir = tempfile::tempdir().unwrap();
    write_lstm(dir.path(), default_step_spec(), 0.0);
    let (mut set, errors) = ModelSet::load(dir.path(), &RAW_SERIES);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(set.has_predictor() && !set.has_forest());
    assert_eq!(set.step_s(), 1);
    let need = SEQ + WINDOW - 1;
    assert_eq!(set.history_rows(), need);
    assert!(set.describe().contains(LSTM_FILE), "{}", set.describe());
    // The daemon runs the models once per step, a quarter step after its boundary.
    let ms = Timestamp::from_millis;
    assert_eq!(set.next_run(ms(1_000_100)), ms(1_000_250));
    assert_eq!(set.next_run(ms(1_000_250)), ms(1_001_250));
    assert_eq!(set.next_run(ms(1_000_300)), ms(1_001_250));

    let mut a = set.series().unwrap();
    let mut b = set.series().unwrap();
    let mut short = set.series().unwrap();
    feed(&mut a, 0..12, 1, 4.0);
    feed(&mut b, 0..12, 1, 0.0);
    feed(&mut short, 0..4, 1, 0.0);
    // A step closes when the next one's first scrape arrives; the ring keeps `need` rows.
    assert_eq!(a.len(), need);
    assert_eq!(short.len(), 3);

    // The mapping, row by row (the last closed step is second 10; rates over 1 s).
    let col = |s: &TargetSeries, n: &str| s.column(n).unwrap();
    let last = |s: &TargetSeries, n: &str| *col(s, n).last().unwrap();
    assert!(close(last(&a, "rss_mb"), 140.0));
    assert!(close(last(&b, "rss_mb"), 100.0));
    assert!(close(last(&a, "cpu"), 0.25));
    assert!(close(last(&a, "open_fds"), 30.0));
    assert!(close(last(&a, "request_rate"), 10.0));
    assert!(close(last(&a, "queue_depth"), 3.0));
    assert!(close(last(&a, "restarts"), 2.0));
    // Second 9 → 10: errors 4 → 5 over 10 requests.
    assert!(close(last(&a, "error_rate"), 0.1));
    // All 10 requests in (0.05, 0.1]: PromQL's interpolation.
    assert!(close(last(&a, "latency_p50_ms"), 75.0));
    assert!(close(last(&a, "latency_p99_ms"), 99.5));
    // The first step has no earlier scrape: its rates are missing, not zero.
    assert!(col(&short, "request_rate")[0].is_nan());
    assert!(close(col(&short, "rss_mb")[0], 100.0));
    let times = a.times();
    assert!(times.windows(2).all(|w| close(w[1] - w[0], 1.0)));

    // One call for the due targets: a probability for each complete window, none for the
    // short one; each equals the predictor run alone on the window built from the same rows.
    let mut refs = vec![Some(&mut a), Some(&mut b), None, Some(&mut short)];
    let verdicts = set.run(&mut refs).unwrap();
    assert_eq!(
        verdicts.iter().map(|v| v.target).collect::<Vec<_>>(),
        [0, 1, 3]
    );
    assert!(verdicts[2].prediction.is_none(), "too short for a window");
    let mut alone = Predictor::load(&dir.path().join(LSTM_FILE)).unwrap();
    for (v, s) in verdicts[..2].iter().zip([&a, &b]) {
        let p = v.prediction.as_ref().expect("a prediction");
        assert!((0.0..=1.0).contains(&p.probability));
        assert!(p.alarm, "threshold 0: every window alarms");
        assert!(p.factors.len() <= 3);
        assert_eq!(p.horizon_s, 30);
        let names = alone.raw_series();
        let cols: Vec<Vec<f64>> = names.iter().map(|n| col(s, n)).collect();
        let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
        let mut w = vec![0.0f32; alone.window_len()];
        alone.window_from_raw(&s.times(), &refs, &mut w).unwrap();
        let expected = alone.predict_one(&w).unwrap();
        assert!(
            (p.probability - f64::from(expected)).abs() < 1e-5,
            "{} vs {expected}",
            p.probability
        );
    }
    assert_ne!(
        verdicts[0].prediction.as_ref().unwrap().probability,
        verdicts[1].prediction.as_ref().unwrap().probability,
        "different histories, different windows"
    );

    // Nothing new since: nothing is due. One more step: only that target is.
    let mut refs = vec![Some(&mut a), Some(&mut b)];
    assert!(set.run(&mut refs).unwrap().is_empty());
    feed(&mut b, 12..13, 1, 0.0);
    let mut refs = vec![Some(&mut a), Some(&mut b)];
    let verdicts = set.run(&mut refs).unwrap();
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].target, 1);
}

#[test]
fn a_model_needing_series_the_fleet_cannot_provide_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = default_step_spec();
    spec.series.push(SeriesSpec {
        name: "gc_pause_ms".into(),
        aggregations: vec![Aggregation::Last],
    });
    write_lstm(dir.path(), spec, 0.5);
    let (set, errors) = ModelSet::load(dir.path(), &RAW_SERIES);
    assert!(set.is_empty());
    assert_eq!(errors.len(), 1);
    let text = medic_driver::error_text(&errors[0]);
    assert!(text.contains("failure-prediction model"), "{text}");
    assert!(
        text.contains("gc_pause_ms") && text.contains("does not provide"),
        "{text}"
    );

    // The default model on a fleet without metrics endpoints: only restarts are known.
    let dir = tempfile::tempdir().unwrap();
    write_lstm(dir.path(), default_step_spec(), 0.5);
    let (set, errors) = ModelSet::load(dir.path(), &["restarts"]);
    assert!(set.is_empty());
    let text = medic_driver::error_text(&errors[0]);
    assert!(
        text.contains("\"cpu\"") && text.contains("rss_mb"),
        "{text}"
    );

    // A corrupt file is an error too, never a panic.
    std::fs::write(dir.path().join(LSTM_FILE), b"not onnx").unwrap();
    let (set, errors) = ModelSet::load(dir.path(), &RAW_SERIES);
    assert!(set.is_empty() && errors.len() == 1);
}

#[test]
fn the_forest_scores_the_latest_row_and_names_an_outlier() {
    let dir = tempfile::tempdir().unwrap();
    // Fit on the step features of steady synthetic rows (same feature path as the daemon).
    let spec = default_step_spec();
    let mut featurizer = StepFeaturizer::new(spec.clone(), WINDOW).unwrap();
    let width = featurizer.width();
    let n = 400;
    let times: Vec<f64> = (0..n).map(|i| 60.0 * i as f64).collect();
    // Deterministic noise in [-0.5, 0.5) (splitmix64 of the cell).
    let wobble = |i: usize, k: usize| {
        let mut z = (i as u64 * 31 + k as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64 - 0.5
    };
    let steady: Vec<f64> = [0.25, 100.0, 75.0, 99.5, 0.1, 10.0, 3.0, 30.0, 2.0].to_vec();
    let cols: Vec<Vec<f64>> = (0..RAW_SERIES.len())
        .map(|k| {
            (0..n)
                .map(|i| steady[k] * (1.0 + 0.02 * wobble(i, k)))
                .collect()
        })
        .collect();
    let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
    let mut rows = vec![0.0; (n - 1) * width];
    featurizer
        .featurize_into(&times, &refs, 1, &mut rows)
        .unwrap();
    let mut x = ndarray::Array2::from_shape_vec((n - 1, width), rows).unwrap();
    let scaler = Scaler::fit(ScalerKind::Standard, x.view()).unwrap();
    scaler.transform_in_place(x.view_mut()).unwrap();
    let mut forest = IsolationForest::fit(x.view(), Params::default()).unwrap();
    // A point beyond the training range scores like the most extreme training rows (the
    // forest cannot split beyond them), so the threshold is set between a steady target's
    // score and a leaking one's below, to reach the anomalous path (attribution, kind).
    forest.set_threshold(0.5);
    let mut model = ModelFile::new(
        forest,
        featurizer.names().to_vec(),
        Some(scaler),
        TrainingSummary::default(),
    )
    .unwrap();
    model.card.feature_spec = Some(spec);
    model.card.feature_window = Some(WINDOW);
    model.save(&dir.path().join(IFOREST_FILE)).unwrap();

    let (mut set, errors) = ModelSet::load(dir.path(), &RAW_SERIES);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(set.has_forest() && !set.has_predictor());
    // Only the forest: its card has no step, so rows are per minute (as its training data).
    assert_eq!(set.step_s(), 60);
    let mut leaking = set.series().unwrap();
    let mut steady = set.series().unwrap();
    feed(&mut leaking, 0..12, 60, 40.0);
    feed(&mut steady, 0..12, 60, 0.0);
    assert_eq!(leaking.len(), WINDOW);
    let mut refs = vec![Some(&mut leaking), Some(&mut steady)];
    let verdicts = set.run(&mut refs).unwrap();
    let a = verdicts[0]
        .anomaly
        .as_ref()
        .expect("a complete row is scored");
    let calm = verdicts[1]
        .anomaly
        .as_ref()
        .expect("a complete row is scored");
    assert!(a.score > calm.score, "{a:?} vs {calm:?}");
    assert!(a.anomalous && !calm.anomalous, "{a:?} vs {calm:?}");
    assert!(calm.top_features.is_empty());
    assert!((0.0..=1.0).contains(&a.score));
    assert!(!a.top_features.is_empty() && a.top_features.len() <= 3);
    assert!(a.reason.contains("isolation forest"), "{}", a.reason);

    // A forest without the feature path in its card cannot be fed: refused.
    model.card.feature_spec = None;
    model.save(&dir.path().join(IFOREST_FILE)).unwrap();
    let (set, errors) = ModelSet::load(dir.path(), &RAW_SERIES);
    assert!(set.is_empty());
    assert!(
        medic_driver::error_text(&errors[0]).contains("no feature spec"),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_models_the_daemon_runs_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        "targets:\n  - name: sleeper\n    probes:\n      liveness: { exec: [\"true\"], every: 1s }\n",
    )
    .unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut options =
        medic_driver::daemon::DaemonOptions::new(fleet, policies, dir.path().join("data"));
    // A models directory without model files, as on a fresh checkout.
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    options.models = Some(models);
    let fleet = medic_driver::daemon::load_fleet(&options).expect("a valid fleet");
    let handle = medic_driver::daemon::start(options, fleet)
        .await
        .expect("the daemon starts without models");
    assert_eq!(handle.models(), "none");
    // It runs: the brain publishes its first snapshot, with the target and no prediction.
    let mut snap = handle.snapshot();
    for _ in 0..100 {
        if !snap.targets.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        snap = handle.snapshot();
    }
    assert_eq!(snap.targets.len(), 1);
    assert_eq!(snap.targets[0].probability, None);
    handle.shutdown(Duration::from_secs(5)).await;
}

/// Serves a Prometheus page whose counters grow by one second's worth per request, like a
/// busy service, until the test ends.
async fn serve_metrics() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut k = 0u64;
        while let Ok((mut conn, _)) = listener.accept().await {
            k += 1;
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            while got < buf.len() {
                match conn.read(&mut buf[got..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
                if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let (_, samples) = scrape(k, 1, 2.0);
            let mut body = String::new();
            for s in samples {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(a, b)| format!("{a}=\"{b}\""))
                    .collect();
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", labels.join(","))
                };
                body.push_str(&format!("{}{labels} {}\n", s.name, s.value));
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_predicts_from_real_scrapes_and_reports_it_in_the_finding() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    // Threshold 0: every complete window alarms, so the finding must carry the prediction.
    write_lstm(&models, default_step_spec(), 0.0);
    let port = serve_metrics().await;
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        format!(
            "targets:\n  - name: busy\n    probes:\n      liveness: {{ exec: [\"true\"], every: 1s }}\n    \
             metrics: {{ url: \"http://127.0.0.1:{port}/metrics\", every: 1s }}\n"
        ),
    )
    .unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut options =
        medic_driver::daemon::DaemonOptions::new(fleet, policies, dir.path().join("data"));
    options.models = Some(models);
    // Decide and journal, execute nothing: the target has no actions of its own.
    options.dry_run = true;
    let fleet = medic_driver::daemon::load_fleet(&options).expect("a valid fleet");
    let handle = medic_driver::daemon::start(options, fleet)
        .await
        .expect("the daemon starts");
    assert!(handle.models().contains(LSTM_FILE), "{}", handle.models());
    // 1 s steps, 7 rows per window: the first prediction needs about 8 scrapes. Bounded
    // wait for the state, not a timing assertion.
    let mut found = None;
    for _ in 0..300 {
        let snap = handle.snapshot();
        if let Some(p) = snap.targets.first().and_then(|t| t.probability)
            && let Some(inc) = snap
                .incidents
                .iter()
                .find(|i| i.detected_by == "prediction")
        {
            found = Some((p, inc.clone()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.shutdown(Duration::from_secs(5)).await;
    let (p, incident) = found.expect("a model prediction within 30 s of scrapes");
    assert!((0.0..=1.0).contains(&p));
    assert!(incident.preemptive, "{incident:?}");
    assert!(
        incident.summary.contains("failure predicted by the model"),
        "{incident:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_preemptive_predicts_the_fleet_in_one_batch_from_its_scrapes() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    write_lstm(&models, default_step_spec(), 0.0);
    let (busy, idle) = (serve_metrics().await, serve_metrics().await);
    let fleet = dir.path().join("fleet.yaml");
    let mut y = String::from("targets:\n");
    for (name, port) in [("busy", busy), ("idle", idle)] {
        y.push_str(&format!(
            "  - name: {name}\n    probes:\n      liveness: {{ exec: [\"true\"], every: 1s }}\n    \
             metrics: {{ url: \"http://127.0.0.1:{port}/metrics\", every: 1s }}\n"
        ));
    }
    // A target without metrics has no rows: never scored.
    y.push_str("  - name: quiet\n    probes:\n      liveness: { exec: [\"true\"], every: 1s }\n");
    std::fs::write(&fleet, y).unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut options =
        medic_driver::daemon::DaemonOptions::new(fleet, policies, dir.path().join("data"));
    options.models = Some(models);
    options.dry_run = true;
    let fleet = medic_driver::daemon::load_fleet(&options).expect("a valid fleet");
    let heal = medic_driver::daemon::HealOptions {
        rounds: 9,
        interval: Duration::from_secs(1),
        ..Default::default()
    };
    let report = medic_driver::daemon::heal_once(&options, &fleet, heal)
        .await
        .expect("a run");
    assert!(report.dry_run && report.ok());
    let mut targets: Vec<&str> = report.lines.iter().map(|l| l.target.as_str()).collect();
    targets.sort_unstable();
    // Threshold 0: both scraped targets are predicted to fail; the one without metrics is not.
    assert_eq!(targets, ["busy", "idle"], "{report:?}");
    for l in &report.lines {
        assert!((0.0..=1.0).contains(&l.probability), "{l:?}");
        assert!(l.factors.len() <= 3, "{l:?}");
    }
}
