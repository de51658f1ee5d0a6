//! The Jaeger client against Jaeger's query API as the query service answers it: the fixtures in
//! tests/fixtures/jaeger/ are written in the JSON of Jaeger's `model/json` (traces with
//! `traceID`, `spans` and `processes`; spans with `flags`, `references` of `refType` CHILD_OF /
//! FOLLOWS_FROM, `startTime` and `duration` in µs, typed `tags`, `logs`, `processID`,
//! `warnings`) inside the query service's envelope (`data`, `total`, `limit`, `offset`,
//! `errors`), with the tags Jaeger gives OTLP spans (`span.kind`, `otel.status_code`,
//! resource attributes as process tags). A local HTTP server serves them, so the client's real
//! HTTP path runs, and the continuity checker gives its verdict on what comes back.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hadrill::traces::checker::{Expect, Finding, check};
use hadrill::traces::jaeger::Jaeger;
use hadrill::traces::{SpanKind, TraceId};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jaeger").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the stand-in serves for `service` and what it was asked.
#[derive(Default)]
struct Served {
    /// `/api/traces` fixture per service.
    traces: Vec<(&'static str, &'static str)>,
    /// The query strings of the `/api/traces` requests.
    queries: Vec<Vec<(String, String)>>,
}

type Shared = Arc<Mutex<Served>>;

fn json(status: StatusCode, body: String) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Jaeger's query service, as far as the client uses it: `/api/services`, `/api/traces` (the
/// service is required: 400 with Jaeger's error otherwise), `/api/traces/{id}` (404 with
/// Jaeger's error for an unknown trace).
async fn stand_in(served: Shared) -> (String, tokio::task::JoinHandle<()>) {
    async fn services() -> Response {
        json(StatusCode::OK, fixture("services.json"))
    }
    async fn traces(State(s): State<Shared>, Query(q): Query<Vec<(String, String)>>) -> Response {
        let mut s = s.lock().expect("lock");
        s.queries.push(q.clone());
        let Some((_, service)) = q.iter().find(|(k, _)| k == "service") else {
            return json(StatusCode::BAD_REQUEST, fixture("traces-no-service.json"));
        };
        match s.traces.iter().find(|(name, _)| name == service) {
            Some((_, file)) => json(StatusCode::OK, fixture(file)),
            None => json(StatusCode::OK, r#"{"data":[],"total":0,"limit":0,"offset":0,"errors":null}"#.into()),
        }
    }
    async fn trace(Path(id): Path<String>) -> Response {
        match id.as_str() {
            "6e0c63257de34c926f9efcd03899fd3b" => json(StatusCode::OK, fixture("trace-v-1.json")),
            _ => json(StatusCode::NOT_FOUND, fixture("trace-not-found.json")),
        }
    }
    let app = axum::Router::new()
        .route("/api/services", get(services))
        .route("/api/traces", get(traces))
        .route("/api/traces/{id}", get(trace))
        .with_state(served);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (base, task)
}

#[tokio::test]
async fn a_failover_read_from_jaeger_is_continuous_across_primary_and_standby() {
    let served =
        Arc::new(Mutex::new(Served { traces: vec![("vehicles", "traces-failover.json")], ..Default::default() }));
    let (base, server) = stand_in(served.clone()).await;
    let jaeger = Jaeger::new(&base).expect("client");

    assert_eq!(jaeger.services().await.expect("services"), ["dispatch", "planner", "vehicles"]);

    let lookback = Duration::from_secs(600);
    let spans = jaeger.spans_of_service("vehicles", lookback, 500).await.expect("spans");
    // The query names the service, a window of `lookback` in µs, and the limit.
    let query = served.lock().expect("lock").queries.pop().expect("asked");
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).expect(k);
    assert_eq!(param("service"), "vehicles");
    assert_eq!(param("limit"), "500");
    let (start, end): (u64, u64) = (param("start").parse().expect("µs"), param("end").parse().expect("µs"));
    assert_eq!(end - start, lookback.as_micros() as u64);

    // 2 traces: v-1 with 11 spans (planner hop included), v-2 with 9.
    assert_eq!(spans.len(), 20);
    let v1 = TraceId::from_hex("6e0c63257de34c926f9efcd03899fd3b").expect("hex");
    let root = spans.iter().find(|s| s.session_root && s.trace_id == v1).expect("v-1's session root");
    assert_eq!((root.kind, root.parent, &*root.service), (SpanKind::Internal, None, "vehicles"));
    assert_eq!(&*root.pod, "vehicles-6c9d7b5f4-q8x2l");
    let failed: Vec<_> = spans.iter().filter(|s| s.error).collect();
    assert_eq!(failed.len(), 2, "one timed-out heartbeat per vehicle");
    assert!(failed.iter().all(|s| s.kind == SpanKind::Client && s.end_ns - s.start_ns == 250_000_000));
    // FOLLOWS_FROM is a link, not a parent.
    let follows = spans.iter().find(|s| &*s.name == "record heartbeat" && s.trace_id == v1).expect("linked span");
    assert_eq!(follows.parent, None);
    let standby: Vec<_> = spans.iter().filter(|s| s.role.as_deref() == Some("standby")).collect();
    assert_eq!(standby.len(), 4, "entry + linked span per vehicle");
    assert!(standby.iter().all(|s| s.pod.starts_with("dispatch-standby-")));

    let report = check(&spans, Expect { failover: true });
    println!("{report}");
    report.ok().expect("continuous");
    assert_eq!(report.sessions.len(), 2);
    for s in &report.sessions {
        assert!(s.crossed_failover(), "{report}");
        assert_eq!((s.heartbeats, s.failed), (4, 1), "{report}");
        let roles: Vec<&str> = s.served.iter().map(|r| &*r.role).collect();
        assert_eq!(roles, ["primary", "standby"], "{report}");
        assert_eq!(s.served[0].pods.len(), 2, "two primary pods served: {report}");
        let gap = s.largest_gap.as_ref().expect("a gap");
        assert_eq!(gap.duration, Duration::from_millis(1000), "last primary to first standby heartbeat");
    }
    assert_eq!(report.failed_calls.len(), 2);

    // One trace by id; an unknown one is Jaeger's 404 with its message.
    let one = jaeger.trace(v1).await.expect("trace");
    assert_eq!(one.len(), 11);
    assert!(one.iter().all(|s| s.trace_id == v1));
    let unknown = TraceId::from_hex("0000000000000000000000000000beef").expect("hex");
    let err = jaeger.trace(unknown).await.expect_err("404").to_string();
    assert!(err.contains("404") && err.contains("trace not found"), "{err}");

    // A service Jaeger has no spans of: nothing, not an error.
    assert!(jaeger.spans_of_service("nobody", lookback, 10).await.expect("empty").is_empty());
    server.abort();
}

#[tokio::test]
async fn context_lost_at_the_standby_is_found_in_jaeger_data() {
    let served =
        Arc::new(Mutex::new(Served { traces: vec![("vehicles", "traces-context-lost.json")], ..Default::default() }));
    let (base, server) = stand_in(served).await;
    let spans = Jaeger::new(&base).expect("client").spans_of_service("vehicles", Duration::from_secs(60), 10).await;
    let spans = spans.expect("spans");
    assert_eq!(spans.len(), 6);
    let report = check(&spans, Expect { failover: true });
    println!("{report}");
    assert!(!report.is_ok());
    let lost = TraceId::from_hex("9c4e1b7a5d3f2e8c6b0a9d8e7f6c5b4a").expect("hex");
    let mut kinds: Vec<&str> = report
        .findings
        .iter()
        .map(|f| match f {
            // planner's entry span names a parent that was never exported.
            Finding::Orphan { span, .. } if &*span.service == "planner" => "orphan",
            // The vehicle's successful heartbeat has no entry span in its trace...
            Finding::BrokenChain { vehicle, peer, .. }
                if vehicle.as_deref() == Some("v-3") && peer.as_deref() == Some("dispatch") =>
            {
                "broken chain"
            }
            // ...because the standby's entry span started a trace of its own.
            Finding::SplitSession { vehicle, span, .. } if &**vehicle == "v-3" && span.trace_id == lost => "split",
            Finding::NoFailover { vehicle, .. } if &**vehicle == "v-3" => "no failover",
            other => panic!("unexpected finding: {other}"),
        })
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["broken chain", "no failover", "orphan", "split"], "{report}");
    server.abort();
}

#[test]
fn jaegers_errors_are_reported_with_its_message() {
    // `data` is null on an error: the message is Jaeger's, not a parse error.
    for (file, msg) in
        [("trace-not-found.json", "trace not found"), ("traces-no-service.json", "'service' is required")]
    {
        let err = hadrill::traces::jaeger::parse_traces(fixture(file).as_bytes(), &mut Default::default())
            .expect_err("an error response");
        assert!(err.to_string().contains(msg), "{file}: {err:#}");
    }
}
