//! Trace context propagation over HTTP headers, in two formats:
//!
//! - W3C: `traceparent`, `tracestate`, `baggage` ([`w3c`]);
//! - Apache SkyWalking: `sw8`, `sw8-correlation` ([`sw8`]).
//!
//! [`extract`] reads an incoming request's headers into a [`TraceContext`]; an [`Active`]
//! request allocates its span ids and [`Active::inject`]s the context into an outgoing call
//! **in the format it came in**. Baggage (W3C) and correlation (SkyWalking) are the same list of
//! key/value pairs here, so `vehicle.id` travels in either.
//!
//! A malformed `traceparent` or `sw8` starts a new trace and is reported in
//! [`Extracted::outcome`]; a malformed `tracestate`, `baggage` or `sw8-correlation` is dropped
//! and reported in [`Extracted::dropped`]. Nothing here panics on input.
//!
//! SkyWalking names spans by (segment id, index) and traces by text. They map onto OTLP ids with
//! [`SpanId::from_sw8`] / [`TraceId::from_sw8`], which both ends of a call compute alike, so a
//! SkyWalking-propagated call still links exit span to entry span in the exported spans.

pub mod sw8;
pub mod w3c;

use std::fmt;
use std::str::FromStr;

use crate::ids::{SpanId, TraceId, encode_hex};

/// Header names.
pub const TRACEPARENT: &str = "traceparent";
/// W3C vendor state.
pub const TRACESTATE: &str = "tracestate";
/// W3C baggage.
pub const BAGGAGE: &str = "baggage";
/// SkyWalking context.
pub const SW8: &str = "sw8";
/// SkyWalking correlation (baggage).
pub const SW8_CORRELATION: &str = "sw8-correlation";

/// A propagation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// W3C Trace Context + Baggage.
    W3c,
    /// SkyWalking sw8 + sw8-correlation.
    Sw8,
}

impl Format {
    /// `w3c` / `sw8`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::W3c => "w3c",
            Format::Sw8 => "sw8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "w3c" => Ok(Format::W3c),
            "sw8" => Ok(Format::Sw8),
            other => Err(format!("unknown trace format {other:?} (expected w3c or sw8)")),
        }
    }
}

/// The trace context a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace (OTLP id).
    pub trace_id: TraceId,
    /// The caller's span (the parent of our entry span); `None` starts a trace here.
    pub parent: Option<SpanId>,
    /// Whether spans of this trace are recorded.
    pub sampled: bool,
    /// The format to propagate in.
    pub format: Format,
    /// W3C `tracestate`, passed on unchanged.
    pub tracestate: Option<String>,
    /// Baggage / correlation pairs, passed on.
    pub baggage: Vec<w3c::BaggageEntry>,
    /// The trace id as SkyWalking text (kept so it is passed on exactly as received).
    pub sw8_trace_id: Option<String>,
    /// The SkyWalking caller, when the context came in as `sw8`.
    pub sw8_parent: Option<sw8::Sw8>,
}

impl TraceContext {
    /// A new sampled trace, propagated as `format`.
    pub fn new_trace(format: Format) -> Self {
        TraceContext {
            trace_id: TraceId::random(),
            parent: None,
            sampled: true,
            format,
            tracestate: None,
            baggage: Vec::new(),
            sw8_trace_id: None,
            sw8_parent: None,
        }
    }

    /// Value of baggage entry `key`.
    pub fn baggage_value(&self, key: &str) -> Option<&str> {
        self.baggage.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// Sets baggage entry `key` (replacing it).
    pub fn set_baggage(&mut self, key: &str, value: &str) {
        self.baggage.retain(|e| e.key != key);
        self.baggage.push(w3c::BaggageEntry { key: key.into(), value: value.into(), properties: String::new() });
    }
}

/// How the context of a request was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid context header: the trace continues.
    Continued,
    /// No context header: a new trace.
    Started,
    /// A context header was malformed: a new trace, and why.
    Malformed {
        /// `traceparent` or `sw8`.
        header: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// The result of [`extract`].
#[derive(Debug, Clone)]
pub struct Extracted {
    /// The context to continue (or the new trace).
    pub ctx: TraceContext,
    /// Whether it continued a trace.
    pub outcome: Outcome,
    /// Optional headers dropped as malformed: (header, reason).
    pub dropped: Vec<(&'static str, String)>,
}

/// Reads the trace context from request headers. `get` returns a header's raw value;
/// `default_format` is the format of a trace started here. When both formats are present and
/// valid, W3C wins.
pub fn extract<'a>(get: impl Fn(&str) -> Option<&'a [u8]>, default_format: Format) -> Extracted {
    let text = |name: &'static str| -> Option<Result<&'a str, String>> {
        get(name).map(|b| std::str::from_utf8(b).map_err(|_| format!("{name} is not UTF-8")))
    };
    let mut dropped = Vec::new();
    let mut malformed = None;
    if let Some(tp) = text(TRACEPARENT) {
        match tp.and_then(w3c::parse_traceparent) {
            Ok(tp) => {
                let mut ctx = TraceContext {
                    trace_id: tp.trace_id,
                    parent: Some(tp.parent_id),
                    sampled: tp.sampled(),
                    ..TraceContext::new_trace(Format::W3c)
                };
                if let Some(ts) = text(TRACESTATE) {
                    match ts.and_then(|ts| w3c::check_tracestate(ts).map(|()| ts)) {
                        Ok(ts) if !ts.trim().is_empty() => ctx.tracestate = Some(ts.trim().to_string()),
                        Ok(_) => {}
                        Err(e) => dropped.push((TRACESTATE, e)),
                    }
                }
                read_baggage(&text, &mut ctx, &mut dropped);
                return Extracted { ctx, outcome: Outcome::Continued, dropped };
            }
            Err(e) => malformed = Some((TRACEPARENT, e)),
        }
    }
    if let Some(v) = text(SW8) {
        match v.and_then(sw8::parse) {
            Ok(s) => {
                let mut ctx = TraceContext {
                    trace_id: TraceId::from_sw8(&s.trace_id),
                    parent: Some(SpanId::from_sw8(&s.parent_segment, s.parent_span)),
                    sampled: s.sampled,
                    sw8_trace_id: Some(s.trace_id.clone()),
                    ..TraceContext::new_trace(Format::Sw8)
                };
                ctx.sw8_parent = Some(s);
                read_baggage(&text, &mut ctx, &mut dropped);
                if let Some((header, reason)) = malformed {
                    dropped.push((header, reason));
                }
                return Extracted { ctx, outcome: Outcome::Continued, dropped };
            }
            Err(e) => {
                if malformed.is_none() {
                    malformed = Some((SW8, e));
                }
            }
        }
    }
    match malformed {
        Some((header, reason)) => {
            // The new trace keeps the format the caller tried to use.
            let format = if header == SW8 { Format::Sw8 } else { Format::W3c };
            let mut ctx = TraceContext::new_trace(format);
            read_baggage(&text, &mut ctx, &mut dropped);
            Extracted { ctx, outcome: Outcome::Malformed { header, reason }, dropped }
        }
        None => {
            let mut ctx = TraceContext::new_trace(default_format);
            read_baggage(&text, &mut ctx, &mut dropped);
            Extracted { ctx, outcome: Outcome::Started, dropped }
        }
    }
}

/// Baggage in the context's format.
fn read_baggage<'a>(
    text: &impl Fn(&'static str) -> Option<Result<&'a str, String>>,
    ctx: &mut TraceContext,
    dropped: &mut Vec<(&'static str, String)>,
) {
    match ctx.format {
        Format::W3c => {
            if let Some(b) = text(BAGGAGE) {
                match b.and_then(w3c::parse_baggage) {
                    Ok(entries) => ctx.baggage = entries,
                    Err(e) => dropped.push((BAGGAGE, e)),
                }
            }
        }
        Format::Sw8 => {
            if let Some(c) = text(SW8_CORRELATION) {
                match c.and_then(sw8::parse_correlation) {
                    Ok(pairs) => {
                        ctx.baggage = pairs
                            .into_iter()
                            .map(|(key, value)| w3c::BaggageEntry { key, value, properties: String::new() })
                            .collect()
                    }
                    Err(e) => dropped.push((SW8_CORRELATION, e)),
                }
            }
        }
    }
}

/// Who is calling, for SkyWalking's parent fields.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Our service name.
    pub service: &'a str,
    /// Our instance (pod) name.
    pub instance: &'a str,
    /// The operation we are serving (e.g. `POST /v1/heartbeat`).
    pub endpoint: &'a str,
}

/// An outgoing call's span, as allocated by [`Active::exit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit span's id (the callee's parent).
    pub span_id: SpanId,
    /// Its index in our SkyWalking segment.
    pub index: u32,
}

/// A request being served (or a client's unit of work): its context and the span ids it
/// allocates.
#[derive(Debug, Clone)]
pub struct Active {
    /// The context.
    pub ctx: TraceContext,
    /// The local span the exits are children of (the entry span of a served request).
    pub local: SpanId,
    segment: String,
    next_index: u32,
}

impl Active {
    /// Serving a request: allocates the entry span (index 0 of a new segment).
    pub fn entry(ctx: TraceContext) -> Self {
        let segment = new_segment();
        let local = match ctx.format {
            Format::Sw8 => SpanId::from_sw8(&segment, 0),
            Format::W3c => SpanId::random(),
        };
        Active { ctx, local, segment, next_index: 1 }
    }

    /// Calls made under an existing local span `parent` (a client's session span).
    pub fn under(ctx: TraceContext, parent: SpanId) -> Self {
        Active { ctx, local: parent, segment: new_segment(), next_index: 0 }
    }

    /// Allocates the next exit span.
    pub fn exit(&mut self) -> Exit {
        let index = self.next_index;
        self.next_index += 1;
        let span_id = match self.ctx.format {
            Format::Sw8 => SpanId::from_sw8(&self.segment, index),
            Format::W3c => SpanId::random(),
        };
        Exit { span_id, index }
    }

    /// The headers carrying the context to the callee of `exit`, at `address` (host:port).
    pub fn inject(&self, exit: Exit, caller: Caller<'_>, address: &str) -> Vec<(&'static str, String)> {
        let ctx = &self.ctx;
        let mut out = Vec::with_capacity(3);
        match ctx.format {
            Format::W3c => {
                let tp =
                    w3c::TraceParent { trace_id: ctx.trace_id, parent_id: exit.span_id, flags: u8::from(ctx.sampled) };
                out.push((TRACEPARENT, tp.format()));
                if let Some(ts) = &ctx.tracestate {
                    out.push((TRACESTATE, ts.clone()));
                }
                if !ctx.baggage.is_empty() {
                    out.push((BAGGAGE, w3c::format_baggage(&ctx.baggage)));
                }
            }
            Format::Sw8 => {
                let s = sw8::Sw8 {
                    sampled: ctx.sampled,
                    trace_id: ctx.sw8_trace_id.clone().unwrap_or_else(|| ctx.trace_id.to_hex()),
                    parent_segment: self.segment.clone(),
                    parent_span: exit.index,
                    parent_service: caller.service.to_string(),
                    parent_instance: caller.instance.to_string(),
                    parent_endpoint: caller.endpoint.to_string(),
                    target_address: address.to_string(),
                };
                out.push((SW8, s.format()));
                if !ctx.baggage.is_empty() {
                    let pairs = ctx.baggage.iter().map(|e| (e.key.as_str(), e.value.as_str()));
                    out.push((SW8_CORRELATION, sw8::format_correlation(pairs)));
                }
            }
        }
        out
    }
}

/// A new SkyWalking segment id (32 hex digits).
fn new_segment() -> String {
    encode_hex(&TraceId::random().0)
}
