//! batch/v1 Jobs and CronJobs and v1 ReplicationControllers, run by the embedded kubelets as
//! real processes (`/bin/sh`), driven through kube-rs.
//!
//! Behaviour checked against kube-controller-manager: k/k `pkg/controller/job/job_controller.go`
//! (conditions `SuccessCriteriaMet`/`Complete` with `CompletionsReached`, `FailureTarget`/`Failed`
//! with `BackoffLimitExceeded`, the `batch.kubernetes.io/job-tracking` finalizer, pod labels),
//! `pkg/registry/batch/job/strategy.go` (generated selector), `pkg/controller/cronjob/utils.go`
//! (job names, scheduled-timestamp annotation) and `pkg/controller/replication`.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use sim::kubelet::ImageEntry;
use support::{await_cond, await_cond_within};

/// A cluster whose image `hadrill/sh-ok` runs `/bin/sh -c 'sleep 0.3'`, `hadrill/sh-fail`
/// exits 3 at once, `hadrill/sh-sleep` sleeps 30 s and `hadrill/sh-index` fails unless
/// `JOB_COMPLETION_INDEX` is set.
async fn cluster() -> sim::Sim {
    let config = support::process_config(2);
    config.kubelet.images.insert("hadrill/sh-ok", ImageEntry::new("/bin/sh").with_args(["-c", "sleep 0.3"]));
    config.kubelet.images.insert("hadrill/sh-fail", ImageEntry::new("/bin/sh").with_args(["-c", "exit 3"]));
    config.kubelet.images.insert("hadrill/sh-sleep", ImageEntry::new("/bin/sh").with_args(["-c", "sleep 30"]));
    config.kubelet.images.insert(
        "hadrill/sh-index",
        ImageEntry::new("/bin/sh").with_args(["-c", "test -n \"$JOB_COMPLETION_INDEX\" && sleep 0.2"]),
    );
    support::start_with(config).await
}

fn job(name: &str, image: &str, completions: i32, parallelism: i32, backoff_limit: i32) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": image}]}}},
    }))
    .expect("a Job")
}

fn conditions(job: &Job) -> Vec<(String, String, String)> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason.unwrap_or_default()))
        .collect()
}

fn has_condition(kind: &'static str) -> impl Fn(Option<&Job>) -> bool {
    move |j| j.is_some_and(|j| conditions(j).iter().any(|(t, s, _)| t == kind && s == "True"))
}

/// Pods seen by [`watch_pods`], with whether each carried the tracking finalizer when first seen.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// Watches the Job's pods: the most that were active (neither terminal nor deleted) at once,
/// and every pod seen with whether it carried the tracking finalizer when created.
fn watch_pods(client: kube::Client, job: &str) -> (Arc<Mutex<usize>>, Seen) {
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let max_active = Arc::new(Mutex::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (max, all) = (max_active.clone(), seen.clone());
    let cfg = watcher::Config::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    tokio::spawn(async move {
        let mut active = BTreeSet::new();
        let mut stream = watcher(pods, cfg).boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let (pod, gone) = match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, false),
                watcher::Event::Delete(p) => (p, true),
                _ => continue,
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut seen = all.lock().unwrap();
            if !seen.iter().any(|(n, _)| *n == name) {
                let tracked = pod.metadata.finalizers.iter().flatten().any(|f| f == "batch.kubernetes.io/job-tracking");
                seen.push((name.clone(), tracked));
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            if gone || pod.metadata.deletion_timestamp.is_some() || phase == "Succeeded" || phase == "Failed" {
                active.remove(&name);
            } else {
                active.insert(name);
            }
            let mut max = max.lock().unwrap();
            *max = (*max).max(active.len());
        }
    });
    (max_active, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_of_three_completions_two_at_a_time_completes() {
    let sim = cluster().await;
    let client = sim.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let (max_active, seen) = watch_pods(client.clone(), "three");
    let created = jobs.create(&PostParams::default(), &job("three", "hadrill/sh-ok", 3, 2, 6)).await.unwrap();
    // strategy.go generateSelector: the selector is the Job's uid, the template carries it.
    let uid = created.metadata.uid.clone().unwrap();
    let selector = created.spec.as_ref().and_then(|s| s.selector.clone()).and_then(|s| s.match_labels).unwrap();
    assert_eq!(selector.get("batch.kubernetes.io/controller-uid"), Some(&uid));

    let done =
        await_cond_within(&jobs, "three", "Job three Complete", Duration::from_secs(30), has_condition("Complete"))
            .await
            .unwrap();
    let status = done.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.failed, None, "no pod failed");
    assert_eq!(status.active, None);
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let conds = conditions(&done);
    assert!(conds.contains(&("SuccessCriteriaMet".into(), "True".into(), "CompletionsReached".into())), "{conds:?}");
    assert!(conds.contains(&("Complete".into(), "True".into(), "CompletionsReached".into())), "{conds:?}");

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let list =
        pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}"))).await.unwrap();
    assert_eq!(list.items.len(), 3, "exactly three pods ran");
    for pod in &list.items {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("batch.kubernetes.io/job-name").map(String::as_str), Some("three"));
        assert_eq!(labels.get("job-name").map(String::as_str), Some("three"));
        assert_eq!(labels.get("controller-uid"), Some(&uid));
        assert_eq!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded"));
        assert!(pod.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()), "counted pods keep no finalizer");
    }
    assert_eq!(*max_active.lock().unwrap(), 2, "parallelism 2: two pods at a time, never three");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, tracked)| *tracked), "every pod was created with the tracking finalizer: {seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_job_stops_at_its_backoff_limit() {
    let sim = cluster().await;
    let client = sim.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &job("broken", "hadrill/sh-fail", 1, 1, 1)).await.unwrap();
    // backoffLimit 1: the second failure ends it, after the 10 s pod failure back-off.
    let failed =
        await_cond_within(&jobs, "broken", "Job broken Failed", Duration::from_secs(40), has_condition("Failed"))
            .await
            .unwrap();
    let status = failed.status.clone().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods.list(&ListParams::default().labels("batch.kubernetes.io/job-name=broken")).await.unwrap();
    let phases: Vec<_> = list
        .items
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone(),
                p.status.as_ref().and_then(|s| s.phase.clone()),
                p.metadata.deletion_timestamp.clone(),
            )
        })
        .collect();
    assert_eq!(status.failed, Some(2), "failed > backoffLimit ends the Job: {phases:?} {status:?}");
    assert_eq!(status.succeeded, None);
    let conds = conditions(&failed);
    assert!(conds.contains(&("FailureTarget".into(), "True".into(), "BackoffLimitExceeded".into())), "{conds:?}");
    assert!(conds.contains(&("Failed".into(), "True".into(), "BackoffLimitExceeded".into())), "{conds:?}");
    let message = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Failed").and_then(|c| c.message);
    assert_eq!(message.as_deref(), Some("Job has reached the specified backoff limit"));
    assert_eq!(list.items.len(), 2, "no pod after the limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_past_its_active_deadline_fails_and_its_pods_go() {
    let sim = cluster().await;
    let client = sim.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut j = job("slow", "hadrill/sh-sleep", 1, 1, 6);
    if let Some(spec) = j.spec.as_mut() {
        spec.active_deadline_seconds = Some(1);
    }
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let failed = await_cond(&jobs, "slow", "Job slow Failed", has_condition("Failed")).await.unwrap();
    let conds = conditions(&failed);
    assert!(conds.contains(&("Failed".into(), "True".into(), "DeadlineExceeded".into())), "{conds:?}");
    let message =
        failed.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Failed").and_then(|c| c.message);
    assert_eq!(message.as_deref(), Some("Job was active longer than specified deadline"));
    // The final condition waits until the running pod is gone.
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let left = pods.list(&ListParams::default().labels("batch.kubernetes.io/job-name=slow")).await.unwrap().items;
    assert!(
        left.iter().all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
            || p.metadata.deletion_timestamp.is_some()),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_with_a_ttl_is_deleted() {
    let sim = cluster().await;
    let client = sim.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut j = job("brief", "hadrill/sh-ok", 1, 1, 6);
    if let Some(spec) = j.spec.as_mut() {
        spec.ttl_seconds_after_finished = Some(0);
    }
    let created = jobs.create(&PostParams::default(), &j).await.unwrap();
    // ttlafterfinished_controller.go: deleted (foreground) once finished plus the TTL.
    let uid = created.metadata.uid.unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        kube::runtime::wait::await_condition(jobs.clone(), "brief", kube::runtime::wait::conditions::is_deleted(&uid)),
    )
    .await
    .expect("the Job is deleted after it completed")
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let left = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/controller-uid={uid}")))
        .await
        .unwrap()
        .items;
    assert!(left.is_empty(), "foreground deletion removed its pods first: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_indexed_job_runs_each_index_once() {
    let sim = cluster().await;
    let client = sim.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut j = job("idx", "hadrill/sh-index", 3, 3, 0);
    if let Some(spec) = j.spec.as_mut() {
        spec.completion_mode = Some("Indexed".into());
    }
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let done = await_cond_within(&jobs, "idx", "Job idx Complete", Duration::from_secs(30), has_condition("Complete"))
        .await
        .unwrap();
    let status = done.status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!((status.succeeded, status.failed), (Some(3), None), "JOB_COMPLETION_INDEX was set in every pod");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let list = pods.list(&ListParams::default().labels("batch.kubernetes.io/job-name=idx")).await.unwrap().items;
    let mut seen: Vec<(String, String)> = list
        .iter()
        .map(|p| {
            let index =
                p.metadata.annotations.clone().unwrap_or_default()["batch.kubernetes.io/job-completion-index"].clone();
            (index, p.spec.as_ref().and_then(|s| s.hostname.clone()).unwrap_or_default())
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String)> = (0..3).map(|i| (i.to_string(), format!("idx-{i}"))).collect();
    assert_eq!(seen, want, "one pod per index, named by it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_without_a_supported_restart_policy_is_refused() {
    let sim = support::start(1).await;
    let jobs: Api<Job> = Api::namespaced(sim.client().unwrap(), "default");
    let mut j = job("always", "x", 1, 1, 1);
    if let Some(spec) = j.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.restart_policy = None;
    }
    let err = jobs.create(&PostParams::default(), &j).await.unwrap_err();
    let kube::Error::Api(s) = err else { panic!("{err}") };
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains(
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        ),
        "{}",
        s.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cronjob_creates_jobs_on_schedule() {
    let sim = cluster().await;
    let client = sim.client().unwrap();
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cj: CronJob = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"metadata": {"labels": {"app": "tick"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "hadrill/sh-ok"}]}}}}},
    }))
    .unwrap();
    let created = cronjobs.create(&PostParams::default(), &cj).await.unwrap();
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Allow"));
    assert_eq!((spec.successful_jobs_history_limit, spec.failed_jobs_history_limit), (Some(3), Some(1)));
    // A run missed three minutes ago (as after a controller outage) is made up for at once:
    // only the latest missed time runs (cronjob utils.go mostRecentScheduleTime).
    let three_minutes_ago = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(180);
    let stamp = k8s_openapi::jiff::Timestamp::from_second(three_minutes_ago.as_second()).unwrap().to_string();
    cronjobs
        .patch_status("tick", &PatchParams::default(), &Patch::Merge(json!({"status": {"lastScheduleTime": stamp}})))
        .await
        .unwrap();
    let expected_minute = k8s_openapi::jiff::Timestamp::now().as_second() / 60;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let ran =
        await_cond_within(&cronjobs, "tick", "a Job to complete", Duration::from_secs(30), |c: Option<&CronJob>| {
            c.and_then(|c| c.status.as_ref()).is_some_and(|s| s.last_successful_time.is_some())
        })
        .await
        .unwrap();
    let list = jobs.list(&ListParams::default().labels("app=tick")).await.unwrap();
    assert_eq!(list.items.len(), 1, "one Job for the latest missed minute, not one per minute");
    let made = &list.items[0];
    let name = made.metadata.name.clone().unwrap();
    let minute: i64 = name.strip_prefix("tick-").and_then(|m| m.parse().ok()).unwrap_or_else(|| panic!("{name}"));
    assert!((expected_minute - 1..=expected_minute).contains(&minute), "{name} vs minute {expected_minute}");
    let owner = made.metadata.owner_references.clone().unwrap_or_default();
    assert!(owner.iter().any(|o| o.kind == "CronJob" && o.name == "tick" && o.controller == Some(true)));
    let annotation = made.metadata.annotations.clone().unwrap_or_default();
    let scheduled = annotation.get("batch.kubernetes.io/cronjob-scheduled-timestamp").expect("scheduled timestamp");
    let scheduled: k8s_openapi::jiff::Timestamp = scheduled.parse().unwrap();
    assert_eq!(scheduled.as_second(), minute * 60);
    let status = ran.status.unwrap();
    assert_eq!(status.last_schedule_time.map(|t| t.0.as_second()), Some(minute * 60));
    let done = await_cond(&cronjobs, "tick", "no active Job", |c: Option<&CronJob>| {
        c.and_then(|c| c.status.as_ref()).is_some_and(|s| s.active.as_ref().is_none_or(|a| a.is_empty()))
    })
    .await;
    assert!(done.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replication_controller_keeps_its_replicas() {
    let sim = support::start(2).await;
    let client = sim.client().unwrap();
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let rc: ReplicationController = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "virtual/web"}]}}},
    }))
    .unwrap();
    let created = rcs.create(&PostParams::default(), &rc).await.unwrap();
    // SetDefaults_ReplicationController: selector and labels from the template.
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.selector.clone()).unwrap().get("app").map(String::as_str),
        Some("web")
    );
    let ready = |n: i32| {
        move |r: Option<&ReplicationController>| {
            r.and_then(|r| r.status.as_ref()).is_some_and(|s| s.ready_replicas == Some(n) && s.replicas == n)
        }
    };
    await_cond(&rcs, "web", "3 ready replicas", ready(3)).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let before = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
    assert_eq!(before.len(), 3);
    let victim = before[0].metadata.name.clone().unwrap();
    let victim_uid = before[0].metadata.uid.clone().unwrap();
    pods.delete(&victim, &DeleteParams::default()).await.unwrap();
    support::await_deleted(&pods, &victim, &victim_uid).await;
    await_cond(&rcs, "web", "a replacement", ready(3)).await;
    let after = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
    let names: BTreeSet<String> = after.iter().filter_map(|p| p.metadata.name.clone()).collect();
    assert_eq!(names.len(), 3);
    assert!(!names.contains(&victim), "the deleted pod was replaced, not kept");
    for p in &after {
        let owner = p.metadata.owner_references.clone().unwrap_or_default();
        assert!(owner.iter().any(|o| o.kind == "ReplicationController" && o.api_version == "v1" && o.name == "web"));
    }
    // The scale subresource: a plain-map selector rendered as a label query.
    let scale = rcs.get_scale("web").await.unwrap();
    assert_eq!(scale.status.and_then(|s| s.selector).as_deref(), Some("app=web"));
    rcs.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await.unwrap();
    await_cond(&rcs, "web", "1 replica", ready(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apiservices_and_webhook_configurations_are_stored_and_listed() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let raw = support::Raw::new(&sim);
    let cases: [(&str, Value); 3] = [
        (
            "/apis/apiregistration.k8s.io/v1/apiservices",
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
                "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                    "service": {"namespace": "kube-system", "name": "metrics-server"}}}),
        ),
        (
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "check"},
                "webhooks": [{"name": "check.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                    "clientConfig": {"url": "https://127.0.0.1:1/check"}}]}),
        ),
        (
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "mutate"},
                "webhooks": [{"name": "mutate.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                    "clientConfig": {"url": "https://127.0.0.1:1/mutate"}}]}),
        ),
    ];
    for (path, body) in &cases {
        let r = raw.send("POST", path, "application/json", &body.to_string()).await;
        assert_eq!(r.status, 201, "{path}: {}", r.body);
        let list = raw.get(path).await.json();
        let names: Vec<&str> =
            list["items"].as_array().unwrap().iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
        assert_eq!(names, [body["metadata"]["name"].as_str().unwrap()], "{path}");
    }
    // Webhooks are stored, not called: the configured URL (nothing listens there) does not stop
    // a ConfigMap create.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "default");
    let cm = serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "b"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let groups = raw.get("/apis").await.json();
    let served: Vec<&str> = groups["groups"].as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
    for g in ["apiregistration.k8s.io", "admissionregistration.k8s.io", "batch", "policy"] {
        assert!(served.contains(&g), "{g} in {served:?}");
    }
}
