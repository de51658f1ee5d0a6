//! Synthetic span sets shaped like the sample's traffic (vehicle -> dispatch -> planner), for
//! the checker's tests and benchmark.

#![allow(dead_code)]

use std::sync::Arc;

use hadrill::traces::{Span, SpanId, SpanKind, TraceId};

/// How a synthetic heartbeat went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Served by the primary.
    Primary,
    /// Served by the standby.
    Standby,
    /// The vehicle's call failed (nobody served it).
    Failed,
}

/// The spans of one vehicle session: a root span, then per heartbeat (at `interval_ns` steps)
/// the vehicle's exit span and, when served, dispatch's entry and exit spans and planner's
/// entry span (4 spans per served heartbeat).
pub fn session(vehicle: &str, beats: &[Beat], interval_ns: u64) -> Vec<Span> {
    let trace_id = TraceId::random();
    let s = |x: &str| -> Arc<str> { Arc::from(x) };
    let (veh, heartbeat) = (s(vehicle), s("POST /v1/heartbeat"));
    let base = Span {
        trace_id,
        span_id: SpanId::random(),
        parent: None,
        name: s("vehicle session"),
        kind: SpanKind::Internal,
        start_ns: 1_700_000_000_000_000_000,
        end_ns: 1_700_000_000_000_000_000,
        error: false,
        service: s("vehicles"),
        pod: s("vehicles-0"),
        role: None,
        vehicle: Some(veh.clone()),
        peer: None,
        session_root: true,
    };
    let root = base.span_id;
    let mut out = vec![base.clone()];
    for (i, beat) in beats.iter().enumerate() {
        let t = base.start_ns + (i as u64 + 1) * interval_ns;
        let exit = Span {
            span_id: SpanId::random(),
            parent: Some(root),
            name: heartbeat.clone(),
            kind: SpanKind::Client,
            start_ns: t,
            end_ns: t + 1_000_000,
            error: *beat == Beat::Failed,
            peer: Some(s("dispatch")),
            session_root: false,
            ..base.clone()
        };
        out.push(exit.clone());
        let (role, pod) = match beat {
            Beat::Failed => continue,
            Beat::Primary => ("primary", "dispatch-primary-0"),
            Beat::Standby => ("standby", "dispatch-standby-0"),
        };
        let entry = Span {
            span_id: SpanId::random(),
            parent: Some(exit.span_id),
            kind: SpanKind::Server,
            start_ns: t + 100_000,
            service: s("dispatch"),
            pod: s(pod),
            role: Some(s(role)),
            peer: None,
            error: false,
            ..exit.clone()
        };
        let call = Span {
            span_id: SpanId::random(),
            parent: Some(entry.span_id),
            kind: SpanKind::Client,
            start_ns: t + 200_000,
            peer: Some(s("planner")),
            ..entry.clone()
        };
        let planner = Span {
            span_id: SpanId::random(),
            parent: Some(call.span_id),
            kind: SpanKind::Server,
            start_ns: t + 300_000,
            service: s("planner"),
            pod: s("planner-0"),
            role: None,
            peer: None,
            ..call.clone()
        };
        out.extend([entry, call, planner]);
    }
    out
}

/// `before` heartbeats by the primary, `outage` failed ones, `after` by the standby.
pub fn failover(before: usize, outage: usize, after: usize) -> Vec<Beat> {
    let mut v = vec![Beat::Primary; before];
    v.extend(std::iter::repeat_n(Beat::Failed, outage));
    v.extend(std::iter::repeat_n(Beat::Standby, after));
    v
}
