//! Deletion semantics (finalizers, garbage collection, namespaces), CRDs and server-side apply.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::runtime::wait::conditions;
use serde_json::json;

/// Deployment -> ReplicaSet -> 2 Pods, as the workload controllers build and link them.
async fn owner_chain(client: &kube::Client, name: &str) -> (Deployment, ReplicaSet, Vec<Pod>) {
    use futures::StreamExt;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let template =
        json!({"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template}}))
    .unwrap();
    let d = deps.create(&PostParams::default(), &d).await.unwrap();
    let selector = format!("app={name}");
    let mut watch =
        kube::runtime::watcher(pods.clone(), kube::runtime::watcher::Config::default().labels(&selector)).boxed();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = pods.list(&ListParams::default().labels(&selector)).await.unwrap().items;
        if listed.len() == 2 {
            let rs_name = listed[0].metadata.owner_references.as_ref().unwrap()[0].name.clone();
            return (d, rss.get(&rs_name).await.unwrap(), listed);
        }
        tokio::time::timeout_at(deadline, watch.next()).await.expect("the controllers create 2 pods");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn finalizers_hold_a_delete_until_removed() {
    let sim = support::start(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["hadrill.io/hold"]}})).unwrap();
    let cm = api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let still = api.get("held").await.expect("held by finalizer");
    assert!(still.metadata.deletion_timestamp.is_some());
    let err = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["hadrill.io/hold", "new"]}})),
        )
        .await
        .expect_err("no new finalizers while deleting");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err}");
    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    support::await_deleted(&api, "held", cm.metadata.uid.as_deref().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn background_deletion_collects_the_whole_owner_chain() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let (_, rs, pods) = owner_chain(&client, "bg").await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    deps.delete("bg", &DeleteParams::background()).await.unwrap();
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    support::await_deleted(&rss, rs.metadata.name.as_deref().unwrap(), rs.metadata.uid.as_deref().unwrap()).await;
    let pod_api: Api<Pod> = Api::default_namespaced(client.clone());
    for p in pods {
        support::await_deleted(&pod_api, p.metadata.name.as_deref().unwrap(), p.metadata.uid.as_deref().unwrap()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn foreground_deletion_keeps_the_owner_until_dependents_are_gone() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let (d, _, pods) = owner_chain(&client, "fg").await;
    // A finalizer on one pod keeps the chain alive: the owner must wait for it.
    let pod_api: Api<Pod> = Api::default_namespaced(client.clone());
    let held = pods[0].metadata.name.clone().unwrap();
    pod_api
        .patch(&held, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": ["hadrill.io/hold"]}})))
        .await
        .unwrap();
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    deps.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let pending = deps.get("fg").await.expect("owner waits for dependents");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(pending.metadata.finalizers.unwrap_or_default().contains(&"foregroundDeletion".to_string()));
    support::await_cond(&pod_api, &held, "the held pod to be marked for deletion", |p: Option<&Pod>| {
        p.is_some_and(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(deps.get("fg").await.is_ok(), "owner still present while a dependent remains");
    pod_api
        .patch(&held, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    support::await_deleted(&deps, "fg", d.metadata.uid.as_deref().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphan_deletion_keeps_dependents_without_owner_references() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let (d, rs, _) = owner_chain(&client, "or").await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    deps.delete("or", &DeleteParams { propagation_policy: Some(PropagationPolicy::Orphan), ..Default::default() })
        .await
        .unwrap();
    support::await_deleted(&deps, "or", d.metadata.uid.as_deref().unwrap()).await;
    let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let rs = rss.get(rs.metadata.name.as_deref().unwrap()).await.expect("orphaned ReplicaSet stays");
    assert!(rs.metadata.owner_references.unwrap_or_default().is_empty());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    assert_eq!(pods.list(&ListParams::default().labels("app=or")).await.unwrap().items.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_namespace_removes_its_content_then_the_namespace() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    let ns = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    for i in 0..3 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    nss.delete("doomed", &DeleteParams::default()).await.unwrap();
    support::await_deleted(&nss, "doomed", ns.metadata.uid.as_deref().unwrap()).await;
    assert!(cms.list(&ListParams::default()).await.unwrap().items.is_empty());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
    let err = cms.create(&PostParams::default(), &cm).await.expect_err("namespace is gone");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 404), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crd_serves_podchaos_for_create_list_watch_and_validation() {
    // This test installs the CRD itself: no chaos engine (which would install it at start).
    let chaos = sim::chaos::ChaosConfig { enabled: false, ..Default::default() };
    let sim = support::start_with(sim::SimConfig { chaos, ..Default::default() }).await;
    let client = sim.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(support::podchaos_crd()).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    support::await_cond(
        &crds,
        "podchaos.chaos-mesh.org",
        "the CRD to be established",
        conditions::is_crd_established(),
    )
    .await;

    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("chaos-mesh.org", "v1alpha1", "PodChaos"), "podchaos");
    let chaos: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let watch = {
        let chaos = chaos.clone();
        tokio::spawn(async move {
            use futures::TryStreamExt;
            let stream = kube::runtime::watcher(chaos, kube::runtime::watcher::Config::default());
            let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(stream));
            stream.try_next().await.unwrap().unwrap().metadata.name.unwrap()
        })
    };
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos",
        "metadata": {"name": "kill-one"},
        "spec": {"action": "pod-kill", "mode": "one", "selector": {"namespaces": ["default"], "labelSelectors": {"app": "web"}}, "bogus": 1}
    }))
    .unwrap();
    let created = chaos.create(&PostParams::default(), &obj).await.unwrap();
    assert!(created.data["spec"].get("bogus").is_none(), "unknown fields are pruned");
    assert_eq!(tokio::time::timeout(std::time::Duration::from_secs(5), watch).await.unwrap().unwrap(), "kill-one");
    assert_eq!(chaos.list(&ListParams::default()).await.unwrap().items.len(), 1);

    let mut bad = obj.clone();
    bad.metadata.name = Some("bad".into());
    bad.data["spec"]["mode"] = json!("sometimes");
    let err = chaos.create(&PostParams::default(), &bad).await.expect_err("enum enforced");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("spec.mode"), "{}", s.message);
        }
        other => panic!("unexpected {other}"),
    }

    crds.delete("podchaos.chaos-mesh.org", &DeleteParams::default()).await.unwrap();
    support::await_cond(
        &crds,
        "podchaos.chaos-mesh.org",
        "the CRD to be deleted",
        |c: Option<&CustomResourceDefinition>| c.is_none(),
    )
    .await;
    let err = chaos.list(&ListParams::default()).await.expect_err("no longer served");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 404), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_tracks_field_owners_and_conflicts() {
    let sim = support::start(1).await;
    let leases: Api<Lease> = Api::default_namespaced(sim.client().unwrap());
    let intent = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
    };
    let a = leases.patch("leader", &PatchParams::apply("replica-a"), &Patch::Apply(intent("replica-a"))).await.unwrap();
    let managers: Vec<_> =
        a.metadata.managed_fields.unwrap().into_iter().map(|m| (m.manager.unwrap(), m.operation.unwrap())).collect();
    assert_eq!(managers, vec![("replica-a".to_string(), "Apply".to_string())]);
    // Re-applying the same intent is a no-op.
    let again =
        leases.patch("leader", &PatchParams::apply("replica-a"), &Patch::Apply(intent("replica-a"))).await.unwrap();
    assert_eq!(again.metadata.resource_version, a.metadata.resource_version);

    let err = leases
        .patch("leader", &PatchParams::apply("replica-b"), &Patch::Apply(intent("replica-b")))
        .await
        .expect_err("field owned by replica-a");
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("replica-a") && s.message.contains(".spec.holderIdentity"), "{}", s.message);
        }
        other => panic!("unexpected {other}"),
    }
    let b = leases
        .patch("leader", &PatchParams::apply("replica-b").force(), &Patch::Apply(intent("replica-b")))
        .await
        .unwrap();
    assert_eq!(b.spec.unwrap().holder_identity.as_deref(), Some("replica-b"));

    // A resourceVersion in the apply configuration is a precondition, even when forced.
    let mut stale = intent("replica-a");
    stale["metadata"]["resourceVersion"] = json!(a.metadata.resource_version);
    let err = leases
        .patch("leader", &PatchParams::apply("replica-a").force(), &Patch::Apply(&stale))
        .await
        .expect_err("stale resourceVersion");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err}");
    let mut current = intent("replica-a");
    current["metadata"]["resourceVersion"] = json!(b.metadata.resource_version);
    let c = leases.patch("leader", &PatchParams::apply("replica-a").force(), &Patch::Apply(&current)).await.unwrap();
    assert_eq!(c.spec.unwrap().holder_identity.as_deref(), Some("replica-a"));
}

#[tokio::test(flavor = "multi_thread")]
async fn services_get_loopback_cluster_ips_and_pods_bind_once() {
    use k8s_openapi::api::core::v1::Service;
    let sim = support::start(2).await;
    let client = sim.client().unwrap();
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let svc = |name: &str| -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}),
        )
        .unwrap()
    };
    let a = svcs.create(&PostParams::default(), &svc("a")).await.unwrap();
    let b = svcs.create(&PostParams::default(), &svc("b")).await.unwrap();
    let ip_a = a.spec.unwrap().cluster_ip.unwrap();
    let ip_b = b.spec.unwrap().cluster_ip.unwrap();
    let in_range =
        |ip: &str| sim.addresses().service_range().contains(&ip.parse::<std::net::Ipv4Addr>().expect("IPv4"));
    assert!(in_range(&ip_a) && in_range(&ip_b) && ip_a != ip_b, "{ip_a} {ip_b}");
    // An update that leaves clusterIP out keeps it; changing it is refused.
    let kept =
        svcs.patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"clusterIP": null}}))).await.unwrap();
    assert_eq!(kept.spec.unwrap().cluster_ip.as_deref(), Some(ip_a.as_str()));
    let err = svcs
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"clusterIP": "127.96.9.9"}})))
        .await
        .expect_err("clusterIP is immutable");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err}");

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    // No scheduler serves "none": the test does the binding the scheduler would.
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"schedulerName": "none", "containers": [{"name": "c", "image": "i"}]}}))
    .unwrap();
    let p = pods.create(&PostParams::default(), &p).await.unwrap();
    let tolerations = p.spec.unwrap().tolerations.unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable") && t.toleration_seconds == Some(300))
    );
    let raw = support::Raw::new(&sim);
    let bind = r#"{"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "hadrill-worker2"}}"#;
    let r = raw.send("POST", "/api/v1/namespaces/default/pods/p/binding", "application/json", bind).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(pods.get("p").await.unwrap().spec.unwrap().node_name.as_deref(), Some("hadrill-worker2"));
    let r = raw.send("POST", "/api/v1/namespaces/default/pods/p/binding", "application/json", bind).await;
    assert_eq!(r.status, 409, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_written_as_events_k8s_io_are_read_as_core_events() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let new_events: Api<Event> = Api::default_namespaced(client.clone());
    let e: Event = serde_json::from_value(json!({"metadata": {"name": "svc.failover"},
        "regarding": {"kind": "Service", "name": "dispatch", "namespace": "default"},
        "note": "FailedOver: primary dispatch-a unhealthy", "reason": "FailedOver", "type": "Normal", "action": "Switch",
        "reportingController": "hadrill-controller", "reportingInstance": "c-1", "eventTime": "2026-01-01T00:00:00.000000Z"}))
    .unwrap();
    new_events.create(&PostParams::default(), &e).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let listed = core
        .list(&ListParams::default().fields("involvedObject.kind=Service,involvedObject.name=dispatch"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].message.as_deref(), Some("FailedOver: primary dispatch-a unhealthy"));
    assert_eq!(listed.items[0].reporting_component.as_deref(), Some("hadrill-controller"));
    let patched = new_events
        .patch(
            "svc.failover",
            &PatchParams::default(),
            &Patch::Merge(json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.series.unwrap().count, 2);
    assert_eq!(core.get("svc.failover").await.unwrap().series.unwrap().count, Some(2));
    assert_eq!(new_events.list(&ListParams::default()).await.unwrap().items.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_removes_fields_the_manager_stops_applying() {
    let sim = support::start(1).await;
    let deps: Api<Deployment> = Api::default_namespaced(sim.client().unwrap());
    let intent = |replicas: Option<i32>| {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        if let Some(r) = replicas {
            d["spec"]["replicas"] = json!(r);
        }
        d
    };
    let pp = PatchParams::apply("kubectl").force();
    let first = deps.patch("web", &pp, &Patch::Apply(intent(Some(3)))).await.unwrap();
    assert_eq!(first.spec.as_ref().unwrap().replicas, Some(3));
    let ops: Vec<String> = first.metadata.managed_fields.unwrap().into_iter().map(|m| m.operation.unwrap()).collect();
    assert_eq!(ops, vec!["Apply"], "an apply is recorded as Apply only");
    let mut without_label = intent(None);
    without_label["metadata"]["labels"] = json!({});
    let second = deps.patch("web", &pp, &Patch::Apply(without_label)).await.unwrap();
    assert_eq!(second.spec.as_ref().unwrap().replicas, Some(1), "replicas no longer applied: removed, then defaulted");
    assert!(!second.metadata.labels.unwrap_or_default().contains_key("team"), "label no longer applied: removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_answers_a_status_once_gone_and_the_object_while_pending() {
    let sim = support::start(1).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    for (name, fins) in [("now", json!([])), ("later", json!(["hadrill.io/hold"]))] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "finalizers": fins}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    assert!(cms.delete("now", &DeleteParams::default()).await.unwrap().is_right(), "gone: Status");
    assert!(cms.delete("later", &DeleteParams::default()).await.unwrap().is_left(), "pending: the object");
}

#[tokio::test(flavor = "multi_thread")]
async fn small_kube_apiserver_rules_hold() {
    use k8s_openapi::api::core::v1::Secret;
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let err = nss.delete("kube-system", &DeleteParams::default()).await.expect_err("protected");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 403), "{err}");

    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})).unwrap();
    let s = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(s.string_data.is_none());
    assert_eq!(s.data.unwrap()["password"].0, b"hunter2".to_vec());

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "evictee"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .unwrap();
    let p = pods.create(&PostParams::default(), &p).await.unwrap();
    pods.evict("evictee", &Default::default()).await.unwrap();
    support::await_deleted(&pods, "evictee", p.metadata.uid.as_deref().unwrap()).await;
}
