//! Shared helpers of the chaos engine tests: a cluster running the test server as real
//! processes, chaos objects through kube-rs, waits by watch, effect probes, and the
//! no-leftovers check every test ends with.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use serde_json::{Value, json};
use sim::Sim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound for anything that should happen promptly (a safety net, not a sleep).
pub const PROMPTLY: Duration = Duration::from_secs(30);
/// Seed of every test cluster, so a failing pick replays.
pub const SEED: u64 = 20_260_807;

/// [`crate::support::process_config`], seeded (so a failing pick replays) and with quick chaos
/// retries.
pub async fn start(nodes: usize) -> Sim {
    let mut config = crate::support::process_config(nodes);
    config.chaos.seed = Some(SEED);
    config.chaos.retry = Duration::from_millis(200);
    Sim::start(config).await.expect("embedded cluster starts")
}

/// Whether iptables works here. Without it, a test that needs it is skipped with the reason,
/// unless `HADRILL_REQUIRE_IPTABLES=1` makes that a failure.
pub fn iptables_or_skip(sim: &Sim, test: &str) -> bool {
    match sim.chaos().expect("chaos engine on").iptables() {
        Ok(()) => true,
        Err(why) if std::env::var("HADRILL_REQUIRE_IPTABLES").as_deref() == Ok("1") => {
            panic!("{test}: iptables is required (HADRILL_REQUIRE_IPTABLES=1) but unusable: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

/// A pod template of the test server on `port` with an HTTP readiness probe.
pub fn server_template(labels: &Value, port: u16) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "server", "image": "hadrill/test-server:dev",
            "env": [{"name": "PORT", "value": port.to_string()}],
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
        }],
    }})
}

/// A Deployment `name` (label `app=name`) of `replicas` test servers on `port`, waited for
/// until every replica is available; returns its pods.
pub async fn servers(client: &kube::Client, ns: &str, name: &str, replicas: i32, port: u16) -> Vec<Pod> {
    let labels = json!({"app": name});
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": server_template(&labels, port)},
    }))
    .expect("deployment fixture");
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &d).await.expect("create deployment");
    wait_for(&api, name, "every replica available", move |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.available_replicas == Some(replicas))
    })
    .await;
    pods_of(client, ns, name).await
}

/// Running pods labelled `app=name`, by name.
pub async fn pods_of(client: &kube::Client, ns: &str, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut pods = api.list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list pods").items;
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

/// Creates namespace `ns`.
pub async fn namespace(client: &kube::Client, ns: &str) {
    let n: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace fixture");
    Api::all(client.clone()).create(&PostParams::default(), &n).await.expect("create namespace");
}

/// The resource of chaos kind `kind` (`PodChaos`, ...).
pub fn chaos_resource(kind: &str) -> ApiResource {
    ApiResource {
        group: "chaos-mesh.org".into(),
        version: "v1alpha1".into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        kind: kind.into(),
        plural: kind.to_lowercase(),
    }
}

/// The API of chaos kind `kind` in `ns`.
pub fn chaos_api(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &chaos_resource(kind))
}

/// Creates a chaos object from JSON (`kind` and `metadata.name` set).
pub async fn create_chaos(client: &kube::Client, ns: &str, obj: Value) -> DynamicObject {
    let kind = obj["kind"].as_str().expect("kind").to_string();
    let mut obj = obj;
    obj["apiVersion"] = json!("chaos-mesh.org/v1alpha1");
    let dynamic: DynamicObject = serde_json::from_value(obj).expect("chaos fixture");
    chaos_api(client, ns, &kind).create(&PostParams::default(), &dynamic).await.expect("create chaos object")
}

/// The condition `t` of a chaos object's status.
pub fn condition(obj: &DynamicObject, t: &str) -> Option<String> {
    obj.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == t)?["status"].as_str().map(str::to_string)
}

/// Waits until every `(type, status)` of `want` holds; returns the object.
pub async fn await_conditions(api: &Api<DynamicObject>, name: &str, want: &[(&str, &str)]) -> DynamicObject {
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let what = format!("conditions {want:?}");
    wait_for(api, name, &what, move |o: Option<&DynamicObject>| {
        o.is_some_and(|o| want.iter().all(|(t, s)| condition(o, t).as_deref() == Some(s.as_str())))
    })
    .await
}

/// Injected: `Selected` and `AllInjected` are True.
pub async fn await_injected(api: &Api<DynamicObject>, name: &str) -> DynamicObject {
    await_conditions(api, name, &[("Selected", "True"), ("AllInjected", "True")]).await
}

/// Deletes the object and waits until it is gone (the finalizer is dropped after recovery).
pub async fn delete_and_await_gone(api: &Api<DynamicObject>, name: &str) -> Duration {
    let t0 = Instant::now();
    let uid = api.get(name).await.expect("object exists").metadata.uid.expect("uid");
    api.delete(name, &DeleteParams::default()).await.expect("delete chaos object");
    match tokio::time::timeout(
        PROMPTLY,
        await_condition(api.clone(), name, kube::runtime::wait::conditions::is_deleted(&uid)),
    )
    .await
    {
        Ok(Ok(_)) => t0.elapsed(),
        other => panic!("{name} not gone after delete: {other:?}; now {:?}", api.get_opt(name).await),
    }
}

/// The record ids of a chaos object.
pub fn record_ids(obj: &DynamicObject) -> Vec<String> {
    obj.data["status"]["experiment"]["containerRecords"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// Waits (by watch) until `cond` holds for `name`; on timeout shows the object.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize + Send + 'static,
{
    match tokio::time::timeout(PROMPTLY, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(other) => panic!("watching {name} for {what}: {other:?}"),
        Err(_) => {
            let now = api.get(name).await.ok().and_then(|o| serde_json::to_value(o).ok());
            panic!("timed out waiting for {name}: {what}; now: {}", now.map(|o| o.to_string()).unwrap_or_default())
        }
    }
}

/// The address of `pod` on `port`.
pub fn pod_addr(p: &Pod, port: u16) -> SocketAddr {
    let ip = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).expect("pod IP");
    SocketAddr::new(ip.parse().expect("pod IP parses"), port)
}

/// `GET /` (the test server answers its pod name) within `timeout`, or the error.
pub async fn who(addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let run = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await?;
        Ok::<_, std::io::Error>(buf.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

/// Polls `addr` until an answer satisfies `ok` (nothing in the API reports reachability).
pub async fn until(addr: SocketAddr, what: &str, ok: impl Fn(&std::io::Result<String>) -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if ok(&who(addr, Duration::from_millis(500)).await) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < PROMPTLY, "{what}: not within {PROMPTLY:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU time (user + system, in clock ticks) of process `pid`.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Every test ends here: no chaos object in any namespace, no iptables chain, worker process,
/// stopped heartbeat or delay rule left; then the cluster stops.
pub async fn assert_no_leftovers(sim: Sim) {
    let client = sim.client().expect("client");
    for kind in ["PodChaos", "NetworkChaos", "StressChaos"] {
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &chaos_resource(kind));
        let left = all.list(&ListParams::default()).await.expect("list chaos objects").items;
        let names: Vec<String> = left.iter().filter_map(|o| o.metadata.name.clone()).collect();
        assert!(names.is_empty(), "{kind} objects left behind: {names:?}");
    }
    let chaos = sim.chaos().expect("chaos engine on");
    // Recovery is synchronous with the finalizer's removal, so nothing should linger.
    let left = chaos.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
    sim.stop().await;
}
