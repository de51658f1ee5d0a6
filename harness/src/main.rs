//! `hadrill`: chaos + BDD test harness for Kubernetes high-availability controllers.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sim::install_crypto_provider();
    let args = cli::Cli::parse();
    // The feature runner installs its own subscriber (figures into the scenario logs, the rest to
    // stderr); a process can have only one.
    if !args.runs_features() {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    match cli::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A run a signal stopped ends with the signal's status (130, 143).
            std::process::ExitCode::from(hadrill::signals::exit_code(&e))
        }
    }
}
