//! End to end on the embedded cluster: vehicles -> dispatch (primary + standby) -> planner, all
//! `hadrill-sample` process pods exporting spans to the harness's OTLP receiver. The test kills
//! the primary's pods (scaled to zero: SIGTERM, drain, spans flushed), holds the outage, then
//! switches the Service to the standby by hand. The checker must find no break, show every
//! vehicle's session trace continuing from primary to standby, and report a gap matching the
//! outage measured from the Service's endpoints; the vehicles' own longest link gap must match
//! it too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::panic::AssertUnwindSafe;

use futures::{FutureExt, StreamExt};
use hadrill::cluster::embedded;
use hadrill::cluster::ha_pair::{self, Side};
use hadrill::traces::checker::{Expect, check};
use hadrill::traces::receiver::Receiver;
use hadrill::traffic::vehicles::VehiclesClient;
use hadrill::traffic::{DISPATCH, SampleApp, VEHICLES};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::watch;

/// Safety net for things the cluster does by itself.
const SETTLE: Duration = Duration::from_secs(90);
/// How long the test keeps the Service without endpoints (the fault window).
const OUTAGE: Duration = Duration::from_millis(1500);

fn ready_ips(ep: &Endpoints) -> Vec<String> {
    ep.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten()).map(|a| a.ip.clone()).collect()
}

/// Progress on stderr, so a stalled run shows where it is.
fn step(what: &str) {
    eprintln!("[{:?}] {what}", SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default());
}

/// Aborts a task when dropped (a watch left open would keep the API server from stopping).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the ready addresses of Service `name`'s Endpoints, with the time each set was seen.
fn follow_endpoints(api: Api<Endpoints>, name: &str) -> (watch::Receiver<(SystemTime, Vec<String>)>, AbortOnDrop) {
    let (tx, rx) = watch::channel((SystemTime::now(), Vec::new()));
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, cfg));
        while let Some(ev) = events.next().await {
            if let Ok(watcher::Event::Apply(ep) | watcher::Event::InitApply(ep)) = ev {
                let ips = ready_ips(&ep);
                tx.send_if_modified(|cur| {
                    let changed = cur.1 != ips;
                    if changed {
                        *cur = (SystemTime::now(), ips.clone());
                    }
                    changed
                });
            }
        }
    });
    (rx, AbortOnDrop(task))
}

async fn wait_ips(
    rx: &mut watch::Receiver<(SystemTime, Vec<String>)>,
    what: &str,
    cond: impl Fn(&[String]) -> bool,
) -> SystemTime {
    let got = tokio::time::timeout(SETTLE, rx.wait_for(|(_, ips)| cond(ips))).await.map(|r| r.map(|v| v.0));
    match got {
        Ok(Ok(at)) => at,
        Ok(Err(_)) => panic!("{what}: the endpoints watch ended"),
        Err(_) => panic!("{what}: not within {SETTLE:?}; endpoints now {:?}", rx.borrow().1),
    }
}

async fn pod_ips(pods: &Api<Pod>, selector: &str) -> Vec<(String, String)> {
    pods.list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((p.metadata.name?, p.status?.pod_ip?)))
        .collect()
}

async fn available(api: &Api<Deployment>, name: &str) {
    hadrill::probes::wait::within(api, name, &format!("deployment {name} available"), SETTLE, |d: &Deployment| {
        let s = d.status.as_ref();
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        s.and_then(|s| s.available_replicas) == Some(want)
    })
    .await
    .expect("deployment becomes available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_traces_continue_across_a_manual_failover_and_the_gap_matches_the_outage() {
    sim::install_crypto_provider();
    let receiver = Receiver::start().await.expect("receiver");
    let sim = embedded::start(3).await.expect("embedded cluster");
    step("cluster up");
    // A failed assertion must still stop the cluster (dropping it inside the runtime blocks).
    let outcome = AssertUnwindSafe(scenario(&sim, &receiver)).catch_unwind().await;
    step("stopping");
    sim.stop().await;
    receiver.stop().await;
    step("stopped");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(sim: &sim::Sim, receiver: &Receiver) {
    let client = sim.client().expect("client");
    let ns = embedded::create_namespace(&client, &embedded::run_id()).await.expect("namespace");
    let app = SampleApp {
        otlp_endpoint: Some(receiver.endpoint()),
        vehicles: 6,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        format: "mixed",
        // A kill: the primary stops accepting at SIGTERM (spans are still flushed).
        drain: Duration::ZERO,
        ..SampleApp::default()
    };
    app.create(&client, &ns).await.expect("sample app created");
    step("sample app created");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for d in ["dispatch-primary", "dispatch-standby", "planner", VEHICLES] {
        available(&deployments, d).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let (_, vehicles_ip) = pod_ips(&pods, "app=vehicles").await.pop().expect("a vehicles pod");
    let vehicles = VehiclesClient::new(&SampleApp::results_url(&vehicles_ip)).expect("client");
    let primary: Vec<(String, String)> = pod_ips(&pods, &ha_pair::selector(DISPATCH, Side::Primary)).await;
    let standby: Vec<(String, String)> = pod_ips(&pods, &ha_pair::selector(DISPATCH, Side::Standby)).await;
    step("deployments available");
    vehicles
        .wait_until("every vehicle served 10 times by the primary", SETTLE, |r| r.vehicles.iter().all(|v| v.ok >= 10))
        .await
        .expect("traffic flows");

    // Kill the primary: scaled to zero, its pods get SIGTERM and leave the endpoints.
    let (mut endpoints, _watch) = follow_endpoints(Api::namespaced(client.clone(), &ns), DISPATCH);
    let primary_ips: Vec<String> = primary.iter().map(|(_, ip)| ip.clone()).collect();
    wait_ips(&mut endpoints, "the primary serves", |ips| {
        !ips.is_empty() && ips.iter().all(|ip| primary_ips.contains(ip))
    })
    .await;
    deployments
        .patch("dispatch-primary", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 0}})))
        .await
        .expect("scale the primary to zero");
    let down = wait_ips(&mut endpoints, "no endpoints once the primary is killed", |ips| ips.is_empty()).await;
    step("primary killed; endpoints empty");
    tokio::time::sleep(OUTAGE).await; // the outage itself: the Service stays without endpoints
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    services
        .patch(
            DISPATCH,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": ha_pair::labels(DISPATCH, Side::Standby)}})),
        )
        .await
        .expect("switch the Service to the standby");
    let standby_ips: Vec<String> = standby.iter().map(|(_, ip)| ip.clone()).collect();
    let up = wait_ips(&mut endpoints, "the standby's endpoints", |ips| {
        !ips.is_empty() && ips.iter().all(|ip| standby_ips.contains(ip))
    })
    .await;
    let outage = up.duration_since(down).expect("up after down");
    let before = vehicles.results().await.expect("results");
    vehicles
        .wait_until("every vehicle served 10 times by the standby", SETTLE, |r| {
            r.vehicles.iter().zip(&before.vehicles).all(|(v, b)| v.ok >= b.ok + 10)
        })
        .await
        .expect("traffic flows again");
    let results = vehicles.stop().await.expect("vehicles stop");
    step("vehicles stopped");
    let store: Arc<_> = receiver.store().clone();
    store.wait_quiet(Duration::from_millis(500), SETTLE).await.expect("exporters flushed");

    let report = store.with_spans(|s| check(s, Expect { failover: true }));
    println!("measured outage {outage:?}\n{report}");
    report.ok().expect("no orphan, no broken chain, every session continues across the failover");
    assert_eq!(report.sessions.len(), 6, "{report}");
    assert_eq!(results.spans.dropped, 0, "no span dropped by the vehicles");

    let interval = app.interval;
    for v in &results.vehicles {
        let session = report.session(&v.id).unwrap_or_else(|| panic!("no session for {}", v.id));
        assert_eq!(session.trace_id.to_hex(), v.trace_id, "{}: the vehicle's trace is the session trace", v.id);
        assert!(session.crossed_failover(), "{}: {report}", v.id);
        let roles: Vec<&str> = session.served.iter().map(|s| &*s.role).collect();
        assert_eq!(roles, ["primary", "standby"], "{}", v.id);
        let names = |pods: &[(String, String)]| pods.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert!(session.served[0].pods.iter().all(|p| names(&primary).contains(&p.to_string())));
        assert!(session.served[1].pods.iter().all(|p| names(&standby).contains(&p.to_string())));
        let sides: Vec<&str> = v.served.iter().map(|s| s.side.as_str()).collect();
        assert_eq!(sides, ["primary", "standby"], "{}: the vehicle saw the same switch", v.id);

        // The vehicle's longest link gap is between two successes around the outage: about the
        // outage, plus up to two intervals (the last success may precede it by an interval, the
        // first after it may follow by one). The slack covers what the endpoints watch cannot
        // see: the kubelet's SIGTERM comes a little after the endpoints change, and the proxy
        // serves the standby's endpoints a little after the test sees them.
        let gap = v.longest_gap.unwrap_or_else(|| panic!("{}: no gap", v.id));
        let gap_ms = gap.ms as i64;
        let outage_ms = outage.as_millis() as i64;
        // Lag of the control plane and the proxy on a loaded machine, both ways.
        let (early, late) = (300, 500);
        assert!(
            gap_ms >= outage_ms - early && gap_ms <= outage_ms + 2 * interval.as_millis() as i64 + late,
            "{}: longest link gap {gap_ms} ms vs measured outage {outage_ms} ms",
            v.id
        );
        assert!(gap.failed >= 1, "{}: heartbeats failed during the outage", v.id);
        // The checker sees the same gap in the trace: dispatch's entry spans start after the
        // vehicle sent, within the heartbeat's latency (at most the timeout).
        let trace_gap = session.largest_gap.as_ref().expect("a gap in the trace");
        let diff = (trace_gap.duration.as_millis() as i64 - gap_ms).abs();
        assert!(
            diff <= app.timeout.as_millis() as i64,
            "{}: trace gap {:?} vs vehicle gap {gap_ms} ms",
            v.id,
            trace_gap.duration
        );
        assert_eq!(trace_gap.before.role.as_deref(), Some("primary"));
        assert_eq!(trace_gap.after.role.as_deref(), Some("standby"));
    }
    println!(
        "figures: outage {} ms; longest link gap {:?}; failed calls in traces {}",
        outage.as_millis(),
        results.longest_gap().map(|(v, g)| (v.to_string(), g.ms)),
        report.failed_calls.len()
    );
}
