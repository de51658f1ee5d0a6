//! The embedded kubelets: one simulated node agent per node, whose pods are real OS processes.
//!
//! Each node renews its Lease and posts its status ([`node`]), and runs the pods bound to it
//! ([`pods`], one worker per pod). A container whose image is in the [`ImageMap`] runs as a
//! host process ([`runtime`]): its own process group, `PR_SET_PDEATHSIG` so nothing outlives
//! the test process, stdout/stderr captured as its log ([`logs`]), its environment built like
//! the kubelet's ([`env`]), its probes executed for real ([`probes`]). A container whose image
//! is not mapped is virtual: Running and Ready at once, no process.
//!
//! **Networking contract for container programs**: every pod gets its own loopback address
//! (from node *i*'s range of the cluster's [`AddressBlock`], see [`ipam`]) in `POD_IP`;
//! programs must listen on `$POD_IP`, not `0.0.0.0`, because many pods on one host share port
//! numbers.

pub mod config;
pub mod env;
pub mod events;
mod exec;
pub mod images;
pub mod ipam;
pub mod logs;
mod node;
mod pods;
pub mod probes;
pub mod runtime;
pub mod status;
mod worker;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::sync::watch;

pub use config::{KubeconfigHook, KubeletConfig};
pub use images::{ImageEntry, ImageMap};

use crate::addresses::AddressBlock;
use crate::api::http::LogSource;
use crate::api::ops::{Api, Subresource, WriteCtx};
use crate::api::status::ApiResult;
use events::{KUBELET, Recorder};
use ipam::Ipam;
use logs::LogStore;
use runtime::Runtime;

/// What a node's kubelet tasks share.
pub(crate) struct NodeCtx {
    api: Arc<Api>,
    config: Arc<KubeletConfig>,
    node: String,
    host_ip: Ipv4Addr,
    runtime: Arc<Runtime>,
    logs: Arc<LogStore>,
    ipam: Mutex<Ipam>,
    events: Recorder,
    run_dir: PathBuf,
    heartbeat: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    /// The message channel of every pod worker, by pod uid (for [`NodeHandle::kill_container`]).
    controls: Mutex<std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<worker::Msg>>>,
}

/// Control handle of one node's kubelet.
#[derive(Clone)]
pub struct NodeHandle {
    ctx: Arc<NodeCtx>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("node", &self.ctx.node).field("ip", &self.ctx.host_ip).finish()
    }
}

impl NodeHandle {
    /// Node name.
    pub fn name(&self) -> &str {
        &self.ctx.node
    }

    /// InternalIP.
    pub fn ip(&self) -> Ipv4Addr {
        self.ctx.host_ip
    }

    /// Stops (`false`) or resumes (`true`) Lease renewals, node status posts and pod status
    /// writes, as a node losing its network would. Pods keep running.
    pub fn set_heartbeat(&self, on: bool) {
        self.ctx.heartbeat.send_replace(on);
    }

    /// Whether heartbeats are on.
    pub fn heartbeat(&self) -> bool {
        *self.ctx.heartbeat.borrow()
    }

    /// Stops this kubelet for good, like a node powering off: no more heartbeats or pod sync,
    /// and its pod processes are SIGKILLed. Pod objects stay in the API as they are.
    pub fn stop(&self) {
        self.ctx.stop.send_replace(true);
    }

    /// Kills container `container` of the pod with uid `pod_uid` running on this node, as a
    /// container runtime would (Chaos Mesh container-kill): SIGKILL to its process group, or,
    /// for a virtual container, an exit with 137. The kubelet then restarts it per
    /// `restartPolicy`. Errors when the pod does not run here, is terminating, or has no such
    /// running container.
    pub async fn kill_container(&self, pod_uid: &str, container: &str) -> Result<(), String> {
        let tx = self.ctx.controls.lock().unwrap_or_else(|p| p.into_inner()).get(pod_uid).cloned();
        let Some(tx) = tx else {
            return Err(format!("no pod with uid {pod_uid} runs on node {}", self.ctx.node));
        };
        let (reply, rx) = tokio::sync::oneshot::channel();
        tx.send(worker::Msg::Kill { container: container.to_string(), reply })
            .map_err(|_| format!("the pod with uid {pod_uid} stopped on node {}", self.ctx.node))?;
        rx.await.map_err(|_| format!("the pod with uid {pod_uid} is terminating"))?
    }

    /// Whether [`NodeHandle::stop`] was called.
    pub fn stopped(&self) -> bool {
        *self.ctx.stop.borrow()
    }
}

/// The kubelets of a cluster.
pub struct Kubelets {
    nodes: Vec<NodeHandle>,
    runtime: Arc<Runtime>,
    logs: Arc<LogStore>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    run_dir: PathBuf,
    remove_run_dir: bool,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Kubelets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelets").field("nodes", &self.nodes).field("run_dir", &self.run_dir).finish()
    }
}

impl Kubelets {
    /// Starts one kubelet per node name; node *i* of `nodes` gets the addresses of node index
    /// *i*+1 of `addresses`.
    pub fn start(
        api: &Arc<Api>,
        mut config: KubeletConfig,
        nodes: &[String],
        addresses: &AddressBlock,
    ) -> anyhow::Result<Self> {
        // Containers reach an API server listening on all interfaces through loopback.
        if let Some(addr) = config.api_server.as_mut()
            && addr.ip().is_unspecified()
        {
            addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
        }
        let (run_dir, remove_run_dir) = match &config.run_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("hadrill-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())),
                true,
            ),
        };
        std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        let runtime = Arc::new(Runtime::new()?);
        let shutdown_timeout = config.shutdown_timeout;
        let logs = Arc::new(LogStore::new(config.log_limit_bytes));
        let config = Arc::new(config);
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for (i, name) in nodes.iter().enumerate() {
            let ctx = Arc::new(NodeCtx {
                api: api.clone(),
                config: config.clone(),
                node: name.clone(),
                host_ip: addresses.node_ip(i + 1),
                runtime: runtime.clone(),
                logs: logs.clone(),
                ipam: Mutex::new(Ipam::new(addresses.pod_range(i + 1))),
                events: Recorder::new(api.clone(), name),
                run_dir: run_dir.clone(),
                heartbeat: watch::channel(true).0,
                stop: watch::channel(false).0,
                controls: Mutex::default(),
            });
            tasks.push(tokio::spawn(node::run(ctx.clone())));
            tasks.push(tokio::spawn(pods::run(ctx.clone(), api.store.subscribe())));
            handles.push(NodeHandle { ctx });
        }
        Ok(Self { nodes: handles, runtime, logs, tasks, run_dir, remove_run_dir, shutdown_timeout })
    }

    /// Every node's handle, in bootstrap order.
    pub fn nodes(&self) -> &[NodeHandle] {
        &self.nodes
    }

    /// The handle of node `name`.
    pub fn node(&self, name: &str) -> Option<&NodeHandle> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// Runs `pods/exec` and `pods/attach` for the API server.
    pub fn stream_source(&self) -> Arc<dyn crate::api::http::stream::ContainerStreams> {
        Arc::new(exec::Streams { nodes: self.nodes.clone(), logs: self.logs.clone() })
    }

    /// The pod log provider for the API server.
    pub fn log_source(&self) -> Arc<dyn LogSource> {
        self.logs.clone()
    }

    /// Pids of container processes still running.
    pub fn live_pids(&self) -> Vec<u32> {
        self.runtime.live_pids()
    }

    /// Stops every kubelet and SIGKILLs every container process (synchronous, for `Drop`).
    pub fn kill_all(&self) {
        for n in &self.nodes {
            n.stop();
        }
        self.runtime.kill_all();
        for t in &self.tasks {
            t.abort();
        }
    }

    /// [`Kubelets::kill_all`], then waits (up to `shutdown_timeout`) until every process was
    /// reaped.
    pub async fn shutdown(&mut self) {
        for n in &self.nodes {
            n.stop();
        }
        self.runtime.shutdown(self.shutdown_timeout).await;
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if self.remove_run_dir {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

impl Drop for Kubelets {
    fn drop(&mut self) {
        self.kill_all();
        if self.remove_run_dir {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

/// Read-modify-write of an object's status through the `/status` subresource as the kubelet,
/// retried on conflict; `change` returns `false` to leave it alone. A missing object is `Ok`.
pub(crate) fn update_status(
    api: &Api,
    plural: &str,
    namespace: &str,
    name: &str,
    mut change: impl FnMut(&mut Value) -> bool,
) -> ApiResult<()> {
    let rt = api.resource("", "v1", plural)?;
    let ctx = WriteCtx::controller(KUBELET);
    for _ in 0..16 {
        let cur = match api.get(&rt, namespace, name) {
            Ok(c) => c,
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut next = (*cur).clone();
        if !change(&mut next) {
            return Ok(());
        }
        match api.update(&rt, namespace, name, next, Subresource::Status, &ctx) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl NodeCtx {
    /// The kubeconfig of ServiceAccount `namespace/name` (its bearer token, authorized by RBAC
    /// as an in-cluster client is), written once into the run directory; `None` when the API
    /// server address is unknown.
    fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> anyhow::Result<Option<PathBuf>> {
        let Some(addr) = self.config.api_server else { return Ok(None) };
        let path = self.run_dir.join("serviceaccounts").join(format!("{namespace}.{name}.kubeconfig"));
        if !path.exists() {
            let token = self.api.tokens.service_account_token(namespace, name);
            let user = format!("system:serviceaccount:{namespace}:{name}");
            let kc = crate::kubeconfig::with_token(
                &self.config.cluster_name,
                &format!("http://{addr}"),
                &user,
                &token,
                namespace,
            );
            // Containers of several pods may start at once: write aside, then rename.
            let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
            crate::kubeconfig::write(&kc, &tmp)?;
            std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
        }
        Ok(Some(path))
    }
}
