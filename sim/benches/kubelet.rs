//! Embedded kubelet benchmark (`cargo bench -p hadrill-sim --bench kubelet`): prints figures,
//! asserts nothing about speed.
//!
//! - virtual pods: 1,000 pods over 3 nodes created through kube-rs (32 concurrent clients);
//!   time until every pod is Ready, memory
//! - process pods: 50 `hadrill-test-server` pods with HTTP readiness probes; time until every
//!   pod is Ready, then time for `Sim::stop` to kill and reap them
//! - `pods/proxy`: GET round trip through the API server (kube-rs, as the harness reads a pod's
//!   HTTP API) against a direct GET on the pod IP (a new connection each, as the proxy opens);
//!   then 16 concurrent clients

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use sim::kubelet::{ImageEntry, ImageMap, KubeletConfig};
use sim::{Sim, SimConfig};

const VIRTUAL: usize = 1_000;
const REAL: usize = 50;
const NODES: usize = 3;

fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    format!("rss {} (peak {})", field("VmRSS:").unwrap_or_default(), field("VmHWM:").unwrap_or_default())
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates `pods` with 32 concurrent clients, then waits (by watch) until `count` are Ready.
async fn create_and_wait(api: &Api<Pod>, pods: Vec<Pod>) -> (Duration, Duration) {
    let count = pods.len();
    let ready_watch = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut ready = std::collections::HashSet::new();
            let stream = watcher(api, watcher::Config::default()).applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(p) = stream.try_next().await.expect("watch") {
                if is_ready(&p) {
                    ready.insert(p.metadata.name.clone().unwrap_or_default());
                    if ready.len() == count {
                        return Instant::now();
                    }
                }
            }
            Instant::now()
        })
    };
    let t0 = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(pods));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (api, queue) = (api.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().expect("queue").pop();
                    let Some(pod) = next else { break };
                    api.create(&PostParams::default(), &pod).await.expect("create");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("creator");
    }
    let created = t0.elapsed();
    let done = tokio::time::timeout(Duration::from_secs(300), ready_watch).await.expect("all Ready").expect("watch");
    (created, done - t0)
}

fn pod(name: &str, node: usize, image: &str, port: Option<u16>) -> Pod {
    let node = if node == 0 { "hadrill-worker".to_string() } else { format!("hadrill-worker{}", node + 1) };
    let mut c = json!({"name": "c", "image": image});
    if let Some(port) = port {
        c["env"] = json!([{"name": "PORT", "value": port.to_string()}]);
        c["readinessProbe"] = json!({"httpGet": {"path": "/readyz", "port": port}, "periodSeconds": 1});
    }
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [c]}}))
    .expect("pod")
}

const PROXIED: usize = 500;

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    format!("p50 {:.3} ms p99 {:.3} ms", at(0.5), at(0.99))
}

/// `GET /` on a new connection to `addr`, read to the end.
async fn direct_get(addr: std::net::SocketAddr) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to the pod");
    s.write_all(b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    buf
}

/// Round trips through `pods/proxy` against direct ones, then concurrent proxied requests.
async fn pod_proxy(api: &Api<Pod>) {
    let pod = api.get("p-0").await.expect("pod p-0");
    let ip = pod.status.and_then(|s| s.pod_ip).expect("pod IP");
    let addr: std::net::SocketAddr = format!("{ip}:18500").parse().expect("address");
    let client = api.clone().into_client();
    let get = |client: kube::Client| async move {
        let req = http::Request::get("/api/v1/namespaces/default/pods/p-0:18500/proxy/").body(Vec::new()).expect("req");
        client.request_text(req).await.expect("proxied GET")
    };
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..PROXIED {
        let t = Instant::now();
        direct_get(addr).await;
        direct.push(t.elapsed());
        let t = Instant::now();
        get(client.clone()).await;
        proxied.push(t.elapsed());
    }
    println!(
        "pods/proxy GET x{PROXIED}: direct {} | through the API server {}",
        percentiles(direct),
        percentiles(proxied)
    );
    let t = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..PROXIED / 16 {
                    get(client.clone()).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    let n = PROXIED / 16 * 16;
    println!(
        "pods/proxy GET, 16 concurrent clients: {n} in {:.2} s ({:.0} req/s)",
        t.elapsed().as_secs_f64(),
        n as f64 / t.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let images = ImageMap::new();
    images.insert("hadrill/test-server", ImageEntry::new(env!("CARGO_BIN_EXE_hadrill-test-server")));
    let kubelet = KubeletConfig { images, ..KubeletConfig::fast() };

    let sim =
        Sim::start(SimConfig { nodes: NODES, kubelet: kubelet.clone(), ..Default::default() }).await.expect("start");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    let pods = (0..VIRTUAL).map(|i| pod(&format!("v-{i}"), i % NODES, "registry.example/app:1", None)).collect();
    let (created, ready) = create_and_wait(&api, pods).await;
    println!(
        "virtual pods: {VIRTUAL} on {NODES} nodes created in {:.2} s, all Ready after {:.2} s ({:.0} pods/s); {}",
        created.as_secs_f64(),
        ready.as_secs_f64(),
        VIRTUAL as f64 / ready.as_secs_f64(),
        memory()
    );
    sim.stop().await;

    let sim = Sim::start(SimConfig { nodes: NODES, kubelet, ..Default::default() }).await.expect("start");
    let api: Api<Pod> = Api::namespaced(sim.client().expect("client"), "default");
    let pods = (0..REAL).map(|i| pod(&format!("p-{i}"), i % NODES, "hadrill/test-server", Some(18500))).collect();
    let (_, ready) = create_and_wait(&api, pods).await;
    println!("process pods: {REAL} test servers all Ready after {:.2} s", ready.as_secs_f64());
    pod_proxy(&api).await;
    let pids = sim.kubelets().live_pids();
    let t0 = Instant::now();
    sim.stop().await;
    let left = pids.iter().filter(|p| sim::kubelet::runtime::pid_alive(**p)).count();
    println!(
        "Sim::stop killed and reaped {} processes in {:.0} ms ({left} left)",
        pids.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
}
