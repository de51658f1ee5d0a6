//! The embedded OTLP receiver: spans from the sample services (a dispatch -> planner chain run
//! in-process, exporting over OTLP/HTTP protobuf), JSON requests, partial success and refusals.

use std::time::{Duration, SystemTime};

use hadrill::traces::SpanKind;
use hadrill::traces::checker::{Expect, check};
use hadrill::traces::receiver::Receiver;
use hadrill_sample::ids::{SpanId, TraceId};
use hadrill_sample::propagation::{Active, Caller, Format, TraceContext};
use hadrill_sample::serve::{Answer, ServeConfig, Server};
use hadrill_sample::target::Target;
use hadrill_sample::telemetry::export::ExportConfig;
use hadrill_sample::telemetry::{Kind, Resource, SpanRecord, request};
use prost::Message;

const LIMIT: Duration = Duration::from_secs(20);

fn config(name: &str, role: Option<&str>, downstream: Option<Target>) -> ServeConfig {
    ServeConfig {
        name: name.into(),
        role: role.map(String::from),
        pod: format!("{name}-pod-0"),
        downstream,
        listen: "127.0.0.1:0".parse().expect("addr"),
        tracing: true,
        default_format: Format::W3c,
        drain: Duration::ZERO,
        downstream_timeout: Duration::from_secs(5),
    }
}

fn export(receiver: &Receiver) -> ExportConfig {
    ExportConfig {
        endpoint: Some(format!("{}/v1/traces", receiver.endpoint())),
        delay: Duration::from_millis(20),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_gets_a_linked_chain_from_the_sample_services_in_both_formats() {
    let receiver = Receiver::start().await.expect("receiver starts");
    let planner = Server::start(config("planner", None, None), export(&receiver)).await.expect("planner");
    let down = Target::from_env(&format!("http://{}", planner.addr())).expect("target");
    let dispatch =
        Server::start(config("dispatch", Some("primary"), Some(down)), export(&receiver)).await.expect("dispatch");
    let http = reqwest::Client::new();

    for format in [Format::W3c, Format::Sw8] {
        let mut ctx = TraceContext::new_trace(format);
        ctx.set_baggage("vehicle.id", "v-1");
        let mut client = Active::under(ctx.clone(), SpanId::random());
        let exit = client.exit();
        let caller = Caller { service: "vehicles", instance: "vehicles-0", endpoint: "heartbeat" };
        let mut req = http.post(format!("http://{}/v1/heartbeat", dispatch.addr()));
        for (k, v) in client.inject(exit, caller, &dispatch.addr().to_string()) {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("dispatch answers");
        assert_eq!(resp.status(), 200);
        let answer: Answer = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("an Answer");
        assert_eq!((answer.service.as_str(), answer.role.as_deref()), ("dispatch", Some("primary")));
        assert_eq!(answer.trace_id, Some(ctx.trace_id.to_hex()), "{format}: the trace continues");
        assert_eq!(answer.downstream.as_ref().map(|d| d.service.as_str()), Some("planner"));

        // dispatch entry + exit, planner entry.
        let trace = ctx.trace_id;
        receiver
            .store()
            .wait_until("three spans of the trace", LIMIT, |s| s.iter().filter(|s| s.trace_id == trace).count() == 3)
            .await
            .expect("spans arrive");
        let spans: Vec<_> = receiver.store().spans().into_iter().filter(|s| s.trace_id == trace).collect();
        let entry = |svc: &str| spans.iter().find(|s| &*s.service == svc && s.kind == SpanKind::Server).expect(svc);
        let d_in = entry("dispatch");
        let p_in = entry("planner");
        let d_out = spans.iter().find(|s| s.kind == SpanKind::Client).expect("exit span");
        assert_eq!(d_in.parent, Some(exit.span_id), "{format}: dispatch's entry is a child of the vehicle's exit");
        assert_eq!(d_out.parent, Some(d_in.span_id));
        assert_eq!(p_in.parent, Some(d_out.span_id), "{format}: planner's entry is a child of dispatch's exit");
        assert_eq!((&*d_in.pod, d_in.role.as_deref()), ("dispatch-pod-0", Some("primary")));
        assert_eq!(d_out.peer.as_deref(), Some("127.0.0.1"));
        assert_eq!(p_in.vehicle.as_deref(), Some("v-1"), "{format}: baggage reaches the end of the chain");
    }
    assert!(dispatch.counters().continued.load(std::sync::atomic::Ordering::Relaxed) >= 2);

    // The test played the vehicle without exporting its spans: each dispatch entry span is an
    // orphan and v-1 has no session root; nothing else is wrong.
    let report = check(&receiver.store().spans(), Expect::default());
    let text: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        text.iter().filter(|f| f.contains("orphan span") && f.contains("dispatch-pod-0")).count(),
        2,
        "{report}"
    );
    assert_eq!(text.iter().filter(|f| f.contains("vehicle v-1: no session root span")).count(), 1, "{report}");
    assert_eq!(text.len(), 3, "{report}");

    dispatch.shutdown().await.expect("dispatch stops");
    planner.shutdown().await.expect("planner stops");
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_starts_a_new_trace_and_is_counted() {
    let receiver = Receiver::start().await.expect("receiver starts");
    let server = Server::start(config("dispatch", None, None), export(&receiver)).await.expect("dispatch");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/heartbeat", server.addr()))
        .header("traceparent", "00-not-a-trace-01")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    receiver.store().wait_until("one span", LIMIT, |s| !s.is_empty()).await.expect("span arrives");
    let span = &receiver.store().spans()[0];
    assert_eq!(span.parent, None, "a new trace");
    let metrics =
        reqwest::get(format!("http://{}/metrics", server.addr())).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("hadrill_sample_context_malformed_total{header=\"traceparent\"} 1"), "{metrics}");
    assert!(metrics.contains("hadrill_sample_spans_dropped_total 0"), "{metrics}");
    server.shutdown().await.expect("stops");
    receiver.stop().await;
}

fn one_span(trace_id: TraceId) -> SpanRecord {
    SpanRecord {
        trace_id,
        span_id: SpanId::random(),
        parent: None,
        name: "work".into(),
        kind: Kind::Internal,
        start: SystemTime::now(),
        end: SystemTime::now(),
        error: None,
        attributes: vec![],
    }
}

#[tokio::test]
async fn json_requests_partial_success_and_refusals() {
    let receiver = Receiver::start().await.expect("receiver starts");
    let url = format!("{}/v1/traces", receiver.endpoint());
    let http = reqwest::Client::new();
    let resource = Resource { attributes: vec![("service.name".into(), "json-sender".into())] };
    let trace = TraceId::random();

    let body = serde_json::to_vec(&request(&resource, &[one_span(trace)])).expect("json");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    assert!(text.contains(&trace.to_hex()), "OTLP JSON has hex ids: {text}");
    let resp = http.post(&url).header("content-type", "application/json").body(body).send().await.expect("post");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(receiver.store().len(), 1);
    assert_eq!(&*receiver.store().spans()[0].service, "json-sender");

    // A span with a short trace id is rejected; its neighbour is kept.
    let mut req = request(&resource, &[one_span(trace), one_span(trace)]);
    req.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![1, 2, 3];
    let resp = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    let answer = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
        resp.bytes().await.expect("body").as_ref(),
    )
    .expect("protobuf answer");
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("trace id"), "{}", partial.error_message);
    assert_eq!((receiver.store().len(), receiver.store().rejected()), (2, 1));

    for (ctype, encoding, body, status) in [
        ("text/plain", None, b"x".to_vec(), 415),
        ("application/x-protobuf", Some("gzip"), b"x".to_vec(), 415),
        ("application/x-protobuf", None, vec![0xff, 0xff, 0xff], 400),
        ("application/json", None, b"{\"resourceSpans\": 3}".to_vec(), 400),
    ] {
        let mut r = http.post(&url).header("content-type", ctype).body(body);
        if let Some(e) = encoding {
            r = r.header("content-encoding", e);
        }
        let resp = r.send().await.expect("post");
        assert_eq!(resp.status(), status, "{ctype} {encoding:?}");
        let msg = resp.text().await.expect("text");
        assert!(!msg.is_empty(), "the refusal says why");
    }
    assert_eq!(receiver.store().len(), 2, "refused requests add nothing");
    receiver.store().wait_quiet(Duration::from_millis(50), Duration::from_secs(5)).await.expect("quiet");
    receiver.stop().await;
}
