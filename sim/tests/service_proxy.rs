//! The service proxy: ClusterIP traffic reaches ready endpoints round-robin, follows
//! EndpointSlice changes for new connections within 100 ms, falls back to core/v1 Endpoints,
//! and refuses connections when a Service port has no ready endpoint.
//!
//! Backends listen on addresses of the test's own cluster (its address block: node *i*'s pod
//! range), so tests running in parallel, in this process or another, never share a socket.

mod network_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use network_support::start;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const BACKEND_PORT: u16 = 9376;

/// A TCP backend that greets each connection with its name, then echoes lines.
struct Backend {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend(ip: &str, name: &str) -> Backend {
    let listener = TcpListener::bind((ip, BACKEND_PORT)).await.expect("backend binds");
    let name = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let name = name.clone();
            tokio::spawn(async move {
                if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                    return;
                }
                let (r, mut w) = s.split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if w.write_all(format!("{name}:{l}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Backend { task }
}

/// Connects through the proxy and reads the backend's greeting.
async fn greeting(addr: SocketAddr) -> std::io::Result<(String, BufReader<TcpStream>)> {
    let s = TcpStream::connect(addr).await?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line)).await.map_err(std::io::Error::other)??;
    if line.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed without greeting"));
    }
    Ok((line.trim().to_string(), r))
}

/// Opens fresh connections until one is greeted by `want`; returns how long that took.
async fn until_greeted_by(addr: SocketAddr, want: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        if let Ok((name, _)) = greeting(addr).await
            && name == want
        {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no connection reached {want} through {addr}");
        tokio::task::yield_now().await;
    }
}

/// Opens fresh connections until one is refused.
async fn until_refused(addr: SocketAddr) {
    let t0 = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{addr} still accepts connections");
        tokio::task::yield_now().await;
    }
}

/// A selector-less Service: its endpoints are managed by the test, as on a real cluster
/// (the endpoints controllers leave such Services alone).
async fn service(client: &kube::Client, name: &str, ip: &str, ports: Value) -> Service {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"clusterIP": ip, "ports": ports}
    }))
    .unwrap();
    Api::<Service>::default_namespaced(client.clone()).create(&PostParams::default(), &svc).await.unwrap()
}

fn slice_body(name: &str, svc: &str, ports: Value, endpoints: Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints
    }))
    .unwrap()
}

fn ep(ip: &str, ready: bool) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": ready}})
}

/// A backend address on node `node` of the cluster (the first of its pod range: these
/// clusters run no kubelet, so no pod takes it).
fn backend_ip(sim: &sim::Sim, node: usize) -> String {
    sim.addresses().pod_range(node).start().to_string()
}

/// A ClusterIP of the cluster's range for a Service that asks for one.
fn cluster_ip(sim: &sim::Sim) -> String {
    std::net::Ipv4Addr::from(u32::from(*sim.addresses().service_range().start()) + 100).to_string()
}

fn http_port() -> Value {
    json!([{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}])
}

#[tokio::test]
async fn round_robin_over_ready_endpoints_only() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    let (ips, svc_ip) = ([backend_ip(&sim, 1), backend_ip(&sim, 2), backend_ip(&sim, 3)], cluster_ip(&sim));
    let [ip1, ip2, ip3] = ips.each_ref().map(String::as_str);
    let _a = backend(ip1, "a").await;
    let _b = backend(ip2, "b").await;
    let _c = backend(ip3, "c").await;
    service(&client, "web", &svc_ip, json!([{"name": "http", "port": 8080, "targetPort": BACKEND_PORT}])).await;
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let body = slice_body("web-1", "web", http_port(), json!([ep(ip1, true), ep(ip2, true), ep(ip3, false)]));
    slices.create(&PostParams::default(), &body).await.unwrap();
    let addr: SocketAddr = format!("{svc_ip}:8080").parse().unwrap();
    until_greeted_by(addr, "a").await;
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(greeting(addr).await.expect("proxied connection").0);
    }
    assert!(!seen.contains(&"c".to_string()), "a not-ready endpoint gets no traffic: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "strict alternation between the two: {seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 4, "{seen:?}");

    // Bytes flow both ways on the spliced connection.
    let (_, mut conn) = greeting(addr).await.unwrap();
    conn.get_mut().write_all(b"ping\n").await.unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    assert!(line == "a:ping\n" || line == "b:ping\n", "{line:?}");
}

#[tokio::test]
async fn a_slice_change_moves_new_connections_within_100ms() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    let (ips, svc_ip) = ([backend_ip(&sim, 1), backend_ip(&sim, 2)], cluster_ip(&sim));
    let [ip1, ip2] = ips.each_ref().map(String::as_str);
    let _a = backend(ip1, "a").await;
    let _b = backend(ip2, "b").await;
    service(&client, "api", &svc_ip, json!([{"name": "http", "port": 8080, "targetPort": BACKEND_PORT}])).await;
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    slices
        .create(&PostParams::default(), &slice_body("api-1", "api", http_port(), json!([ep(ip1, true)])))
        .await
        .unwrap();
    let addr: SocketAddr = format!("{svc_ip}:8080").parse().unwrap();
    until_greeted_by(addr, "a").await;
    let (_, mut established) = greeting(addr).await.unwrap();

    let mut worst = Duration::ZERO;
    for (to, from_ip, to_ip) in [("b", ip1, ip2), ("a", ip2, ip1)] {
        let patch = json!({"endpoints": [ep(from_ip, false), ep(to_ip, true)]});
        let t0 = Instant::now();
        slices.patch("api-1", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        until_greeted_by(addr, to).await;
        worst = worst.max(t0.elapsed());
    }
    println!("slice change to first new connection on the new backend: {worst:?} (worst of 2)");
    assert!(worst < Duration::from_millis(100), "took {worst:?}");

    // The connection established before the changes still talks to its backend.
    established.get_mut().write_all(b"still\n").await.unwrap();
    let mut line = String::new();
    established.read_line(&mut line).await.unwrap();
    assert_eq!(line, "a:still\n");
}

#[tokio::test]
async fn no_ready_endpoint_means_refused_and_endpoints_are_the_fallback() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    let (ips, svc_ip) = ([backend_ip(&sim, 1), backend_ip(&sim, 2)], cluster_ip(&sim));
    let [ip1, ip2] = ips.each_ref().map(String::as_str);
    let _a = backend(ip1, "a").await;
    let _b = backend(ip2, "b").await;
    let addr: SocketAddr = format!("{svc_ip}:8080").parse().unwrap();
    service(&client, "db", &svc_ip, json!([{"name": "http", "port": 8080, "targetPort": BACKEND_PORT}])).await;
    until_refused(addr).await;

    // Without EndpointSlices, core/v1 Endpoints are used (ready addresses only).
    let endpoints: Api<Endpoints> = Api::default_namespaced(client.clone());
    let body: Endpoints = serde_json::from_value(json!({"metadata": {"name": "db"}, "subsets": [{
        "addresses": [{"ip": ip2}], "notReadyAddresses": [{"ip": ip1}],
        "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}]}]}))
    .unwrap();
    endpoints.create(&PostParams::default(), &body).await.unwrap();
    until_greeted_by(addr, "b").await;

    // Once a slice exists it wins over Endpoints; not-ready endpoints only: refused.
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    slices
        .create(&PostParams::default(), &slice_body("db-1", "db", http_port(), json!([ep(ip1, false)])))
        .await
        .unwrap();
    until_refused(addr).await;
    let patch = json!({"endpoints": [ep(ip1, true)]});
    slices.patch("db-1", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    until_greeted_by(addr, "a").await;
    for _ in 0..4 {
        assert_eq!(greeting(addr).await.unwrap().0, "a", "the slice, not the Endpoints object, is used");
    }

    // A slice whose ports do not name the Service port gives it no backend.
    let patch = json!({"ports": [{"name": "metrics", "port": BACKEND_PORT, "protocol": "TCP"}]});
    slices.patch("db-1", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    until_refused(addr).await;
}

#[tokio::test]
async fn port_changes_and_deletion_close_and_reopen_listeners() {
    let sim = start(3, |_| {}).await;
    let client = sim.client().unwrap();
    let (ip1, svc_ip) = (backend_ip(&sim, 1), cluster_ip(&sim));
    let ip1 = ip1.as_str();
    let _a = backend(ip1, "a").await;
    service(&client, "cache", &svc_ip, json!([{"name": "http", "port": 8080, "targetPort": BACKEND_PORT}])).await;
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    slices
        .create(&PostParams::default(), &slice_body("cache-1", "cache", http_port(), json!([ep(ip1, true)])))
        .await
        .unwrap();
    let old: SocketAddr = format!("{svc_ip}:8080").parse().unwrap();
    let new: SocketAddr = format!("{svc_ip}:8081").parse().unwrap();
    until_greeted_by(old, "a").await;
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let patch =
        json!({"spec": {"ports": [{"name": "http", "port": 8081, "targetPort": BACKEND_PORT, "protocol": "TCP"}]}});
    services.patch("cache", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    until_greeted_by(new, "a").await;
    until_refused(old).await;
    services.delete("cache", &DeleteParams::default()).await.unwrap();
    until_refused(new).await;
}
