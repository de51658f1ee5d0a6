//! The vehicles' links across a disruption: whether every vehicle is served again, how long
//! one has been without a link, and the gaps to put on a timeline.

use std::time::{Duration, Instant};

use super::fleet::Fleet;
use super::vehicles::Results;

/// Consecutive successful heartbeats after the last disruption that count as "recovered".
pub const RECOVERED_AFTER: u64 = 3;

/// How often the vehicles' results are read while following a recovery.
const POLL: Duration = Duration::from_millis(200);

/// One vehicle's link at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Vehicle id.
    pub vehicle: String,
    /// Served [`RECOVERED_AFTER`] times in a row since the disruption.
    pub back: bool,
    /// How long it has had no link now (ms; 0 when its last heartbeat was served on time).
    pub open_ms: u64,
}

/// Per vehicle of `r`: whether it is back since `since_ms` and how long its link is down at `now`.
pub fn link_state(r: &Results, since_ms: u64, interval_ms: u64, now: u64) -> Vec<LinkState> {
    r.vehicles
        .iter()
        .map(|v| {
            let last = v.served.last();
            let back = last.is_some_and(|run| {
                run.last_ms >= since_ms
                    && run.last_ms.saturating_sub(run.first_ms.max(since_ms)) >= (RECOVERED_AFTER - 1) * interval_ms
            });
            // An open gap: nothing served since the last success (beyond the normal interval).
            let open = last.map_or(now.saturating_sub(since_ms), |run| now.saturating_sub(run.last_ms));
            let open_ms = if open > 2 * interval_ms + r.timeout_ms { open } else { 0 };
            LinkState { vehicle: v.id.clone(), back, open_ms }
        })
        .collect()
}

/// How following a recovery ended; each outcome carries the last results read.
#[derive(Debug, Clone)]
pub enum Recovery {
    /// Every vehicle is back (or the vehicles were stopped).
    Back(Results),
    /// A vehicle has had no link for longer than the limit.
    LinkLost {
        /// The vehicle down longest.
        vehicle: String,
        /// For how long (ms).
        open_ms: u64,
        /// The results.
        results: Results,
    },
    /// Not every vehicle was back in time.
    NotBack {
        /// The vehicles not yet back.
        waiting: Vec<String>,
        /// The results.
        results: Results,
    },
}

/// Reads `fleet`'s results until every vehicle is back since `since_ms` (Unix ms), a vehicle
/// has had no link for over `limit_ms`, or `give_up` passes. `now_ms` is the wall clock.
pub async fn follow_recovery(
    fleet: &Fleet,
    since_ms: u64,
    limit_ms: u64,
    give_up: Instant,
    now_ms: impl Fn() -> u64,
) -> anyhow::Result<Recovery> {
    let interval_ms = fleet.interval.as_millis() as u64;
    loop {
        let results = fleet.results().await?;
        let state = link_state(&results, since_ms, interval_ms, now_ms());
        if let Some(worst) = state.iter().filter(|s| s.open_ms > limit_ms).max_by_key(|s| s.open_ms) {
            return Ok(Recovery::LinkLost { vehicle: worst.vehicle.clone(), open_ms: worst.open_ms, results });
        }
        if state.iter().all(|s| s.back) || fleet.stopped.is_some() {
            return Ok(Recovery::Back(results));
        }
        if Instant::now() >= give_up {
            let waiting = state.into_iter().filter(|s| !s.back).map(|s| s.vehicle).collect();
            return Ok(Recovery::NotBack { waiting, results });
        }
        // The results API has no watch: it is read again after a few heartbeats.
        tokio::time::sleep(POLL).await;
    }
}

/// Every vehicle's longest gap in which heartbeats failed, as (vehicle, from, to) in Unix ms;
/// a gap still open at `now` runs to `now`.
pub fn gaps(r: &Results, now: u64) -> Vec<(String, u64, u64)> {
    let normal = 2 * r.interval_ms + r.timeout_ms;
    r.vehicles
        .iter()
        .filter_map(|v| {
            let closed = v.longest_gap.filter(|g| g.failed > 0).map(|g| (g.from_ms, g.to_ms));
            let open = v.served.last().map(|run| run.last_ms).filter(|last| now.saturating_sub(*last) > normal);
            let (from, to) = match (closed, open) {
                (Some((f, t)), Some(last)) if t - f >= now - last => (f, t),
                (_, Some(last)) => (last, now),
                (Some(gap), None) => gap,
                (None, None) => return None,
            };
            Some((v.id.clone(), from, to))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results of vehicles whose served runs are `(first_ms, last_ms)`, interval 200 ms.
    fn results(runs: &[&[(u64, u64)]]) -> Results {
        let vehicles: Vec<serde_json::Value> = runs
            .iter()
            .enumerate()
            .map(|(i, runs)| {
                let served: Vec<serde_json::Value> = runs
                    .iter()
                    .map(|(f, l)| serde_json::json!({"side": "primary", "pods": [], "first_ms": f, "last_ms": l, "count": (l - f) / 200 + 1}))
                    .collect();
                serde_json::json!({"id": format!("v-{i}"), "trace_id": "00", "format": "w3c", "sent": 0, "ok": 0,
                    "errors": 0, "timeouts": 0, "longest_gap": null, "latency": {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0},
                    "served": served})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"pod": "vehicles", "target": "dispatch", "running": true,
            "interval_ms": 200, "timeout_ms": 250, "vehicles": vehicles, "sent": 0, "ok": 0, "errors": 0,
            "latency": {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0},
            "spans": {"queued": 0, "dropped": 0, "exported": 0, "failed": 0}}))
        .expect("results")
    }

    #[test]
    fn a_vehicle_is_back_after_consecutive_heartbeats_since_the_disruption() {
        // Disruption at 10_000. v-0 never lost its link; v-1 came back at 12_000 and has
        // three heartbeats since; v-2 came back with only two; v-3 has been cut off since 9_800.
        let r =
            results(&[&[(0, 10_600)], &[(0, 9_800), (12_000, 12_400)], &[(0, 9_800), (12_000, 12_200)], &[(0, 9_800)]]);
        let state = link_state(&r, 10_000, 200, 12_500);
        let back: Vec<bool> = state.iter().map(|s| s.back).collect();
        assert_eq!(back, [true, true, false, false]);
        let open: Vec<u64> = state.iter().map(|s| s.open_ms).collect();
        assert_eq!(open, [1_900, 0, 0, 2_700], "open gaps beyond the normal interval + timeout only");
    }
}
