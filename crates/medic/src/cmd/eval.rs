//! `medic eval …`: evaluation on benchmark data. Each subcommand takes `--json`, then prints
//! one JSON object per line, the last being the summary with the headline figures.

use std::process::ExitCode;

/// The evaluations.
#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Isolation forest on ODDS-style CSVs (columns f0..fN,label): AUC, fit and score times.
    Odds(OddsArgs),
}

/// Arguments of `medic eval odds`.
#[derive(clap::Args)]
pub struct OddsArgs {}

/// Runs an evaluation.
pub fn run(command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Odds(_) => anyhow::bail!("`medic eval odds` is not built yet"),
    }
}
