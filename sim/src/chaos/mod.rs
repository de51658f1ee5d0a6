//! The embedded cluster's Chaos Mesh engine: chaos-controller-manager and chaos-daemon in one.
//!
//! With [`ChaosConfig::enabled`] (the default), [`crate::Sim::start`] installs the PodChaos,
//! NetworkChaos and StressChaos CRDs (`deploy/crds/chaos-mesh/`) and runs this engine. It
//! watches the three resources and carries them out for real, writing the status Chaos Mesh
//! writes (`status.experiment` records, the `Selected`/`AllInjected`/`AllRecovered`/`Paused`
//! conditions, Events) and holding deletes with the `chaos-mesh/records` finalizer until the
//! fault is recovered:
//!
//! - **PodChaos** ([`pod`]): `pod-kill` deletes the pods with `gracePeriod`; `container-kill`
//!   kills the container's process (the kubelet restarts it); `pod-failure` switches the
//!   containers to the pause image (a process serving nothing; the pod stays Running) and
//!   restores the images on recovery.
//! - **NetworkChaos** ([`network`]): `loss` and `partition` are iptables DROP rules on the
//!   pods' loopback addresses (direction, `target`, `externalTargets`, loss percentage);
//!   `delay` applies to connections through Service ClusterIPs (the service proxy delays what
//!   the affected pods send). NetworkChaos is pod-level, as in Chaos Mesh.
//! - **ChaosBlade** ([`blade`], `chaosblade.io/v1alpha1`, CRD `deploy/crds/chaosblade/`): node
//!   network loss, the node-level fault: every pod of the node and the node's heartbeat, until
//!   its `timeout` or its deletion.
//! - **StressChaos** ([`stress`]): CPU workers (real processes burning `load` % each) and
//!   memory workers (allocating and touching `size`).
//!
//! Selection ([`select`]) follows Chaos Mesh's selector and modes; random picks come from a
//! generator seeded per object from [`Chaos::seed`], printed at start, so a run can be
//! replayed with [`ChaosConfig::seed`] or `HADRILL_CHAOS_SEED`. Duration, one-shot actions and
//! the pause annotation follow Chaos Mesh's desired-phase rules (see `engine.rs`).
//!
//! Every host-level effect (iptables chains, worker processes, stopped heartbeats) is undone
//! on recovery, on delete, when the engine stops and when the [`crate::Sim`] is dropped;
//! [`Chaos::leftovers`] lists what is still in place, for tests to assert on.

pub mod blade;
mod engine;
pub mod iptables;
pub mod network;
pub mod pod;
pub mod select;
pub mod spec;
pub mod status;
pub mod stress;

use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use crate::api::ops::{Api, WriteCtx};
use crate::kubelet::NodeHandle;

/// The pause image pod-failure switches containers to (Chaos Mesh's default).
pub const DEFAULT_PAUSE_IMAGE: &str = "gcr.io/google-containers/pause:latest";
/// Environment variable that sets the seed when [`ChaosConfig::seed`] is `None`.
pub const SEED_ENV: &str = "HADRILL_CHAOS_SEED";

/// Settings of the chaos engine.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Install the Chaos Mesh CRDs and run the engine (default true). Off, chaos objects can
    /// only be created once someone installs the CRDs, and nothing acts on them.
    pub enabled: bool,
    /// Seed of the random picks (`one`, `fixed`, the percent modes); `None` takes
    /// `HADRILL_CHAOS_SEED`, else a random one. Either way it is printed at start.
    pub seed: Option<u64>,
    /// Use iptables for NetworkChaos loss and partition (default true). Off, or when iptables
    /// is missing or not permitted, those faults fail with a `Failed` event that says why.
    pub iptables: bool,
    /// Image pod-failure switches containers to; the kubelet runs it as a process that serves
    /// nothing. Default [`DEFAULT_PAUSE_IMAGE`].
    pub pause_image: String,
    /// First retry delay after a failed apply or recover (doubling up to 30 s). Default 1 s.
    pub retry: std::time::Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            seed: None,
            iptables: true,
            pause_image: DEFAULT_PAUSE_IMAGE.into(),
            retry: std::time::Duration::from_secs(1),
        }
    }
}

/// What the engine still has in place on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// iptables chains of this engine present in the filter table (`iptables -S`).
    pub chains: Vec<String>,
    /// Stress worker processes still alive.
    pub workers: Vec<u32>,
    /// Nodes whose heartbeat the engine stopped and did not resume.
    pub heartbeats_off: Vec<String>,
    /// Service-proxy delay rules in place.
    pub delays: usize,
}

impl Leftovers {
    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.workers.is_empty() && self.heartbeats_off.is_empty() && self.delays == 0
    }
}

/// One live injection, for tests and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionInfo {
    /// `Kind/namespace/name`.
    pub object: String,
    /// iptables chain, for loss and partition.
    pub chain: Option<String>,
    /// Stress worker pids.
    pub workers: Vec<u32>,
    /// Nodes whose heartbeat is stopped.
    pub nodes: Vec<String>,
}

/// What the engine's parts share.
pub(crate) struct Shared {
    api: Arc<Api>,
    config: ChaosConfig,
    seed: u64,
    nodes: Vec<NodeHandle>,
    network: network::Network,
    stress: stress::Stress,
}

/// The running engine (see the module docs). [`crate::Sim::chaos`] returns it.
pub struct Chaos {
    shared: Arc<Shared>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaos").field("seed", &self.shared.seed).finish()
    }
}

impl Chaos {
    /// Installs the CRDs and starts the engine.
    pub fn start(
        api: &Arc<Api>,
        config: &ChaosConfig,
        nodes: Vec<NodeHandle>,
        faults: crate::network::faults::Faults,
    ) -> anyhow::Result<Chaos> {
        install_crds(api).context("installing the Chaos Mesh CRDs")?;
        let seed = match config.seed {
            Some(s) => s,
            None => match std::env::var(SEED_ENV) {
                Ok(v) => v.trim().parse().with_context(|| format!("{SEED_ENV}={v:?} is not an unsigned integer"))?,
                Err(_) => rand::random(),
            },
        };
        tracing::info!(seed, "chaos engine started");
        eprintln!("hadrill chaos engine: seed {seed} (replay with SimConfig.chaos.seed or {SEED_ENV}={seed})");
        let shared = Arc::new(Shared {
            api: api.clone(),
            config: config.clone(),
            seed,
            nodes,
            network: network::Network::new(config.iptables, faults),
            stress: stress::Stress::new().context("starting the stress worker spawner")?,
        });
        let tasks = [
            tokio::spawn(engine::run(shared.clone(), api.store.subscribe())),
            tokio::spawn(blade::run(shared.clone(), api.store.subscribe())),
        ];
        Ok(Chaos { shared, tasks })
    }

    /// The seed of the random picks.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// Whether iptables can be used here; the error says why not.
    pub fn iptables(&self) -> Result<(), String> {
        self.shared.network.iptables().available()
    }

    /// The injections in place.
    pub fn injections(&self) -> Vec<InjectionInfo> {
        let mut out = self.shared.network.injections();
        for (object, workers) in self.shared.stress.injections() {
            out.push(InjectionInfo { object, chain: None, workers, nodes: Vec::new() });
        }
        out.sort_by(|a, b| a.object.cmp(&b.object));
        out
    }

    /// Pids of the stress workers of the chaos object `namespace/name`.
    pub fn stress_workers(&self, namespace: &str, name: &str) -> Vec<u32> {
        let object = format!("StressChaos/{namespace}/{name}");
        self.shared.stress.injections().into_iter().filter(|(o, _)| *o == object).flat_map(|(_, p)| p).collect()
    }

    /// What is still in place on the host (see [`Leftovers`]).
    pub fn leftovers(&self) -> Leftovers {
        let (heartbeats_off, delays) = self.shared.network.held_with(&self.shared.nodes);
        Leftovers {
            chains: self.shared.network.iptables().present_chains(),
            workers: self.shared.stress.live_pids(),
            heartbeats_off,
            delays,
        }
    }

    /// Stops the engine and undoes every host-level effect (synchronous, for `Drop`).
    pub fn shutdown(&self) {
        self.tasks.iter().for_each(|t| t.abort());
        self.shared.network.clear_all(&self.shared.nodes);
        self.shared.stress.kill_all();
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The CRDs, as committed in `deploy/crds/chaos-mesh/` and `deploy/crds/chaosblade/`.
const CRDS: [&str; 4] = [
    include_str!("../../../deploy/crds/chaos-mesh/podchaos.yaml"),
    include_str!("../../../deploy/crds/chaos-mesh/networkchaos.yaml"),
    include_str!("../../../deploy/crds/chaos-mesh/stresschaos.yaml"),
    include_str!("../../../deploy/crds/chaosblade/chaosblades.yaml"),
];

fn install_crds(api: &Api) -> anyhow::Result<()> {
    let rt = api.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions").map_err(anyhow::Error::from)?;
    for text in CRDS {
        let crd: Value = serde_saphyr::from_str(text).context("parsing an embedded CRD")?;
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        match api.create(&rt, "", crd, &WriteCtx::controller(status::MANAGER)) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(anyhow::Error::from(e).context(format!("creating CRD {name}"))),
        }
    }
    Ok(())
}
