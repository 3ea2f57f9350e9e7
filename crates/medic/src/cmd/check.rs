//! `medic check`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use medic_collect::check::{CheckOptions, TargetCheck, check_fleet};
use medic_collect::probe::Prober;
use medic_core::{HealthState, SystemClock};

/// Arguments of `medic check`.
#[derive(clap::Args)]
pub struct Args {
    /// The fleet file.
    #[arg(long, default_value = "policies/fleet.example.yaml")]
    pub fleet: PathBuf,
    /// The directory of tier policy files.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// Print JSON: `[{"target","tier","state","probes":[{"level","kind","ok","latency_ms","error"}]}]`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `medic check`: every probe once (one failed run fails its level, whatever the
/// threshold; see `medic_collect::check`). Exit 0 when every target is healthy, 1 when any is
/// not, 2 on configuration errors (printed one per line).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let fleet = match medic_policy::load(&args.fleet, &args.policies) {
        Ok(fleet) => fleet,
        Err(errors) => {
            for e in &errors.errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let report = runtime.block_on(async {
        let prober = Prober::with_defaults().context("could not build the http client")?;
        anyhow::Ok(
            check_fleet(
                &fleet,
                &prober,
                Arc::new(SystemClock),
                CheckOptions::DEFAULT,
            )
            .await,
        )
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    let all_healthy = report.iter().all(|t| t.state == HealthState::Healthy);
    Ok(if all_healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(report: &[TargetCheck]) {
    let w_target = report
        .iter()
        .map(|t| t.target.as_str().len())
        .chain(["TARGET".len()])
        .max()
        .unwrap_or(6);
    let w_tier = report
        .iter()
        .map(|t| t.tier.len())
        .chain(["TIER".len()])
        .max()
        .unwrap_or(4);
    println!(
        "{:w_target$}  {:w_tier$}  {:9}  FAILING",
        "TARGET", "TIER", "STATE"
    );
    for t in report {
        let failing: Vec<String> = t
            .probes
            .iter()
            .filter(|p| !p.ok)
            .map(|p| {
                format!(
                    "{}/{}: {}",
                    p.level,
                    p.kind,
                    p.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        let first = failing.first().map_or("-", String::as_str);
        println!(
            "{:w_target$}  {:w_tier$}  {:9}  {first}",
            t.target.as_str(),
            t.tier,
            t.state.as_str()
        );
        for more in failing.iter().skip(1) {
            println!("{:w_target$}  {:w_tier$}  {:9}  {more}", "", "", "");
        }
    }
}
