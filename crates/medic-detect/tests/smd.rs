//! SMD: interpretation parsing, HitRate on hand-computed cases, and the real data when present.

use std::path::PathBuf;

use medic_detect::eval::smd::{
    RANKINGS, SmdConfig, evaluate_machine, hit_rate, parse_interpretation,
};

#[test]
fn interpretation_lines_parse_to_zero_based_rows_and_metrics() {
    let v = parse_interpretation("15849-16368:1,9,10\n0-2:38\n", "x").unwrap();
    assert_eq!(v[0].start, 15849);
    assert_eq!(v[0].end, 16368);
    assert_eq!(v[0].dims, [0, 8, 9]);
    assert_eq!(v[1].dims, [37]);
    assert!(parse_interpretation("5-3:1", "x").is_err());
    assert!(parse_interpretation("1-3:0", "x").is_err());
    assert!(parse_interpretation("1-3", "x").is_err());
}

#[test]
fn hit_rate_by_hand() {
    // GT = {2, 5, 7}; ranking 5, 1, 7, 2, 0.
    let ranked = [5, 1, 7, 2, 0];
    let gt = [2, 5, 7];
    // @100 %: top 3 = {5, 1, 7} → 2 hits of 3.
    assert!((hit_rate(&ranked, &gt, 100.0).unwrap() - 2.0 / 3.0).abs() < 1e-12);
    // @150 %: top ⌊4.5⌋ = 4 = {5, 1, 7, 2} → 3 of 3.
    assert_eq!(hit_rate(&ranked, &gt, 150.0), Some(1.0));
    // |GT| = 1 at 150 %: top ⌊1.5⌋ = 1.
    assert_eq!(hit_rate(&ranked, &[1], 150.0), Some(0.0));
    assert_eq!(hit_rate(&ranked, &[5], 150.0), Some(1.0));
    assert_eq!(hit_rate(&ranked, &[], 100.0), None);
}

fn smd_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/smd");
    if dir.join("train/machine-1-2.txt").exists() {
        Some(dir)
    } else {
        eprintln!("skipping: SMD data not found at {}", dir.display());
        None
    }
}

#[test]
fn smd_machine_1_2_detects_its_segments() {
    let Some(dir) = smd_dir() else { return };
    let r = evaluate_machine(
        &dir,
        "machine-1-2",
        SmdConfig {
            n_trees: 50,
            ..SmdConfig::default()
        },
    )
    .unwrap();
    assert_eq!(r.test_rows, 23694);
    assert_eq!(r.anomalous_rows, 542);
    // Far better than chance: AUC and the point-adjusted recall at the train threshold.
    assert!(r.auc > 0.75, "auc {}", r.auc);
    assert!(r.at_threshold_pa.recall > 0.5, "{:?}", r.at_threshold_pa);
    assert!(r.interpreted_rows == 542);
    assert!((0.0..=1.0).contains(&r.hitrate_all_150) && r.hitrate_all_150 >= r.hitrate_all_100);
    // The headline (OmniAnomaly's definition) counts the detected interpreted rows only.
    assert!(r.detected_rows > 0 && r.detected_rows <= r.interpreted_rows);
    assert!(r.hitrate_detected_150 >= r.hitrate_detected_100);
    assert_eq!(r.rankings.len(), RANKINGS.len());
    assert_eq!(r.rankings[0].detected_150, r.hitrate_detected_150);
}
