//! A client for Jaeger's query API (`/api/traces`, as served on port 16686 by the Jaeger
//! deployment in deploy/jaeger/), returning the same [`Span`]s as the embedded receiver so the
//! checker runs unchanged on kind.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let jaeger = hadrill::traces::jaeger::Jaeger::new("http://127.0.0.1:16686")?;
//! let spans = jaeger.spans_of_service("vehicles", Duration::from_secs(3600), 1000).await?;
//! let report = hadrill::traces::checker::check(&spans, Default::default());
//! # Ok(()) }
//! ```
//!
//! Jaeger's JSON carries the OTLP data as tags: `span.kind`, `otel.status_code` / `error`,
//! and the resource attributes as process tags.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, bail};
use hadrill_sample::telemetry::attr;
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::endpoint::Endpoint;

use super::{Interner, Span, SpanId, SpanKind, TraceId};

/// A Jaeger query endpoint.
#[derive(Debug, Clone)]
pub struct Jaeger {
    endpoint: Endpoint,
}

/// The query service's envelope (`data`, `total`, `limit`, `offset`, `errors`); on an error
/// `data` is `null` and `errors` says why.
#[derive(Deserialize)]
struct Response<T> {
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(default)]
    errors: Option<Vec<Value>>,
}

impl<T> Response<T> {
    /// The data, or Jaeger's errors.
    fn data(self) -> anyhow::Result<Option<T>> {
        if let Some(errors) = self.errors.filter(|e| !e.is_empty()) {
            bail!("Jaeger answered errors: {}", Value::Array(errors));
        }
        Ok(self.data)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JTrace {
    #[serde(default)]
    spans: Vec<JSpan>,
    #[serde(default)]
    processes: HashMap<String, JProcess>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JSpan {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    operation_name: String,
    #[serde(default)]
    references: Vec<JRef>,
    /// Microseconds since the epoch.
    start_time: u64,
    /// Microseconds.
    #[serde(default)]
    duration: u64,
    #[serde(default)]
    tags: Vec<JTag>,
    #[serde(rename = "processID", default)]
    process_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JRef {
    ref_type: String,
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JProcess {
    service_name: String,
    #[serde(default)]
    tags: Vec<JTag>,
}

#[derive(Deserialize)]
struct JTag {
    key: String,
    value: Value,
}

fn tag<'a>(tags: &'a [JTag], key: &str) -> Option<&'a Value> {
    tags.iter().find(|t| t.key == key).map(|t| &t.value)
}

fn tag_text(tags: &[JTag], key: &str) -> Option<String> {
    tag(tags, key).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Jaeger writes ids as hex without leading zeros at times; OTLP ids are fixed width.
fn padded(hex: &str, width: usize) -> String {
    format!("{:0>width$}", hex.to_ascii_lowercase())
}

/// Spans of a Jaeger `/api/traces` (or `/api/traces/{id}`) response body.
pub fn parse_traces(body: &[u8], interner: &mut Interner) -> anyhow::Result<Vec<Span>> {
    let resp: Response<Vec<JTrace>> = serde_json::from_slice(body).context("reading a Jaeger query response")?;
    let mut out = Vec::new();
    for t in resp.data()?.unwrap_or_default() {
        for s in t.spans {
            let trace_id = TraceId::from_hex(&padded(&s.trace_id, 32))
                .with_context(|| format!("span {}: trace id {:?} is not hex", s.operation_name, s.trace_id))?;
            let span_id = SpanId::from_hex(&padded(&s.span_id, 16))
                .with_context(|| format!("span {}: span id {:?} is not hex", s.operation_name, s.span_id))?;
            let parent = s
                .references
                .iter()
                .find(|r| r.ref_type == "CHILD_OF" && padded(&r.trace_id, 32) == trace_id.to_hex())
                .and_then(|r| SpanId::from_hex(&padded(&r.span_id, 16)));
            let process = t.processes.get(&s.process_id);
            let ptags: &[JTag] = process.map(|p| p.tags.as_slice()).unwrap_or_default();
            let service = interner.get(process.map_or("unknown_service", |p| p.service_name.as_str()));
            let pod =
                tag_text(ptags, "k8s.pod.name").or_else(|| tag_text(ptags, "service.instance.id")).unwrap_or_default();
            let kind = match tag_text(&s.tags, "span.kind").as_deref() {
                Some("server") => SpanKind::Server,
                Some("client") => SpanKind::Client,
                Some("producer" | "consumer") => SpanKind::Messaging,
                _ => SpanKind::Internal,
            };
            let error = tag_text(&s.tags, "otel.status_code").is_some_and(|c| c.eq_ignore_ascii_case("error"))
                || tag(&s.tags, "error").is_some_and(|v| v == &Value::Bool(true) || v == "true");
            out.push(Span {
                trace_id,
                span_id,
                parent,
                name: interner.get(&s.operation_name),
                kind,
                start_ns: s.start_time.saturating_mul(1000),
                end_ns: s.start_time.saturating_add(s.duration).saturating_mul(1000),
                error,
                service,
                pod: interner.get(&pod),
                role: tag_text(ptags, attr::ROLE).map(|r| interner.get(&r)),
                vehicle: tag_text(&s.tags, attr::VEHICLE).map(|v| interner.get(&v)),
                peer: tag_text(&s.tags, "peer.service").map(|v| interner.get(&v)),
                session_root: tag_text(&s.tags, attr::SESSION).is_some_and(|v| v == "true"),
            });
        }
    }
    Ok(out)
}

impl Jaeger {
    /// A client of the query API at `base` (e.g. a port-forward of the `jaeger-query` Service).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Jaeger { endpoint: Endpoint::direct(base)? })
    }

    /// A client of the query API at `endpoint` (e.g. the `jaeger-query` Service through the API
    /// server's proxy: [`Endpoint::service`]).
    pub fn at(endpoint: Endpoint) -> Self {
        Jaeger { endpoint }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Vec<Span>> {
        let what = format!("GET {path} ({})", self.endpoint.describe());
        let body = self.endpoint.get(path, query).await?.success(&what)?;
        parse_traces(&body, &mut Interner::default()).with_context(|| what)
    }

    /// The services Jaeger has spans of (`/api/services`).
    pub async fn services(&self) -> anyhow::Result<Vec<String>> {
        let what = format!("GET /api/services ({})", self.endpoint.describe());
        let body = self.endpoint.get("/api/services", &[]).await?.success(&what)?;
        let resp: Response<Vec<String>> =
            serde_json::from_slice(&body).with_context(|| format!("{what}: reading the response"))?;
        Ok(resp.data().with_context(|| what)?.unwrap_or_default())
    }

    /// The spans of one trace.
    pub async fn trace(&self, trace_id: TraceId) -> anyhow::Result<Vec<Span>> {
        self.get(&format!("/api/traces/{trace_id}"), &[]).await
    }

    /// The spans of the traces of `service` from the last `lookback`, at most `limit` traces
    /// (whole traces: spans of other services in them included). Duplicates are removed.
    pub async fn spans_of_service(&self, service: &str, lookback: Duration, limit: usize) -> anyhow::Result<Vec<Span>> {
        let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let start = end.saturating_sub(lookback);
        let spans = self
            .get(
                "/api/traces",
                &[
                    ("service", service.to_string()),
                    ("start", start.as_micros().to_string()),
                    ("end", end.as_micros().to_string()),
                    ("limit", limit.to_string()),
                ],
            )
            .await?;
        let mut seen = HashSet::new();
        Ok(spans.into_iter().filter(|s| seen.insert((s.trace_id, s.span_id))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_response_becomes_spans_with_process_identity() {
        let body = serde_json::json!({"data": [{
            "traceID": "4bf92f3577b34da6a3ce929d0e0e4736",
            "spans": [
                {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "f067aa0ba902b7", "operationName": "POST /v1/heartbeat",
                 "references": [], "startTime": 1_700_000_000_000_000u64, "duration": 1500, "processID": "p1",
                 "tags": [{"key": "span.kind", "type": "string", "value": "client"},
                          {"key": "hadrill.vehicle.id", "type": "string", "value": "v-1"},
                          {"key": "otel.status_code", "type": "string", "value": "ERROR"}]},
                {"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "1111111111111111", "operationName": "POST /v1/heartbeat",
                 "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "f067aa0ba902b7"}],
                 "startTime": 1_700_000_000_000_100u64, "duration": 900, "processID": "p2",
                 "tags": [{"key": "span.kind", "type": "string", "value": "server"}]}
            ],
            "processes": {
                "p1": {"serviceName": "vehicles", "tags": [{"key": "k8s.pod.name", "type": "string", "value": "vehicles-0"}]},
                "p2": {"serviceName": "dispatch", "tags": [{"key": "service.instance.id", "type": "string", "value": "dispatch-primary-a"},
                                                           {"key": "hadrill.role", "type": "string", "value": "primary"}]}
            }
        }]});
        let spans = parse_traces(body.to_string().as_bytes(), &mut Interner::default()).expect("parses");
        assert_eq!(spans.len(), 2);
        let (client, server) = (&spans[0], &spans[1]);
        assert_eq!(client.span_id.to_hex(), "00f067aa0ba902b7", "ids are padded to full width");
        assert_eq!((client.kind, client.error, &*client.pod), (SpanKind::Client, true, "vehicles-0"));
        assert_eq!(client.vehicle.as_deref(), Some("v-1"));
        assert_eq!(client.end_ns - client.start_ns, 1_500_000);
        assert_eq!(server.parent, Some(client.span_id));
        assert_eq!((server.kind, &*server.service, &*server.pod), (SpanKind::Server, "dispatch", "dispatch-primary-a"));
        assert_eq!(server.role.as_deref(), Some("primary"));

        let err = parse_traces(br#"{"data": [], "errors": [{"code": 500, "msg": "boom"}]}"#, &mut Interner::default())
            .expect_err("errors");
        assert!(err.to_string().contains("boom"), "{err}");
    }
}
