//! The cluster a feature run uses, chosen with `--cluster` (or `HADRILL_CLUSTER`):
//!
//! - `sim` (the default): nothing run-wide; every scenario starts its own embedded cluster.
//! - `kind`: a kind cluster from kind-configs/ with Chaos Mesh, the project images and
//!   deploy/overlays/kind, set up once before the scenarios and deleted after them (also when
//!   the run fails or is interrupted by SIGINT or SIGTERM) unless it is kept. A kind cluster of the same
//!   name that existed before is reused and never deleted.
//! - `existing`: a context of a kubeconfig, refused unless the context is in the allow list.
//! - `k3s` (cargo feature `k3s`): rancher/k3s in a container, removed at the end.
//!
//! Flags the chosen provider would ignore are refused, and everything that can be checked
//! without side effects (values, allow list, tools on PATH, the kind config) is checked before
//! anything runs. The runner hands the run-wide cluster ([`RunCluster::shared`]) to every
//! scenario; each scenario on it gets a namespace of its own ([`scenario_on`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow, bail, ensure};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};

use super::existing::{self, ALLOW_ENV, CONTEXT_ENV};
use super::kind::{self, KindCluster, KindConfig, KindOptions};
use super::tools::{Tool, ToolCommand};
use crate::chaos::ledger::{self, CleanupOptions, Ledger};
use crate::chaos::lifecycle::Run;
use crate::signals::{self, Interrupted};

/// Environment variable choosing the provider when `--cluster` is absent.
pub const CLUSTER_ENV: &str = "HADRILL_CLUSTER";
/// Environment variable keeping a cluster the run created (`1`/`true`/`yes`), as `--keep-cluster`.
pub const KEEP_ENV: &str = "HADRILL_KEEP_CLUSTER";
/// The kustomization deployed once on a cluster the run sets up (what `make deploy` applies).
pub const DEPLOY_OVERLAY: &str = "deploy/overlays/kind";
/// Field manager of that deploy, the one `make deploy` uses: a feature's later apply of
/// deploy/controller (field manager `hadrill`) then leaves the fields only the overlay sets.
pub const DEPLOY_FIELD_MANAGER: &str = "hadrill-deploy";

/// Where a cluster comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// An embedded cluster per scenario (no Docker).
    Sim,
    /// A kind cluster the run creates (or reuses).
    Kind,
    /// A context of a kubeconfig.
    Existing,
    /// rancher/k3s in a container.
    #[cfg(feature = "k3s")]
    K3s,
}

impl ProviderKind {
    /// The name used by `--cluster`.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Sim => "sim",
            ProviderKind::Kind => "kind",
            ProviderKind::Existing => "existing",
            #[cfg(feature = "k3s")]
            ProviderKind::K3s => "k3s",
        }
    }

    /// The values `--cluster` accepts in this build.
    pub fn choices() -> &'static str {
        if cfg!(feature = "k3s") { "sim, kind, existing or k3s" } else { "sim, kind or existing" }
    }

    /// Parses a `--cluster` value; the error says what is accepted.
    pub fn parse(value: &str) -> Result<ProviderKind, String> {
        match value.trim() {
            "sim" => Ok(ProviderKind::Sim),
            "kind" => Ok(ProviderKind::Kind),
            "existing" => Ok(ProviderKind::Existing),
            #[cfg(feature = "k3s")]
            "k3s" => Ok(ProviderKind::K3s),
            #[cfg(not(feature = "k3s"))]
            "k3s" => Err("this hadrill is built without the k3s provider; build it with \
                 `cargo build -p hadrill --features k3s`"
                .into()),
            _ => Err(format!("not a cluster provider; expected {}", Self::choices())),
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The cluster options as given on the command line; what is absent is read from the
/// environment by [`ClusterFlags::resolve`].
#[derive(Debug, Clone, Default)]
pub struct ClusterFlags {
    /// `--cluster` (else `HADRILL_CLUSTER`, else `sim`).
    pub cluster: Option<String>,
    /// `--context` (else `HADRILL_CONTEXT`): the kubeconfig context of `existing`.
    pub context: Option<String>,
    /// `--allow-context` (each may be a comma-separated list); added to `HADRILL_ALLOW_CONTEXTS`.
    pub allow_contexts: Vec<String>,
    /// `--kubeconfig`: the file `existing` reads, or where `kind`/`k3s` write theirs.
    pub kubeconfig: Option<PathBuf>,
    /// `--kind-config` (default kind-configs/multi-node.yaml).
    pub kind_config: Option<PathBuf>,
    /// `--keep-cluster` (or `HADRILL_KEEP_CLUSTER`): leave a kind cluster the run created.
    pub keep: bool,
}

/// A checked provider choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterChoice {
    /// An embedded cluster per scenario.
    Sim,
    /// A kind cluster.
    Kind {
        /// The kind config file.
        config: PathBuf,
        /// Where to write its kubeconfig (default reports/kind-hadrill.kubeconfig).
        kubeconfig: Option<PathBuf>,
        /// Leave it running at the end.
        keep: bool,
    },
    /// A context of a kubeconfig, already checked against the allow list.
    Existing {
        /// The context.
        context: String,
        /// The allow list it is in.
        allowed: Vec<String>,
        /// The kubeconfig (default `$KUBECONFIG`, then ~/.kube/config).
        kubeconfig: Option<PathBuf>,
    },
    /// rancher/k3s in a container.
    #[cfg(feature = "k3s")]
    K3s {
        /// Where to write its kubeconfig (default reports/k3s.kubeconfig).
        kubeconfig: Option<PathBuf>,
    },
}

impl ClusterFlags {
    /// The choice from these flags and, where a flag is absent, `env` (blank values count as
    /// unset). Flags the chosen provider would ignore are refused; the environment's are not,
    /// since one shell may serve several kinds of run.
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<ClusterChoice> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let provider = match (&self.cluster, env(CLUSTER_ENV)) {
            (Some(v), _) => ProviderKind::parse(v).map_err(|e| anyhow!("--cluster {v:?}: {e}"))?,
            (None, Some(v)) => ProviderKind::parse(&v).map_err(|e| anyhow!("{CLUSTER_ENV}={v:?}: {e}"))?,
            (None, None) => ProviderKind::Sim,
        };
        let only = |flag: &str, given: bool, applies: &[ProviderKind]| -> anyhow::Result<()> {
            if given && !applies.contains(&provider) {
                let names: Vec<String> = applies.iter().map(|p| format!("--cluster {p}")).collect();
                bail!("{flag} applies to {} only (this run uses --cluster {provider})", names.join(" or "));
            }
            Ok(())
        };
        only("--context", self.context.is_some(), &[ProviderKind::Existing])?;
        only("--allow-context", !self.allow_contexts.is_empty(), &[ProviderKind::Existing])?;
        only("--kind-config", self.kind_config.is_some(), &[ProviderKind::Kind])?;
        only("--keep-cluster", self.keep, &[ProviderKind::Kind])?;
        let with_kubeconfig = [
            ProviderKind::Kind,
            ProviderKind::Existing,
            #[cfg(feature = "k3s")]
            ProviderKind::K3s,
        ];
        only("--kubeconfig", self.kubeconfig.is_some(), &with_kubeconfig)?;
        let kubeconfig = self.kubeconfig.clone();
        Ok(match provider {
            ProviderKind::Sim => ClusterChoice::Sim,
            ProviderKind::Kind => {
                let keep = self.keep || env(KEEP_ENV).map(|v| parse_bool(KEEP_ENV, &v)).transpose()?.unwrap_or(false);
                let config = self.kind_config.clone().unwrap_or_else(|| super::repo_path(kind::DEFAULT_CONFIG));
                ClusterChoice::Kind { config, kubeconfig, keep }
            }
            ProviderKind::Existing => {
                let context = self.context.clone().or_else(|| env(CONTEXT_ENV)).unwrap_or_default();
                let mut allowed = env(ALLOW_ENV).map(|v| existing::split_list(&v)).unwrap_or_default();
                allowed.extend(self.allow_contexts.iter().flat_map(|a| existing::split_list(a)));
                existing::check_allowed(&context, &allowed)?;
                ClusterChoice::Existing { context, allowed, kubeconfig }
            }
            #[cfg(feature = "k3s")]
            ProviderKind::K3s => ClusterChoice::K3s { kubeconfig },
        })
    }
}

/// `1`/`true`/`yes` or `0`/`false`/`no` (any case).
fn parse_bool(name: &str, value: &str) -> anyhow::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => bail!("{name}={value:?}: expected 1, true or yes (keep) or 0, false or no"),
    }
}

impl ClusterChoice {
    /// The provider.
    pub fn provider(&self) -> ProviderKind {
        match self {
            ClusterChoice::Sim => ProviderKind::Sim,
            ClusterChoice::Kind { .. } => ProviderKind::Kind,
            ClusterChoice::Existing { .. } => ProviderKind::Existing,
            #[cfg(feature = "k3s")]
            ClusterChoice::K3s { .. } => ProviderKind::K3s,
        }
    }

    /// The tools the provider runs.
    pub fn tools(&self) -> Vec<Tool> {
        match self {
            ClusterChoice::Sim | ClusterChoice::Existing { .. } => Vec::new(),
            ClusterChoice::Kind { .. } => vec![Tool::Docker, Tool::Kind, Tool::Helm, Tool::Kubectl],
            #[cfg(feature = "k3s")]
            ClusterChoice::K3s { .. } => vec![Tool::Docker, Tool::Helm, Tool::Kubectl],
        }
    }

    /// What can be checked without side effects: the tools are on PATH (every missing one is
    /// named with its install command) and the kind config is valid.
    pub fn preflight(&self) -> anyhow::Result<()> {
        let missing: Vec<String> =
            self.tools().into_iter().filter_map(|t| t.locate().err()).map(|e| e.to_string()).collect();
        if !missing.is_empty() {
            bail!("the {} provider needs tools that are missing:\n{}", self.provider(), missing.join("\n"));
        }
        if let ClusterChoice::Kind { config, .. } = self {
            KindConfig::from_file(config)?;
        }
        Ok(())
    }
}

/// The run-wide cluster as the scenarios see it.
#[derive(Clone)]
pub struct SharedCluster {
    /// Which provider made it.
    pub provider: ProviderKind,
    /// An admin client.
    pub client: kube::Client,
    /// What it is, for messages (e.g. `kind cluster "hadrill"`).
    pub label: String,
    /// Where the scenarios keep their run ledgers.
    ledger_dir: PathBuf,
    /// Run ids of the scenarios started on it, for the cleanup after a signal.
    runs: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for SharedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCluster").field("provider", &self.provider).field("label", &self.label).finish()
    }
}

impl SharedCluster {
    /// Run ids of the scenarios started on it so far.
    fn registered_runs(&self) -> Vec<String> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// For steps that only the embedded cluster can do (powering a node off, stopping its
/// heartbeat): the scenario's embedded cluster, or an error naming the run's provider.
pub fn embedded_only<'a>(
    sim: Option<&'a sim::Sim>,
    shared: Option<&SharedCluster>,
    step: &str,
) -> anyhow::Result<&'a sim::Sim> {
    match (sim, shared) {
        (Some(sim), _) => Ok(sim),
        (None, Some(shared)) => bail!(
            "`{step}` needs the embedded cluster, but this run uses the {}; run it with --cluster sim \
             (or leave the scenario out with --tags)",
            shared.label
        ),
        (None, None) => {
            bail!("`{step}` needs the embedded cluster: start the scenario with `Given a cluster with N nodes`")
        }
    }
}

/// A scenario set up on the run-wide cluster.
#[derive(Debug)]
pub struct ScenarioSetup {
    /// Its run id (the value of `hadrill.io/run` on what it owns).
    pub run_id: String,
    /// Its namespace `hadrill-RUN`.
    pub namespace: String,
    /// Its chaos run, whose ledger holds the namespace: finishing the run when the scenario
    /// ends (the World's teardown) removes it after any fault; dropping the run after a panic
    /// does too, and `hadrill clean` does after a crash.
    pub run: Run,
}

/// Starts a scenario on `cluster`: checks that it has at least `nodes` Ready schedulable
/// nodes, then creates the scenario's namespace through a chaos run.
pub async fn scenario_on(cluster: &SharedCluster, nodes: usize) -> anyhow::Result<ScenarioSetup> {
    let all = Api::<Node>::all(cluster.client.clone())
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing the nodes of the {}", cluster.label))?
        .items;
    let usable: Vec<&str> = all.iter().filter(|n| schedulable(n)).filter_map(|n| n.metadata.name.as_deref()).collect();
    ensure!(
        usable.len() >= nodes,
        "the {} has {} Ready schedulable node(s) ({}) of {} node(s); the scenario needs {nodes}",
        cluster.label,
        usable.len(),
        usable.join(", "),
        all.len()
    );
    let run_id = super::embedded::run_id();
    let run = Run::new(cluster.client.clone(), &cluster.ledger_dir, Some(&run_id))?;
    cluster.runs.lock().unwrap_or_else(|p| p.into_inner()).push(run_id.clone());
    let namespace = format!("hadrill-{run_id}");
    run.create_namespace(&namespace).await?;
    Ok(ScenarioSetup { run_id, namespace, run })
}

/// Whether pods can land on `node`: Ready, not cordoned, no NoSchedule/NoExecute taint (a
/// kind control plane next to workers has one).
pub fn schedulable(node: &Node) -> bool {
    let ready = crate::probes::conditions::node_ready(node);
    let spec = node.spec.as_ref();
    let cordoned = spec.and_then(|s| s.unschedulable).unwrap_or(false);
    let tainted = spec
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute"));
    ready && !cordoned && !tainted
}

/// What the run owns of its cluster.
enum Owned {
    /// Nothing (embedded per scenario, or a cluster someone else made).
    Nothing,
    /// A kind cluster; `existed` when it was there before (then it is never deleted).
    Kind { cluster: Box<KindCluster>, existed: bool, keep: bool },
    /// A k3s container.
    #[cfg(feature = "k3s")]
    K3s(Box<super::k3s::K3sCluster>),
}

/// The run-wide cluster, from [`RunCluster::setup`] to [`RunCluster::teardown`]. Dropped
/// without teardown (an error, a panic), a kind cluster it created is deleted by
/// `KindCluster`'s own drop.
pub struct RunCluster {
    provider: ProviderKind,
    owned: Owned,
    shared: Option<SharedCluster>,
}

impl std::fmt::Debug for RunCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCluster").field("provider", &self.provider).field("shared", &self.shared).finish()
    }
}

impl RunCluster {
    /// Sets up the run-wide cluster of `choice` (nothing for `sim`), whose scenarios keep
    /// their run ledgers in `ledger_dir`. A signal while a kind cluster is being created
    /// deletes what was created.
    pub async fn setup(choice: &ClusterChoice, ledger_dir: PathBuf) -> anyhow::Result<RunCluster> {
        choice.preflight()?;
        let (owned, client, label) = match choice {
            ClusterChoice::Sim => {
                return Ok(RunCluster { provider: ProviderKind::Sim, owned: Owned::Nothing, shared: None });
            }
            ClusterChoice::Existing { context, allowed, kubeconfig } => {
                let client = existing::connect_with(kubeconfig.as_deref(), context, allowed).await?;
                (Owned::Nothing, client, format!("cluster of context {context:?}"))
            }
            ClusterChoice::Kind { config, kubeconfig, keep } => {
                let root = super::container_images::repo_root()?;
                let mut options = KindOptions::new(&root);
                options.config = config.clone();
                options.keep = *keep;
                if let Some(k) = kubeconfig {
                    options.kubeconfig = k.clone();
                }
                let (cluster, existed) = setup_kind(&options).await?;
                let label = format!("kind cluster {:?}", cluster.name());
                let client = cluster.client();
                (Owned::Kind { cluster: Box::new(cluster), existed, keep: *keep }, client, label)
            }
            #[cfg(feature = "k3s")]
            ClusterChoice::K3s { kubeconfig } => {
                let root = super::container_images::repo_root()?;
                let mut options = super::k3s::K3sOptions::new(&root);
                if let Some(k) = kubeconfig {
                    options.kubeconfig = k.clone();
                }
                let setup = async {
                    let cluster = super::k3s::K3sCluster::up(&options).await?;
                    deploy(&root, cluster.kubeconfig()).await?;
                    anyhow::Ok(cluster)
                };
                // Dropping the half-built cluster removes its container.
                let cluster = signals::until_signalled(setup)
                    .await
                    .map_err(|i| anyhow::Error::from(i).context("setting up k3s"))??;
                let client = cluster.client();
                (Owned::K3s(Box::new(cluster)), client, "k3s cluster".to_string())
            }
        };
        let version = client
            .apiserver_version()
            .await
            .with_context(|| format!("the API server of the {label} does not answer"))?;
        tracing::info!(cluster = %label, version = %version.git_version, "using the run-wide cluster");
        warn_without_fault_engines(&client, &label).await;
        let runs = Arc::default();
        let shared = SharedCluster { provider: choice.provider(), client, label, ledger_dir, runs };
        Ok(RunCluster { provider: choice.provider(), owned, shared: Some(shared) })
    }

    /// The cluster the scenarios share, `None` for `sim`.
    pub fn shared(&self) -> Option<&SharedCluster> {
        self.shared.as_ref()
    }

    /// Runs `run` (the scenarios) until a signal ([`signals`]) stops it, on every provider:
    /// the scenarios in progress are dropped then, and each World's drop tears it down (faults
    /// removed, its embedded cluster and pods stopped).
    pub async fn run<F: Future>(&self, run: F) -> Result<F::Output, Interrupted> {
        signals::until_signalled(run).await
    }

    /// After a signal: removes what the scenarios' ledgers still record (on a cluster that
    /// stays), tears down, and returns the error the run ends with. A second signal exits at
    /// once.
    pub async fn interrupted(self, signal: Interrupted) -> anyhow::Error {
        let stays = match &self.owned {
            Owned::Nothing => true,
            Owned::Kind { existed, keep, .. } => *existed || *keep,
            #[cfg(feature = "k3s")]
            Owned::K3s(_) => false,
        };
        if let (true, Some(shared)) = (stays, &self.shared) {
            sweep_runs(shared).await;
        }
        match self.teardown().await {
            Ok(()) => signal.into(),
            Err(e) => e.context(signal),
        }
    }

    /// Deletes what the run created (unless kept), and the empty ledgers of its scenarios.
    pub async fn teardown(mut self) -> anyhow::Result<()> {
        if let Some(shared) = &self.shared {
            let runs = shared.registered_runs();
            remove_empty_ledgers(&shared.ledger_dir, &runs);
            unlabel_shared(&shared.client, &runs).await;
        }
        match std::mem::replace(&mut self.owned, Owned::Nothing) {
            Owned::Nothing => Ok(()),
            Owned::Kind { cluster, existed, keep } => {
                if existed || keep {
                    println!(
                        "kept the {} ({}); inspect it with: kubectl --kubeconfig {} get pods -A",
                        self.shared.as_ref().map(|s| s.label.as_str()).unwrap_or("kind cluster"),
                        if existed { "it existed before the run" } else { "--keep-cluster" },
                        cluster.kubeconfig().display()
                    );
                }
                (*cluster).down().await
            }
            #[cfg(feature = "k3s")]
            Owned::K3s(cluster) => (*cluster).down().await,
        }
    }
}

/// Creates (or reuses) the kind cluster and deploys the overlay; returns whether it existed.
async fn setup_kind(options: &KindOptions) -> anyhow::Result<(KindCluster, bool)> {
    kind::check_name(&options.name)?;
    let list = ToolCommand::new(Tool::Kind).args(["get", "clusters"]).run().await?;
    let existed = kind::parse_cluster_list(&list).contains(&options.name);
    let root = options.root.clone();
    let setup = async {
        let cluster = KindCluster::up(options).await?;
        deploy(&root, cluster.kubeconfig()).await?;
        anyhow::Ok(cluster)
    };
    match signals::until_signalled(setup).await {
        // A cluster `up` got hold of is deleted by its drop (in `setup`); one interrupted while
        // `kind create` ran is still listed, and deleted here.
        Err(signal) => {
            if !existed && !options.keep {
                let list = ToolCommand::new(Tool::Kind).args(["get", "clusters"]).run().await?;
                if kind::parse_cluster_list(&list).contains(&options.name) {
                    options.delete_command().run().await?;
                }
            }
            Err(anyhow::Error::from(signal).context(format!("setting up the kind cluster {:?}", options.name)))
        }
        Ok(cluster) => Ok((cluster?, existed)),
    }
}

/// `kubectl apply` of [`DEPLOY_OVERLAY`], as `make deploy` runs it.
pub fn deploy_command(root: &Path, kubeconfig: &Path) -> ToolCommand {
    ToolCommand::new(Tool::Kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "--server-side", &format!("--field-manager={DEPLOY_FIELD_MANAGER}"), "-k"])
        .arg(root.join(DEPLOY_OVERLAY))
}

/// `kubectl rollout status` of the controller, as `make deploy` waits for it.
pub fn rollout_command(kubeconfig: &Path) -> ToolCommand {
    use super::controller::{CONTROLLER, CONTROLLER_NS};
    ToolCommand::new(Tool::Kubectl).arg("--kubeconfig").arg(kubeconfig).args([
        "-n",
        CONTROLLER_NS,
        "rollout",
        "status",
        &format!("deployment/{CONTROLLER}"),
        "--timeout",
        "3m",
    ])
}

/// Deploys the overlay (controller, sample services, Jaeger) and waits for the controller.
async fn deploy(root: &Path, kubeconfig: &Path) -> anyhow::Result<()> {
    deploy_command(root, kubeconfig).run().await.with_context(|| format!("deploying {DEPLOY_OVERLAY}"))?;
    rollout_command(kubeconfig).run().await.context("waiting for the controller's rollout")?;
    Ok(())
}

/// The fault engines are only needed by @chaos scenarios, so their absence is a warning, not
/// an error: Chaos Mesh for pod, network and stress faults, the chaosblade-operator for node
/// faults.
async fn warn_without_fault_engines(client: &kube::Client, label: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    if let Ok(None) = crds.get_opt("podchaos.chaos-mesh.org").await {
        eprintln!(
            "warning: the {label} has no Chaos Mesh (CRD podchaos.chaos-mesh.org): @chaos scenarios will fail; \
             `make chaos-mesh` installs it"
        );
    }
    if let Ok(None) = crds.get_opt("chaosblades.chaosblade.io").await {
        eprintln!(
            "warning: the {label} has no chaosblade-operator (CRD chaosblades.chaosblade.io): node fault \
             scenarios will fail; `make chaosblade` installs it"
        );
    }
}

/// Removes what the ledgers of the scenarios started on `shared` still record, and their
/// chaos objects found by label (namespaces only through the ledger: hadrill-system carries a
/// run label too); uncordons the nodes they drained.
async fn sweep_runs(shared: &SharedCluster) {
    let options = CleanupOptions::default();
    let (client, dir, runs) = (&shared.client, &shared.ledger_dir, shared.registered_runs());
    for run in &runs {
        let path = dir.join(format!("{run}.jsonl"));
        let mut removals = Vec::new();
        if path.is_file() {
            match Ledger::open_file(&path) {
                Ok(ledger) => removals = ledger.cleanup(client, &options).await,
                Err(e) => eprintln!("  {e:#}"),
            }
        }
        match ledger::sweep_labelled(client, Some(run), false, &options, removals).await {
            Ok(removals) => removals.iter().for_each(|r| eprintln!("  {r}")),
            Err(e) => eprintln!("  sweeping the chaos objects of run {run}: {e:#}"),
        }
        match super::drain::uncordon_leftovers(client, Some(run), false).await {
            Ok(nodes) => nodes.iter().for_each(|n| eprintln!("  node/{n} uncordoned")),
            Err(e) => eprintln!("  uncordoning the nodes run {run} drained: {e:#}"),
        }
    }
    remove_empty_ledgers(dir, &runs);
}

/// Takes the run label off the shared namespaces (the controller's `hadrill-system`) that a
/// scenario of `runs` labelled into its fault scope: once the run is over, no object says it
/// belongs to one of its scenarios. Failures are logged: the run's outcome stands.
async fn unlabel_shared(client: &kube::Client, runs: &[String]) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    let api: Api<Namespace> = Api::all(client.clone());
    let shared = ListParams::default().labels(&format!("{},{}", ledger::RUN_LABEL, ledger::SHARED_LABEL));
    let list = match api.list(&shared).await {
        Ok(list) => list.items,
        Err(e) => return tracing::warn!(error = %e, "could not list the shared namespaces to unlabel"),
    };
    let unlabel = serde_json::json!({"metadata": {"labels": {ledger::RUN_LABEL: null, ledger::SHARED_LABEL: null}}});
    for ns in list {
        let ours = ns.metadata.labels.as_ref().and_then(|l| l.get(ledger::RUN_LABEL)).is_some_and(|r| runs.contains(r));
        let Some(name) = ns.metadata.name.filter(|_| ours) else { continue };
        if let Err(e) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&unlabel)).await {
            tracing::warn!(namespace = %name, error = %e, "could not take the run label off the shared namespace");
        }
    }
}

/// Deletes the ledger files of `runs` in `dir` that record nothing any more.
fn remove_empty_ledgers(dir: &Path, runs: &[String]) {
    for run in runs {
        let path = dir.join(format!("{run}.jsonl"));
        if path.is_file()
            && let Err(e) = Ledger::open_file(&path).and_then(|l| l.remove_if_empty())
        {
            tracing::warn!(ledger = %path.display(), error = %e, "could not tidy the ledger");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn flags(cluster: Option<&str>) -> ClusterFlags {
        ClusterFlags { cluster: cluster.map(String::from), ..Default::default() }
    }

    #[test]
    fn the_flag_wins_over_the_environment_and_sim_is_the_default() {
        assert_eq!(flags(None).resolve_with(env(&[])).unwrap(), ClusterChoice::Sim);
        assert_eq!(flags(None).resolve_with(env(&[(CLUSTER_ENV, " ")])).unwrap(), ClusterChoice::Sim);
        let choice = flags(None).resolve_with(env(&[(CLUSTER_ENV, "kind")])).unwrap();
        assert!(
            matches!(&choice, ClusterChoice::Kind { keep: false, kubeconfig: None, config }
            if config.ends_with(kind::DEFAULT_CONFIG)),
            "{choice:?}"
        );
        assert_eq!(flags(Some("sim")).resolve_with(env(&[(CLUSTER_ENV, "kind")])).unwrap(), ClusterChoice::Sim);
    }

    #[test]
    fn a_bad_value_names_where_it_came_from_and_the_choices() {
        let err = flags(Some("kinde")).resolve_with(env(&[])).unwrap_err().to_string();
        assert!(err.contains("--cluster \"kinde\"") && err.contains(ProviderKind::choices()), "{err}");
        let err = flags(None).resolve_with(env(&[(CLUSTER_ENV, "docker")])).unwrap_err().to_string();
        assert!(err.contains("HADRILL_CLUSTER=\"docker\"") && err.contains("sim, kind"), "{err}");
        #[cfg(not(feature = "k3s"))]
        {
            let err = flags(Some("k3s")).resolve_with(env(&[])).unwrap_err().to_string();
            assert!(err.contains("--features k3s"), "{err}");
        }
        let kind = env(&[(CLUSTER_ENV, "kind"), (KEEP_ENV, "maybe")]);
        let err = flags(None).resolve_with(kind).unwrap_err().to_string();
        assert!(err.contains("HADRILL_KEEP_CLUSTER=\"maybe\""), "{err}");
    }

    #[test]
    fn flags_the_provider_would_ignore_are_refused() {
        let f = ClusterFlags { context: Some("x".into()), ..Default::default() };
        let err = f.resolve_with(env(&[])).unwrap_err().to_string();
        assert_eq!(err, "--context applies to --cluster existing only (this run uses --cluster sim)");
        let f = ClusterFlags { cluster: Some("existing".into()), keep: true, ..Default::default() };
        assert!(
            f.resolve_with(env(&[])).unwrap_err().to_string().starts_with("--keep-cluster applies to --cluster kind")
        );
        let f = ClusterFlags { kind_config: Some("k.yaml".into()), ..flags(Some("existing")) };
        assert!(f.resolve_with(env(&[])).unwrap_err().to_string().starts_with("--kind-config"));
        let f = ClusterFlags { kubeconfig: Some("k".into()), ..Default::default() };
        assert!(
            f.resolve_with(env(&[]))
                .unwrap_err()
                .to_string()
                .starts_with("--kubeconfig applies to --cluster kind or --cluster existing")
        );
        // The environment's settings for other providers are left alone.
        let quiet = env(&[(CONTEXT_ENV, "x"), (KEEP_ENV, "yes"), (ALLOW_ENV, "x")]);
        assert_eq!(flags(None).resolve_with(quiet).unwrap(), ClusterChoice::Sim);
    }

    #[test]
    fn keep_comes_from_the_flag_or_the_environment() {
        let keep = |f: ClusterFlags, vars: &[(&str, &str)]| match f.resolve_with(env(vars)).unwrap() {
            ClusterChoice::Kind { keep, .. } => keep,
            other => panic!("{other:?}"),
        };
        assert!(keep(ClusterFlags { keep: true, ..flags(Some("kind")) }, &[]));
        assert!(keep(flags(Some("kind")), &[(KEEP_ENV, "TRUE")]));
        assert!(!keep(flags(Some("kind")), &[(KEEP_ENV, "0")]));
        let f =
            ClusterFlags { kind_config: Some("my.yaml".into()), kubeconfig: Some("k".into()), ..flags(Some("kind")) };
        let ClusterChoice::Kind { config, kubeconfig, .. } = f.resolve_with(env(&[])).unwrap() else { panic!() };
        assert_eq!((config, kubeconfig), (PathBuf::from("my.yaml"), Some(PathBuf::from("k"))));
    }

    #[test]
    fn existing_needs_an_allowed_context_from_flags_or_environment() {
        let err = flags(Some("existing")).resolve_with(env(&[])).unwrap_err().to_string();
        assert!(err.contains("no kubeconfig context given"), "{err}");
        let f = ClusterFlags { context: Some("prod".into()), ..flags(Some("existing")) };
        let err = f.resolve_with(env(&[(ALLOW_ENV, "kind-hadrill")])).unwrap_err().to_string();
        assert!(err.contains("refusing") && err.contains("--allow-context prod"), "{err}");
        // The flag adds to the environment's list; each flag may hold a list.
        let f = ClusterFlags { allow_contexts: vec!["a, prod".into()], ..f };
        let choice = f.resolve_with(env(&[(ALLOW_ENV, "kind-hadrill")])).unwrap();
        assert_eq!(
            choice,
            ClusterChoice::Existing {
                context: "prod".into(),
                allowed: vec!["kind-hadrill".into(), "a".into(), "prod".into()],
                kubeconfig: None
            }
        );
        let from_env =
            flags(None).resolve_with(env(&[(CLUSTER_ENV, "existing"), (CONTEXT_ENV, "c"), (ALLOW_ENV, "c")]));
        assert!(matches!(from_env.unwrap(), ClusterChoice::Existing { context, .. } if context == "c"));
    }

    #[test]
    fn kind_needs_its_tools_and_names_every_missing_one() {
        // Tool lookup reads PATH; the subprocess test of the binary covers the empty-PATH case.
        let choice = ClusterChoice::Kind { config: "x".into(), kubeconfig: None, keep: false };
        assert_eq!(choice.tools(), [Tool::Docker, Tool::Kind, Tool::Helm, Tool::Kubectl]);
        assert!(ClusterChoice::Sim.tools().is_empty());
    }

    fn node(ready: &str, unschedulable: bool, taint: Option<&str>) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable,
                     "taints": taint.map(|e| vec![serde_json::json!({"key": "k", "effect": e})]).unwrap_or_default()},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    }

    #[test]
    fn only_ready_uncordoned_untainted_nodes_count() {
        assert!(schedulable(&node("True", false, None)));
        assert!(schedulable(&node("True", false, Some("PreferNoSchedule"))));
        assert!(!schedulable(&node("False", false, None)));
        assert!(!schedulable(&node("Unknown", false, None)));
        assert!(!schedulable(&node("True", true, None)));
        assert!(!schedulable(&node("True", false, Some("NoSchedule"))));
        assert!(!schedulable(&node("True", false, Some("NoExecute"))));
        assert!(!schedulable(&Node::default()));
    }

    #[test]
    fn the_deploy_is_the_one_make_deploy_runs() {
        let cmd = deploy_command(Path::new("/src"), Path::new("/k")).to_string();
        assert_eq!(
            cmd,
            "kubectl --kubeconfig /k apply --server-side --field-manager=hadrill-deploy -k /src/deploy/overlays/kind"
        );
        let wait = rollout_command(Path::new("/k")).to_string();
        assert_eq!(
            wait,
            "kubectl --kubeconfig /k -n hadrill-system rollout status deployment/hadrill-controller --timeout 3m"
        );
    }
}
