//! An embedded cluster with real kubelets, and the failover controller deployed into it from
//! deploy/controller/*.yaml as process pods (RBAC from the same manifests applies to them).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, LogParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Client, ResourceExt};
use serde_json::Value;
use sim::controllers::node_lifecycle::NodeLifecycleConfig;
use sim::kubelet::KubeletConfig;
use sim::{Sim, SimConfig};
use tokio::task::JoinHandle;

use super::images::image_map;
use super::wait::{until, until_all};

/// Namespace, Deployment and Lease name of the controller (deploy/controller).
pub const CONTROLLER_NS: &str = "hadrill-system";
/// Name of the controller's Deployment and Lease.
pub const CONTROLLER: &str = "hadrill-controller";
/// Label selecting the controller's pods.
pub const CONTROLLER_LABELS: &str = "app.kubernetes.io/name=hadrill-controller";
/// Port the controller serves /metrics on (deploy/controller: `--listen=$(POD_IP):8080`).
pub const CONTROLLER_PORT: u16 = 8080;
/// Nodes of every test cluster: two for the controller's replicas (required anti-affinity),
/// one left for the primary.
pub const NODES: usize = 3;
/// Node monitor grace: a node without heartbeat goes Ready=Unknown this long after its last one.
pub const NODE_GRACE: Duration = Duration::from_secs(6);

/// Black-box probing of the in-cluster tests.
pub const PROBE_PERIOD: Duration = Duration::from_millis(200);
/// Timeout of one black-box probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Consecutive failures that make a pod unhealthy.
pub const PROBE_THRESHOLD: u32 = 3;
/// How long the black box takes to find a pod that stopped answering: the threshold of failed
/// rounds, a round lasting a period or its slowest probe's timeout, whichever is longer.
pub fn black_box_detection() -> Duration {
    PROBE_PERIOD.max(PROBE_TIMEOUT) * PROBE_THRESHOLD
}
/// Lease duration (whole seconds): how long a dead leader's Lease stays valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(2);

/// Flags every test's controller gets on top of the manifest's: no dwell (every decision
/// shows at once), fast probes, a short lease.
pub fn base_args() -> Vec<String> {
    vec![
        "--dwell=0s".into(),
        format!("--probe-period={}ms", PROBE_PERIOD.as_millis()),
        format!("--probe-timeout={}ms", PROBE_TIMEOUT.as_millis()),
        format!("--probe-failure-threshold={PROBE_THRESHOLD}"),
        format!("--lease-duration={}s", LEASE_DURATION.as_secs()),
        "--lease-grace=1s".into(),
    ]
}

/// A controller replica.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Pod name (= identity in the Lease and in events).
    pub pod: String,
    /// Node it runs on.
    pub node: String,
    /// Pod IP.
    pub ip: IpAddr,
}

/// A running cluster with the controller deployed.
pub struct Cluster {
    /// The embedded cluster.
    pub sim: Sim,
    /// Admin client.
    pub client: Client,
    /// The controller's replicas.
    pub replicas: Vec<Replica>,
    /// The replica holding the Lease when the cluster was ready.
    pub leader: String,
    /// The replicas' logs, kept for printing them if the test fails.
    _logs: Logs,
}

/// The controller replicas' logs, followed from their start; printed when the test panics.
pub struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Logs {
    fn follow(client: &Client, replicas: &[Replica]) -> Logs {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let tasks = replicas
            .iter()
            .map(|r| {
                let (pods, pod, lines) =
                    (Api::<Pod>::namespaced(client.clone(), CONTROLLER_NS), r.pod.clone(), lines.clone());
                tokio::spawn(async move {
                    let lp = LogParams { follow: true, ..Default::default() };
                    let Ok(stream) = pods.log_stream(&pod, &lp).await else { return };
                    let mut stream = std::pin::pin!(stream.lines());
                    while let Some(Ok(line)) = stream.next().await {
                        lines.lock().unwrap_or_else(PoisonError::into_inner).push(format!("{pod}: {line}"));
                    }
                })
            })
            .collect();
        Logs { lines, tasks }
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if std::thread::panicking() {
            let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            eprintln!("--- controller logs ({} lines) ---", lines.len());
            for l in lines.iter() {
                eprintln!("{l}");
            }
        }
    }
}

impl Cluster {
    /// Starts a cluster and deploys the controller with `extra_args` (`--flag=value`, replacing
    /// the same flag from [`base_args`] or the manifest); returns once both replicas run and one
    /// holds the Lease.
    pub async fn start(extra_args: &[&str]) -> Cluster {
        sim::install_crypto_provider();
        let mut config = SimConfig {
            nodes: NODES,
            kubelet: KubeletConfig { images: image_map(), ..KubeletConfig::fast() },
            ..Default::default()
        };
        config.node_lifecycle = NodeLifecycleConfig {
            monitor_period: Duration::from_millis(100),
            grace_period: NODE_GRACE,
            startup_grace_period: NODE_GRACE,
            ..Default::default()
        };
        let sim = Sim::start(config).await.expect("embedded cluster starts");
        let client = sim.client().expect("admin client");
        let mut args = base_args();
        args.extend(extra_args.iter().map(|a| a.to_string()));
        deploy_controller(&client, &args).await;

        let pods: Api<Pod> = Api::namespaced(client.clone(), CONTROLLER_NS);
        let running = until_all(&pods, CONTROLLER_LABELS, "2 running controller replicas", |m| {
            m.values().filter(|p| is_running(p) && p.metadata.deletion_timestamp.is_none()).count() == 2
        })
        .await;
        let replicas: Vec<Replica> = running.iter().filter(|p| is_running(p)).map(replica).collect();
        let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROLLER_NS);
        let names: BTreeSet<String> = replicas.iter().map(|r| r.pod.clone()).collect();
        let lease = until(&leases, CONTROLLER, "a replica holding the Lease", move |l: Option<&Lease>| {
            holder(l).is_some_and(|h| names.contains(h))
        })
        .await;
        let leader = holder(Some(&lease)).expect("holder").to_string();
        let logs = Logs::follow(&client, &replicas);
        Cluster { sim, client, replicas, leader, _logs: logs }
    }

    /// The node no controller replica runs on.
    pub fn free_node(&self) -> String {
        let used: BTreeSet<&str> = self.replicas.iter().map(|r| r.node.as_str()).collect();
        self.sim
            .kubelets()
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .find(|n| !used.contains(n.as_str()))
            .expect("a node without a controller replica")
    }

    /// The leader's replica.
    pub fn leader(&self) -> &Replica {
        self.replicas.iter().find(|r| r.pod == self.leader).expect("the leader is a replica")
    }

    /// The replica that is not the leader.
    pub fn follower(&self) -> &Replica {
        self.replicas.iter().find(|r| r.pod != self.leader).expect("a follower")
    }

    /// The current Lease holder.
    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), CONTROLLER_NS);
        let lease = leases.get_opt(CONTROLLER).await.expect("read the Lease");
        holder(lease.as_ref()).map(str::to_string)
    }

    /// `GET /metrics` of a replica.
    pub async fn metrics(&self, replica: &Replica) -> String {
        let addr = SocketAddr::new(replica.ip, CONTROLLER_PORT);
        super::http::get(addr, "/metrics").await.unwrap_or_else(|e| panic!("GET {addr}/metrics: {e}")).1
    }
}

fn holder(lease: Option<&Lease>) -> Option<&str> {
    lease?.spec.as_ref()?.holder_identity.as_deref().filter(|h| !h.is_empty())
}

/// Whether a pod's containers all run.
pub fn is_running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())))
}

fn replica(p: &Pod) -> Replica {
    let status = p.status.as_ref().expect("status");
    Replica {
        pod: p.name_any(),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()).expect("bound"),
        ip: status.pod_ip.as_deref().expect("pod IP").parse().expect("pod IP parses"),
    }
}

/// The manifests of deploy/controller, in file order.
fn manifests() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/controller"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        // The kustomization lists the manifests; it is not one itself.
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && p.file_name().is_none_or(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", file.display()));
        out.extend(docs.into_iter().filter(|d| !d.is_null()).map(|d| (file.clone(), d)));
    }
    out
}

/// Sets `--flag=value` arguments of the controller container, replacing the same flags.
fn patch_args(deployment: &mut Value, args: &[String]) {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_array_mut().expect("containers");
    let container = containers.iter_mut().find(|c| c["name"] == "controller").expect("the controller container");
    let flag = |a: &str| a.split_once('=').map_or(a, |(f, _)| f).to_string();
    let replaced: BTreeSet<String> = args.iter().map(|a| flag(a)).collect();
    let mut merged: Vec<Value> = container["args"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.as_str().is_none_or(|a| !replaced.contains(&flag(a))))
        .collect();
    // A later occurrence of a flag wins (extra args after the base ones).
    let mut last: Vec<String> = Vec::new();
    for a in args.iter().rev() {
        if !last.iter().any(|l| flag(l) == flag(a)) {
            last.push(a.clone());
        }
    }
    merged.extend(last.into_iter().rev().map(Value::from));
    container["args"] = Value::Array(merged);
}

/// Creates every object of deploy/controller, the Deployment with `args` patched in.
async fn deploy_controller(client: &Client, args: &[String]) {
    for (file, mut obj) in manifests() {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        if kind == "Deployment" {
            patch_args(&mut obj, args);
        }
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("{}: the cluster does not serve {kind}: {e}", file.display()));
        let obj: DynamicObject = serde_json::from_value(obj).expect("a Kubernetes object");
        let api: Api<DynamicObject> = match (caps.scope, obj.namespace()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &ar),
            (Scope::Namespaced, None) => Api::namespaced_with(client.clone(), CONTROLLER_NS, &ar),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        api.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{}: creating {kind} {}: {e}", file.display(), obj.name_any()));
    }
}

#[test]
fn extra_args_replace_the_same_flags() {
    let mut d = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "controller", "args": ["--listen=$(POD_IP):8080", "--log-format=json"]}]}}}});
    patch_args(&mut d, &["--dwell=0s".into(), "--log-format=text".into(), "--dwell=1s".into()]);
    let args = &d["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args, &serde_json::json!(["--listen=$(POD_IP):8080", "--log-format=text", "--dwell=1s"]));
}
