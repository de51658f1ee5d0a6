//! StressChaos against the embedded cluster: real worker processes whose CPU time and memory
//! are read from /proc, stopped at the end of the duration, nothing left behind.

mod chaos_support;
mod support;

use std::time::Duration;

use chaos_support::*;
use serde_json::json;

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_workers_burn_cpu_in_proportion_to_load_and_stop_at_the_end_of_the_duration() {
    const PORT: u16 = 18421;
    let sim = start(1).await;
    let client = sim.client().unwrap();
    servers(&client, "default", "busy", 1, PORT).await;
    let api = chaos_api(&client, "default", "StressChaos");
    for (name, load) in [("cpu-high", 80), ("cpu-low", 10)] {
        create_chaos(
            &client,
            "default",
            json!({
                "kind": "StressChaos", "metadata": {"name": name},
                "spec": {"mode": "all", "duration": "4s", "stressors": {"cpu": {"workers": 1, "load": load}},
                         "selector": {"labelSelectors": {"app": "busy"}}},
            }),
        )
        .await;
    }
    let high = await_injected(&api, "cpu-high").await;
    await_injected(&api, "cpu-low").await;
    let ids = record_ids(&high);
    assert_eq!(ids.len(), 1);
    assert!(ids[0].ends_with("/server"), "container records: {ids:?}");
    let chaos = sim.chaos().unwrap();
    let (hp, lp) = (chaos.stress_workers("default", "cpu-high"), chaos.stress_workers("default", "cpu-low"));
    assert_eq!((hp.len(), lp.len()), (1, 1));
    let (h0, l0) = (cpu_ticks(hp[0]), cpu_ticks(lp[0]));
    tokio::time::sleep(Duration::from_secs(2)).await; // a measurement window, not synchronisation
    let (h, l) = (cpu_ticks(hp[0]) - h0, cpu_ticks(lp[0]) - l0);
    println!("StressChaos cpu over 2 s: load 80 → {h} ticks, load 10 → {l} ticks (100 ticks = 1 CPU-second)");
    assert!(h > 0, "the load-80 worker used no CPU");
    assert!(h > l, "load 80 ({h} ticks) burns more than load 10 ({l} ticks)");

    await_conditions(&api, "cpu-high", &[("AllRecovered", "True")]).await;
    await_conditions(&api, "cpu-low", &[("AllRecovered", "True")]).await;
    assert!(chaos.stress_workers("default", "cpu-high").is_empty());
    for name in ["cpu-high", "cpu-low"] {
        delete_and_await_gone(&api, name).await;
    }
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_workers_hold_the_size_until_deleted() {
    const PORT: u16 = 18422;
    let sim = start(1).await;
    let client = sim.client().unwrap();
    servers(&client, "default", "fat", 1, PORT).await;
    let api = chaos_api(&client, "default", "StressChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "StressChaos", "metadata": {"name": "mem"},
            "spec": {"mode": "one", "stressors": {"memory": {"workers": 2, "size": "64MB"}},
                     "selector": {"labelSelectors": {"app": "fat"}}},
        }),
    )
    .await;
    await_injected(&api, "mem").await;
    let pids = sim.chaos().unwrap().stress_workers("default", "mem");
    assert_eq!(pids.len(), 2);
    // Each worker touches its 32 MB right after the fork: poll until it shows. (A forked
    // worker also counts the pages it shares with the test process, which are far fewer.)
    let t0 = std::time::Instant::now();
    let each = loop {
        let each: Vec<u64> = pids.iter().map(|p| rss_bytes(*p)).collect();
        if each.iter().all(|b| *b >= 32_000_000) || t0.elapsed() > PROMPTLY {
            break each;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "StressChaos memory 64MB over 2 workers: resident {:?} MB",
        each.iter().map(|b| b / 1_000_000).collect::<Vec<_>>()
    );
    assert!(each.iter().all(|b| *b >= 32_000_000), "resident bytes per worker: {each:?}");
    delete_and_await_gone(&api, "mem").await;
    assert!(pids.iter().all(|p| !sim::kubelet::runtime::pid_alive(*p)), "workers killed on delete");
    assert_no_leftovers(sim).await;
}
