//! hadrill's embedded Kubernetes cluster.
//!
//! [`Sim::start`] serves a Kubernetes API subset over HTTP on 127.0.0.1 — the same kube-rs
//! clients, controllers and `kubectl` that talk to kind talk to it unchanged — with the
//! kube-controller-manager pieces that API semantics need (garbage collection, namespace
//! lifecycle, CRD cleanup).
//!
//! It also runs a Chaos Mesh engine ([`chaos`], on by default): the PodChaos, NetworkChaos and
//! StressChaos CRDs are installed at start and their objects are carried out for real (pods
//! killed, containers failed, packets dropped with iptables, Service traffic delayed, nodes
//! cut off, CPU and memory stressed), with the status Chaos Mesh writes.

pub mod addresses;
pub mod api;
pub mod chaos;
pub mod controllers;
pub mod kubeconfig;
pub mod kubelet;
pub mod network;
pub mod owner;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use api::http::{ServerConfig, ServerState};
pub use api::ops::Api;
use api::ops::WriteCtx;

/// Settings of an embedded cluster.
#[derive(Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Number of nodes to register.
    pub nodes: usize,
    /// Watch events kept per resource; a watch older than that gets 410 Gone.
    pub watch_history: usize,
    /// Interval between watch BOOKMARKs.
    pub bookmark_interval: Duration,
    /// Name of the cluster (node names, kubeconfig context).
    pub name: String,
    /// Requests without credentials act as the admin. kubectl (client-go) sends no bearer
    /// token over plain HTTP, so this keeps the admin kubeconfig working for it; clients that
    /// present a token (kube-rs, pods' ServiceAccount kubeconfigs) are authorized by RBAC.
    pub anonymous_is_admin: bool,
    /// Whether the workload controllers (Deployment, ReplicaSet, ReplicationController,
    /// StatefulSet, Job, CronJob, TTL after finished, disruption budgets) and the Endpoints and
    /// EndpointSlice controllers run. Off, a test stages workload pods and their status itself.
    /// Default on.
    pub workload_controllers: bool,
    /// The scheduler.
    pub scheduler: controllers::scheduler::SchedulerConfig,
    /// The node lifecycle and taint eviction controllers.
    pub node_lifecycle: controllers::node_lifecycle::NodeLifecycleConfig,
    /// The service proxy.
    pub proxy: network::ProxyConfig,
    /// Settings of the embedded kubelets (image map, timings, node capacity).
    pub kubelet: kubelet::KubeletConfig,
    /// The Chaos Mesh engine (on by default): CRDs installed at start, PodChaos,
    /// NetworkChaos and StressChaos carried out for real.
    pub chaos: chaos::ChaosConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            nodes: 1,
            watch_history: 100_000,
            bookmark_interval: Duration::from_secs(10),
            name: "hadrill".into(),
            anonymous_is_admin: true,
            workload_controllers: true,
            scheduler: Default::default(),
            node_lifecycle: Default::default(),
            proxy: Default::default(),
            kubelet: kubelet::KubeletConfig::default(),
            chaos: chaos::ChaosConfig::default(),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("bind", &self.bind)
            .field("nodes", &self.nodes)
            .field("watch_history", &self.watch_history)
            .field("name", &self.name)
            .field("kubelet", &self.kubelet)
            .field("chaos", &self.chaos)
            .finish()
    }
}

/// A running embedded cluster. Dropping it (or [`Sim::stop`]) shuts everything down.
pub struct Sim {
    addr: SocketAddr,
    name: String,
    state: Arc<ServerState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Duration,
    kubelets: kubelet::Kubelets,
    chaos: Option<chaos::Chaos>,
    /// Held for the cluster's lifetime: dropping it lets another cluster claim the block.
    addresses: addresses::AddressBlock,
}

impl Sim {
    /// Starts the API server and controllers, registers namespaces and nodes, and returns once
    /// the server answers.
    pub async fn start(config: SimConfig) -> anyhow::Result<Sim> {
        let t0 = Instant::now();
        let addresses = addresses::AddressBlock::claim(config.nodes).context("claiming loopback addresses")?;
        let api = Arc::new(
            Api::new(config.watch_history).with_service_range(addresses.service_range(), addresses.service_cidr()),
        );
        let mut tasks = api::controllers_spawn(&api, config.workload_controllers);
        let nodes = bootstrap(&api, &config).context("registering the initial namespaces and nodes")?;
        tasks.extend(controllers::spawn_scheduling(&api, &config.scheduler, &config.node_lifecycle));
        tasks.extend(network::spawn(&api, &config.proxy));
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding the API server to {}", config.bind))?;
        let addr = listener.local_addr().context("reading the API server address")?;
        let kubelet_config = kubelet::KubeletConfig {
            api_server: Some(addr),
            cluster_name: config.name.clone(),
            pause_image: config
                .kubelet
                .pause_image
                .clone()
                .or_else(|| config.chaos.enabled.then(|| config.chaos.pause_image.clone())),
            ..config.kubelet.clone()
        };
        let agents: &[String] = if config.kubelet.enabled { &nodes } else { &[] };
        let kubelets =
            kubelet::Kubelets::start(&api, kubelet_config, agents, &addresses).context("starting the kubelets")?;
        let chaos = if config.chaos.enabled {
            Some(
                chaos::Chaos::start(&api, &config.chaos, kubelets.nodes().to_vec(), config.proxy.faults.clone())
                    .context("starting the chaos engine")?,
            )
        } else {
            None
        };
        let state = Arc::new(ServerState {
            api: api.clone(),
            config: ServerConfig {
                bookmark_interval: config.bookmark_interval,
                anonymous_is_admin: config.anonymous_is_admin,
                logs: Some(kubelets.log_source()),
                streams: Some(kubelets.stream_source()),
                ..Default::default()
            },
            close_watches: tokio::sync::watch::channel(0).0,
            shutdown: tokio::sync::watch::channel(false).0,
            watches_suspended: Default::default(),
            serialized: Default::default(),
        });
        let router = api::http::router(state.clone());
        let mut shutdown = state.shutdown.subscribe();
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "embedded API server stopped");
            }
        }));
        Ok(Sim { addr, name: config.name, state, tasks, started: t0.elapsed(), kubelets, chaos, addresses })
    }

    /// Address of the API server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The cluster's loopback addresses: node InternalIPs, pod ranges, the ClusterIP range.
    pub fn addresses(&self) -> &addresses::AddressBlock {
        &self.addresses
    }

    /// Time [`Sim::start`] took until the server was ready.
    pub fn startup_time(&self) -> Duration {
        self.started
    }

    /// In-process access to the API semantics (for controllers and benchmarks).
    pub fn api(&self) -> &Arc<Api> {
        &self.state.api
    }

    /// The admin kubeconfig (unrestricted, `system:masters`).
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        kubeconfig::with_token(&self.name, &self.url(), "hadrill-admin", self.state.api.tokens.admin_token(), "default")
    }

    /// A kubeconfig for a ServiceAccount, authorized by RBAC like a pod on a real cluster.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> kube::config::Kubeconfig {
        let token = self.state.api.tokens.service_account_token(namespace, name);
        let user = format!("system:serviceaccount:{namespace}:{name}");
        kubeconfig::with_token(&self.name, &self.url(), &user, &token, namespace)
    }

    /// A kube-rs client acting as a ServiceAccount.
    pub fn service_account_client(&self, namespace: &str, name: &str) -> anyhow::Result<kube::Client> {
        let token = self.state.api.tokens.service_account_token(namespace, name);
        self.client_with_token(&token, namespace)
    }

    /// The admin's bearer token.
    pub fn admin_token(&self) -> &str {
        self.state.api.tokens.admin_token()
    }

    /// Writes the admin kubeconfig as YAML to `path` (usable by kube-rs and `kubectl`).
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        kubeconfig::write(&self.kubeconfig(), path)
    }

    /// A kube-rs client for the admin user.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        self.client_with_token(self.state.api.tokens.admin_token(), "default")
    }

    fn client_with_token(&self, token: &str, namespace: &str) -> anyhow::Result<kube::Client> {
        install_crypto_provider();
        let mut config = kube::Config::new(self.url().parse().context("parsing the API server URL")?);
        config.default_namespace = namespace.into();
        config.auth_info = kubeconfig::auth(token);
        kube::Client::try_from(config).context("building a kube client for the embedded cluster")
    }

    /// Ends every open watch stream, as an API server restart would; clients must resume.
    pub fn close_watches(&self) {
        self.state.close_watches.send_modify(|n| *n += 1);
    }

    /// While suspended, new watch requests get 503 (existing streams are unaffected; use
    /// [`Sim::close_watches`] to end them). For tests of client reconnection.
    pub fn suspend_watches(&self, suspended: bool) {
        self.state.watches_suspended.store(suspended, std::sync::atomic::Ordering::SeqCst);
    }

    /// The kubelets: per-node control handles ([`kubelet::NodeHandle::set_heartbeat`]).
    pub fn kubelets(&self) -> &kubelet::Kubelets {
        &self.kubelets
    }

    /// The chaos engine, unless [`SimConfig::chaos`] turned it off.
    pub fn chaos(&self) -> Option<&chaos::Chaos> {
        self.chaos.as_ref()
    }

    /// Stops the kubelets (killing and reaping every pod process), the server and controllers.
    pub async fn stop(mut self) {
        if let Some(c) = &self.chaos {
            c.shutdown();
        }
        self.kubelets.shutdown().await;
        self.shutdown();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    fn shutdown(&mut self) {
        if let Some(c) = &self.chaos {
            c.shutdown();
        }
        self.kubelets.kill_all();
        self.state.shutdown.send_replace(true);
        for t in &self.tasks {
            if !t.is_finished() {
                t.abort();
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs rustls' ring provider for the process (kube and reqwest bring different ones;
/// without a choice, building a client panics). Safe to call many times.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn bootstrap(api: &Api, config: &SimConfig) -> anyhow::Result<Vec<String>> {
    let ctx = WriteCtx::controller("hadrill-sim");
    let ns_rt = api.resource("", "v1", "namespaces").map_err(anyhow::Error::from)?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
        api.create(&ns_rt, "", obj, &ctx).map_err(anyhow::Error::from)?;
    }
    let node_rt = api.resource("", "v1", "nodes").map_err(anyhow::Error::from)?;
    let mut names = Vec::new();
    for i in 0..config.nodes {
        let name = if i == 0 { format!("{}-worker", config.name) } else { format!("{}-worker{}", config.name, i + 1) };
        let zone = format!("zone-{}", (b'a' + (i % 3) as u8) as char);
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": std::env::consts::ARCH,
                "topology.kubernetes.io/zone": zone,
            }},
            "spec": {},
        });
        api.create(&node_rt, "", node, &ctx).map_err(anyhow::Error::from)?;
        names.push(name);
    }
    Ok(names)
}
