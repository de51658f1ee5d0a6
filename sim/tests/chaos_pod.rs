//! PodChaos against the embedded cluster, with the test server as real processes: each
//! action's effect measured, its recovery, its status, and nothing left behind.

mod chaos_support;
mod support;

use std::time::Duration;

use chaos_support::*;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

fn restart_count(p: &Pod) -> i32 {
    p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first()).map_or(0, |c| c.restart_count)
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_kill_replaces_the_pod_and_is_one_shot() {
    const PORT: u16 = 18401;
    let sim = start(1).await;
    let client = sim.client().unwrap();
    let before = servers(&client, "default", "killme", 2, PORT).await;
    let api = chaos_api(&client, "default", "PodChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "PodChaos", "metadata": {"name": "kill-one"},
            // One-shot: the duration is ignored.
            "spec": {"action": "pod-kill", "mode": "one", "gracePeriod": 0, "duration": "1s",
                     "selector": {"labelSelectors": {"app": "killme"}}},
        }),
    )
    .await;
    let created = std::time::Instant::now();
    let injected = await_injected(&api, "kill-one").await;
    let ids = record_ids(&injected);
    assert_eq!(ids.len(), 1, "mode one: {ids:?}");
    assert_eq!(injected.metadata.finalizers.as_deref(), Some(&["chaos-mesh/records".to_string()][..]));
    assert_eq!(condition(&injected, "AllRecovered").as_deref(), Some("False"), "one-shot: never recovered");
    assert_eq!(injected.data["status"]["experiment"]["desiredPhase"], "Run");

    // The killed pod is gone and the Deployment replaced it.
    let victim =
        before.iter().find(|p| ids[0] == format!("default/{}", p.metadata.name.as_deref().unwrap())).expect("victim");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let uid = victim.metadata.uid.clone().unwrap();
    tokio::time::timeout(
        PROMPTLY,
        await_condition(
            pods.clone(),
            victim.metadata.name.as_deref().unwrap(),
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await
    .expect("the victim is deleted")
    .unwrap();
    let deps: Api<k8s_openapi::api::apps::v1::Deployment> = Api::default_namespaced(client.clone());
    wait_for(&deps, "killme", "2 available again", |d: Option<&k8s_openapi::api::apps::v1::Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.available_replicas == Some(2) && s.replicas == Some(2))
    })
    .await;
    let after = pods_of(&client, "default", "killme").await;
    assert!(after.iter().all(|p| p.metadata.uid.as_deref() != Some(uid.as_str())), "the victim was replaced");

    // Past the duration nothing changes for a one-shot action (nothing to watch for: wait it out).
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(created.elapsed())).await;
    let later = api.get("kill-one").await.unwrap();
    assert_eq!(condition(&later, "AllRecovered").as_deref(), Some("False"));
    assert_eq!(later.data["status"]["experiment"]["desiredPhase"], "Run");
    assert_eq!(record_ids(&later), ids, "no second selection");

    // Events as Chaos Mesh records them.
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let reasons: Vec<String> = events
        .list(&ListParams::default().fields("involvedObject.name=kill-one"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.contains(&"FinalizerInited".to_string()) && reasons.contains(&"Applied".to_string()),
        "{reasons:?}"
    );

    delete_and_await_gone(&api, "kill-one").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn container_kill_kills_the_process_and_the_kubelet_restarts_it() {
    const PORT: u16 = 18402;
    let sim = start(1).await;
    let client = sim.client().unwrap();
    let pod = servers(&client, "default", "ck", 1, PORT).await.remove(0);
    let name = pod.metadata.name.clone().unwrap();
    assert_eq!(restart_count(&pod), 0);
    let api = chaos_api(&client, "default", "PodChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "PodChaos", "metadata": {"name": "ck"},
            "spec": {"action": "container-kill", "mode": "all", "containerNames": ["server"],
                     "selector": {"pods": {"default": [name]}}},
        }),
    )
    .await;
    let injected = await_injected(&api, "ck").await;
    assert_eq!(record_ids(&injected), vec![format!("default/{name}/server")]);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let restarted = wait_for(&pods, &name, "restarted once and ready", |p: Option<&Pod>| {
        p.is_some_and(|p| {
            restart_count(p) == 1
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
    })
    .await;
    let last = restarted.status.unwrap().container_statuses.unwrap().remove(0).last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 137, "killed by SIGKILL");
    assert_eq!(who(pod_addr(&pod, PORT), Duration::from_secs(2)).await.unwrap(), name, "serves again");
    delete_and_await_gone(&api, "ck").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_failure_stops_serving_for_the_duration_while_the_pod_stays_running() {
    const PORT: u16 = 18403;
    let sim = start(1).await;
    let client = sim.client().unwrap();
    let pod = servers(&client, "default", "pf", 1, PORT).await.remove(0);
    let name = pod.metadata.name.clone().unwrap();
    let addr = pod_addr(&pod, PORT);
    let api = chaos_api(&client, "default", "PodChaos");
    create_chaos(&client, "default", json!({
        "kind": "PodChaos", "metadata": {"name": "pf"},
        "spec": {"action": "pod-failure", "mode": "all", "duration": "4s", "selector": {"labelSelectors": {"app": "pf"}}},
    }))
    .await;
    await_injected(&api, "pf").await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let failed = pods.get(&name).await.unwrap();
    assert_eq!(failed.spec.as_ref().unwrap().containers[0].image.as_deref(), Some(sim::chaos::DEFAULT_PAUSE_IMAGE));
    until(addr, "the server stops answering", |r| r.is_err()).await;
    wait_for(&pods, &name, "NotReady (the probe fails) but Running", |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "False")
        })
    })
    .await;

    // The duration runs out: recovered, the object kept, the image back, serving again.
    let recovered = await_conditions(&api, "pf", &[("AllRecovered", "True"), ("AllInjected", "False")]).await;
    assert_eq!(recovered.data["status"]["experiment"]["desiredPhase"], "Stop");
    let back = pods.get(&name).await.unwrap();
    assert_eq!(back.spec.unwrap().containers[0].image.as_deref(), Some("hadrill/test-server:dev"));
    until(addr, "the server answers again", |r| r.as_ref().is_ok_and(|n| *n == name)).await;
    delete_and_await_gone(&api, "pf").await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_recovers_and_resume_injects_again() {
    const PORT: u16 = 18404;
    let sim = start(1).await;
    let client = sim.client().unwrap();
    let pod = servers(&client, "default", "pz", 1, PORT).await.remove(0);
    let name = pod.metadata.name.clone().unwrap();
    let addr = pod_addr(&pod, PORT);
    let api = chaos_api(&client, "default", "PodChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "PodChaos", "metadata": {"name": "pz"},
            "spec": {"action": "pod-failure", "mode": "all", "selector": {"labelSelectors": {"app": "pz"}}},
        }),
    )
    .await;
    await_injected(&api, "pz").await;
    until(addr, "failed", |r| r.is_err()).await;

    let pause = |on: bool| {
        let v = if on { json!("true") } else { serde_json::Value::Null };
        json!({"metadata": {"annotations": {"experiment.chaos-mesh.org/pause": v}}})
    };
    api.patch("pz", &PatchParams::default(), &Patch::Merge(pause(true))).await.unwrap();
    let paused = await_conditions(&api, "pz", &[("Paused", "True"), ("AllRecovered", "True")]).await;
    assert_eq!(paused.data["status"]["experiment"]["containerRecords"][0]["recoveredCount"], 1);
    until(addr, "serving while paused", |r| r.as_ref().is_ok_and(|n| *n == name)).await;

    api.patch("pz", &PatchParams::default(), &Patch::Merge(pause(false))).await.unwrap();
    let resumed = await_conditions(&api, "pz", &[("Paused", "False"), ("AllInjected", "True")]).await;
    assert_eq!(resumed.data["status"]["experiment"]["containerRecords"][0]["injectedCount"], 2);
    until(addr, "failed again", |r| r.is_err()).await;

    // Delete recovers before the object goes.
    delete_and_await_gone(&api, "pz").await;
    until(addr, "serving after delete", |r| r.as_ref().is_ok_and(|n| *n == name)).await;
    assert_no_leftovers(sim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_selector_matching_nothing_is_reported_and_deletes_cleanly() {
    let sim = start(1).await;
    let client = sim.client().unwrap();
    let api = chaos_api(&client, "default", "PodChaos");
    create_chaos(
        &client,
        "default",
        json!({
            "kind": "PodChaos", "metadata": {"name": "nobody"},
            "spec": {"action": "pod-kill", "mode": "one", "selector": {"labelSelectors": {"app": "nobody"}}},
        }),
    )
    .await;
    let obj = await_conditions(&api, "nobody", &[("Selected", "False")]).await;
    assert!(record_ids(&obj).is_empty());
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let list = events.list(&ListParams::default().fields("involvedObject.name=nobody")).await.unwrap().items;
    assert!(
        list.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.message.as_deref().is_some_and(|m| m.contains("Failed to select targets"))),
        "{list:?}"
    );
    delete_and_await_gone(&api, "nobody").await;
    assert_no_leftovers(sim).await;
}
