//! `medic validate`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `medic validate`.
#[derive(clap::Args)]
pub struct Args {
    /// The fleet file.
    #[arg(long, default_value = "policies/fleet.example.yaml")]
    pub fleet: PathBuf,
    /// The directory of tier policy files (every *.yaml except patterns.yaml and fleet*.yaml).
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
}

/// Runs `medic validate`: a one-line summary on stdout and exit 0 when valid; every error on
/// stderr, one per line as `file:line:col: key.path: message`, and exit 2 otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match medic_policy::load(&args.fleet, &args.policies) {
        Ok(fleet) => {
            let per_tier: Vec<String> = fleet
                .tiers
                .keys()
                .map(|tier| {
                    let n = fleet.targets.iter().filter(|t| &t.tier == tier).count();
                    format!("{tier}: {n}")
                })
                .collect();
            println!(
                "ok: {} targets in {} tiers ({})",
                fleet.targets.len(),
                fleet.tiers.len(),
                per_tier.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.errors {
                eprintln!("{e}");
            }
            let n = errors.len();
            eprintln!("invalid: {n} error{}", if n == 1 { "" } else { "s" });
            Ok(ExitCode::from(2))
        }
    }
}
