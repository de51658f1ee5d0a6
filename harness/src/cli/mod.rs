//! Command-line interface.

mod run;
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
    /// Run the feature suite (the main job); reports go to reports/.
    Run(run::RunArgs),
    /// Check that every step of the features resolves, without a cluster.
    Check(run::CheckArgs),
    /// List the step library with examples.
    Steps,
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
        Command::Run(args) => run::run(args).await,
        Command::Check(args) => run::check(args),
        Command::Steps => {
            run::steps();
            Ok(())
        }
        Command::Sim { command: SimCommand::Up(args) } => sim_up::run(args).await,
    }
}
