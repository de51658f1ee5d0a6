//! Every scenario of the library, rendered, injected through the harness's lifecycle into the
//! embedded cluster's chaos engine (the real chaos-controller-manager stand-in), and recovered
//! the way `hadrill inject` recovers it; afterwards nothing is left: no chaos object, no
//! iptables chain, no stress worker, no stopped heartbeat.

use std::time::Duration;

use hadrill::chaos::lifecycle::{InjectOptions, Recovery, Run};
use hadrill::chaos::model::ChaosStatus as _;
use hadrill::scenarios::{Library, RenderOptions};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

/// Two virtual pods (unmapped image) pinned to a node each, (re)created when a kill removed them.
/// They carry the HA pair's labels and container name, which the scenarios' defaults select.
async fn ensure_pods(pods: &Api<Pod>) {
    for (name, side, node) in
        [("dispatch-0", "primary", "hadrill-worker"), ("dispatch-1", "standby", "hadrill-worker2")]
    {
        if let Some(old) = pods.get_opt(name).await.expect("get pod") {
            if old.metadata.deletion_timestamp.is_none() {
                continue;
            }
            let uid = old.metadata.uid.clone().unwrap_or_default();
            let gone = await_condition(pods.clone(), name, conditions::is_deleted(&uid));
            tokio::time::timeout(Duration::from_secs(30), gone).await.expect("old pod gone in time").expect("watch");
        }
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "dispatch", "side": side}},
            "spec": {"nodeName": node, "containers": [{"name": "server", "image": "example/dispatch"}]},
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &p).await.expect("create pod");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_library_scenario_injects_and_recovers_against_the_engine() {
    sim::install_crypto_provider();
    let sim = sim::Sim::start(sim::SimConfig { nodes: 2, ..Default::default() }).await.expect("sim");
    let iptables = sim.chaos().expect("chaos engine").iptables();
    if let Err(why) = &iptables {
        assert!(
            std::env::var("HADRILL_REQUIRE_IPTABLES").as_deref() != Ok("1"),
            "iptables is required (HADRILL_REQUIRE_IPTABLES=1) but unusable: {why}"
        );
        eprintln!("NOTICE: iptables unusable ({why}); network scenarios are skipped");
    }
    let client = sim.client().expect("client");
    let dir = std::env::temp_dir().join(format!("hadrill-engine-e2e-{}", std::process::id()));
    let run = Run::new(client.clone(), &dir, None).expect("run");
    run.create_namespace("e2e").await.expect("namespace");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "e2e");
    let library = Library::builtin().expect("library");
    let mut seen = Vec::new();
    for scenario in library.scenarios() {
        let name = scenario.name.as_str();
        ensure_pods(&pods).await;
        let network = name.contains("network") || name.contains("partition");
        if network && iptables.is_err() {
            continue;
        }
        // The controller's scenario targets the controller's pod: name one of ours.
        let mut opts = RenderOptions::in_namespace("e2e");
        if scenario.parameter_named("leader_pod").is_some() {
            opts = opts.set("leader_pod", "dispatch-1");
        }
        if scenario.parameter_named("node").is_some() {
            opts = opts.set("node", "hadrill-worker");
        }
        if scenario.parameter_named("duration").is_some() {
            opts = opts.set("duration", "2s");
        }
        // A ChaosBlade's own timer, in seconds: it ends by itself, like a Chaos Mesh duration.
        if scenario.parameter_named("timeout").is_some() {
            opts = opts.set("timeout", "2");
        }
        let rendered = library.render(name, &opts).unwrap_or_else(|e| panic!("{name}: render: {e}"));
        let action = rendered.resource.action();
        let one_shot = matches!(action.as_str(), "pod-kill" | "container-kill");
        // A ChaosBlade ends on its own timer on the node: recovered once that ran out and its
        // node is Ready again (the operator's status never says so).
        let blade = rendered.resource.kind() == hadrill::chaos::ChaosKind::ChaosBlade;
        let ends_by_itself = scenario.parameter_named("duration").is_some() || blade;
        let how = if one_shot || !ends_by_itself { Recovery::Delete } else { Recovery::Duration };
        let options = InjectOptions {
            scenario: Some(name.into()),
            targets_timeout: Duration::from_secs(30),
            injected_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let injection = run.inject(&rendered.resource, &options).await.unwrap_or_else(|e| panic!("{name}: {e:#}"));
        // Chaos Mesh objects show their targets as records; a ChaosBlade's inject returned only
        // once the operator reported every experiment Running.
        assert!(
            blade || !injection.status().records().is_empty(),
            "{name}: no record: {}",
            injection.status().describe()
        );
        let t = injection.recover(how, Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let recovered = t.recovered.unwrap_or_else(|| panic!("{name}: recovery not confirmed"));
        if blade {
            let after = recovered.duration_since(t.created).unwrap_or_default();
            assert!(
                after >= Duration::from_secs(2),
                "{name}: recovered {after:?} after the create, before its timeout"
            );
            let node: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
            let node = node.get("hadrill-worker").await.expect("node");
            let ready = node.status.and_then(|s| s.conditions).unwrap_or_default();
            assert!(
                ready.iter().any(|c| c.type_ == "Ready" && c.status == "True"),
                "{name}: node not Ready: {ready:?}"
            );
        }
        seen.push(name.to_string());
    }
    assert!(seen.len() >= 5, "too few scenarios ran: {seen:?}");
    run.finish().await.expect("finish");
    for (kind, plural) in [("PodChaos", "podchaos"), ("NetworkChaos", "networkchaos"), ("StressChaos", "stresschaos")] {
        let ar = kube::api::ApiResource {
            group: "chaos-mesh.org".into(),
            version: "v1alpha1".into(),
            api_version: "chaos-mesh.org/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "e2e", &ar);
        assert!(api.list(&ListParams::default()).await.expect("list").items.is_empty(), "{kind} left behind");
    }
    let left = sim.chaos().expect("chaos engine").leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
    sim.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}
