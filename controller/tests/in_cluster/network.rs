//! The primary's node loses its network: its kubelet stops heartbeating and its pods stop
//! answering. The black box finds it within its probe budget, long before the node monitor
//! grace; the white box alone only once the node is Unknown.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::Api;

use crate::support::cluster::{Cluster, NODE_GRACE, PROBE_PERIOD, PROBE_THRESHOLD, black_box_detection};
use crate::support::faults::{Frozen, lose_network};
use crate::support::pair::{NS, PORT, Pair, Side, condition};
use crate::support::wait::event;
use crate::support::{layout, ms};

/// Detection budget of the black box: up to a period until the first probe of the frozen pod,
/// then the threshold of failed rounds (a round lasts at least its slowest probe, so a period
/// or a timeout, whichever is longer), and 2 s for the reconcile and the write on a loaded
/// machine.
fn black_box_budget() -> Duration {
    PROBE_PERIOD + black_box_detection() + Duration::from_secs(2)
}

async fn node_ready(cluster: &Cluster, node: &str) -> String {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let n = nodes.get(node).await.expect("read the node");
    let conds = n.status.and_then(|s| s.conditions).unwrap_or_default();
    conds.into_iter().find(|c| c.type_ == "Ready").map(|c| c.status).unwrap_or_default()
}

/// A pair whose primary's node lost its network, once the Service has switched to the standby.
struct Cut {
    cluster: Cluster,
    pair: Pair,
    node: String,
    /// The Service log's mark at the cut.
    from: usize,
    /// When the network was cut.
    t0: Instant,
    /// From the cut to the switch.
    took: Duration,
    /// Keeps the node cut off until the test ends.
    _frozen: Frozen,
}

/// Starts a controller with `args` and a pair `name`, cuts the network of the primary's node
/// and waits for the switch to the standby.
async fn cut_primary_node(args: &[&str], name: &str) -> Cut {
    let cluster = Cluster::start(args).await;
    let pair = Pair::create(&cluster, layout(&cluster, name, false)).await;
    let primary = pair.pods(Side::Primary).await;
    let node = pair.spec.primary_node.clone();
    let from = pair.log.mark();
    let t0 = Instant::now();
    let frozen = lose_network(&cluster.sim, &node, &primary);
    let (_, seen) = pair.log.wait(from, "the switch to the standby", |s| pair.on(s, Side::Standby)).await;
    let took = seen.at - t0;
    Cut { cluster, pair, node, from, t0, took, _frozen: frozen }
}

fn failed_over(e: &Event) -> bool {
    e.reason.as_deref() == Some("FailedOver")
}

fn counted(metrics: &str, detector: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("hadrill_failovers_total{")
            && l.contains("reason=\"FailedOver\"")
            && l.contains(&format!("detector=\"{detector}\""))
            && l.ends_with(" 1")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_node_network_loss_switches_within_the_black_box_budget() {
    assert!(black_box_budget() < NODE_GRACE, "the budget must end before the node monitor could notice");
    let Cut { cluster, pair: _pair, node, took, _frozen, .. } = cut_primary_node(&[], "netloss").await;
    // Switched while the node still looked Ready: the controller's own probes found it.
    assert_eq!(node_ready(&cluster, &node).await, "True", "the node monitor had not noticed yet");
    assert!(took < black_box_budget(), "switched {took:?} after the cut, budget {:?}", black_box_budget());

    let e = event(&cluster.client, NS, "netloss", "FailedOver", failed_over).await;
    let n = e.note.clone().unwrap_or_default();
    let probe = format!(":{PORT}/healthz failed {PROBE_THRESHOLD} times");
    assert!(n.contains(&probe) && !n.contains("Unknown"), "black-box reasons only: {n}");
    let metrics = cluster.metrics(cluster.leader()).await;
    assert!(counted(&metrics, "black-box"), "{metrics}");
    println!(
        "primary node network lost, black box on: switch seen {} after the cut (budget {}, node grace {})",
        ms(took),
        ms(black_box_budget()),
        ms(NODE_GRACE)
    );
    cluster.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_node_network_loss_without_the_black_box_switches_after_the_grace_period() {
    let Cut { cluster, pair, node, from, t0, took, _frozen } =
        cut_primary_node(&["--black-box=false"], "netloss-wb").await;
    // The last heartbeat may predate the cut by one renewal interval (200 ms).
    let earliest = NODE_GRACE - Duration::from_millis(500);
    assert!(took >= earliest, "switched {took:?} after the cut, before the node monitor grace {NODE_GRACE:?}");
    for s in pair.log.since(from).iter().filter(|s| s.at - t0 < earliest) {
        assert!(pair.on(&s.svc, Side::Primary), "{:?}", condition(&s.svc));
    }
    let e = event(&cluster.client, NS, "netloss-wb", "FailedOver", failed_over).await;
    let n = e.note.clone().unwrap_or_default();
    assert!(n.contains(&format!("node {node} Unknown")) && !n.contains("probe"), "white-box reasons only: {n}");
    let metrics = cluster.metrics(cluster.leader()).await;
    assert!(counted(&metrics, "white-box"), "{metrics}");
    println!(
        "primary node network lost, black box off: switch seen {} after the cut (node grace {})",
        ms(took),
        ms(NODE_GRACE)
    );
    cluster.sim.stop().await;
}
