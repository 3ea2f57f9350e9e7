//! ODDS: CSV loading and the forest's AUC on the shared datasets when present.

use std::path::PathBuf;

use medic_detect::eval::odds::{OddsConfig, evaluate, load_csv};

#[test]
fn malformed_csv_is_an_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.csv");
    std::fs::write(&p, "f0,f1,label\n1,2,0\n1,x,1\n").unwrap();
    let e = load_csv(&p).unwrap_err().to_string();
    assert!(e.contains(":3:"), "{e}");
    std::fs::write(&p, "f0,f1,label\n1,2\n").unwrap();
    assert!(load_csv(&p).is_err());
    std::fs::write(&p, "a,b\n1,2\n").unwrap();
    assert!(load_csv(&p).is_err());
    std::fs::write(&p, "f0,label\n1,0\n2,0\n9,1\n").unwrap();
    let ds = load_csv(&p).unwrap();
    assert_eq!(ds.x.dim(), (3, 1));
    assert_eq!(ds.labels, [false, false, true]);
}

#[test]
fn cardio_auc_is_in_the_published_range() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/odds");
    let path = dir.join("cardio.csv");
    if !path.exists() {
        eprintln!("skipping: ODDS data not found at {}", dir.display());
        return;
    }
    let ds = load_csv(&path).unwrap();
    assert_eq!(ds.x.dim(), (1831, 21));
    let r = evaluate(
        &ds,
        OddsConfig {
            n_trees: 100,
            max_samples: 256,
            seeds: 2,
        },
    )
    .unwrap();
    // scikit-learn's IsolationForest scores about 0.93 here (ADBench reports 0.93).
    assert!(r.auc_mean > 0.88, "auc {}", r.auc_mean);
}
