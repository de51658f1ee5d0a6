//! Helpers for the scheduler, node lifecycle and service proxy tests: node status as a kubelet
//! would post it, Lease heartbeats, and waiting (by watch) for pods and Events.
#![allow(dead_code)]

use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use sim::{Sim, SimConfig};

/// Name of node `i` (1-based) of the default cluster.
pub fn node_name(i: usize) -> String {
    if i == 1 { "hadrill-worker".into() } else { format!("hadrill-worker{i}") }
}

/// Starts a cluster of `nodes` nodes with a tweaked configuration. The nodes get no kubelet:
/// these tests play it through the API (node status, Leases, pod status) to control exactly
/// what the scheduler, node lifecycle controller and proxy see.
pub async fn start(nodes: usize, tweak: impl FnOnce(&mut SimConfig)) -> Sim {
    let mut config = SimConfig { nodes, ..Default::default() };
    config.kubelet.enabled = false;
    tweak(&mut config);
    Sim::start(config).await.expect("embedded cluster starts")
}

/// `now` as Kubernetes Time (seconds).
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `now` as Kubernetes MicroTime.
pub fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Posts the node status a kubelet would: Ready=`ready` and the given allocatable resources.
pub async fn post_node_status(client: &kube::Client, node: &str, ready: bool, allocatable: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let (status, reason) = if ready { ("True", "KubeletReady") } else { ("False", "KubeletNotReady") };
    let patch = json!({"status": {
        "conditions": [
            {"type": "Ready", "status": status, "reason": reason, "message": "posted by the test",
             "lastHeartbeatTime": now(), "lastTransitionTime": now()},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastHeartbeatTime": now(), "lastTransitionTime": now()}
        ],
        "allocatable": allocatable, "capacity": allocatable,
    }});
    nodes.patch_status(node, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("post node status");
}

/// Makes nodes 1..=n Ready with `cpu` and `memory` allocatable, and waits until the scheduler
/// may use them (no taints left).
pub async fn ready_nodes(client: &kube::Client, n: usize, cpu: &str, memory: &str) {
    for i in 1..=n {
        post_node_status(client, &node_name(i), true, json!({"cpu": cpu, "memory": memory, "pods": "110"})).await;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 1..=n {
        await_obj(&nodes, &node_name(i), "node without taints", |n: Option<&Node>| {
            n.and_then(|n| n.spec.as_ref()).is_some_and(|s| s.taints.as_ref().is_none_or(Vec::is_empty))
        })
        .await;
    }
}

/// Renews the node's Lease in kube-node-lease (creating it first).
pub async fn renew_lease(client: &kube::Client, node: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now_micro()}
    }))
    .expect("lease");
    if leases.create(&PostParams::default(), &lease).await.is_err() {
        let patch = json!({"spec": {"renewTime": now_micro()}});
        leases.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("renew lease");
    }
}

/// A fake kubelet heartbeat: renews the node's Lease every `period` until dropped.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    /// Starts renewing `node`'s Lease.
    pub fn start(client: &kube::Client, node: &str, period: Duration) -> Heartbeat {
        let (client, node) = (client.clone(), node.to_string());
        Heartbeat(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                renew_lease(&client, &node).await;
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits (by watch, 15 s at most) until `cond` holds for the named object; returns it.
pub async fn await_obj<K, C>(api: &Api<K>, name: &str, what: &str, cond: C) -> Option<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: kube::runtime::wait::Condition<K>,
{
    tokio::time::timeout(Duration::from_secs(15), kube::runtime::wait::await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what} ({name})"))
        .expect("watch")
}

/// The node a pod is bound to.
pub fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// Waits until the pod is bound; returns the node.
pub async fn await_bound(pods: &Api<Pod>, name: &str) -> String {
    let p = await_obj(pods, name, "the pod to be bound", |p: Option<&Pod>| p.and_then(node_of).is_some()).await;
    p.and_then(|p| node_of(&p)).expect("bound pod")
}

/// The condition of `kind` of a pod.
pub fn pod_condition(p: &Pod, kind: &str) -> Option<k8s_openapi::api::core::v1::PodCondition> {
    p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind).cloned()
}

/// Waits until the pod is reported unschedulable; returns the PodScheduled message.
pub async fn await_unschedulable(pods: &Api<Pod>, name: &str) -> String {
    let p = await_obj(pods, name, "PodScheduled=False", |p: Option<&Pod>| {
        p.and_then(|p| pod_condition(p, "PodScheduled"))
            .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    })
    .await
    .expect("pod");
    pod_condition(&p, "PodScheduled").and_then(|c| c.message).unwrap_or_default()
}

/// Waits (by watch, 15 s at most) for an Event about `object` with `reason`; returns it.
pub async fn await_event(client: &kube::Client, namespace: &str, object: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("involvedObject.name={object}"));
    let stream = watcher(events, config).applied_objects();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.try_next().await.expect("event watch") {
            if ev.reason.as_deref() == Some(reason) {
                return ev;
            }
        }
        panic!("event watch ended")
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {reason} event for {object} within 15 s"))
}

/// Creates a pod from JSON (`metadata` + `spec`), in `default`.
pub async fn create_pod(pods: &Api<Pod>, body: Value) -> Pod {
    let mut body = body;
    if body["spec"]["containers"].is_null() {
        body["spec"]["containers"] = json!([{"name": "app", "image": "hadrill/virtual:1"}]);
    }
    let pod: Pod = serde_json::from_value(body).expect("pod JSON");
    pods.create(&PostParams::default(), &pod).await.expect("create pod")
}
