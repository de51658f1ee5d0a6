//! An HA service driven through `cluster::ha_service` on the embedded cluster, without cucumber
//! and without a controller (so the Service only moves when the test moves it): set up with
//! both sides available and on different nodes, a kill of more pods than a side has refused
//! with the counts, a kill of the primary's pods, a side scaled to 0, a window on the primary
//! that holds and one broken by a switch, and a wait for a side that ends in time or runs out.

use std::time::{Duration, Instant};

use hadrill::cluster::embedded;
use hadrill::cluster::ha_pair::{self, Side};
use hadrill::cluster::ha_service::HaService;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};

fn node_of(pods: &[k8s_openapi::api::core::v1::Pod]) -> Option<String> {
    pods.first().and_then(|p| p.spec.as_ref()).and_then(|s| s.node_name.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_service_is_set_up_hit_and_watched_without_cucumber() {
    sim::install_crypto_provider();
    let sim = embedded::start(3).await.expect("embedded cluster");
    let client = sim.client().expect("client");
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "ha"}})).expect("ns");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
    let svc = HaService::new(&client, "ha", "dispatch");
    svc.create(1, None).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(svc.selected().await.expect("read"), Some(Side::Primary));

    // One pod a side, never on the same node; the primary's node is its pod's.
    let (primary, standby) =
        (svc.pods(Side::Primary).await.expect("pods"), svc.pods(Side::Standby).await.expect("pods"));
    assert_eq!((primary.len(), standby.len()), (1, 1));
    assert_ne!(node_of(&primary), node_of(&standby), "the sides share a node");
    assert_eq!(Some(svc.primary_node().await.expect("node")), node_of(&primary));

    let err = svc.kill(Side::Standby, Some(5)).await.expect_err("more pods than the side has");
    assert_eq!(err.to_string(), "asked to kill 5 pods of the standby of dispatch, it has 1");
    let killed = svc.kill(Side::Primary, None).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(killed, [primary[0].metadata.name.clone().expect("named")]);
    let live = svc.pods(Side::Primary).await.expect("pods");
    assert!(!live.iter().any(|p| p.metadata.name == primary[0].metadata.name), "the killed pod is still live");

    svc.scale(Side::Standby, 0).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(svc.pods(Side::Standby).await.expect("pods").is_empty(), "the standby was scaled to 0");
    svc.scale(Side::Standby, 1).await.unwrap_or_else(|e| panic!("{e:#}"));

    // Nothing moves the Service: a window on the primary holds.
    svc.stays_on(Side::Primary, Duration::from_millis(500)).await.unwrap_or_else(|e| panic!("{e:#}"));

    // A switch during a window breaks it, and a wait for the standby then ends at once.
    let services: Api<Service> = Api::namespaced(client.clone(), "ha");
    let to_standby = serde_json::json!({"spec": {"selector": ha_pair::labels("dispatch", Side::Standby)}});
    let window = svc.stays_on(Side::Primary, Duration::from_secs(60));
    let (params, patch) = (PatchParams::default(), Patch::Merge(&to_standby));
    let switch = services.patch("dispatch", &params, &patch);
    let (held, switched) = tokio::join!(window, switch);
    switched.expect("switch");
    // Depending on whether the switch came before or after the window began.
    let why = held.expect_err("the window was broken").to_string();
    assert!(why.contains("switched away from the primary") || why.contains("does not select the primary now"), "{why}");
    let from = Instant::now();
    let took = svc.await_side(Side::Standby, from, Duration::from_secs(30), "test").await.expect("watch");
    assert!(took.is_some(), "the switch to the standby was not seen");
    let never = svc.await_side(Side::Primary, from, Duration::from_millis(300), "test").await.expect("watch");
    assert_eq!(never, None, "no one switched back to the primary");

    // Failback is asked for with the controller's own annotation names.
    svc.fail_back_after("5s").await.expect("annotate");
    let annotations = services.get("dispatch").await.expect("svc").metadata.annotations.expect("annotations");
    assert_eq!(annotations.get(hadrill_controller::annotations::FAILBACK).map(String::as_str), Some("auto"));
    assert_eq!(annotations.get(hadrill_controller::annotations::FAILBACK_AFTER).map(String::as_str), Some("5s"));
    sim.stop().await;
}
