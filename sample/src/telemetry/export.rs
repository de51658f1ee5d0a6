//! The batch exporter: a bounded queue that never blocks the caller (a full queue drops the
//! span and counts it), a worker that POSTs batches as OTLP/HTTP protobuf, and a flush on
//! shutdown.
//!
//! Configuration follows the OpenTelemetry environment variables:
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (+
//! `/v1/traces`); `OTEL_BSP_MAX_QUEUE_SIZE` (2048), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512),
//! `OTEL_BSP_SCHEDULE_DELAY` (ms; 500 here, not the spec's 5000, so a harness sees spans
//! promptly) and `OTEL_BSP_EXPORT_TIMEOUT` (ms, 10000). Without an endpoint nothing is exported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::{Resource, SpanRecord, request};

/// Exporter settings.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Full URL spans are POSTed to (`.../v1/traces`); `None` disables export.
    pub endpoint: Option<String>,
    /// Spans waiting at most; more are dropped.
    pub max_queue: usize,
    /// Spans per request at most.
    pub max_batch: usize,
    /// Longest wait before a partial batch is sent.
    pub delay: Duration,
    /// Time allowed for one export request.
    pub timeout: Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            endpoint: None,
            max_queue: 2048,
            max_batch: 512,
            delay: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

impl ExportConfig {
    /// From the OpenTelemetry environment variables (see the module doc).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From variables looked up with `var` (testable without touching the process environment).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut c = ExportConfig::default();
        let non_empty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        c.endpoint = match (non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), non_empty("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            (Some(url), _) => Some(url.trim().to_string()),
            (None, Some(base)) => Some(format!("{}/v1/traces", base.trim().trim_end_matches('/'))),
            (None, None) => None,
        };
        if let Some(url) = &c.endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("OTLP endpoint {url:?} is not an http:// or https:// URL");
        }
        let number = |name: &str| -> anyhow::Result<Option<u64>> {
            non_empty(name)
                .map(|v| v.trim().parse::<u64>().with_context(|| format!("{name}={v:?} is not a whole number")))
                .transpose()
        };
        if let Some(n) = number("OTEL_BSP_MAX_QUEUE_SIZE")? {
            c.max_queue = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        if let Some(n) = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            c.max_batch = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        if let Some(ms) = number("OTEL_BSP_SCHEDULE_DELAY")? {
            c.delay = Duration::from_millis(ms);
        }
        if let Some(ms) = number("OTEL_BSP_EXPORT_TIMEOUT")? {
            c.timeout = Duration::from_millis(ms.max(1));
        }
        c.max_batch = c.max_batch.min(c.max_queue);
        Ok(c)
    }
}

/// Counters of the exporter.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans accepted into the queue.
    pub queued: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Spans the endpoint accepted.
    pub exported: AtomicU64,
    /// Spans lost because their export request failed.
    pub failed: AtomicU64,
    /// Export requests sent.
    pub requests: AtomicU64,
}

impl ExportStats {
    /// A snapshot: (queued, dropped, exported, failed, requests).
    pub fn snapshot(&self) -> [u64; 5] {
        [&self.queued, &self.dropped, &self.exported, &self.failed, &self.requests].map(|c| c.load(Ordering::Relaxed))
    }
}

/// Where spans are recorded; cheap to clone into request handlers.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<SpanRecord>>,
    stats: Arc<ExportStats>,
}

impl Recorder {
    /// A recorder that records nothing (tracing off).
    pub fn disabled() -> Self {
        Recorder { tx: None, stats: Arc::default() }
    }

    /// Whether spans are recorded at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `span` without waiting; a full queue drops it (counted).
    pub fn record(&self, span: SpanRecord) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(span) {
            Ok(()) => self.stats.queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<ExportStats> {
        &self.stats
    }
}

/// The running exporter.
#[derive(Debug)]
pub struct Exporter {
    recorder: Recorder,
    stop: watch::Sender<bool>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Exporter {
    /// Starts the worker (on the current tokio runtime). Without an endpoint the recorder is
    /// disabled.
    pub fn start(config: ExportConfig, resource: Resource) -> anyhow::Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let Some(endpoint) = config.endpoint.clone() else {
            return Ok(Exporter { recorder: Recorder::disabled(), stop, worker: None });
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.timeout)
            .build()
            .context("building the OTLP HTTP client")?;
        let (tx, rx) = mpsc::channel(config.max_queue);
        let stats = Arc::new(ExportStats::default());
        let worker = Worker { client, endpoint, resource, config, stats: stats.clone() };
        let worker = tokio::spawn(worker.run(rx, stop_rx));
        Ok(Exporter { recorder: Recorder { tx: Some(tx), stats }, stop, worker: Some(worker) })
    }

    /// A recorder feeding this exporter.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// Exports what is queued and stops, waiting at most `timeout`. Spans recorded afterwards
    /// are dropped (counted).
    pub async fn shutdown(mut self, timeout: Duration) {
        let _ = self.stop.send(true);
        if let Some(worker) = self.worker.take()
            && tokio::time::timeout(timeout, worker).await.is_err()
        {
            eprintln!("hadrill-sample: span export did not finish within {timeout:?}");
        }
    }
}

struct Worker {
    client: reqwest::Client,
    endpoint: String,
    resource: Resource,
    config: ExportConfig,
    stats: Arc<ExportStats>,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<SpanRecord>, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(self.config.max_batch);
        loop {
            // Wait for the first span of a batch (or the stop signal).
            tokio::select! {
                span = rx.recv() => match span {
                    Some(s) => batch.push(s),
                    None => break,
                },
                _ = stop.wait_for(|s| *s) => break,
            }
            let deadline = tokio::time::Instant::now() + self.config.delay;
            while batch.len() < self.config.max_batch {
                tokio::select! {
                    span = rx.recv() => match span {
                        Some(s) => batch.push(s),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            self.export(&mut batch).await;
            if *stop.borrow() {
                break;
            }
        }
        // Flush: whatever is queued now goes out; nothing new is accepted.
        rx.close();
        while let Some(s) = rx.recv().await {
            batch.push(s);
            if batch.len() >= self.config.max_batch {
                self.export(&mut batch).await;
            }
        }
        self.export(&mut batch).await;
    }

    async fn export(&self, batch: &mut Vec<SpanRecord>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let body = request(&self.resource, batch).encode_to_vec();
        batch.clear();
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .client
            .post(&self.endpoint)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match sent {
            Ok(_) => self.stats.exported.fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                eprintln!("hadrill-sample: exporting {n} spans to {}: {e}", self.endpoint);
                self.stats.failed.fetch_add(n, Ordering::Relaxed)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_follows_the_otel_variables_and_names_bad_values() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let c =
            ExportConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")])).expect("valid");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
        let c = ExportConfig::from_vars(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
        ]))
        .expect("valid");
        assert_eq!(c.endpoint.as_deref(), Some("http://b:2/custom"));
        assert_eq!((c.delay, c.max_queue, c.max_batch), (Duration::from_millis(50), 10, 10));
        assert_eq!(ExportConfig::from_vars(vars(&[])).expect("valid").endpoint, None);
        let err = ExportConfig::from_vars(vars(&[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")])).expect_err("bad");
        assert!(err.to_string().contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{err}");
        let err = ExportConfig::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")])).expect_err("bad");
        assert!(err.to_string().contains("collector:4318"), "{err}");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        // An endpoint that never answers: the worker is stuck in its first export.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
        let config = ExportConfig {
            endpoint: Some(endpoint),
            max_queue: 4,
            max_batch: 1,
            delay: Duration::ZERO,
            timeout: Duration::from_millis(200),
        };
        let exporter = Exporter::start(config, Resource::default()).expect("starts");
        let rec = exporter.recorder();
        let span = SpanRecord {
            trace_id: crate::ids::TraceId::random(),
            span_id: crate::ids::SpanId::random(),
            parent: None,
            name: "x".into(),
            kind: super::super::Kind::Internal,
            start: std::time::SystemTime::now(),
            end: std::time::SystemTime::now(),
            error: None,
            attributes: vec![],
        };
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            rec.record(span.clone());
        }
        assert!(started.elapsed() < Duration::from_millis(500), "recording never waits");
        let [queued, dropped, ..] = rec.stats().snapshot();
        assert_eq!(queued + dropped, 1000);
        assert!(dropped >= 1000 - 5, "at most queue + one in flight accepted: {dropped}");
        exporter.shutdown(Duration::from_secs(5)).await;
        let [queued, _, exported, failed, _] = rec.stats().snapshot();
        assert_eq!(exported, 0);
        assert_eq!(failed, queued, "every accepted span is accounted for");
        drop(listener);
    }
}
