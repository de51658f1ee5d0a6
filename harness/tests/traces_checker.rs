//! The continuity checker on crafted span sets: clean sessions pass (with the failover shown
//! and the gap measured), and each kind of break is found and named.

mod traces_support;

use std::time::Duration;

use hadrill::traces::checker::{Expect, Finding, check};
use hadrill::traces::{Span, SpanKind};
use traces_support::{Beat, failover, session};

const MS: u64 = 1_000_000;
const FAILOVER: Expect = Expect { failover: true };

fn position(spans: &[Span], f: impl Fn(&Span) -> bool) -> usize {
    spans.iter().position(f).expect("such a span")
}

#[test]
fn clean_sessions_across_a_failover_pass_and_show_the_gap() {
    let mut spans = session("v-1", &failover(10, 5, 10), 100 * MS);
    spans.extend(session("v-2", &failover(3, 0, 3), 100 * MS));
    let report = check(&spans, FAILOVER);
    report.ok().expect("clean");
    assert_eq!(report.sessions.len(), 2);
    let s = report.session("v-1").expect("v-1");
    assert!(s.crossed_failover());
    assert_eq!((s.heartbeats, s.failed), (25, 5));
    let roles: Vec<&str> = s.served.iter().map(|r| &*r.role).collect();
    assert_eq!(roles, ["primary", "standby"]);
    assert_eq!((s.served[0].count, s.served[1].count), (10, 10));
    let gap = s.largest_gap.as_ref().expect("a gap");
    assert_eq!(gap.duration, Duration::from_millis(600), "5 failed beats: 6 intervals between served ones");
    assert_eq!(&*gap.before.pod, "dispatch-primary-0");
    assert_eq!(&*gap.after.pod, "dispatch-standby-0");
    assert_eq!(report.failed_calls.len(), 5, "the outage's calls are listed, not failures");
    assert_eq!(
        report.session("v-2").and_then(|s| s.largest_gap.as_ref()).map(|g| g.duration),
        Some(Duration::from_millis(100))
    );
    let (worst, _) = report.largest_gap().expect("largest");
    assert_eq!(&*worst.vehicle, "v-1");
}

#[test]
fn a_missing_downstream_entry_span_is_a_broken_chain_naming_the_caller() {
    let mut spans = session("v-1", &failover(4, 0, 0), 100 * MS);
    // Lose planner's entry span of the third heartbeat.
    let planners: Vec<usize> = (0..spans.len()).filter(|&i| &*spans[i].service == "planner").collect();
    let lost = spans.remove(planners[2]);
    let report = check(&spans, Expect::default());
    assert_eq!(report.findings.len(), 1, "{report}");
    match &report.findings[0] {
        Finding::BrokenChain { vehicle, exit, peer } => {
            assert_eq!(vehicle.as_deref(), Some("v-1"));
            assert_eq!(Some(exit.span_id), lost.parent);
            assert_eq!(&*exit.pod, "dispatch-primary-0");
            assert_eq!(peer.as_deref(), Some("planner"));
        }
        other => panic!("{other:?}"),
    }
    let text = report.findings[0].to_string();
    for part in [
        "vehicle v-1",
        &lost.trace_id.to_hex(),
        &lost.parent.expect("parent").to_hex(),
        "dispatch-primary-0",
        "planner",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
}

#[test]
fn a_missing_parent_makes_an_orphan_and_breaks_the_callers_chain() {
    let mut spans = session("v-1", &failover(3, 0, 0), 100 * MS);
    let i = position(&spans, |s| &*s.service == "dispatch" && s.kind == SpanKind::Server);
    let lost = spans.remove(i);
    let report = check(&spans, Expect::default());
    let orphan = report
        .findings
        .iter()
        .find_map(|f| match f {
            Finding::Orphan { span, parent, .. } => Some((span.clone(), *parent)),
            _ => None,
        })
        .expect("an orphan");
    assert_eq!(orphan.1, lost.span_id);
    assert_eq!(&*orphan.0.pod, "dispatch-primary-0", "dispatch's exit span lost its parent");
    assert!(
        report.findings.iter().any(|f| matches!(f, Finding::BrokenChain { exit, .. } if &*exit.service == "vehicles"))
    );
    assert_eq!(report.findings.len(), 2, "{report}");
    assert!(report.to_string().contains("orphan span"), "{report}");
}

#[test]
fn a_session_that_restarts_its_trace_at_the_standby_is_split_and_does_not_cross_the_failover() {
    let mut spans = session("v-1", &failover(5, 2, 0), 100 * MS);
    // The standby served the rest, but in a new trace (its spans carry the vehicle in baggage).
    let mut after = session("v-1", &failover(0, 0, 5), 100 * MS);
    after.retain(|s| !s.session_root && s.kind != SpanKind::Client || &*s.service == "dispatch");
    for s in &mut after {
        if s.parent.is_some() && s.kind == SpanKind::Server && &*s.service == "dispatch" {
            s.parent = None; // a new trace started at the standby
        }
    }
    let new_trace = after[0].trace_id;
    spans.extend(after);
    let report = check(&spans, FAILOVER);
    let split = report.findings.iter().find(|f| matches!(f, Finding::SplitSession { .. })).expect("split");
    let text = split.to_string();
    assert!(
        text.contains("vehicle v-1") && text.contains(&new_trace.to_hex()) && text.contains("dispatch-standby-0"),
        "{text}"
    );
    let no_failover = report.findings.iter().find(|f| matches!(f, Finding::NoFailover { .. })).expect("no failover");
    assert!(no_failover.to_string().contains("primary (dispatch-primary-0) x5"), "{no_failover}");
    assert!(!report.session("v-1").expect("session").crossed_failover());
}

#[test]
fn a_session_served_only_by_the_primary_fails_the_failover_expectation_only() {
    let spans = session("v-9", &failover(5, 0, 0), 100 * MS);
    assert!(check(&spans, Expect::default()).is_ok());
    let report = check(&spans, FAILOVER);
    assert_eq!(report.findings.len(), 1);
    let err = report.ok().expect_err("no failover").to_string();
    assert!(err.contains("vehicle v-9") && err.contains("does not continue across the failover"), "{err}");
}

#[test]
fn spans_of_a_vehicle_without_a_session_root_are_named() {
    let mut spans = session("v-3", &[Beat::Primary], 100 * MS);
    spans.retain(|s| !s.session_root);
    let report = check(&spans, Expect::default());
    assert!(
        report.findings.iter().any(|f| matches!(f, Finding::NoSession { vehicle, .. } if &**vehicle == "v-3")),
        "{report}"
    );
}

#[test]
fn duplicates_count_once_and_an_empty_set_is_clean() {
    let spans = session("v-1", &failover(2, 0, 2), 100 * MS);
    let mut doubled = spans.clone();
    doubled.extend(spans.iter().cloned());
    let report = check(&doubled, FAILOVER);
    report.ok().expect("clean");
    assert_eq!(report.spans, spans.len());
    assert_eq!(report.session("v-1").expect("session").heartbeats, 4);
    let empty = check(&[], Expect::default());
    assert!(empty.is_ok() && empty.sessions.is_empty());
}
