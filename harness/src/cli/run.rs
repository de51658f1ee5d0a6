//! `hadrill run`, `hadrill check`, `hadrill steps`.

use std::path::PathBuf;

use hadrill::cluster::provider::{ClusterFlags, ProviderKind};
use hadrill::runner::{self, RunOptions, capabilities, check};
use hadrill::steps::catalog::CATALOG;

/// Arguments of `hadrill run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Feature files or directories (default: features/).
    features: Vec<PathBuf>,
    /// Tag expression selecting scenarios, e.g. `@smoke` or `@nightly and not @serial`.
    #[arg(long)]
    tags: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Which cluster the scenarios run on. Absent flags fall back to the environment variables
/// named in their help; checked before anything runs.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Cluster provider: sim (an embedded cluster per scenario, the default), kind (created
    /// from --kind-config, deleted at the end), existing (a kubeconfig context named by
    /// --context and allowed by --allow-context), k3s (builds with --features k3s only).
    /// Default: $HADRILL_CLUSTER, else sim.
    #[arg(long, value_name = "PROVIDER")]
    cluster: Option<String>,
    /// existing: the kubeconfig context to use (default: $HADRILL_CONTEXT; never the current
    /// context implicitly).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// existing: a context chaos may be run against (repeatable or comma-separated; added to
    /// $HADRILL_ALLOW_CONTEXTS).
    #[arg(long = "allow-context", value_name = "NAME")]
    allow_context: Vec<String>,
    /// existing: the kubeconfig to read (default: $KUBECONFIG, then ~/.kube/config); kind: where
    /// to write the cluster's kubeconfig (default: reports/kind-hadrill.kubeconfig).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// kind: the cluster config (default: kind-configs/multi-node.yaml).
    #[arg(long, value_name = "PATH")]
    kind_config: Option<PathBuf>,
    /// kind: leave a cluster the run created running at the end (also $HADRILL_KEEP_CLUSTER=1).
    #[arg(long)]
    keep_cluster: bool,
}

impl From<ClusterArgs> for ClusterFlags {
    fn from(a: ClusterArgs) -> Self {
        ClusterFlags {
            cluster: a.cluster,
            context: a.context,
            allow_contexts: a.allow_context,
            kubeconfig: a.kubeconfig,
            kind_config: a.kind_config,
            keep: a.keep_cluster,
        }
    }
}

/// Arguments of `hadrill check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Feature files or directories (default: features/).
    features: Vec<PathBuf>,
}

/// Runs the feature suite (same runner as `cargo test --test features`).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let options = RunOptions { features: args.features, tags: args.tags, cluster: args.cluster.into(), settings: None };
    let passed = runner::run_features(options).await?;
    anyhow::ensure!(passed, "the feature suite failed");
    Ok(())
}

/// Checks the features statically, without a cluster: they read as UTF-8 Gherkin, every step
/// resolves, each scenario's steps come in an order that works, and the faults and manifests
/// they name are valid.
pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let files = check::selected_feature_files(&args.features)?;
    let checked = check::check(&files)?;
    for p in &checked.problems {
        eprintln!("{p}");
    }
    anyhow::ensure!(
        checked.problems.is_empty(),
        "{} problem(s) in {} feature file(s)",
        checked.problems.len(),
        files.len()
    );
    println!(
        "{} feature file(s), {} scenario(s): every step resolves, in an order that works, with valid faults and manifests",
        files.len(),
        checked.plans.len()
    );
    for skip in capabilities::unmet(&checked.plans, ProviderKind::Sim, capabilities::probe_iptables) {
        println!("  on the embedded cluster here, {:?} would be skipped: {}", skip.plan.scenario, skip.reason);
    }
    Ok(())
}

/// Prints the step library, grouped by module (in the order modules first appear).
pub fn steps() {
    let mut modules: Vec<&str> = Vec::new();
    for d in CATALOG {
        if !modules.contains(&d.module) {
            modules.push(d.module);
        }
    }
    for module in modules {
        println!("\n# {module} (harness/src/steps/{module}.rs)");
        for d in CATALOG.iter().filter(|d| d.module == module) {
            println!("  {} {}\n      {}", d.keyword, d.example, d.description);
        }
    }
}
