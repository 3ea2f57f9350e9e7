//! `medic eval …`: evaluation on benchmark data. Each subcommand takes `--json`, then prints
//! one JSON object per line, the last being the summary with the headline figures.

use std::process::ExitCode;

/// The evaluations.
#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Isolation forest on ODDS-style CSVs (columns f0..fN,label): AUC, fit and score times.
    Odds(OddsArgs),
    /// Error diagnosis on a labelled JSONL corpus (`{"text","category"}` per line): accuracy,
    /// per-category precision/recall, confusion matrix.
    Diagnose(DiagnoseArgs),
    /// Streaming detector on NAB: writes NAB results files and prints NAB scores (standard,
    /// reward_low_FP_rate, reward_low_FN_rate) from medic's own NAB scorer, beside a rolling
    /// z-score baseline scored by the same code.
    Nab(NabArgs),
}

/// Arguments of `medic eval odds`.
#[derive(clap::Args)]
pub struct OddsArgs {}

/// Arguments of `medic eval diagnose`.
#[derive(clap::Args)]
pub struct DiagnoseArgs {
    /// The labelled corpus, e.g. tests/data/diagnosis/corpus.jsonl.
    pub file: std::path::PathBuf,
    /// The pattern library.
    #[arg(long, default_value = "policies/patterns.yaml")]
    pub patterns: std::path::PathBuf,
    /// One JSON object per category, then a summary line with `accuracy`.
    #[arg(long)]
    pub json: bool,
    /// Also print the misclassified messages.
    #[arg(long)]
    pub misses: bool,
}

/// Arguments of `medic eval nab`.
#[derive(clap::Args)]
pub struct NabArgs {
    /// NAB's data directory (`<category>/<file>.csv`).
    #[arg(default_value = "../shared/data/nab/data")]
    pub data_dir: std::path::PathBuf,
    /// NAB's anomaly windows; only the files listed there are run and scored.
    #[arg(default_value = "../shared/data/nab/labels/combined_windows.json")]
    pub labels: std::path::PathBuf,
    /// Where to write results: `<out>/<detector>/<category>/<detector>_<file>.csv`.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// NAB's scoring profiles [default: <data_dir>/../config/profiles.json].
    #[arg(long)]
    pub profiles: Option<std::path::PathBuf>,
    /// Detector configuration: medic, zscore, or an ablation (medicNoSeasonal, medicNoSpatial,
    /// medicNoSuppression, medicSingleLikelihood, medicWithZScore).
    #[arg(long, default_value = "medic")]
    pub detector: String,
    /// Score existing NAB results under `<DIR>/<detector>/` (e.g. ../shared/data/nab/results
    /// with --detector numenta) instead of running a detector.
    #[arg(long, value_name = "DIR")]
    pub score_results: Option<std::path::PathBuf>,
    /// One JSON object per file, then a summary line.
    #[arg(long)]
    pub json: bool,
}

/// Runs an evaluation.
pub fn run(command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Odds(_) => anyhow::bail!("`medic eval odds` is not built yet"),
        EvalCommand::Diagnose(args) => super::diagnose::run_eval(args),
        EvalCommand::Nab(args) => run_nab(args),
    }
}

fn run_nab(args: NabArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use medic_detect::eval::nab;
    use medic_detect::stream::NabDetectorKind;

    let profiles_path = args.profiles.clone().unwrap_or_else(|| {
        args.data_dir
            .join("..")
            .join("config")
            .join("profiles.json")
    });
    let corpus =
        nab::read_corpus(&args.data_dir, &args.labels).context("reading the NAB corpus")?;
    let profiles = nab::read_profiles(&profiles_path).context("reading the NAB profiles")?;
    let scores = match &args.score_results {
        Some(dir) => {
            nab::read_detector_results(&corpus, dir, &args.detector).with_context(|| {
                format!("reading {} results under {}", args.detector, dir.display())
            })?
        }
        None => {
            let kind = NabDetectorKind::from_name(&args.detector).with_context(|| {
                let names: Vec<&str> = NabDetectorKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown detector {:?}; one of {}",
                    args.detector,
                    names.join(", ")
                )
            })?;
            let scores = nab::detect_corpus(&corpus, kind);
            nab::write_results(&corpus, &scores, &args.out, kind.name())
                .context("writing NAB results")?;
            scores
        }
    };
    let result = nab::score_corpus(&corpus.files, &scores, &profiles)?;
    let baseline_kind = NabDetectorKind::ZScore;
    let baseline_scores = nab::detect_corpus(&corpus, baseline_kind);
    nab::write_results(&corpus, &baseline_scores, &args.out, baseline_kind.name())
        .context("writing NAB baseline results")?;
    let baseline = nab::score_corpus(&corpus.files, &baseline_scores, &profiles)?;

    let n_rows: usize = corpus.files.iter().map(|f| f.timestamps.len()).sum();
    let n_windows: usize = corpus.files.iter().map(|f| f.windows.len()).sum();
    if args.json {
        for (i, file) in corpus.files.iter().enumerate() {
            let mut line = serde_json::json!({
                "file": file.key,
                "rows": file.timestamps.len(),
                "windows": file.windows.len(),
            });
            for profile in &result {
                let at = &profile.files[i].at_threshold;
                line[profile.profile.as_str()] = serde_json::json!({
                    "score": at.score, "tp": at.tp, "fp": at.fp, "fn": at.fn_, "tn": at.tn,
                });
            }
            println!("{line}");
        }
        let mut summary = serde_json::json!({
            "summary": true,
            "detector": args.detector,
            "files": corpus.files.len(),
            "rows": n_rows,
            "windows": n_windows,
            "results_dir": args.out.join(&args.detector),
        });
        for profile in &result {
            summary[profile.profile.as_str()] = serde_json::json!(profile.normalized);
            summary["thresholds"][profile.profile.as_str()] =
                serde_json::json!(profile.best.threshold);
            summary["raw"][profile.profile.as_str()] = serde_json::json!(profile.best.score);
        }
        summary["baseline"] = serde_json::json!({ "detector": baseline_kind.name() });
        for profile in &baseline {
            summary["baseline"][profile.profile.as_str()] = serde_json::json!(profile.normalized);
        }
        println!("{summary}");
    } else {
        println!(
            "{} files, {} rows, {} windows; detector {}",
            corpus.files.len(),
            n_rows,
            n_windows,
            args.detector
        );
        if let Some(standard) = result.first() {
            println!(
                "{:<62} {:>8} {:>4} {:>4} {:>4}",
                "file", standard.profile, "tp", "fp", "fn"
            );
            for file in &standard.files {
                let at = &file.at_threshold;
                println!(
                    "{:<62} {:>8.3} {:>4} {:>4} {:>4}",
                    file.key, at.score, at.tp, at.fp, at.fn_
                );
            }
        }
        println!(
            "{:<22} {:>10} {:>10} {:>12} {:>12}",
            "profile", "score", "threshold", "raw", "baseline"
        );
        for (profile, base) in result.iter().zip(&baseline) {
            println!(
                "{:<22} {:>10.3} {:>10.4} {:>12.3} {:>12.3}",
                profile.profile,
                profile.normalized,
                profile.best.threshold,
                profile.best.score,
                base.normalized
            );
        }
        println!(
            "results written under {} (baseline: {})",
            args.out.join(&args.detector).display(),
            args.out.join(baseline_kind.name()).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_odds(args: OddsArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use medic_detect::eval::odds;

    let files = odds::list_csvs(&args.dir)
        .with_context(|| format!("listing ODDS CSVs in {}", args.dir.display()))?;
    anyhow::ensure!(!files.is_empty(), "no .csv files in {}", args.dir.display());
    let cfg = odds::OddsConfig {
        n_trees: args.trees,
        max_samples: args.samples,
        seeds: args.seeds,
    };
    if !args.json {
        println!(
            "isolation forest: {} trees, ψ = {}, seeds 0..{}, single thread",
            args.trees, args.samples, args.seeds
        );
        println!(
            "{:<14} {:>7} {:>5} {:>9} {:>8} {:>9} {:>12}",
            "dataset", "rows", "cols", "auc_mean", "auc_std", "fit_ms", "score_us/row"
        );
    }
    let mut results = Vec::new();
    for path in &files {
        let ds = odds::load_csv(path)?;
        let r = odds::evaluate(&ds, cfg)?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{:<14} {:>7} {:>5} {:>9.4} {:>8.4} {:>9.2} {:>12.3}",
                r.dataset, r.rows, r.cols, r.auc_mean, r.auc_std, r.fit_ms, r.score_us_per_row
            );
        }
        results.push(r);
    }
    let n = results.len() as f64;
    let mean = |f: fn(&odds::OddsResult) -> f64| results.iter().map(f).sum::<f64>() / n;
    let (auc, std, fit, score) = (
        mean(|r| r.auc_mean),
        mean(|r| r.auc_std),
        mean(|r| r.fit_ms),
        mean(|r| r.score_us_per_row),
    );
    if args.json {
        let summary = serde_json::json!({
            "dataset": "mean",
            "summary": true,
            "datasets": results.len(),
            "trees": args.trees,
            "samples": args.samples,
            "seeds": args.seeds,
            "auc_mean": auc,
            "auc_std": std,
            "fit_ms": fit,
            "score_us_per_row": score,
        });
        println!("{summary}");
    } else {
        println!(
            "{:<14} {:>7} {:>5} {:>9.4} {:>8.4} {:>9.2} {:>12.3}",
            "mean", "", "", auc, std, fit, score
        );
    }
    Ok(ExitCode::SUCCESS)
}
