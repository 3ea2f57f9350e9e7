//! `medic heal --preemptive`: one preemptive healing run (for cron, or before a deploy).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use medic_driver::daemon::{self, DaemonOptions, HealOptions};

/// Arguments of `medic heal`.
#[derive(clap::Args)]
pub struct Args {
    /// Act on targets forecast to fail before they do (the only mode so far; required so
    /// that the command says what it does).
    #[arg(long, required = true)]
    pub preemptive: bool,
    /// The fleet file.
    #[arg(long, default_value = "policies/fleet.example.yaml")]
    pub fleet: PathBuf,
    /// The directory of tier policies.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// The store shared with `medic run` (history, journal).
    #[arg(long, default_value = "medic-data")]
    pub data_dir: PathBuf,
    /// Print the plan only: nothing is executed or written (the store is only read, the
    /// data directory not created).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Scrape rounds before deciding (1 s apart).
    #[arg(long, default_value_t = 8)]
    pub rounds: usize,
    /// Directory of the learned models (`failure_lstm.onnx` with its card,
    /// `anomaly_iforest.json`); without them only the RSS trend forecast is used.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
}

/// Runs one pass and prints the report. Exit codes: 0 when no target is forecast to fail or
/// every one forecast to fail was healed (action verified) by this run, and always for
/// `--dry-run`; 1 when a target forecast to fail was not healed: its action failed or could
/// not be verified, or the engine left it alone (cooldown after a recent action, e.g. the
/// daemon's, backoff, hold, budget, maintenance, approval; the report's `reason` says which);
/// 2 on invalid configuration.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = DaemonOptions::new(args.fleet, args.policies, args.data_dir);
    options.dry_run = args.dry_run;
    options.models = Some(args.models);
    let fleet = match daemon::load_fleet(&options) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("medic: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let heal = HealOptions {
        rounds: args.rounds,
        interval: Duration::from_secs(1),
        ..HealOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let report = runtime
        .block_on(daemon::heal_once(&options, &fleet, heal))
        .map_err(|e| anyhow::anyhow!(medic_driver::error_text(&e)))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.lines.is_empty() {
        println!(
            "{} targets: none forecast to fail; nothing to do",
            report.targets
        );
    } else {
        println!(
            "{:<16} {:>6} {:>7} {:<28} {:<10} outcome",
            "target", "p", "memory", "factors", "action"
        );
        for l in &report.lines {
            let factors: Vec<String> = l
                .factors
                .iter()
                .map(|(n, v)| format!("{n} {v:.2}"))
                .collect();
            println!(
                "{:<16} {:>6.2} {:>7} {:<28} {:<10} {}",
                l.target,
                l.probability,
                l.memory_ratio
                    .map_or_else(|| "-".into(), |m| format!("{:.0}%", m * 100.0)),
                factors.join(", "),
                l.action.as_deref().unwrap_or("-"),
                l.outcome
            );
            if let Some(reason) = &l.reason {
                println!("{:<16} why: {reason}", "");
            }
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
