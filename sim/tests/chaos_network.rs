//! NetworkChaos against the embedded cluster: packets to and from the selected pods' loopback
//! addresses really dropped (iptables), measured from the test process; node-level loss
//! through a ChaosBlade (the object a kind run creates);
//! delay through the service proxy; recovery; nothing left behind.
//!
//! Tests that need iptables are skipped with the reason when it is missing or not permitted,
//! unless `HADRILL_REQUIRE_IPTABLES=1` (CI) makes that a failure.

mod chaos_support;
mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use chaos_support::*;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

/// Sends `n` datagrams from `from` (bound to that address) to `to`, paced so the receiver
/// keeps up; returns how many arrived.
fn datagrams(from: IpAddr, to: IpAddr, n: usize) -> usize {
    let rx = UdpSocket::bind(SocketAddr::new(to, 0)).expect("bind receiver");
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let tx = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind sender");
    let dest = rx.local_addr().unwrap();
    let receiver = std::thread::spawn(move || {
        let mut got = 0;
        let mut buf = [0u8; 64];
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    for i in 0..n {
        // A DROP in OUTPUT makes the local send fail with EPERM: that datagram is lost.
        let _ = tx.send_to(&(i as u32).to_be_bytes(), dest);
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    receiver.join().unwrap()
}

fn ip(p: &Pod) -> IpAddr {
    pod_addr(p, 0).ip()
}

/// A chain whose owner is gone (a pid now held by a later process counts as gone) is swept
/// with its jump; the chain of a live owner stays.
#[test]
fn the_sweep_removes_the_chains_of_gone_owners_only() {
    use sim::chaos::iptables::{Iptables, chain_name, existing_chains, sweep_dead_owners};
    use sim::owner::Owner;
    let iptables = Iptables::new(true);
    if let Err(why) = iptables.available() {
        assert_ne!(std::env::var("HADRILL_REQUIRE_IPTABLES").as_deref(), Ok("1"), "iptables is required: {why}");
        eprintln!("SKIPPED the_sweep_removes_the_chains_of_gone_owners_only: {why}");
        return;
    }
    let me = Owner::current();
    let reused = chain_name(Owner { start: me.start + 1, ..me }, 1_000_001);
    let live = chain_name(me, 1_000_002);
    let drop_rule = vec!["-d".to_string(), "127.254.254.254/32".to_string(), "-j".to_string(), "DROP".to_string()];
    for chain in [&reused, &live] {
        iptables.install(chain, std::slice::from_ref(&drop_rule)).unwrap();
    }
    let swept: Vec<String> = sweep_dead_owners().into_iter().map(|(c, r)| r.map(|()| c).unwrap()).collect();
    let chains = existing_chains();
    let jumps = std::process::Command::new("iptables").args(["-w", "5", "-S", "OUTPUT"]).output().unwrap();
    let jumps = String::from_utf8_lossy(&jumps.stdout).to_string();
    iptables.remove(&live).unwrap();
    assert!(swept.contains(&reused), "the chain of a pid reused by another process is swept: {swept:?}");
    assert!(!chains.contains(&reused) && !jumps.contains(&reused), "{chains:?}\n{jumps}");
    assert!(!swept.contains(&live) && chains.contains(&live), "a live owner's chain stays: {swept:?} {chains:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn loss_100_makes_requests_fail_until_deleted() {
    const PORT: u16 = 18411;
    let sim = start(1).await;
    if !iptables_or_skip(&sim, "loss_100_makes_requests_fail_until_deleted") {
        return;
    }
    let client = sim.client().unwrap();
    let pod = servers(&client, "default", "lossy", 1, PORT).await.remove(0);
    let addr = pod_addr(&pod, PORT);
    let name = pod.metadata.name.clone().unwrap();
    assert_eq!(who(addr, Duration::from_secs(2)).await.unwrap(), name);
    let api = chaos_api(&client, "default", "NetworkChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "NetworkChaos", "metadata": {"name": "loss-all"},
            "spec": {"action": "loss", "mode": "all", "loss": {"loss": "100", "correlation": "0"},
                     "selector": {"labelSelectors": {"app": "lossy"}}},
        }),
    )
    .await;
    await_injected(&api, "loss-all").await;
    let inj = sim.chaos().unwrap().injections();
    assert_eq!(inj.len(), 1);
    let chain = inj[0].chain.clone().expect("an iptables chain");
    assert!(sim::chaos::iptables::existing_chains().contains(&chain), "{chain} in iptables -S");
    for _ in 0..3 {
        let r = who(addr, Duration::from_millis(500)).await;
        assert!(r.is_err(), "a request got through 100% loss: {r:?}");
    }
    let t = delete_and_await_gone(&api, "loss-all").await;
    println!("loss 100%: delete to recovered (object gone) {t:?}");
    assert!(!sim::chaos::iptables::existing_chains().contains(&chain), "the chain is removed with the object");
    assert_eq!(who(addr, Duration::from_secs(2)).await.unwrap(), name, "requests succeed after delete");
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn loss_50_drops_about_half_of_the_packets() {
    const PORT: u16 = 18412;
    const N: usize = 400;
    let sim = start(1).await;
    if !iptables_or_skip(&sim, "loss_50_drops_about_half_of_the_packets") {
        return;
    }
    let client = sim.client().unwrap();
    let pod = servers(&client, "default", "half", 1, PORT).await.remove(0);
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(datagrams(ip(&pod), local, N), N, "no loss before the fault");
    let api = chaos_api(&client, "default", "NetworkChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "NetworkChaos", "metadata": {"name": "loss-half"},
            "spec": {"action": "loss", "mode": "all", "direction": "to", "loss": {"loss": "50", "correlation": "0"},
                     "selector": {"labelSelectors": {"app": "half"}}},
        }),
    )
    .await;
    await_injected(&api, "loss-half").await;
    let got = tokio::task::spawn_blocking(move || datagrams(ip(&pod), local, N)).await.unwrap();
    println!("loss 50%: {got} of {N} datagrams arrived (expected 200, sd 10)");
    // Binomial(400, 0.5): ±6 standard deviations.
    assert!((140..=260).contains(&got), "{got} of {N} arrived");
    delete_and_await_gone(&api, "loss-half").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_in_one_direction_only_blocks_that_direction() {
    const PORT: u16 = 18413;
    let sim = start(1).await;
    if !iptables_or_skip(&sim, "a_partition_in_one_direction_only_blocks_that_direction") {
        return;
    }
    let client = sim.client().unwrap();
    let a = servers(&client, "default", "side-a", 1, PORT).await.remove(0);
    let b = servers(&client, "default", "side-b", 1, PORT).await.remove(0);
    let (ia, ib) = (ip(&a), ip(&b));
    let api = chaos_api(&client, "default", "NetworkChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "NetworkChaos", "metadata": {"name": "a-to-b"},
            "spec": {"action": "partition", "mode": "all", "direction": "to",
                     "selector": {"labelSelectors": {"app": "side-a"}},
                     "target": {"mode": "all", "selector": {"labelSelectors": {"app": "side-b"}}}},
        }),
    )
    .await;
    let obj = await_injected(&api, "a-to-b").await;
    let keys: Vec<String> = obj.data["status"]["experiment"]["containerRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}={}", r["selectorKey"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with(".Target=")), "{keys:?}");
    let (a_to_b, b_to_a) =
        tokio::task::spawn_blocking(move || (datagrams(ia, ib, 50), datagrams(ib, ia, 50))).await.unwrap();
    println!("partition a→b: {a_to_b}/50 a→b, {b_to_a}/50 b→a");
    assert_eq!(a_to_b, 0, "a → b is cut");
    assert_eq!(b_to_a, 50, "b → a still flows");
    // Others still reach a.
    assert!(who(pod_addr(&a, PORT), Duration::from_secs(2)).await.is_ok());
    delete_and_await_gone(&api, "a-to-b").await;
    let healed = tokio::task::spawn_blocking(move || datagrams(ia, ib, 50)).await.unwrap();
    assert_eq!(healed, 50, "a → b flows after delete");
    assert_no_leftovers(sim).await;
}

/// The ChaosBlade API (`chaosblade.io/v1alpha1`, cluster-scoped).
fn blade_api(client: &kube::Client) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("chaosblade.io", "v1alpha1", "ChaosBlade");
    Api::all_with(client.clone(), &kube::api::ApiResource::from_gvk_with_plural(&gvk, "chaosblades"))
}

/// A ChaosBlade node network loss of `node`, 100 %, on eth0, for `timeout_s` seconds: the
/// object `hadrill scenarios render primary-node-network-loss` gives.
fn node_loss(name: &str, node: &str, timeout_s: u32) -> kube::api::DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "chaosblade.io/v1alpha1", "kind": "ChaosBlade", "metadata": {"name": name},
        "spec": {"experiments": [{"scope": "node", "target": "network", "action": "loss", "matchers": [
            {"name": "names", "value": [node]}, {"name": "percent", "value": ["100"]},
            {"name": "interface", "value": ["eth0"]}, {"name": "timeout", "value": [timeout_s.to_string()]}]}]},
    }))
    .unwrap()
}

fn ready_is(want: &'static str) -> impl Fn(Option<&Node>) -> bool {
    move |n: Option<&Node>| {
        n.and_then(|n| n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").cloned())
            .is_some_and(|c| c.status == want)
    }
}

// The node lifecycle controller sets Ready=Unknown once the Lease is older than the grace
// (pkg/controller/nodelifecycle/node_lifecycle_controller.go, tryUpdateNodeHealth).
#[tokio::test(flavor = "multi_thread")]
async fn chaosblade_node_network_loss_cuts_the_pods_and_makes_the_node_not_ready_until_its_timeout() {
    const PORT: u16 = 18414;
    let sim = start(2).await;
    if !iptables_or_skip(&sim, "node_network_loss") {
        return;
    }
    let client = sim.client().unwrap();
    let pod = servers(&client, "default", "on-node", 1, PORT).await.remove(0);
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
    let addr = pod_addr(&pod, PORT);
    let blades = blade_api(&client);
    let t0 = Instant::now();
    blades.create(&PostParams::default(), &node_loss("node-loss", &node, 6)).await.unwrap();
    let running = wait_for(&blades, "node-loss", "phase Running", |o: Option<&kube::api::DynamicObject>| {
        o.is_some_and(|o| o.data["status"]["phase"] == "Running")
    })
    .await;
    assert_eq!(running.data["status"]["expStatuses"][0]["success"], json!(true));
    assert_eq!(running.metadata.finalizers, Some(vec!["finalizer.chaosblade.io".to_string()]));
    assert!(who(addr, Duration::from_millis(500)).await.is_err(), "the node's pod is unreachable");
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(&nodes, &node, "Ready=Unknown", ready_is("Unknown")).await;
    let not_ready = t0.elapsed();
    println!("chaosblade node network loss: node NotReady {not_ready:?} after create (grace 2 s)");
    // The grace runs from the last renew before the cut, up to one renew interval before the create.
    let renew = sim::kubelet::KubeletConfig::fast().lease_renew_interval;
    let earliest = Duration::from_secs(2).saturating_sub(renew);
    assert!(not_ready >= earliest, "NotReady only after the grace (at least {earliest:?}), was {not_ready:?}");
    assert_eq!(sim.chaos().unwrap().leftovers().heartbeats_off, vec![node.clone()]);

    // The timeout restores the node with no word from anyone (chaosblade's own timer).
    wait_for(&nodes, &node, "Ready=True again", ready_is("True")).await;
    until(addr, "the pod answers again", |r| r.is_ok()).await;
    println!("chaosblade node network loss: node Ready again {:?} after create (timeout 6 s)", t0.elapsed());
    assert!(t0.elapsed() >= Duration::from_secs(6), "restored only after the timeout");
    delete_and_await_gone(&blades, "node-loss").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_chaosblade_restores_the_node_before_its_timeout() {
    const PORT: u16 = 18419;
    let sim = start(2).await;
    if !iptables_or_skip(&sim, "node_network_loss_delete") {
        return;
    }
    let client = sim.client().unwrap();
    let pod = servers(&client, "default", "cut", 1, PORT).await.remove(0);
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
    let addr = pod_addr(&pod, PORT);
    let blades = blade_api(&client);
    blades.create(&PostParams::default(), &node_loss("cut", &node, 600)).await.unwrap();
    wait_for(&blades, "cut", "phase Running", |o: Option<&kube::api::DynamicObject>| {
        o.is_some_and(|o| o.data["status"]["phase"] == "Running")
    })
    .await;
    assert!(who(addr, Duration::from_millis(500)).await.is_err(), "the node's pod is unreachable");
    delete_and_await_gone(&blades, "cut").await;
    assert!(who(addr, Duration::from_secs(2)).await.is_ok(), "restored when the delete finished");
    assert!(sim.chaos().unwrap().leftovers().is_empty());
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chaosblade_the_embedded_cluster_cannot_run_is_refused_with_the_field() {
    let sim = start(1).await;
    let client = sim.client().unwrap();
    let blades = blade_api(&client);
    let mut obj = node_loss("cpu", "hadrill-worker", 60);
    obj.data["spec"]["experiments"][0]["target"] = json!("cpu");
    blades.create(&PostParams::default(), &obj).await.unwrap();
    let failed = wait_for(&blades, "cpu", "phase Error", |o: Option<&kube::api::DynamicObject>| {
        o.is_some_and(|o| o.data["status"]["phase"] == "Error")
    })
    .await;
    let msg = failed.data["status"]["expStatuses"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("spec.experiments[0]") && msg.contains("target network"), "{msg}");
    delete_and_await_gone(&blades, "cpu").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_iptables_loss_fails_with_a_clear_message() {
    const PORT: u16 = 18415;
    let mut config = sim::SimConfig::default();
    config.chaos.iptables = false;
    config.chaos.retry = Duration::from_millis(200);
    let images = sim::kubelet::ImageMap::new();
    images.insert("hadrill/test-server", sim::kubelet::ImageEntry::new(support::SERVER));
    config.kubelet = sim::kubelet::KubeletConfig { images, ..sim::kubelet::KubeletConfig::fast() };
    let sim = sim::Sim::start(config).await.unwrap();
    let client = sim.client().unwrap();
    servers(&client, "default", "noipt", 1, PORT).await;
    let api = chaos_api(&client, "default", "NetworkChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "NetworkChaos", "metadata": {"name": "no-iptables"},
            "spec": {"action": "partition", "mode": "all", "selector": {"labelSelectors": {"app": "noipt"}}},
        }),
    )
    .await;
    let obj = wait_for(&api, "no-iptables", "a failed apply", |o: Option<&kube::api::DynamicObject>| {
        o.is_some_and(|o| o.data["status"]["experiment"]["containerRecords"][0]["events"][0]["type"] == "Failed")
    })
    .await;
    let msg =
        obj.data["status"]["experiment"]["containerRecords"][0]["events"][0]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("iptables is turned off"), "{msg}");
    assert_eq!(condition(&obj, "AllInjected").as_deref(), Some("False"));
    delete_and_await_gone(&api, "no-iptables").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delay_slows_service_traffic_of_the_selected_pods() {
    const PORT: u16 = 18416;
    let sim = start(1).await;
    let client = sim.client().unwrap();
    servers(&client, "default", "slow", 1, PORT).await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "slow"},
        "spec": {"selector": {"app": "slow"}, "ports": [{"port": 80, "targetPort": PORT}]},
    }))
    .unwrap();
    let svc = Api::<Service>::default_namespaced(client.clone()).create(&PostParams::default(), &svc).await.unwrap();
    let vip: IpAddr = svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    let front = SocketAddr::new(vip, 80);
    until(front, "the service answers", |r| r.is_ok()).await;
    let timed = |addr| async move {
        let t = Instant::now();
        who(addr, Duration::from_secs(5)).await.expect("answer");
        t.elapsed()
    };
    let before = timed(front).await;
    let api = chaos_api(&client, "default", "NetworkChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "NetworkChaos", "metadata": {"name": "slow"},
            "spec": {"action": "delay", "mode": "all", "delay": {"latency": "300ms", "jitter": "0ms"},
                     "selector": {"labelSelectors": {"app": "slow"}}},
        }),
    )
    .await;
    await_injected(&api, "slow").await;
    let during = timed(front).await;
    println!("delay 300ms: request through the ClusterIP took {before:?} before, {during:?} during");
    assert!(during >= Duration::from_millis(300), "{during:?}");
    delete_and_await_gone(&api, "slow").await;
    let after = timed(front).await;
    assert!(after < Duration::from_millis(300), "not delayed after delete: {after:?}");
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_cluster_removes_its_rules_and_workers() {
    const PORT: u16 = 18417;
    let sim = start(1).await;
    if !iptables_or_skip(&sim, "dropping_the_cluster_removes_its_rules_and_workers") {
        return;
    }
    let client = sim.client().unwrap();
    servers(&client, "default", "dropped", 1, PORT).await;
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "NetworkChaos", "metadata": {"name": "held"},
            "spec": {"action": "partition", "mode": "all", "selector": {"labelSelectors": {"app": "dropped"}}},
        }),
    )
    .await;
    create_chaos(&client, "default", json!({
        "kind": "StressChaos", "metadata": {"name": "held"},
        "spec": {"mode": "all", "stressors": {"cpu": {"workers": 1, "load": 5}}, "selector": {"labelSelectors": {"app": "dropped"}}},
    }))
    .await;
    await_injected(&chaos_api(&client, "default", "NetworkChaos"), "held").await;
    await_injected(&chaos_api(&client, "default", "StressChaos"), "held").await;
    let chaos = sim.chaos().unwrap();
    let chain = chaos.injections().iter().find_map(|i| i.chain.clone()).expect("a chain");
    let workers = chaos.stress_workers("default", "held");
    assert_eq!(workers.len(), 1);
    drop(sim);
    assert!(!sim::chaos::iptables::existing_chains().contains(&chain), "{chain} removed when the cluster is dropped");
    let t0 = Instant::now();
    while workers.iter().any(|p| sim::kubelet::runtime::pid_alive(*p)) {
        assert!(t0.elapsed() < PROMPTLY, "stress workers still alive after the cluster was dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
