//! Service proxy benchmark: the same exchanges through a ClusterIP and directly to the backend.
//! Prints figures, asserts nothing about speed.
//!
//! - request/response latency on new connections (connect, 64-byte request, 64-byte answer)
//! - request/response latency on one persistent connection
//! - bulk throughput (256 MiB one way, acknowledged by the receiver)
//!
//! Targets (issue "Scheduler, node lifecycle, service proxy"): p50 overhead under 0.2 ms,
//! throughput at least half of direct.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::json;
use sim::{Sim, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The backends listen outside every cluster's address block (127.0.0.0/16 is the host's).
const BACKEND_IP: &str = "127.0.0.1";
const ECHO_PORT: u16 = 9376;
const SINK_PORT: u16 = 9377;
const MSG: usize = 64;
const NEW_CONNECTIONS: usize = 3_000;
const ROUND_TRIPS: usize = 20_000;
const BULK: usize = 256 << 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Answers every 64-byte message with 64 bytes.
async fn echo_server() {
    let listener = TcpListener::bind((BACKEND_IP, ECHO_PORT)).await.expect("echo backend binds");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; MSG];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// Reads everything, then answers with the byte count.
async fn sink_server() {
    let listener = TcpListener::bind((BACKEND_IP, SINK_PORT)).await.expect("sink backend binds");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = s.write_all(&total.to_be_bytes()).await;
            });
        }
    });
}

async fn exchange(s: &mut TcpStream) {
    let msg = [7u8; MSG];
    s.write_all(&msg).await.expect("write");
    let mut buf = [0u8; MSG];
    s.read_exact(&mut buf).await.expect("read");
}

async fn new_connection_latency(addr: SocketAddr) -> Vec<Duration> {
    let mut times = Vec::with_capacity(NEW_CONNECTIONS);
    for _ in 0..NEW_CONNECTIONS {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        exchange(&mut s).await;
        times.push(t.elapsed());
    }
    times.sort();
    times
}

async fn persistent_latency(addr: SocketAddr) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    for _ in 0..100 {
        exchange(&mut s).await;
    }
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        exchange(&mut s).await;
        times.push(t.elapsed());
    }
    times.sort();
    times
}

/// MB/s for sending BULK bytes and getting the receiver's acknowledgement.
async fn throughput(addr: SocketAddr) -> f64 {
    let chunk = vec![1u8; 256 * 1024];
    let t = Instant::now();
    {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut sent = 0;
        while sent < BULK {
            s.write_all(&chunk).await.expect("write");
            sent += chunk.len();
        }
        s.shutdown().await.expect("shutdown");
        let mut ack = [0u8; 8];
        s.read_exact(&mut ack).await.expect("ack");
        assert_eq!(u64::from_be_bytes(ack), BULK as u64, "receiver got every byte");
    }
    BULK as f64 / 1e6 / t.elapsed().as_secs_f64()
}

/// Starts an embedded cluster whose Service `bench` proxies to the two backends; returns it
/// and the Service's ClusterIP.
async fn cluster(zero_copy: bool) -> (Sim, String) {
    let mut config = SimConfig::default();
    config.proxy.zero_copy = zero_copy;
    let sim = Sim::start(config).await.expect("start");
    let client = sim.client().expect("client");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "bench"}, "spec": {"ports": [
        {"name": "echo", "port": 80, "targetPort": ECHO_PORT}, {"name": "sink", "port": 81, "targetPort": SINK_PORT}]}}))
    .expect("service");
    let svc =
        Api::<Service>::default_namespaced(client.clone()).create(&PostParams::default(), &svc).await.expect("svc");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP is allocated");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "bench-1", "labels": {"kubernetes.io/service-name": "bench"}},
        "addressType": "IPv4",
        "ports": [{"name": "echo", "port": ECHO_PORT}, {"name": "sink", "port": SINK_PORT}],
        "endpoints": [{"addresses": [BACKEND_IP], "conditions": {"ready": true}}]
    }))
    .expect("slice");
    Api::<EndpointSlice>::default_namespaced(client).create(&PostParams::default(), &slice).await.expect("slice");
    let t0 = Instant::now();
    let addr: SocketAddr = format!("{ip}:80").parse().expect("addr");
    while TcpStream::connect(addr).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "proxy listener did not come up");
        tokio::task::yield_now().await;
    }
    println!(
        "service {ip} -> {BACKEND_IP} ({}; listener up {:.1} ms after the slice was created)",
        if zero_copy { "splice" } else { "buffer copy" },
        t0.elapsed().as_secs_f64() * 1e3
    );
    (sim, ip)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    sim::install_crypto_provider();
    println!("hadrill service proxy benchmark ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    echo_server().await;
    sink_server().await;
    // Two clusters in one process: the default (splice) proxy and the buffer-copy one.
    let (splice_sim, splice_ip) = cluster(true).await;
    let (copy_sim, copy_ip) = cluster(false).await;
    let at = |ip: &str, port: u16| -> SocketAddr { format!("{ip}:{port}").parse().expect("addr") };
    let (direct_echo, direct_sink) = (at(BACKEND_IP, ECHO_PORT), at(BACKEND_IP, SINK_PORT));
    let proxied_echo = at(&splice_ip, 80);

    for (what, direct, proxied) in [
        (
            "new connection + 64 B exchange",
            new_connection_latency(direct_echo).await,
            new_connection_latency(proxied_echo).await,
        ),
        (
            "64 B exchange, persistent conn",
            persistent_latency(direct_echo).await,
            persistent_latency(proxied_echo).await,
        ),
    ] {
        let (d50, d99, p50, p99) = (
            percentile(&direct, 0.5),
            percentile(&direct, 0.99),
            percentile(&proxied, 0.5),
            percentile(&proxied, 0.99),
        );
        println!(
            "{what:32} direct p50 {} p99 {} | proxy p50 {} p99 {} | p50 overhead {} (target < 0.200 ms), ratio {:.2}x",
            ms(d50),
            ms(d99),
            ms(p50),
            ms(p99),
            ms(p50.saturating_sub(d50)),
            p50.as_secs_f64() / d50.as_secs_f64()
        );
    }
    // Interleaved rounds so that the (noisy, shared) machine hits all three alike.
    let (mut direct, mut spliced, mut copied) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        direct.push(throughput(direct_sink).await);
        spliced.push(throughput(at(&splice_ip, 81)).await);
        copied.push(throughput(at(&copy_ip, 81)).await);
    }
    let (d, s, c) = (median(direct), median(spliced), median(copied));
    println!(
        "bulk 256 MiB one way (median of 5) direct {d:.0} MB/s | proxy {s:.0} MB/s, ratio {:.2} (target >= 0.50) | \
         buffer-copy proxy {c:.0} MB/s, ratio {:.2}",
        s / d,
        c / d
    );
    splice_sim.stop().await;
    copy_sim.stop().await;
}
