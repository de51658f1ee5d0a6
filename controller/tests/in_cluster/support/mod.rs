//! What the in-cluster tests share: the cluster with the controller deployed, HA pairs,
//! faults, waits and a small HTTP client.

pub mod cluster;
pub mod faults;
pub mod http;
pub mod images;
pub mod pair;
pub mod wait;

use std::time::Duration;

use cluster::Cluster;
use pair::PairSpec;

/// The usual layout: the primary on the node without a controller replica (so that a fault of
/// its node leaves both replicas running), the standby on the follower's node.
pub fn layout(cluster: &Cluster, name: &str, kubelet_probes: bool) -> PairSpec {
    PairSpec {
        name: name.to_string(),
        primary_node: cluster.free_node(),
        standby_node: cluster.follower().node.clone(),
        kubelet_probes,
    }
}

/// Milliseconds, for figures.
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
