//! `hadrill clean`: removes what earlier runs left behind. With no flags, on this host only
//! (no kubeconfig needed): iptables chains and embedded clusters' ledgers of processes that are
//! gone ([`hadrill::chaos::host`]). `--all-runs` also sweeps the cluster when one is reachable —
//! objects still recorded in the run ledgers (reports/.ledger/), every chaos object and
//! namespace labelled `hadrill.io/run`, and the cordon of nodes a drain step left (annotated
//! `hadrill.io/cordoned-by`) —, `--run ID` that run's objects only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hadrill::chaos::host::{self, HostOutcome};
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
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Also sweep the cluster (when one is reachable): the leftovers of every run.
    #[arg(long, conflicts_with = "run")]
    all_runs: bool,
    /// Sweep the leftovers of this run only, on the cluster.
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

/// Sweeps and prints one line per leftover; fails when something could not be removed.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut failed = 0;
    if args.run.is_none() {
        let host = host::sweep(&args.ledger_dir, args.dry_run);
        if host.is_empty() {
            println!("host: nothing to clean (no iptables chain or embedded-cluster ledger of a process that is gone)");
        }
        for r in &host {
            println!("host: {r}");
            failed += usize::from(matches!(r.outcome, HostOutcome::Failed(_)));
        }
    }
    if args.all_runs || args.run.is_some() {
        failed += sweep_cluster(&args).await?;
    }
    if failed > 0 {
        anyhow::bail!("{failed} leftover(s) could not be removed");
    }
    Ok(())
}

/// The cluster part: `--run` needs a cluster; `--all-runs` without an explicit kubeconfig or
/// context skips it with a note when none is found. Returns how many removals failed.
async fn sweep_cluster(args: &Args) -> anyhow::Result<usize> {
    let explicit = args.cluster.kubeconfig.is_some() || args.cluster.context.is_some() || args.run.is_some();
    let client = match args.cluster.client().await {
        Ok(c) => c,
        Err(e) if !explicit => {
            println!("cluster: not swept, none reachable ({e:#}); pass --kubeconfig to sweep one");
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
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
        println!("cluster: node/{node} {verb} (cordoned by a drain)");
    }
    if removals.is_empty() && uncordoned.is_empty() {
        println!("cluster: nothing to clean");
    }
    for r in &removals {
        println!("cluster: {r}");
    }
    Ok(removals.iter().filter(|r| matches!(r.outcome, ledger::Outcome::Failed(_))).count())
}
