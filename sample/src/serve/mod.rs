//! `hadrill-sample serve`: one service of the sample call chain (e.g. dispatch -> planner ->
//! map).
//!
//! - `POST /v1/heartbeat`: opens an entry span (continuing the caller's trace), calls the
//!   downstream service (when there is one) under an exit span with the context injected in the
//!   format it came in, and answers an [`Answer`]: which service, pod and role served it, with
//!   the downstream's answer nested. A failed downstream call answers 502.
//! - `GET /healthz`: 200. `GET /readyz`: 200, 503 once shutdown has begun.
//! - `GET /metrics`: Prometheus text: requests, failures, trace contexts continued / started /
//!   malformed (by header), optional headers dropped, span export counters (queue drops).
//!
//! Shutdown ([`Server::shutdown`], SIGTERM in the binary): readiness turns 503, requests are
//! still served for the drain time (so endpoints can drop the pod), then the listener closes,
//! in-flight requests finish and queued spans are flushed.

mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::propagation::{Active, Caller, Format, Outcome, extract};
use crate::target::Target;
use crate::telemetry::export::{ExportConfig, Exporter, Recorder};
use crate::telemetry::{Kind, Resource, SpanRecord, Value, attr};
pub use metrics::Counters;

/// The heartbeat path every service of the chain serves.
pub const HEARTBEAT_PATH: &str = "/v1/heartbeat";
const OPERATION: &str = "POST /v1/heartbeat";

/// Settings of one service.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Service name (`service.name`, e.g. `dispatch`).
    pub name: String,
    /// Side of an HA pair (`primary`/`standby`), if any.
    pub role: Option<String>,
    /// This instance (the pod name).
    pub pod: String,
    /// The next service of the chain, if any.
    pub downstream: Option<Target>,
    /// Address to listen on (`$POD_IP:port`).
    pub listen: SocketAddr,
    /// Whether to propagate context and record spans.
    pub tracing: bool,
    /// Format of traces started here (requests without context).
    pub default_format: Format,
    /// Time requests are still served after shutdown begins.
    pub drain: Duration,
    /// Time allowed for the downstream call.
    pub downstream_timeout: Duration,
}

/// What a service answers: who served the request, and what its downstream answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Service name.
    pub service: String,
    /// Pod that served.
    pub pod: String,
    /// Role of that pod, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The trace (hex), when tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The downstream service's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<Box<Answer>>,
    /// Why the request failed (502 answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct App {
    cfg: ServeConfig,
    client: reqwest::Client,
    recorder: Recorder,
    counters: Counters,
    ready: AtomicBool,
}

/// A running service.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    exporter: Exporter,
}

impl Server {
    /// Binds `cfg.listen` and serves (on the current tokio runtime).
    pub async fn start(cfg: ServeConfig, export: ExportConfig) -> anyhow::Result<Self> {
        let resource = Resource::new(&cfg.name, &cfg.pod, cfg.role.as_deref());
        let export = if cfg.tracing { export } else { ExportConfig { endpoint: None, ..export } };
        let exporter = Exporter::start(export, resource)?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(cfg.downstream_timeout)
            .build()
            .context("building the downstream HTTP client")?;
        let listener =
            tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("listening on {}", cfg.listen))?;
        let addr = listener.local_addr().context("reading the listen address")?;
        let app = Arc::new(App {
            cfg,
            client,
            recorder: exporter.recorder(),
            counters: Counters::default(),
            ready: AtomicBool::new(true),
        });
        let router = Router::new()
            .route(HEARTBEAT_PATH, post(heartbeat))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics::render))
            .with_state(app.clone());
        let (stop, mut stop_rx) = watch::channel(false);
        let drain_app = app.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                    drain_app.ready.store(false, Ordering::SeqCst);
                    tokio::time::sleep(drain_app.cfg.drain).await;
                })
                .await
                .context("serving HTTP")
        });
        Ok(Server { addr, app, stop, task, exporter })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.app.counters
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.app.ready.load(Ordering::SeqCst)
    }

    /// Graceful shutdown: unready, drain, close, finish in-flight requests, flush spans.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let served = self.task.await.context("the server task panicked")?;
        self.exporter.shutdown(Duration::from_secs(5)).await;
        served
    }
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn heartbeat(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    // A caller that gives up (timeout) drops this future; the work runs in its own task so the
    // downstream call and the spans are completed all the same (else the downstream's entry
    // span would be left without its parent).
    match tokio::spawn(serve_heartbeat(app, headers, body)).await {
        Ok(r) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("heartbeat handler failed: {e}\n")).into_response(),
    }
}

async fn serve_heartbeat(app: Arc<App>, headers: HeaderMap, body: Bytes) -> Response {
    app.counters.requests.fetch_add(1, Ordering::Relaxed);
    let start = SystemTime::now();
    let cfg = &app.cfg;
    let mut answer =
        Answer { service: cfg.name.clone(), pod: cfg.pod.clone(), role: cfg.role.clone(), ..Default::default() };
    // Tracing off: the same work, no context and no spans (the overhead baseline).
    let mut active = if cfg.tracing {
        let got = extract(|n| headers.get(n).map(|v| v.as_bytes()), cfg.default_format);
        app.counters.count_extract(&got);
        let outcome = got.outcome.clone();
        Some((Active::entry(got.ctx), outcome))
    } else {
        None
    };
    if let Some((a, _)) = &active {
        answer.trace_id = Some(a.ctx.trace_id.to_hex());
    }
    let mut status = StatusCode::OK;
    if let Some(target) = &cfg.downstream {
        let call_start = SystemTime::now();
        let mut req = app.client.post(format!("{}{HEARTBEAT_PATH}", target.base)).body(body);
        let mut exit = None;
        if let Some((a, _)) = active.as_mut() {
            let e = a.exit();
            let caller = Caller { service: &cfg.name, instance: &cfg.pod, endpoint: OPERATION };
            for (k, v) in a.inject(e, caller, &target.address) {
                req = req.header(k, v);
            }
            exit = Some(e);
        }
        let result = call(req).await;
        let error = result.as_ref().err().cloned();
        match result {
            Ok(down) => answer.downstream = Some(Box::new(down)),
            Err(e) => {
                app.counters.failures.fetch_add(1, Ordering::Relaxed);
                status = StatusCode::BAD_GATEWAY;
                answer.error = Some(format!("calling {}: {e}", target.service));
            }
        }
        if let (Some((a, _)), Some(exit)) = (&active, exit)
            && a.ctx.sampled
        {
            app.recorder.record(SpanRecord {
                trace_id: a.ctx.trace_id,
                span_id: exit.span_id,
                parent: Some(a.local),
                name: OPERATION.into(),
                kind: Kind::Client,
                start: call_start,
                end: SystemTime::now(),
                error,
                attributes: vec![
                    ("peer.service", Value::from(target.service.as_str())),
                    ("server.address", Value::from(target.address.as_str())),
                    (attr::FORMAT, Value::from(a.ctx.format.as_str())),
                ],
            });
        }
    }
    if let Some((a, outcome)) = &active
        && a.ctx.sampled
    {
        let mut attributes = vec![
            (attr::FORMAT, Value::from(a.ctx.format.as_str())),
            (attr::CONTEXT, Value::from(outcome_name(outcome))),
            ("http.response.status_code", Value::Int(i64::from(status.as_u16()))),
        ];
        if let Some(v) = a.ctx.baggage_value(attr::BAGGAGE_VEHICLE) {
            attributes.push((attr::VEHICLE, Value::from(v)));
        }
        app.recorder.record(SpanRecord {
            trace_id: a.ctx.trace_id,
            span_id: a.local,
            parent: a.ctx.parent,
            name: OPERATION.into(),
            kind: Kind::Server,
            start,
            end: SystemTime::now(),
            error: answer.error.clone(),
            attributes,
        });
    }
    (status, axum::Json(answer)).into_response()
}

/// Name of an extraction outcome (span attribute [`attr::CONTEXT`]).
pub fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Continued => "continued",
        Outcome::Started => "started",
        Outcome::Malformed { .. } => "malformed",
    }
}

async fn call(req: reqwest::RequestBuilder) -> Result<Answer, String> {
    let resp = req.header("content-type", "application/json").send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| error_chain(&e))?;
    let answer: Answer = serde_json::from_slice(&bytes)
        .map_err(|e| format!("HTTP {status}: unreadable answer ({e}): {}", String::from_utf8_lossy(&bytes)))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", answer.error.as_deref().unwrap_or("no reason given")));
    }
    Ok(answer)
}

/// An error with its sources (reqwest's top level says little: "error sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
