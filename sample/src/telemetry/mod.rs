//! Spans of the sample programs and their export as OTLP/HTTP protobuf.
//!
//! A finished span is a [`SpanRecord`]; [`export::Exporter`] batches them to
//! `OTEL_EXPORTER_OTLP_ENDPOINT` from a bounded queue that never blocks a request.
//!
//! Attribute names the harness's checker relies on (see `hadrill::traces`):
//! - resource: `service.name`, `service.instance.id` and `k8s.pod.name` (the pod),
//!   `k8s.namespace.name`, `k8s.node.name`, [`attr::ROLE`] (`primary`/`standby`, when set);
//! - span: [`attr::VEHICLE`] (the vehicle, from baggage `vehicle.id`), [`attr::FORMAT`]
//!   (`w3c`/`sw8`), [`attr::CONTEXT`] (`continued`/`started`/`malformed`), `peer.service` and
//!   `server.address` on exit spans, `http.response.status_code`.

pub mod export;

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};

use crate::ids::{SpanId, TraceId};

/// Attribute names of hadrill's own conventions.
pub mod attr {
    /// Resource: which side of an HA pair the process serves (`primary`/`standby`).
    pub const ROLE: &str = "hadrill.role";
    /// Span: the vehicle a request belongs to.
    pub const VEHICLE: &str = "hadrill.vehicle.id";
    /// Span: the propagation format (`w3c`/`sw8`).
    pub const FORMAT: &str = "hadrill.propagation";
    /// Span (entry): how the context was obtained (`continued`/`started`/`malformed`).
    pub const CONTEXT: &str = "hadrill.context";
    /// Span (vehicle): marks the session root span.
    pub const SESSION: &str = "hadrill.session";
    /// Span (vehicle): heartbeat sequence number.
    pub const SEQ: &str = "hadrill.heartbeat.seq";
    /// Baggage key carrying the vehicle id.
    pub const BAGGAGE_VEHICLE: &str = "vehicle.id";
}

/// Span kinds used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Entry span: serving a request.
    Server,
    /// Exit span: a call to another service.
    Client,
    /// Local work (a vehicle's session).
    Internal,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Boolean.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// A finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// Trace.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// Parent span (local or remote), `None` for a root.
    pub parent: Option<SpanId>,
    /// Operation name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// `Some(message)` when the operation failed.
    pub error: Option<String>,
    /// Attributes.
    pub attributes: Vec<(&'static str, Value)>,
}

/// The process the spans come from (OTLP resource attributes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Attributes, `service.name` first.
    pub attributes: Vec<(String, String)>,
}

impl Resource {
    /// `service.name` = `service`, `service.instance.id` = `k8s.pod.name` = `pod`, the
    /// namespace and node from the environment the kubelet sets (`POD_NAMESPACE`, `NODE_NAME`),
    /// and the role when given.
    pub fn new(service: &str, pod: &str, role: Option<&str>) -> Self {
        let mut attributes = vec![
            ("service.name".to_string(), service.to_string()),
            ("service.instance.id".to_string(), pod.to_string()),
            ("k8s.pod.name".to_string(), pod.to_string()),
        ];
        for (key, var) in [("k8s.namespace.name", "POD_NAMESPACE"), ("k8s.node.name", "NODE_NAME")] {
            if let Some(v) = std::env::var(var).ok().filter(|s| !s.is_empty()) {
                attributes.push((key.into(), v));
            }
        }
        if let Some(role) = role.filter(|r| !r.is_empty()) {
            attributes.push((attr::ROLE.into(), role.into()));
        }
        Resource { attributes }
    }

    /// Value of attribute `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)).unwrap_or(0)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn to_otlp_value(v: &Value) -> any_value::Value {
    match v {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Int(i) => any_value::Value::IntValue(*i),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
    }
}

/// One OTLP span.
pub fn to_otlp(s: &SpanRecord) -> Span {
    let kind = match s.kind {
        Kind::Server => span::SpanKind::Server,
        Kind::Client => span::SpanKind::Client,
        Kind::Internal => span::SpanKind::Internal,
    };
    let status = match &s.error {
        Some(msg) => Status { message: msg.clone(), code: status::StatusCode::Error as i32 },
        None => Status { message: String::new(), code: status::StatusCode::Unset as i32 },
    };
    Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        parent_span_id: s.parent.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: 0x1,
        name: s.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: unix_nanos(s.start),
        end_time_unix_nano: unix_nanos(s.end),
        attributes: s.attributes.iter().map(|(k, v)| kv(k, to_otlp_value(v))).collect(),
        status: Some(status),
        ..Default::default()
    }
}

/// The export request for `spans` of `resource`.
pub fn request(resource: &Resource, spans: &[SpanRecord]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(OtlpResource {
                attributes: resource
                    .attributes
                    .iter()
                    .map(|(k, v)| kv(k, any_value::Value::StringValue(v.clone())))
                    .collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "hadrill-sample".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.iter().map(to_otlp).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
