//! `medic validate`.

use std::process::ExitCode;

/// Arguments of `medic validate`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `medic validate`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`medic validate` is not built yet")
}
