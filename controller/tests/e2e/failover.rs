//! Failover decisions on the embedded cluster, white box.

use hadrill_controller::annotations::{self, ACTIVE, DWELL, FAILBACK, FAILBACK_AFTER, PRIMARY, STANDBY};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::*;

fn note(e: &k8s_openapi::api::events::v1::Event) -> &str {
    e.note.as_deref().unwrap_or_default()
}

fn reason(e: &k8s_openapi::api::events::v1::Event) -> &str {
    e.reason.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_primary_pods_unhealthy_switches_to_the_standby() {
    let env = Env::start().await;
    let ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[]).await;
    let before = env.await_service("dispatch", "selector on primary", |s| selects(s) == Some("dispatch-a")).await;
    assert!(before.annotations().get(annotations::SWITCHED_AT).is_none(), "no switch yet");

    // One pod not Ready, the other on a node that stopped reporting.
    env.set_ready(&pair.primary_pods[0], false).await;
    env.set_node_ready(NODE2, "Unknown").await;

    let svc = env.await_service("dispatch", "switch to standby", |s| selects(s) == Some("dispatch-b")).await;
    assert_eq!(active(&svc), Some("standby"));
    let at = svc.annotations().get(annotations::SWITCHED_AT).expect("switched-at");
    assert!(at.parse::<Timestamp>().is_ok(), "{at} is RFC 3339");
    assert_eq!(at.len(), "2026-11-03T10:15:30.123Z".len(), "{at} has milliseconds");
    let c = condition(&svc).expect("condition");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "ActiveHealthy"));

    let e = env.await_event("dispatch", "FailedOver event", |e| reason(e) == "FailedOver").await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(
        note(&e),
        "primary deployment/dispatch-a unhealthy (dispatch-a-0: not Ready; dispatch-a-1: node hadrill-worker2 Unknown); \
         switched to standby statefulset/dispatch-b"
    );
    assert_eq!(e.reporting_instance.as_deref(), Some("ctl-0"));
    assert_eq!(ctl.handle.metrics.switches("FailedOver"), 1);
    assert!(ctl.handle.metrics.encode().contains("hadrill_detection_to_switch_seconds_count 1"));
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_primary_pods_unhealthy_does_not_switch() {
    let env = Env::start().await;
    let ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[]).await;
    env.set_ready(&pair.primary_pods[0], false).await;
    let svc = env
        .await_service("dispatch", "condition naming the unhealthy pod", |s| {
            condition(s).is_some_and(|c| c.message.contains("1/2 pods healthy (dispatch-a-0: not Ready)"))
        })
        .await;
    assert_eq!(selects(&svc), Some("dispatch-a"));
    assert_eq!(active(&svc), Some("primary"));
    assert_eq!(condition(&svc).map(|c| c.reason), Some("ActiveHealthy".to_string()));
    assert_eq!(ctl.handle.metrics.switches("FailedOver"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_primary_switches() {
    let env = Env::start().await;
    let _ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[]).await;
    for pod in &pair.primary_pods {
        env.crash_loop(pod, 4).await;
    }
    env.await_service("dispatch", "switch to standby", |s| selects(s) == Some("dispatch-b")).await;
    let e = env.await_event("dispatch", "FailedOver event", |e| reason(e) == "FailedOver").await;
    assert!(
        note(&e).starts_with(
            "primary deployment/dispatch-a unhealthy (dispatch-a-0: CrashLoopBackOff, restarts 4; dispatch-a-1: CrashLoopBackOff, restarts 4)"
        ),
        "{}",
        note(&e)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_rising_within_the_window_make_ready_pods_unhealthy() {
    let env = Env::start().await;
    let _ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[]).await;
    // Seen with 0 restarts at adoption; now Ready again after a restart each.
    for pod in &pair.primary_pods {
        env.pod_status(pod, ready_status(true, None, 1)).await;
    }
    env.await_service("dispatch", "switch to standby", |s| selects(s) == Some("dispatch-b")).await;
    let e = env.await_event("dispatch", "FailedOver event", |e| reason(e) == "FailedOver").await;
    assert!(note(&e).contains("dispatch-a-0: restarts 1 (+1 within 2m)"), "{}", note(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_unhealthy_changes_nothing_and_warns() {
    let env = Env::start().await;
    let ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[]).await;
    for pod in &pair.standby_pods {
        env.set_ready(pod, false).await;
    }
    for pod in &pair.primary_pods {
        env.crash_loop(pod, 2).await;
    }
    let svc = env
        .await_service("dispatch", "BothUnhealthy condition", |s| {
            condition(s)
                .is_some_and(|c| c.reason == "BothUnhealthy" && c.message.contains("dispatch-a-1: CrashLoopBackOff"))
        })
        .await;
    assert_eq!(selects(&svc), Some("dispatch-a"), "no switch to an unhealthy standby");
    assert_eq!(active(&svc), Some("primary"));
    assert_eq!(condition(&svc).map(|c| c.status), Some("False".to_string()));
    let e = env
        .await_event("dispatch", "BothUnhealthy event", |e| {
            reason(e) == "BothUnhealthy" && note(e).contains("dispatch-a-1: CrashLoopBackOff")
        })
        .await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert!(
        note(&e)
            .contains("standby statefulset/dispatch-b unhealthy (dispatch-b-0: not Ready; dispatch-b-1: not Ready)")
    );
    assert_eq!(ctl.handle.metrics.switches("FailedOver"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dwell_time_prevents_flapping() {
    let env = Env::start().await;
    let _ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[(DWELL, "3s")]).await;
    for pod in &pair.primary_pods {
        env.set_ready(pod, false).await;
    }
    let first = env.await_service("dispatch", "failover", |s| selects(s) == Some("dispatch-b")).await;
    let first_at: Timestamp =
        first.annotations().get(annotations::SWITCHED_AT).expect("switched-at").parse().expect("timestamp");

    // The primary recovers and the standby fails right away: the way back waits for the dwell time.
    for pod in &pair.primary_pods {
        env.set_ready(pod, true).await;
    }
    for pod in &pair.standby_pods {
        env.set_ready(pod, false).await;
    }
    let held = env
        .await_service("dispatch", "FailoverDelayed", |s| condition(s).is_some_and(|c| c.reason == "FailoverDelayed"))
        .await;
    assert_eq!(selects(&held), Some("dispatch-b"), "still on the standby within the dwell time");
    env.await_event("dispatch", "FailoverDelayed event", |e| reason(e) == "FailoverDelayed").await;

    let back = env.await_service("dispatch", "failover after dwell", |s| selects(s) == Some("dispatch-a")).await;
    let back_at: Timestamp =
        back.annotations().get(annotations::SWITCHED_AT).expect("switched-at").parse().expect("ts");
    let gap = back_at.duration_since(first_at);
    assert!(gap.as_secs_f64() >= 3.0, "second switch {gap:?} after the first, dwell is 3s");
    let e = env.await_event("dispatch", "second FailedOver", |e| {
        reason(e) == "FailedOver" && note(e).starts_with("standby statefulset/dispatch-b unhealthy")
    });
    e.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_failback_after_the_primary_is_healthy_again() {
    let env = Env::start().await;
    let ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[(FAILBACK, "auto"), (FAILBACK_AFTER, "1s")]).await;
    for pod in &pair.primary_pods {
        env.set_ready(pod, false).await;
    }
    env.await_service("dispatch", "failover", |s| selects(s) == Some("dispatch-b")).await;
    env.set_ready(&pair.primary_pods[1], true).await;
    let back = env.await_service("dispatch", "failback", |s| selects(s) == Some("dispatch-a")).await;
    assert_eq!(active(&back), Some("primary"));
    let e = env.await_event("dispatch", "FailedBack event", |e| reason(e) == "FailedBack").await;
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert!(note(&e).starts_with("primary deployment/dispatch-a healthy for"), "{}", note(&e));
    assert_eq!(ctl.handle.metrics.switches("FailedBack"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failback_waits_for_the_operator() {
    let env = Env::start().await;
    let _ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[(FAILBACK, "manual"), (FAILBACK_AFTER, "0s")]).await;
    for pod in &pair.primary_pods {
        env.set_ready(pod, false).await;
    }
    env.await_service("dispatch", "failover", |s| selects(s) == Some("dispatch-b")).await;
    for pod in &pair.primary_pods {
        env.set_ready(pod, true).await;
    }
    let waiting = env
        .await_service("dispatch", "manual failback hint", |s| {
            condition(s).is_some_and(|c| c.message.contains("failback is manual"))
        })
        .await;
    assert_eq!(selects(&waiting), Some("dispatch-b"), "no automatic failback");

    // The operator fails back, as with `kubectl annotate --overwrite`.
    let patch = json!({"metadata": {"annotations": {ACTIVE: "primary"}}});
    env.services()
        .patch(
            "dispatch",
            &PatchParams { field_manager: Some("kubectl-annotate".into()), ..Default::default() },
            &Patch::Merge(&patch),
        )
        .await
        .expect("annotate");
    env.await_service("dispatch", "manual failback", |s| selects(s) == Some("dispatch-a")).await;
    let e = env.await_event("dispatch", "Switched event", |e| reason(e) == "Switched").await;
    assert!(note(&e).contains("primary deployment/dispatch-a selected as requested"), "{}", note(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_request_for_an_unhealthy_side_is_refused() {
    let env = Env::start().await;
    let _ctl = env.start_controller(settings("ctl-0"));
    let pair = env.pair("dispatch", &[]).await;
    for pod in &pair.standby_pods {
        env.set_ready(pod, false).await;
    }
    env.await_service("dispatch", "standby seen unhealthy", |s| {
        condition(s).is_some_and(|c| c.message.contains("standby statefulset/dispatch-b unhealthy"))
    })
    .await;
    let patch = json!({"metadata": {"annotations": {ACTIVE: "standby"}}});
    env.services().patch("dispatch", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
    let e = env.await_event("dispatch", "SwitchRefused", |e| reason(e) == "SwitchRefused").await;
    assert!(note(&e).ends_with("keeping primary deployment/dispatch-a"), "{}", note(&e));
    let svc = env.await_service("dispatch", "active back to primary", |s| active(s) == Some("primary")).await;
    assert_eq!(selects(&svc), Some("dispatch-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_annotations_are_reported_and_nothing_switches() {
    let env = Env::start().await;
    let _ctl = env.start_controller(settings("ctl-0"));
    env.deployment("app-a", 1).await;
    // The standby's selector uses matchExpressions.
    let sts: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "app-b"},
        "spec": {"replicas": 1, "serviceName": "app-b",
            "selector": {"matchLabels": {"app": "app-b"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]},
            "template": {"metadata": {"labels": {"app": "app-b", "tier": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }))
    .expect("sts");
    kube::Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(env.admin.clone(), NS)
        .create(&Default::default(), &sts)
        .await
        .expect("create sts");
    let cases = [
        (
            "malformed",
            "app-a",
            "statefulset/app-b",
            "annotation failover.hadrill.io/primary: malformed workload reference \"app-a\"",
        ),
        ("missing", "deployment/nope", "statefulset/app-b", "primary deployment/nope not found"),
        (
            "expressions",
            "deployment/app-a",
            "statefulset/app-b",
            "standby statefulset/app-b has an unusable selector: it uses matchExpressions",
        ),
    ];
    for (name, primary, standby, want) in cases {
        env.service(name, "app-a", &[(PRIMARY, primary), (STANDBY, standby)]).await;
        let e = env.await_event(name, want, |e| reason(e) == "InvalidConfig" && note(e).starts_with(want)).await;
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        let svc = env
            .await_service(name, "InvalidConfig condition", |s| {
                condition(s).is_some_and(|c| c.reason == "InvalidConfig")
            })
            .await;
        assert_eq!(selects(&svc), Some("app-a"), "{name}: selector untouched");
        assert_eq!(active(&svc), None, "{name}: nothing recorded as active");
    }
    // Fixing the annotation clears the condition.
    let patch = json!({"metadata": {"annotations": {PRIMARY: "deployment/app-a", STANDBY: "deployment/app-a-2"}}});
    env.deployment("app-a-2", 1).await;
    env.services().patch("malformed", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("fix");
    env.await_service("malformed", "valid again", |s| condition(s).is_some_and(|c| c.reason == "ActiveHealthy")).await;
}
