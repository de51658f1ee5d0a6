//! The embedded kubelet: pods as real processes (the `hadrill-test-server` binary), probes,
//! restarts with crash-loop back-off, logs, graceful deletion, heartbeats, virtual pods, and
//! no orphaned processes.
//!
//! Pods are created with `spec.nodeName` set (no scheduler needed). Every cluster has its own
//! pod addresses, so tests running in parallel may use the same ports.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use sim::kubelet::runtime::pid_alive;
use sim::kubelet::{ImageEntry, ImageMap, KubeletConfig};
use sim::{Sim, SimConfig};
use support::reqwest_like::Client;

const SERVER: &str = env!("CARGO_BIN_EXE_hadrill-test-server");
const NODE1: &str = "hadrill-worker";
const NODE2: &str = "hadrill-worker2";

fn images() -> ImageMap {
    let m = ImageMap::new();
    m.insert("hadrill/test-server", ImageEntry::new(SERVER));
    m.insert("hadrill/crasher", ImageEntry::new("/bin/sh").with_args(["-c", "echo crashing; exit 3"]));
    m.insert("hadrill/missing", ImageEntry::new("/nonexistent/hadrill/missing-binary"));
    m
}

async fn start(nodes: usize) -> Sim {
    start_with(nodes, KubeletConfig::fast()).await
}

async fn start_with(nodes: usize, kubelet: KubeletConfig) -> Sim {
    let kubelet = KubeletConfig { images: images(), ..kubelet };
    Sim::start(SimConfig { nodes, kubelet, ..Default::default() }).await.expect("embedded cluster starts")
}

fn pods(sim: &Sim) -> kube::Api<Pod> {
    kube::Api::namespaced(sim.client().expect("client"), "default")
}

/// A test-server pod on `node` listening on `port`, with readiness (`/readyz`) and liveness
/// (`/healthz`) probes every second.
fn server_pod(name: &str, node: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "server", "image": "hadrill/test-server:dev",
                "env": [{"name": "PORT", "value": port.to_string()}],
                "ports": [{"name": "http", "containerPort": port}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 1, "failureThreshold": 2},
            }],
        },
    })
}

async fn create(api: &kube::Api<Pod>, pod: Value) -> Pod {
    let pod: Pod = serde_json::from_value(pod).expect("pod fixture");
    api.create(&PostParams::default(), &pod).await.expect("create pod")
}

/// Waits (by watch) until `cond` holds for pod `name`.
async fn wait_pod(api: &kube::Api<Pod>, name: &str, what: &str, cond: impl Fn(&Pod) -> bool) -> Pod {
    let c = move |p: Option<&Pod>| p.is_some_and(&cond);
    match tokio::time::timeout(Duration::from_secs(30), kube::runtime::wait::await_condition(api.clone(), name, c))
        .await
    {
        Ok(Ok(Some(p))) => p,
        Ok(other) => panic!("watching {name} for {what}: {other:?}"),
        Err(_) => {
            let cur = api.get(name).await.ok().map(|p| serde_json::to_string_pretty(&p.status).unwrap_or_default());
            panic!("timed out waiting for {name}: {what}; status now: {}", cur.unwrap_or_default())
        }
    }
}

fn ready(p: &Pod) -> bool {
    condition(p, "Ready") == Some("True")
}

fn condition<'a>(p: &'a Pod, kind: &str) -> Option<&'a str> {
    p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind).map(|c| c.status.as_str())
}

fn cstatus(p: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn restarts(p: &Pod) -> i32 {
    cstatus(p).map_or(0, |c| c.restart_count)
}

fn waiting_reason(p: &Pod) -> Option<String> {
    cstatus(p)?.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

fn running(p: &Pod) -> bool {
    cstatus(p).and_then(|c| c.state.as_ref()).is_some_and(|s| s.running.is_some())
}

fn pod_ip(p: &Pod) -> String {
    p.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("pod IP")
}

async fn http(addr: &str, method: &str, path: &str) -> support::reqwest_like::Response {
    tokio::time::timeout(Duration::from_secs(5), Client.send(addr, "", method, path, "text/plain", b""))
        .await
        .unwrap_or_else(|_| panic!("{method} http://{addr}{path} timed out"))
}

/// `POST /crash` makes the server exit before it answers; the connection just closes.
async fn post_no_answer(addr: &str, path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(500), s.read_to_end(&mut buf)).await;
}

async fn events_for(sim: &Sim, pod: &str) -> Vec<Event> {
    let api: kube::Api<Event> = kube::Api::namespaced(sim.client().expect("client"), "default");
    let all = api.list(&ListParams::default()).await.expect("list events");
    all.items.into_iter().filter(|e| e.involved_object.name.as_deref() == Some(pod)).collect()
}

/// Waits (by watch) until an event of `pod` with `reason` and a message containing `text` exists.
async fn wait_event(sim: &Sim, pod: &str, reason: &str, text: &str) -> Event {
    let api: kube::Api<Event> = kube::Api::namespaced(sim.client().expect("client"), "default");
    let stream = watcher(api, watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = stream.try_next().await.expect("event watch") {
            if e.involved_object.name.as_deref() == Some(pod)
                && e.reason.as_deref() == Some(reason)
                && e.message.as_deref().is_some_and(|m| m.contains(text))
            {
                return e;
            }
        }
        panic!("event watch ended");
    })
    .await;
    match found {
        Ok(e) => e,
        Err(_) => panic!("no {reason} event containing {text:?} for {pod}; events: {:#?}", events_for(sim, pod).await),
    }
}

/// Pid of the pod's container process, from the test-server's startup line in its log.
async fn server_pid(api: &kube::Api<Pod>, name: &str, previous: bool) -> u32 {
    let log = api.logs(name, &LogParams { previous, ..Default::default() }).await.expect("logs");
    log.lines()
        .find_map(|l| l.split("(pid ").nth(1)?.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no startup line in the log of {name}: {log:?}"))
}

async fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_pods_run_become_ready_and_answer_on_their_ips() {
    let sim = start(2).await;
    let api = pods(&sim);
    create(&api, server_pod("web-0", NODE1, 18080)).await;
    create(&api, server_pod("web-1", NODE1, 18080)).await;
    create(&api, server_pod("web-2", NODE2, 18080)).await;
    let mut ips = Vec::new();
    for (name, node) in [("web-0", 1), ("web-1", 1), ("web-2", 2)] {
        let p = wait_pod(&api, name, "Ready", ready).await;
        let s = p.status.as_ref().expect("status");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.host_ip.as_deref(), Some(sim.addresses().node_ip(node).to_string().as_str()));
        let ip = pod_ip(&p);
        assert_eq!(s.pod_ips.as_ref().map(|v| v[0].ip.clone()), Some(ip.clone()));
        assert!(s.start_time.is_some());
        assert_eq!(s.observed_generation, p.metadata.generation);
        for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready", "PodReadyToStartContainers"] {
            assert_eq!(condition(&p, c), Some("True"), "{c} of {name}");
        }
        let cs = cstatus(&p).expect("container status");
        assert!(cs.ready && cs.started == Some(true) && running(&p));
        assert_eq!(cs.restart_count, 0);
        assert!(cs.container_id.as_deref().is_some_and(|id| id.starts_with("hadrill://")));
        assert!(cs.image_id.starts_with("hadrill/test-server@sha256:"));
        assert_eq!(cs.image, "hadrill/test-server:dev");
        let resp = http(&format!("{ip}:18080"), "GET", "/").await;
        assert_eq!((resp.status, resp.body.trim()), (200, name));
        ips.push(ip);
    }
    // Each node hands out addresses from its own range of the cluster's block.
    let on = |node: usize, ip: &str| {
        sim.addresses().pod_range(node).contains(&ip.parse::<std::net::Ipv4Addr>().expect("IPv4"))
    };
    assert!(on(1, &ips[0]) && on(1, &ips[1]) && ips[0] != ips[1], "{ips:?}");
    assert!(on(2, &ips[2]), "{ips:?}");
    let events = events_for(&sim, "web-0").await;
    for reason in ["Pulled", "Created", "Started"] {
        let e = events.iter().find(|e| e.reason.as_deref() == Some(reason)).unwrap_or_else(|| panic!("{reason}"));
        assert_eq!(e.source.as_ref().and_then(|s| s.component.as_deref()), Some("kubelet"));
        assert_eq!(e.source.as_ref().and_then(|s| s.host.as_deref()), Some(NODE1));
        assert_eq!(e.reporting_component.as_deref(), Some("kubelet"));
        assert_eq!(e.involved_object.field_path.as_deref(), Some("spec.containers{server}"));
    }
    assert_eq!(sim.kubelets().live_pids().len(), 3);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crashes_raise_restart_count_and_back_off() {
    let sim = start(1).await;
    let api = pods(&sim);
    create(&api, server_pod("crashy", NODE1, 18081)).await;
    let p = wait_pod(&api, "crashy", "Ready", ready).await;
    let addr = format!("{}:18081", pod_ip(&p));
    post_no_answer(&addr, "/crash").await;
    // First crash: restarted at once.
    let p = wait_pod(&api, "crashy", "restarted and Ready", |p| restarts(p) == 1 && ready(p)).await;
    let last = cstatus(&p).and_then(|c| c.last_state.as_ref()).and_then(|s| s.terminated.as_ref()).expect("lastState");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert!(last.started_at.is_some() && last.finished_at.is_some());
    // Second crash (kill -9) within the back-off window: CrashLoopBackOff, then a restart.
    let pid = server_pid(&api, "crashy", false).await;
    // SAFETY: signalling a process this test's cluster started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let p = wait_pod(&api, "crashy", "CrashLoopBackOff", |p| waiting_reason(p).as_deref() == Some("CrashLoopBackOff"))
        .await;
    let cs = cstatus(&p).expect("status");
    let msg = cs.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.message.clone()).unwrap_or_default();
    assert!(msg.starts_with("back-off 1s restarting failed container=server pod=crashy_default("), "{msg}");
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).expect("lastState");
    assert_eq!((last.exit_code, last.signal), (137, Some(9)));
    assert!(!cs.ready && condition(&p, "Ready") == Some("False"));
    wait_pod(&api, "crashy", "second restart", |p| restarts(p) == 2 && ready(p)).await;
    wait_event(&sim, "crashy", "BackOff", "Back-off restarting failed container server in pod crashy_default").await;

    // A container that always fails: back-off doubles (1 s, 2 s, ...).
    create(
        &api,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loop"},
            "spec": {"nodeName": NODE1, "containers": [{"name": "c", "image": "hadrill/crasher"}]}}),
    )
    .await;
    let p = wait_pod(&api, "loop", "back-off 2s", |p| {
        cstatus(p)
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
            .is_some_and(|m| m.starts_with("back-off 2s"))
    })
    .await;
    assert_eq!(restarts(&p), 2);
    assert_eq!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_policies_end_in_succeeded_or_failed() {
    let sim = start(1).await;
    let api = pods(&sim);
    let pod = |name: &str, policy: &str, script: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE1, "restartPolicy": policy, "containers": [{"name": "c",
                "image": "hadrill/crasher", "command": ["/bin/sh", "-c", script]}]}})
    };
    create(&api, pod("never", "Never", "exit 3")).await;
    create(&api, pod("onfailure", "OnFailure", "echo done")).await;
    let p = wait_pod(&api, "never", "Failed", |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .await;
    let t = cstatus(&p).and_then(|c| c.state.as_ref()?.terminated.clone()).expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert_eq!(restarts(&p), 0);
    let p = wait_pod(&api, "onfailure", "Succeeded", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    let t = cstatus(&p).and_then(|c| c.state.as_ref()?.terminated.clone()).expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(condition(&p, "Ready"), Some("False"));
    let logs = api.logs("onfailure", &LogParams::default()).await.expect("logs");
    assert_eq!(logs, "done\n");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn init_containers_complete_in_order_before_the_app_starts() {
    let sim = start(1).await;
    let api = pods(&sim);
    let mut pod = server_pod("inited", NODE1, 18090);
    pod["spec"]["initContainers"] = json!([
        {"name": "setup", "image": "hadrill/crasher", "command": ["/bin/sh", "-c", "sleep 1; echo set up"]},
        {"name": "sidecar", "image": "virtual/proxy:1", "restartPolicy": "Always"},
    ]);
    create(&api, pod).await;
    let p = wait_pod(&api, "inited", "initializing", |p| condition(p, "Initialized") == Some("False")).await;
    assert_eq!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
    assert_eq!(waiting_reason(&p).as_deref(), Some("PodInitializing"));
    let msg = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref()?.iter().find(|c| c.type_ == "Initialized")?.message.clone());
    assert_eq!(msg.as_deref(), Some("containers with incomplete status: [setup sidecar]"));
    let p = wait_pod(&api, "inited", "Ready", ready).await;
    let inits = p.status.as_ref().and_then(|s| s.init_container_statuses.clone()).expect("initContainerStatuses");
    let setup = inits[0].state.as_ref().and_then(|s| s.terminated.clone()).expect("setup terminated");
    assert_eq!((setup.exit_code, setup.reason.as_deref()), (0, Some("Completed")));
    assert!(inits[1].state.as_ref().is_some_and(|s| s.running.is_some()) && inits[1].ready);
    let app_started =
        cstatus(&p).and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.clone()).expect("started");
    assert!(
        app_started.0 >= setup.finished_at.expect("finishedAt").0,
        "the app started after the init container ended"
    );
    let log = api.logs("inited", &LogParams { container: Some("setup".into()), ..Default::default() }).await;
    assert_eq!(log.expect("init container log"), "set up\n");

    // A failing init container with restartPolicy Never fails the pod; the app never starts.
    create(
        &api,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "init-fails"},
            "spec": {"nodeName": NODE1, "restartPolicy": "Never",
                "initContainers": [{"name": "setup", "image": "hadrill/crasher"}],
                "containers": [{"name": "app", "image": "virtual/app:1"}]}}),
    )
    .await;
    let p = wait_pod(&api, "init-fails", "Failed", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    assert_eq!(waiting_reason(&p).as_deref(), Some("PodInitializing"));
    assert_eq!(condition(&p, "Initialized"), Some("False"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_change_restarts_the_container_with_the_new_image() {
    let sim = start(1).await;
    let api = pods(&sim);
    let mut pod = server_pod("upgraded", NODE1, 18091);
    pod["spec"]["containers"][0]["image"] = json!("virtual/server:1");
    create(&api, pod).await;
    wait_pod(&api, "upgraded", "Ready (virtual)", ready).await;
    assert!(sim.kubelets().live_pids().is_empty());
    let patch = json!({"spec": {"containers": [{"name": "server", "image": "hadrill/test-server:2"}]}});
    api.patch("upgraded", &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(patch))
        .await
        .expect("patch");
    let p = wait_pod(&api, "upgraded", "restarted with the new image", |p| {
        restarts(p) == 1 && ready(p) && cstatus(p).is_some_and(|c| c.image == "hadrill/test-server:2")
    })
    .await;
    let resp = http(&format!("{}:18091", pod_ip(&p)), "GET", "/").await;
    assert_eq!((resp.status, resp.body.trim()), (200, "upgraded"));
    assert_eq!(sim.kubelets().live_pids().len(), 1);
    wait_event(&sim, "upgraded", "Killing", "Container server definition changed, will be restarted").await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_probe_and_liveness_failure_restarts() {
    let sim = start(1).await;
    let api = pods(&sim);
    create(&api, server_pod("probed", NODE1, 18082)).await;
    let p = wait_pod(&api, "probed", "Ready", ready).await;
    let addr = format!("{}:18082", pod_ip(&p));
    assert_eq!(http(&addr, "POST", "/ready/off").await.status, 200);
    let p = wait_pod(&api, "probed", "not Ready", |p| condition(p, "Ready") == Some("False")).await;
    assert_eq!(condition(&p, "ContainersReady"), Some("False"));
    assert!(running(&p) && restarts(&p) == 0 && cstatus(&p).is_some_and(|c| !c.ready));
    wait_event(&sim, "probed", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503").await;
    assert_eq!(http(&addr, "POST", "/ready/on").await.status, 200);
    wait_pod(&api, "probed", "Ready again", ready).await;

    // Liveness: a hung server stops answering /healthz and is restarted.
    let _ =
        tokio::time::timeout(Duration::from_millis(300), Client.send(&addr, "", "POST", "/hang", "text/plain", b""))
            .await;
    let p = wait_pod(&api, "probed", "restarted after liveness failure", |p| restarts(p) == 1 && ready(p)).await;
    let last = cstatus(&p).and_then(|c| c.last_state.as_ref()?.terminated.clone()).expect("lastState");
    assert_eq!(last.exit_code, 0, "the hung server still exits cleanly on SIGTERM");
    wait_event(&sim, "probed", "Killing", "Container server failed liveness probe, will be restarted").await;
    wait_event(&sim, "probed", "Unhealthy", "Liveness probe failed: Get \"http://").await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_show_output_previous_instance_tail_and_follow() {
    let sim = start(1).await;
    let api = pods(&sim);
    create(&api, server_pod("chatty", NODE1, 18083)).await;
    let p = wait_pod(&api, "chatty", "Ready", ready).await;
    let addr = format!("{}:18083", pod_ip(&p));
    http(&addr, "GET", "/first").await;
    let log = api.logs("chatty", &LogParams::default()).await.expect("logs");
    assert!(log.starts_with("hadrill-test-server chatty listening on"), "{log}");
    assert!(log.contains("GET /first\n"), "{log}");
    let tail = api.logs("chatty", &LogParams { tail_lines: Some(1), ..Default::default() }).await.expect("tail");
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // follow: streams new lines, ends when the container stops.
    let stream = api.log_stream("chatty", &LogParams { follow: true, ..Default::default() }).await.expect("follow");
    let mut lines = stream.lines();
    http(&addr, "GET", "/followed").await;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next().await {
            if line.expect("log line") == "GET /followed" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the followed log shows new output");
    post_no_answer(&addr, "/crash").await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next().await {
            if line.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the followed log ends when the container stops");

    wait_pod(&api, "chatty", "restarted", |p| restarts(p) == 1 && running(p)).await;
    let previous = api.logs("chatty", &LogParams { previous: true, ..Default::default() }).await.expect("previous");
    assert!(previous.contains("GET /followed\n") && previous.ends_with("crashing on request\n"), "{previous}");
    let current = api.logs("chatty", &LogParams::default()).await.expect("current");
    assert!(!current.contains("/followed"), "{current}");

    // Container selection errors, like kube.
    create(
        &api,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
            "spec": {"nodeName": NODE1, "containers": [{"name": "a", "image": "virtual"}, {"name": "b", "image": "virtual"}]}}),
    )
    .await;
    let err = api.logs("two", &LogParams::default()).await.expect_err("ambiguous container");
    assert!(err.to_string().contains("a container name must be specified for pod two, choose one of: [a b]"), "{err}");
    wait_pod(&api, "two", "Ready", ready).await;
    let empty = api.logs("two", &LogParams { container: Some("b".into()), ..Default::default() }).await;
    assert_eq!(empty.expect("a virtual container has an empty log"), "");
    let err = api.logs("two", &LogParams { container: Some("c".into()), ..Default::default() }).await.expect_err("x");
    assert!(err.to_string().contains("container c is not valid for pod two"), "{err}");

    // kubectl logs through the written kubeconfig.
    if std::process::Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success()) {
        let dir = std::env::temp_dir().join(format!("hadrill-pods-kubectl-{}", std::process::id()));
        let kc = dir.join("kubeconfig");
        sim.write_kubeconfig(&kc).expect("kubeconfig");
        let out = tokio::process::Command::new("kubectl")
            .args(["logs", "chatty", "--previous", "--kubeconfig"])
            .arg(&kc)
            .env("HOME", &dir)
            .output()
            .await
            .expect("kubectl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("crashing on request"), "{text}{:?}", out.stderr);
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        assert!(std::env::var("HADRILL_REQUIRE_KUBECTL").is_err(), "kubectl is required but not found");
    }
    sim.stop().await;
}

/// Deletes pod `name` (default grace) and watches it until it is removed; returns its last
/// state and how long the removal took.
async fn delete_and_watch(api: &kube::Api<Pod>, name: &str) -> (Pod, Duration) {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api.clone(), cfg));
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        let mut t0 = None;
        while let Some(ev) = stream.try_next().await.expect("pod watch") {
            match ev {
                watcher::Event::InitDone if t0.is_none() => {
                    t0 = Some(Instant::now());
                    api.delete(name, &DeleteParams::default()).await.expect("delete");
                }
                watcher::Event::Delete(p) => return (p, t0.map(|t| t.elapsed()).unwrap_or_default()),
                _ => {}
            }
        }
        panic!("pod watch ended");
    })
    .await;
    last.unwrap_or_else(|_| panic!("{name} was not removed"))
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_deletion_sigterms_and_kills_after_the_grace_period() {
    let sim = start(1).await;
    let api = pods(&sim);
    let mut polite = server_pod("polite", NODE1, 18084);
    polite["spec"]["terminationGracePeriodSeconds"] = json!(30);
    let mut stubborn = server_pod("stubborn", NODE1, 18084);
    stubborn["spec"]["terminationGracePeriodSeconds"] = json!(2);
    stubborn["spec"]["containers"][0]["args"] = json!(["--ignore-sigterm"]);
    create(&api, polite).await;
    create(&api, stubborn).await;
    wait_pod(&api, "polite", "Ready", ready).await;
    wait_pod(&api, "stubborn", "Ready", ready).await;
    let polite_pid = server_pid(&api, "polite", false).await;
    let stubborn_pid = server_pid(&api, "stubborn", false).await;

    let (last, took) = delete_and_watch(&api, "polite").await;
    let t = cstatus(&last).and_then(|c| c.state.as_ref()?.terminated.clone()).expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")), "SIGTERM made it exit 0");
    assert_eq!(last.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded"));
    assert!(took < Duration::from_secs(10), "removed right after the process exited ({took:?})");
    wait_gone(polite_pid).await;

    let (last, took) = delete_and_watch(&api, "stubborn").await;
    let t = cstatus(&last).and_then(|c| c.state.as_ref()?.terminated.clone()).expect("terminated");
    assert_eq!((t.exit_code, t.signal), (137, Some(9)), "SIGKILLed after the grace period");
    assert_eq!(last.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Failed"));
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(10), "took {took:?}");
    wait_gone(stubborn_pid).await;
    wait_event(&sim, "stubborn", "Killing", "Stopping container server").await;

    // Grace 0: the pod is gone from the API at once; the kubelet kills its process.
    create(&api, server_pod("forced", NODE1, 18085)).await;
    wait_pod(&api, "forced", "Ready", ready).await;
    let pid = server_pid(&api, "forced", false).await;
    api.delete("forced", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.expect("delete");
    wait_gone(pid).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_heartbeats_renew_the_lease_and_can_be_stopped() {
    let sim = start(2).await;
    let client = sim.client().expect("client");
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let node = support::await_cond(&nodes, NODE2, "node Ready", |n: Option<&Node>| {
        n.and_then(|n| n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").cloned())
            .is_some_and(|c| c.status == "True" && c.reason.as_deref() == Some("KubeletReady"))
    })
    .await
    .expect("node");
    let status = node.status.expect("status");
    let info = status.node_info.expect("nodeInfo");
    assert_eq!(info.kubelet_version, "v1.35.0");
    assert_eq!(info.operating_system, "linux");
    let addrs: Vec<(String, String)> =
        status.addresses.unwrap_or_default().into_iter().map(|a| (a.type_, a.address)).collect();
    let internal_ip = sim.addresses().node_ip(2).to_string();
    assert!(addrs.contains(&("InternalIP".into(), internal_ip)), "{addrs:?}");
    assert!(addrs.contains(&("Hostname".into(), NODE2.into())), "{addrs:?}");
    assert_eq!(status.capacity.as_ref().and_then(|c| c.get("cpu")).map(|q| q.0.as_str()), Some("4"));
    assert_eq!(status.allocatable.as_ref().and_then(|c| c.get("pods")).map(|q| q.0.as_str()), Some("110"));
    for c in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let cond = status.conditions.as_ref().and_then(|cs| cs.iter().find(|x| x.type_ == c)).expect(c);
        assert_eq!(cond.status, "False");
        assert!(cond.last_heartbeat_time.is_some());
    }

    let leases: kube::Api<Lease> = kube::Api::namespaced(client, "kube-node-lease");
    let renew = |l: &Lease| l.spec.as_ref().and_then(|s| s.renew_time.clone()).map(|t| t.0);
    let first = support::await_cond(&leases, NODE1, "lease", |l: Option<&Lease>| l.is_some()).await.expect("lease");
    let spec = first.spec.clone().expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(NODE1));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let t0 = renew(&first);
    support::await_cond(&leases, NODE1, "lease renewal", |l: Option<&Lease>| l.map(renew) != Some(t0)).await;

    let handle = sim.kubelets().node(NODE1).expect("node handle");
    handle.set_heartbeat(false);
    // Let a renewal that was already under way land, then watch for none for 5 intervals.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = renew(&leases.get(NODE1).await.expect("lease"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(renew(&leases.get(NODE1).await.expect("lease")), frozen, "no renewal while heartbeats are off");
    let other = renew(&leases.get(NODE2).await.expect("lease"));
    support::await_cond(&leases, NODE2, "other node renews", |l: Option<&Lease>| l.map(renew) != Some(other)).await;

    handle.set_heartbeat(true);
    support::await_cond(&leases, NODE1, "renewal resumed", |l: Option<&Lease>| l.map(renew) != Some(frozen)).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_image_file_waits_with_a_reason_and_unmapped_images_are_virtual() {
    let sim = start(1).await;
    let api = pods(&sim);
    create(
        &api,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "broken"},
            "spec": {"nodeName": NODE1, "containers": [{"name": "c", "image": "hadrill/missing:1"}]}}),
    )
    .await;
    let p = wait_pod(&api, "broken", "ErrImagePull", |p| {
        matches!(waiting_reason(p).as_deref(), Some("ErrImagePull" | "ImagePullBackOff"))
    })
    .await;
    let w = cstatus(&p).and_then(|c| c.state.as_ref()?.waiting.clone()).expect("waiting");
    assert!(w.message.as_deref().is_some_and(|m| m.contains("/nonexistent/hadrill/missing-binary")), "{w:?}");
    assert_eq!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
    let e = wait_event(&sim, "broken", "Failed", "/nonexistent/hadrill/missing-binary").await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    wait_pod(&api, "broken", "ImagePullBackOff", |p| waiting_reason(p).as_deref() == Some("ImagePullBackOff")).await;

    // Unmapped images: virtual pods, Running and Ready without a process.
    for i in 0..100 {
        create(
            &api,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("v-{i}")},
                "spec": {"nodeName": NODE1, "containers": [{"name": "c", "image": "nginx:1.27",
                    "readinessProbe": {"httpGet": {"port": 80}}}]}}),
        )
        .await;
    }
    for i in [0, 50, 99] {
        let p = wait_pod(&api, &format!("v-{i}"), "Ready", ready).await;
        assert!(running(&p));
        assert!(
            sim.addresses().pod_range(1).contains(&pod_ip(&p).parse::<std::net::Ipv4Addr>().expect("IPv4")),
            "{}",
            pod_ip(&p)
        );
    }
    let all = api.list(&ListParams::default()).await.expect("list");
    let ready_count = all.items.iter().filter(|p| ready(p)).count();
    assert!(ready_count >= 90, "{ready_count} virtual pods Ready");
    assert!(sim.kubelets().live_pids().is_empty(), "virtual pods run no process");
    // Deleting a virtual pod finishes at once.
    let uid = api.get("v-0").await.expect("pod").metadata.uid.expect("uid");
    api.delete("v-0", &DeleteParams::default()).await.expect("delete");
    support::await_deleted(&api, "v-0", &uid).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_has_pod_service_and_referenced_values() {
    let sim = start(1).await;
    let client = sim.client().expect("client");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "my-svc"},
        "spec": {"ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}}))
    .expect("svc");
    let svc = kube::Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .expect("service");
    let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).expect("clusterIP");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"color": "blue"}})).expect("cm");
    kube::Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .expect("cm");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "sec"}, "data": {"token": "czNjcjN0"}})).expect("secret");
    kube::Api::<Secret>::namespaced(client, "default").create(&PostParams::default(), &secret).await.expect("secret");

    let api = pods(&sim);
    let mut pod = server_pod("env-pod", NODE1, 18086);
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "PORT", "value": "18086"},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "GREETING", "value": "$(COLOR)-$(POD_NAME)"},
    ]);
    // An exec probe runs on the host with the container's environment.
    pod["spec"]["containers"][0]["readinessProbe"] = json!({"exec": {"command": ["/bin/sh", "-c",
        "test \"$GREETING\" = blue-env-pod"]}, "periodSeconds": 1});
    let created = create(&api, pod).await;
    let p = wait_pod(&api, "env-pod", "Ready", ready).await;
    let pid = server_pid(&api, "env-pod", false).await;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let vars: std::collections::BTreeMap<String, String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| String::from_utf8_lossy(kv).split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let ip = pod_ip(&p);
    let port = sim.addr().port().to_string();
    let uid = created.metadata.uid.expect("uid");
    for (k, v) in [
        ("POD_NAME", "env-pod"),
        ("POD_NAMESPACE", "default"),
        ("POD_IP", ip.as_str()),
        ("NODE_NAME", NODE1),
        ("MY_SVC_SERVICE_HOST", cluster_ip.as_str()),
        ("MY_SVC_SERVICE_PORT", "80"),
        ("MY_SVC_SERVICE_PORT_HTTP", "80"),
        ("MY_SVC_SERVICE_PORT_METRICS", "9090"),
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
        ("COLOR", "blue"),
        ("TOKEN", "s3cr3t"),
        ("MY_IP", ip.as_str()),
        ("MY_UID", uid.as_str()),
        ("GREETING", "blue-env-pod"),
        ("HOSTNAME", "env-pod"),
    ] {
        assert_eq!(vars.get(k).map(String::as_str), Some(v), "{k}");
    }
    let kubeconfig = PathBuf::from(vars.get("KUBECONFIG").expect("KUBECONFIG"));
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig file");
    assert!(text.contains(&sim.url()), "{text}");

    // A missing ConfigMap: CreateContainerConfigError.
    let mut bad = server_pod("bad-env", NODE1, 18087);
    bad["spec"]["containers"][0]["env"] =
        json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]);
    create(&api, bad).await;
    let p = wait_pod(&api, "bad-env", "CreateContainerConfigError", |p| {
        waiting_reason(p).as_deref() == Some("CreateContainerConfigError")
    })
    .await;
    let msg = cstatus(&p).and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone());
    assert_eq!(msg.as_deref(), Some("configmap \"nope\" not found"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_process_survives_sim_stop() {
    let sim = start(1).await;
    let api = pods(&sim);
    create(&api, server_pod("doomed", NODE1, 18088)).await;
    let mut stubborn = server_pod("doomed-stubborn", NODE1, 18088);
    stubborn["spec"]["containers"][0]["args"] = json!(["--ignore-sigterm"]);
    create(&api, stubborn).await;
    wait_pod(&api, "doomed", "Ready", ready).await;
    wait_pod(&api, "doomed-stubborn", "Ready", ready).await;
    let pids = sim.kubelets().live_pids();
    assert_eq!(pids.len(), 2);
    sim.stop().await;
    for pid in pids {
        assert!(!pid_alive(pid), "process {pid} survived Sim::stop");
    }
}

const ORPHAN_ENV: &str = "HADRILL_ORPHAN_CHILD_PIDFILE";

/// Child side of `no_process_survives_a_sigkilled_parent`: starts a cluster with a pod, writes
/// the pod's pid, then blocks. Does nothing unless started by that test.
#[tokio::test(flavor = "multi_thread")]
async fn orphan_child_helper() {
    let Ok(pidfile) = std::env::var(ORPHAN_ENV) else { return };
    // Killed without cleanup: the parent removes this run directory.
    let run_dir = PathBuf::from(format!("{pidfile}.run"));
    let sim = start_with(1, KubeletConfig { run_dir: Some(run_dir), ..KubeletConfig::fast() }).await;
    let api = pods(&sim);
    create(&api, server_pod("orphan", NODE1, 18089)).await;
    wait_pod(&api, "orphan", "Ready", ready).await;
    let pid = server_pid(&api, "orphan", false).await;
    let tmp = format!("{pidfile}.tmp");
    std::fs::write(&tmp, pid.to_string()).expect("write pid");
    std::fs::rename(&tmp, &pidfile).expect("publish pid");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_process_survives_a_sigkilled_parent() {
    if std::env::var(ORPHAN_ENV).is_ok() {
        return;
    }
    let pidfile = std::env::temp_dir().join(format!("hadrill-orphan-{}-{}.pid", std::process::id(), line!()));
    let _ = std::fs::remove_file(&pidfile);
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "orphan_child_helper", "--nocapture", "--test-threads=1"])
        .env(ORPHAN_ENV, &pidfile)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the child test process");
    // The pid file appears once the child's pod runs (no event to wait on across processes).
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid: u32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile) {
            break text.trim().parse().expect("pid");
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child test process exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the child never reported its pod's pid");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(pid_alive(pid), "the pod process runs");
    child.start_kill().expect("SIGKILL the child");
    child.wait().await.expect("reap the child");
    wait_gone(pid).await;
    let _ = std::fs::remove_file(&pidfile);
    let _ = std::fs::remove_dir_all(format!("{}.run", pidfile.display()));
}
