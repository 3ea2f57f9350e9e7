//! The `medic-demo-agent` binary; everything is in the library (see its docs). `medic
//! demo-agent` runs the same code from the medic binary.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    medic_demo_agent::run(medic_demo_agent::Args::parse()).await
}
