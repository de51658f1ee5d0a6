//! Prometheus metrics, served on `/metrics` in the OpenMetrics text format (which Prometheus
//! scrapes natively).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `hadrill_failovers_total` | counter | `reason` (FailedOver, FailedBack, Switched, Configured), `detector` (white-box, black-box, white-box+black-box for failovers; policy for failbacks; manual; adoption) |
//! | `hadrill_events_total` | counter | `reason` (every event published) |
//! | `hadrill_reconcile_duration_seconds` | histogram | |
//! | `hadrill_reconcile_errors_total` | counter | |
//! | `hadrill_detection_to_switch_seconds` | histogram | (from the first observation of the active side as unhealthy to the switch) |
//! | `hadrill_leader` | gauge | 1 while this instance holds the lease |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `hadrill_failovers_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwitchLabels {
    /// Event reason of the switch.
    pub reason: String,
    /// What found the problem.
    pub detector: String,
}

/// Labels of `hadrill_events_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Event reason.
    pub reason: String,
}

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    switches: Family<SwitchLabels, Counter>,
    events: Family<EventLabels, Counter>,
    reconcile_duration: Histogram,
    reconcile_errors: Counter,
    detection_to_switch: Histogram,
    reconcile_count: AtomicU64,
    reconcile_sum_micros: AtomicU64,
    detection_count: AtomicU64,
    detection_sum_micros: AtomicU64,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hadrill");
        let switches = Family::<SwitchLabels, Counter>::default();
        registry.register(
            "failovers",
            "Selector switches of HA Services, by event reason and detector",
            switches.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Events published on HA Services, by reason", events.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", reconcile_duration.clone());
        let reconcile_errors = Counter::default();
        registry.register("reconcile_errors", "Reconciles that failed", reconcile_errors.clone());
        let detection_to_switch = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "detection_to_switch_seconds",
            "Time from the first observation of the active side as unhealthy to the switch",
            detection_to_switch.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this instance is the leader", leader.clone());
        Metrics {
            registry,
            switches,
            events,
            reconcile_duration,
            reconcile_errors,
            detection_to_switch,
            reconcile_count: AtomicU64::new(0),
            reconcile_sum_micros: AtomicU64::new(0),
            detection_count: AtomicU64::new(0),
            detection_sum_micros: AtomicU64::new(0),
            leader,
        }
    }

    /// Counts a switch.
    pub fn switched(&self, reason: &str, detector: &str) {
        self.switches.get_or_create(&SwitchLabels { reason: reason.into(), detector: detector.into() }).inc();
    }

    /// Switches counted for a reason (all detectors).
    pub fn switches(&self, reason: &str) -> u64 {
        ["white-box", "black-box", "white-box+black-box", "manual", "policy", "adoption"]
            .iter()
            .filter_map(|d| {
                self.switches.get(&SwitchLabels { reason: reason.into(), detector: (*d).into() }).map(|c| c.get())
            })
            .sum()
    }

    /// Counts a published event.
    pub fn event(&self, reason: &str) {
        self.events.get_or_create(&EventLabels { reason: reason.into() }).inc();
    }

    /// Records a reconcile's duration.
    pub fn reconciled(&self, took: Duration, ok: bool) {
        self.reconcile_duration.observe(took.as_secs_f64());
        self.reconcile_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.reconcile_sum_micros.fetch_add(micros, Ordering::Relaxed);
        if !ok {
            self.reconcile_errors.inc();
        }
    }

    /// Records a detection-to-switch latency.
    pub fn detection_to_switch(&self, latency: Duration) {
        self.detection_to_switch.observe(latency.as_secs_f64());
        self.detection_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.detection_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Count and sum (seconds) of the reconcile durations recorded.
    pub fn reconcile_totals(&self) -> (u64, f64) {
        let micros = self.reconcile_sum_micros.load(Ordering::Relaxed);
        (self.reconcile_count.load(Ordering::Relaxed), micros as f64 / 1e6)
    }

    /// Count and sum (seconds) of the detection-to-switch latencies recorded.
    pub fn detection_to_switch_totals(&self) -> (u64, f64) {
        let micros = self.detection_sum_micros.load(Ordering::Relaxed);
        (self.detection_count.load(Ordering::Relaxed), micros as f64 / 1e6)
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lists_every_metric() {
        let m = Metrics::new();
        m.switched("FailedOver", "white-box");
        m.switched("FailedOver", "black-box");
        m.event("FailedOver");
        m.reconciled(Duration::from_millis(3), false);
        m.detection_to_switch(Duration::from_millis(40));
        m.set_leader(true);
        assert_eq!(m.switches("FailedOver"), 2);
        let text = m.encode();
        for needle in [
            "hadrill_failovers_total{reason=\"FailedOver\",detector=\"white-box\"} 1",
            "hadrill_events_total{reason=\"FailedOver\"} 1",
            "hadrill_reconcile_duration_seconds_count 1",
            "hadrill_reconcile_errors_total 1",
            "hadrill_detection_to_switch_seconds_count 1",
            "hadrill_leader 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
