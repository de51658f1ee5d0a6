//! The workload controllers (Deployment, ReplicaSet, StatefulSet, Endpoints, EndpointSlice),
//! driven through kube-rs. There is no kubelet here: the tests play its part, binding pods and
//! writing their status through the API, then watch what the controllers do.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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

/// A kubelet for every pod of the cluster: new pods become Running and Ready (when
/// `auto_ready`), terminating pods are removed.
struct FakeKubelet {
    auto_ready: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKubelet {
    fn start(sim: &Sim, auto_ready: bool) -> Self {
        let flag = Arc::new(AtomicBool::new(auto_ready));
        let mut events = sim.api().store.subscribe();
        let api = sim.api().clone();
        let f = flag.clone();
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
                } else if e.kind == sim::api::store::EventType::Added && f.load(Ordering::SeqCst) {
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
        FakeKubelet { auto_ready: flag, task }
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
            .expect("watch stream ended")
            .expect("watch");
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
    let sim = support::start(1).await;
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
    assert_eq!(spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap()["pod-template-hash"], hash);
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
        dstatus(d) == (2, 2, 2, 2) && cond(d, "Progressing").is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"))
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
    assert_eq!(prog.message.as_deref(), Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.").as_str()));
    let rs = rss.get(&format!("web-{hash}")).await.unwrap();
    let rs_status = rs.status.unwrap();
    assert_eq!(
        (rs_status.replicas, rs_status.ready_replicas, rs_status.available_replicas, rs_status.fully_labeled_replicas),
        (2, Some(2), Some(2), Some(2))
    );
    assert_eq!(rs_status.observed_generation, rs.metadata.generation);
}
