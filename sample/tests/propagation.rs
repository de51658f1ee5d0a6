//! Propagation round trips through real header maps, in both formats, and malformed headers.

use std::collections::HashMap;

use hadrill_sample::ids::{SpanId, TraceId};
use hadrill_sample::propagation::{Active, Caller, Format, Outcome, TraceContext, extract};

const CALLER: Caller<'static> = Caller { service: "vehicles", instance: "vehicles-0", endpoint: "heartbeat" };

fn headers(pairs: &[(&str, String)]) -> HashMap<String, Vec<u8>> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

fn extract_from(h: &HashMap<String, Vec<u8>>, default: Format) -> hadrill_sample::propagation::Extracted {
    extract(|n| h.get(n).map(Vec::as_slice), default)
}

#[test]
fn both_formats_round_trip_through_a_chain_of_three_hops() {
    for format in [Format::W3c, Format::Sw8] {
        let mut ctx = TraceContext::new_trace(format);
        ctx.set_baggage("vehicle.id", "v-42");
        let session = SpanId::random();
        let mut client = Active::under(ctx.clone(), session);
        let mut sent = client.exit();
        let mut h = headers(&client.inject(sent, CALLER, "127.96.0.1:80"));
        for hop in ["dispatch", "planner"] {
            let got = extract_from(&h, Format::W3c);
            assert_eq!(got.outcome, Outcome::Continued, "{format} at {hop}");
            assert!(got.dropped.is_empty(), "{:?}", got.dropped);
            assert_eq!(got.ctx.format, format, "the format travels");
            assert_eq!(got.ctx.trace_id, ctx.trace_id, "{format} at {hop}: same trace");
            assert_eq!(got.ctx.parent, Some(sent.span_id), "{format} at {hop}: parent is the caller's exit span");
            assert_eq!(got.ctx.baggage_value("vehicle.id"), Some("v-42"));
            assert!(got.ctx.sampled);
            let mut server = Active::entry(got.ctx);
            assert_ne!(server.local, sent.span_id);
            sent = server.exit();
            assert_ne!(sent.span_id, server.local);
            let caller = Caller { service: hop, instance: "pod-1", endpoint: "POST /v1/heartbeat" };
            h = headers(&server.inject(sent, caller, "127.96.0.2:80"));
            client = server;
        }
        let _ = client;
    }
}

#[test]
fn a_foreign_skywalking_trace_id_is_passed_on_as_received() {
    let foreign = "1-YS5iLmM=-c2VnLTE=-2-c3Zj-aW5zdA==-L3g=-aG9zdDo4MA==";
    let got = extract_from(&headers(&[("sw8", foreign.into())]), Format::W3c);
    assert_eq!(got.outcome, Outcome::Continued);
    assert_eq!(got.ctx.trace_id, TraceId::from_sw8("a.b.c"));
    assert_eq!(got.ctx.parent, Some(SpanId::from_sw8("seg-1", 2)));
    let mut server = Active::entry(got.ctx);
    let exit = server.exit();
    let out = server.inject(exit, CALLER, "x:1");
    let next = extract_from(&headers(&out), Format::W3c);
    assert_eq!(next.ctx.sw8_trace_id.as_deref(), Some("a.b.c"));
    assert_eq!(next.ctx.trace_id, TraceId::from_sw8("a.b.c"));
}

#[test]
fn no_header_starts_a_trace_in_the_default_format() {
    let got = extract_from(&HashMap::new(), Format::Sw8);
    assert_eq!(got.outcome, Outcome::Started);
    assert_eq!(got.ctx.format, Format::Sw8);
    assert_eq!(got.ctx.parent, None);
}

#[test]
fn malformed_context_headers_start_a_new_trace_and_say_why() {
    // (headers, the header reported, the new trace's format)
    type Case = (Vec<(&'static str, Vec<u8>)>, &'static str, Format);
    let cases: Vec<Case> = vec![
        (vec![("traceparent", b"00-zz".to_vec())], "traceparent", Format::W3c),
        (vec![("traceparent", vec![0xff, 0xfe, 0x00])], "traceparent", Format::W3c),
        (
            vec![("traceparent", format!("ff-{}-{}-01", "1".repeat(32), "2".repeat(16)).into_bytes())],
            "traceparent",
            Format::W3c,
        ),
        (vec![("sw8", b"1-2-3".to_vec())], "sw8", Format::Sw8),
        (vec![("sw8", b"1-!!-!!-0-a-b-c-d".to_vec())], "sw8", Format::Sw8),
        (vec![("sw8", "é".repeat(100).into_bytes())], "sw8", Format::Sw8),
    ];
    for (pairs, header, format) in cases {
        let h: HashMap<String, Vec<u8>> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let got = extract_from(&h, Format::W3c);
        match &got.outcome {
            Outcome::Malformed { header: which, reason } => {
                assert_eq!(*which, header);
                assert!(!reason.is_empty());
            }
            other => panic!("{h:?}: {other:?}"),
        }
        assert_eq!(got.ctx.parent, None, "a new trace");
        assert_eq!(got.ctx.format, format);
    }
}

#[test]
fn a_bad_traceparent_next_to_a_good_sw8_continues_the_sw8_trace_and_reports_the_other() {
    let mut client = Active::under(TraceContext::new_trace(Format::Sw8), SpanId::random());
    let exit = client.exit();
    let mut pairs = client.inject(exit, CALLER, "a:1");
    pairs.push(("traceparent", "garbage".into()));
    let got = extract_from(&headers(&pairs), Format::W3c);
    assert_eq!(got.outcome, Outcome::Continued);
    assert_eq!(got.ctx.parent, Some(exit.span_id));
    assert_eq!(got.dropped.len(), 1);
    assert_eq!(got.dropped[0].0, "traceparent");
}

#[test]
fn malformed_optional_headers_are_dropped_but_the_trace_continues() {
    let tp = format!("00-{}-{}-01", TraceId::random(), SpanId::random());
    let h = headers(&[("traceparent", tp), ("tracestate", "BAD KEY=1".into()), ("baggage", "k=%zz".into())]);
    let got = extract_from(&h, Format::W3c);
    assert_eq!(got.outcome, Outcome::Continued);
    let names: Vec<&str> = got.dropped.iter().map(|d| d.0).collect();
    assert_eq!(names, ["tracestate", "baggage"]);
    assert!(got.ctx.baggage.is_empty() && got.ctx.tracestate.is_none());

    let mut client = Active::under(TraceContext::new_trace(Format::Sw8), SpanId::random());
    let exit = client.exit();
    let mut pairs = client.inject(exit, CALLER, "a:1");
    pairs.push(("sw8-correlation", "no-colon".into()));
    let got = extract_from(&headers(&pairs), Format::W3c);
    assert_eq!(got.outcome, Outcome::Continued);
    assert_eq!(got.dropped.iter().map(|d| d.0).collect::<Vec<_>>(), ["sw8-correlation"]);
}

#[test]
fn unsampled_traces_stay_unsampled_and_tracestate_passes_through() {
    let tp = format!("00-{}-{}-00", TraceId::random(), SpanId::random());
    let h = headers(&[("traceparent", tp), ("tracestate", "rojo=00f067aa0ba902b7".into())]);
    let got = extract_from(&h, Format::W3c);
    assert!(!got.ctx.sampled);
    let mut server = Active::entry(got.ctx);
    let exit = server.exit();
    let out = server.inject(exit, CALLER, "a:1");
    assert!(out.iter().any(|(k, v)| *k == "traceparent" && v.ends_with("-00")));
    assert!(out.contains(&("tracestate", "rojo=00f067aa0ba902b7".to_string())));
}

#[test]
fn random_bytes_never_crash_extraction() {
    // A deterministic xorshift keeps the test reproducible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..5_000 {
        let len = (next() % 80) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| b"0123456789abcdef-=:,;%AZ\xff"[(next() % 25) as usize]).collect();
        let header = ["traceparent", "sw8", "baggage", "tracestate", "sw8-correlation"][(next() % 5) as usize];
        let h: HashMap<String, Vec<u8>> = [(header.to_string(), bytes)].into_iter().collect();
        let got = extract_from(&h, Format::W3c);
        if got.outcome == Outcome::Continued {
            assert!(got.ctx.parent.is_some());
        }
    }
}
