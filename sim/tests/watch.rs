//! Watch semantics through kube-runtime's watcher/reflector and raw HTTP streams.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher};
use serde_json::{Value, json};
use sim::SimConfig;

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"v": "0"}})).unwrap()
}

/// Address and admin token of a cluster, for raw watches.
fn target(sim: &sim::Sim) -> (std::net::SocketAddr, String) {
    (sim.addr(), sim.admin_token().to_string())
}

/// Reads newline-delimited watch events from a raw HTTP stream until `stop` says so.
async fn raw_watch(
    sim: (std::net::SocketAddr, String),
    path: &str,
    mut stop: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let (addr, token) = sim;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(s);
    let mut events = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("watch stalled")
            .unwrap();
        if n == 0 {
            break;
        }
        // Chunked framing: event lines start with '{'; chunk sizes and blank lines are skipped.
        if let Some(start) = line.find('{') {
            events.push(serde_json::from_str(line[start..].trim()).unwrap());
            if stop(&events) {
                break;
            }
        }
    }
    events
}

/// Runs a reflector; every event it applies is signalled on the returned channel, so a test
/// can re-check the reflected state exactly when it changes.
fn signalled_reflector(
    api: Api<ConfigMap>,
) -> (reflector::Store<ConfigMap>, tokio::sync::mpsc::UnboundedReceiver<()>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store::<ConfigMap>();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = reflector(writer, watcher(api, watcher::Config::default()));
    let driver = tokio::spawn(async move {
        stream
            .for_each(|_| {
                let _ = tx.send(());
                async {}
            })
            .await
    });
    (reader, rx, driver)
}

/// Waits until `done` holds for the reflected state, re-checking after each reflector event.
async fn until_reflected(
    reader: &reflector::Store<ConfigMap>,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    what: &str,
    done: impl Fn(&[std::sync::Arc<ConfigMap>]) -> bool,
) {
    let waited = tokio::time::timeout(Duration::from_secs(15), async {
        while !done(&reader.state()) {
            if events.recv().await.is_none() {
                break;
            }
        }
    })
    .await;
    assert!(waited.is_ok() && done(&reader.state()), "{what}: reflector holds {} objects", reader.state().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn reflector_converges_and_events_arrive_in_resource_version_order() {
    let sim = support::start(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    let (reader, mut signals, driver) = signalled_reflector(api.clone());
    reader.wait_until_ready().await.unwrap();

    let start_rv = sim.api().store.resource_version();
    for i in 0..40 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({"n": i.to_string()}))).await.unwrap();
    }
    for i in (0..40).step_by(3) {
        api.patch(&format!("c{i}"), &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "1"}}))).await.unwrap();
    }
    for i in (0..40).step_by(4) {
        api.delete(&format!("c{i}"), &DeleteParams::default()).await.unwrap();
    }
    let expected: BTreeMap<String, String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.metadata.name.unwrap(), c.metadata.resource_version.unwrap()))
        .collect();
    let rv_map = |state: &[std::sync::Arc<ConfigMap>]| -> BTreeMap<String, String> {
        state.iter().map(|c| (c.metadata.name.clone().unwrap(), c.metadata.resource_version.clone().unwrap())).collect()
    };
    until_reflected(&reader, &mut signals, "reflector converges to the listed state", |s| rv_map(s) == expected).await;
    driver.abort();

    let path = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start_rv}");
    let total = 40 + 14 + 10;
    let events = raw_watch(target(&sim), &path, |e| e.len() == total).await;
    let rvs: Vec<u64> =
        events.iter().map(|e| e["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()).collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "strictly increasing resourceVersions");
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!((count("ADDED"), count("MODIFIED"), count("DELETED")), (40, 14, 10));
}

/// Runs a raw kube-runtime watcher and forwards its events (Init/Apply/...) as short labels.
fn watcher_events(api: Api<ConfigMap>) -> (tokio::sync::mpsc::UnboundedReceiver<String>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        loop {
            let label = match stream.next().await {
                None => return,
                Some(Ok(watcher::Event::Init)) => "init".to_string(),
                Some(Ok(watcher::Event::InitApply(o))) => format!("initapply:{}", o.metadata.name.unwrap_or_default()),
                Some(Ok(watcher::Event::InitDone)) => "initdone".to_string(),
                Some(Ok(watcher::Event::Apply(o))) => format!("apply:{}", o.metadata.name.unwrap_or_default()),
                Some(Ok(watcher::Event::Delete(o))) => format!("delete:{}", o.metadata.name.unwrap_or_default()),
                Some(Err(e)) => format!("error:{e}"),
            };
            if tx.send(label).is_err() {
                return;
            }
        }
    });
    (rx, driver)
}

/// Receives watcher events until `want` arrives; returns everything seen before it.
///
/// The deadline is long because a watcher refused by a suspended server backs off
/// exponentially (kube-runtime's default: 0.8 s doubling up to 30 s, jittered): on a loaded
/// machine the creates made meanwhile can take long enough for its next try to be 30 s away.
async fn until_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(e) = rx.recv().await {
            if e == want {
                return;
            }
            seen.push(e);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want} event; saw {seen:?}"));
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_survives_the_server_closing_its_stream() {
    let sim = support::start(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    let (mut rx, driver) = watcher_events(api.clone());
    until_event(&mut rx, "initdone").await;
    api.create(&PostParams::default(), &cm("before", json!({}))).await.unwrap();
    until_event(&mut rx, "apply:before").await;
    // The stream ends and cannot come back until "after" exists: the watcher must resume
    // from its resourceVersion and receive it without relisting.
    sim.suspend_watches(true);
    sim.close_watches();
    api.create(&PostParams::default(), &cm("after", json!({}))).await.unwrap();
    sim.suspend_watches(false);
    let between = until_event(&mut rx, "apply:after").await;
    assert!(!between.iter().any(|e| e == "init"), "resumed without a relist: {between:?}");
    driver.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_resource_version_ends_the_watch_with_410_and_the_watcher_relists() {
    let sim = support::start_with(SimConfig { watch_history: 5, ..Default::default() }).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    let old_rv = sim.api().store.resource_version();
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({}))).await.unwrap();
    }
    let path = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={old_rv}");
    let events = raw_watch(target(&sim), &path, |e| e.iter().any(|x| x["type"] == "ERROR")).await;
    assert_eq!(events.len(), 1, "only the error, no stale events: {events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");

    // A watcher whose stream is closed and whose resourceVersion expires meanwhile relists.
    let (mut rx, driver) = watcher_events(api.clone());
    until_event(&mut rx, "initdone").await;
    sim.suspend_watches(true);
    sim.close_watches();
    for i in 20..40 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({}))).await.unwrap();
    }
    sim.suspend_watches(false);
    let before_relist = until_event(&mut rx, "init").await;
    assert!(
        !before_relist.iter().any(|e| e.starts_with("apply:")),
        "no stale events before the relist: {before_relist:?}"
    );
    let relisted = until_event(&mut rx, "initdone").await;
    assert_eq!(relisted.iter().filter(|e| e.starts_with("initapply:")).count(), 40, "the relist returns every object");
    driver.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_label_selector_watch_sees_objects_enter_and_leave() {
    let sim = support::start(1).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    api.create(&PostParams::default(), &cm("m", json!({"role": "standby"}))).await.unwrap();
    let rv = sim.api().store.resource_version();
    let path =
        format!("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=role%3Dprimary&resourceVersion={rv}");
    let t = target(&sim);
    let reader = tokio::spawn(async move { raw_watch(t, &path, |e| e.len() == 3).await });
    let set = |role: &str| Patch::Merge(json!({"metadata": {"labels": {"role": role}}}));
    api.patch("m", &PatchParams::default(), &set("primary")).await.unwrap();
    api.patch("m", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "2"}}))).await.unwrap();
    api.patch("m", &PatchParams::default(), &set("standby")).await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bookmarks_and_initial_events_end() {
    let sim =
        support::start_with(SimConfig { bookmark_interval: Duration::from_millis(100), ..Default::default() }).await;
    let api: Api<ConfigMap> = Api::default_namespaced(sim.client().unwrap());
    api.create(&PostParams::default(), &cm("x", json!({}))).await.unwrap();
    let path = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true";
    let events = raw_watch(target(&sim), path, |e| e.len() == 3).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(events[1]["object"]["kind"], "ConfigMap");
    assert_eq!(events[2]["type"], "BOOKMARK", "periodic bookmark");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_selector_watch_sees_only_pods_on_its_node() {
    use k8s_openapi::api::core::v1::Pod;
    let sim = support::start(2).await;
    let pods: Api<Pod> = Api::default_namespaced(sim.client().unwrap());
    let rv = sim.api().store.resource_version();
    let path = format!("/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dhadrill-worker2&resourceVersion={rv}");
    let t = target(&sim);
    // The kubelets also write pod status (MODIFIED events); wait for the two creations.
    let added = |e: &[Value]| e.iter().filter(|e| e["type"] == "ADDED").count();
    let reader = tokio::spawn(async move { raw_watch(t, &path, |e| added(e) == 2).await });
    for (name, node) in
        [("a", "hadrill-worker"), ("b", "hadrill-worker2"), ("c", "hadrill-worker"), ("d", "hadrill-worker2")]
    {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let events = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
    let nodes: Vec<&str> = events.iter().map(|e| e["object"]["spec"]["nodeName"].as_str().unwrap()).collect();
    assert!(nodes.iter().all(|n| *n == "hadrill-worker2"), "{nodes:?}");
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["b", "d"]);
}
