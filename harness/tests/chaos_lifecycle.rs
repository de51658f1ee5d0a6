//! The injection lifecycle, the run ledger and `hadrill clean` against the embedded cluster.
//!
//! The test plays chaos-controller-manager ([`FakeChaosMesh`]): it adds the finalizer
//! `chaos-mesh/records`, selects the pods matching the selector once (no retry, like Chaos Mesh),
//! writes records and conditions (in a scrambled order), recovers at the end of `duration`, and
//! on delete marks the records recovered and drops the finalizer — unless told to hold it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use hadrill::chaos::ledger::{self, CleanupOptions, Ledger, ObjectRef, Outcome, RUN_LABEL};
use hadrill::chaos::lifecycle::{InjectOptions, NOTHING_MATCHES_GRACE, Recovery, Run, TargetSelector};
use hadrill::chaos::validate::parse_value;
use hadrill::chaos::{ChaosKind, ChaosResource, crd};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::watch;

const FINALIZER: &str = "chaos-mesh/records";

fn chaos_resource(kind: ChaosKind) -> ApiResource {
    ObjectRef {
        api_version: "chaos-mesh.org/v1alpha1".into(),
        kind: kind.as_str().into(),
        namespace: None,
        name: String::new(),
    }
    .api_resource()
}

/// chaos-controller-manager, as far as the protocol goes.
struct FakeChaosMesh {
    hold_recovery: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeChaosMesh {
    fn start(client: &kube::Client) -> Self {
        let (hold_recovery, mut hold) = watch::channel(false);
        let client = client.clone();
        let task = tokio::spawn(async move {
            let streams = ChaosKind::MESH.map(|kind| {
                let ar = chaos_resource(kind);
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                watcher(api, watcher::Config::default()).default_backoff().applied_objects().map(move |o| (kind, o))
            });
            let mut events = futures::stream::select_all(streams.map(|s| s.boxed()));
            let mut timers = HashSet::new();
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some((kind, Ok(obj))) => {
                            let holding = *hold.borrow();
                            reconcile(&client, kind, obj, holding, &mut timers).await;
                        }
                        Some((_, Err(_))) => continue,
                        None => return,
                    },
                    changed = hold.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let holding = *hold.borrow();
                        for kind in ChaosKind::MESH {
                            let api: Api<DynamicObject> = Api::all_with(client.clone(), &chaos_resource(kind));
                            for obj in api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                                reconcile(&client, kind, obj, holding, &mut timers).await;
                            }
                        }
                    }
                }
            }
        });
        Self { hold_recovery, task }
    }

    fn hold_recovery(&self, hold: bool) {
        self.hold_recovery.send_replace(hold);
    }
}

impl Drop for FakeChaosMesh {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn conditions(selected: bool, injected: bool, recovered: bool) -> Value {
    let s = |b: bool| if b { "True" } else { "False" };
    // Not in a fixed order: Chaos Mesh rebuilds them from a Go map.
    json!([
        {"type": "AllRecovered", "status": s(recovered)},
        {"type": "AllInjected", "status": s(injected)},
        {"type": "Paused", "status": "False"},
        {"type": "Selected", "status": s(selected), "reason": if selected { "" } else { "no target" }},
    ])
}

async fn reconcile(
    client: &kube::Client,
    kind: ChaosKind,
    obj: DynamicObject,
    hold: bool,
    timers: &mut HashSet<String>,
) {
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &chaos_resource(kind));
    let mut finalizers = obj.metadata.finalizers.clone().unwrap_or_default();
    let patch = |v: Value| {
        let api = api.clone();
        let name = name.clone();
        async move {
            let _ = api.patch(&name, &PatchParams::default(), &Patch::Merge(&v)).await;
        }
    };
    let mut records: Vec<Value> =
        obj.data["status"]["experiment"]["containerRecords"].as_array().cloned().unwrap_or_default();
    if obj.metadata.deletion_timestamp.is_some() {
        if hold || !finalizers.iter().any(|f| f == FINALIZER) {
            return;
        }
        for r in &mut records {
            r["phase"] = json!("Not Injected");
        }
        finalizers.retain(|f| f != FINALIZER);
        patch(json!({
            "metadata": {"finalizers": finalizers},
            "status": {"experiment": {"desiredPhase": "Stop", "containerRecords": records},
                       "conditions": conditions(true, false, true)},
        }))
        .await;
        return;
    }
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.into());
        patch(json!({"metadata": {"finalizers": finalizers}})).await;
        return;
    }
    if !obj.data["status"].is_null() {
        return;
    }
    // Select once, by namespace and labels; any phase; never retried.
    let spec = &obj.data["spec"];
    let namespaces: Vec<String> = spec["selector"]["namespaces"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
        .unwrap_or_else(|| vec![ns.clone()]);
    let labels: Vec<String> = spec["selector"]["labelSelectors"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    for pod_ns in &namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), pod_ns);
        let list = pods.list(&ListParams::default().labels(&labels.join(","))).await.map(|l| l.items);
        for p in list.unwrap_or_default() {
            records.push(json!({
                "id": format!("{pod_ns}/{}", p.metadata.name.unwrap_or_default()),
                "selectorKey": ".", "phase": "Injected", "injectedCount": 1, "recoveredCount": 0,
            }));
        }
    }
    let selected = !records.is_empty();
    patch(json!({
        "status": {"experiment": {"desiredPhase": "Run", "containerRecords": records},
                   "conditions": conditions(selected, selected, false)},
    }))
    .await;
    let one_shot = matches!(spec["action"].as_str(), Some("pod-kill" | "container-kill"));
    let duration = spec["duration"].as_str().and_then(|d| d.strip_suffix('s')).and_then(|d| d.parse::<u64>().ok());
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    if let Some(secs) = duration.filter(|_| selected && !one_shot && timers.insert(uid)) {
        let api = api.clone();
        tokio::spawn(async move {
            // Chaos Mesh requeues for the end of the duration; so does this fake.
            tokio::time::sleep(Duration::from_secs(secs)).await;
            for r in &mut records {
                r["phase"] = json!("Not Injected");
            }
            let v = json!({"status": {"experiment": {"desiredPhase": "Stop", "containerRecords": records},
                                      "conditions": conditions(true, false, true)}});
            let _ = api.patch(&name, &PatchParams::default(), &Patch::Merge(&v)).await;
        });
    }
}

struct Fixture {
    sim: sim::Sim,
    client: kube::Client,
    dir: PathBuf,
}

impl Fixture {
    async fn start(test: &str) -> Fixture {
        sim::install_crypto_provider();
        let sim = sim::Sim::start(sim::SimConfig {
            chaos: sim::chaos::ChaosConfig { enabled: false, ..Default::default() },
            ..Default::default()
        })
        .await
        .unwrap();
        let client = sim.client().unwrap();
        crd::install(&client).await.unwrap();
        let dir = std::env::temp_dir().join(format!("hadrill-lifecycle-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fixture { sim, client, dir }
    }

    fn ledger_dir(&self) -> PathBuf {
        self.dir.join("ledger")
    }

    async fn run(&self, id: &str, namespace: &str) -> Run {
        let run =
            Run::new(self.client.clone(), &self.ledger_dir(), Some(id)).unwrap().with_cleanup_options(CleanupOptions {
                timeout: Duration::from_secs(20),
                finalizer_grace: Duration::from_secs(5),
                dry_run: false,
            });
        run.create_namespace(namespace).await.unwrap();
        run
    }

    async fn pod(&self, ns: &str, name: &str, labels: Value) -> Pod {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "db", "image": "example/db"}]},
        }))
        .unwrap();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.create(&PostParams::default(), &pod).await.unwrap();
        let running =
            |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Running");
        tokio::time::timeout(Duration::from_secs(30), await_condition(api, name, running))
            .await
            .expect("pod running in time")
            .unwrap()
            .unwrap()
    }

    /// A namespace owned by `run` (created by the test, not by the run) with a running db pod.
    async fn pod_in_new_namespace_for_run(&self, run: &str, ns: &str) {
        let n: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": {RUN_LABEL: run}}})).unwrap();
        Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &n).await.unwrap();
        self.pod(ns, "dispatch-0", json!({"app": "dispatch", "side": "primary"})).await;
    }

    async fn chaos_objects(&self, ns: &str) -> Vec<String> {
        let mut out = Vec::new();
        for kind in ChaosKind::MESH {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &chaos_resource(kind));
            for o in api.list(&ListParams::default()).await.unwrap().items {
                out.push(format!("{kind}/{}", o.metadata.name.unwrap_or_default()));
            }
        }
        out
    }

    async fn stop(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.sim.stop().await;
    }
}

fn resource(yaml: &str) -> ChaosResource {
    parse_value(&serde_saphyr::from_str::<Value>(yaml).unwrap()).unwrap()
}

fn pod_kill(ns: &str, name: &str) -> ChaosResource {
    resource(&format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec: {{action: pod-kill, mode: one, selector: {{namespaces: [{ns}], labelSelectors: {{app: db}}}}}}\n"
    ))
}

fn network_loss(ns: &str, name: &str, duration: Option<&str>) -> ChaosResource {
    let duration = duration.map(|d| format!(", duration: \"{d}\"")).unwrap_or_default();
    resource(&format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec: {{action: loss, mode: all, loss: {{loss: \"100\"}}, selector: {{namespaces: [{ns}], \
         labelSelectors: {{app: db}}}}{duration}}}\n"
    ))
}

fn quick() -> InjectOptions {
    InjectOptions {
        targets_timeout: Duration::from_secs(30),
        injected_timeout: Duration::from_secs(30),
        ..InjectOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_is_refused_in_a_namespace_the_run_does_not_own() {
    let f = Fixture::start("refused").await;
    let run = f.run("run-a", "owned").await;
    let namespaces: Api<Namespace> = Api::all(f.client.clone());
    for (ns, labels) in [("foreign", json!({})), ("other-run", json!({RUN_LABEL: "run-b"}))] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}})).unwrap();
        namespaces.create(&PostParams::default(), &n).await.unwrap();
        f.pod(ns, "db-0", json!({"app": "db"})).await;
        let err = run.inject(&pod_kill(ns, "kill"), &quick()).await.unwrap_err().to_string();
        assert!(err.contains(&format!("namespace {ns}: it is not owned by run run-a")), "{err}");
        assert!(f.chaos_objects(ns).await.is_empty());
    }
    // A selector reaching out of the run's namespace is refused too.
    let mut reaching = pod_kill("owned", "reach");
    if let ChaosResource::Pod(p) = &mut reaching {
        p.spec.selector.namespaces = Some(vec!["owned".into(), "foreign".into()]);
    }
    let err = run.inject(&reaching, &quick()).await.unwrap_err().to_string();
    assert!(err.contains("namespace foreign"), "{err}");
    let err = run.inject(&pod_kill("missing", "kill"), &quick()).await.unwrap_err().to_string();
    assert!(err.contains("namespace missing does not exist"), "{err}");
    // A name already taken by someone else's object: the create fails and the ledger forgets it,
    // so cleanup will not delete the other object.
    f.pod("owned", "db-0", json!({"app": "db"})).await;
    create_labelled(&f, &pod_kill("owned", "taken"), None).await;
    let err = format!("{:#}", run.inject(&pod_kill("owned", "taken"), &quick()).await.unwrap_err());
    assert!(err.contains("creating PodChaos \"taken\""), "{err}");
    // Only the run's namespace is recorded.
    let live: Vec<_> = run.ledger().live().into_iter().map(|e| e.object).collect();
    assert_eq!(live, [ObjectRef::namespace("owned")]);
    run.finish().await.unwrap();
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_waits_until_the_targets_run_then_records_labels_and_creates() {
    let f = Fixture::start("targets").await;
    let _mesh = FakeChaosMesh::start(&f.client);
    let run = Arc::new(f.run("run-t", "t").await);
    let chaos = pod_kill("t", "kill-db");
    let options = InjectOptions { scenario: Some("primary-pod-kill".into()), ..quick() };
    // A matching pod that cannot be scheduled stays Pending: no chaos object may appear. (It
    // exists before the injection starts: a selector matching no pod at all is refused.)
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), "t");
    let pending: Pod = serde_json::from_value(json!({
        "metadata": {"name": "db-0", "labels": {"app": "db"}},
        "spec": {"nodeSelector": {"no-such": "node"}, "containers": [{"name": "db", "image": "example/db"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pending).await.unwrap();
    let injecting = {
        let run = run.clone();
        tokio::spawn(async move { run.inject(&chaos, &options).await.map(|i| (i.timeline(), i.uid().to_string())) })
    };
    let mut injecting = injecting;
    assert!(tokio::time::timeout(Duration::from_millis(500), &mut injecting).await.is_err());
    assert!(f.chaos_objects("t").await.is_empty(), "created while its target was Pending");
    pods.delete("db-0", &Default::default()).await.unwrap();
    let gone = |p: Option<&Pod>| p.is_none();
    await_condition(pods.clone(), "db-0", gone).await.unwrap();
    // The fake selects once and never retries: created before db-1 runs, nothing would be injected.
    let before_pod = SystemTime::now();
    f.pod("t", "db-1", json!({"app": "db"})).await;
    let (timeline, uid) = injecting.await.unwrap().unwrap();
    assert!(timeline.targets_ready >= before_pod && timeline.created >= timeline.targets_ready);
    assert!(timeline.injected >= timeline.created);

    let api: Api<DynamicObject> = Api::namespaced_with(f.client.clone(), "t", &chaos_resource(ChaosKind::PodChaos));
    let stored = api.get("kill-db").await.unwrap();
    let labels = stored.metadata.labels.unwrap();
    assert_eq!(labels[RUN_LABEL], "run-t");
    assert_eq!(labels["hadrill.io/scenario"], "primary-pod-kill");
    assert_eq!(
        stored.data["status"]["experiment"]["containerRecords"],
        json!([{"id": "t/db-1", "selectorKey": ".", "phase": "Injected", "injectedCount": 1, "recoveredCount": 0}])
    );

    // The ledger has the intent before the create, then the uid.
    let entries = ledger::read(&f.ledger_dir().join("run-t.jsonl")).unwrap();
    let ops: Vec<_> = entries.iter().filter(|e| e.object.kind == "PodChaos").map(|e| e.op).collect();
    assert_eq!(ops, [ledger::Op::Creating, ledger::Op::Created]);
    assert_eq!(entries.last().unwrap().uid.as_deref(), Some(uid.as_str()));

    // The injection was dropped unrecovered: finishing the run removes it and the namespace.
    let removed = Arc::into_inner(run).unwrap().finish().await.unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(f.chaos_objects("t").await.is_empty());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_are_looked_up_by_type_and_a_deadline_quotes_what_was_seen() {
    let f = Fixture::start("conditions").await;
    let run = Arc::new(f.run("run-c", "c").await);
    f.pod("c", "db-0", json!({"app": "db"})).await;
    let api: Api<DynamicObject> = Api::namespaced_with(f.client.clone(), "c", &chaos_resource(ChaosKind::NetworkChaos));
    let write_status = |conds: Value| {
        let api = api.clone();
        async move {
            // One record, as a selection that picked db-0 writes it (Selected=True with no record
            // would be an injection into nothing: a failure).
            let record = json!({"id": "c/db-0", "selectorKey": ".", "phase": "Injected", "injectedCount": 1, "recoveredCount": 0});
            let v = json!({"status": {"experiment": {"desiredPhase": "Run", "containerRecords": [record]}, "conditions": conds}});
            api.patch("loss", &PatchParams::default(), &Patch::Merge(&v)).await.unwrap();
        }
    };
    let exists = |o: Option<&DynamicObject>| o.is_some();

    // No controller here: the test writes the status itself.
    let injecting = {
        let run = run.clone();
        tokio::spawn(async move { run.inject(&network_loss("c", "loss", None), &quick()).await })
    };
    await_condition(api.clone(), "loss", exists).await.unwrap();
    // AllInjected is True but Selected is False: not injected.
    write_status(conditions(false, true, false)).await;
    let mut injecting = injecting;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut injecting).await.is_err(),
        "injection must wait for Selected=True as well"
    );
    write_status(conditions(true, true, false)).await;
    let injection = injecting.await.unwrap().unwrap();
    let timeline = injection.timeline();
    assert!(timeline.injected >= timeline.created);
    injection.recover(Recovery::Delete, Duration::from_secs(10)).await.unwrap();

    // A deadline: the error quotes every condition seen, by type; the object is removed again.
    let injecting = {
        let run = run.clone();
        let options = InjectOptions { injected_timeout: Duration::from_secs(2), ..quick() };
        tokio::spawn(async move { run.inject(&network_loss("c", "loss", None), &options).await.map(|_| ()) })
    };
    await_condition(api.clone(), "loss", exists).await.unwrap();
    write_status(conditions(false, false, false)).await;
    let err = format!("{:#}", injecting.await.unwrap().unwrap_err());
    assert!(err.contains("Selected=False (no target)") && err.contains("AllInjected=False"), "{err}");
    assert!(err.contains("not injected after 2s"), "{err}");
    assert!(f.chaos_objects("c").await.is_empty(), "a failed injection is removed");
    let live: Vec<_> = run.ledger().live().into_iter().map(|e| e.object.kind).collect();
    assert_eq!(live, ["Namespace"]);

    Arc::into_inner(run).unwrap().finish().await.unwrap();
    f.stop().await;
}

/// A selector that matches no pod is refused before anything is created (as Steadybit refuses an
/// attack with no targets), within [`NOTHING_MATCHES_GRACE`] and not after the targets' timeout;
/// the refusal prints the selector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_matching_no_pod_is_refused_with_the_selector_printed() {
    let f = Fixture::start("nothing").await;
    let run = f.run("run-n", "nothing").await;
    f.pod("nothing", "web-0", json!({"app": "web"})).await;
    let started = std::time::Instant::now();
    let err = run.inject(&pod_kill("nothing", "kill-db"), &quick()).await.unwrap_err();
    let took = started.elapsed();
    println!("refused after {:.3} s", took.as_secs_f64());
    let root = err.root_cause().to_string();
    assert!(root.starts_with("refusing to inject: selector `.` matches no pod"), "{err:#}");
    assert!(root.contains(r#""labelSelectors":{"app":"db"}"#) && root.contains("in namespace(s) nothing"), "{root}");
    assert!(took >= NOTHING_MATCHES_GRACE && took < quick().targets_timeout / 2, "{took:?}");
    assert!(f.chaos_objects("nothing").await.is_empty());
    assert!(run.ledger().live().iter().all(|e| e.object.kind == "Namespace"));
    run.finish().await.unwrap();
    f.stop().await;
}

/// A failure the chaos engine reports — a record whose apply failed, or a `Warning` Event
/// `Failed` on the object — ends the injection at once with the engine's words as the root
/// cause, and the object is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_the_engine_reports_ends_the_injection_at_once_and_removes_the_object() {
    let f = Fixture::start("engine-failure").await;
    let run = Arc::new(f.run("run-e", "e").await);
    f.pod("e", "db-0", json!({"app": "db"})).await;
    let api: Api<DynamicObject> = Api::namespaced_with(f.client.clone(), "e", &chaos_resource(ChaosKind::NetworkChaos));
    let exists = |o: Option<&DynamicObject>| o.is_some();
    let words = "iptables is not installed (NetworkChaos loss and partition need it: install the iptables package)";

    // The status: the record's last event is a failed Apply (no controller here: the test
    // plays it).
    let injecting = {
        let run = run.clone();
        tokio::spawn(async move { run.inject(&network_loss("e", "loss", None), &quick()).await.map(|_| ()) })
    };
    await_condition(api.clone(), "loss", exists).await.unwrap();
    let started = std::time::Instant::now();
    let record = json!({"id": "e/db-0", "selectorKey": ".", "phase": "Not Injected", "injectedCount": 0,
        "recoveredCount": 0, "events": [{"type": "Failed", "operation": "Apply", "message": words,
        "timestamp": "2026-01-01T00:00:00Z"}]});
    let status = json!({"status": {"experiment": {"desiredPhase": "Run", "containerRecords": [record]},
        "conditions": conditions(true, false, false)}});
    api.patch("loss", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let err = injecting.await.unwrap().unwrap_err();
    println!("failed {:.3} s after the engine's status", started.elapsed().as_secs_f64());
    assert!(started.elapsed() < quick().injected_timeout / 2);
    assert_eq!(err.root_cause().to_string(), format!("e/db-0: {words}"), "{err:#}");
    assert!(format!("{err:#}").contains("the chaos engine reports a failure in its status"), "{err:#}");
    assert!(f.chaos_objects("e").await.is_empty(), "the failed object is removed");

    // An Event: Warning, reason Failed, about the object (how a failed selection is reported).
    let injecting = {
        let run = run.clone();
        tokio::spawn(async move { run.inject(&network_loss("e", "loss", None), &quick()).await.map(|_| ()) })
    };
    let obj = await_condition(api.clone(), "loss", exists).await.unwrap().unwrap();
    let started = std::time::Instant::now();
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "loss.failed", "namespace": "e"},
        "involvedObject": {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos", "namespace": "e",
            "name": "loss", "uid": obj.metadata.uid},
        "type": "Warning", "reason": "Failed",
        "message": "Failed to select targets: no pod matches the selector, or the mode picked none",
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Event>::namespaced(f.client.clone(), "e")
        .create(&PostParams::default(), &event)
        .await
        .unwrap();
    let err = injecting.await.unwrap().unwrap_err();
    println!("failed {:.3} s after the engine's Event", started.elapsed().as_secs_f64());
    assert!(started.elapsed() < quick().injected_timeout / 2);
    assert!(err.root_cause().to_string().starts_with("Failed to select targets: no pod matches"), "{err:#}");
    assert!(f.chaos_objects("e").await.is_empty(), "the failed object is removed");

    Arc::into_inner(run).unwrap().finish().await.unwrap();
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_by_delete_waits_for_the_finalizer_and_by_duration_for_all_recovered() {
    let f = Fixture::start("recovery").await;
    let mesh = FakeChaosMesh::start(&f.client);
    let run = f.run("run-r", "r").await;
    f.pod("r", "db-0", json!({"app": "db"})).await;
    let api: Api<DynamicObject> = Api::namespaced_with(f.client.clone(), "r", &chaos_resource(ChaosKind::NetworkChaos));

    let injection = run.inject(&network_loss("r", "loss", None), &quick()).await.unwrap();
    let stored = api.get("loss").await.unwrap();
    assert_eq!(stored.metadata.finalizers.as_deref(), Some(&[FINALIZER.to_string()][..]));

    mesh.hold_recovery(true);
    let mut recovering = tokio::spawn(injection.recover(Recovery::Delete, Duration::from_secs(30)));
    let deleting = |o: Option<&DynamicObject>| o.is_some_and(|o| o.metadata.deletion_timestamp.is_some());
    await_condition(api.clone(), "loss", deleting).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut recovering).await.is_err(),
        "recovery is not done while the finalizer holds the object"
    );
    let released = SystemTime::now();
    mesh.hold_recovery(false);
    let timeline = recovering.await.unwrap().unwrap();
    assert!(timeline.recovered.unwrap() >= released);
    assert!(api.get_opt("loss").await.unwrap().is_none());

    // By duration: AllRecovered=True after 2 s, then the kept object is deleted.
    let injection = run.inject(&network_loss("r", "loss-2s", Some("2s")), &quick()).await.unwrap();
    let timeline = injection.recover(Recovery::Duration, Duration::from_secs(30)).await.unwrap();
    let lasted = timeline.recovered.unwrap().duration_since(timeline.created).unwrap();
    assert!(lasted >= Duration::from_secs(1), "recovered after {lasted:?}");
    assert!(api.get_opt("loss-2s").await.unwrap().is_none());

    // A one-shot action never reports AllRecovered: refused at once, then recovered by delete.
    let injection = run.inject(&pod_kill("r", "kill"), &quick()).await.unwrap();
    assert_eq!(run.ledger().live().len(), 2, "namespace and the pod-kill are recorded");
    let refusal = injection.recover(Recovery::Duration, Duration::from_secs(5)).await.unwrap_err().to_string();
    assert!(refusal.contains("one-shot"), "{refusal}");
    // The refused recovery dropped the injection: the run removes it.
    let removed = run.finish().await.unwrap();
    assert!(removed.iter().any(|r| r.object.kind == "PodChaos" && r.outcome == Outcome::Deleted), "{removed:?}");
    assert!(f.chaos_objects("r").await.is_empty());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_leaves_a_ledger_whose_replay_removes_every_fault() {
    let f = Fixture::start("crash").await;
    let mesh = FakeChaosMesh::start(&f.client);
    let run = f.run("run-x", "x").await;
    f.pod("x", "db-0", json!({"app": "db"})).await;
    let a = run.inject(&network_loss("x", "loss", None), &quick()).await.unwrap();
    let b = run.inject(&pod_kill("x", "kill"), &quick()).await.unwrap();
    // The process "dies": nothing recovers, nothing cleans up.
    drop((a, b));
    std::mem::forget(run);
    assert_eq!(f.chaos_objects("x").await.len(), 2);

    let path = f.ledger_dir().join("run-x.jsonl");
    let kinds: Vec<_> = ledger::live_entries(ledger::read(&path).unwrap()).into_iter().map(|e| e.object.kind).collect();
    assert_eq!(kinds, ["Namespace", "NetworkChaos", "PodChaos"]);

    // Chaos Mesh is gone too (its finalizer is never dropped): cleanup strips it, loudly.
    mesh.hold_recovery(true);
    let replay = Ledger::open_file(&path).unwrap();
    let options =
        CleanupOptions { timeout: Duration::from_secs(20), finalizer_grace: Duration::from_secs(1), dry_run: false };
    let removals = replay.cleanup(&f.client, &options).await;
    let outcomes: Vec<_> = removals.iter().map(|r| (r.object.name.as_str(), r.outcome.clone())).collect();
    assert_eq!(
        outcomes,
        [("kill", Outcome::FinalizersStripped), ("loss", Outcome::FinalizersStripped), ("x", Outcome::Deleting)]
    );
    assert!(f.chaos_objects("x").await.is_empty());
    assert!(replay.live().is_empty());
    assert!(replay.remove_if_empty().unwrap());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_still_removes_its_fault_when_the_run_drops() {
    let f = Fixture::start("panic").await;
    let _mesh = FakeChaosMesh::start(&f.client);
    f.pod_in_new_namespace_for_run("run-p", "p").await;
    let (client, dir) = (f.client.clone(), f.ledger_dir());
    let step = tokio::spawn(async move {
        let run = Run::new(client, &dir, Some("run-p")).unwrap();
        let _injection = run.inject(&network_loss("p", "loss", None), &quick()).await.unwrap();
        panic!("a step failed with the fault in place");
    });
    assert!(step.await.unwrap_err().is_panic());
    assert!(f.chaos_objects("p").await.is_empty(), "Run::drop removed the fault while unwinding");
    let live = ledger::live_entries(ledger::read(&f.ledger_dir().join("run-p.jsonl")).unwrap());
    assert!(live.is_empty(), "{live:?}");
    f.stop().await;
}

fn hadrill(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hadrill")).args(args).output().unwrap()
}

async fn create_labelled(f: &Fixture, resource: &ChaosResource, run: Option<&str>) {
    let mut r = resource.clone();
    if let Some(run) = run {
        r.metadata_mut().labels = Some([(RUN_LABEL.to_string(), run.to_string())].into());
    }
    let ns = r.metadata().namespace.clone().unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(f.client.clone(), &ns, &chaos_resource(r.kind()));
    let obj: DynamicObject = serde_json::from_value(r.to_value()).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hadrill_clean_removes_labelled_leftovers_and_replays_ledgers_only() {
    let f = Fixture::start("clean").await;
    let _mesh = FakeChaosMesh::start(&f.client);
    let kubeconfig = f.dir.join("kubeconfig");
    f.sim.write_kubeconfig(&kubeconfig).unwrap();
    let namespaces: Api<Namespace> = Api::all(f.client.clone());
    let shared = json!({RUN_LABEL: "old-run", hadrill::chaos::ledger::SHARED_LABEL: "true"});
    for (ns, labels) in [("keep", json!({})), ("old", json!({RUN_LABEL: "old-run"})), ("hadrill-system", shared)] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}})).unwrap();
        namespaces.create(&PostParams::default(), &n).await.unwrap();
    }
    create_labelled(&f, &network_loss("keep", "labelled", None), Some("old-run")).await;
    create_labelled(&f, &pod_kill("keep", "other-run"), Some("newer-run")).await;
    create_labelled(&f, &network_loss("keep", "unlabelled", None), None).await;
    create_labelled(&f, &pod_kill("keep", "in-ledger"), None).await;
    // A ledger of old-run recording an object it created before it could label it.
    let uid = Api::<DynamicObject>::namespaced_with(f.client.clone(), "keep", &chaos_resource(ChaosKind::PodChaos))
        .get("in-ledger")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let old = Ledger::open(&f.ledger_dir(), "old-run").unwrap();
    let object = ObjectRef {
        api_version: "chaos-mesh.org/v1alpha1".into(),
        kind: "PodChaos".into(),
        namespace: Some("keep".into()),
        name: "in-ledger".into(),
    };
    old.record_creating(&object, None).unwrap();
    old.record_created(&object, &uid, None).unwrap();
    drop(old);
    // Wait until the fake put its finalizer on every object: removal then waits for it.
    for kind in [ChaosKind::NetworkChaos, ChaosKind::PodChaos] {
        let api: Api<DynamicObject> = Api::namespaced_with(f.client.clone(), "keep", &chaos_resource(kind));
        for o in api.list(&ListParams::default()).await.unwrap().items {
            let has = |o: Option<&DynamicObject>| o.is_some_and(|o| o.metadata.finalizers.is_some());
            await_condition(api.clone(), o.metadata.name.as_deref().unwrap(), has).await.unwrap();
        }
    }

    let kc = kubeconfig.to_str().unwrap();
    let ledger_dir = f.ledger_dir();
    let ld = ledger_dir.to_str().unwrap();
    let out = hadrill(&["clean", "--kubeconfig", kc, "--run", "old-run", "--ledger-dir", ld, "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("would delete").count(), 3, "{stdout}");
    assert_eq!(f.chaos_objects("keep").await.len(), 4, "a dry run removes nothing");

    let out = hadrill(&["clean", "--kubeconfig", kc, "--run", "old-run", "--ledger-dir", ld]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PodChaos keep/in-ledger: deleted"), "{stdout}");
    assert!(stdout.contains("NetworkChaos keep/labelled: deleted"), "{stdout}");
    assert!(stdout.contains("Namespace old: deletion requested"), "{stdout}");
    let mut left = f.chaos_objects("keep").await;
    left.sort();
    assert_eq!(left, ["NetworkChaos/unlabelled", "PodChaos/other-run"]);
    assert!(!ledger_dir.join("old-run.jsonl").exists(), "the emptied ledger is removed");
    let old_ns = namespaces.get_opt("old").await.unwrap();
    assert!(old_ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()));
    let system = namespaces.get("hadrill-system").await.unwrap();
    assert!(system.metadata.deletion_timestamp.is_none(), "a shared namespace (the controller's) is never swept");

    // --all-runs takes the other run's leftovers; the unlabelled object stays.
    let out = hadrill(&["clean", "--kubeconfig", kc, "--all-runs", "--ledger-dir", ld]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.chaos_objects("keep").await, ["NetworkChaos/unlabelled"]);
    // Neither --run nor --all-runs: the host only; the cluster is not touched.
    let out = hadrill(&["clean", "--kubeconfig", kc, "--ledger-dir", ld]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().all(|l| l.starts_with("host: ")), "{stdout}");
    assert_eq!(f.chaos_objects("keep").await, ["NetworkChaos/unlabelled"]);
    // Both: refused.
    assert!(!hadrill(&["clean", "--kubeconfig", kc, "--all-runs", "--run", "x"]).status.success());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_held_injection_exits_130_and_leaves_nothing() {
    use tokio::io::AsyncBufReadExt;
    let f = Fixture::start("sigint").await;
    let _mesh = FakeChaosMesh::start(&f.client);
    let kubeconfig = f.dir.join("kubeconfig");
    f.sim.write_kubeconfig(&kubeconfig).unwrap();
    f.pod_in_new_namespace_for_run("run-s", "s").await;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hadrill"))
        .args(["inject", "primary-network-loss-50", "--namespace", "s", "--run", "run-s", "--hold", "--set"])
        .arg("loss=100")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--ledger-dir")
        .arg(f.ledger_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap() {
        let holding = line.starts_with("holding");
        seen.push(line);
        if holding {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.starts_with("injected NetworkChaos s/primary-network-loss-50")), "{seen:?}");
    assert_eq!(f.chaos_objects("s").await, ["NetworkChaos/primary-network-loss-50"]);
    assert!(f.ledger_dir().join("run-s.jsonl").exists());

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(f.chaos_objects("s").await.is_empty(), "the interrupted run removed its fault");
    assert!(!f.ledger_dir().join("run-s.jsonl").exists(), "and its ledger");

    // Without --hold: injected, recovered by delete (pod-kill is one-shot), nothing left, exit 0.
    let kc = kubeconfig.to_str().unwrap();
    let ld = f.ledger_dir();
    let out = hadrill(
        &["inject", "primary-pod-kill", "-n", "s", "--run", "run-s", "--kubeconfig", kc, "--ledger-dir"]
            .into_iter()
            .chain([ld.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("injected PodChaos s/primary-pod-kill") && stdout.contains("recovered (Delete)"),
        "{stdout}"
    );
    assert!(f.chaos_objects("s").await.is_empty());
    assert!(!ld.join("run-s.jsonl").exists());
    f.stop().await;
}

#[test]
fn target_readiness_needs_every_named_pod_enough_pods_and_running_ones() {
    let pod = |name: &str, phase: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "dbs", "labels": {"app": "db"}},
            "spec": {"containers": [], "nodeName": "node-1"},
            "status": {"phase": phase},
        }))
        .unwrap()
    };
    let fixed = resource(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: k, namespace: dbs}\n\
         spec: {action: pod-kill, mode: fixed, value: \"2\", selector: {labelSelectors: {app: db}, nodes: [node-1]}}\n",
    );
    let sel = &TargetSelector::of(&fixed).unwrap()[0];
    let nodes = Default::default();
    let (a, b, c) = (pod("a", "Running"), pod("b", "Pending"), pod("c", "Running"));
    assert!(sel.matches("dbs", &a, &nodes), "default namespace, labels and node");
    let mut elsewhere = a.clone();
    elsewhere.spec.as_mut().unwrap().node_name = Some("node-2".into());
    assert!(!sel.matches("dbs", &elsewhere, &nodes));
    assert!(sel.ready(&[&a]).unwrap_err().contains("wants 2 pods, 1 match"));
    assert!(sel.ready(&[&a, &b]).unwrap_err().contains("dbs/b is Pending"));
    assert!(sel.ready(&[&a, &c]).is_ok());
    assert!(sel.ready(&[]).unwrap_err().contains("no pod matches"));

    let named = resource(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: k, namespace: dbs}\n\
         spec: {action: pod-kill, mode: all, selector: {pods: {dbs: [a, z]}}}\n",
    );
    let sel = &TargetSelector::of(&named).unwrap()[0];
    assert!(sel.matches("other", &a, &nodes) && !sel.matches("dbs", &c, &nodes));
    assert!(sel.ready(&[&a]).unwrap_err().contains("pod dbs/z does not exist"));
}
