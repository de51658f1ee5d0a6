//! A stand-in for Jaeger all-in-one (deploy/jaeger) outside the cluster: an OTLP/HTTP receiver
//! (the harness's own) for the pods' spans, and Jaeger's query API (`/api/services`,
//! `/api/traces`) answering in Jaeger's JSON (the shape of tests/fixtures/jaeger/: the query
//! service's envelope around `model/json` traces, OTLP data as tags and process tags), so the
//! harness reads it with its real Jaeger client.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Query, State};
use axum::routing::get;
use hadrill::traces::receiver::{Receiver, Store};
use hadrill::traces::{Span, SpanKind};
use serde_json::{Value, json};

/// The receiver and the query API.
pub struct JaegerStandIn {
    /// The pods' spans arrive here (OTLP/HTTP).
    pub receiver: Receiver,
    /// Jaeger's query API.
    pub query: SocketAddr,
    /// `/api/traces` requests answered.
    pub queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

fn tag(key: &str, value: Value) -> Value {
    let kind = match &value {
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        _ => "string",
    };
    json!({"key": key, "type": kind, "value": value})
}

/// Jaeger's JSON of one trace: spans with their process ids, and the processes.
fn trace_json(spans: &[&Span]) -> Value {
    let mut processes: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut out = Vec::new();
    for s in spans {
        let key = (s.service.to_string(), s.pod.to_string(), s.role.as_deref().unwrap_or_default().to_string());
        let next = format!("p{}", processes.len() + 1);
        let pid = processes.entry(key).or_insert(next).clone();
        let kind = match s.kind {
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Internal => "internal",
            SpanKind::Messaging => "producer",
        };
        let mut tags = vec![tag("span.kind", json!(kind)), tag("internal.span.format", json!("otlp"))];
        if let Some(v) = &s.vehicle {
            tags.push(tag("hadrill.vehicle.id", json!(&**v)));
        }
        if let Some(p) = &s.peer {
            tags.push(tag("peer.service", json!(&**p)));
        }
        if s.session_root {
            tags.push(tag("hadrill.session", json!(true)));
        }
        if s.error {
            tags.push(tag("otel.status_code", json!("ERROR")));
            tags.push(tag("error", json!(true)));
        }
        let references: Vec<Value> = s
            .parent
            .iter()
            .map(|p| json!({"refType": "CHILD_OF", "traceID": s.trace_id.to_hex(), "spanID": p.to_hex()}))
            .collect();
        out.push(json!({
            "traceID": s.trace_id.to_hex(), "spanID": s.span_id.to_hex(), "flags": 1,
            "operationName": &*s.name, "references": references,
            "startTime": s.start_ns / 1000, "duration": s.end_ns.saturating_sub(s.start_ns) / 1000,
            "tags": tags, "logs": [], "processID": pid, "warnings": null
        }));
    }
    let processes: serde_json::Map<String, Value> = processes
        .into_iter()
        .map(|((service, pod, role), pid)| {
            let mut tags = vec![tag("k8s.pod.name", json!(pod)), tag("service.instance.id", json!(pod))];
            if !role.is_empty() {
                tags.push(tag("hadrill.role", json!(role)));
            }
            (pid, json!({"serviceName": service, "tags": tags}))
        })
        .collect();
    let id = spans.first().map(|s| s.trace_id.to_hex()).unwrap_or_default();
    json!({"traceID": id, "spans": out, "processes": processes, "warnings": null})
}

fn envelope(data: Value) -> axum::Json<Value> {
    let total = data.as_array().map_or(0, Vec::len);
    axum::Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null}))
}

type Shared = (Arc<Store>, Arc<AtomicUsize>);

async fn services(State((r, _)): State<Shared>) -> axum::Json<Value> {
    let names: BTreeSet<String> = r.with_spans(|spans| spans.iter().map(|s| s.service.to_string()).collect());
    envelope(json!(names))
}

/// The traces with a span of `service` starting within [`start`, `end`] (µs), whole.
async fn traces(State((r, queries)): State<Shared>, Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
    queries.fetch_add(1, Ordering::Relaxed);
    let service = q.get("service").cloned().unwrap_or_default();
    let micros = |k: &str, default: u64| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default);
    let (start, end) = (micros("start", 0), micros("end", u64::MAX));
    let limit = q.get("limit").and_then(|v| v.parse::<usize>().ok()).unwrap_or(20);
    let data = r.with_spans(|spans| {
        let mut by_trace: BTreeMap<String, Vec<&Span>> = BTreeMap::new();
        for s in spans {
            by_trace.entry(s.trace_id.to_hex()).or_default().push(s);
        }
        let wanted =
            |t: &&Vec<&Span>| t.iter().any(|s| *s.service == *service && (start..=end).contains(&(s.start_ns / 1000)));
        by_trace.values().filter(wanted).take(limit).map(|t| trace_json(t)).collect::<Vec<_>>()
    });
    envelope(Value::Array(data))
}

impl JaegerStandIn {
    /// Starts both on free ports of 127.0.0.1.
    pub async fn start() -> Self {
        let receiver = Receiver::start().await.expect("OTLP receiver");
        let queries = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/api/services", get(services))
            .route("/api/traces", get(traces))
            .with_state((receiver.store().clone(), queries.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let query = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        JaegerStandIn { receiver, query, queries, task }
    }

    /// Stops both.
    pub async fn stop(self) {
        self.task.abort();
        self.receiver.stop().await;
    }
}
