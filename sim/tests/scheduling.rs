//! The scheduler: filters (readiness, nodeSelector, taints, resources, pod (anti-)affinity),
//! spreading, the unschedulable condition and Event, and retries when the cluster changes.

mod network_support;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use network_support::*;
use serde_json::json;

const TAIL_RESOLVABLE: &str =
    "no new claims to deallocate, preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";

fn anti_affinity(app: &str, topology_key: &str) -> serde_json::Value {
    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": topology_key}]}})
}

#[tokio::test]
async fn pods_wait_for_ready_nodes_then_honour_the_node_selector() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    create_pod(&pods, json!({"metadata": {"name": "early"}, "spec": {}})).await;
    let msg = await_unschedulable(&pods, "early").await;
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 node(s) had untolerated taint(s). no new claims to deallocate, preemption: \
         0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
        "nodes that never posted Ready count as not-ready"
    );
    let ev = await_event(&client, "default", "early", "FailedScheduling").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.message.as_deref(), Some(msg.as_str()));

    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(&node_name(2), &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"labels": {"disk": "ssd"}}})))
        .await
        .unwrap();
    ready_nodes(&client, 3, "4", "8Gi").await;
    assert!(await_bound(&pods, "early").await.starts_with("hadrill-worker"), "scheduled once nodes became Ready");
    let scheduled = await_event(&client, "default", "early", "Scheduled").await;
    assert!(scheduled.message.unwrap_or_default().starts_with("Successfully assigned default/early to "));

    for i in 0..3 {
        create_pod(&pods, json!({"metadata": {"name": format!("ssd-{i}")}, "spec": {"nodeSelector": {"disk": "ssd"}}}))
            .await;
    }
    for i in 0..3 {
        assert_eq!(await_bound(&pods, &format!("ssd-{i}")).await, node_name(2));
    }
    create_pod(&pods, json!({"metadata": {"name": "nowhere"}, "spec": {"nodeSelector": {"disk": "nvme"}}})).await;
    let msg = await_unschedulable(&pods, "nowhere").await;
    assert!(msg.starts_with("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "), "{msg}");
    // A node that gets the label makes it schedulable.
    nodes
        .patch(
            &node_name(3),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"disk": "nvme"}}})),
        )
        .await
        .unwrap();
    assert_eq!(await_bound(&pods, "nowhere").await, node_name(3));
}

#[tokio::test]
async fn hostname_anti_affinity_spreads_replicas_and_waits_for_a_free_node() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    ready_nodes(&client, 3, "4", "8Gi").await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let spec = json!({"affinity": anti_affinity("web", "kubernetes.io/hostname")});
    let mut placed = std::collections::BTreeSet::new();
    for i in 0..3 {
        create_pod(&pods, json!({"metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}}, "spec": spec}))
            .await;
        placed.insert(await_bound(&pods, &format!("web-{i}")).await);
    }
    assert_eq!(placed.len(), 3, "one replica per node: {placed:?}");

    create_pod(&pods, json!({"metadata": {"name": "web-3", "labels": {"app": "web"}}, "spec": spec})).await;
    let msg = await_unschedulable(&pods, "web-3").await;
    assert_eq!(
        msg,
        format!("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. {TAIL_RESOLVABLE}")
    );
    let ev = await_event(&client, "default", "web-3", "FailedScheduling").await;
    assert_eq!(ev.message.as_deref(), Some(msg.as_str()));

    let freed = pods.get("web-1").await.unwrap();
    let freed_node = node_of(&freed).unwrap();
    pods.delete("web-1", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    assert_eq!(await_bound(&pods, "web-3").await, freed_node, "scheduled as soon as the node freed up");
}

#[tokio::test]
async fn zone_anti_affinity_allows_one_replica_per_zone() {
    // Nodes 1 and 4 share zone-a; 2 is zone-b, 3 zone-c.
    let sim = start(4, |_| {}).await;
    let client = sim.client().unwrap();
    ready_nodes(&client, 4, "4", "8Gi").await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let spec = json!({"affinity": anti_affinity("db", "topology.kubernetes.io/zone")});
    let nodes: Api<Node> = Api::all(client.clone());
    let mut zones = std::collections::BTreeSet::new();
    for i in 0..3 {
        create_pod(&pods, json!({"metadata": {"name": format!("db-{i}"), "labels": {"app": "db"}}, "spec": spec}))
            .await;
        let node = await_bound(&pods, &format!("db-{i}")).await;
        let n = nodes.get(&node).await.unwrap();
        zones.insert(n.metadata.labels.unwrap()["topology.kubernetes.io/zone"].clone());
    }
    assert_eq!(zones.len(), 3, "{zones:?}");
    create_pod(&pods, json!({"metadata": {"name": "db-3", "labels": {"app": "db"}}, "spec": spec})).await;
    let msg = await_unschedulable(&pods, "db-3").await;
    assert!(msg.starts_with("0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."), "{msg}");
    // A pod of another app that the db pods' anti-affinity does not select schedules fine.
    create_pod(&pods, json!({"metadata": {"name": "cache", "labels": {"app": "cache"}}, "spec": {}})).await;
    await_bound(&pods, "cache").await;
}

#[tokio::test]
async fn taints_keep_out_pods_without_tolerations() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    ready_nodes(&client, 3, "4", "8Gi").await;
    let nodes: Api<Node> = Api::all(client.clone());
    for i in [2, 3] {
        let patch = json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}});
        nodes.patch(&node_name(i), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for i in 0..3 {
        create_pod(&pods, json!({"metadata": {"name": format!("plain-{i}")}, "spec": {}})).await;
        assert_eq!(await_bound(&pods, &format!("plain-{i}")).await, node_name(1));
    }
    let on_two = json!({"kubernetes.io/hostname": node_name(2)});
    create_pod(&pods, json!({"metadata": {"name": "intolerant"}, "spec": {"nodeSelector": on_two}})).await;
    let msg = await_unschedulable(&pods, "intolerant").await;
    // TaintToleration runs before NodeAffinity: the tainted nodes count as tainted.
    assert_eq!(
        msg,
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) had untolerated taint(s). \
         no new claims to deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    let tolerations = json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]);
    create_pod(
        &pods,
        json!({"metadata": {"name": "tolerant"}, "spec": {"nodeSelector": on_two, "tolerations": tolerations}}),
    )
    .await;
    assert_eq!(await_bound(&pods, "tolerant").await, node_name(2));
    // PreferNoSchedule does not filter; NoExecute does.
    let patch = json!({"spec": {"taints": [{"key": "soft", "effect": "PreferNoSchedule"}]}});
    nodes.patch(&node_name(2), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(await_bound(&pods, "intolerant").await, node_name(2), "retried when the taints changed");
    // Cordoning: spec.unschedulable.
    let patch = json!({"spec": {"unschedulable": true}});
    nodes.patch(&node_name(1), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let on_one = json!({"kubernetes.io/hostname": node_name(1)});
    create_pod(&pods, json!({"metadata": {"name": "cordoned"}, "spec": {"nodeSelector": on_one}})).await;
    let msg = await_unschedulable(&pods, "cordoned").await;
    assert!(msg.contains("1 node(s) were unschedulable"), "{msg}");
}

#[tokio::test]
async fn resource_requests_must_fit_and_a_freed_node_takes_the_waiting_pod() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    ready_nodes(&client, 3, "1", "1Gi").await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let requests = |cpu: &str, mem: &str| {
        json!({"containers": [{"name": "app", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": mem}}}],
            "initContainers": [{"name": "init", "image": "x", "resources": {"requests": {"cpu": "100m", "memory": "900Mi"}}}]})
    };
    create_pod(&pods, json!({"metadata": {"name": "huge"}, "spec": requests("2", "64Mi")})).await;
    let msg = await_unschedulable(&pods, "huge").await;
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 Insufficient cpu. no new claims to deallocate, preemption: 0/3 nodes are available: \
         3 Preemption is not helpful for scheduling."
    );
    let mut used = std::collections::BTreeSet::new();
    for i in 0..3 {
        create_pod(&pods, json!({"metadata": {"name": format!("big-{i}")}, "spec": requests("600m", "128Mi")})).await;
        used.insert(await_bound(&pods, &format!("big-{i}")).await);
    }
    assert_eq!(used.len(), 3, "least-requested spreading puts one per node");
    // 600m + 600m > 1 CPU, and the init container's 900Mi + 900Mi > 1Gi.
    create_pod(&pods, json!({"metadata": {"name": "waiting"}, "spec": requests("600m", "128Mi")})).await;
    let msg = await_unschedulable(&pods, "waiting").await;
    assert_eq!(msg, format!("0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory. {TAIL_RESOLVABLE}"));
    let ev = await_event(&client, "default", "waiting", "FailedScheduling").await;
    assert_eq!(ev.message.as_deref(), Some(msg.as_str()));
    let freed = node_of(&pods.get("big-2").await.unwrap()).unwrap();
    pods.delete("big-2", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    assert_eq!(await_bound(&pods, "waiting").await, freed);
}

#[tokio::test]
async fn a_new_node_takes_pods_nothing_else_fits() {
    let sim = start(2, |_| {}).await;
    let client = sim.client().unwrap();
    ready_nodes(&client, 1, "4", "8Gi").await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let selector = json!({"pool": "new"});
    create_pod(&pods, json!({"metadata": {"name": "for-new"}, "spec": {"nodeSelector": selector}})).await;
    let msg = await_unschedulable(&pods, "for-new").await;
    assert!(msg.starts_with("0/2 nodes are available: "), "{msg}");
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "fresh", "labels": {"pool": "new",
        "kubernetes.io/hostname": "fresh"}}, "spec": {}}))
    .unwrap();
    nodes.create(&Default::default(), &node).await.unwrap();
    post_node_status(&client, "fresh", true, json!({"cpu": "2", "memory": "2Gi", "pods": "110"})).await;
    assert_eq!(await_bound(&pods, "for-new").await, "fresh");
}
