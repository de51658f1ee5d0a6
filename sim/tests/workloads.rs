//! The workload controllers (Deployment, ReplicaSet, StatefulSet, Endpoints, EndpointSlice),
//! driven through kube-rs. There is no kubelet here: the tests play its part, binding pods and
//! writing their status through the API, then watch what the controllers do.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use sim::Sim;
use sim::api::ops::{DeleteOptions, PatchKind, Subresource, WriteCtx};
use support::await_cond;

const NODE: &str = "hadrill-worker";

/// Pod IPs handed out by the fake kubelet: 127.11.0.1, 127.11.0.2, ...
static NEXT_IP: AtomicU32 = AtomicU32::new(1);

fn next_ip() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::SeqCst);
    format!("127.11.{}.{}", n / 250, n % 250 + 1)
}

fn pods_rt(sim: &Sim) -> Arc<sim::api::resources::ResourceType> {
    sim.api().resource("", "v1", "pods").expect("pods are served")
}

fn pod_json(sim: &Sim, ns: &str, name: &str) -> Option<Arc<Value>> {
    sim.api().get(&pods_rt(sim), ns, name).ok()
}

/// Plays the kubelet for one pod: binds it (if needed) and writes phase, IP and readiness.
fn kubelet_status(sim: &Sim, ns: &str, name: &str, phase: &str, ready: bool) {
    let api = sim.api();
    let Some(pod) = pod_json(sim, ns, name) else { return };
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        api.bind(ns, name, NODE).expect("bind");
    }
    let ip = pod["status"]["podIP"].as_str().map(str::to_string).unwrap_or_else(next_ip);
    let now = sim::api::ops::now_rfc3339();
    let was_ready = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .filter(|c| c["status"] == if ready { "True" } else { "False" })
        .map(|c| c["lastTransitionTime"].clone());
    let flag = if ready { "True" } else { "False" };
    let status = json!({"status": {
        "phase": phase,
        "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": was_ready.unwrap_or(json!(now))},
        ],
    }});
    let ctx = WriteCtx::controller("kubelet");
    match api.patch(&pods_rt(sim), ns, name, PatchKind::Merge, status, Subresource::Status, &ctx) {
        Ok(_) => {}
        Err(e) if e.code == 404 => {}
        Err(e) => panic!("pod status update of {name}: {e}"),
    }
}

fn make_ready(sim: &Sim, ns: &str, name: &str) {
    kubelet_status(sim, ns, name, "Running", true);
}

/// Completes the graceful deletion of a terminating pod, as its kubelet would.
fn finish_termination(sim: &Sim, ns: &str, name: &str) {
    let opts = DeleteOptions { grace_period: Some(0), ..Default::default() };
    match sim.api().delete(&pods_rt(sim), ns, name, &opts) {
        Ok(_) => {}
        Err(e) if e.code == 404 => {}
        Err(e) => panic!("finishing the deletion of {name}: {e}"),
    }
}

/// A kubelet for every pod of the cluster: new pods are bound and become Running and Ready at
/// once, terminating pods are removed.
struct FakeKubelet {
    task: tokio::task::JoinHandle<()>,
}

impl FakeKubelet {
    fn start(sim: &Sim) -> Self {
        let mut events = sim.api().store.subscribe();
        let api = sim.api().clone();
        let task = tokio::spawn(async move {
            let pods = api.resource("", "v1", "pods").expect("pods are served");
            while let Some((gr, e)) = events.recv().await {
                if gr.resource != "pods" || e.kind == sim::api::store::EventType::Deleted {
                    continue;
                }
                let (ns, name) = sim::api::store::key_of(&e.object);
                if !e.object["metadata"]["deletionTimestamp"].is_null() {
                    let opts = DeleteOptions { grace_period: Some(0), ..Default::default() };
                    let _ = api.delete(&pods, &ns, &name, &opts);
                } else if e.kind == sim::api::store::EventType::Added {
                    let _ = api.bind(&ns, &name, NODE);
                    let ip = next_ip();
                    let now = sim::api::ops::now_rfc3339();
                    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                                       {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let ctx = WriteCtx::controller("kubelet");
                    let _ = api.patch(&pods, &ns, &name, PatchKind::Merge, status, Subresource::Status, &ctx);
                }
            }
        });
        FakeKubelet { task }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]},
    })
}

fn deployment(name: &str, replicas: i32, extra_spec: Value) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template(name, "hadrill/test-server:1"),
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("deployment")
}

async fn pods_of(client: &kube::Client, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    api.list(&ListParams::default().labels(selector)).await.expect("list pods").items
}

fn active(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Failed" | "Succeeded")))
        .collect()
}

fn cond<'a>(d: &'a Deployment, kind: &str) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

fn dstatus(d: &Deployment) -> (i32, i32, i32, i32) {
    let s = d.status.clone().unwrap_or_default();
    (
        s.replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

/// Waits until the named object satisfies `f`.
async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, f: F) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&K) -> bool + Send + 'static,
{
    await_cond(api, name, what, move |o: Option<&K>| o.is_some_and(&f)).await.expect("object exists")
}

/// Waits until the pods matching `selector` satisfy `f`, re-checking on every pod event.
async fn wait_pods<F>(client: &kube::Client, selector: &str, what: &str, f: F) -> Vec<Pod>
where
    F: Fn(&[Pod]) -> bool,
{
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let mut stream = watcher(api, watcher::Config::default().labels(selector)).boxed();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut state: BTreeMap<String, Pod> = BTreeMap::new();
    let mut init: BTreeMap<String, Pod> = BTreeMap::new();
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; pods: {:?}", state.keys()))
            .expect("watch stream ended");
        // A watch error (e.g. 410 Gone) makes the watcher re-list: keep going.
        let Ok(ev) = ev else { continue };
        match ev {
            watcher::Event::Init => init.clear(),
            watcher::Event::InitApply(p) => {
                init.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            watcher::Event::InitDone => state = std::mem::take(&mut init),
            watcher::Event::Apply(p) => {
                state.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            watcher::Event::Delete(p) => {
                state.remove(p.metadata.name.as_deref().unwrap_or_default());
            }
        }
        let pods: Vec<Pod> = state.values().cloned().collect();
        if f(&pods) {
            return pods;
        }
    }
}

fn names(pods: &[&Pod]) -> BTreeSet<String> {
    pods.iter().filter_map(|p| p.metadata.name.clone()).collect()
}

#[tokio::test]
async fn deployment_creates_a_replicaset_and_pods_and_becomes_available() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let d = deploys.create(&PostParams::default(), &deployment("web", 2, json!({}))).await.unwrap();
    let d_uid = d.metadata.uid.clone().unwrap();

    let pods = wait_pods(&client, "app=web", "2 pods", |p| p.len() == 2).await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let rs_list = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(rs_list.len(), 1);
    let rs = &rs_list[0];
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Deployment", d_uid.as_str()));
    assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    let ann = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["deployment.kubernetes.io/revision"], "1");
    assert_eq!(ann["deployment.kubernetes.io/desired-replicas"], "2");
    assert_eq!(ann["deployment.kubernetes.io/max-replicas"], "3");
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.selector.match_labels.as_ref().unwrap()["pod-template-hash"], hash);
    assert_eq!(
        spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap()["pod-template-hash"],
        hash
    );
    for p in &pods {
        let name = p.metadata.name.clone().unwrap();
        assert!(name.starts_with(&format!("web-{hash}-")), "{name}");
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!((labels["app"].as_str(), labels["pod-template-hash"].as_str()), ("web", hash.as_str()));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(Some(&owner.uid), rs.metadata.uid.as_ref());
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    }

    // Not ready yet: the Deployment is not available.
    let d = wait_for(&deploys, "web", "status observed", |d| dstatus(d).0 == 2).await;
    assert_eq!(cond(&d, "Available").unwrap().status, "False");
    assert_eq!(cond(&d, "Available").unwrap().reason.as_deref(), Some("MinimumReplicasUnavailable"));
    assert_eq!(d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"], "1");

    for p in &pods {
        make_ready(&sim, "default", p.metadata.name.as_deref().unwrap());
    }
    let d = wait_for(&deploys, "web", "available", |d| {
        dstatus(d) == (2, 2, 2, 2)
            && cond(d, "Progressing").is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    })
    .await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.observed_generation, d.metadata.generation);
    assert_eq!(s.unavailable_replicas.unwrap_or(0), 0);
    let avail = cond(&d, "Available").unwrap();
    assert_eq!((avail.status.as_str(), avail.reason.as_deref()), ("True", Some("MinimumReplicasAvailable")));
    assert_eq!(avail.message.as_deref(), Some("Deployment has minimum availability."));
    let prog = cond(&d, "Progressing").unwrap();
    assert_eq!(prog.status, "True");
    assert_eq!(
        prog.message.as_deref(),
        Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.").as_str())
    );
    let rs = rss.get(&format!("web-{hash}")).await.unwrap();
    let rs_status = rs.status.unwrap();
    assert_eq!(
        (rs_status.replicas, rs_status.ready_replicas, rs_status.available_replicas, rs_status.fully_labeled_replicas),
        (2, Some(2), Some(2), Some(2))
    );
    assert_eq!(rs_status.observed_generation, rs.metadata.generation);
}

fn pod_names(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().filter_map(|p| p.metadata.name.clone()).collect()
}

fn hash_of(p: &Pod) -> String {
    p.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash").cloned()).unwrap_or_default()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn scale(deploys: &Api<Deployment>, name: &str, replicas: i32) {
    let patch = json!({"spec": {"replicas": replicas}});
    deploys.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

#[tokio::test]
async fn deployment_scales_up_and_down() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let _kubelet = FakeKubelet::start(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys.create(&PostParams::default(), &deployment("scaled", 3, json!({}))).await.unwrap();
    wait_for(&deploys, "scaled", "3 available", |d| dstatus(d) == (3, 3, 3, 3)).await;

    scale(&deploys, "scaled", 5).await;
    let d = wait_for(&deploys, "scaled", "5 available", |d| dstatus(d) == (5, 5, 5, 5)).await;
    assert_eq!(cond(&d, "Available").unwrap().status, "True");
    assert_eq!(active(&pods_of(&client, "app=scaled").await).len(), 5);

    scale(&deploys, "scaled", 2).await;
    wait_for(&deploys, "scaled", "2 available", |d| dstatus(d) == (2, 2, 2, 2)).await;
    let pods = wait_pods(&client, "app=scaled", "2 pods left", |p| p.len() == 2).await;
    assert_eq!(active(&pods).len(), 2);
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let rs = &rss.list(&ListParams::default()).await.unwrap().items[0];
    let ann = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["deployment.kubernetes.io/desired-replicas"], "2");
    assert_eq!(ann["deployment.kubernetes.io/max-replicas"], "3");

    scale(&deploys, "scaled", 0).await;
    wait_pods(&client, "app=scaled", "no pods", |p| p.is_empty()).await;
    let d = wait_for(&deploys, "scaled", "0 replicas", |d| dstatus(d) == (0, 0, 0, 0)).await;
    assert_eq!(cond(&d, "Available").unwrap().status, "True");
}

#[tokio::test]
async fn scale_down_deletes_unscheduled_then_not_ready_pods_first() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys.create(&PostParams::default(), &deployment("prefer", 4, json!({}))).await.unwrap();
    let pods = wait_pods(&client, "app=prefer", "4 pods", |p| p.len() == 4).await;
    let order: Vec<String> = pod_names(&pods).into_iter().collect();
    make_ready(&sim, "default", &order[0]);
    make_ready(&sim, "default", &order[1]);
    kubelet_status(&sim, "default", &order[2], "Running", false);
    // order[3] stays unscheduled and pending.
    wait_for(&deploys, "prefer", "2 ready", |d| dstatus(d).2 == 2).await;

    scale(&deploys, "prefer", 3).await;
    let pods = wait_pods(&client, "app=prefer", "one pod terminating", |p| active(p).len() == 3).await;
    let gone: Vec<String> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let kept = names(&active(&pods));
    // The unscheduled pod has no node, so it is removed at once rather than terminating.
    assert!(gone.is_empty() && !kept.contains(&order[3]), "kept {kept:?}");

    scale(&deploys, "prefer", 2).await;
    let pods = wait_pods(&client, "app=prefer", "two active", |p| active(p).len() == 2).await;
    let kept = names(&active(&pods));
    assert_eq!(kept, BTreeSet::from([order[0].clone(), order[1].clone()]), "the not-ready pod goes next");
    let terminating: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some()).collect();
    assert_eq!(terminating.len(), 1);
    assert_eq!(terminating[0].metadata.name.as_deref(), Some(order[2].as_str()));
}

#[tokio::test]
async fn deleted_and_failed_pods_are_replaced() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let _kubelet = FakeKubelet::start(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys.create(&PostParams::default(), &deployment("heal", 2, json!({}))).await.unwrap();
    wait_for(&deploys, "heal", "2 available", |d| dstatus(d) == (2, 2, 2, 2)).await;
    let before = pod_names(&pods_of(&client, "app=heal").await);

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let victim = before.iter().next().unwrap().clone();
    pods.delete(&victim, &DeleteParams::default()).await.unwrap();
    let after = wait_pods(&client, "app=heal", "replacement", |p| {
        let n = pod_names(p);
        active(p).len() == 2 && !n.contains(&victim) && p.iter().all(is_ready)
    })
    .await;
    assert_eq!(pod_names(&after).intersection(&before).count(), 1);

    // A pod that fails is replaced; the failed pod itself stays (pod GC is not this controller's job).
    let failed = pod_names(&after).into_iter().next().unwrap();
    kubelet_status(&sim, "default", &failed, "Failed", false);
    let now =
        wait_pods(&client, "app=heal", "replacement of the failed pod", |p| active(p).len() == 2 && p.len() == 3).await;
    let failed_pod = now.iter().find(|p| p.metadata.name.as_deref() == Some(failed.as_str())).unwrap();
    assert_eq!(failed_pod.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
    wait_for(&deploys, "heal", "2 available again", |d| dstatus(d) == (2, 2, 2, 2)).await;
}

#[tokio::test]
async fn min_ready_seconds_delays_availability() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys.create(&PostParams::default(), &deployment("slow", 1, json!({"minReadySeconds": 2}))).await.unwrap();
    let pods = wait_pods(&client, "app=slow", "a pod", |p| p.len() == 1).await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let rs_name = pods[0].metadata.owner_references.as_ref().unwrap()[0].name.clone();
    assert_eq!(rss.get(&rs_name).await.unwrap().spec.unwrap().min_ready_seconds, Some(2));

    let t0 = Instant::now();
    make_ready(&sim, "default", pods[0].metadata.name.as_deref().unwrap());
    let d = wait_for(&deploys, "slow", "ready", |d| dstatus(d).2 == 1).await;
    assert_eq!(dstatus(&d).3, 0, "ready but not yet available");
    assert_eq!(cond(&d, "Available").unwrap().status, "False");
    assert_eq!(d.status.as_ref().unwrap().unavailable_replicas, Some(1));

    let d = wait_for(&deploys, "slow", "available", |d| dstatus(d).3 == 1).await;
    let waited = t0.elapsed();
    // Ready times have second resolution: available 1-2 s after readiness, by a timer.
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(cond(&d, "Available").unwrap().status, "True");
}

/// Watches the pods of `selector` and records (most active pods, fewest ready active pods)
/// over every state observed, until `stop` fires.
fn observe_bounds(
    client: &kube::Client,
    selector: &str,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<(usize, usize, usize)>) {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let selector = selector.to_string();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default().labels(&selector)).boxed();
        let mut state: BTreeMap<String, Pod> = BTreeMap::new();
        let mut init: BTreeMap<String, Pod> = BTreeMap::new();
        let (mut max_active, mut min_ready, mut events) = (0, usize::MAX, 0);
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                _ = &mut stop_rx => break,
            };
            let Some(ev) = ev else { break };
            let Ok(ev) = ev else { continue };
            match ev {
                watcher::Event::Init => {
                    init.clear();
                    continue;
                }
                watcher::Event::InitApply(p) => {
                    init.insert(p.metadata.name.clone().unwrap_or_default(), p);
                    continue;
                }
                watcher::Event::InitDone => state = std::mem::take(&mut init),
                watcher::Event::Apply(p) => {
                    state.insert(p.metadata.name.clone().unwrap_or_default(), p);
                }
                watcher::Event::Delete(p) => {
                    state.remove(p.metadata.name.as_deref().unwrap_or_default());
                }
            }
            let pods: Vec<Pod> = state.values().cloned().collect();
            let act = active(&pods);
            max_active = max_active.max(act.len());
            min_ready = min_ready.min(act.iter().filter(|p| is_ready(p)).count());
            events += 1;
        }
        (max_active, min_ready, events)
    });
    (stop_tx, task)
}

async fn set_image(deploys: &Api<Deployment>, name: &str, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
    deploys.patch(name, &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
}

fn rollout_done(d: &Deployment, replicas: i32) -> bool {
    d.status.as_ref().is_some_and(|s| s.observed_generation == d.metadata.generation)
        && dstatus(d) == (replicas, replicas, replicas, replicas)
        && cond(d, "Progressing").is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"))
}

#[tokio::test]
async fn rolling_update_honours_max_surge_and_max_unavailable() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let _kubelet = FakeKubelet::start(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let strategy = json!({"revisionHistoryLimit": 1, "strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": "30%"}}});
    deploys.create(&PostParams::default(), &deployment("roll", 5, strategy)).await.unwrap();
    wait_for(&deploys, "roll", "rolled out", |d| rollout_done(d, 5)).await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let first_rs = rss.list(&ListParams::default()).await.unwrap().items[0].metadata.name.clone().unwrap();

    // 5 replicas, 30%: surge rounds up to 2, unavailable rounds down to 1.
    let (stop, observer) = observe_bounds(&client, "app=roll");
    wait_pods(&client, "app=roll", "observer in sync", |p| active(p).len() == 5).await;
    set_image(&deploys, "roll", "hadrill/test-server:2").await;
    let d = wait_for(&deploys, "roll", "second rollout", |d| {
        rollout_done(d, 5) && d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"] == "2"
    })
    .await;
    let new_hash = {
        let pods = wait_pods(&client, "app=roll", "only new pods", |p| {
            p.len() == 5 && p.iter().all(is_ready) && p.iter().map(hash_of).collect::<BTreeSet<_>>().len() == 1
        })
        .await;
        hash_of(&pods[0])
    };
    let _ = stop.send(());
    let (max_active, min_ready, events) = observer.await.unwrap();
    assert!(events > 10, "the observer saw the rollout ({events} events)");
    assert!(max_active <= 7, "at most replicas + maxSurge pods: saw {max_active}");
    assert!(max_active > 5, "the surge was used: saw {max_active}");
    assert!(min_ready >= 4, "at least replicas - maxUnavailable ready pods: saw {min_ready}");

    let old = rss.get(&first_rs).await.unwrap();
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(old.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"], "1");
    let new = rss.get(&format!("roll-{new_hash}")).await.unwrap();
    assert_eq!(new.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"], "2");
    assert_eq!(new.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(cond(&d, "Available").unwrap().status, "True");

    // No surge, 50% unavailable (2 of 5): never more than 5 pods, never fewer than 3 ready.
    let strategy = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "50%"}}}});
    deploys.patch("roll", &PatchParams::default(), &Patch::Merge(&strategy)).await.unwrap();
    let (stop, observer) = observe_bounds(&client, "app=roll");
    wait_pods(&client, "app=roll", "observer in sync", |p| active(p).len() == 5).await;
    set_image(&deploys, "roll", "hadrill/test-server:3").await;
    wait_for(&deploys, "roll", "third rollout", |d| {
        rollout_done(d, 5) && d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"] == "3"
    })
    .await;
    wait_pods(&client, "app=roll", "only newest pods", |p| {
        p.len() == 5 && p.iter().all(|p| is_ready(p) && hash_of(p) != new_hash)
    })
    .await;
    let _ = stop.send(());
    let (max_active, min_ready, _) = observer.await.unwrap();
    assert!(max_active <= 5, "no surge: saw {max_active}");
    assert!(min_ready >= 3, "maxUnavailable 2: saw {min_ready} ready");
    assert!(min_ready < 5, "the unavailability budget was used: saw {min_ready}");

    // revisionHistoryLimit 1: the revision-1 ReplicaSet is cleaned up, revision 2 is kept.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: BTreeSet<String> =
            rss.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|r| r.metadata.name).collect();
        if !names.contains(&first_rs) {
            assert_eq!(names.len(), 2, "{names:?}");
            assert!(names.contains(&format!("roll-{new_hash}")));
            break;
        }
        assert!(Instant::now() < deadline, "old ReplicaSet not cleaned up: {names:?}");
        let _ = await_cond(&rss, &first_rs, "history cleanup", |r: Option<&ReplicaSet>| r.is_none()).await;
    }
}

#[tokio::test]
async fn recreate_stops_old_pods_before_starting_new_ones() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let _kubelet = FakeKubelet::start(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("rec", 3, json!({"strategy": {"type": "Recreate"}})))
        .await
        .unwrap();
    wait_for(&deploys, "rec", "rolled out", |d| rollout_done(d, 3)).await;
    let old_hash = hash_of(&pods_of(&client, "app=rec").await[0]);

    // Record every pod state: old and new pods must never coexist.
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let mut stream = watcher(api, watcher::Config::default().labels("app=rec")).boxed();
    let mut state: BTreeMap<String, Pod> = BTreeMap::new();
    loop {
        let Ok(ev) = stream.next().await.expect("watch") else { continue };
        match ev {
            watcher::Event::InitApply(p) => {
                state.insert(p.metadata.name.clone().unwrap(), p);
            }
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    set_image(&deploys, "rec", "hadrill/test-server:2").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut saw_gap = false;
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.next()).await.expect("recreate finished").expect("watch");
        let Ok(ev) = ev else { continue };
        match ev {
            watcher::Event::Apply(p) => {
                state.insert(p.metadata.name.clone().unwrap(), p);
            }
            watcher::Event::Delete(p) => {
                state.remove(p.metadata.name.as_deref().unwrap());
            }
            _ => continue,
        }
        let old = state.values().filter(|p| hash_of(p) == old_hash).count();
        let new = state.values().filter(|p| hash_of(p) != old_hash).count();
        assert!(old == 0 || new == 0, "old and new pods coexist: {old} old, {new} new");
        saw_gap |= old == 0 && new == 0;
        if new == 3 && state.values().all(is_ready) {
            break;
        }
    }
    assert!(saw_gap, "all old pods were gone before new ones were created");
    wait_for(&deploys, "rec", "recreated", |d| rollout_done(d, 3)).await;
}

#[tokio::test]
async fn progress_deadline_exceeded_is_reported() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("stuck", 1, json!({"progressDeadlineSeconds": 1})))
        .await
        .unwrap();
    let d = wait_for(&deploys, "stuck", "progressing", |d| cond(d, "Progressing").is_some()).await;
    let reason = cond(&d, "Progressing").unwrap().reason.clone().unwrap();
    assert!(reason == "NewReplicaSetCreated" || reason == "ReplicaSetUpdated", "{reason}");
    // Nobody makes the pod ready: the deadline passes (a timer, no further events).
    let d = wait_for(&deploys, "stuck", "deadline exceeded", |d| {
        cond(d, "Progressing").is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    })
    .await;
    let c = cond(&d, "Progressing").unwrap();
    assert_eq!(c.status, "False");
    assert!(c.message.as_deref().unwrap().ends_with("has timed out progressing."), "{:?}", c.message);
}

#[tokio::test]
async fn deleting_a_deployment_removes_its_replicasets_and_pods() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let _kubelet = FakeKubelet::start(&sim);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys.create(&PostParams::default(), &deployment("doomed", 2, json!({}))).await.unwrap();
    wait_for(&deploys, "doomed", "available", |d| dstatus(d) == (2, 2, 2, 2)).await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let rs = rss.list(&ListParams::default()).await.unwrap().items.remove(0);

    deploys.delete("doomed", &DeleteParams::default()).await.unwrap();
    support::await_deleted(&rss, rs.metadata.name.as_deref().unwrap(), rs.metadata.uid.as_deref().unwrap()).await;
    wait_pods(&client, "app=doomed", "pods gone", |p| p.is_empty()).await;

    // Foreground: the Deployment waits for its dependents.
    deploys.create(&PostParams::default(), &deployment("fg", 2, json!({}))).await.unwrap();
    wait_for(&deploys, "fg", "available", |d| dstatus(d) == (2, 2, 2, 2)).await;
    let uid = deploys.get("fg").await.unwrap().metadata.uid.unwrap();
    deploys.delete("fg", &DeleteParams::foreground()).await.unwrap();
    support::await_deleted(&deploys, "fg", &uid).await;
    assert!(pods_of(&client, "app=fg").await.is_empty());
    assert!(rss.list(&ListParams::default()).await.unwrap().items.is_empty());
}

fn statefulset(name: &str, replicas: i32, extra_spec: Value) -> StatefulSet {
    let mut spec = json!({
        "replicas": replicas,
        "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": template(name, "hadrill/test-server:1"),
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("statefulset")
}

fn find<'a>(pods: &'a [Pod], name: &str) -> Option<&'a Pod> {
    pods.iter().find(|p| p.metadata.name.as_deref() == Some(name))
}

fn terminating(pods: &[Pod], name: &str) -> bool {
    find(pods, name).is_some_and(|p| p.metadata.deletion_timestamp.is_some())
}

/// Watches the pods of `app` and checks, whenever a pod appears, that every lower ordinal exists
/// and is Running and Ready (OrderedReady). Returns the creation order.
fn observe_ordered_creation(client: &kube::Client, app: &str) -> tokio::task::JoinHandle<Vec<String>> {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let selector = format!("app={app}");
    let app = app.to_string();
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default().labels(&selector)).boxed();
        let mut state: BTreeMap<String, Pod> = BTreeMap::new();
        let mut created = Vec::new();
        while let Some(ev) = stream.next().await {
            // A watch error (e.g. 410 Gone) makes the watcher re-list: keep going.
            let Ok(ev) = ev else { continue };
            match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    if !state.contains_key(&name) && !created.contains(&name) {
                        let ord: usize = name.rsplit('-').next().and_then(|o| o.parse().ok()).unwrap();
                        for lower in 0..ord {
                            let prev = state.get(&format!("{app}-{lower}"));
                            let ok = prev.is_some_and(|p| {
                                is_ready(p) && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                            });
                            assert!(ok, "{name} was created while {app}-{lower} was not Running and Ready");
                        }
                        created.push(name.clone());
                    }
                    state.insert(name, p);
                }
                watcher::Event::Delete(p) => {
                    state.remove(p.metadata.name.as_deref().unwrap_or_default());
                }
                _ => {}
            }
            if created.len() == 3 {
                break;
            }
        }
        created
    })
}

#[tokio::test]
async fn statefulset_ordered_ready_creates_in_order_and_scales_down_from_the_top() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let observer = observe_ordered_creation(&client, "db");
    let set = sets.create(&PostParams::default(), &statefulset("db", 3, json!({}))).await.unwrap();

    for ord in 0..3 {
        let name = format!("db-{ord}");
        let pods = wait_pods(&client, "app=db", &name, |p| find(p, &name).is_some()).await;
        assert_eq!(pods.len(), ord + 1, "only {name} and its predecessors exist");
        let pod = find(&pods, &name).unwrap();
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], ord.to_string());
        assert!(labels["controller-revision-hash"].starts_with("db-"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some(name.as_str()), Some("db")));
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), Some(&owner.uid)), ("StatefulSet", set.metadata.uid.as_ref()));
        assert_eq!(owner.controller, Some(true));
        // Running but not ready first: the next ordinal must wait (the observer checks).
        kubelet_status(&sim, "default", &name, "Running", false);
        make_ready(&sim, "default", &name);
    }
    assert_eq!(observer.await.unwrap(), ["db-0", "db-1", "db-2"]);
    let s = wait_for(&sets, "db", "3 ready", |s| s.status.as_ref().is_some_and(|st| st.ready_replicas == Some(3)))
        .await
        .status
        .unwrap();
    assert_eq!(
        (s.replicas, s.current_replicas, s.updated_replicas, s.available_replicas),
        (3, Some(3), Some(3), Some(3))
    );
    assert!(s.current_revision.is_some() && s.current_revision == s.update_revision);
    assert_eq!(s.observed_generation, Some(1));

    // Scale down: the highest ordinal first, the next only once it is gone.
    let patch = json!({"spec": {"replicas": 1}});
    sets.patch("db", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let pods = wait_pods(&client, "app=db", "db-2 terminating", |p| terminating(p, "db-2")).await;
    assert!(!terminating(&pods, "db-1") && !terminating(&pods, "db-0"));
    finish_termination(&sim, "default", "db-2");
    let pods = wait_pods(&client, "app=db", "db-1 terminating", |p| terminating(p, "db-1")).await;
    assert!(find(&pods, "db-2").is_none() && !terminating(&pods, "db-0"));
    finish_termination(&sim, "default", "db-1");
    wait_pods(&client, "app=db", "only db-0", |p| pod_names(p) == BTreeSet::from(["db-0".to_string()])).await;
    wait_for(&sets, "db", "1 replica", |s| s.status.as_ref().is_some_and(|st| st.replicas == 1)).await;

    // A deleted pod comes back with the same name (and a new uid).
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let old_uid = pods.get("db-0").await.unwrap().metadata.uid.unwrap();
    pods.delete("db-0", &DeleteParams::default()).await.unwrap();
    finish_termination(&sim, "default", "db-0");
    let p = wait_for(&pods, "db-0", "recreated", move |p| p.metadata.uid.as_deref() != Some(old_uid.as_str())).await;
    let uid = p.metadata.uid.unwrap();
    make_ready(&sim, "default", "db-0");

    // So does a pod that failed.
    kubelet_status(&sim, "default", "db-0", "Failed", false);
    let p =
        wait_for(&pods, "db-0", "recreated after failure", move |p| p.metadata.uid.as_deref() != Some(uid.as_str()))
            .await;
    assert_ne!(p.status.unwrap().phase.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn statefulset_parallel_creates_and_deletes_without_waiting() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &statefulset("par", 3, json!({"podManagementPolicy": "Parallel"})))
        .await
        .unwrap();
    let pods = wait_pods(&client, "app=par", "3 pods", |p| p.len() == 3).await;
    assert_eq!(pod_names(&pods), BTreeSet::from(["par-0".into(), "par-1".into(), "par-2".into()]));
    assert!(!pods.iter().any(is_ready));
    for p in &pods {
        kubelet_status(&sim, "default", p.metadata.name.as_deref().unwrap(), "Running", true);
    }
    wait_for(&sets, "par", "3 ready", |s| s.status.as_ref().is_some_and(|st| st.ready_replicas == Some(3))).await;

    let patch = json!({"spec": {"replicas": 0}});
    sets.patch("par", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_pods(&client, "app=par", "all terminating", |p| {
        p.len() == 3 && p.iter().all(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
}

#[tokio::test]
async fn statefulset_rolling_update_respects_the_partition() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let _kubelet = FakeKubelet::start(&sim);
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    sets.create(&PostParams::default(), &statefulset("ru", 3, json!({}))).await.unwrap();
    let s =
        wait_for(&sets, "ru", "3 ready", |s| s.status.as_ref().is_some_and(|st| st.ready_replicas == Some(3))).await;
    let rev1 = s.status.unwrap().current_revision.unwrap();

    let patch = json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "web", "image": "hadrill/test-server:2"}]}},
    }});
    sets.patch("ru", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    let s = wait_for(&sets, "ru", "2 updated", |s| {
        s.status.as_ref().is_some_and(|st| st.updated_replicas == Some(2) && st.ready_replicas == Some(3))
    })
    .await
    .status
    .unwrap();
    let rev2 = s.update_revision.clone().unwrap();
    assert_ne!(rev1, rev2);
    assert_eq!((s.current_revision.as_deref(), s.current_replicas), (Some(rev1.as_str()), Some(1)));
    let pods = pods_of(&client, "app=ru").await;
    let rev = |n: &str| find(&pods, n).unwrap().metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    assert_eq!((rev("ru-0"), rev("ru-1"), rev("ru-2")), (rev1.clone(), rev2.clone(), rev2.clone()));
    let crs: Api<k8s_openapi::api::apps::v1::ControllerRevision> = Api::default_namespaced(client.clone());
    let revisions: BTreeMap<String, i64> = crs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.metadata.name.unwrap(), c.revision))
        .collect();
    assert_eq!(revisions, BTreeMap::from([(rev1.clone(), 1), (rev2.clone(), 2)]));

    // Partition 0 finishes the rollout: the update revision becomes current.
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    sets.patch("ru", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let s = wait_for(&sets, "ru", "rolled out", move |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.current_revision.as_deref() == Some(rev2.as_str()) && st.ready_replicas == Some(3))
    })
    .await
    .status
    .unwrap();
    assert_eq!((s.current_replicas, s.updated_replicas), (Some(3), Some(3)));
}

fn plain_pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "web", "image": "hadrill/test-server:1",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9000}]}]},
    }))
    .expect("pod")
}

fn ip_of(sim: &Sim, name: &str) -> String {
    pod_json(sim, "default", name).unwrap()["status"]["podIP"].as_str().unwrap().to_string()
}

/// (ready IPs, not-ready IPs, ports as (name, port)) of an Endpoints object.
fn ep_view(ep: &Endpoints) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<(String, i32)>) {
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for s in ep.subsets.iter().flatten() {
        ready.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
        ports.extend(s.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.port)));
    }
    (ready, not_ready, ports)
}

/// Endpoints of the slices of a Service: IP -> (ready, serving, terminating).
fn slice_view(slices: &[EndpointSlice]) -> BTreeMap<String, (bool, bool, bool)> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (e.addresses[0].clone(), (c.ready == Some(true), c.serving == Some(true), c.terminating == Some(true)))
        })
        .collect()
}

async fn wait_slices<F>(client: &kube::Client, service: &str, what: &str, f: F) -> Vec<EndpointSlice>
where
    F: Fn(&[EndpointSlice]) -> bool,
{
    let api: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let selector = format!("kubernetes.io/service-name={service}");
    let mut stream = watcher(api, watcher::Config::default().labels(&selector)).boxed();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut state: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut init: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!("timed out waiting for {what}: {:?}", slice_view(&state.values().cloned().collect::<Vec<_>>()))
            })
            .expect("watch stream ended");
        let Ok(ev) = ev else { continue };
        match ev {
            watcher::Event::Init => init.clear(),
            watcher::Event::InitApply(s) => {
                init.insert(s.metadata.name.clone().unwrap_or_default(), s);
                continue;
            }
            watcher::Event::InitDone => state = std::mem::take(&mut init),
            watcher::Event::Apply(s) => {
                state.insert(s.metadata.name.clone().unwrap_or_default(), s);
            }
            watcher::Event::Delete(s) => {
                state.remove(s.metadata.name.as_deref().unwrap_or_default());
            }
        }
        let slices: Vec<EndpointSlice> = state.values().cloned().collect();
        if f(&slices) {
            return slices;
        }
    }
}

fn set<const N: usize>(items: [&String; N]) -> BTreeSet<String> {
    items.into_iter().cloned().collect()
}

#[tokio::test]
async fn endpoints_and_slices_follow_pod_readiness() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for n in ["ep-a", "ep-b", "ep-c"] {
        pods.create(&PostParams::default(), &plain_pod(n, "ep")).await.unwrap();
    }
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "ep", "labels": {"tier": "web"}},
        "spec": {"selector": {"app": "ep"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9100, "protocol": "TCP"},
        ]},
    }))
    .unwrap();
    let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());

    // No pod has an IP yet: empty Endpoints, one placeholder slice.
    let ep = wait_for(&eps, "ep", "empty endpoints", |_| true).await;
    assert!(ep.subsets.as_ref().is_none_or(Vec::is_empty));
    let labels = ep.metadata.labels.as_ref().unwrap();
    assert_eq!(
        (labels["tier"].as_str(), labels["endpoints.kubernetes.io/managed-by"].as_str()),
        ("web", "endpoint-controller")
    );
    let slices = wait_slices(&client, "ep", "placeholder", |s| s.len() == 1).await;
    assert!(slices[0].endpoints.is_empty());

    make_ready(&sim, "default", "ep-a");
    make_ready(&sim, "default", "ep-b");
    kubelet_status(&sim, "default", "ep-c", "Running", false);
    let (a, b, c) = (ip_of(&sim, "ep-a"), ip_of(&sim, "ep-b"), ip_of(&sim, "ep-c"));
    let ep = wait_for(&eps, "ep", "2 ready, 1 not ready", {
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        move |e| {
            let v = ep_view(e);
            v.0 == set([&a, &b]) && v.1 == set([&c])
        }
    })
    .await;
    let ports = ep_view(&ep).2;
    assert_eq!(ports, BTreeSet::from([("http".to_string(), 8080), ("metrics".to_string(), 9100)]));
    let addr = ep.subsets.as_ref().unwrap()[0].addresses.as_ref().unwrap().iter().find(|x| x.ip == a).unwrap().clone();
    assert_eq!(addr.node_name.as_deref(), Some(NODE));
    let target = addr.target_ref.unwrap();
    assert_eq!((target.kind.as_deref(), target.name.as_deref()), (Some("Pod"), Some("ep-a")));

    let slices = wait_slices(&client, "ep", "3 endpoints", |s| slice_view(s).len() == 3).await;
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "ep");
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    assert_eq!(labels["tier"], "web");
    assert!(slice.metadata.name.as_deref().unwrap().starts_with("ep-"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid), owner.controller),
        ("Service", svc.metadata.uid.as_ref(), Some(true))
    );
    let mut ports: Vec<(String, i32, String)> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.port.unwrap_or(0), p.protocol.clone().unwrap_or_default()))
        .collect();
    ports.sort();
    assert_eq!(ports, [("http".into(), 8080, "TCP".into()), ("metrics".into(), 9100, "TCP".into())]);
    let view = slice_view(&slices);
    assert_eq!((view[&a], view[&c]), ((true, true, false), (false, false, false)));
    let ep_a = slice.endpoints.iter().find(|e| e.addresses[0] == a).unwrap();
    assert_eq!(ep_a.node_name.as_deref(), Some(NODE));
    assert_eq!(ep_a.zone.as_deref(), Some("zone-a"));
    assert_eq!(ep_a.target_ref.as_ref().unwrap().name.as_deref(), Some("ep-a"));

    // A ready pod turning unready moves to notReadyAddresses.
    kubelet_status(&sim, "default", "ep-b", "Running", false);
    wait_for(&eps, "ep", "ep-b not ready", {
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        move |e| {
            let v = ep_view(e);
            v.0 == set([&a]) && v.1 == set([&b, &c])
        }
    })
    .await;
    wait_slices(&client, "ep", "ep-b not ready in the slice", |s| {
        slice_view(s).get(&b) == Some(&(false, false, false))
    })
    .await;

    // A terminating pod leaves Endpoints; the slice keeps it as serving and terminating.
    pods.delete("ep-a", &DeleteParams::default()).await.unwrap();
    wait_for(&eps, "ep", "ep-a gone", {
        let (b, c) = (b.clone(), c.clone());
        move |e| {
            let v = ep_view(e);
            v.0.is_empty() && v.1 == set([&b, &c])
        }
    })
    .await;
    wait_slices(&client, "ep", "ep-a terminating", |s| slice_view(s).get(&a) == Some(&(false, true, true))).await;
    finish_termination(&sim, "default", "ep-a");
    wait_slices(&client, "ep", "ep-a removed", |s| !slice_view(s).contains_key(&a)).await;

    // Deleting the Service removes its Endpoints; the garbage collector removes the slices.
    svcs.delete("ep", &DeleteParams::default()).await.unwrap();
    let ep_uid = eps.get("ep").await.ok().and_then(|e| e.metadata.uid);
    if let Some(uid) = ep_uid {
        support::await_deleted(&eps, "ep", &uid).await;
    }
    wait_slices(&client, "ep", "slices gone", |s| s.is_empty()).await;
}

#[tokio::test]
async fn endpoints_follow_a_selector_change_at_once() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for (n, app) in [("blue-1", "blue"), ("blue-2", "blue"), ("green-1", "green")] {
        pods.create(&PostParams::default(), &plain_pod(n, app)).await.unwrap();
        make_ready(&sim, "default", n);
    }
    let (b1, b2, g1) = (ip_of(&sim, "blue-1"), ip_of(&sim, "blue-2"), ip_of(&sim, "green-1"));
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "switch"},
        "spec": {"selector": {"app": "blue"}, "ports": [{"port": 80, "targetPort": "admin"}]},
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());
    let ep = wait_for(&eps, "switch", "blue endpoints", {
        let (b1, b2) = (b1.clone(), b2.clone());
        move |e| ep_view(e).0 == set([&b1, &b2])
    })
    .await;
    assert_eq!(ep_view(&ep).2, BTreeSet::from([(String::new(), 9000)]));
    wait_slices(&client, "switch", "blue slices", |s| slice_view(s).len() == 2).await;

    // Switch to green and time how long the slices take to follow.
    let slice_watch = {
        let client = client.clone();
        let g1 = g1.clone();
        tokio::spawn(async move {
            wait_slices(&client, "switch", "green slices", move |s| {
                let v = slice_view(s);
                v.len() == 1 && v.get(&g1) == Some(&(true, true, false))
            })
            .await;
            Instant::now()
        })
    };
    wait_slices(&client, "switch", "watch primed", |s| slice_view(s).len() == 2).await;
    let t0 = Instant::now();
    let patch = json!({"spec": {"selector": {"app": "green"}}});
    svcs.patch("switch", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_for(&eps, "switch", "green endpoints", move |e| ep_view(e).0 == set([&g1])).await;
    let took = slice_watch.await.unwrap().duration_since(t0);
    assert!(took < Duration::from_millis(500), "slices followed the selector change after {took:?}");
}

#[tokio::test]
async fn services_without_selector_keep_their_own_endpoints() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let manual: Service =
        serde_json::from_value(json!({"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 80}]}})).unwrap();
    svcs.create(&PostParams::default(), &manual).await.unwrap();
    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());
    let own: Endpoints = serde_json::from_value(json!({"metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "127.0.0.42"}], "ports": [{"port": 8080}]}]}))
    .unwrap();
    let own = eps.create(&PostParams::default(), &own).await.unwrap();

    // A Service with a selector created afterwards is processed after "manual" (queues are FIFO).
    let marker: Service = serde_json::from_value(json!({"metadata": {"name": "marker"},
        "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}}))
    .unwrap();
    svcs.create(&PostParams::default(), &marker).await.unwrap();
    wait_for(&eps, "marker", "marker endpoints", |_| true).await;
    wait_slices(&client, "marker", "marker slice", |s| s.len() == 1).await;

    let now = eps.get("manual").await.unwrap();
    assert_eq!(now.metadata.resource_version, own.metadata.resource_version);
    assert_eq!(ep_view(&now).0, BTreeSet::from(["127.0.0.42".to_string()]));
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let managed = slices.list(&ListParams::default().labels("kubernetes.io/service-name=manual")).await.unwrap();
    assert!(managed.items.is_empty());
}

#[tokio::test]
async fn scaling_during_a_rollout_is_proportional() {
    let sim = support::start_without_kubelets(1).await;
    let client = sim.client().unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys.create(&PostParams::default(), &deployment("prop", 4, json!({}))).await.unwrap();
    for p in wait_pods(&client, "app=prop", "4 pods", |p| p.len() == 4).await {
        make_ready(&sim, "default", p.metadata.name.as_deref().unwrap());
    }
    wait_for(&deploys, "prop", "available", |d| rollout_done(d, 4)).await;
    let old_hash = hash_of(&pods_of(&client, "app=prop").await[0]);

    // The new pods never become ready: 25% of 4 lets the rollout reach 3 old + 2 new, then stall.
    set_image(&deploys, "prop", "hadrill/test-server:2").await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let old_name = format!("prop-{old_hash}");
    let sizes = |old: i32, new: i32| {
        move |d: &Deployment| {
            let s = d.status.clone().unwrap_or_default();
            s.replicas == Some(old + new) && s.updated_replicas == Some(new)
        }
    };
    wait_for(&deploys, "prop", "3 old + 2 new", sizes(3, 2)).await;

    // Scale to 8 (max 10): the 5 extra replicas go 3 to the old and 2 to the new ReplicaSet.
    scale(&deploys, "prop", 8).await;
    wait_for(&deploys, "prop", "6 old + 4 new", sizes(6, 4)).await;
    let all = rss.list(&ListParams::default()).await.unwrap().items;
    let by_name: BTreeMap<String, &ReplicaSet> = all.iter().map(|r| (r.metadata.name.clone().unwrap(), r)).collect();
    let old = by_name[&old_name];
    let new = all.iter().find(|r| r.metadata.name.as_deref() != Some(old_name.as_str())).unwrap();
    assert_eq!((old.spec.as_ref().unwrap().replicas, new.spec.as_ref().unwrap().replicas), (Some(6), Some(4)));
    for rs in [old, new] {
        let ann = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["deployment.kubernetes.io/desired-replicas"], "8");
        assert_eq!(ann["deployment.kubernetes.io/max-replicas"], "10");
    }
}
