//! `hadrill clean`: removes what earlier runs left behind — objects still recorded in the run
//! ledgers (reports/.ledger/), every chaos object and namespace labelled `hadrill.io/run`, and
//! the cordon of nodes a drain step left (annotated `hadrill.io/cordoned-by`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hadrill::chaos::ledger::{self, CleanupOptions};

/// Which cluster to talk to.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// A client for the chosen cluster.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = kube::config::KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("kubeconfig {}", path.display()))?
            }
            None if self.context.is_some() => {
                kube::Config::from_kubeconfig(&options).await.context("reading the default kubeconfig")?
            }
            None => kube::Config::infer().await.context("finding a kubeconfig")?,
        };
        kube::Client::try_from(config).context("building the Kubernetes client")
    }
}

/// Arguments of `hadrill clean`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all_runs", "run"])))]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Sweep the leftovers of every run.
    #[arg(long)]
    all_runs: bool,
    /// Sweep the leftovers of this run only.
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Directory of the run ledgers.
    #[arg(long, value_name = "DIR", default_value = ledger::DEFAULT_DIR)]
    ledger_dir: PathBuf,
    /// Seconds allowed per object; a chaos object still held by its finalizer after half of
    /// that has the finalizer stripped (with a warning).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

/// Sweeps and prints one line per object; fails when something could not be removed.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.cluster.client().await?;
    let options = CleanupOptions {
        timeout: Duration::from_secs(args.timeout),
        finalizer_grace: Duration::from_secs(args.timeout.div_ceil(2)),
        dry_run: args.dry_run,
    };
    let dir: Option<&Path> = Some(&args.ledger_dir);
    let removals = ledger::sweep(&client, args.run.as_deref(), dir, &options).await?;
    let uncordoned = hadrill::cluster::drain::uncordon_leftovers(&client, args.run.as_deref(), args.dry_run).await?;
    for node in &uncordoned {
        let verb = if args.dry_run { "would uncordon" } else { "uncordoned" };
        println!("node/{node} {verb} (cordoned by a drain)");
    }
    if removals.is_empty() && uncordoned.is_empty() {
        println!("nothing to clean");
    }
    let mut failed = 0;
    for r in &removals {
        println!("{r}");
        if matches!(r.outcome, ledger::Outcome::Failed(_)) {
            failed += 1;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} object(s) could not be removed");
    }
    Ok(())
}
