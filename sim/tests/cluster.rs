//! The embedded cluster as a whole: scheduler, workload controllers, kubelets running the
//! `hadrill-test-server` binary as real processes, endpoints and the Service proxy, and node
//! lifecycle, all at once, as a user of `hadrill sim up` sees them.
//!
//! Every cluster has its own pod addresses, so tests running in parallel may use the same ports.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use serde_json::{Value, json};
use sim::Sim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound for anything the cluster should do promptly (a safety net, not a sleep).
const PROMPTLY: Duration = Duration::from_secs(30);

async fn start(nodes: usize) -> Sim {
    support::start_with(support::process_config(nodes)).await
}

/// A pod template of the test server on `port` with an HTTP readiness probe, labelled `labels`.
fn server_template(labels: Value, port: u16, spread: bool) -> Value {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 2,
        "containers": [{
            "name": "server", "image": "hadrill/test-server:dev",
            "env": [{"name": "PORT", "value": port.to_string()}],
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
        }],
    });
    if spread {
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels.clone()}, "topologyKey": "kubernetes.io/hostname"}]}});
    }
    json!({"metadata": {"labels": labels}, "spec": spec})
}

async fn deployment(client: &kube::Client, name: &str, replicas: i32, port: u16, spread: bool) -> Deployment {
    let labels = json!({"app": name});
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
            "template": server_template(labels.clone(), port, spread)},
    }))
    .expect("deployment fixture");
    Api::default_namespaced(client.clone()).create(&PostParams::default(), &d).await.expect("create deployment")
}

async fn service(client: &kube::Client, name: &str, selector: Value, port: u16) -> Service {
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": port}]},
    }))
    .expect("service fixture");
    Api::default_namespaced(client.clone()).create(&PostParams::default(), &s).await.expect("create service")
}

/// Waits (by watch) until `cond` holds for `name`; on timeout shows the object's status.
async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize + Send + 'static,
{
    match tokio::time::timeout(PROMPTLY, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(other) => panic!("watching {name} for {what}: {other:?}"),
        Err(_) => {
            let now = api.get(name).await.ok().and_then(|o| serde_json::to_value(o).ok());
            panic!(
                "timed out waiting for {name}: {what}; now: {}",
                now.map(|o| o["status"].to_string()).unwrap_or_default()
            )
        }
    }
}

fn available(replicas: i32) -> impl Condition<Deployment> {
    move |d: Option<&Deployment>| {
        let Some(s) = d.and_then(|d| d.status.as_ref()) else { return false };
        s.available_replicas == Some(replicas)
            && s.conditions.iter().flatten().any(|c| c.type_ == "Available" && c.status == "True")
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn pods_of(client: &kube::Client, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let mut pods = api.list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list pods").items;
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods
}

/// `GET /` (the test server answers with its pod name), or the connection error.
async fn who(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await??;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut buf)).await??;
    Ok(buf.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
}

/// One HTTP/1.1 request and its whole answer (headers and `content-length` body) on `conn`,
/// which stays open when `connection` is `keep-alive`.
async fn exchange(conn: &mut tokio::net::TcpStream, host: SocketAddr, connection: &str) -> String {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.expect("send the request");
    let mut got = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a content-length");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read the answer");
        assert!(n > 0, "the connection closed mid-answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

async fn post(addr: SocketAddr, path: &str) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf).await;
}

fn pod_addr(p: &Pod, port: u16) -> SocketAddr {
    let ip = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).expect("pod IP");
    SocketAddr::new(ip.parse().expect("pod IP parses"), port)
}

async fn cluster_addr(client: &kube::Client, svc: &str) -> SocketAddr {
    let s: Service = Api::default_namespaced(client.clone()).get(svc).await.expect("service");
    let ip = s.spec.and_then(|s| s.cluster_ip).expect("cluster IP");
    SocketAddr::new(ip.parse().expect("cluster IP parses"), 80)
}

/// Who answers `n` new connections through `addr`.
async fn answers(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        seen.push(who(addr).await.unwrap_or_else(|e| format!("error: {e}")));
    }
    seen
}

/// Polls `addr` (there is nothing to watch for "the proxy now routes there") until `ok`.
async fn until_answers(addr: SocketAddr, what: &str, ok: impl Fn(&str) -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if who(addr).await.is_ok_and(|w| ok(&w)) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < PROMPTLY, "{what}: not within {PROMPTLY:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_of_real_servers_spreads_serves_only_ready_pods_and_heals() {
    const PORT: u16 = 18301;
    let sim = start(3).await;
    let client = sim.client().expect("client");
    deployment(&client, "web", 2, PORT, true).await;
    service(&client, "web", json!({"app": "web"}), PORT).await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    wait_for(&deps, "web", "2 available replicas", available(2)).await;

    let pods = pods_of(&client, "web").await;
    let nodes: BTreeSet<_> = pods.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
    assert_eq!(nodes.len(), 2, "hostname anti-affinity puts the replicas on different nodes");
    for p in &pods {
        let name = p.metadata.name.clone().expect("name");
        assert_eq!(who(pod_addr(p, PORT)).await.expect("pod answers on its IP"), name);
    }
    let vip = cluster_addr(&client, "web").await;
    let names: BTreeSet<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let served: BTreeSet<String> = answers(vip, 20).await.into_iter().collect();
    assert_eq!(served, names, "the Service balances over both ready pods");

    // One pod reports not ready: the Service stops sending it new connections.
    let (off, on) = (&pods[0], &pods[1]);
    post(pod_addr(off, PORT), "/ready/off").await;
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let off_name = off.metadata.name.clone().expect("name");
    wait_for(&api, &off_name, "Ready=False", |p: Option<&Pod>| p.is_some_and(|p| !is_ready(p))).await;
    let on_name = on.metadata.name.clone().expect("name");
    until_answers(vip, "only the ready pod", |w| w == on_name).await;
    assert!(answers(vip, 20).await.iter().all(|w| *w == on_name), "no connection reaches the unready pod");

    // Deleting a pod gets it replaced by the ReplicaSet; the Deployment is Available again.
    api.delete(&off_name, &DeleteParams::default()).await.expect("delete pod");
    wait_for(&deps, "web", "a replacement pod", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.available_replicas == Some(2) && s.replicas == Some(2))
    })
    .await;
    let now: BTreeSet<String> = pods_of(&client, "web").await.into_iter().filter_map(|p| p.metadata.name).collect();
    assert!(!now.contains(&off_name) && now.contains(&on_name) && now.len() == 2, "{now:?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_selector_switch_sends_new_connections_to_the_other_workload() {
    const PORT: u16 = 18302;
    let sim = start(2).await;
    let client = sim.client().expect("client");
    deployment(&client, "blue", 1, PORT, false).await;
    deployment(&client, "green", 1, PORT, false).await;
    service(&client, "app", json!({"app": "blue"}), PORT).await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    for d in ["blue", "green"] {
        wait_for(&deps, d, "1 available replica", available(1)).await;
    }
    let vip = cluster_addr(&client, "app").await;
    until_answers(vip, "blue serves", |w| w.starts_with("blue-")).await;
    // A connection established before the switch stays with blue. "Established" is shown by an
    // answer from blue on it: a connect alone only proves the kernel's handshake with the proxy,
    // which may pick its backend later (kube-proxy's DNAT picks at the SYN; a userspace proxy
    // at accept).
    let mut before = tokio::net::TcpStream::connect(vip).await.expect("connect before the switch");
    let first = exchange(&mut before, vip, "keep-alive").await;
    assert!(first.contains("blue-"), "the first answer on the connection comes from blue: {first}");

    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let t0 = Instant::now();
    svcs.patch("app", &PatchParams::default(), &Patch::Merge(json!({"spec": {"selector": {"app": "green"}}})))
        .await
        .expect("switch the selector");
    until_answers(vip, "green serves", |w| w.starts_with("green-")).await;
    let took = t0.elapsed();
    println!("selector switch to the first new connection on green: {took:?}");
    assert!(answers(vip, 10).await.iter().all(|w| w.starts_with("green-")), "every new connection goes to green");
    let again = exchange(&mut before, vip, "close").await;
    assert!(again.contains("blue-"), "the established connection stays with blue: {again}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_stops_heartbeating_goes_unknown_and_its_pods_unready() {
    const PORT: u16 = 18303;
    let sim = start(2).await;
    let client = sim.client().expect("client");
    deployment(&client, "hb", 1, PORT, false).await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    wait_for(&deps, "hb", "1 available replica", available(1)).await;
    let pod = pods_of(&client, "hb").await.pop().expect("one pod");
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("bound");

    let stopped = Instant::now();
    sim.kubelets().node(&node).expect("kubelet of the node").set_heartbeat(false);
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(&nodes, &node, "Ready=Unknown", |n: Option<&Node>| {
        n.and_then(|n| n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").cloned())
            .is_some_and(|c| c.status == "Unknown")
    })
    .await;
    let after = stopped.elapsed();
    println!("heartbeat stopped to Ready=Unknown: {after:?} (grace 2 s)");
    assert!(after >= Duration::from_secs(1), "not before the grace period: {after:?}");
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let name = pod.metadata.name.clone().expect("name");
    wait_for(&api, &name, "pod Ready=False", |p: Option<&Pod>| p.is_some_and(|p| !is_ready(p))).await;
    // The process itself still runs: only the control plane lost sight of the node.
    assert_eq!(who(pod_addr(&pod, PORT)).await.expect("the process still answers"), name);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statefulset_starts_its_ordinals_in_order_as_processes() {
    const PORT: u16 = 18304;
    let sim = start(2).await;
    let client = sim.client().expect("client");
    let labels = json!({"app": "db"});
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": labels},
            "template": server_template(labels.clone(), PORT, false)},
    }))
    .expect("statefulset fixture");
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &set).await.expect("create statefulset");
    wait_for(&sets, "db", "3 ready replicas", |s: Option<&StatefulSet>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|s| s.ready_replicas == Some(3))
    })
    .await;
    let mut pods = pods_of(&client, "db").await;
    pods.sort_by_key(|p| p.metadata.name.clone());
    let names: Vec<_> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    // OrderedReady: each ordinal was created only after its predecessor was Ready.
    let created: Vec<_> = pods.iter().map(|p| p.metadata.creation_timestamp.clone().expect("created").0).collect();
    let ready_at: Vec<_> = pods
        .iter()
        .map(|p| {
            let conds = p.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            conds.into_iter().find(|c| c.type_ == "Ready").and_then(|c| c.last_transition_time).expect("ready time").0
        })
        .collect();
    for i in 1..3 {
        assert!(created[i] >= ready_at[i - 1], "db-{i} created before db-{} was ready", i - 1);
    }
    for p in &pods {
        assert_eq!(who(pod_addr(p, PORT)).await.expect("answers"), p.metadata.name.clone().unwrap_or_default());
    }
    let pids = sim.kubelets().live_pids();
    assert_eq!(pids.len(), 3, "one process per pod: {pids:?}");
    sim.stop().await;
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} survived stop");
    }
}
