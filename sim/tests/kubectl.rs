//! `kubectl` against the written kubeconfig: apply, get, server-side apply, CRDs, delete.
//! kubectl is optional for users: without it these tests print a notice and pass, unless
//! HADRILL_REQUIRE_KUBECTL=1 (set by CI) makes its absence a failure.

mod support;

use std::path::{Path, PathBuf};

use support::kubectl::{Kubectl, available};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_applies_gets_and_deletes() {
    if !available("the kubectl compatibility test") {
        return;
    }
    let sim = support::start(3).await;
    let (k, dir) = Kubectl::for_cluster(&sim, "apply");
    let web = fixture("web.yaml");
    let web = web.to_str().unwrap();

    let out = k.ok(&["apply", "-f", web]).await;
    assert!(out.contains("deployment.apps/web created") && out.contains("service/web created"), "{out}");
    let out = k.ok(&["apply", "-f", web]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    let out = k.ok(&["apply", "--server-side", "-f", web]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let out = k.ok(&["get", "nodes"]).await;
    assert_eq!(out.lines().filter(|l| l.starts_with("hadrill-worker")).count(), 3, "{out}");
    let out = k.ok(&["get", "deployments,services", "-o", "wide"]).await;
    assert!(out.contains("deployment.apps/web") && out.contains("app=web"), "{out}");
    k.ok(&["run", "probe", "--image=hadrill/test-server:dev", "--labels=app=probe"]).await;
    k.ok(&["wait", "--for=condition=Ready", "pod/probe", "--timeout=30s"]).await;
    let out = k.ok(&["get", "pods", "-A", "-o", "wide"]).await;
    let header = out.lines().next().unwrap_or_default();
    for col in ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"] {
        assert!(header.contains(col), "column {col} in {header:?}");
    }
    let row = out.lines().find(|l| l.contains("probe")).unwrap_or_else(|| panic!("no probe row in {out}"));
    assert!(row.starts_with("default") && row.contains("1/1") && row.contains("Running"), "{row}");
    assert!(row.contains(" 127.") && row.contains(" hadrill-worker"), "pod IP and node in {row}");
    let out = k.ok(&["scale", "deployment/web", "--replicas=4"]).await;
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(k.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]).await.trim(), "4");

    let crd = support::podchaos_crd();
    let crd_path = dir.join("crd.json");
    std::fs::write(&crd_path, crd.to_string()).unwrap();
    k.ok(&["apply", "-f", crd_path.to_str().unwrap()]).await;
    k.ok(&["wait", "--for", "condition=Established", "crd/podchaos.chaos-mesh.org", "--timeout=10s"]).await;
    let chaos = fixture("podchaos.yaml");
    let out = k.ok(&["apply", "-f", chaos.to_str().unwrap()]).await;
    assert!(out.contains("podchaos.chaos-mesh.org/kill-one-web created"), "{out}");
    let out = k.ok(&["get", "podchaos"]).await;
    assert!(out.contains("kill-one-web") && out.contains("pod-kill"), "{out}");
    let out = k.ok(&["describe", "podchaos", "kill-one-web"]).await;
    assert!(out.contains("Pod Kill") || out.contains("pod-kill"), "{out}");

    let out = k.ok(&["delete", "-f", web]).await;
    assert!(out.contains("deleted"), "{out}");
    let (ok, out) = k.run(&["get", "deployment", "web"]).await;
    assert!(!ok && out.contains("NotFound"), "{out}");
    let out = k.ok(&["delete", "podchaos", "kill-one-web"]).await;
    assert!(out.contains("deleted"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// kubectl's typed commands (`create <kind>`, `run`, `expose`, `scale`, `set image`,
/// `rollout`) send protobuf bodies and ask for protobuf answers (client-go ≥1.32
/// `PrefersProtobuf`, kubectl `pkg/cmd/create/*.go`); each step checks the object it made.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_typed_commands_speak_protobuf() {
    if !available("the kubectl typed-commands test") {
        return;
    }
    let sim = support::start(2).await;
    let (k, dir) = Kubectl::for_cluster(&sim, "typed");

    k.ok(&["create", "namespace", "foo"]).await;
    let ns = k.json(&["namespace", "foo"]).await;
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "foo", "{ns}");

    k.ok(&["create", "configmap", "x", "-n", "foo", "--from-literal=a=b"]).await;
    let cm = k.json(&["configmap", "x", "-n", "foo"]).await;
    assert_eq!(cm["data"], serde_json::json!({"a": "b"}), "{cm}");

    k.ok(&["create", "secret", "generic", "s", "-n", "foo", "--from-literal=k=v"]).await;
    let secret = k.json(&["secret", "s", "-n", "foo"]).await;
    assert_eq!((secret["type"].as_str(), secret["data"]["k"].as_str()), (Some("Opaque"), Some("dg==")), "{secret}");

    k.ok(&["create", "deployment", "web", "-n", "foo", "--image=hadrill/test-server:dev", "--replicas=2"]).await;
    let d = k.json(&["deployment", "web", "-n", "foo"]).await;
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "hadrill/test-server:dev", "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web", "{d}");
    let out = k.ok(&["rollout", "status", "deployment/web", "-n", "foo", "--timeout=60s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = k.json(&["deployment", "web", "-n", "foo"]).await;
    assert_eq!(d["status"]["readyReplicas"], 2, "{d}");

    k.ok(&["create", "service", "clusterip", "api", "-n", "foo", "--tcp=80:8080"]).await;
    let svc = k.json(&["service", "api", "-n", "foo"]).await;
    assert_eq!(svc["spec"]["ports"][0]["port"], 80, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080, "{svc}");
    assert!(svc["spec"]["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty()), "{svc}");
    assert_eq!(svc["status"], serde_json::json!({"loadBalancer": {}}), "{svc}");

    k.ok(&["run", "solo", "-n", "foo", "--image=hadrill/test-server:dev", "--labels=app=solo"]).await;
    k.ok(&["wait", "--for=condition=Ready", "pod/solo", "-n", "foo", "--timeout=60s"]).await;
    let pod = k.json(&["pod", "solo", "-n", "foo"]).await;
    assert_eq!(pod["status"]["phase"], "Running", "{pod}");
    assert_eq!(pod["metadata"]["labels"]["app"], "solo", "{pod}");

    k.ok(&["expose", "deployment", "web", "-n", "foo", "--port=80", "--target-port=8080"]).await;
    let svc = k.json(&["service", "web", "-n", "foo"]).await;
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "web"}), "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080, "{svc}");

    k.ok(&["scale", "deployment/web", "-n", "foo", "--replicas=3"]).await;
    k.ok(&["label", "deployment/web", "-n", "foo", "tier=front"]).await;
    k.ok(&["annotate", "deployment/web", "-n", "foo", "note=hello"]).await;
    let d = k.json(&["deployment", "web", "-n", "foo"]).await;
    assert_eq!(d["spec"]["replicas"], 3, "{d}");
    assert_eq!(d["metadata"]["labels"]["tier"], "front", "{d}");
    assert_eq!(d["metadata"]["annotations"]["note"], "hello", "{d}");

    k.ok(&["set", "image", "deployment/web", "-n", "foo", "test-server=hadrill/test-server:v2"]).await;
    k.ok(&["rollout", "status", "deployment/web", "-n", "foo", "--timeout=60s"]).await;
    let d = k.json(&["deployment", "web", "-n", "foo"]).await;
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "hadrill/test-server:v2", "{d}");
    let history = k.ok(&["rollout", "history", "deployment/web", "-n", "foo"]).await;
    let revisions: Vec<&str> =
        history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    k.ok(&["rollout", "undo", "deployment/web", "-n", "foo"]).await;
    k.ok(&["rollout", "status", "deployment/web", "-n", "foo", "--timeout=60s"]).await;
    let d = k.json(&["deployment", "web", "-n", "foo"]).await;
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "hadrill/test-server:dev", "{d}");

    k.ok(&["rollout", "restart", "deployment/web", "-n", "foo"]).await;
    let d = k.json(&["deployment", "web", "-n", "foo"]).await;
    let restarted = &d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    assert!(restarted.is_string(), "{d}");
    k.ok(&["rollout", "status", "deployment/web", "-n", "foo", "--timeout=60s"]).await;
    k.ok(&["wait", "--for=condition=Available", "deployment/web", "-n", "foo", "--timeout=60s"]).await;

    k.ok(&["delete", "pod", "solo", "-n", "foo", "--wait"]).await;
    let (ok, out) = k.run(&["get", "pod", "solo", "-n", "foo"]).await;
    assert!(!ok && out.contains("NotFound"), "the pod is gone once delete --wait returns: {out}");
    k.ok(&["delete", "namespace", "foo", "--wait", "--timeout=60s"]).await;
    let (ok, out) = k.run(&["get", "namespace", "foo"]).await;
    assert!(!ok && out.contains("NotFound"), "{out}");

    let raw = k.ok(&["get", "--raw", "/openapi/v2"]).await;
    let doc: serde_json::Value = serde_json::from_str(&raw).expect("/openapi/v2 is JSON");
    assert_eq!(doc["swagger"], "2.0");
    let deployment = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(deployment["x-kubernetes-group-version-kind"][0]["kind"], "Deployment", "{deployment}");
    // Client-side apply computes a strategic merge patch from the v3 schemas (merge key
    // `name` for containers and env): dropping an env var from the file removes it.
    let manifest = |env: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: smp\nspec:\n  selector:\n    matchLabels: {{app: smp}}\n  template:\n    metadata:\n      labels: {{app: smp}}\n    spec:\n      containers:\n      - name: app\n        image: hadrill/test-server:dev\n        env:\n{env}"
        )
    };
    let file = dir.join("smp.yaml");
    std::fs::write(&file, manifest("        - {name: A, value: a}\n        - {name: B, value: b}\n")).unwrap();
    k.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    std::fs::write(&file, manifest("        - {name: B, value: b2}\n")).unwrap();
    let out = k.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.contains("deployment.apps/smp configured"), "{out}");
    let d = k.json(&["deployment", "smp"]).await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        serde_json::json!([{"name": "B", "value": "b2"}])
    );

    let out = k.ok(&["explain", "deployment.spec.replicas"]).await;
    assert!(out.contains("FIELD: replicas <integer>") && out.contains("Number of desired pods"), "{out}");

    let _ = std::fs::remove_dir_all(&dir);
}

/// `kubectl drain` (cordon, then evictions retried while a budget refuses them) of the node
/// whose only pod a PodDisruptionBudget protects: refused with kube-apiserver's budget message
/// (k/k `pkg/registry/core/pod/storage/eviction.go`) until a second replica is ready elsewhere.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_drain_waits_for_the_disruption_budget() {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::{Api, ListParams};

    if !available("the kubectl drain test") {
        return;
    }
    let sim = support::start(2).await;
    let (k, dir) = Kubectl::for_cluster(&sim, "drain");
    let manifest = dir.join("web.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: virtual/web}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#,
    )
    .unwrap();
    k.ok(&["apply", "-f", manifest.to_str().unwrap()]).await;
    let client = sim.client().unwrap();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let healthy = |n: i32, allowed: i32| {
        move |p: Option<&PodDisruptionBudget>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.current_healthy == n && s.disruptions_allowed == allowed)
        }
    };
    support::await_cond(&pdbs, "web", "the budget counting one healthy pod", healthy(1, 0)).await;
    let out = k.ok(&["get", "pdb", "web"]).await;
    let header = out.lines().next().unwrap_or_default();
    for col in ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"] {
        assert!(header.contains(col), "column {col} in {header:?}");
    }
    let row: Vec<&str> = out.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..4], ["web", "1", "N/A", "0"], "{out}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let first = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items.remove(0);
    let node = first.spec.and_then(|s| s.node_name).expect("the pod is scheduled");
    let first = first.metadata.name.unwrap();

    let (ok, out) = k.run(&["drain", &node, "--ignore-daemonsets", "--timeout=8s"]).await;
    assert!(!ok, "the drain must not succeed while the budget forbids it:\n{out}");
    assert!(out.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{out}");
    assert!(out.contains(&format!("evicting pod default/{first}")), "{out}");
    let nodes: Api<Node> = Api::all(client.clone());
    let cordoned = nodes.get(&node).await.unwrap();
    assert_eq!(cordoned.spec.and_then(|s| s.unschedulable), Some(true), "drain cordons first");
    assert!(pods.get(&first).await.unwrap().metadata.deletion_timestamp.is_none(), "the protected pod stays");

    k.ok(&["scale", "deployment/web", "--replicas=2"]).await;
    support::await_cond(&pdbs, "web", "a second healthy pod", healthy(2, 1)).await;
    let out = k.ok(&["drain", &node, "--ignore-daemonsets", "--timeout=30s"]).await;
    assert!(out.contains(&format!("pod/{first} evicted")) && out.contains(&format!("node/{node} drained")), "{out}");
    let left = pods.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await.unwrap().items;
    assert!(
        left.is_empty(),
        "nothing runs on the drained node: {:?}",
        left.iter().map(|p| &p.metadata.name).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
