//! `pods/eviction` honouring PodDisruptionBudgets, and the budgets' status, over raw HTTP so
//! that the exact answers are checked: k/k `pkg/registry/core/pod/storage/eviction.go`
//! (429 `TooManyRequests`, message and `DisruptionBudget` cause, the budget decremented and the
//! pod recorded in `disruptedPods`, `DisruptionTarget` condition, one budget at most) and
//! `pkg/controller/disruption/disruption.go` (expected/desired/current healthy, condition).

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Raw, await_cond};

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "virtual/web"}]}}},
    }))
    .expect("a Deployment")
}

fn budget(name: &str, spec: serde_json::Value) -> PodDisruptionBudget {
    serde_json::from_value(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name}, "spec": spec}),
    )
    .expect("a PodDisruptionBudget")
}

fn allows(n: i32) -> impl Fn(Option<&PodDisruptionBudget>) -> bool {
    move |p| {
        p.and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.disruptions_allowed == n && s.current_healthy == s.expected_pods)
    }
}

async fn evict(raw: &Raw, pod: &str) -> support::reqwest_like::Response {
    let body =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "default"}});
    raw.send("POST", &format!("/api/v1/namespaces/default/pods/{pod}/eviction"), "application/json", &body.to_string())
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn eviction_honours_the_pods_disruption_budget() {
    let sim = support::start(2).await;
    let client = sim.client().unwrap();
    let raw = Raw::new(&sim);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    deployments.create(&PostParams::default(), &deployment(1)).await.unwrap();
    let created = pdbs
        .create(
            &PostParams::default(),
            &budget("web", json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}})),
        )
        .await
        .unwrap();
    // The four counters are always serialised, from the create on.
    let fresh = created.status.expect("status on create");
    assert_eq!(
        (fresh.disruptions_allowed, fresh.current_healthy, fresh.desired_healthy, fresh.expected_pods),
        (0, 0, 0, 0)
    );

    let pdb = await_cond(&pdbs, "web", "the budget counting the pod", |p: Option<&PodDisruptionBudget>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.current_healthy == 1)
    })
    .await
    .unwrap();
    let status = pdb.status.unwrap();
    assert_eq!((status.expected_pods, status.desired_healthy, status.disruptions_allowed), (1, 1, 0));
    assert_eq!(status.observed_generation, Some(1));
    let cond = status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "DisruptionAllowed").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "InsufficientPods"));

    let only = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
    let first = only[0].metadata.name.clone().unwrap();
    let r = evict(&raw, &first).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let s = r.json();
    assert_eq!(s["reason"], "TooManyRequests");
    assert_eq!(s["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(
        s["details"]["causes"],
        json!([{"reason": "DisruptionBudget", "message": "The disruption budget web needs 1 healthy pods and has 1 currently"}])
    );
    assert!(s["details"].get("retryAfterSeconds").is_none() && r.header("retry-after").is_empty());
    let still = pods.get(&first).await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_none(), "a refused eviction deletes nothing");

    let r = raw
        .send(
            "POST",
            &format!("/api/v1/namespaces/default/pods/{first}/eviction"),
            "application/json",
            &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}).to_string(),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, json!("name in URL does not match name in Eviction object"))
    );

    // A second ready replica makes room for one disruption.
    deployments
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}})))
        .await
        .unwrap();
    await_cond(&pdbs, "web", "one disruption allowed", allows(1)).await;
    let r = evict(&raw, &first).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["status"], "Success");
    let evicted = pods.get_opt(&first).await.unwrap();
    if let Some(p) = evicted {
        assert!(p.metadata.deletion_timestamp.is_some());
        let target =
            p.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "DisruptionTarget");
        let target = target.expect("DisruptionTarget condition");
        assert_eq!((target.status.as_str(), target.reason.as_deref()), ("True", Some("EvictionByEvictionAPI")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_under_two_budgets_cannot_be_evicted() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let raw = Raw::new(&sim);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    deployments.create(&PostParams::default(), &deployment(2)).await.unwrap();
    for name in ["a", "b"] {
        pdbs.create(
            &PostParams::default(),
            &budget(name, json!({"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}})),
        )
        .await
        .unwrap();
    }
    // maxUnavailable 50% of the Deployment's 2 replicas: 1 may go.
    let pdb = await_cond(&pdbs, "a", "the percentage budget", allows(1)).await.unwrap();
    let status = pdb.status.unwrap();
    assert_eq!((status.expected_pods, status.desired_healthy), (2, 1));
    let pod =
        pods.list(&ListParams::default().labels("app=web")).await.unwrap().items[0].metadata.name.clone().unwrap();
    let r = evict(&raw, &pod).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_over_pods_without_a_controller_fails_safe() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "lone", "labels": {"app": "lone"}},
        "spec": {"containers": [{"name": "c", "image": "virtual/x"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pdbs.create(
        &PostParams::default(),
        &budget("lone", json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "lone"}}})),
    )
    .await
    .unwrap();
    let pdb = await_cond(&pdbs, "lone", "SyncFailed", |p: Option<&PodDisruptionBudget>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.reason == "SyncFailed"))
    })
    .await
    .unwrap();
    let status = pdb.status.unwrap();
    assert_eq!(status.disruptions_allowed, 0);
    let cond = status.conditions.unwrap().into_iter().find(|c| c.type_ == "DisruptionAllowed").unwrap();
    assert_eq!(cond.message, "found no controller ref for pod \"lone\"");
}

/// A budget its controller has not seen yet (observedGeneration behind generation) refuses
/// with a retry hint, which clients honour: `Retry-After: 10` (eviction.go `tooManyRequests`).
#[tokio::test(flavor = "multi_thread")]
async fn a_budget_not_yet_processed_asks_to_retry() {
    // No controllers: the budget's status stays as created, the test plays the kubelet.
    let sim = support::start_with(sim::SimConfig { workload_controllers: false, ..Default::default() }).await;
    let client = sim.client().unwrap();
    let raw = Raw::new(&sim);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "labels": {"app": "p"}},
        "spec": {"containers": [{"name": "c", "image": "virtual/x"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    await_cond(&pods, "p", "the pod running", |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.phase.as_deref() == Some("Running"))
    })
    .await;
    pdbs.create(
        &PostParams::default(),
        &budget("p", json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "p"}}})),
    )
    .await
    .unwrap();
    let r = evict(&raw, "p").await;
    assert_eq!(r.status, 429, "{}", r.body);
    let s = r.json();
    assert_eq!(s["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(s["details"]["retryAfterSeconds"], 10);
    assert_eq!(s["details"]["causes"][0]["message"], "The disruption budget p is still being processed by the server.");
    assert_eq!(r.header("retry-after"), ["10"]);
}
