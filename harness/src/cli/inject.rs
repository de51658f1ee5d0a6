//! `hadrill inject`: injects one scenario of the library into a cluster, as a run would, and
//! recovers it — or, with `--hold`, keeps it in place until SIGINT (Ctrl-C) or SIGTERM, then removes it
//! and exits 130 or 143.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use hadrill::chaos::ledger;
use hadrill::chaos::lifecycle::{InjectOptions, Recovery, Run};
use hadrill::scenarios::{Library, RenderOptions};

use super::clean::ClusterArgs;

/// Arguments of `hadrill inject`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario's name (see `hadrill scenarios list`).
    scenario: String,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The run's namespace; it must carry the label hadrill.io/run=<run id>.
    #[arg(long, short = 'n')]
    namespace: String,
    /// Set a parameter: `--set loss=50`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Keep the fault in place until Ctrl-C or SIGTERM (then remove it and exit 130 or 143).
    #[arg(long)]
    hold: bool,
    /// The run id (default: a fresh one); the namespace must be labelled with it.
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Directory of the run ledgers.
    #[arg(long, value_name = "DIR", default_value = ledger::DEFAULT_DIR)]
    ledger_dir: PathBuf,
    /// Load the scenarios from this directory instead of the library built into hadrill.
    #[arg(long, value_name = "DIR", env = "HADRILL_SCENARIOS")]
    dir: Option<PathBuf>,
    /// Seconds allowed for each step (targets, injection, recovery).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

/// Injects, reports each step on stdout, recovers (or holds).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let library = match &args.dir {
        Some(dir) => Library::load_dir(dir)?,
        None => Library::builtin()?,
    };
    let mut options = RenderOptions::in_namespace(&args.namespace);
    for s in &args.set {
        let Some((k, v)) = s.split_once('=') else {
            bail!("--set {s}: expected NAME=VALUE");
        };
        options.set.push((k.trim().to_string(), v.to_string()));
    }
    let rendered = library.render(&args.scenario, &options)?;
    let client = args.cluster.client().await?;
    let run = Run::new(client, &args.ledger_dir, args.run.as_deref())?;
    run.cleanup_on_signal();
    let timeout = Duration::from_secs(args.timeout);
    let inject = InjectOptions {
        scenario: Some(rendered.scenario.clone()),
        targets_timeout: timeout,
        injected_timeout: timeout,
        ..InjectOptions::default()
    };
    let injection = run.inject(&rendered.resource, &inject).await?;
    let t = injection.timeline();
    println!(
        "injected {} (run {}) in {:?}: {}",
        injection.object(),
        run.id(),
        t.injection_latency(),
        injection.status().describe()
    );
    if args.hold {
        println!("holding until Ctrl-C (SIGINT) or SIGTERM");
        std::future::pending::<()>().await;
    }
    // A fault that ends by itself (Chaos Mesh's duration, a ChaosBlade's timeout) is awaited
    // for as long as it lasts from the object's creation; any other is deleted.
    let lasts = rendered.resource.lasts();
    let how = if lasts.is_some() { Recovery::Duration } else { Recovery::Delete };
    let lasts = lasts.unwrap_or_default();
    let t = injection.recover(how, lasts + timeout).await?;
    let recovered = t.recovered.and_then(|r| r.duration_since(t.injected).ok()).unwrap_or_default();
    println!("recovered ({how:?}) {recovered:?} after injection");
    run.finish().await?;
    Ok(())
}
