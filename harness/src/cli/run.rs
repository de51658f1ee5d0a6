//! `hadrill run`, `hadrill check`, `hadrill steps`.

use std::path::PathBuf;

use hadrill::report::{self, RunOptions, check};
use hadrill::steps::catalog::CATALOG;

/// Arguments of `hadrill run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Feature files or directories (default: features/).
    features: Vec<PathBuf>,
    /// Tag expression selecting scenarios, e.g. `@smoke` or `@nightly and not @serial`.
    #[arg(long)]
    tags: Option<String>,
}

/// Arguments of `hadrill check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Feature files or directories (default: features/).
    features: Vec<PathBuf>,
}

/// Runs the feature suite (same runner as `cargo test --test features`).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let passed =
        report::run_features(RunOptions { features: args.features, tags: args.tags, cucumber_cli: false }).await?;
    anyhow::ensure!(passed, "the feature suite failed");
    Ok(())
}

/// Parses features and resolves every step, without a cluster.
pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let roots = if args.features.is_empty() { vec![report::default_features_dir()] } else { args.features };
    let mut files = Vec::new();
    for root in &roots {
        files.extend(check::feature_files(root)?);
    }
    let problems = check::check(&files)?;
    for p in &problems {
        eprintln!("{p}");
    }
    anyhow::ensure!(problems.is_empty(), "{} step(s) do not resolve", problems.len());
    println!("{} feature file(s): every step resolves", files.len());
    Ok(())
}

/// Prints the step library.
pub fn steps() {
    let mut module = "";
    for d in CATALOG {
        if d.module != module {
            module = d.module;
            println!("\n# {module} (harness/src/steps/{module}.rs)");
        }
        println!("  {} {}\n      {}", d.keyword, d.example, d.description);
    }
}
