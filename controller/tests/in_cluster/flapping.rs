//! A slow but healthy primary (its processes stalled most of the time, answering within the
//! probe timeout) is kept: no switch, no flapping.

use std::time::{Duration, Instant};

use crate::support::cluster::Cluster;
use crate::support::faults::Slowed;
use crate::support::pair::{NS, Pair, Side, addr, condition};
use crate::support::wait::events_of;
use crate::support::{http, layout, ms};

/// How long the primary stays slow (a window is the only way to see that nothing happens).
const WINDOW: Duration = Duration::from_secs(5);
/// Stall and run phases of the slowed processes.
const STALLED: Duration = Duration::from_millis(250);
const RUNNING: Duration = Duration::from_millis(150);
/// The probe timeout of this test: slow answers stay well within it even on a loaded machine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_healthy_primary_is_kept_without_flapping() {
    assert!(STALLED * 4 <= PROBE_TIMEOUT, "slow, not failing: stalls well within the probe timeout");
    let cluster = Cluster::start(&[&format!("--probe-timeout={}ms", PROBE_TIMEOUT.as_millis())]).await;
    let pair = Pair::create(&cluster, layout(&cluster, "slow", true)).await;
    let primary = pair.pods(Side::Primary).await;

    let from = pair.log.mark();
    let slowed = Slowed::pods(&cluster.sim, &primary, STALLED, RUNNING);
    let mut latencies = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < WINDOW {
        let t = Instant::now();
        let (code, _) = http::get(addr(&primary[0]), "/healthz").await.expect("the slow primary answers");
        assert_eq!(code, 200);
        latencies.push(t.elapsed());
    }
    drop(slowed);
    latencies.sort();
    let (p50, max) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    assert!(max >= STALLED / 2, "the primary was not slowed down: max {max:?}");

    let seen = pair.log.since(from);
    for s in &seen {
        assert!(pair.on(&s.svc, Side::Primary), "left the slow primary: {:?}", condition(&s.svc));
    }
    let last = pair.log.since(0).pop().expect("a version").svc;
    assert_eq!(condition(&last).map(|c| c.reason), Some("ActiveHealthy".to_string()));
    let events = events_of(&cluster.client, NS, "slow").await;
    assert!(
        events.iter().all(|e| !matches!(e.reason.as_deref(), Some("FailedOver" | "FailoverDelayed"))),
        "{events:?}"
    );
    let metrics = cluster.metrics(cluster.leader()).await;
    assert!(!metrics.contains("reason=\"FailedOver\""), "{metrics}");
    println!(
        "slow primary for {}: /healthz p50 {} max {} over {} requests (probe timeout {}); no switch, {} Service updates",
        ms(WINDOW),
        ms(p50),
        ms(max),
        latencies.len(),
        ms(PROBE_TIMEOUT),
        seen.len()
    );
    cluster.sim.stop().await;
}
