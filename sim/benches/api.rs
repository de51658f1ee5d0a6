//! Embedded cluster API benchmark: prints figures, asserts nothing about speed.
//!
//! - start-to-ready time (Sim::start until /readyz answers over HTTP)
//! - create throughput: 10,000 pods through kube-rs over HTTP (32 concurrent clients)
//! - list latency at 10,000 pods (full JSON list over HTTP, body read, not decoded)
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

    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let req = http::Request::get("/api/v1/namespaces/default/pods").body(Vec::new()).expect("request");
        let t = Instant::now();
        let body = client.request_text(req).await.expect("list");
        times.push(t.elapsed());
        bytes = body.len();
    }
    times.sort();
    println!(
        "list 10,000 pods        p50 {}  p95 {}  ({:.1} MB; target < 100 ms)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        bytes as f64 / 1e6
    );
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
}
