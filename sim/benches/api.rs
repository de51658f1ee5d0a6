//! Embedded cluster API benchmark: prints figures, asserts nothing about speed.
//!
//! - start-to-ready time (Sim::start until /readyz answers over HTTP)
//! - create throughput: 10,000 pods through kube-rs over HTTP (32 concurrent clients)
//! - create throughput, JSON vs protobuf bodies and answers (2,000 pods each, 32 concurrent
//!   requests, the encoding kubectl's typed clients use)
//! - list latency at 10,000 pods (full list over HTTP, body read, not decoded), JSON and
//!   protobuf
//! - watch fan-out: 50 watchers each receiving all of 10,000 events; lost/reordered counted
//!
//! Targets (issue "Embedded cluster, part 1"): ready < 0.5 s, list of 10,000 pods < 100 ms,
//! zero lost events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde::Deserialize;
use serde_json::json;
use sim::{Sim, SimConfig};

const PODS: usize = 10_000;
const WATCHERS: usize = 50;

#[derive(Clone, Debug, Deserialize)]
struct SlimMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: String,
}

#[derive(Clone, Debug, Deserialize)]
struct Slim {
    metadata: SlimMeta,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    format!("rss {} (peak {})", field("VmRSS:").unwrap_or_default(), field("VmHWM:").unwrap_or_default())
}

async fn start_to_ready() {
    let mut times = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let sim = Sim::start(SimConfig::default()).await.expect("start");
        let client = sim.client().expect("client");
        let req = http::Request::get("/readyz").body(Vec::new()).expect("request");
        client.request_text(req).await.expect("readyz");
        times.push(t0.elapsed());
        sim.stop().await;
    }
    times.sort();
    println!(
        "start-to-ready          p50 {}  max {}  (target < 500 ms)",
        ms(percentile(&times, 0.5)),
        ms(times[times.len() - 1])
    );
}

const ENCODED: usize = 2_000;
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Creates `ENCODED` pods named `{prefix}-N`, bodies and answers in `content_type`; pods/s.
async fn create_encoded(client: &kube::Client, prefix: &'static str, content_type: &'static str) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ENCODED {
                    break;
                }
                let mut obj = serde_json::to_value(pod(i)).expect("pod json");
                obj["apiVersion"] = json!("v1");
                obj["kind"] = json!("Pod");
                obj["metadata"]["name"] = json!(format!("{prefix}-{i:05}"));
                let body = if content_type == PROTOBUF {
                    sim::api::protobuf::encode(&obj).expect("protobuf pod")
                } else {
                    serde_json::to_vec(&obj).expect("json pod")
                };
                let req = http::Request::post("/api/v1/namespaces/default/pods")
                    .header("content-type", content_type)
                    .header("accept", content_type)
                    .body(body)
                    .expect("request");
                let resp = client.send(req.map(kube::client::Body::from)).await.expect("create");
                assert_eq!(resp.status(), 201, "create {prefix}-{i}");
                http_body_util::BodyExt::collect(resp.into_body()).await.expect("answer");
            }
        }));
    }
    for t in tasks {
        t.await.expect("creator");
    }
    ENCODED as f64 / t0.elapsed().as_secs_f64()
}

/// p50/p95 and size of a full list of the default namespace's pods in `accept`.
async fn list_times(client: &kube::Client, accept: &str) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let req = http::Request::get("/api/v1/namespaces/default/pods")
            .header("accept", accept)
            .body(kube::client::Body::empty())
            .expect("request");
        let t = Instant::now();
        let resp = client.send(req).await.expect("list");
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("list body").to_bytes();
        times.push(t.elapsed());
        bytes = body.len();
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.95), bytes)
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{i:05}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
        "spec": {"containers": [{"name": "app", "image": "hadrill/virtual:1", "ports": [{"containerPort": 8080}]}]}
    }))
    .expect("pod")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    sim::install_crypto_provider();
    println!(
        "hadrill embedded cluster API benchmark ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    start_to_ready().await;

    let sim = Sim::start(SimConfig::default()).await.expect("start");
    let client = sim.client().expect("client");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    // Watchers first, so every create is an event they must all see.
    let start_rv = sim.api().store.resource_version().to_string();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let client = client.clone();
        let rv = start_rv.clone();
        watchers.push(tokio::spawn(async move {
            let req = kube::core::Request::new("/api/v1/namespaces/default/pods")
                .watch(&WatchParams::default().timeout(290), &rv)
                .expect("watch request");
            let stream = client.request_events::<Slim>(req).await.expect("watch");
            let mut stream = std::pin::pin!(stream);
            let (mut seen, mut reordered, mut last) = (0usize, 0usize, 0u64);
            while let Ok(Some(ev)) = stream.try_next().await {
                if let WatchEvent::Added(o) = ev {
                    let rv: u64 = o.metadata.resource_version.parse().unwrap_or(0);
                    if rv <= last {
                        reordered += 1;
                    }
                    last = rv;
                    seen += 1;
                    if seen == PODS {
                        break;
                    }
                }
            }
            (seen, reordered, Instant::now())
        }));
    }

    let t0 = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..32 {
        let pods = pods.clone();
        let next = next.clone();
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= PODS {
                    break;
                }
                pods.create(&PostParams::default(), &pod(i)).await.expect("create");
            }
        }));
    }
    for c in creators {
        c.await.expect("creator");
    }
    let create = t0.elapsed();
    println!(
        "create 10,000 pods      {:.2} s  = {:.0} pods/s over HTTP",
        create.as_secs_f64(),
        PODS as f64 / create.as_secs_f64()
    );

    let (mut lost, mut reordered, mut done_at) = (0usize, 0usize, t0);
    for w in watchers {
        let (seen, r, at) =
            tokio::time::timeout(Duration::from_secs(120), w).await.expect("watcher finishes").expect("watcher");
        lost += PODS - seen;
        reordered += r;
        done_at = done_at.max(at);
    }
    println!(
        "watch fan-out           {WATCHERS} watchers x {PODS} events: all delivered {:.2} s after the first create; lost {lost}, reordered {reordered} (target 0 lost)",
        (done_at - t0).as_secs_f64()
    );

    for (name, accept) in [("JSON    ", "application/json"), ("protobuf", PROTOBUF)] {
        let (p50, p95, bytes) = list_times(&client, accept).await;
        println!(
            "list 10,000 pods {name} p50 {}  p95 {}  ({:.1} MB; target < 100 ms)",
            ms(p50),
            ms(p95),
            bytes as f64 / 1e6
        );
    }
    let mut times = Vec::new();
    for _ in 0..20 {
        let req = http::Request::get("/api/v1/namespaces/default/pods?labelSelector=shard%3D3")
            .body(Vec::new())
            .expect("request");
        let t = Instant::now();
        client.request_text(req).await.expect("list");
        times.push(t.elapsed());
    }
    times.sort();
    println!("list by label (1,000)   p50 {}", ms(percentile(&times, 0.5)));
    println!("memory                  {} (benchmark process: server + 50 watch clients)", memory());
    sim.stop().await;

    // Encodings on a fresh cluster, so both measure creates into the same store size.
    for (name, prefix, content_type) in [("JSON    ", "json", "application/json"), ("protobuf", "proto", PROTOBUF)] {
        let sim = Sim::start(SimConfig::default()).await.expect("start");
        let client = sim.client().expect("client");
        let rate = create_encoded(&client, prefix, content_type).await;
        println!("create {ENCODED} pods {name} {rate:.0} pods/s (bodies and answers in {content_type})");
        sim.stop().await;
    }
}
