//! hadrill's reference failover controller.
//!
//! An *HA Service* names a primary and a standby workload (Deployment or StatefulSet) in
//! annotations ([`annotations`]). The controller keeps the Service's `spec.selector` equal to the
//! pod selector of the healthy side, switching from an unhealthy primary to a healthy standby
//! (and back, per the failback policy), never to an unhealthy side, and records every decision
//! as an event on the Service.
//!
//! - [`health`]: white-box health (pod and node status) as a pure function;
//! - [`probe`]: black-box health (the controller's own HTTP probes of the pods);
//! - [`decide`]: the switching rules, as a pure function;
//! - [`act`]: writing the Service (server-side apply, field manager `hadrill-controller`);
//! - [`events`], [`metrics`], [`leader`], [`server`]: events, Prometheus metrics, leader
//!   election on a Lease, `/metrics` `/healthz` `/readyz`;
//! - [`controller`], [`reconcile`]: the kube-runtime wiring.
//!
//! [`Instance`] runs one controller instance (the binary's `main`, or in-process in tests).

pub mod act;
pub mod annotations;
pub mod config;
pub mod controller;
pub mod decide;
pub mod departures;
pub mod events;
pub mod health;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod pod_index;
pub mod probe;
pub mod reconcile;
pub mod server;
pub mod triggers;
pub mod workload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Client;
use kube::runtime::Controller;
use kube::runtime::reflector;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_stream::wrappers::{UnboundedReceiverStream, WatchStream};

use crate::annotations::Policy;
use crate::controller::{Scope, Shared};
use crate::health::Checks;
use crate::leader::LeaderSettings;
use crate::metrics::Metrics;
use crate::probe::ProbeSettings;

/// Everything an instance is configured with (see [`config::Args`] for the flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Identity in the leader election and in events (the pod name).
    pub identity: String,
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// Health checks (white box, black box, restarts).
    pub checks: Checks,
    /// Black-box probing.
    pub probe: ProbeSettings,
    /// Default switching policy (annotations override it per Service).
    pub policy: Policy,
    /// Leader election; `None`: this instance always acts.
    pub leader: Option<LeaderSettings>,
    /// Address of `/metrics`, `/healthz`, `/readyz`; `None`: not served.
    pub listen: Option<SocketAddr>,
    /// Periodic re-evaluation of every Service.
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            identity: "hadrill-controller".into(),
            namespaces: Vec::new(),
            checks: Checks::default(),
            probe: ProbeSettings::default(),
            policy: Policy::default(),
            leader: None,
            listen: None,
            resync: Duration::from_secs(300),
        }
    }
}

/// What can be observed of a running instance.
#[derive(Clone)]
pub struct Handle {
    /// The instance's metrics.
    pub metrics: Arc<Metrics>,
    /// Whether the instance leads.
    pub leading: watch::Receiver<bool>,
    /// Whether its caches are synced.
    pub ready: Arc<AtomicBool>,
    /// The bound address of the HTTP endpoints, once bound.
    pub listening: watch::Receiver<Option<SocketAddr>>,
}

impl Handle {
    /// Whether the instance currently leads.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until the instance leads.
    pub async fn until_leader(&mut self) {
        let _ = self.leading.wait_for(|l| *l).await;
    }
}

/// One controller instance.
pub struct Instance {
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    leading_tx: watch::Sender<bool>,
    ready: Arc<AtomicBool>,
    listening_tx: watch::Sender<Option<SocketAddr>>,
}

/// Aborts the task when dropped (so that dropping [`Instance::run`] stops everything).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Instance {
    /// An instance acting through `client`.
    pub fn new(client: Client, settings: Settings) -> Instance {
        Instance {
            client,
            leading_tx: watch::channel(settings.leader.is_none()).0,
            settings,
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
            listening_tx: watch::channel(None).0,
        }
    }

    /// A handle to observe the instance.
    pub fn handle(&self) -> Handle {
        Handle {
            metrics: self.metrics.clone(),
            leading: self.leading_tx.subscribe(),
            ready: self.ready.clone(),
            listening: self.listening_tx.subscribe(),
        }
    }

    /// Runs until `shutdown` resolves, then stops the controllers and releases the lease.
    /// Dropping the future (aborting its task) stops everything at once without releasing the
    /// lease, as a crash would.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Instance { client, settings, metrics, leading_tx, ready, listening_tx } = self;
        if let Some(l) = &settings.leader {
            l.validate()?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut background = JoinSet::new();

        // Leader election.
        let leading = leading_tx.subscribe();
        metrics.set_leader(*leading.borrow());
        let election = settings.leader.clone().map(|l| {
            let task = leader::run(client.clone(), settings.identity.clone(), l, leading_tx.clone(), stop_rx.clone());
            AbortOnDrop(tokio::spawn(task))
        });
        {
            let metrics = metrics.clone();
            let mut leading = leading_tx.subscribe();
            background.spawn(async move {
                while leading.changed().await.is_ok() {
                    let l = *leading.borrow_and_update();
                    metrics.set_leader(l);
                }
            });
        }

        // HTTP endpoints.
        if let Some(addr) = settings.listen {
            let (bound, serve) = server::bind(addr, metrics.clone(), ready.clone()).await?;
            tracing::info!(%bound, "serving /metrics /healthz /readyz");
            listening_tx.send_replace(Some(bound));
            background.spawn(serve);
        }

        // Stores and scopes.
        let (nodes, nodes_writer) = reflector::store::<Node>();
        let shared = Arc::new(Shared::new(
            settings.clone(),
            client.clone(),
            metrics.clone(),
            leading,
            nodes.clone(),
            ready.clone(),
        ));
        let namespaces: Vec<Option<String>> = if settings.namespaces.is_empty() {
            vec![None]
        } else {
            settings.namespaces.iter().cloned().map(Some).collect()
        };
        let mut scopes = Vec::new();
        let mut controllers = Vec::new();
        for ns in namespaces {
            let (services, services_w) = reflector::store::<Service>();
            let trigger =
                controller::service_triggers(controller::api(&client, ns.as_deref()), services_w, services.clone());
            let ctl = Controller::for_stream(trigger, services);
            let (deployments, deployments_w) = reflector::store();
            let (statefulsets, statefulsets_w) = reflector::store();
            let (pods, pods_w) = reflector::store();
            let scope = Arc::new(Scope::new(shared.clone(), ns.clone(), ctl.store(), deployments, statefulsets, pods));
            background.spawn(controller::watch_workloads(scope.clone(), deployments_w, statefulsets_w, pods_w));
            let triggers = shared.triggers.add(ns);
            let became_leader =
                WatchStream::new(leading_tx.subscribe()).filter(|l| futures::future::ready(*l)).map(|_| ());
            let mut stop = stop_rx.clone();
            let ctl = ctl
                .reconcile_on(UnboundedReceiverStream::new(triggers))
                .reconcile_all_on(became_leader)
                .graceful_shutdown_on(async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
            controllers.push((ctl, scope.clone()));
            scopes.push(scope);
        }
        background.spawn(controller::watch_nodes(
            client.clone(),
            nodes_writer,
            nodes.clone(),
            scopes.clone(),
            shared.triggers.clone(),
        ));
        if settings.checks.black_box {
            background.spawn(shared.prober.clone().run(shared.triggers.clone()));
        }

        let mut shutdown = std::pin::pin!(shutdown);
        tokio::select! {
            _ = controller::wait_ready(&nodes, &scopes, &ready) => {}
            _ = &mut shutdown => {
                stop_tx.send_replace(true);
                return release(election).await;
            }
        }
        tracing::info!(identity = %settings.identity, "caches synced; controller running");
        let running = futures::future::join_all(controllers.into_iter().map(|(ctl, scope)| {
            ctl.run(reconcile::reconcile, reconcile::error_policy, scope).for_each(|r| async move {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "controller event");
                }
            })
        }));
        let mut running = std::pin::pin!(running);
        tokio::select! {
            _ = &mut running => {}
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                stop_tx.send_replace(true);
                running.await;
            }
        }
        stop_tx.send_replace(true);
        ready.store(false, Ordering::SeqCst);
        release(election).await
    }
}

async fn release(election: Option<AbortOnDrop<anyhow::Result<()>>>) -> anyhow::Result<()> {
    let Some(mut task) = election else { return Ok(()) };
    match tokio::time::timeout(Duration::from_secs(10), &mut task.0).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(anyhow::anyhow!("leader election task failed: {e}")),
        Err(_) => Err(anyhow::anyhow!("releasing the lease timed out")),
    }
}
