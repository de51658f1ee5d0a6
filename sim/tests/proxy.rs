//! The `pods/proxy` and `services/proxy` subresources, used through kube-rs as the harness
//! uses them (and as `kubectl get --raw` does): a real pod process answering through the API
//! server, with query, body, headers and status passed through, and kube-apiserver's errors.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::config::KubeConfigOptions;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sim::kubelet::{ImageEntry, ImageMap, KubeletConfig};
use sim::{Sim, SimConfig};

const SERVER: &str = env!("CARGO_BIN_EXE_hadrill-test-server");
const NODE: &str = "hadrill-worker";

async fn start() -> Sim {
    let images = ImageMap::new();
    images.insert("hadrill/test-server", ImageEntry::new(SERVER));
    images.insert("hadrill/crasher", ImageEntry::new("/bin/sh").with_args(["-c", "exit 3"]));
    let kubelet = KubeletConfig { images, ..KubeletConfig::fast() };
    Sim::start(SimConfig { nodes: 1, kubelet, ..Default::default() }).await.expect("embedded cluster starts")
}

/// The admin client without kube-rs' default retries: they would retry every 503 for minutes.
async fn client(sim: &Sim) -> kube::Client {
    sim::install_crypto_provider();
    let mut config = kube::Config::from_custom_kubeconfig(sim.kubeconfig(), &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

async fn create<K>(client: &kube::Client, obj: Value) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj: K = serde_json::from_value(obj).expect("fixture");
    Api::default_namespaced(client.clone()).create(&PostParams::default(), &obj).await.expect("create")
}

/// A test-server pod listening on `port`, the container port named `results`.
fn server_pod(name: &str, port: u16) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "server", "image": "hadrill/test-server:dev",
            "env": [{"name": "PORT", "value": port.to_string()}],
            "ports": [{"name": "results", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "results"}, "periodSeconds": 1},
        }]},
    })
}

/// Waits (by watch) until `cond` holds for the named object.
async fn wait_for<K>(client: &kube::Client, name: &str, what: &str, cond: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::default_namespaced(client.clone());
    let c = move |o: Option<&K>| o.is_some_and(&cond);
    match tokio::time::timeout(Duration::from_secs(30), kube::runtime::wait::await_condition(api, name, c)).await {
        Ok(Ok(Some(o))) => o,
        other => panic!("waiting for {name}: {what}: {other:?}"),
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn running_server(client: &kube::Client, name: &str, port: u16) -> Pod {
    create::<Pod>(client, server_pod(name, port)).await;
    wait_for(client, name, "Ready", ready).await
}

fn get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).unwrap()
}

/// The API error of a request that must fail.
async fn error_of(client: &kube::Client, req: http::Request<Vec<u8>>) -> kube::core::Status {
    match client.request_text(req).await {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Status, one header and the body of a request, whatever its status.
async fn send(client: &kube::Client, req: http::Request<Vec<u8>>, header: &str) -> (u16, String, String) {
    let resp = client.send(req.map(kube::client::Body::from)).await.expect("request sent");
    let status = resp.status().as_u16();
    let value = resp.headers().get(header).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
    (status, value, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_answers_through_the_api_server_with_query_body_headers_and_status() {
    let sim = start().await;
    let client = client(&sim).await;
    running_server(&client, "web", 18711).await;
    let base = "/api/v1/namespaces/default/pods";

    let name = client.request_text(get(&format!("{base}/web:18711/proxy/"))).await.expect("GET /");
    assert_eq!(name, "web\n");
    // No port: the first declared container port. Named port: resolved from the pod spec.
    assert_eq!(client.request_text(get(&format!("{base}/web/proxy/healthz"))).await.unwrap(), "ok\n");
    let echoed = client.request_text(get(&format!("{base}/web:results/proxy/echo/a%20b?x=1&y=two"))).await.unwrap();
    assert_eq!(echoed, "GET /echo/a%20b?x=1&y=two\n");

    let post = http::Request::post(format!("{base}/http:web:18711/proxy/echo?k=v"))
        .header("x-echo", "from the harness")
        .header("content-type", "text/plain")
        .body(b"vehicle results".to_vec())
        .unwrap();
    let (status, header, body) = send(&client, post, "x-echo-header").await;
    assert_eq!((status, header.as_str(), body.as_str()), (200, "from the harness", "POST /echo?k=v\nvehicle results"));

    // The backend's own error status comes back as it is, not as a Status object.
    let (status, _, body) = send(&client, get(&format!("{base}/web:18711/proxy/no/such/path")), "").await;
    assert_eq!((status, body.as_str()), (404, "not found\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_pods_get_kube_apiserver_errors() {
    let sim = start().await;
    let client = client(&sim).await;
    let pod = running_server(&client, "up", 18712).await;
    let ip = pod.status.and_then(|s| s.pod_ip).expect("pod IP");
    let base = "/api/v1/namespaces/default/pods";

    let missing = error_of(&client, get(&format!("{base}/ghost:8081/proxy/"))).await;
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "pods \"ghost\" not found");

    let refused = error_of(&client, get(&format!("{base}/up:1/proxy/"))).await;
    assert_eq!((refused.code, refused.reason.as_str()), (503, "ServiceUnavailable"));
    assert_eq!(refused.message, format!("error trying to reach service: dial tcp {ip}:1: connect: connection refused"));

    // Bound to a node without a kubelet: never started, no IP.
    let mut pending = server_pod("pending", 18713);
    pending["spec"]["nodeName"] = json!("no-such-node");
    create::<Pod>(&client, pending).await;
    let no_ip = error_of(&client, get(&format!("{base}/pending/proxy/"))).await;
    assert_eq!((no_ip.code, no_ip.message.as_str()), (503, "pod \"pending\" has no IP (phase Pending)"));

    create::<Pod>(
        &client,
        json!({"metadata": {"name": "done"}, "spec": {"nodeName": NODE, "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "hadrill/crasher", "ports": [{"containerPort": 8080}]}]}}),
    )
    .await;
    wait_for::<Pod>(&client, "done", "Failed", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    let failed = error_of(&client, get(&format!("{base}/done/proxy/"))).await;
    assert_eq!((failed.code, failed.message.as_str()), (503, "pod \"done\" is not running (phase Failed)"));

    let bad = error_of(&client, get(&format!("{base}/a:b:c:d/proxy/"))).await;
    assert_eq!((bad.code, bad.message.as_str()), (400, "invalid pod request \"a:b:c:d\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_proxies_to_a_ready_endpoint() {
    let sim = start().await;
    let client = client(&sim).await;
    running_server(&client, "api", 18714).await;
    let svc = json!({"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"},
        "ports": [{"name": "results", "port": 80, "targetPort": "results"}]}});
    create::<Service>(&client, svc).await;
    wait_for::<Endpoints>(&client, "api", "a ready address", |e| {
        e.subsets.iter().flatten().any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let base = "/api/v1/namespaces/default/services";

    assert_eq!(client.request_text(get(&format!("{base}/api:results/proxy/"))).await.unwrap(), "api\n");
    assert_eq!(client.request_text(get(&format!("{base}/api:80/proxy/echo?q=1"))).await.unwrap(), "GET /echo?q=1\n");
    assert_eq!(client.request_text(get(&format!("{base}/api/proxy/healthz"))).await.unwrap(), "ok\n");

    let no_port = error_of(&client, get(&format!("{base}/api:9999/proxy/"))).await;
    assert_eq!((no_port.code, no_port.message.as_str()), (503, "no service port \"9999\" found for service \"api\""));

    let empty = json!({"metadata": {"name": "empty"}, "spec": {"selector": {"app": "nothing"},
        "ports": [{"name": "http", "port": 80}]}});
    create::<Service>(&client, empty).await;
    let none = error_of(&client, get(&format!("{base}/empty/proxy/"))).await;
    assert_eq!((none.code, none.reason.as_str()), (503, "ServiceUnavailable"));
    assert_eq!(none.message, "no endpoints available for service \"empty\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_governs_pods_proxy_by_verb() {
    let sim = start().await;
    let admin = client(&sim).await;
    running_server(&admin, "guarded", 18715).await;
    create::<ServiceAccount>(&admin, json!({"metadata": {"name": "reader"}})).await;
    create::<Role>(
        &admin,
        json!({"metadata": {"name": "pod-reader"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
    )
    .await;
    create::<RoleBinding>(
        &admin,
        json!({"metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]}),
    )
    .await;
    let reader = sim.service_account_client("default", "reader").expect("client");
    let url = "/api/v1/namespaces/default/pods/guarded:18715/proxy/";

    let denied = error_of(&reader, get(url)).await;
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        denied.message,
        "pods \"guarded:18715\" is forbidden: User \"system:serviceaccount:default:reader\" cannot get resource \"pods/proxy\" in API group \"\" in the namespace \"default\""
    );

    create::<Role>(
        &admin,
        json!({"metadata": {"name": "proxy-getter"}, "rules": [
            {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]}]}),
    )
    .await;
    create::<RoleBinding>(
        &admin,
        json!({"metadata": {"name": "proxy-getter"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "proxy-getter"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]}),
    )
    .await;
    assert_eq!(reader.request_text(get(url)).await.expect("get allowed"), "guarded\n");
    let post = http::Request::post(format!("{url}echo")).body(b"x".to_vec()).unwrap();
    let denied = error_of(&reader, post).await;
    assert_eq!(denied.code, 403);
    assert!(denied.message.contains("cannot create resource \"pods/proxy\""), "{}", denied.message);
}

/// `kubectl get --raw`, the way people read a pod's HTTP API by hand (skipped without kubectl,
/// unless HADRILL_REQUIRE_KUBECTL=1 as in CI).
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_raw_reaches_a_pod() {
    let found =
        std::process::Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("HADRILL_REQUIRE_KUBECTL").is_err(), "kubectl is required but not found");
        eprintln!("NOTICE: kubectl not found on PATH; skipping");
        return;
    }
    let sim = start().await;
    let client = client(&sim).await;
    running_server(&client, "raw", 18716).await;
    let dir = std::env::temp_dir().join(format!("hadrill-proxy-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let kubectl = |path: &str| {
        let out = std::process::Command::new("kubectl")
            .args(["get", "--raw", path, "--kubeconfig"])
            .arg(&kubeconfig)
            .env("HOME", &dir)
            .output()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = kubectl("/api/v1/namespaces/default/pods/raw:results/proxy/echo?vehicle=7");
    assert!(ok, "{err}");
    assert_eq!(out, "GET /echo?vehicle=7\n");
    let (ok, _, err) = kubectl("/api/v1/namespaces/default/pods/raw:1/proxy/");
    assert!(!ok && err.contains("ServiceUnavailable") && err.contains("connection refused"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
