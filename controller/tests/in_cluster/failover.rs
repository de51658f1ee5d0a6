//! Failover decisions driven by real pods: killed, crash-looping, both sides down.

use std::time::Instant;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::support::cluster::Cluster;
use crate::support::faults::{CrashLoop, kill};
use crate::support::pair::{NS, Pair, REPLICAS, Side, addr, condition};
use crate::support::wait::{event, events_of};
use crate::support::{http, layout, ms};

fn reason(e: &Event) -> &str {
    e.reason.as_deref().unwrap_or_default()
}

fn note(e: &Event) -> &str {
    e.note.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primary_pod_killed_switches_to_the_standby() {
    let cluster = Cluster::start(&[]).await;
    let pair = Pair::create(&cluster, layout(&cluster, "killed", true)).await;
    let primary = pair.pods(Side::Primary).await;

    let from = pair.log.mark();
    let t0 = Instant::now();
    kill(&cluster.client, &primary).await;
    let (_, seen) = pair.log.wait(from, "the switch to the standby", |s| pair.on(s, Side::Standby)).await;
    let took = seen.at - t0;

    let e = event(&cluster.client, NS, "killed", "FailedOver", |e| reason(e) == "FailedOver").await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.reporting_instance.as_deref(), Some(cluster.leader.as_str()), "the leader acted");
    let n = note(&e);
    assert!(n.starts_with(&format!("{} unhealthy (", pair.reference(Side::Primary))), "{n}");
    assert!(n.ends_with(&format!("switched to {}", pair.reference(Side::Standby))), "{n}");
    let metrics = cluster.metrics(cluster.leader()).await;
    assert!(metrics.lines().any(|l| l == "hadrill_reconcile_errors_total 0"), "no failed reconcile: {metrics}");
    let routed = pair.until_served_by(Side::Standby).await;
    println!(
        "all {REPLICAS} primary pods killed: switch seen {} after the kill, new connections on the standby {} later",
        ms(took),
        ms(routed)
    );
    cluster.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_primary_pods_killed_does_not_switch() {
    let cluster = Cluster::start(&[]).await;
    let pair = Pair::create(&cluster, layout(&cluster, "halfkilled", true)).await;
    let primary = pair.pods(Side::Primary).await;
    let healthy = format!("{} selected: {REPLICAS}/{REPLICAS} pods healthy", pair.reference(Side::Primary));

    let from = pair.log.mark();
    let t0 = Instant::now();
    kill(&cluster.client, &primary[..1]).await;
    // The controller sees the primary short of a pod, then whole again with the replacement.
    let (noticed, seen) = pair
        .log
        .wait(from, "the controller noticing the killed pod", |s| {
            condition(s).is_some_and(|c| !c.message.starts_with(&healthy))
        })
        .await;
    let degraded = condition(&seen.svc).expect("condition").message;
    pair.log
        .wait(noticed, "the primary healthy again", |s| condition(s).is_some_and(|c| c.message.starts_with(&healthy)))
        .await;
    let recovered = t0.elapsed();

    for s in pair.log.since(from) {
        assert!(pair.on(&s.svc, Side::Primary), "left the primary: {:?}", s.svc.metadata.annotations);
    }
    let events = events_of(&cluster.client, NS, "halfkilled").await;
    assert!(events.iter().all(|e| reason(e) != "FailedOver"), "{events:?}");
    println!(
        "1 of {REPLICAS} primary pods killed: no switch; seen as \"{degraded}\", whole again after {}",
        ms(recovered)
    );
    cluster.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_primary_switches_to_the_standby() {
    let cluster = Cluster::start(&[]).await;
    let pair = Pair::create(&cluster, layout(&cluster, "crashing", true)).await;
    let primary = pair.pods(Side::Primary).await;

    let from = pair.log.mark();
    let t0 = Instant::now();
    let crashing = CrashLoop::pods(&primary);
    let (switched, seen) = pair.log.wait(from, "the switch to the standby", |s| pair.on(s, Side::Standby)).await;
    let took = seen.at - t0;
    let e = event(&cluster.client, NS, "crashing", "FailedOver", |e| reason(e) == "FailedOver").await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert!(note(&e).starts_with(&format!("{} unhealthy (", pair.reference(Side::Primary))), "{}", note(&e));

    // The primary really is crash-looping, and the controller keeps describing it so.
    let unhealthy = format!("{} unhealthy (", pair.reference(Side::Primary));
    let (_, looping) = pair
        .log
        .wait(switched, "the primary described as CrashLoopBackOff", |s| {
            condition(s).is_some_and(|c| {
                c.message.contains(&unhealthy)
                    && primary.iter().any(|p| c.message.contains(&format!("{}: CrashLoopBackOff", p.name_any())))
            })
        })
        .await;
    drop(crashing);
    assert!(pair.on(&looping.svc, Side::Standby), "still on the standby");
    println!(
        "crash-looping primary: switch seen {} after the first crash; \"{}\"",
        ms(took),
        condition(&looping.svc).expect("condition").message
    );
    cluster.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_also_down_keeps_the_primary_and_warns() {
    let cluster = Cluster::start(&[]).await;
    let pair = Pair::create(&cluster, layout(&cluster, "bothdown", true)).await;
    let primary = pair.pods(Side::Primary).await;
    let standby = pair.pods(Side::Standby).await;
    let before = pair.log.mark();
    for p in &standby {
        let (code, body) = http::post(addr(p), "/ready/off").await.expect("POST /ready/off");
        assert_eq!(code, 200, "{body}");
    }
    let standby_down = format!("{} unhealthy (", pair.reference(Side::Standby));
    pair.log
        .wait(before, "the standby seen unhealthy", |s| condition(s).is_some_and(|c| c.message.contains(&standby_down)))
        .await;

    let from = pair.log.mark();
    let (t0, wall0) = (Instant::now(), Timestamp::now());
    kill(&cluster.client, &primary).await;
    let e = event(&cluster.client, NS, "bothdown", "BothUnhealthy after the kill", |e| {
        reason(e) == "BothUnhealthy" && e.event_time.as_ref().is_some_and(|t| t.0 >= wall0)
    })
    .await;
    let warned = t0.elapsed();
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    let n = note(&e);
    assert!(n.starts_with(&format!("{} unhealthy (", pair.reference(Side::Primary))), "{n}");
    assert!(n.contains(&standby_down) && n.ends_with("no switch"), "{n}");
    pair.log
        .wait(from, "the BothUnhealthy condition", |s| {
            condition(s).is_some_and(|c| c.reason == "BothUnhealthy" && c.status == "False")
        })
        .await;
    // The primary's replacements come up: it stays selected, healthy again.
    let healthy = format!("{} selected: {REPLICAS}/{REPLICAS} pods healthy", pair.reference(Side::Primary));
    pair.log
        .wait(from, "the primary healthy again", |s| {
            condition(s).is_some_and(|c| c.reason == "ActiveHealthy" && c.message.starts_with(&healthy))
        })
        .await;
    for s in pair.log.since(from) {
        assert!(pair.on(&s.svc, Side::Primary), "switched to an unhealthy standby: {:?}", s.svc.metadata.annotations);
    }
    let events = events_of(&cluster.client, NS, "bothdown").await;
    assert!(events.iter().all(|e| reason(e) != "FailedOver"), "{events:?}");
    println!("primary killed with the standby down: no switch, BothUnhealthy warning {} after the kill", ms(warned));
    cluster.sim.stop().await;
}
