//! `medic eval …`: evaluation on benchmark data. Each subcommand takes `--json`, then prints
//! one JSON object per line, the last being the summary with the headline figures.

use std::process::ExitCode;

/// The evaluations.
#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Isolation forest on ODDS-style CSVs (columns f0..fN,label): AUC, fit and score times.
    Odds(OddsArgs),
    /// Isolation forest on SMD machines: train on train/, score test/; F1 with and without
    /// point adjustment, attribution HitRate@100%/150%.
    Smd(SmdArgs),
    /// Error diagnosis on a labelled JSONL corpus (`{"text","category"}` per line): accuracy,
    /// per-category precision/recall, confusion matrix.
    Diagnose(DiagnoseArgs),
    /// Streaming detector on NAB: writes NAB results files and prints NAB scores (standard,
    /// reward_low_FP_rate, reward_low_FN_rate) from medic's own NAB scorer, beside a rolling
    /// z-score baseline scored by the same code.
    Nab(NabArgs),
    /// Failure predictor on a fresh simulated fleet history (a seed not used in training):
    /// event-level precision/recall/F1 at the card's threshold, window-level ROC/PR-AUC, lead
    /// time (p10/p50/p90), false alarms per agent-day, look-alike false alarm rate, sudden
    /// failures apart. Exit 2 when the model file is missing.
    Predict(PredictArgs),
}

/// Arguments of `medic eval odds`.
#[derive(clap::Args)]
pub struct OddsArgs {
    /// Folder of ODDS CSVs (`f0..fN,label`).
    #[arg(default_value = "../shared/data/odds")]
    pub dir: std::path::PathBuf,
    /// Trees per forest.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Subsample size ψ per tree.
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// Seeds 0..N; AUC is averaged over them.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// One JSON object per dataset, then a summary line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `medic eval smd`.
#[derive(clap::Args)]
pub struct SmdArgs {
    /// SMD folder (train/, test/, test_label/, interpretation_label/).
    #[arg(default_value = "../shared/data/smd")]
    pub dir: std::path::PathBuf,
    /// Comma-separated machine names.
    #[arg(
        long,
        default_value = "machine-1-2,machine-2-1,machine-3-2",
        value_delimiter = ','
    )]
    pub machines: Vec<String>,
    /// Rows of context per feature vector (1 = the raw row).
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Trees per forest.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Subsample size ψ.
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// RNG seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The threshold is this quantile of the TRAIN scores.
    #[arg(long, default_value_t = 0.99)]
    pub train_quantile: f64,
    /// One JSON object per machine, then a summary line.
    #[arg(long)]
    pub json: bool,
}

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

/// Arguments of `medic eval predict`.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// The ONNX model (its card is `<model>.card.json`, or inside the file).
    #[arg(long, default_value = "models/failure_lstm.onnx")]
    pub model: std::path::PathBuf,
    /// Seed of the simulated history; must differ from the training seed in the card.
    #[arg(long, alias = "seed", default_value_t = 1001)]
    pub sim_seed: u64,
    /// Simulated agents.
    #[arg(long, default_value_t = 40)]
    pub agents: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 3.0)]
    pub days: f64,
    /// Score every N-th minute (1 = every minute, as the daemon does).
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Alarm threshold [default: the card's].
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Planned batch size of the tract plan.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// One JSON object per fault kind, then the summary line.
    #[arg(long)]
    pub json: bool,
}

/// Runs an evaluation.
pub fn run(command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Odds(args) => run_odds(args),
        EvalCommand::Smd(args) => run_smd(args),
        EvalCommand::Diagnose(args) => super::diagnose::run_eval(args),
        EvalCommand::Nab(args) => run_nab(args),
        EvalCommand::Predict(args) => run_predict(args),
    }
}

fn run_predict(args: PredictArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use medic_detect::predict::eval::{EvalConfig, evaluate};
    use medic_detect::predict::{Predictor, PredictorOptions};

    if !args.model.exists() {
        eprintln!(
            "medic: no model at {} (train one with `medic train lstm --from sim --out models/`, \
             or pass --model FILE)",
            args.model.display()
        );
        return Ok(ExitCode::from(2));
    }
    let mut predictor = Predictor::load_with(&args.model, PredictorOptions { batch: args.batch })
        .with_context(|| format!("loading {}", args.model.display()))?;
    let training = &predictor.card().training;
    anyhow::ensure!(
        !(training.source.contains("medic-sim") && training.seed == args.sim_seed),
        "seed {} was used to train this model; evaluate on another --sim-seed",
        args.sim_seed
    );
    let history = medic_sim::generate(&medic_sim::HistoryConfig::new(
        args.sim_seed,
        args.agents,
        args.days,
    ));
    let series = medic_detect::predict::AgentSeries::from_sim(&history);
    let cfg = EvalConfig {
        stride: args.stride,
        threshold: args.threshold,
        ..EvalConfig::default()
    };
    let r = evaluate(&mut predictor, &series, &cfg)?;
    if args.json {
        for (kind, k) in &r.per_kind {
            println!(
                "{}",
                serde_json::json!({
                    "kind": kind, "failures": k.failures, "caught": k.caught,
                    "lead_time_median_s": k.lead_time_s.p50,
                    "lead_time_p10_s": k.lead_time_s.p10, "lead_time_p90_s": k.lead_time_s.p90,
                })
            );
        }
        let mut v = serde_json::to_value(&r)?;
        v["summary"] = serde_json::json!(true);
        v["model"] = serde_json::json!(args.model);
        v["sim_seed"] = serde_json::json!(args.sim_seed);
        v["lead_time_median_s"] = serde_json::json!(r.lead_time_s.p50);
        println!("{v}");
    } else {
        println!(
            "model {} on sim seed {}: {} agents × {} days ({:.1} agent-days), {} windows scored \
             (stride {}), threshold {:.3}",
            args.model.display(),
            args.sim_seed,
            args.agents,
            args.days,
            r.agent_days,
            r.windows_scored,
            args.stride,
            r.threshold
        );
        print_prediction_figures(&r);
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable figures of a prediction evaluation (events, windows, lead time, false
/// alarms and their context, sudden failures, per fault kind); also printed by `medic train`.
pub fn print_prediction_figures(r: &medic_detect::predict::eval::PredictEval) {
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{:.1}", s / 60.0));
    println!(
        "events:  precision {:.3}  recall {:.3}  F1 {:.3}   ({} of {} predictable failures \
         caught; {} alarm episodes, {} false)",
        r.precision,
        r.recall,
        r.f1,
        r.caught,
        r.predictable_failures,
        r.alarm_episodes,
        r.false_alarms
    );
    println!(
        "windows: precision {:.3}  recall {:.3}  F1 {:.3}  ROC-AUC {}  PR-AUC {}   ({} pos, {} \
         neg, {} excluded)",
        r.window.precision,
        r.window.recall,
        r.window.f1,
        r.roc_auc.map_or("-".into(), |v| format!("{v:.4}")),
        r.pr_auc.map_or("-".into(), |v| format!("{v:.4}")),
        r.windows_positive,
        r.windows_negative,
        r.windows_excluded
    );
    println!(
        "lead time (min): p10 {}  median {}  p90 {}",
        secs(r.lead_time_s.p10),
        secs(r.lead_time_s.p50),
        secs(r.lead_time_s.p90)
    );
    println!(
        "false alarms per agent-day {:.3}; look-alike episodes alarmed {} of {} ({:.3})",
        r.false_alarms_per_agent_day,
        r.lookalikes_alarmed,
        r.lookalikes,
        r.lookalike_false_alarm_rate
    );
    let context: Vec<String> = r
        .false_alarm_context
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("false alarms by context: {}", context.join(", "));
    println!(
        "sudden failures (no precursor; not counted as misses): {} ({} had an alarm before)",
        r.sudden_failures, r.sudden_alarmed
    );
    println!(
        "{:<20} {:>8} {:>7} {:>10} {:>10} {:>10}",
        "kind", "failures", "caught", "lead p10", "lead p50", "lead p90"
    );
    for (kind, k) in &r.per_kind {
        println!(
            "{:<20} {:>8} {:>7} {:>10} {:>10} {:>10}",
            kind,
            k.failures,
            k.caught,
            secs(k.lead_time_s.p10),
            secs(k.lead_time_s.p50),
            secs(k.lead_time_s.p90)
        );
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

fn run_smd(args: SmdArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use medic_detect::eval::smd;

    let cfg = smd::SmdConfig {
        window: args.window,
        n_trees: args.trees,
        max_samples: args.samples,
        seed: args.seed,
        train_quantile: args.train_quantile,
    };
    if !args.json {
        println!(
            "isolation forest per machine: {} trees, ψ = {}, window {}, seed {}; threshold = \
             {} quantile of TRAIN scores",
            args.trees, args.samples, args.window, args.seed, args.train_quantile
        );
        println!(
            "{:<12} | {:^23} | {:^23} | {:>7} {:>7} | {:>6} | {:^19} | {:^13}",
            "",
            "at train threshold",
            "at train thr., PA",
            "best F1",
            "best PA",
            "AUC",
            "HR detected (paper)",
            "HR all rows"
        );
        println!(
            "{:<12} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} | {:>6} | {:>5} {:>6} {:>6} | {:>6} {:>6}",
            "machine",
            "P",
            "R",
            "F1",
            "P",
            "R",
            "F1",
            "",
            "",
            "",
            "rows",
            "@100",
            "@150",
            "@100",
            "@150"
        );
    }
    let mut results = Vec::new();
    for m in &args.machines {
        let r = smd::evaluate_machine(&args.dir, m, cfg)
            .with_context(|| format!("SMD {m} in {}", args.dir.display()))?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{:<12} | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} | {:>6.4} | {:>5} {:>6.3} {:>6.3} | {:>6.3} {:>6.3}",
                r.machine,
                r.at_threshold.precision,
                r.at_threshold.recall,
                r.at_threshold.f1,
                r.at_threshold_pa.precision,
                r.at_threshold_pa.recall,
                r.at_threshold_pa.f1,
                r.best.f1,
                r.best_pa.f1,
                r.auc,
                r.detected_rows,
                r.hitrate_detected_100,
                r.hitrate_detected_150,
                r.hitrate_all_100,
                r.hitrate_all_150
            );
        }
        results.push(r);
    }
    let s = smd::summarize(&results);
    if args.json {
        let mut v = serde_json::to_value(&s)?;
        v["summary"] = serde_json::json!(true);
        v["f1"] = serde_json::json!(s.at_threshold.f1);
        v["f1_point_adjusted"] = serde_json::json!(s.at_threshold_pa.f1);
        println!("{v}");
    } else {
        println!(
            "{:<12} | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} | {:>6} | {:>5} {:>6.3} {:>6.3} | {:>6.3} {:>6.3}",
            "overall",
            s.at_threshold.precision,
            s.at_threshold.recall,
            s.at_threshold.f1,
            s.at_threshold_pa.precision,
            s.at_threshold_pa.recall,
            s.at_threshold_pa.f1,
            s.best_f1_mean,
            s.best_f1_pa_mean,
            "",
            s.detected_rows,
            s.hitrate_detected_100,
            s.hitrate_detected_150,
            s.hitrate_all_100,
            s.hitrate_all_150
        );
        println!(
            "\nattribution rankings, pooled over machines ({} detected of {} interpreted rows):",
            s.detected_rows, s.interpreted_rows
        );
        println!(
            "{:<22} | {:>13} {:>13} | {:>9} {:>9}",
            "ranking", "detected @100", "detected @150", "all @100", "all @150"
        );
        for h in &s.rankings {
            println!(
                "{:<22} | {:>13.3} {:>13.3} | {:>9.3} {:>9.3}",
                h.ranking, h.detected_100, h.detected_150, h.all_100, h.all_150
            );
        }
        println!(
            "\nPA = point-adjusted (a labelled segment counts as detected when any of its rows is); \
             best F1 is an oracle over test thresholds (overall: mean over machines); overall at \
             threshold sums counts over machines.\nHR detected (headline, the paper's definition): \
             {}. HR all rows: the same over every interpreted row, detected or not. Ranking: {}.",
            s.hitrate_definition,
            smd::RANKINGS[0]
        );
    }
    Ok(ExitCode::SUCCESS)
}
