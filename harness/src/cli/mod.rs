//! Command-line interface.

mod sim_up;

use clap::{Parser, Subcommand};

/// hadrill: chaos + BDD test harness for Kubernetes HA controllers.
#[derive(Debug, Parser)]
#[command(name = "hadrill", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The embedded cluster.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Start the embedded cluster in the foreground until Ctrl-C.
    Up(sim_up::Args),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sim { command: SimCommand::Up(args) } => sim_up::run(args).await,
    }
}
