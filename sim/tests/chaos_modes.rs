//! Selection against the embedded cluster: every selector field and mode picks the right
//! pods, the seeded choice replays, and nothing is left behind. The chaos objects are
//! NetworkChaos delay faults (no host effect besides the proxy's fault table), the pods
//! virtual (no process), placed on nodes by name.

mod chaos_support;
mod support;

use chaos_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Ten virtual pods `p0`..`p9` in `ns`: even ones on node 1 with `tier=front`, odd ones on
/// node 2 with `tier=back`; `p0` annotated `pick=me`; all labelled `app=m` and `n=<i>`.
async fn pods(client: &kube::Client, ns: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    for i in 0..10 {
        let node = if i % 2 == 0 { "hadrill-worker" } else { "hadrill-worker2" };
        let tier = if i % 2 == 0 { "front" } else { "back" };
        let mut meta = json!({"name": format!("p{i}"), "labels": {"app": "m", "tier": tier, "n": i.to_string()}});
        if i == 0 {
            meta["annotations"] = json!({"pick": "me"});
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "example/virtual"}]},
        }))
        .unwrap();
        api.create(&PostParams::default(), &pod).await.unwrap();
    }
    for i in 0..10 {
        wait_for(&api, &format!("p{i}"), "Running", |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref()?.phase.clone()).as_deref() == Some("Running")
        })
        .await;
    }
}

/// Creates a delay fault named `name` with `selector`, `mode` and `value`, waits until the
/// engine decided, and returns the picked pod names (sorted); then deletes it.
async fn picks(
    client: &kube::Client,
    ns: &str,
    name: &str,
    selector: Value,
    mode: &str,
    value: Option<&str>,
) -> Vec<String> {
    let mut spec = json!({"action": "delay", "mode": mode, "delay": {"latency": "10ms"}, "selector": selector});
    if let Some(v) = value {
        spec["value"] = json!(v);
    }
    create_chaos(client, ns, json!({"kind": "NetworkChaos", "metadata": {"name": name}, "spec": spec})).await;
    let api = chaos_api(client, ns, "NetworkChaos");
    let obj = wait_for(&api, name, "selection decided", |o: Option<&kube::api::DynamicObject>| {
        o.is_some_and(|o| condition(o, "Selected").is_some())
    })
    .await;
    let mut names: Vec<String> =
        record_ids(&obj).into_iter().map(|id| id.rsplit('/').next().unwrap().to_string()).collect();
    names.sort();
    delete_and_await_gone(&api, name).await;
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn every_selector_field_and_mode_picks_the_right_pods() {
    let sim = start(2).await;
    let client = sim.client().unwrap();
    namespace(&client, "modes").await;
    pods(&client, "modes").await;
    let ns = "modes";
    let all = json!({"labelSelectors": {"app": "m"}});
    let evens: Vec<String> = (0..10).step_by(2).map(|i| format!("p{i}")).collect();

    // Modes.
    assert_eq!(picks(&client, ns, "all", all.clone(), "all", None).await.len(), 10);
    assert_eq!(picks(&client, ns, "one", all.clone(), "one", None).await.len(), 1);
    assert_eq!(picks(&client, ns, "fixed", all.clone(), "fixed", Some("3")).await.len(), 3);
    assert_eq!(picks(&client, ns, "fixed-big", all.clone(), "fixed", Some("30")).await.len(), 10);
    assert_eq!(picks(&client, ns, "pct", all.clone(), "fixed-percent", Some("25")).await.len(), 3, "ceil(10 × 25%)");
    let rmp = picks(&client, ns, "rmp", all.clone(), "random-max-percent", Some("40")).await.len();
    assert!(rmp <= 4, "random-max-percent 40 of 10 picked {rmp}");

    // Selector fields.
    assert_eq!(picks(&client, ns, "labels", json!({"labelSelectors": {"tier": "front"}}), "all", None).await, evens);
    let expr = json!({"expressionSelectors": [{"key": "n", "operator": "In", "values": ["1", "2"]}]});
    assert_eq!(picks(&client, ns, "expr", expr, "all", None).await, ["p1", "p2"]);
    assert_eq!(picks(&client, ns, "ann", json!({"annotationSelectors": {"pick": "me"}}), "all", None).await, ["p0"]);
    assert_eq!(
        picks(&client, ns, "field", json!({"fieldSelectors": {"metadata.name": "p7"}}), "all", None).await,
        ["p7"]
    );
    assert_eq!(picks(&client, ns, "nodes", json!({"nodes": ["hadrill-worker"]}), "all", None).await, evens);
    let by_label = json!({"nodeSelectors": {"kubernetes.io/hostname": "hadrill-worker2"}});
    assert_eq!(picks(&client, ns, "nodesel", by_label, "all", None).await.len(), 5);
    assert_eq!(
        picks(&client, ns, "phase", json!({"podPhaseSelectors": ["Pending"]}), "all", None).await,
        Vec::<String>::new()
    );
    let named = json!({"pods": {"modes": ["p3", "p4", "missing"]}, "labelSelectors": {"app": "nothing"}});
    assert_eq!(picks(&client, ns, "named", named, "all", None).await, ["p3", "p4"], "pods overrides the rest");
    let other_ns = json!({"namespaces": ["default"], "labelSelectors": {"app": "m"}});
    assert!(picks(&client, ns, "otherns", other_ns, "all", None).await.is_empty());
    let combined = json!({"labelSelectors": {"tier": "back"}, "expressionSelectors": [{"key": "n", "operator": "NotIn", "values": ["1"]}]});
    assert_eq!(picks(&client, ns, "and", combined, "all", None).await, ["p3", "p5", "p7", "p9"]);

    // A node that does not exist fails the selection, with the field named.
    create_chaos(
        &client,
        ns,
        json!({"kind": "NetworkChaos", "metadata": {"name": "ghost"},
        "spec": {"action": "delay", "mode": "all", "delay": {"latency": "10ms"}, "selector": {"nodes": ["ghost"]}}}),
    )
    .await;
    let api = chaos_api(&client, ns, "NetworkChaos");
    let obj = await_conditions(&api, "ghost", &[("Selected", "False")]).await;
    let reason = obj.data["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Selected").unwrap()
        ["reason"]
        .clone();
    assert!(reason.as_str().unwrap_or_default().contains("spec.selector.nodes"), "{reason}");
    delete_and_await_gone(&api, "ghost").await;
    // A bad value is refused with the field named.
    create_chaos(&client, ns, json!({"kind": "NetworkChaos", "metadata": {"name": "badvalue"},
        "spec": {"action": "delay", "mode": "fixed-percent", "value": "50%", "delay": {"latency": "10ms"}, "selector": all}}))
    .await;
    let obj = await_conditions(&api, "badvalue", &[("Selected", "False")]).await;
    assert!(obj.data["status"]["conditions"].to_string().contains("spec.value"), "{}", obj.data["status"]);
    delete_and_await_gone(&api, "badvalue").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_seed_replays_the_same_random_picks() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let sim = start(2).await;
        assert_eq!(sim.chaos().unwrap().seed(), SEED);
        let client = sim.client().unwrap();
        namespace(&client, "replay").await;
        pods(&client, "replay").await;
        let all = json!({"labelSelectors": {"app": "m"}});
        let fixed = picks(&client, "replay", "fixed", all.clone(), "fixed", Some("4")).await;
        let one = picks(&client, "replay", "one", all, "one", None).await;
        seen.push((fixed, one));
        assert_no_leftovers(sim).await;
    }
    println!("seed {SEED}: picks {:?}", seen[0]);
    assert_eq!(seen[0], seen[1], "the same seed picks the same pods");
}
