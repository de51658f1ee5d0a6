//! `cargo bench -p hadrill --bench traces` prints:
//!
//! 1. the continuity check time for 1,000,000 spans (target: under 2 s) — vehicle sessions
//!    across a failover, built in memory;
//! 2. the sample service's request overhead with tracing on vs off: a dispatch -> planner
//!    chain in this process, tracing on exporting to the embedded OTLP receiver, requests sent
//!    one at a time and 16 at a time over keep-alive connections.
//!
//! Figures only; nothing is asserted.

#[path = "../tests/traces_support/mod.rs"]
mod traces_support;

use std::time::{Duration, Instant};

use hadrill::traces::checker::{Expect, check};
use hadrill::traces::receiver::Receiver;
use hadrill_sample::propagation::Format;
use hadrill_sample::serve::{ServeConfig, Server};
use hadrill_sample::target::Target;
use hadrill_sample::telemetry::export::ExportConfig;
use traces_support::{failover, session};

fn checker() {
    let build = Instant::now();
    let mut spans = Vec::with_capacity(1_000_200);
    let mut vehicles = 0;
    while spans.len() < 1_000_000 {
        spans.extend(session(&format!("v-{vehicles}"), &failover(120, 10, 120), 100_000_000));
        vehicles += 1;
    }
    println!("checker: {} spans of {vehicles} vehicle sessions built in {:?}", spans.len(), build.elapsed());
    for run in 1..=3 {
        let t = Instant::now();
        let report = check(&spans, Expect { failover: true });
        let took = t.elapsed();
        println!(
            "checker: run {run}: {} spans, {} traces, {} sessions, {} findings checked in {:.3} s (target < 2 s)",
            report.spans,
            report.traces,
            report.sessions.len(),
            report.findings.len(),
            took.as_secs_f64()
        );
    }
}

fn config(name: &str, tracing: bool, downstream: Option<Target>) -> ServeConfig {
    ServeConfig {
        name: name.into(),
        role: Some("primary".into()),
        pod: format!("{name}-0"),
        downstream,
        listen: "127.0.0.1:0".parse().expect("addr"),
        tracing,
        default_format: Format::W3c,
        drain: Duration::ZERO,
        downstream_timeout: Duration::from_secs(5),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn overhead(tracing: bool, receiver: &Receiver) -> anyhow::Result<()> {
    let export = ExportConfig { endpoint: Some(format!("{}/v1/traces", receiver.endpoint())), ..Default::default() };
    let planner = Server::start(config("planner", tracing, None), export.clone()).await?;
    let down = Target::from_env(&format!("http://{}", planner.addr()))?;
    let dispatch = Server::start(config("dispatch", tracing, Some(down)), export).await?;
    let url = format!("http://{}/v1/heartbeat", dispatch.addr());
    let http = reqwest::Client::new();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for _ in 0..200 {
        http.post(&url).header("traceparent", traceparent).send().await?.error_for_status()?;
    }
    let n = 3000;
    let mut lat = Vec::with_capacity(n);
    let t = Instant::now();
    for _ in 0..n {
        let s = Instant::now();
        http.post(&url).header("traceparent", traceparent).send().await?.error_for_status()?.bytes().await?;
        lat.push(s.elapsed());
    }
    let total = t.elapsed();
    lat.sort();
    let label = if tracing { "on " } else { "off" };
    println!(
        "overhead: tracing {label}: sequential {n} requests (dispatch -> planner): mean {:?}, p50 {:?}, p99 {:?}",
        total / n as u32,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / 16 {
                http.post(&url).header("traceparent", traceparent).send().await?.error_for_status()?.bytes().await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let took = t.elapsed();
    println!(
        "overhead: tracing {label}: 16 concurrent clients: {:.0} requests/s",
        (n / 16 * 16) as f64 / took.as_secs_f64()
    );
    let served = dispatch.counters().requests.load(std::sync::atomic::Ordering::Relaxed);
    dispatch.shutdown().await?;
    planner.shutdown().await?;
    if tracing {
        receiver.store().wait_quiet(Duration::from_millis(700), Duration::from_secs(30)).await?;
        println!(
            "overhead: tracing on: {served} requests served, {} spans received (3 per request)",
            receiver.store().len()
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    checker();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let receiver = Receiver::start().await?;
        overhead(false, &receiver).await?;
        overhead(true, &receiver).await?;
        receiver.stop().await;
        anyhow::Ok(())
    })
}
