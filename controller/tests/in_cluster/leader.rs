//! The leader dies in the middle of a failover: the follower takes the Lease over and
//! completes it.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::support::cluster::{CONTROLLER_NS, Cluster, LEASE_DURATION, black_box_detection};
use crate::support::faults::Frozen;
use crate::support::pair::{NS, Pair, Side};
use crate::support::wait::{event, until};
use crate::support::{layout, ms};

fn ready(p: Option<&Pod>) -> bool {
    p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_failover_the_follower_completes_it() {
    let cluster = Cluster::start(&[]).await;
    let pair = Pair::create(&cluster, layout(&cluster, "takeover", false)).await;
    let (leader, follower) = (cluster.leader().clone(), cluster.follower().clone());
    // The follower has synced its caches (its /readyz, probed by the kubelet).
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), CONTROLLER_NS);
    until(&pods, &follower.pod, "the follower Ready", ready).await;
    let primary = pair.pods(Side::Primary).await;

    let from = pair.log.mark();
    let t0 = Instant::now();
    // The primary stops answering: a failover begins, found after the black box's threshold...
    let _frozen = Frozen::pods(&cluster.sim, &primary);
    // ...and before that, the leader's node powers off: the leader is SIGKILLed, keeps the
    // Lease until it expires, and is not restarted.
    cluster.sim.kubelets().node(&leader.node).expect("the leader's kubelet").stop();
    let killed = t0.elapsed();

    let (_, seen) = pair.log.wait(from, "the follower's switch to the standby", |s| pair.on(s, Side::Standby)).await;
    let took = seen.at - t0;
    let e = event(&cluster.client, NS, "takeover", "FailedOver", |e| e.reason.as_deref() == Some("FailedOver")).await;
    assert_eq!(e.reporting_instance.as_deref(), Some(follower.pod.as_str()), "the follower switched: {e:?}");
    assert_eq!(cluster.lease_holder().await.as_deref(), Some(follower.pod.as_str()));
    let metrics = cluster.metrics(&follower).await;
    assert!(metrics.lines().any(|l| l == "hadrill_leader 1"), "{metrics}");
    println!(
        "leader killed {} into the failover (detection needs {}): the follower switched {} after the fault \
         (lease duration {})",
        ms(killed),
        ms(black_box_detection()),
        ms(took),
        ms(LEASE_DURATION)
    );
    cluster.sim.stop().await;
}
