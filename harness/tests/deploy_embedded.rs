//! The kind overlay deploys unchanged onto the embedded cluster: every object is accepted by
//! the API server (server-side apply, strict validation), the controller's pods run as real
//! processes with their ServiceAccount's token (so its RBAC is enforced), both replicas become
//! available and one of them takes the leader Lease; every other Deployment of the overlay
//! (the sample services, Jaeger) becomes available.

use std::path::Path;

use hadrill::cluster::{embedded, kustomize};
use hadrill::probes::wait::until;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kind_overlay_deploys_unchanged_onto_the_embedded_cluster() {
    sim::install_crypto_provider();
    let sim = embedded::start(3).await.expect("embedded cluster");
    let client = sim.client().expect("client");
    let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/overlays/kind");
    let start = std::time::Instant::now();
    let applied = kustomize::apply(&client, &overlay, "default").await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(applied.contains(&"deployment/hadrill-controller".to_string()), "{applied:?}");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "hadrill-system");
    until(&deployments, "hadrill-controller", "2 available controller replicas", |d: &Deployment| {
        d.status.as_ref().is_some_and(|s| s.available_replicas == Some(2))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "hadrill-system");
    let lease = until(&leases, "hadrill-controller", "a leader", |l: &Lease| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_some_and(|h| !h.is_empty())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let holder = lease.spec.and_then(|s| s.holder_identity).expect("holder");
    println!("overlay applied to 2 available controllers and a leader: {:.2} s", start.elapsed().as_secs_f64());

    // The two replicas were spread over two nodes (required anti-affinity) and the leader is one of them.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "hadrill-system");
    let pods =
        pods.list(&ListParams::default().labels("app.kubernetes.io/name=hadrill-controller")).await.expect("list");
    let nodes: std::collections::BTreeSet<_> =
        pods.items.iter().filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone())).collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(pods.items.iter().any(|p| p.metadata.name.as_deref() == Some(holder.as_str())), "leader {holder}");

    // Every other Deployment of the overlay (sample services, Jaeger) becomes available too.
    for o in kustomize::render(&overlay).expect("renders") {
        if o.object["kind"] != "Deployment" {
            continue;
        }
        let ns = o.object["metadata"]["namespace"].as_str().expect("namespaced");
        let name = o.object["metadata"]["name"].as_str().expect("named");
        let want = o.object["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        until(&api, name, &format!("{want} available replica(s) of {ns}/{name}"), move |d: &Deployment| {
            d.status.as_ref().is_some_and(|s| s.available_replicas == Some(want))
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    }
    println!("every Deployment of the overlay available: {:.2} s", start.elapsed().as_secs_f64());

    // Applying the same overlay again changes nothing and is accepted (idempotent `make deploy`).
    kustomize::apply(&client, &overlay, "default").await.unwrap_or_else(|e| panic!("{e:#}"));
    sim.stop().await;
}
