//! The `medic` command line: each subcommand lives in `cmd/<name>.rs` and holds only argument
//! handling and printing; the logic is in the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// ML-assisted self-healing for fleets of agents and services.
#[derive(Parser)]
#[command(name = "medic", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate fleet.yaml and the tier policies; print every error with file:line:col.
    Validate(cmd::validate::Args),
    /// Print the JSON Schema of fleet.yaml or of the policy files.
    Schema(cmd::schema::Args),
    /// Run every probe of the fleet once and print each target's state.
    Check(cmd::check::Args),
    /// Explain an error text or a target's recent failure: ranked causes and options.
    Diagnose(cmd::diagnose::Args),
    /// Evaluate medic's detectors on benchmark data.
    #[command(subcommand)]
    Eval(cmd::eval::EvalCommand),
    /// Run the healing engine over a simulated fleet and days; compare two policy sets.
    Simulate(cmd::simulate::Args),
    /// Run the daemon: probe, detect, decide, heal, journal; API and dashboard on loopback.
    Run(cmd::run::Args),
    /// One preemptive healing run: forecast the whole fleet, act on those about to fail.
    Heal(cmd::heal::Args),
    /// Watch medic heal real processes: six demo agents, scripted faults, a results table.
    Demo(cmd::demo::Args),
    /// Train medic's models offline from a history (simulated, CSV, ...).
    #[command(subcommand)]
    Train(cmd::train::TrainCommand),
    /// Run one demo agent (a small HTTP service with injectable faults; used by `medic demo`).
    DemoAgent(medic_demo_agent::Args),
}

fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Diagnose(args) => cmd::diagnose::run(args),
        Command::Eval(command) => cmd::eval::run(command),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Heal(args) => cmd::heal::run(args),
        Command::Train(command) => cmd::train::run(command),
        Command::DemoAgent(args) => cmd::demo_agent(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("medic: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Restores the default SIGPIPE action, so that `medic … | head` ends quietly as other Unix
/// tools do, instead of panicking inside `println!` (Rust's runtime ignores SIGPIPE).
#[allow(unsafe_code)]
fn restore_default_sigpipe() {
    // SAFETY: called once at start-up before any thread is spawned; SIG_DFL is a valid action
    // for SIGPIPE and no Rust state depends on the previous one.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
