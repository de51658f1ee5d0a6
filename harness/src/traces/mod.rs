//! Traces: collecting the spans the sample services export, and checking them.
//!
//! - [`receiver`]: an embedded OTLP/HTTP receiver (protobuf and JSON) the pods export to.
//!   `Receiver::start().await?` listens on 127.0.0.1 (reachable from the embedded cluster's
//!   process pods); give pods `OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint()`; read the
//!   spans with `receiver.store().spans()`, wait with `store().wait_quiet(..)`.
//! - [`jaeger`]: on kind, a client for Jaeger's query API returning the same [`Span`]s.
//! - [`checker`]: [`checker::check`] finds orphan spans, broken chains and split sessions,
//!   and shows each vehicle's session trace across a failover with its largest gap.
//!
//! The span model here is what the checker needs, with the OTLP resource attributes folded in:
//! which service and pod recorded the span, the pod's role, and the vehicle (see
//! `hadrill_sample::telemetry` for the attribute names).

pub mod checker;
pub mod jaeger;
pub mod receiver;
pub mod sink;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use hadrill_sample::ids::{SpanId, TraceId};
use hadrill_sample::telemetry::attr;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};

/// What a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// Entry span: a service serving a request.
    Server,
    /// Exit span: a call to another service.
    Client,
    /// Local work (a vehicle's session root), or unspecified.
    Internal,
    /// Producer or consumer (messaging): neither entry nor exit for the checker.
    Messaging,
}

/// One span, with its process's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Trace.
    pub trace_id: TraceId,
    /// Span.
    pub span_id: SpanId,
    /// Parent, `None` for a root.
    pub parent: Option<SpanId>,
    /// Operation name.
    pub name: Arc<str>,
    /// Kind.
    pub kind: SpanKind,
    /// Start, ns since the Unix epoch.
    pub start_ns: u64,
    /// End, ns since the Unix epoch.
    pub end_ns: u64,
    /// Status is error.
    pub error: bool,
    /// `service.name` of the process.
    pub service: Arc<str>,
    /// The pod (`k8s.pod.name`, else `service.instance.id`), or empty.
    pub pod: Arc<str>,
    /// `hadrill.role` of the process (`primary`/`standby`), if set.
    pub role: Option<Arc<str>>,
    /// The vehicle (`hadrill.vehicle.id`), if set.
    pub vehicle: Option<Arc<str>>,
    /// `peer.service` of an exit span (the callee), if set.
    pub peer: Option<Arc<str>>,
    /// Whether this is a vehicle's session root (`hadrill.session`).
    pub session_root: bool,
}

impl Span {
    /// Start time.
    pub fn start(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.start_ns)
    }
}

impl fmt::Display for Span {
    /// `span 00f0.. "POST /v1/heartbeat" (dispatch on pod dispatch-primary-x, primary)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "span {} {:?} ({}", self.span_id, &*self.name, self.service)?;
        if !self.pod.is_empty() {
            write!(f, " on pod {}", self.pod)?;
        }
        if let Some(r) = &self.role {
            write!(f, ", {r}")?;
        }
        write!(f, ")")
    }
}

/// Shares repeated strings (service, pod, operation names) between spans.
#[derive(Debug, Default)]
pub struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_string(), a.clone());
        a
    }
}

fn text(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// Spans of an OTLP export request; invalid spans (ids of the wrong length or all zero) are
/// counted in the second value, with the first reason.
pub fn from_otlp(req: &ExportTraceServiceRequest, interner: &mut Interner) -> (Vec<Span>, u64, Option<String>) {
    let mut out = Vec::new();
    let mut rejected = 0u64;
    let mut reason = None;
    for rs in &req.resource_spans {
        let rattrs: &[KeyValue] = rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or_default();
        let rtext = |k: &str| find(rattrs, k).and_then(|kv| text(&kv.value));
        let service = interner.get(&rtext("service.name").unwrap_or_else(|| "unknown_service".into()));
        let pod = interner.get(&rtext("k8s.pod.name").or_else(|| rtext("service.instance.id")).unwrap_or_default());
        let role = rtext(attr::ROLE).map(|r| interner.get(&r));
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let (Some(trace_id), Some(span_id)) =
                    (TraceId::from_slice(&s.trace_id), SpanId::from_slice(&s.span_id))
                else {
                    rejected += 1;
                    reason.get_or_insert_with(|| {
                        format!("span {:?}: trace id must be 16 bytes and span id 8, not all zero", s.name)
                    });
                    continue;
                };
                let parent = if s.parent_span_id.is_empty() {
                    None
                } else {
                    match SpanId::from_slice(&s.parent_span_id) {
                        Some(p) => Some(p),
                        None => {
                            rejected += 1;
                            reason.get_or_insert_with(|| format!("span {:?}: parent span id must be 8 bytes", s.name));
                            continue;
                        }
                    }
                };
                let kind = match span::SpanKind::try_from(s.kind).unwrap_or(span::SpanKind::Unspecified) {
                    span::SpanKind::Server => SpanKind::Server,
                    span::SpanKind::Client => SpanKind::Client,
                    span::SpanKind::Producer | span::SpanKind::Consumer => SpanKind::Messaging,
                    span::SpanKind::Internal | span::SpanKind::Unspecified => SpanKind::Internal,
                };
                let stext = |k: &str| find(&s.attributes, k).and_then(|kv| text(&kv.value));
                out.push(Span {
                    trace_id,
                    span_id,
                    parent,
                    name: interner.get(&s.name),
                    kind,
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    error: s.status.as_ref().is_some_and(|st| st.code == status::StatusCode::Error as i32),
                    service: service.clone(),
                    pod: pod.clone(),
                    role: role.clone(),
                    vehicle: stext(attr::VEHICLE).map(|v| interner.get(&v)),
                    peer: stext("peer.service").map(|v| interner.get(&v)),
                    session_root: stext(attr::SESSION).is_some_and(|v| v == "true"),
                });
            }
        }
    }
    (out, rejected, reason)
}
