//! Command-line interface.

mod clean;
mod crds;
mod inject;
mod run;
mod scenarios;
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
    /// The fault scenario library (scenarios/*.yaml).
    Scenarios {
        #[command(subcommand)]
        command: scenarios::Command,
    },
    /// Print the Chaos Mesh CRDs (PodChaos, NetworkChaos, StressChaos) hadrill installs.
    Crds(crds::Args),
    /// Inject one scenario into a cluster and recover it (or hold it until Ctrl-C).
    Inject(inject::Args),
    /// Remove what earlier runs left behind: on this host with no flags (iptables chains and
    /// ledgers of processes that are gone); with --all-runs or --run also on the cluster.
    Clean(clean::Args),
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Start the embedded cluster in the foreground until Ctrl-C.
    Up(sim_up::Args),
}

impl Cli {
    /// Whether the command runs the feature suite (whose runner sets up `tracing` itself).
    pub fn runs_features(&self) -> bool {
        matches!(self.command, Command::Run(_))
    }
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
        Command::Scenarios { command } => scenarios::run(command),
        Command::Crds(args) => crds::run(args),
        Command::Inject(args) => inject::run(args).await,
        Command::Clean(args) => clean::run(args).await,
    }
}
