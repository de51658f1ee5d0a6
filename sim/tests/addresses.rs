//! Every embedded cluster has an address block of its own: two clusters in one process hand
//! out disjoint node, pod and Service addresses, so their pods may listen on the same port.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use serde_json::json;
use sim::kubelet::{ImageEntry, ImageMap, KubeletConfig};
use sim::{Sim, SimConfig};

const SERVER: &str = env!("CARGO_BIN_EXE_hadrill-test-server");

async fn start() -> Sim {
    let images = ImageMap::new();
    images.insert("hadrill/test-server", ImageEntry::new(SERVER));
    let kubelet = KubeletConfig { images, ..KubeletConfig::fast() };
    Sim::start(SimConfig { nodes: 2, kubelet, ..Default::default() }).await.expect("embedded cluster starts")
}

fn overlap(a: &RangeInclusive<Ipv4Addr>, b: &RangeInclusive<Ipv4Addr>) -> bool {
    a.start() <= b.end() && b.start() <= a.end()
}

/// Creates a test-server pod on port 18800 and a Service; returns the pod IP once the pod is
/// Ready (its process is listening) and the ClusterIP.
async fn pod_and_service(sim: &Sim) -> (Ipv4Addr, Ipv4Addr) {
    let client = sim.client().expect("client");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod = serde_json::from_value(json!({"metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"nodeName": "hadrill-worker", "containers": [{"name": "c", "image": "hadrill/test-server",
            "env": [{"name": "PORT", "value": "18800"}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 18800}, "periodSeconds": 1}}]}}))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("create pod");
    let svcs: Api<Service> = Api::default_namespaced(client);
    let svc = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    )
    .expect("service");
    let svc = svcs.create(&PostParams::default(), &svc).await.expect("create service");
    let ready = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let pod = tokio::time::timeout(Duration::from_secs(30), kube::runtime::wait::await_condition(pods, "web", ready))
        .await
        .expect("pod Ready in time")
        .expect("watch")
        .expect("pod");
    let pod_ip = pod.status.and_then(|s| s.pod_ip).expect("pod IP").parse().expect("IPv4");
    let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).expect("ClusterIP").parse().expect("IPv4");
    (pod_ip, cluster_ip)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clusters_in_one_process_get_disjoint_pod_and_service_ranges() {
    let (one, two) = (start().await, start().await);
    let (a, b) = (one.addresses(), two.addresses());
    assert_ne!(a.octet(), b.octet(), "{} and {}", a.cidr(), b.cidr());
    assert!(!overlap(&a.service_range(), &b.service_range()));
    for node in 1..=2 {
        assert!(!overlap(&a.pod_range(node), &b.pod_range(1)) && !overlap(&a.pod_range(node), &b.pod_range(2)));
        assert!(!overlap(&a.pod_range(node), &a.service_range()));
        assert_ne!(a.node_ip(node), b.node_ip(node));
    }

    // The same manifest in both: both pods listen on port 18800, each on its own address.
    let ((pod_one, svc_one), (pod_two, svc_two)) = tokio::join!(pod_and_service(&one), pod_and_service(&two));
    assert!(a.pod_range(1).contains(&pod_one) && b.pod_range(1).contains(&pod_two), "{pod_one} {pod_two}");
    assert!(a.service_range().contains(&svc_one) && b.service_range().contains(&svc_two), "{svc_one} {svc_two}");

    // A ClusterIP outside the cluster's own range is refused, naming the range.
    let svcs: Api<Service> = Api::default_namespaced(one.client().expect("client"));
    let foreign = serde_json::from_value(json!({"metadata": {"name": "foreign"},
        "spec": {"clusterIP": svc_two.to_string(), "ports": [{"port": 80}]}}))
    .expect("service");
    match svcs.create(&PostParams::default(), &foreign).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains(&format!("The range of valid IPs is {}", a.service_cidr())), "{}", s.message);
        }
        other => panic!("a foreign ClusterIP must be refused: {other:?}"),
    }
}
