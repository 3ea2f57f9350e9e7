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
/// stderr, one per line as `file:line:col: key.path: message`, and exit 2 otherwise. The
/// policies directory's `patterns.yaml`, when there is one, is checked too (`medic run`
/// refuses to start with a bad one).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pattern_errors = pattern_errors(&args.policies);
    match medic_policy::load(&args.fleet, &args.policies) {
        Ok(_) if !pattern_errors.is_empty() => {
            for e in &pattern_errors {
                eprintln!("{e}");
            }
            let n = pattern_errors.len();
            eprintln!("invalid: {n} error{}", if n == 1 { "" } else { "s" });
            Ok(ExitCode::from(2))
        }
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
            for e in &pattern_errors {
                eprintln!("{e}");
            }
            let n = errors.len() + pattern_errors.len();
            eprintln!("invalid: {n} error{}", if n == 1 { "" } else { "s" });
            Ok(ExitCode::from(2))
        }
    }
}

/// The problems of `policies/patterns.yaml`, one line each (none when it is absent: the
/// daemon then uses the shipped library).
fn pattern_errors(policies: &std::path::Path) -> Vec<String> {
    let path = policies.join(medic_driver::daemon::PATTERNS_FILE);
    if !path.exists() {
        return Vec::new();
    }
    match medic_detect::diagnosis::PatternLibrary::load(&path) {
        Ok(_) => Vec::new(),
        Err(medic_detect::diagnosis::Error::InvalidPatterns { issues }) => {
            issues.iter().map(ToString::to_string).collect()
        }
        Err(e) => vec![format!("{:#}", anyhow::Error::new(e))],
    }
}
