//! `medic diagnose`.

use std::process::ExitCode;

/// Arguments of `medic diagnose`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `medic diagnose`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`medic diagnose` is not built yet")
}
