//! Counters of a service and their Prometheus text.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;

use super::App;
use crate::propagation::{Extracted, Outcome};

/// Counters of requests and trace contexts.
#[derive(Debug, Default)]
pub struct Counters {
    /// Heartbeats received.
    pub requests: AtomicU64,
    /// Heartbeats whose downstream call failed.
    pub failures: AtomicU64,
    /// Contexts continued.
    pub continued: AtomicU64,
    /// Traces started (no context header).
    pub started: AtomicU64,
    /// Malformed `traceparent` (a new trace was started).
    pub malformed_traceparent: AtomicU64,
    /// Malformed `sw8` (a new trace was started).
    pub malformed_sw8: AtomicU64,
    /// Malformed optional headers dropped (`tracestate`, `baggage`, `sw8-correlation`, or a
    /// context header next to a valid one).
    pub dropped_headers: AtomicU64,
}

impl Counters {
    /// Counts one extraction.
    pub fn count_extract(&self, e: &Extracted) {
        let c = match &e.outcome {
            Outcome::Continued => &self.continued,
            Outcome::Started => &self.started,
            Outcome::Malformed { header: "sw8", .. } => &self.malformed_sw8,
            Outcome::Malformed { .. } => &self.malformed_traceparent,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.dropped_headers.fetch_add(e.dropped.len() as u64, Ordering::Relaxed);
    }
}

pub(super) async fn render(State(app): State<Arc<App>>) -> String {
    let c = &app.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let [queued, dropped, exported, failed, requests] = app.recorder.stats().snapshot();
    let mut out = String::new();
    let mut line = |name: &str, help: &str, labels: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{labels} {v}");
    };
    line("hadrill_sample_requests_total", "Heartbeats received.", "", get(&c.requests));
    line("hadrill_sample_downstream_failures_total", "Heartbeats whose downstream call failed.", "", get(&c.failures));
    line(
        "hadrill_sample_context_continued_total",
        "Requests that continued the caller's trace.",
        "",
        get(&c.continued),
    );
    line("hadrill_sample_context_started_total", "Requests without trace context.", "", get(&c.started));
    line(
        "hadrill_sample_context_malformed_total",
        "Malformed traceparent headers (a new trace was started).",
        "{header=\"traceparent\"}",
        get(&c.malformed_traceparent),
    );
    line(
        "hadrill_sample_context_malformed_sw8_total",
        "Malformed sw8 headers (a new trace was started).",
        "{header=\"sw8\"}",
        get(&c.malformed_sw8),
    );
    line(
        "hadrill_sample_headers_dropped_total",
        "Malformed optional trace headers dropped.",
        "",
        get(&c.dropped_headers),
    );
    line("hadrill_sample_spans_queued_total", "Spans queued for export.", "", queued);
    line("hadrill_sample_spans_dropped_total", "Spans dropped because the export queue was full.", "", dropped);
    line("hadrill_sample_spans_exported_total", "Spans the OTLP endpoint accepted.", "", exported);
    line("hadrill_sample_spans_failed_total", "Spans lost to failed export requests.", "", failed);
    line("hadrill_sample_export_requests_total", "OTLP export requests sent.", "", requests);
    out
}
