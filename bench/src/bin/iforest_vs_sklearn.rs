//! medic's isolation forest against scikit-learn's and isotree's, side by side in one run.
//!
//! On every ODDS CSV in `DATA/odds` and on a synthetic 100,000 × 16 matrix (1 % planted
//! outliers), fits and scores medic's forest in this process and both references in a Python
//! subprocess (`bench/python/iforest_ref.py`), all single-threaded with t = 100, ψ = 256, seeds
//! 0..5, and prints AUC side by side with fit and per-row score time ratios.
//!
//! Timing rule, the same on both sides: per dataset and seed, one fit and one scoring pass over
//! the whole matrix (medic's `score_into`, scikit-learn's `score_samples`, isotree's
//! `predict`), wall time, averaged over the seeds.
//!
//! usage: `cargo run --release -p medic-bench --bin iforest_vs_sklearn -- [DATA] [--seeds N]
//! [--rows N] [--medic-only]` (DATA defaults to `../shared/data`; run from the repository
//! root). `--medic-only` skips Python and prints medic's scoring time alone, best and mean of
//! 5 passes per seed, for quick iterations on the scoring layout.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use medic_detect::eval::odds::{self, Dataset, OddsConfig, OddsResult};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TREES: usize = 100;
const SAMPLES: usize = 256;

fn synthetic(rows: usize, cols: usize) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let n_out = rows / 100;
    let mut labels = vec![false; rows];
    let x = Array2::from_shape_fn((rows, cols), |(i, j)| {
        if i < n_out {
            labels[i] = true;
            rng.random_range(-6.0..6.0)
        } else {
            // Two clusters of bell-shaped (sum of 4 uniforms) values.
            let centre = if i % 2 == 0 { -1.5 } else { 1.5 } * if j % 3 == 0 { 1.0 } else { 0.5 };
            centre + (0..4).map(|_| rng.random::<f64>()).sum::<f64>() - 2.0
        }
    });
    Dataset {
        name: format!("synthetic_{}x{}", rows, cols),
        x,
        labels,
    }
}

fn write_raw(ds: &Dataset, path: &Path) -> std::io::Result<String> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (row, &l) in ds.x.rows().into_iter().zip(&ds.labels) {
        for v in row {
            f.write_all(&v.to_le_bytes())?;
        }
        f.write_all(&(if l { 1.0f64 } else { 0.0 }).to_le_bytes())?;
    }
    f.flush()?;
    Ok(format!(
        "{}:{}:{}",
        path.display(),
        ds.x.nrows(),
        ds.x.ncols() + 1
    ))
}

struct Ref {
    auc: f64,
    fit_ms: f64,
    score_us: f64,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("iforest_vs_sklearn: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut data = PathBuf::from("../shared/data");
    let mut seeds = 5u64;
    let mut rows = 100_000usize;
    let mut medic_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seeds" => seeds = args.next().ok_or("--seeds needs a value")?.parse()?,
            "--rows" => rows = args.next().ok_or("--rows needs a value")?.parse()?,
            "--medic-only" => medic_only = true,
            other => data = PathBuf::from(other),
        }
    }
    let odds_dir = data.join("odds");
    let files = odds::list_csvs(&odds_dir)?;
    let mut sets: Vec<(Dataset, String)> = Vec::new();
    for f in &files {
        sets.push((odds::load_csv(f)?, f.display().to_string()));
    }
    let tmp = tempfile::tempdir()?;
    let syn = synthetic(rows, 16);
    let spec = write_raw(&syn, &tmp.path().join(format!("{}.f64", syn.name)))?;
    sets.push((syn, spec));

    if medic_only {
        return score_only(&sets, seeds);
    }
    let cfg = OddsConfig {
        n_trees: TREES,
        max_samples: SAMPLES,
        seeds,
    };
    eprintln!("medic: {} datasets, {} seeds …", sets.len(), seeds);
    let mut ours: Vec<OddsResult> = Vec::new();
    for (ds, _) in &sets {
        ours.push(odds::evaluate(ds, cfg)?);
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/iforest_ref.py");
    eprintln!("references: python3 {} …", script.display());
    // One thread for every native pool; OPENBLAS_CORETYPE/L2_SIZE are removed for this
    // process only, as they slow a current numpy (see the environment notes).
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--trees",
            &TREES.to_string(),
            "--samples",
            &SAMPLES.to_string(),
        ])
        .args(["--seeds", &seeds.to_string()])
        .args(sets.iter().map(|(_, s)| s.as_str()))
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .env("NUMEXPR_NUM_THREADS", "1")
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "reference script failed ({}); needs `pip install scikit-learn isotree pandas`:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut refs: HashMap<(String, String), Ref> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let Some(p) = v.get("threadpools") {
            println!("python thread pools (api, threads): {p}");
            continue;
        }
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        refs.insert(
            (s("lib"), s("dataset")),
            Ref {
                auc: f("auc_mean"),
                fit_ms: f("fit_ms"),
                score_us: f("score_us_per_row"),
            },
        );
    }

    println!(
        "t = {TREES}, ψ = {SAMPLES}, seeds 0..{seeds}, single thread; ratios = reference time / medic time"
    );
    println!(
        "{:<22} {:>7} | {:>7} {:>7} {:>7} | {:>8} {:>8} {:>8} {:>6} {:>6} | {:>7} {:>7} {:>7} {:>6} {:>6}",
        "dataset",
        "rows",
        "auc",
        "sk_auc",
        "iso_auc",
        "fit_ms",
        "sk_fit",
        "iso_fit",
        "sk/x",
        "iso/x",
        "us/row",
        "sk_us",
        "iso_us",
        "sk/x",
        "iso/x"
    );
    let nan = Ref {
        auc: f64::NAN,
        fit_ms: f64::NAN,
        score_us: f64::NAN,
    };
    let (mut auc_m, mut auc_s, mut auc_i, mut n_odds) = (0.0, 0.0, 0.0, 0.0);
    let mut big_score_ratios = Vec::new();
    let mut fit_ratios_iso = Vec::new();
    for r in &ours {
        let sk = refs
            .get(&("sklearn".into(), r.dataset.clone()))
            .unwrap_or(&nan);
        let iso = refs
            .get(&("isotree".into(), r.dataset.clone()))
            .unwrap_or(&nan);
        println!(
            "{:<22} {:>7} | {:>7.4} {:>7.4} {:>7.4} | {:>8.2} {:>8.2} {:>8.2} {:>6.1} {:>6.2} | {:>7.3} {:>7.3} {:>7.3} {:>6.1} {:>6.1}",
            r.dataset,
            r.rows,
            r.auc_mean,
            sk.auc,
            iso.auc,
            r.fit_ms,
            sk.fit_ms,
            iso.fit_ms,
            sk.fit_ms / r.fit_ms,
            iso.fit_ms / r.fit_ms,
            r.score_us_per_row,
            sk.score_us,
            iso.score_us,
            sk.score_us / r.score_us_per_row,
            iso.score_us / r.score_us_per_row
        );
        if !r.dataset.starts_with("synthetic") {
            auc_m += r.auc_mean;
            auc_s += sk.auc;
            auc_i += iso.auc;
            n_odds += 1.0;
        }
        if r.rows >= 5000 {
            big_score_ratios.push(sk.score_us / r.score_us_per_row);
        }
        fit_ratios_iso.push(iso.fit_ms / r.fit_ms);
    }
    let geo = |v: &[f64]| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp();
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "ODDS mean AUC: medic {:.4}, sklearn {:.4}, isotree {:.4}; medic − sklearn = {:+.4}",
        auc_m / n_odds,
        auc_s / n_odds,
        auc_i / n_odds,
        (auc_m - auc_s) / n_odds
    );
    println!(
        "score speed-up vs sklearn on sets ≥ 5,000 rows: geometric mean {:.1}×, min {:.1}× ({} sets)",
        geo(&big_score_ratios),
        min(&big_score_ratios),
        big_score_ratios.len()
    );
    println!(
        "fit speed-up vs isotree (all sets): geometric mean {:.2}×, min {:.2}×",
        geo(&fit_ratios_iso),
        min(&fit_ratios_iso)
    );
    Ok(ExitCode::SUCCESS)
}

/// `--medic-only`: medic's scoring alone, best of 5 passes over the whole matrix per seed
/// (no Python), for quick iterations on the scoring layout.
fn score_only(
    sets: &[(Dataset, String)],
    seeds: u64,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use medic_detect::iforest::{Contamination, IsolationForest, Params};
    println!(
        "{:<22} {:>7} {:>9} {:>9}",
        "dataset", "rows", "best_us", "mean_us"
    );
    for (ds, _) in sets {
        let n = ds.x.nrows();
        let mut scores = vec![0.0; n];
        let (mut best, mut sum, mut k) = (f64::INFINITY, 0.0, 0.0);
        for seed in 0..seeds {
            let params = Params {
                n_trees: TREES,
                max_samples: SAMPLES,
                seed,
                contamination: Contamination::Auto,
            };
            let forest = IsolationForest::fit(ds.x.view(), params)?;
            for _ in 0..5 {
                // Elapsed wall time is the figure being measured.
                #[allow(clippy::disallowed_methods)]
                let t0 = std::time::Instant::now();
                forest.score_into(ds.x.view(), &mut scores)?;
                let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
                best = best.min(us);
                sum += us;
                k += 1.0;
            }
        }
        println!("{:<22} {:>7} {:>9.3} {:>9.3}", ds.name, n, best, sum / k);
    }
    Ok(ExitCode::SUCCESS)
}
