//! The k3s provider (cargo feature `k3s`) against a recording Docker Engine API: DOCKER_HOST
//! points testcontainers at a local HTTP server that answers the calls it makes (image
//! inspect, container create, start, logs, inspect, remove) and plays the k3s container's part
//! (its kubeconfig in the mounted directory, the readiness line on stderr); docker and helm
//! are the recording stand-ins of tests/standins/. The Docker API calls and the CLI commands
//! are checked in order, for a cluster brought up and shut down and for one whose image import
//! fails (its container is removed).
//!
//! Chaos Mesh is left out (`chaos_mesh: false`): its install waits for a webhook of the k3s
//! API server, which this stand-in does not serve (the kind stand-in test covers the Helm
//! install and the webhook wait with a real API server).
#![cfg(feature = "k3s")]

mod standins;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hadrill::cluster::k3s::{K3S_TAG, K3sCluster, K3sOptions};
use serde_json::{Value, json};
use standins::{StandIns, assert_commands};

const ID: &str = "5ad0c0ffee5ad0c0ffee5ad0c0ffee5ad0c0ffee5ad0c0ffee5ad0c0ffee0001";
const API_PORT: &str = "36443";

/// What the fake engine was asked, and the body of the container create.
#[derive(Default)]
struct Engine {
    calls: Vec<String>,
    create: Option<Value>,
}

type Shared = Arc<Mutex<Engine>>;

/// The kubeconfig k3s writes into its conf mount (`k3s.yaml`), as far as the provider reads it.
const K3S_YAML: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\nusers:\n- name: default\n  user:\n    token: stand-in\ncontexts:\n- name: default\n  context: {cluster: default, user: default}\ncurrent-context: default\n";

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, [("content-type", "application/json")], v.to_string()).into_response()
}

/// One frame of Docker's multiplexed log stream (stream 2 = stderr).
fn frame(stream: u8, text: &str) -> Vec<u8> {
    let mut out = vec![stream, 0, 0, 0];
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

async fn engine(
    axum::extract::State(e): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    // `/v1.52/containers/create` -> `/containers/create`.
    let path = uri.path();
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
        None => path,
    };
    let query = uri.query().unwrap_or_default();
    let mut names: Vec<&str> =
        query.split('&').filter_map(|kv| kv.split('=').next()).filter(|k| !k.is_empty()).collect();
    names.sort_unstable();
    let call =
        format!("{method} {path}{}", if names.is_empty() { String::new() } else { format!(" ?{}", names.join("&")) });
    e.lock().expect("lock").calls.push(call);
    let container = format!("/containers/{ID}");
    match (method.as_str(), path) {
        ("GET" | "HEAD", "/_ping") => "OK".into_response(),
        ("GET", "/version") => json_response(
            StatusCode::OK,
            json!({"Version": "28.2.2", "ApiVersion": "1.52", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"}),
        ),
        ("GET", "/info") => json_response(
            StatusCode::OK,
            json!({"ID": "stand-in", "Name": "stand-in", "ServerVersion": "28.2.2", "OperatingSystem": "stand-in"}),
        ),
        ("GET", p) if p.starts_with("/images/") && p.ends_with("/json") => {
            json_response(StatusCode::OK, json!({"Id": "sha256:0123", "RepoTags": [format!("rancher/k3s:{K3S_TAG}")]}))
        }
        ("POST", "/containers/create") => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            // Play k3s: it writes its kubeconfig into the conf mount.
            let mounts = v["HostConfig"]["Mounts"].as_array().cloned().unwrap_or_default();
            let binds = v["HostConfig"]["Binds"].as_array().cloned().unwrap_or_default();
            let target = "/etc/rancher/k3s/";
            let source = mounts
                .iter()
                .find(|m| m["Target"].as_str().is_some_and(|t| t.starts_with(target)))
                .and_then(|m| m["Source"].as_str().map(String::from))
                .or_else(|| {
                    binds.iter().filter_map(Value::as_str).find_map(|b| {
                        b.split_once(':').filter(|(_, t)| t.starts_with(target)).map(|(s, _)| s.to_string())
                    })
                });
            if let Some(dir) = source {
                std::fs::write(std::path::Path::new(&dir).join("k3s.yaml"), K3S_YAML).expect("write k3s.yaml");
            }
            e.lock().expect("lock").create = Some(v);
            json_response(StatusCode::CREATED, json!({"Id": ID, "Warnings": []}))
        }
        ("POST", p) if p == format!("{container}/start") => StatusCode::NO_CONTENT.into_response(),
        ("GET", p) if p == format!("{container}/logs") => {
            let mut body = frame(1, "k3s starting\n");
            body.extend(frame(
                2,
                "I1206 22:00:00.000000 1 node_lifecycle_controller.go:1 \"Node controller sync successful\"\n",
            ));
            ([("content-type", "application/vnd.docker.multiplexed-stream")], Body::from(body)).into_response()
        }
        ("GET", p) if p == format!("{container}/json") => {
            let ports = json!({
                "6443/tcp": [{"HostIp": "0.0.0.0", "HostPort": API_PORT}],
                "8443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "38443"}],
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "38080"}]
            });
            json_response(
                StatusCode::OK,
                json!({
                    "Id": ID, "Name": "/k3s",
                    "State": {"Status": "running", "Running": true, "ExitCode": 0},
                    "Config": {"Image": format!("rancher/k3s:{K3S_TAG}")},
                    "HostConfig": {"NetworkMode": "bridge"},
                    "NetworkSettings": {"Ports": ports, "Networks": {"bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1"}}}
                }),
            )
        }
        ("POST", p) if p == format!("{container}/stop") => StatusCode::NO_CONTENT.into_response(),
        ("DELETE", p) if p == container => StatusCode::NO_CONTENT.into_response(),
        _ => json_response(StatusCode::NOT_FOUND, json!({"message": format!("stand-in engine: no {method} {path}")})),
    }
}

/// The calls made so far.
fn calls(e: &Shared) -> Vec<String> {
    e.lock().expect("lock").calls.clone()
}

/// The Docker API calls of `K3sCluster::up` (testcontainers 0.27): create, start, inspect,
/// the logs followed until k3s's readiness line, then inspects for the mapped API port.
fn up_sequence() -> Vec<String> {
    let c = format!("/containers/{ID}");
    vec![
        "POST /containers/create ?platform".into(),
        format!("POST {c}/start"),
        format!("GET {c}/json"),
        format!("GET {c}/logs ?follow&since&stderr&stdout&tail&timestamps&until"),
        format!("GET {c}/json"),
        format!("GET {c}/json"),
    ]
}

/// The host directory mounted as k3s's conf directory, from a container create body.
fn conf_dir_of(create: &Value) -> std::path::PathBuf {
    let mounts = create["HostConfig"]["Mounts"].as_array().into_iter().flatten();
    let from_mounts = mounts.filter_map(|m| m["Source"].as_str()).next().map(String::from);
    let from_binds =
        || create["HostConfig"]["Binds"][0].as_str().and_then(|b| b.split_once(':')).map(|(s, _)| s.to_string());
    std::path::PathBuf::from(from_mounts.or_else(from_binds).expect("the conf mount"))
}

/// The removal of the container (forced, with its volumes).
fn remove() -> String {
    format!("DELETE /containers/{ID} ?force&link&v")
}

#[test]
fn k3s_talks_to_the_docker_api_and_removes_its_container() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let s = StandIns::new("k3s", None);
    let e: Shared = Arc::default();
    let app = axum::Router::new().fallback(engine).with_state(e.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    // SAFETY: the only test of this binary; set before any thread reads the environment.
    unsafe {
        std::env::set_var("DOCKER_HOST", format!("tcp://{addr}"));
        std::env::set_var("PATH", s.path());
        std::env::set_var("HOME", &s.dir);
        std::env::remove_var("TESTCONTAINERS_HOST_OVERRIDE");
        std::env::remove_var("DOCKER_TLS_VERIFY");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("root");
    let mut options = K3sOptions::new(&root);
    options.chaos_mesh = false;
    options.kubeconfig = s.dir.join("k3s.kubeconfig");

    let cluster =
        rt.block_on(K3sCluster::up(&options)).unwrap_or_else(|err| panic!("{err:#}\ncalls: {:#?}", calls(&e)));
    let up_calls = calls(&e);
    assert_commands(&up_calls, &up_sequence());
    // The container: the pinned image, privileged, host user namespace, labelled as hadrill's,
    // k3s's conf directory mounted from the host.
    let create = e.lock().expect("lock").create.clone().expect("a container was created");
    assert_eq!(create["Image"], format!("rancher/k3s:{K3S_TAG}"), "{create:#}");
    assert_eq!(create["HostConfig"]["Privileged"], true, "{create:#}");
    assert_eq!(create["HostConfig"]["UsernsMode"], "host", "{create:#}");
    assert_eq!(create["Labels"]["hadrill.io/provider"], "k3s", "{create:#}");
    // The kubeconfig names the API port Docker mapped.
    let kc = std::fs::read_to_string(&options.kubeconfig).expect("kubeconfig written");
    assert!(kc.contains(&format!("https://127.0.0.1:{API_PORT}")), "{kc}");
    let conf_dir = conf_dir_of(&create);
    assert!(conf_dir.join("k3s.yaml").is_file(), "{}", conf_dir.display());

    rt.block_on(cluster.down()).expect("down");
    let mut want = up_sequence();
    want.push(remove());
    assert_commands(&calls(&e), &want);
    assert!(!conf_dir.exists(), "k3s's conf directory (its admin kubeconfig) is removed");

    // The CLI part: the images built before the container starts, then imported into it.
    let (r, tar) = (root.display().to_string(), conf_dir.join("images.tar").display().to_string());
    let mut want: Vec<String> = ["test-server", "controller", "sample"]
        .iter()
        .map(|i| format!("docker build --file {r}/deploy/docker/{i}.Dockerfile --tag hadrill/{i}:dev {r}"))
        .collect();
    want.push(format!("docker save --output {tar} hadrill/test-server:dev hadrill/controller:dev hadrill/sample:dev"));
    want.push(format!("docker cp {tar} {ID}:/tmp/hadrill-images.tar"));
    want.push(format!("docker exec {ID} k3s ctr --namespace k8s.io images import /tmp/hadrill-images.tar"));
    assert_commands(&s.commands(), &want);

    // A failed step (the image import): the container is removed as the cluster is dropped.
    e.lock().expect("lock").calls.clear();
    s.fail("docker cp");
    e.lock().expect("lock").create = None;
    let err = rt.block_on(K3sCluster::up(&options)).expect_err("the import fails");
    assert!(format!("{err:#}").contains("importing the project images into k3s"), "{err:#}");
    let start = Instant::now();
    // testcontainers removes a dropped container in the background.
    while !calls(&e).contains(&remove()) {
        assert!(start.elapsed() < Duration::from_secs(30), "the container was not removed: {:#?}", calls(&e));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut want = up_sequence();
    want.push(remove());
    assert_commands(&calls(&e), &want);
    let create = e.lock().expect("lock").create.clone().expect("a container was created");
    assert!(!conf_dir_of(&create).exists(), "k3s's conf directory is removed after the failure");
    rt.shutdown_timeout(Duration::from_secs(5));
}
