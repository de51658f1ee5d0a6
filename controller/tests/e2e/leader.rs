//! Leader election between two instances on a Lease (kube-lease-manager, server-side apply
//! field-ownership conflicts on the embedded cluster).

use std::time::Duration;

use hadrill_controller::leader::LeaderSettings;
use hadrill_controller::{Handle, Settings};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::support::*;

fn elected(identity: &str) -> Settings {
    let mut s = settings(identity);
    s.leader = Some(LeaderSettings {
        lease_name: "hadrill-controller".into(),
        lease_namespace: CONTROLLER_NS.into(),
        duration: Duration::from_secs(2),
        grace: Duration::from_secs(1),
    });
    s
}

async fn first_leader(a: &Handle, b: &Handle) -> usize {
    let (mut la, mut lb) = (a.leading.clone(), b.leading.clone());
    within(PROMPTLY, "a leader", async {
        tokio::select! {
            _ = la.wait_for(|l| *l) => 0,
            _ = lb.wait_for(|l| *l) => 1,
        }
    })
    .await
}

fn holder(l: &Lease) -> Option<&str> {
    l.spec.as_ref()?.holder_identity.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_a_follower_takes_over_when_it_dies() {
    let env = Env::start().await;
    let mut instances = [Some(env.start_controller(elected("ctl-a"))), Some(env.start_controller(elected("ctl-b")))];
    let names = ["ctl-a", "ctl-b"];
    let handles: Vec<Handle> = instances.iter().flatten().map(|r| r.handle.clone()).collect();
    let l = first_leader(&handles[0], &handles[1]).await;
    let f = 1 - l;
    let leases: Api<Lease> = Api::namespaced(env.admin.clone(), CONTROLLER_NS);
    let lease = within(
        PROMPTLY,
        "lease held",
        kube::runtime::wait::await_condition(leases.clone(), "hadrill-controller", |l: Option<&Lease>| {
            l.and_then(holder).is_some()
        }),
    )
    .await
    .expect("lease watch")
    .expect("lease");
    assert_eq!(holder(&lease), Some(names[l]));
    assert!(!handles[f].is_leader(), "one leader at a time");

    // A failover is carried out by the leader only.
    let pair = env.pair("dispatch", &[]).await;
    for pod in &pair.primary_pods {
        env.set_ready(pod, false).await;
    }
    env.await_service("dispatch", "failover", |s| selects(s) == Some("dispatch-b")).await;
    let e = env.await_event("dispatch", "FailedOver", |e| e.reason.as_deref() == Some("FailedOver")).await;
    assert_eq!(e.reporting_instance.as_deref(), Some(names[l]));
    assert_eq!(handles[l].metrics.switches("FailedOver"), 1);
    assert_eq!(handles[f].metrics.switches("FailedOver"), 0, "the follower evaluates but does not act");
    assert!(handles[l].metrics.encode().contains("hadrill_leader 1"));
    assert!(handles[f].metrics.encode().contains("hadrill_leader 0"));

    // The leader crashes (its lease is not released); a failover becomes due meanwhile.
    instances[l].take().expect("leader").kill();
    for pod in &pair.primary_pods {
        env.set_ready(pod, true).await;
    }
    for pod in &pair.standby_pods {
        env.set_ready(pod, false).await;
    }
    let mut follower = handles[f].clone();
    within(Duration::from_secs(10), "takeover within the lease duration", follower.until_leader()).await;
    env.await_service("dispatch", "pending failover completed", |s| selects(s) == Some("dispatch-a")).await;
    let e = env
        .await_event("dispatch", "FailedOver by the new leader", |e| {
            e.reason.as_deref() == Some("FailedOver") && e.reporting_instance.as_deref() == Some(names[f])
        })
        .await;
    assert!(e.note.as_deref().is_some_and(|n| n.starts_with("standby statefulset/dispatch-b unhealthy")));
    if let Some(r) = instances[f].take() {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_releases_the_lease() {
    let env = Env::start().await;
    let running = env.start_controller(elected("ctl-a"));
    let mut h = running.handle.clone();
    within(PROMPTLY, "leadership", h.until_leader()).await;
    running.stop().await;
    let leases: Api<Lease> = Api::namespaced(env.admin.clone(), CONTROLLER_NS);
    within(
        PROMPTLY,
        "lease released",
        kube::runtime::wait::await_condition(leases, "hadrill-controller", |l: Option<&Lease>| {
            l.is_some_and(|l| holder(l).is_none())
        }),
    )
    .await
    .expect("lease watch");
}
