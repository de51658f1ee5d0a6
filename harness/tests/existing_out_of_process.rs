//! The `existing` provider driven from outside, as on a user's cluster: `hadrill sim up` runs
//! as a process of its own (the API server in another process), and `hadrill run --cluster
//! existing --kubeconfig ... --context ... --allow-context ...` runs, as another process,
//! features/failover.feature, features/chaos_faults.feature and features/vehicles.feature on
//! it. The vehicles' results are read through the API server's pod proxy and the traces
//! through its Service proxy, from a Jaeger stand-in that the cluster reaches as it would reach
//! deploy/jaeger: Services `observability/jaeger-collector` and `jaeger-query` (their
//! endpoints point at the stand-in). Afterwards nothing of the run is left: no object labelled
//! `hadrill.io/run`, no `hadrill-*` namespace, no chaos object, an empty ledger.

mod jaeger_standin;
mod sim_process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hadrill::cluster::embedded::RUN_LABEL;
use hadrill::cluster::existing::{ALLOW_ENV, CONTEXT_ENV};
use hadrill::cluster::provider::{CLUSTER_ENV, KEEP_ENV};
use jaeger_standin::JaegerStandIn;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use sim_process::sim_up;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("source tree")
}

fn object<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("object")
}

/// deploy/jaeger's namespace and Services, their endpoints the stand-in's addresses (what
/// Jaeger's pods would be on a real cluster).
async fn jaeger_services(client: &kube::Client, jaeger: &JaegerStandIn) {
    let ns: Namespace = object(serde_json::json!({"metadata": {"name": "observability"}}));
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
    let services: Api<Service> = Api::namespaced(client.clone(), "observability");
    let slices: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "observability",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("discovery.k8s.io", "v1", "EndpointSlice"),
            "endpointslices",
        ),
    );
    for (name, port_name, port, target) in [
        ("jaeger-collector", "otlp-http", 4318, jaeger.receiver.addr().port()),
        ("jaeger-query", "query", 16686, jaeger.query.port()),
    ] {
        let svc: Service = object(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": "jaeger"}},
            "spec": {"ports": [{"name": port_name, "port": port, "targetPort": target}]}
        }));
        services.create(&PostParams::default(), &svc).await.expect("service");
        let slice: DynamicObject = object(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-stand-in"), "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true, "serving": true}}],
            "ports": [{"name": port_name, "port": target, "protocol": "TCP"}]
        }));
        slices.create(&PostParams::default(), &slice).await.expect("endpoint slice");
    }
}

fn chaos_api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("chaos-mesh.org", "v1alpha1", kind), plural),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_chaos_and_vehicles_run_on_an_existing_cluster_in_another_process_and_leave_nothing() {
    sim::install_crypto_provider();
    let scratch = std::env::temp_dir().join(format!("hadrill-existing-oop-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let kubeconfig = scratch.join("sim.kubeconfig");
    let (mut up, banner) = sim_up(&kubeconfig, 3).await;
    for image in ["hadrill/controller", "hadrill/sample"] {
        assert!(banner.contains(&format!("image {image} runs")), "{banner}");
    }
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let context = kc.current_context.clone().expect("a current context");
    let client = hadrill::cluster::kind::client_from(&kubeconfig).await.expect("client");

    let jaeger = JaegerStandIn::start().await;
    jaeger_services(&client, &jaeger).await;

    let reports = scratch.join("reports");
    let features: Vec<PathBuf> =
        ["failover", "chaos_faults", "vehicles"].iter().map(|f| root().join(format!("features/{f}.feature"))).collect();
    let mut run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hadrill"));
    run.arg("run")
        .args(&features)
        .args(["--cluster", "existing", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--context", &context, "--allow-context", &context])
        .current_dir(root())
        .env("HADRILL_REPORTS", &reports)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for var in [CLUSTER_ENV, KEEP_ENV, ALLOW_ENV, CONTEXT_ENV] {
        run.env_remove(var);
    }
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(1800), run.output())
        .await
        .expect("the run ends")
        .expect("hadrill run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("hadrill run --cluster existing: {:.0} s, {}", start.elapsed().as_secs_f64(), out.status);
    assert!(out.status.success(), "{text}");

    // Every scenario ran and passed, the vehicles' one included.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("metrics.json")).expect("metrics")).expect("json");
    let scenarios = metrics["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 7, "{metrics:#}");
    assert!(scenarios.iter().all(|s| s["passed"] == true), "{metrics:#}");
    // The pods exported to the collector Service, and the harness read them back through the
    // query Service: every vehicle's session trace crossed the failover.
    let services: std::collections::BTreeSet<String> =
        jaeger.receiver.store().with_spans(|s| s.iter().map(|s| s.service.to_string()).collect());
    assert!(services.contains("vehicles") && services.contains("dispatch"), "{services:?}");
    let queries = jaeger.queries.load(std::sync::atomic::Ordering::Relaxed);
    assert!(queries > 0, "the trace check read Jaeger's query API through the Service proxy");
    println!(
        "the stand-in Jaeger received {} spans and answered {queries} trace queries",
        jaeger.receiver.store().len()
    );
    let vehicles =
        scenarios.iter().find(|s| s["feature"].as_str().is_some_and(|f| f.contains("Vehicles"))).expect("vehicles");
    // The trace check ran on what came back (its figure is recorded once sessions were found).
    let figures: Vec<&str> =
        vehicles["figures"].as_array().expect("figures").iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(figures.iter().any(|f| f.starts_with("largest gap in a session trace")), "{figures:?}");
    println!("vehicles scenario figures: {figures:?}");

    // Nothing of the run is left.
    let labelled = ListParams::default().labels(RUN_LABEL);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces.list(&ListParams::default()).await.expect("namespaces").items {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if name.starts_with("hadrill-") && name != "hadrill-system" {
            let gone = await_condition(namespaces.clone(), &name, |ns: Option<&Namespace>| ns.is_none());
            tokio::time::timeout(Duration::from_secs(120), gone).await.expect("deleted in time").expect("watch");
        }
    }
    let left: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n.starts_with("hadrill-") && n != "hadrill-system")
        .collect();
    assert!(left.is_empty(), "run namespaces left: {left:?}");
    let labelled_namespaces = namespaces.list(&labelled).await.expect("namespaces").items;
    let names: Vec<_> = labelled_namespaces.iter().map(|n| n.metadata.name.clone()).collect();
    assert!(names.is_empty(), "namespaces labelled {RUN_LABEL}: {names:?}");
    assert!(Api::<Pod>::all(client.clone()).list(&labelled).await.expect("pods").items.is_empty());
    assert!(Api::<Deployment>::all(client.clone()).list(&labelled).await.expect("deployments").items.is_empty());
    assert!(Api::<Service>::all(client.clone()).list(&labelled).await.expect("services").items.is_empty());
    for (kind, plural) in [("PodChaos", "podchaos"), ("NetworkChaos", "networkchaos"), ("StressChaos", "stresschaos")] {
        let left = chaos_api(&client, kind, plural).list(&ListParams::default()).await.expect("chaos objects").items;
        let names: Vec<_> = left.iter().map(|o| o.metadata.name.clone()).collect();
        assert!(names.is_empty(), "{kind} objects left: {names:?}");
    }
    let ledgers: Vec<_> = std::fs::read_dir(reports.join(".ledger"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(ledgers.is_empty(), "ledgers left: {ledgers:?}");

    // Ctrl-C stops the cluster.
    let pid = up.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill").success());
    let status = tokio::time::timeout(Duration::from_secs(60), up.wait()).await.expect("stops").expect("status");
    assert!(status.success(), "{status}");
    jaeger.stop().await;
    std::fs::remove_dir_all(&scratch).ok();
}
