//! CRUD for every served kind, subresources, selectors, paging, conflicts — all through kube-rs.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

/// Pods of these API tests are left unscheduled (no scheduler serves "none"), so what the
/// tests see is exactly what they wrote.
fn pod_spec() -> Value {
    json!({"schedulerName": "none", "containers": [{"name": "app", "image": "hadrill/test-server:dev"}]})
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec()})
}

/// (group, version, kind, plural, namespaced, body without metadata.name)
fn kinds() -> Vec<(&'static str, &'static str, &'static str, &'static str, bool, Value)> {
    let sel = json!({"matchLabels": {"app": "x"}});
    vec![
        ("", "v1", "Namespace", "namespaces", false, json!({})),
        // A scheduler nobody runs: the default scheduler would write the pod's status between
        // this test's get and replace (a conflict, as on a real cluster).
        (
            "",
            "v1",
            "Pod",
            "pods",
            true,
            json!({"spec": {"schedulerName": "none", "containers": pod_spec()["containers"]}}),
        ),
        ("", "v1", "Service", "services", true, json!({"spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})),
        (
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            json!({"subsets": [{"addresses": [{"ip": "127.0.0.9"}], "ports": [{"port": 80}]}]}),
        ),
        ("", "v1", "Node", "nodes", false, json!({"spec": {}})),
        (
            "",
            "v1",
            "Event",
            "events",
            true,
            json!({"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Test", "message": "m"}),
        ),
        ("", "v1", "ConfigMap", "configmaps", true, json!({"data": {"k": "v"}})),
        ("", "v1", "Secret", "secrets", true, json!({"stringData": {"k": "v"}})),
        ("", "v1", "ServiceAccount", "serviceaccounts", true, json!({})),
        ("apps", "v1", "Deployment", "deployments", true, json!({"spec": {"selector": sel, "template": template()}})),
        ("apps", "v1", "ReplicaSet", "replicasets", true, json!({"spec": {"selector": sel, "template": template()}})),
        (
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            json!({"spec": {"serviceName": "x", "selector": sel, "template": template()}}),
        ),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
        ),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.9"]}]}),
        ),
        (
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            json!({"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "t", "reportingInstance": "t", "action": "A", "reason": "R", "type": "Normal", "regarding": {"kind": "Pod", "name": "p"}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"}]}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_builtin_kind_supports_create_get_list_update_patch_delete() {
    let sim = support::start(1).await;
    let client = sim.client().unwrap();
    for (group, version, kind, plural, namespaced, body) in kinds() {
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), "default", &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        let name = format!("crud-{}", kind.to_lowercase());
        let mut obj = body.clone();
        obj["apiVersion"] = json!(ar.api_version);
        obj["kind"] = json!(kind);
        obj["metadata"] = json!({"name": name, "labels": {"crud": "yes"}});
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        let created = api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create {kind}: {e}"));
        let uid = created.metadata.uid.clone().expect("uid set");
        assert!(created.metadata.creation_timestamp.is_some(), "{kind}: creationTimestamp");
        let rv1: u64 = created.metadata.resource_version.clone().unwrap().parse().unwrap();

        let got = api.get(&name).await.unwrap_or_else(|e| panic!("get {kind}: {e}"));
        assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));

        let listed = api.list(&ListParams::default().labels("crud=yes")).await.unwrap();
        assert_eq!(listed.items.len(), 1, "{kind}: list by label");

        // Controllers (Deployment, ReplicaSet, StatefulSet) may write in between: a conflict
        // means read again and retry, as every client does.
        let mut current = got.clone();
        let updated = loop {
            let mut changed = current.clone();
            changed.metadata.annotations = Some([("step".to_string(), "update".to_string())].into());
            match api.replace(&name, &PostParams::default(), &changed).await {
                Ok(u) => break u,
                Err(kube::Error::Api(s)) if s.code == 409 => current = api.get(&name).await.unwrap(),
                Err(e) => panic!("replace {kind}: {e}"),
            }
        };
        let rv2: u64 = updated.metadata.resource_version.clone().unwrap().parse().unwrap();
        assert!(rv2 > rv1, "{kind}: resourceVersion increases");

        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"patched": "yes"}}})))
            .await
            .unwrap_or_else(|e| panic!("patch {kind}: {e}"));
        assert_eq!(patched.metadata.labels.as_ref().unwrap()["patched"], "yes");
        assert_eq!(patched.metadata.annotations.as_ref().unwrap()["step"], "update");

        api.delete(&name, &DeleteParams::default()).await.unwrap_or_else(|e| panic!("delete {kind}: {e}"));
        if kind == "Namespace" {
            support::await_deleted(&api, &name, &uid).await;
        }
        let err = api.get(&name).await.expect_err("gone after delete");
        assert!(matches!(err, kube::Error::Api(ref s) if s.code == 404), "{kind}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_subresource_is_separate_and_generation_tracks_spec() {
    let sim = support::start(1).await;
    let api: Api<Deployment> = Api::default_namespaced(sim.client().unwrap());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": template()},
        "status": {"replicas": 99}
    }))
    .unwrap();
    let d = api.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    assert!(d.status.as_ref().and_then(|s| s.replicas).is_none(), "status is dropped on create");

    let s = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2}, "spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(s.status.unwrap().replicas, Some(2));
    assert_eq!(s.spec.as_ref().unwrap().replicas, Some(2), "status endpoint ignores spec");
    assert_eq!(s.metadata.generation, Some(1), "status change does not bump generation");

    let m = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(m.spec.unwrap().replicas, Some(3));
    // The Deployment controller also writes status (2 or 3 replicas by now); the 0 sent to
    // the main endpoint must never land.
    assert_ne!(m.status.unwrap().replicas, Some(0), "main endpoint ignores status");
    assert_eq!(m.metadata.generation, Some(2));

    let l = api
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})))
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(2), "metadata change does not bump generation");

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=x"));
    api.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await.unwrap();
    assert_eq!(api.get("web").await.unwrap().spec.unwrap().replicas, Some(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn label_and_field_selectors_filter_lists() {
    let sim = support::start(1).await;
    let api: Api<Pod> = Api::default_namespaced(sim.client().unwrap());
    for (name, app, tier, node) in [
        ("a", "web", Some("front"), "n1"),
        ("b", "web", None, "n2"),
        ("c", "db", Some("back"), "n1"),
        ("d", "cache", None, ""),
    ] {
        let mut labels = json!({"app": app});
        if let Some(t) = tier {
            labels["tier"] = json!(t);
        }
        let mut spec = pod_spec();
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": spec})).unwrap();
        api.create(&PostParams::default(), &p).await.unwrap();
    }
    let names =
        |l: kube::core::ObjectList<Pod>| l.items.into_iter().map(|p| p.metadata.name.unwrap()).collect::<Vec<_>>();
    let cases: Vec<(ListParams, Vec<&str>)> = vec![
        (ListParams::default().labels("app=web"), vec!["a", "b"]),
        (ListParams::default().labels("app!=web"), vec!["c", "d"]),
        (ListParams::default().labels("app in (db,cache)"), vec!["c", "d"]),
        (ListParams::default().labels("app notin (db,cache)"), vec!["a", "b"]),
        (ListParams::default().labels("tier"), vec!["a", "c"]),
        (ListParams::default().labels("!tier"), vec!["b", "d"]),
        (ListParams::default().labels("app=web,tier"), vec!["a"]),
        (ListParams::default().fields("spec.nodeName=n1"), vec!["a", "c"]),
        (ListParams::default().fields("spec.nodeName="), vec!["d"]),
        (ListParams::default().fields("metadata.name=b"), vec!["b"]),
        (ListParams::default().fields("metadata.namespace=default,status.phase=Pending"), vec!["a", "b", "c", "d"]),
        (ListParams::default().fields("status.phase!=Pending"), vec![]),
    ];
    for (lp, want) in cases {
        let desc = format!("{:?} {:?}", lp.label_selector, lp.field_selector);
        assert_eq!(names(api.list(&lp).await.unwrap()), want, "{desc}");
    }
    let bad = api.list(&ListParams::default().fields("spec.bogus=1")).await.expect_err("unsupported field");
    assert!(matches!(bad, kube::Error::Api(ref s) if s.code == 400), "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_and_continue_page_through_a_list() {
    let sim = support::start(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    for i in 0..25 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("cm-{i:02}")}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_updates_at_one_resource_version_give_exactly_one_conflict() {
    let sim = support::start(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "race"}, "data": {"v": "0"}})).unwrap();
    let base = api.create(&PostParams::default(), &cm).await.unwrap();
    let mut a = base.clone();
    a.data = Some([("v".to_string(), "a".to_string())].into());
    let mut b = base.clone();
    b.data = Some([("v".to_string(), "b".to_string())].into());
    let pp = PostParams::default();
    let (ra, rb) = tokio::join!(api.replace("race", &pp, &a), api.replace("race", &pp, &b));
    let conflicts = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict"))
        .count();
    let ok = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, conflicts), (1, 1), "a: {ra:?}\nb: {rb:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_patch_and_strategic_merge_patch() {
    let sim = support::start(1).await;
    let api: Api<Deployment> = Api::default_namespaced(sim.client().unwrap());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [
            {"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:2"}]}}}});
    let out = api.patch("web", &PatchParams::default(), &Patch::Strategic(smp)).await.unwrap();
    let containers = out.spec.unwrap().template.spec.unwrap().containers;
    let images: Vec<_> = containers.iter().map(|c| (c.name.as_str(), c.image.as_deref().unwrap())).collect();
    assert_eq!(images, vec![("app", "a:1"), ("side", "s:2")], "containers merge by name");

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 4}
    ]))
    .unwrap();
    let out = api.patch("web", &PatchParams::default(), &Patch::<()>::Json(ops)).await.unwrap();
    assert_eq!(out.spec.unwrap().replicas, Some(4));
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 1}])).unwrap();
    let err = api.patch("web", &PatchParams::default(), &Patch::<()>::Json(failing)).await.expect_err("test op fails");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletecollection_removes_only_what_the_selector_matches() {
    let sim = support::start(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let deleted =
        api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("tier=web")).await.unwrap();
    let gone: Vec<String> =
        deleted.left().map(|l| l.items.into_iter().map(|c| c.metadata.name.unwrap()).collect()).unwrap_or_default();
    assert_eq!(gone, vec!["a", "b"]);
    let left: Vec<String> =
        api.list(&ListParams::default()).await.unwrap().items.into_iter().map(|c| c.metadata.name.unwrap()).collect();
    assert_eq!(left, vec!["c"]);
}
