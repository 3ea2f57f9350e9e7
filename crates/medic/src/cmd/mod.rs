//! One module per subcommand.

pub mod check;
pub mod demo;
pub mod diagnose;
pub mod eval;
pub mod heal;
pub mod run;
pub mod schema;
pub mod simulate;
pub mod train;
pub mod validate;

/// `medic demo-agent`: the demo agent, run from the medic binary.
pub fn demo_agent(args: medic_demo_agent::Args) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(medic_demo_agent::run(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}
