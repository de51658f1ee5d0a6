//! An embedded OTLP/HTTP trace receiver: `POST /v1/traces` with a protobuf
//! (`application/x-protobuf`) or JSON (`application/json`) `ExportTraceServiceRequest`,
//! answered in the same encoding. Spans go to a [`Store`] the harness reads and waits on.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let receiver = hadrill::traces::receiver::Receiver::start().await?;
//! // pods get OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint()
//! receiver.store().wait_quiet(Duration::from_secs(1), Duration::from_secs(30)).await?;
//! let report = hadrill::traces::checker::check(&receiver.store().spans(), Default::default());
//! # Ok(()) }
//! ```
//!
//! Bodies may be up to 64 MiB. Compressed bodies (`Content-Encoding`) are refused with 415;
//! undecodable ones with 400 naming the error. Invalid spans inside a valid request are
//! counted and reported as OTLP partial success.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::watch;

use super::{Interner, Span, from_otlp};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 << 20;

/// The spans received so far.
#[derive(Debug)]
pub struct Store {
    spans: RwLock<Vec<Span>>,
    interner: Mutex<Interner>,
    /// Span count, bumped on every accepted request (for waiters).
    count: watch::Sender<usize>,
    requests: AtomicU64,
    rejected: AtomicU64,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            spans: RwLock::default(),
            interner: Mutex::default(),
            count: watch::channel(0).0,
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }
}

impl Store {
    /// Adds the spans of `req`; returns (accepted, rejected, first reason).
    pub fn add(&self, req: &ExportTraceServiceRequest) -> (usize, u64, Option<String>) {
        let (spans, rejected, reason) = {
            let mut interner = self.interner.lock().unwrap_or_else(|p| p.into_inner());
            from_otlp(req, &mut interner)
        };
        self.extend(spans.clone());
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
        (spans.len(), rejected, reason)
    }

    /// Adds spans (from another source, e.g. Jaeger).
    pub fn extend(&self, spans: Vec<Span>) {
        let total = {
            let mut all = self.spans.write().unwrap_or_else(|p| p.into_inner());
            all.extend(spans);
            all.len()
        };
        self.count.send_replace(total);
    }

    /// A copy of every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the spans without copying them.
    pub fn with_spans<T>(&self, f: impl FnOnce(&[Span]) -> T) -> T {
        f(&self.spans.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Number of spans received.
    pub fn len(&self) -> usize {
        *self.count.borrow()
    }

    /// Whether no span was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Export requests accepted.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Spans rejected as invalid.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Forgets every span.
    pub fn clear(&self) {
        self.spans.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.count.send_replace(0);
    }

    /// Waits until `cond` holds for the spans (checked on every arrival), at most `limit`.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&[Span]) -> bool,
    ) -> anyhow::Result<()> {
        let mut rx = self.count.subscribe();
        let wait = async {
            loop {
                if self.with_spans(&mut cond) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            bail!("{what}: not within {limit:?} ({} spans received)", self.len());
        }
        Ok(())
    }

    /// Waits until no span has arrived for `quiet` (exporters have flushed), at most `limit`.
    pub async fn wait_quiet(&self, quiet: Duration, limit: Duration) -> anyhow::Result<()> {
        let mut rx = self.count.subscribe();
        let deadline = Instant::now() + limit;
        loop {
            rx.borrow_and_update();
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                bail!("spans kept arriving for {limit:?} ({} received); no quiet period of {quiet:?}", self.len());
            }
            match tokio::time::timeout(quiet.min(remaining), rx.changed()).await {
                Err(_) if remaining >= quiet => return Ok(()),
                Err(_) => {}
                Ok(Err(_)) => return Ok(()),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    store: Arc<Store>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Receiver {
    /// Listens on 127.0.0.1, on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Listens on `addr`.
    pub async fn start_on(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("OTLP receiver: listening on {addr}"))?;
        let addr = listener.local_addr().context("OTLP receiver: reading the listen address")?;
        let store = Arc::new(Store::default());
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(store.clone());
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(Receiver { addr, store, stop, task })
    }

    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The spans received.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops listening (the store stays readable through a clone of [`Receiver::store`]).
    /// Requests in progress get 5 s to finish; kept-alive connections are then cut.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

impl Drop for Receiver {
    /// A receiver dropped without [`Receiver::stop`] (a scenario's world) stops listening too.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn traces(State(store): State<Arc<Store>>, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let encoding = match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            let msg = format!("content type {other:?} is not supported (application/x-protobuf or application/json)");
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, msg).into_response();
        }
    };
    if let Some(enc) = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok())
        && !enc.eq_ignore_ascii_case("identity")
    {
        let msg = format!("content encoding {enc:?} is not supported; send uncompressed bodies");
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, msg).into_response();
    }
    let req = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body.as_ref()).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string()),
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("undecodable ExportTraceServiceRequest: {e}")).into_response();
        }
    };
    let (_, rejected, reason) = store.add(&req);
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: reason.unwrap_or_default(),
    });
    let resp = ExportTraceServiceResponse { partial_success };
    match encoding {
        Encoding::Protobuf => {
            ([(header::CONTENT_TYPE, "application/x-protobuf")], resp.encode_to_vec()).into_response()
        }
        Encoding::Json => match serde_json::to_vec(&resp) {
            Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
    }
}
