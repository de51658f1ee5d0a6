//! What the vehicles measured, as served by their results API (JSON). The harness reads these
//! types through `hadrill::traffic::vehicles`.
//!
//! Times are Unix milliseconds (wall clock, comparable with the harness's on one machine);
//! latencies are milliseconds with microsecond precision.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How a heartbeat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx answer.
    Ok,
    /// No answer within the timeout.
    Timeout,
    /// The connection could not be made (refused, reset, unreachable).
    Connect,
    /// A non-2xx answer (e.g. 502 when the downstream failed).
    Http,
    /// Anything else (unreadable answer, connection lost mid-answer).
    Error,
}

/// One heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Vehicle.
    pub vehicle: String,
    /// Sequence number within the vehicle's session, from 0.
    pub seq: u64,
    /// When it was sent (Unix ms).
    pub sent_ms: u64,
    /// Time to the answer or the failure (ms).
    pub latency_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status, if an answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Pod that served it (the first service of the chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// That pod's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Latency percentiles of successful heartbeats (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of `samples` (µs); all zero when there are none.
    pub fn of(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |p: f64| f64::from(samples[((samples.len() - 1) as f64 * p).round() as usize]) / 1000.0;
        Latency { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) }
    }
}

/// A link gap: the time between two consecutive successful heartbeats (send times).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Length (ms). About one interval when nothing failed.
    pub ms: u64,
    /// Send time of the last success before the gap.
    pub from_ms: u64,
    /// Send time of the first success after it.
    pub to_ms: u64,
    /// Heartbeats that failed in between.
    pub failed: u64,
}

/// A run of consecutive successful heartbeats served by one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedRun {
    /// Role (`primary`/`standby`), or the service name when the answer had none.
    pub side: String,
    /// Pods that served in the run.
    pub pods: BTreeSet<String>,
    /// First heartbeat's send time.
    pub first_ms: u64,
    /// Last heartbeat's send time.
    pub last_ms: u64,
    /// Heartbeats in the run.
    pub count: u64,
}

/// One vehicle's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleResult {
    /// Vehicle id (also in baggage `vehicle.id` and span attribute `hadrill.vehicle.id`).
    pub id: String,
    /// Its session trace (hex).
    pub trace_id: String,
    /// Propagation format (`w3c`/`sw8`).
    pub format: String,
    /// Heartbeats sent (finished).
    pub sent: u64,
    /// Successful ones.
    pub ok: u64,
    /// Failed ones (timeouts included).
    pub errors: u64,
    /// Of the failures, timeouts.
    pub timeouts: u64,
    /// The longest link gap (between consecutive successes).
    pub longest_gap: Option<Gap>,
    /// Latency of successful heartbeats.
    pub latency: Latency,
    /// Who served, in order.
    pub served: Vec<ServedRun>,
}

/// Counters of the vehicles' span export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanCounters {
    /// Queued for export.
    pub queued: u64,
    /// Dropped (queue full).
    pub dropped: u64,
    /// Accepted by the endpoint.
    pub exported: u64,
    /// Lost to failed exports.
    pub failed: u64,
}

/// Everything the vehicles measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The pod running the vehicles.
    pub pod: String,
    /// The target (base URL).
    pub target: String,
    /// Whether heartbeats are still being sent.
    pub running: bool,
    /// Heartbeat interval (ms).
    pub interval_ms: u64,
    /// Heartbeat timeout (ms).
    pub timeout_ms: u64,
    /// Per vehicle.
    pub vehicles: Vec<VehicleResult>,
    /// All vehicles: sent.
    pub sent: u64,
    /// All vehicles: successful.
    pub ok: u64,
    /// All vehicles: failed.
    pub errors: u64,
    /// All vehicles: latency of successful heartbeats.
    pub latency: Latency,
    /// Span export counters.
    pub spans: SpanCounters,
}

impl Results {
    /// The longest gap of any vehicle, with the vehicle.
    pub fn longest_gap(&self) -> Option<(&str, Gap)> {
        self.vehicles.iter().filter_map(|v| v.longest_gap.map(|g| (v.id.as_str(), g))).max_by_key(|(_, g)| g.ms)
    }

    /// The vehicle `id`.
    pub fn vehicle(&self, id: &str) -> Option<&VehicleResult> {
        self.vehicles.iter().find(|v| v.id == id)
    }
}

/// Running statistics of one vehicle, updated per heartbeat.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Result so far (latency filled in by [`Tally::result`]).
    pub result: VehicleResult,
    latencies_us: Vec<u32>,
    last_ok_ms: Option<u64>,
    failed_since_ok: u64,
}

impl Tally {
    /// A vehicle that has sent nothing yet.
    pub fn new(id: &str, trace_id: &str, format: &str) -> Self {
        Tally {
            result: VehicleResult {
                id: id.into(),
                trace_id: trace_id.into(),
                format: format.into(),
                sent: 0,
                ok: 0,
                errors: 0,
                timeouts: 0,
                longest_gap: None,
                latency: Latency::default(),
                served: Vec::new(),
            },
            latencies_us: Vec::new(),
            last_ok_ms: None,
            failed_since_ok: 0,
        }
    }

    /// Adds a finished heartbeat. Heartbeats of one vehicle are added in send order.
    pub fn add(&mut self, hb: &Heartbeat) {
        let r = &mut self.result;
        r.sent += 1;
        if hb.outcome != Outcome::Ok {
            r.errors += 1;
            if hb.outcome == Outcome::Timeout {
                r.timeouts += 1;
            }
            self.failed_since_ok += 1;
            return;
        }
        r.ok += 1;
        self.latencies_us.push((hb.latency_ms * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32);
        if let Some(prev) = self.last_ok_ms {
            let gap = Gap {
                ms: hb.sent_ms.saturating_sub(prev),
                from_ms: prev,
                to_ms: hb.sent_ms,
                failed: self.failed_since_ok,
            };
            if r.longest_gap.is_none_or(|g| gap.ms > g.ms) {
                r.longest_gap = Some(gap);
            }
        }
        self.last_ok_ms = Some(hb.sent_ms);
        self.failed_since_ok = 0;
        let side = hb.role.clone().unwrap_or_else(|| "unknown".into());
        let pod = hb.pod.clone().unwrap_or_default();
        match r.served.last_mut() {
            Some(run) if run.side == side => {
                run.pods.insert(pod);
                run.last_ms = hb.sent_ms;
                run.count += 1;
            }
            _ => r.served.push(ServedRun {
                side,
                pods: BTreeSet::from([pod]),
                first_ms: hb.sent_ms,
                last_ms: hb.sent_ms,
                count: 1,
            }),
        }
    }

    /// The result, with latency percentiles.
    pub fn result(&self) -> VehicleResult {
        let mut r = self.result.clone();
        r.latency = Latency::of(&mut self.latencies_us.clone());
        r
    }

    /// Latency samples of successful heartbeats (µs).
    pub fn latencies_us(&self) -> &[u32] {
        &self.latencies_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(seq: u64, sent_ms: u64, outcome: Outcome, role: &str, pod: &str) -> Heartbeat {
        Heartbeat {
            vehicle: "v-0".into(),
            seq,
            sent_ms,
            latency_ms: 2.5,
            outcome,
            status: None,
            pod: Some(pod.into()),
            role: Some(role.into()),
            error: None,
        }
    }

    #[test]
    fn the_tally_finds_the_longest_gap_and_the_served_runs() {
        let mut t = Tally::new("v-0", "abc", "w3c");
        let mut seq = 0;
        let mut add = |t: &mut Tally, ms: u64, o: Outcome, role: &str, pod: &str| {
            t.add(&hb(seq, ms, o, role, pod));
            seq += 1;
        };
        for i in 0..5 {
            add(&mut t, 1000 + i * 100, Outcome::Ok, "primary", if i % 2 == 0 { "p-a" } else { "p-b" });
        }
        add(&mut t, 1500, Outcome::Connect, "", "");
        add(&mut t, 1600, Outcome::Timeout, "", "");
        add(&mut t, 1700, Outcome::Ok, "standby", "s-a");
        add(&mut t, 1800, Outcome::Ok, "standby", "s-a");
        let r = t.result();
        assert_eq!((r.sent, r.ok, r.errors, r.timeouts), (9, 7, 2, 1));
        assert_eq!(r.longest_gap, Some(Gap { ms: 300, from_ms: 1400, to_ms: 1700, failed: 2 }));
        assert_eq!(r.served.len(), 2);
        assert_eq!(r.served[0].pods, BTreeSet::from(["p-a".to_string(), "p-b".to_string()]));
        assert_eq!((r.served[1].side.as_str(), r.served[1].first_ms, r.served[1].count), ("standby", 1700, 2));
        assert_eq!(r.latency.p50, 2.5);
    }

    #[test]
    fn percentiles_of_known_samples() {
        let mut s: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let l = Latency::of(&mut s);
        assert_eq!((l.p50, l.p90, l.p99, l.max), (51.0, 90.0, 99.0, 100.0));
        assert_eq!(Latency::of(&mut []), Latency::default());
    }
}
