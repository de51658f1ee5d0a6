//! `hadrill-sample vehicles`: N simulated vehicles sending heartbeats to a target (normally
//! the dispatch Service), each in one long-lived session trace.
//!
//! Each vehicle, on start, records a session root span (`vehicle session`, attribute
//! `hadrill.session=true`, exported at once so the trace is never missing its root) and then,
//! every interval, sends `POST /v1/heartbeat` under an exit span that is a child of the root,
//! with the context in its format (`w3c`, `sw8`, or alternating per vehicle with `mixed`) and
//! baggage `vehicle.id`. A heartbeat not answered within the timeout fails. Heartbeats of one
//! vehicle never overlap; the vehicles start spread over one interval.
//!
//! By default every heartbeat opens a new connection, so each is routed by the Service anew
//! (a kept-alive connection would stay on its pod, as conntrack keeps it); `--keep-alive`
//! reuses connections.
//!
//! Results API (JSON, see [`results`]):
//! - `GET /results`: per vehicle sent/ok/errors/timeouts, longest link gap, latency
//!   percentiles, which side served when; totals; span export counters.
//! - `GET /heartbeats[?vehicle=ID]`: the recorded heartbeats (the latest `--max-records`).
//! - `POST /stop`: stops sending, waits for heartbeats in flight, flushes spans, answers the
//!   final results. SIGTERM does the same before exiting.
//! - `GET /healthz`, `GET /readyz`: 200.

pub mod results;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{Mutex as AsyncMutex, watch};
use tokio::task::JoinSet;

use crate::ids::SpanId;
use crate::propagation::{Active, Caller, Format, TraceContext};
use crate::serve::{Answer, HEARTBEAT_PATH, error_chain};
use crate::target::Target;
use crate::telemetry::export::{ExportConfig, Exporter, Recorder};
use crate::telemetry::{Kind, Resource, SpanRecord, Value, attr};
use results::{Heartbeat, Latency, Outcome, Results, SpanCounters, Tally};

/// Propagation formats of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatMix {
    /// All W3C.
    W3c,
    /// All SkyWalking.
    Sw8,
    /// Even vehicles W3C, odd ones SkyWalking.
    Mixed,
}

impl FormatMix {
    fn of(self, i: usize) -> Format {
        match self {
            FormatMix::W3c => Format::W3c,
            FormatMix::Sw8 => Format::Sw8,
            FormatMix::Mixed if i.is_multiple_of(2) => Format::W3c,
            FormatMix::Mixed => Format::Sw8,
        }
    }
}

/// Settings of the fleet.
#[derive(Debug, Clone)]
pub struct VehiclesConfig {
    /// Where heartbeats go.
    pub target: Target,
    /// Number of vehicles.
    pub count: usize,
    /// Time between heartbeats of one vehicle.
    pub interval: Duration,
    /// Time allowed for one heartbeat.
    pub timeout: Duration,
    /// Results API address.
    pub listen: SocketAddr,
    /// Propagation formats.
    pub format: FormatMix,
    /// This pod.
    pub pod: String,
    /// Vehicle ids are `{prefix}-{i}`.
    pub id_prefix: String,
    /// Reuse connections between heartbeats.
    pub keep_alive: bool,
    /// Heartbeats kept for `/heartbeats`.
    pub max_records: usize,
}

struct Fleet {
    cfg: VehiclesConfig,
    client: reqwest::Client,
    recorder: Recorder,
    tallies: Vec<Mutex<Tally>>,
    records: Mutex<VecDeque<Heartbeat>>,
    stop: watch::Sender<bool>,
    tasks: AsyncMutex<Option<JoinSet<()>>>,
    exporter: AsyncMutex<Option<Exporter>>,
}

/// The running vehicles and their results API.
pub struct Vehicles {
    addr: SocketAddr,
    fleet: Arc<Fleet>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    server_stop: watch::Sender<bool>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Vehicles {
    /// Starts the vehicles and the results API (on the current tokio runtime).
    pub async fn start(cfg: VehiclesConfig, export: ExportConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(cfg.count > 0, "--count must be at least 1");
        anyhow::ensure!(!cfg.interval.is_zero(), "--interval must be more than zero");
        let exporter = Exporter::start(export, Resource::new("vehicles", &cfg.pod, None))?;
        let mut builder = reqwest::Client::builder().no_proxy().timeout(cfg.timeout).connect_timeout(cfg.timeout);
        if !cfg.keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        let client = builder.build().context("building the heartbeat HTTP client")?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("results API: listening on {}", cfg.listen))?;
        let addr = listener.local_addr().context("reading the results API address")?;
        let mut sessions = Vec::with_capacity(cfg.count);
        let mut tallies = Vec::with_capacity(cfg.count);
        for i in 0..cfg.count {
            let id = format!("{}-{i}", cfg.id_prefix);
            let mut ctx = TraceContext::new_trace(cfg.format.of(i));
            ctx.set_baggage(attr::BAGGAGE_VEHICLE, &id);
            tallies.push(Mutex::new(Tally::new(&id, &ctx.trace_id.to_hex(), ctx.format.as_str())));
            sessions.push((id, ctx));
        }
        let (stop, _) = watch::channel(false);
        let fleet = Arc::new(Fleet {
            recorder: exporter.recorder(),
            cfg,
            client,
            tallies,
            records: Mutex::new(VecDeque::new()),
            stop,
            tasks: AsyncMutex::new(None),
            exporter: AsyncMutex::new(Some(exporter)),
        });
        let mut tasks = JoinSet::new();
        let n = sessions.len() as u32;
        for (i, (id, ctx)) in sessions.into_iter().enumerate() {
            // Spread the vehicles over one interval.
            let offset = fleet.cfg.interval * i as u32 / n;
            tasks.spawn(drive(fleet.clone(), i, id, ctx, offset));
        }
        *fleet.tasks.lock().await = Some(tasks);
        let router = Router::new()
            .route("/results", get(results_handler))
            .route("/heartbeats", get(heartbeats_handler))
            .route("/stop", post(stop_handler))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(|| async { "ready\n" }))
            .with_state(fleet.clone());
        let (server_stop, mut stop_rx) = watch::channel(false);
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await
                .context("serving the results API")
        });
        Ok(Vehicles { addr, fleet, server, server_stop })
    }

    /// The results API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The results so far.
    pub fn results(&self) -> Results {
        self.fleet.results()
    }

    /// Stops sending, waits for heartbeats in flight, flushes spans; the final results.
    pub async fn stop(&self) -> Results {
        self.fleet.stop().await
    }

    /// Stops everything, the results API included.
    pub async fn shutdown(self) -> anyhow::Result<Results> {
        let results = self.fleet.stop().await;
        let _ = self.server_stop.send(true);
        self.server.await.context("the results API task panicked")??;
        Ok(results)
    }
}

impl Fleet {
    fn results(&self) -> Results {
        let mut all_latency = Vec::new();
        let mut vehicles = Vec::with_capacity(self.tallies.len());
        for t in &self.tallies {
            let t = t.lock().unwrap_or_else(|p| p.into_inner());
            all_latency.extend_from_slice(t.latencies_us());
            vehicles.push(t.result());
        }
        let [queued, dropped, exported, failed, _] = self.recorder.stats().snapshot();
        Results {
            pod: self.cfg.pod.clone(),
            target: self.cfg.target.base.clone(),
            running: !*self.stop.borrow(),
            interval_ms: self.cfg.interval.as_millis() as u64,
            timeout_ms: self.cfg.timeout.as_millis() as u64,
            sent: vehicles.iter().map(|v| v.sent).sum(),
            ok: vehicles.iter().map(|v| v.ok).sum(),
            errors: vehicles.iter().map(|v| v.errors).sum(),
            latency: Latency::of(&mut all_latency),
            vehicles,
            spans: SpanCounters { queued, dropped, exported, failed },
        }
    }

    async fn stop(&self) -> Results {
        let _ = self.stop.send(true);
        if let Some(mut tasks) = self.tasks.lock().await.take() {
            while tasks.join_next().await.is_some() {}
        }
        if let Some(exporter) = self.exporter.lock().await.take() {
            exporter.shutdown(Duration::from_secs(10)).await;
        }
        self.results()
    }
}

/// One vehicle's session.
async fn drive(fleet: Arc<Fleet>, index: usize, id: String, ctx: TraceContext, offset: Duration) {
    let mut stop = fleet.stop.subscribe();
    let root = SpanId::random();
    let now = SystemTime::now();
    if ctx.sampled {
        fleet.recorder.record(SpanRecord {
            trace_id: ctx.trace_id,
            span_id: root,
            parent: None,
            name: "vehicle session".into(),
            kind: Kind::Internal,
            start: now,
            end: now,
            error: None,
            attributes: vec![
                (attr::VEHICLE, Value::from(id.as_str())),
                (attr::SESSION, Value::Bool(true)),
                (attr::FORMAT, Value::from(ctx.format.as_str())),
            ],
        });
    }
    let mut active = Active::under(ctx, root);
    let start = tokio::time::Instant::now() + offset;
    let mut ticks = tokio::time::interval_at(start, fleet.cfg.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let url = format!("{}{HEARTBEAT_PATH}", fleet.cfg.target.base);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let hb = heartbeat(&fleet, &mut active, &id, &url, seq).await;
        if let Some(t) = fleet.tallies.get(index) {
            t.lock().unwrap_or_else(|p| p.into_inner()).add(&hb);
        }
        let mut records = fleet.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= fleet.cfg.max_records.max(1) {
            records.pop_front();
        }
        records.push_back(hb);
        seq += 1;
    }
}

async fn heartbeat(fleet: &Fleet, active: &mut Active, id: &str, url: &str, seq: u64) -> Heartbeat {
    let cfg = &fleet.cfg;
    let exit = active.exit();
    let caller = Caller { service: "vehicles", instance: &cfg.pod, endpoint: "heartbeat" };
    let sent = SystemTime::now();
    let started = Instant::now();
    let mut req = fleet
        .client
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::json!({"vehicle": id, "seq": seq}).to_string());
    for (k, v) in active.inject(exit, caller, &cfg.target.address) {
        req = req.header(k, v);
    }
    let mut hb = Heartbeat {
        vehicle: id.to_string(),
        seq,
        sent_ms: unix_ms(sent),
        latency_ms: 0.0,
        outcome: Outcome::Ok,
        status: None,
        pod: None,
        role: None,
        error: None,
    };
    match tokio::time::timeout(cfg.timeout, req.send()).await {
        Err(_) => (hb.outcome, hb.error) = (Outcome::Timeout, Some(format!("no answer within {:?}", cfg.timeout))),
        Ok(Err(e)) => {
            hb.outcome = if e.is_timeout() {
                Outcome::Timeout
            } else if e.is_connect() {
                Outcome::Connect
            } else {
                Outcome::Error
            };
            hb.error = Some(error_chain(&e));
        }
        Ok(Ok(resp)) => {
            let status = resp.status();
            hb.status = Some(status.as_u16());
            let remaining = cfg.timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, resp.bytes()).await {
                Ok(Ok(body)) => match serde_json::from_slice::<Answer>(&body) {
                    Ok(a) => {
                        hb.pod = Some(a.pod);
                        hb.role = a.role.or(Some(a.service));
                        if !status.is_success() {
                            hb.outcome = Outcome::Http;
                            hb.error = Some(a.error.unwrap_or_else(|| format!("HTTP {status}")));
                        }
                    }
                    Err(e) => {
                        (hb.outcome, hb.error) =
                            (Outcome::Error, Some(format!("HTTP {status}: unreadable answer: {e}")))
                    }
                },
                Ok(Err(e)) => (hb.outcome, hb.error) = (Outcome::Error, Some(error_chain(&e))),
                Err(_) => {
                    (hb.outcome, hb.error) = (Outcome::Timeout, Some(format!("no answer within {:?}", cfg.timeout)))
                }
            }
        }
    }
    hb.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if active.ctx.sampled {
        let mut attributes = vec![
            (attr::VEHICLE, Value::from(id)),
            (attr::SEQ, Value::Int(i64::try_from(seq).unwrap_or(i64::MAX))),
            (attr::FORMAT, Value::from(active.ctx.format.as_str())),
            ("peer.service", Value::from(cfg.target.service.as_str())),
            ("server.address", Value::from(cfg.target.address.as_str())),
        ];
        if let Some(s) = hb.status {
            attributes.push(("http.response.status_code", Value::Int(i64::from(s))));
        }
        fleet.recorder.record(SpanRecord {
            trace_id: active.ctx.trace_id,
            span_id: exit.span_id,
            parent: Some(active.local),
            name: "POST /v1/heartbeat".into(),
            kind: Kind::Client,
            start: sent,
            end: SystemTime::now(),
            error: hb.error.clone(),
            attributes,
        });
    }
    hb
}

async fn results_handler(State(fleet): State<Arc<Fleet>>) -> Response {
    axum::Json(fleet.results()).into_response()
}

#[derive(Deserialize)]
struct HeartbeatQuery {
    vehicle: Option<String>,
}

async fn heartbeats_handler(State(fleet): State<Arc<Fleet>>, Query(q): Query<HeartbeatQuery>) -> Response {
    let records = fleet.records.lock().unwrap_or_else(|p| p.into_inner());
    let list: Vec<&Heartbeat> = records.iter().filter(|h| q.vehicle.as_ref().is_none_or(|v| *v == h.vehicle)).collect();
    if let Some(v) = &q.vehicle
        && list.is_empty()
        && !fleet.tallies.iter().any(|t| t.lock().unwrap_or_else(|p| p.into_inner()).result.id == *v)
    {
        return (StatusCode::NOT_FOUND, format!("no vehicle {v:?}\n")).into_response();
    }
    axum::Json(list).into_response()
}

async fn stop_handler(State(fleet): State<Arc<Fleet>>) -> Response {
    axum::Json(fleet.stop().await).into_response()
}
