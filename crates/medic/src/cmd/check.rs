//! `medic check`.

use std::process::ExitCode;

/// Arguments of `medic check`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `medic check`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`medic check` is not built yet")
}
