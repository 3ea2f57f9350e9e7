//! `medic schema`.

use std::process::ExitCode;

/// Arguments of `medic schema`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `medic schema`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`medic schema` is not built yet")
}
