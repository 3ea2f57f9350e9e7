//! `medic diagnose` and `medic eval diagnose`: argument handling and printing only; the
//! analyzer, planner and evaluation live in `medic_detect::diagnosis`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use medic_core::{DiagnosisCategory, Risk};
use medic_detect::diagnosis::{
    PatternLibrary, Signals,
    analyze::json_strings,
    context, diagnose, eval, fixes,
    planner::{self, Approval, AutoPolicy},
};

/// Arguments of `medic diagnose`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "file", "target"])))]
pub struct Args {
    /// The error text to explain.
    #[arg(long)]
    pub text: Option<String>,
    /// A log file to explain (`-` for stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A target whose recent journal entries and incidents (from `--data-dir`) to explain.
    #[arg(long, requires = "data_dir")]
    pub target: Option<String>,
    /// medic's data directory (holding medic.db), for `--target`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With `--target`: how many of its latest journal entries and incidents to read.
    #[arg(long, default_value_t = 50)]
    pub last: usize,
    /// The pattern library.
    #[arg(long, default_value = "policies/patterns.yaml")]
    pub patterns: PathBuf,
    /// The signal that killed the process, if any (e.g. 9).
    #[arg(long)]
    pub exit_signal: Option<i32>,
    /// Resident memory at exit as a fraction of the memory limit (e.g. 0.97).
    #[arg(long)]
    pub rss_ratio: Option<f64>,
    /// Data paths whose disk usage counts as evidence (checked with statvfs).
    #[arg(long = "data-path")]
    pub data_paths: Vec<PathBuf>,
    /// Known fixes: the target's current memory limit in bytes.
    #[arg(long)]
    pub memory_limit: Option<u64>,
    /// Known fixes: sustained memory usage as a fraction of the limit (e.g. 0.95).
    #[arg(long)]
    pub memory_usage: Option<f64>,
    /// Known fixes: the memory limit is never raised above this (bytes).
    #[arg(long)]
    pub max_memory: Option<u64>,
    /// Known fixes: the current timeout in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Known fixes: the timeout is never raised above this (milliseconds).
    #[arg(long)]
    pub max_timeout_ms: Option<u64>,
    /// Known fixes: the target's GC/flush/cache-clear endpoint.
    #[arg(long)]
    pub gc_endpoint: Option<String>,
    /// Known fixes: the disk cleanup command, one argv element per use.
    #[arg(long = "cleanup-arg")]
    pub cleanup_argv: Vec<String>,
    /// Options below this confidence wait for approval.
    #[arg(long, default_value_t = planner::DEFAULT_CONFIDENCE_THRESHOLD)]
    pub confidence_threshold: f64,
    /// Options above this risk wait for approval: low, medium or high.
    #[arg(long, default_value = "low", value_parser = parse_risk)]
    pub auto_risk: Risk,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_risk(s: &str) -> Result<Risk, String> {
    match s {
        "low" => Ok(Risk::Low),
        "medium" => Ok(Risk::Medium),
        "high" => Ok(Risk::High),
        _ => Err(format!("unknown risk {s:?}; expected low, medium or high")),
    }
}

/// Runs `medic diagnose`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let library = PatternLibrary::load(&args.patterns)?;
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, None) if args.target.is_some() => target_text(&args)?,
        (None, Some(path)) if path.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading stdin")?
        }
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        (None, None) => anyhow::bail!("give --text, --file or --target"),
    };
    let signals = Signals {
        exit_signal: args.exit_signal,
        rss_ratio: args.rss_ratio,
        disk_used: args
            .data_paths
            .iter()
            .filter_map(|p| {
                let usage = context::disk_usage(p);
                usage.used_ratio.map(|r| (usage.path, r))
            })
            .collect(),
    };
    let diagnosis = diagnose(&library, &text, &signals);
    let inputs = fixes::FixInputs {
        memory_limit_bytes: args.memory_limit,
        memory_usage_ratio: args.memory_usage,
        timeout: args.timeout_ms.map(std::time::Duration::from_millis),
        gc_endpoint: args.gc_endpoint.clone(),
        cleanup_command: (!args.cleanup_argv.is_empty()).then(|| args.cleanup_argv.clone()),
        config_backup: None,
    };
    let bounds = fixes::FixBounds {
        max_memory_bytes: args.max_memory,
        max_timeout: args.max_timeout_ms.map(std::time::Duration::from_millis),
    };
    let proposals = fixes::propose(&diagnosis, &inputs, &bounds);
    let policy = AutoPolicy {
        confidence_threshold: args.confidence_threshold,
        auto_approve_risk: args.auto_risk,
    };
    let plan = planner::plan(&diagnosis, None, &proposals.fixes, &policy);

    if args.json {
        let out = serde_json::json!({
            "category": diagnosis.category().as_str(),
            "confidence": diagnosis.confidence(),
            "diagnosis": diagnosis,
            "fixes": proposals,
            "plan": plan,
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }

    println!(
        "diagnosis: {} (confidence {:.2}, {} lines analyzed)",
        diagnosis.category(),
        diagnosis.confidence(),
        diagnosis.n_lines
    );
    if diagnosis.causes.is_empty() {
        println!("no pattern matched: cause unknown");
    }
    for (i, cause) in diagnosis.causes.iter().enumerate() {
        println!(
            "\n{}. {} {:.2}  [{}]",
            i + 1,
            cause.category,
            cause.confidence,
            cause.patterns.join(", ")
        );
        for d in &cause.descriptions {
            println!("   {d}");
        }
        for e in &cause.evidence {
            if e.line == 0 {
                println!("   signal: {}", e.text);
            } else {
                println!("   line {}: {}", e.line, e.text);
            }
        }
        if cause.n_evidence > cause.evidence.len() {
            println!(
                "   … {} more evidence lines",
                cause.n_evidence - cause.evidence.len()
            );
        }
    }
    for s in &proposals.skipped {
        println!(
            "\nknown fix {} not applicable: {}",
            s.kind.as_str(),
            s.reason
        );
    }
    println!("\noptions:");
    for (i, o) in plan.options.iter().enumerate() {
        let approval = match &o.approval {
            Approval::Auto => "auto".to_owned(),
            Approval::NeedsApproval(why) => format!("needs approval: {why}"),
        };
        println!(
            "  {}. {:?} {} confidence {:.2} risk {} ({approval})\n     {}",
            i + 1,
            o.kind,
            o.option.strategy,
            o.option.confidence,
            o.option.risk,
            o.option.reason
        );
        for step in &o.steps {
            println!("       {step}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The text of a target's latest journal entries and incidents in the store.
fn target_text(args: &Args) -> anyhow::Result<String> {
    let (Some(target), Some(dir)) = (&args.target, &args.data_dir) else {
        anyhow::bail!("--target needs --data-dir");
    };
    // Opening would create an empty database; a wrong path should be an error instead.
    let db = dir.join(medic_store::DB_FILE);
    if !db.is_file() {
        anyhow::bail!("no medic database at {}", db.display());
    }
    let store = medic_store::Store::open_data_dir(dir)?;
    let max_lines = 10_000;
    let mut lines = Vec::new();
    let journal = store.journal_for_target(target, 0)?;
    for record in journal.iter().rev().take(args.last).rev() {
        json_strings(&record.entry.payload, max_lines, &mut lines);
    }
    let incidents = store.incidents(
        Some(target),
        medic_core::Timestamp::ZERO..medic_core::Timestamp::from_millis(u64::MAX),
    )?;
    for incident in incidents.iter().rev().take(args.last).rev() {
        json_strings(&incident.signature, max_lines, &mut lines);
        json_strings(&incident.summary, max_lines, &mut lines);
    }
    if journal.is_empty() && incidents.is_empty() {
        anyhow::bail!(
            "no journal entries or incidents for target {target:?} in {}",
            dir.display()
        );
    }
    Ok(lines.join("\n"))
}

/// Runs `medic eval diagnose`.
pub fn run_eval(args: super::eval::DiagnoseArgs) -> anyhow::Result<ExitCode> {
    let library = PatternLibrary::load(&args.patterns)?;
    let samples = eval::load_corpus(&args.file)?;
    let report = eval::evaluate(&library, &samples);
    let cats = DiagnosisCategory::ALL;
    if args.json {
        for s in &report.per_category {
            let line = serde_json::json!({
                "category": s.category.as_str(),
                "support": s.support,
                "predicted": s.predicted,
                "correct": s.correct,
                "precision": s.precision,
                "recall": s.recall,
            });
            println!("{line}");
        }
        if args.misses {
            for m in &report.misses {
                println!("{}", serde_json::json!({ "miss": m }));
            }
        }
        let confusion: serde_json::Map<String, serde_json::Value> = cats
            .iter()
            .zip(&report.confusion)
            .map(|(c, row)| {
                let row: serde_json::Map<String, serde_json::Value> = cats
                    .iter()
                    .zip(row)
                    .filter(|(_, n)| **n > 0)
                    .map(|(p, n)| (p.as_str().to_owned(), (*n).into()))
                    .collect();
                (c.as_str().to_owned(), row.into())
            })
            .collect();
        let summary = serde_json::json!({
            "summary": true,
            "file": args.file.display().to_string(),
            "n": report.n,
            "correct": report.correct,
            "accuracy": report.accuracy,
            "confident_wrong": report.confident_wrong,
            "patterns": library.patterns().len(),
            "confusion": confusion,
        });
        println!("{summary}");
        return Ok(ExitCode::SUCCESS);
    }

    println!(
        "{}: {} samples, {} patterns\naccuracy {:.3} ({}/{}), confident wrong (≥0.85): {}\n",
        args.file.display(),
        report.n,
        library.patterns().len(),
        report.accuracy,
        report.correct,
        report.n,
        report.confident_wrong
    );
    println!(
        "{:<20} {:>7} {:>9} {:>9} {:>7}",
        "category", "support", "precision", "recall", "f1"
    );
    for s in &report.per_category {
        let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let f1 = match (s.precision, s.recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            _ => None,
        };
        println!(
            "{:<20} {:>7} {:>9} {:>9} {:>7}",
            s.category.as_str(),
            s.support,
            fmt(s.precision),
            fmt(s.recall),
            fmt(f1)
        );
    }
    // Confusion matrix with short column heads (first 5 letters).
    println!("\nconfusion (rows: label, columns: predicted)");
    print!("{:<20}", "");
    for c in cats {
        print!(" {:>5}", &c.as_str()[..5.min(c.as_str().len())]);
    }
    println!();
    for (c, row) in cats.iter().zip(&report.confusion) {
        print!("{:<20}", c.as_str());
        for n in row {
            print!(" {n:>5}");
        }
        println!();
    }
    if args.misses {
        println!("\nmisses:");
        for m in &report.misses {
            println!(
                "  expected {} got {} ({:.2}): {}",
                m.expected,
                m.predicted,
                m.confidence,
                m.text.replace('\n', "⏎")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(target: &str, dir: &std::path::Path) -> Args {
        Args {
            text: None,
            file: None,
            target: Some(target.to_owned()),
            data_dir: Some(dir.to_owned()),
            last: 50,
            patterns: PathBuf::from("policies/patterns.yaml"),
            exit_signal: None,
            rss_ratio: None,
            data_paths: Vec::new(),
            memory_limit: None,
            memory_usage: None,
            max_memory: None,
            timeout_ms: None,
            max_timeout_ms: None,
            gc_endpoint: None,
            cleanup_argv: Vec::new(),
            confidence_threshold: planner::DEFAULT_CONFIDENCE_THRESHOLD,
            auto_risk: Risk::Low,
            json: false,
        }
    }

    #[test]
    fn target_text_reads_the_targets_journal_from_a_real_store() {
        let dir = std::env::temp_dir().join(format!("medic-diagnose-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = medic_store::Store::open_data_dir(&dir).unwrap();
        for (target, stderr) in [
            (
                "api-1",
                "2024-01-09 08:00:01 UTC [3312] FATAL:  sorry, too many clients already",
            ),
            ("other", "Segmentation fault (core dumped)"),
        ] {
            store
                .append_journal(&medic_store::JournalEntry {
                    at: medic_core::Timestamp::from_secs(10),
                    target: medic_core::TargetId::new(target),
                    kind: "outcome".to_owned(),
                    idempotency_key: None,
                    payload: serde_json::json!({"outcome": "failure", "stderr": stderr}),
                })
                .unwrap();
        }
        drop(store);
        let text = target_text(&args("api-1", &dir)).unwrap();
        assert!(text.contains("too many clients"), "{text}");
        assert!(!text.contains("Segmentation"), "{text}");
        let err = target_text(&args("nobody", &dir)).unwrap_err();
        assert!(err.to_string().contains("no journal entries"), "{err}");
        let err = target_text(&args("api-1", &dir.join("missing"))).unwrap_err();
        assert!(err.to_string().contains("no medic database"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
