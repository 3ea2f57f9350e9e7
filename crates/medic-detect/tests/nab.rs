//! NAB scoring: hand-computed cases and reproduction of NAB's published scores.

use std::path::{Path, PathBuf};

use medic_detect::eval::nab::{
    CostMatrix, LabelledFile, Profile, Window, parse_timestamp, probationary_length, read_corpus,
    read_detector_results, read_profiles, scaled_sigmoid, score_corpus,
};

const MINUTE: i64 = 60_000_000;

fn standard() -> Profile {
    Profile {
        name: "standard".to_owned(),
        costs: CostMatrix {
            tp_weight: 1.0,
            fp_weight: 0.11,
            fn_weight: 1.0,
        },
    }
}

/// A file of `n` rows one minute apart with windows over row ranges (inclusive).
fn file(n: usize, windows: &[(usize, usize)]) -> LabelledFile {
    let timestamps: Vec<i64> = (0..n as i64).map(|i| i * MINUTE).collect();
    LabelledFile {
        key: "test/file.csv".to_owned(),
        windows: windows
            .iter()
            .map(|&(a, b)| Window {
                start: timestamps[a],
                end: timestamps[b],
            })
            .collect(),
        timestamps,
    }
}

fn scores_with(n: usize, detections: &[usize]) -> Vec<f64> {
    let mut s = vec![0.0; n];
    for &i in detections {
        s[i] = 1.0;
    }
    s
}

#[test]
fn scaled_sigmoid_matches_nab_values() {
    assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < 1e-12);
    assert!((scaled_sigmoid(-0.5) - 0.848_283_639_957_512_9).abs() < 1e-12);
    assert_eq!(scaled_sigmoid(0.0), 0.0);
    assert_eq!(scaled_sigmoid(3.5), -1.0);
}

#[test]
fn probation_is_15_percent_capped_at_750_rows() {
    assert_eq!(probationary_length(100), 15);
    assert_eq!(probationary_length(4032), 604);
    assert_eq!(probationary_length(22_695), 750);
}

#[test]
fn timestamps_parse_with_and_without_fraction() {
    let a = parse_timestamp("2014-04-10 07:15:00").unwrap();
    let b = parse_timestamp("2014-04-10 07:15:00.000000").unwrap();
    assert_eq!(a, b);
    assert_eq!(parse_timestamp("1970-01-02 00:00:01"), Some(86_401_000_000));
    assert_eq!(parse_timestamp("2014-13-10 07:15:00"), None);
    assert_eq!(parse_timestamp("garbage"), None);
}

#[test]
fn detection_at_window_start_earns_full_tp_weight() {
    // 100 rows: probation 15 rows; one window over rows 40..=49 (width 10).
    let f = file(100, &[(40, 49)]);
    let result = score_corpus(&[f], &[scores_with(100, &[40])], &[standard()]).unwrap();
    let r = &result[0];
    // Best threshold 1.0: the window is detected at its left edge: σ(−1)/σ(−1) × 1 = 1.
    assert_eq!(r.best.threshold, 1.0);
    assert!((r.best.score - 1.0).abs() < 1e-12, "{}", r.best.score);
    // Null: the window missed = −1; perfect = 1; normalised = 100 (1 + 1) / (1 + 1).
    assert_eq!(r.null_score, -1.0);
    assert_eq!(r.perfect_score, 1.0);
    assert!((r.normalized - 100.0).abs() < 1e-9);
    assert_eq!((r.best.tp, r.best.fp, r.best.fn_), (1, 0, 9));
}

#[test]
fn later_detection_in_window_earns_less_and_only_the_earliest_counts() {
    let f = file(100, &[(40, 49)]);
    // Detections at rows 45 and 47: only row 45 counts.
    // position = −(49 − 45 + 1)/10 = −0.5 → σ(−0.5)/σ(−1).
    let expected = scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0);
    let result = score_corpus(&[f], &[scores_with(100, &[45, 47])], &[standard()]).unwrap();
    assert!((result[0].best.score - expected).abs() < 1e-12);
    assert_eq!(result[0].best.tp, 2);
}

#[test]
fn false_positive_costs_depend_on_distance_to_previous_window() {
    let f = file(100, &[(40, 49)]);
    // Lower-scored false positives are left out by the optimiser: threshold 1.0 keeps only
    // the TP (score 1) and beats 0.9 (1 − 0.11) and 0.8.
    let mut scores = vec![0.0; 100];
    scores[40] = 1.0;
    scores[52] = 0.8;
    scores[20] = 0.9;
    let result = score_corpus(std::slice::from_ref(&f), &[scores], &[standard()]).unwrap();
    assert_eq!(result[0].best.threshold, 1.0);
    assert!((result[0].best.score - 1.0).abs() < 1e-12);
    // With all three at the top score: row 20 is before any window (full fpWeight), row 52 is
    // (52 − 49)/(10 − 1) = 1/3 past the window → σ(1/3) × 0.11 (σ negative there).
    let mut scores = vec![0.0; 100];
    scores[20] = 1.0;
    scores[52] = 1.0;
    scores[40] = 1.0;
    let result = score_corpus(&[f], &[scores], &[standard()]).unwrap();
    let expected = 1.0 - 0.11 + scaled_sigmoid(3.0 / 9.0) * 0.11;
    assert!(
        (result[0].best.score - expected).abs() < 1e-12,
        "{} vs {expected}",
        result[0].best.score
    );
    assert_eq!(result[0].best.fp, 2);
}

#[test]
fn probationary_detections_and_windows_are_not_scored() {
    // Window inside probation (rows 2..=5 of 100, probation 15): it does not count as missed.
    let f = file(100, &[(2, 5)]);
    let result = score_corpus(&[f], &[scores_with(100, &[3, 10])], &[standard()]).unwrap();
    assert_eq!(result[0].best.score, 0.0);
    assert_eq!(result[0].best.tp + result[0].best.fp, 0);
}

#[test]
fn threshold_optimisation_trades_missed_windows_against_false_positives() {
    // Two files. Low-score detections would find the second window but cost 12 FPs.
    let a = file(100, &[(40, 49)]);
    let b = file(100, &[(60, 69)]);
    let mut sa = vec![0.0; 100];
    sa[40] = 0.9;
    let mut sb = vec![0.0; 100];
    sb[60] = 0.5;
    sb[16..28].fill(0.5);
    let result = score_corpus(&[a, b], &[sa, sb], &[standard()]).unwrap();
    // At 0.9: 1 − 1 = 0. At 0.5: 1 + 1 − 12 × 0.11 = 0.68 → better.
    assert_eq!(result[0].best.threshold, 0.5);
    assert!((result[0].best.score - (2.0 - 12.0 * 0.11)).abs() < 1e-12);
    // Normalised: null −2, perfect 2.
    assert!((result[0].normalized - 100.0 * (0.68 + 2.0) / 4.0).abs() < 1e-9);
}

fn nab_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab");
    if dir.join("labels/combined_windows.json").is_file() && dir.join("results").is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: NAB data not found at {}", dir.display());
        None
    }
}

#[test]
fn reproduces_nab_published_scores_on_the_shared_subset() {
    let Some(dir) = nab_dir() else { return };
    let corpus = read_corpus(&dir.join("data"), &dir.join("labels/combined_windows.json")).unwrap();
    let profiles = read_profiles(&dir.join("config/profiles.json")).unwrap();
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
    );
    for (detector, expected) in [
        ("numenta", [66.586, 60.805, 71.057]),
        ("windowedGaussian", [21.971, 4.870, 29.799]),
    ] {
        let scores = read_detector_results(&corpus, &dir.join("results"), detector).unwrap();
        let result = score_corpus(&corpus.files, &scores, &profiles).unwrap();
        for (profile, want) in result.iter().zip(expected) {
            assert!(
                (profile.normalized - want).abs() < 0.1,
                "{detector} {}: {} vs {want}",
                profile.profile,
                profile.normalized
            );
        }
    }
}

#[test]
fn zscore_baseline_matches_the_data_readme() {
    use medic_detect::eval::nab::detect_corpus;
    use medic_detect::stream::NabDetectorKind;
    let Some(dir) = nab_dir() else { return };
    let corpus = read_corpus(&dir.join("data"), &dir.join("labels/combined_windows.json")).unwrap();
    let profiles = read_profiles(&dir.join("config/profiles.json")).unwrap();
    let scores = detect_corpus(&corpus, NabDetectorKind::ZScore);
    let result = score_corpus(&corpus.files, &scores, &profiles).unwrap();
    for (profile, want) in result.iter().zip([0.0, 0.0, 7.57]) {
        assert!(
            (profile.normalized - want).abs() < 0.1,
            "{}: {}",
            profile.profile,
            profile.normalized
        );
    }
}

#[test]
fn results_round_trip_in_nab_layout_and_bad_files_give_clear_errors() {
    use medic_detect::eval::nab::{
        Corpus, NabError, read_results, read_series, results_path, write_results,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data/cat");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("f.csv"),
        "timestamp,value\n2014-01-01 00:00:00,1.5\n2014-01-01 00:05:00,2\n2014-01-01 00:10:00,3\n",
    )
    .unwrap();
    let series = read_series(&data.join("f.csv")).unwrap();
    assert_eq!(series.values, [1.5, 2.0, 3.0]);
    let t1 = series.timestamps[1];
    let corpus = Corpus {
        files: vec![LabelledFile {
            key: "cat/f.csv".to_owned(),
            timestamps: series.timestamps.clone(),
            windows: vec![Window { start: t1, end: t1 }],
        }],
        series: vec![series],
    };
    let out = dir.path().join("results");
    let written = write_results(&corpus, &[vec![0.0, 0.25, 1.0]], &out, "det").unwrap();
    assert_eq!(written[0], out.join("det/cat/det_f.csv"));
    assert_eq!(results_path(&out, "det", "cat/f.csv"), written[0]);
    let text = std::fs::read_to_string(&written[0]).unwrap();
    assert_eq!(
        text,
        "timestamp,value,anomaly_score,label\n2014-01-01 00:00:00,1.5,0,0\n\
         2014-01-01 00:05:00,2,0.25,1\n2014-01-01 00:10:00,3,1,0\n"
    );
    let (ts, scores) = read_results(&written[0]).unwrap();
    assert_eq!(ts, corpus.files[0].timestamps);
    assert_eq!(scores, [0.0, 0.25, 1.0]);

    std::fs::write(
        data.join("bad.csv"),
        "timestamp,value\n2014-01-01 00:00:00,abc\n",
    )
    .unwrap();
    let err = read_series(&data.join("bad.csv")).unwrap_err();
    assert!(matches!(err, NabError::Csv { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("bad value"), "{err}");
    std::fs::write(data.join("nocol.csv"), "time,value\n").unwrap();
    assert!(
        read_series(&data.join("nocol.csv"))
            .unwrap_err()
            .to_string()
            .contains("no timestamp column")
    );
    let missing = read_series(&data.join("absent.csv")).unwrap_err();
    assert!(matches!(missing, NabError::Read { .. }));
    std::fs::write(
        dir.path().join("labels.json"),
        "{\"cat/f.csv\": [[\"2014\", 3]]}",
    )
    .unwrap();
    let err = medic_detect::eval::nab::read_windows(&dir.path().join("labels.json")).unwrap_err();
    assert!(err.to_string().contains("not [start, end]"), "{err}");
}
