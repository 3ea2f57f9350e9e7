//! `medic schema`.

use std::io::Write;
use std::process::ExitCode;

/// Which file's schema to print.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Which {
    /// fleet.yaml.
    Fleet,
    /// A tier policy file (policies/*.yaml).
    Policies,
}

/// Arguments of `medic schema`.
#[derive(clap::Args)]
pub struct Args {
    /// The file whose JSON Schema (draft 2020-12) to print.
    #[arg(value_enum)]
    pub which: Which,
}

/// Runs `medic schema`: prints the JSON Schema to stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schema = match args.which {
        Which::Fleet => medic_policy::fleet_schema(),
        Which::Policies => medic_policy::policies_schema(),
    };
    let text = serde_json::to_string_pretty(&schema)?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        // `medic schema fleet | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
