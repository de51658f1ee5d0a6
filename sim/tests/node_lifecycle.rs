//! The node lifecycle and taint eviction controllers: lost heartbeats make a node Unknown and
//! tainted, its pods not ready and then evicted after their tolerationSeconds; a kubelet that
//! reports NotReady gets the not-ready taints; recovery removes the taints; a cluster with no
//! Ready node at all evicts nothing.

mod network_support;

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use network_support::*;
use serde_json::json;
use sim::controllers::node_lifecycle::NodeLifecycleConfig;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

fn fast() -> NodeLifecycleConfig {
    NodeLifecycleConfig {
        monitor_period: Duration::from_millis(100),
        grace_period: Duration::from_secs(1),
        startup_grace_period: Duration::from_secs(1),
        ..Default::default()
    }
}

fn taints(n: &Node) -> Vec<(String, String)> {
    n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default().into_iter().map(|t| (t.key, t.effect)).collect()
}

fn has_taint(n: Option<&Node>, key: &str, effect: &str) -> bool {
    n.is_some_and(|n| taints(n).iter().any(|(k, e)| k == key && e == effect))
}

fn condition(n: &Node, kind: &str) -> Option<k8s_openapi::api::core::v1::NodeCondition> {
    n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind).cloned()
}

/// A pod bound to `node` whose container is Ready (as its kubelet would report).
async fn running_pod(pods: &Api<Pod>, name: &str, node: &str, tolerations: serde_json::Value) {
    create_pod(pods, json!({"metadata": {"name": name}, "spec": {"nodeName": node, "tolerations": tolerations}})).await;
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now()},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

fn unreachable_for(seconds: Option<i64>) -> serde_json::Value {
    let mut t = json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = seconds {
        t["tolerationSeconds"] = json!(s);
    }
    json!([t])
}

fn deleting(p: Option<&Pod>) -> bool {
    p.is_some_and(|p| p.metadata.deletion_timestamp.is_some())
}

#[tokio::test]
async fn a_silent_node_goes_unknown_is_tainted_and_its_pods_are_evicted_by_toleration() {
    let sim = start(3, |c| c.node_lifecycle = fast()).await;
    let client = sim.client().unwrap();
    let mut beats: Vec<Option<Heartbeat>> =
        (1..=3).map(|i| Some(Heartbeat::start(&client, &node_name(i), Duration::from_millis(100)))).collect();
    ready_nodes(&client, 3, "4", "8Gi").await;
    let lost = node_name(1);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    running_pod(&pods, "zero", &lost, unreachable_for(Some(0))).await;
    running_pod(&pods, "short", &lost, unreachable_for(Some(2))).await;
    running_pod(&pods, "forever", &lost, unreachable_for(None)).await;
    running_pod(&pods, "elsewhere", &node_name(2), unreachable_for(Some(0))).await;

    beats[0] = None; // the kubelet of node 1 stops
    let stopped = Instant::now();
    let nodes: Api<Node> = Api::all(client.clone());
    let node = await_obj(&nodes, &lost, "Ready=Unknown", |n: Option<&Node>| {
        n.and_then(|n| condition(n, "Ready")).is_some_and(|c| c.status == "Unknown")
    })
    .await
    .unwrap();
    assert!(stopped.elapsed() >= Duration::from_millis(900), "not before the grace period: {:?}", stopped.elapsed());
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
    assert_eq!(condition(&node, "MemoryPressure").unwrap().status, "Unknown");

    let node = await_obj(&nodes, &lost, "unreachable NoExecute taint", |n: Option<&Node>| {
        has_taint(n, UNREACHABLE, "NoExecute") && has_taint(n, UNREACHABLE, "NoSchedule")
    })
    .await
    .unwrap();
    let tainted = Instant::now();
    let spec_taints = node.spec.unwrap().taints.unwrap();
    assert!(spec_taints.iter().all(|t| t.time_added.is_some()), "{spec_taints:?}");
    await_event(&client, "default", &lost, "NodeNotReady").await;

    let forever = await_obj(&pods, "forever", "pod Ready=False", |p: Option<&Pod>| {
        p.and_then(|p| pod_condition(p, "Ready")).is_some_and(|c| c.status == "False")
    })
    .await
    .unwrap();
    assert!(forever.metadata.deletion_timestamp.is_none());
    let ev = await_event(&client, "default", "forever", "NodeNotReady").await;
    assert_eq!(ev.message.as_deref(), Some("Node is not ready"));

    let zero = await_obj(&pods, "zero", "immediate eviction", deleting).await.unwrap();
    assert!(tainted.elapsed() < Duration::from_secs(1), "tolerationSeconds 0 evicts at once");
    let disruption = pod_condition(&zero, "DisruptionTarget").expect("DisruptionTarget condition");
    assert_eq!(disruption.reason.as_deref(), Some("DeletionByTaintManager"));

    await_obj(&pods, "short", "eviction after 2 s", deleting).await;
    let waited = tainted.elapsed();
    assert!(waited >= Duration::from_millis(1800), "evicted after its tolerationSeconds, not before: {waited:?}");
    let ev = await_event(&client, "default", "short", "TaintManagerEviction").await;
    assert_eq!(ev.message.as_deref(), Some("Marking for deletion Pod default/short"));
    assert!(!deleting(pods.get("forever").await.ok().as_ref()), "no tolerationSeconds: never evicted");
    assert!(!deleting(pods.get("elsewhere").await.ok().as_ref()), "pods of healthy nodes stay");

    // The kubelet comes back: Ready again, taints gone.
    beats[0] = Some(Heartbeat::start(&client, &lost, Duration::from_millis(100)));
    post_node_status(&client, &lost, true, json!({"cpu": "4", "memory": "8Gi", "pods": "110"})).await;
    await_obj(&nodes, &lost, "taints removed", |n: Option<&Node>| n.is_some_and(|n| taints(n).is_empty())).await;
    drop(beats);
}

#[tokio::test]
async fn a_kubelet_reporting_not_ready_gets_the_not_ready_taints_until_ready() {
    let sim = start(3, |c| c.node_lifecycle = fast()).await;
    let client = sim.client().unwrap();
    let _beats: Vec<Heartbeat> =
        (1..=3).map(|i| Heartbeat::start(&client, &node_name(i), Duration::from_millis(100))).collect();
    ready_nodes(&client, 3, "4", "8Gi").await;
    let sick = node_name(2);
    post_node_status(&client, &sick, false, json!({"cpu": "4", "memory": "8Gi", "pods": "110"})).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = await_obj(&nodes, &sick, "not-ready taints", |n: Option<&Node>| {
        has_taint(n, NOT_READY, "NoSchedule") && has_taint(n, NOT_READY, "NoExecute")
    })
    .await
    .unwrap();
    assert_eq!(condition(&node, "Ready").unwrap().status, "False", "the kubelet's own condition is kept");
    assert!(!has_taint(Some(&node), UNREACHABLE, "NoExecute"));
    post_node_status(&client, &sick, true, json!({"cpu": "4", "memory": "8Gi", "pods": "110"})).await;
    await_obj(&nodes, &sick, "taints removed", |n: Option<&Node>| n.is_some_and(|n| taints(n).is_empty())).await;
}

#[tokio::test]
async fn with_no_ready_node_anywhere_nothing_is_evicted() {
    // One node = one zone; losing it disrupts every zone, which Kubernetes treats as a
    // control-plane problem: NoSchedule taints, but no NoExecute taints and no evictions.
    let sim = start(1, |c| c.node_lifecycle = fast()).await;
    let client = sim.client().unwrap();
    let beat = Heartbeat::start(&client, &node_name(1), Duration::from_millis(100));
    ready_nodes(&client, 1, "4", "8Gi").await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    running_pod(&pods, "zero", &node_name(1), unreachable_for(Some(0))).await;

    let nodes: Api<Node> = Api::all(client.clone());
    let seen = watcher(nodes.clone(), watcher::Config::default().fields(&format!("metadata.name={}", node_name(1))))
        .applied_objects();
    let history = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = tokio::spawn({
        let history = history.clone();
        async move {
            let mut seen = std::pin::pin!(seen);
            while let Ok(Some(n)) = seen.try_next().await {
                history.lock().unwrap().push(taints(&n));
            }
        }
    });

    drop(beat);
    await_obj(&nodes, &node_name(1), "unreachable NoSchedule", |n: Option<&Node>| {
        has_taint(n, UNREACHABLE, "NoSchedule")
    })
    .await;
    let _beat = Heartbeat::start(&client, &node_name(1), Duration::from_millis(100));
    post_node_status(&client, &node_name(1), true, json!({"cpu": "4", "memory": "8Gi", "pods": "110"})).await;
    await_obj(&nodes, &node_name(1), "taints removed", |n: Option<&Node>| n.is_some_and(|n| taints(n).is_empty()))
        .await;
    recorder.abort();
    let history = history.lock().unwrap().clone();
    assert!(history.iter().any(|t| t.contains(&(UNREACHABLE.to_string(), "NoSchedule".to_string()))), "{history:?}");
    assert!(history.iter().flatten().all(|(_, effect)| effect != "NoExecute"), "{history:?}");
    assert!(!deleting(pods.get("zero").await.ok().as_ref()), "no eviction in a full disruption");
}
