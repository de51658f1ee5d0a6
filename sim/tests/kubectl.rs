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
    let dir = std::env::temp_dir().join(format!("hadrill-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let k = Kubectl { kubeconfig, home: dir.clone() };
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
