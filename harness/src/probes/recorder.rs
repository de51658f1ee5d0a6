//! The scenario recorder: background watches on a namespace's Services, Endpoints and Events
//! that keep a timestamped history (what the Service selected and when, which endpoints were
//! ready, what the cluster reported). A failed scenario's bundle shows it as
//! `endpoint-history.txt`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Event as CoreEvent, Service};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, watcher as watch};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

/// Annotation kubectl keeps a whole object copy in: noise in a history.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One recorded observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Seconds since the recorder started.
    pub at: f64,
    /// Wall-clock time of the observation.
    pub wall: Timestamp,
    /// What was seen, e.g. `service web: selector app=web,side=standby`.
    pub text: String,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "+{:9.3} s  {}  {}",
            self.at,
            self.wall.round(k8s_openapi::jiff::Unit::Millisecond).unwrap_or(self.wall),
            self.text
        )
    }
}

/// The shared history the watch tasks append to.
#[derive(Clone)]
struct Log {
    started: Instant,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Log {
    fn push(&self, text: String) {
        let entry = Entry { at: self.started.elapsed().as_secs_f64(), wall: Timestamp::now(), text };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    }
}

/// Background watches on one namespace; stopped when dropped.
pub struct Recorder {
    namespace: String,
    log: Log,
    tasks: Vec<JoinHandle<()>>,
}

impl Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts watching `namespace`'s Services, Endpoints and Events (needs a tokio runtime).
    pub fn start(client: kube::Client, namespace: &str) -> Recorder {
        let log = Log { started: Instant::now(), entries: Arc::default() };
        let tasks = vec![
            tokio::spawn(track(
                Api::<Service>::namespaced(client.clone(), namespace),
                log.clone(),
                "service",
                describe_service,
                true,
            )),
            tokio::spawn(track(
                Api::<Endpoints>::namespaced(client.clone(), namespace),
                log.clone(),
                "endpoints",
                describe_endpoints,
                true,
            )),
            // Events expire; their deletion is not news.
            tokio::spawn(track(
                Api::<CoreEvent>::namespaced(client, namespace),
                log.clone(),
                "event",
                describe_event,
                false,
            )),
        ];
        Recorder { namespace: namespace.to_string(), log, tasks }
    }

    /// The namespace recorded.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Everything recorded so far, in time order.
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = self.log.entries.lock().unwrap_or_else(|p| p.into_inner()).clone();
        entries.sort_by(|a, b| a.at.total_cmp(&b.at));
        entries
    }

    /// Everything recorded so far, one formatted line each (`+  12.345 s  <time>  <what>`).
    pub fn lines(&self) -> Vec<String> {
        self.entries().iter().map(Entry::to_string).collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Watches one kind and records a line whenever an object's description changes (and, with
/// `deletes`, when it goes away). A relist that no longer has an object counts as its deletion.
async fn track<K>(api: Api<K>, log: Log, what: &'static str, describe: fn(&K) -> String, deletes: bool)
where
    K: kube::Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut listing: Option<BTreeSet<String>> = None;
    let mut last_error: Option<String> = None;
    let stream = watch(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => {
                last_error = None;
                event
            }
            Err(e) => {
                // The watcher retries with back-off; one line per distinct error is enough.
                let text = format!("{what} watch error: {e}");
                if last_error.as_ref() != Some(&text) {
                    log.push(text.clone());
                    last_error = Some(text);
                }
                continue;
            }
        };
        match event {
            Event::Init => listing = Some(BTreeSet::new()),
            Event::InitApply(obj) | Event::Apply(obj) => {
                let name = obj.meta().name.clone().unwrap_or_default();
                if let Some(seen) = listing.as_mut() {
                    seen.insert(name.clone());
                }
                let now = describe(&obj);
                if last.get(&name) != Some(&now) {
                    log.push(format!("{what} {name}: {now}"));
                    last.insert(name, now);
                }
            }
            Event::InitDone => {
                let seen = listing.take().unwrap_or_default();
                let gone: Vec<String> = last.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for name in gone {
                    last.remove(&name);
                    if deletes {
                        log.push(format!("{what} {name} deleted"));
                    }
                }
            }
            Event::Delete(obj) => {
                let name = obj.meta().name.clone().unwrap_or_default();
                last.remove(&name);
                if deletes {
                    log.push(format!("{what} {name} deleted"));
                }
            }
        }
    }
}

fn describe_service(svc: &Service) -> String {
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|s| s.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let annotations = svc
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("selector {{{selector}}} annotations {{{annotations}}}")
}

fn describe_endpoints(ep: &Endpoints) -> String {
    fn addresses(list: Option<&Vec<EndpointAddress>>) -> Vec<String> {
        list.into_iter()
            .flatten()
            .map(|a| match a.target_ref.as_ref().and_then(|t| t.name.as_deref()) {
                Some(pod) => format!("{} ({pod})", a.ip),
                None => a.ip.clone(),
            })
            .collect()
    }
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        ready.extend(addresses(subset.addresses.as_ref()));
        not_ready.extend(addresses(subset.not_ready_addresses.as_ref()));
    }
    ready.sort();
    not_ready.sort();
    format!("ready [{}] not ready [{}]", ready.join(", "), not_ready.join(", "))
}

fn describe_event(ev: &CoreEvent) -> String {
    let object = format!(
        "{}/{}",
        ev.involved_object.kind.as_deref().unwrap_or("?").to_lowercase(),
        ev.involved_object.name.as_deref().unwrap_or("?")
    );
    let count = ev.count.filter(|c| *c > 1).map(|c| format!(" (x{c})")).unwrap_or_default();
    format!(
        "{} {} {object}: {}{count}",
        ev.type_.as_deref().unwrap_or("Normal"),
        ev.reason.as_deref().unwrap_or(""),
        ev.message.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_what_a_reader_needs() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "annotations": {"failover.hadrill.io/active": "standby", LAST_APPLIED: "{...}"}},
            "spec": {"selector": {"app": "web", "side": "standby"}},
        }))
        .unwrap();
        assert_eq!(
            describe_service(&svc),
            "selector {app=web,side=standby} annotations {failover.hadrill.io/active=standby}"
        );
        let ep: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "subsets": [{
                "addresses": [{"ip": "127.10.0.3", "targetRef": {"kind": "Pod", "name": "web-b"}}, {"ip": "127.10.0.2"}],
                "notReadyAddresses": [{"ip": "127.10.0.4"}],
            }],
        }))
        .unwrap();
        assert_eq!(describe_endpoints(&ep), "ready [127.10.0.2, 127.10.0.3 (web-b)] not ready [127.10.0.4]");
        let ev: CoreEvent = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e1"}, "type": "Warning", "reason": "Unhealthy", "count": 3,
            "message": "Readiness probe failed", "involvedObject": {"kind": "Pod", "name": "web-a"},
        }))
        .unwrap();
        assert_eq!(describe_event(&ev), "Warning Unhealthy pod/web-a: Readiness probe failed (x3)");
    }

    /// Waits (polling the history, at most 30 s) until a line contains `needle`.
    async fn until_line(rec: &Recorder, needle: &str) -> String {
        let found = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                if let Some(l) = rec.lines().into_iter().find(|l| l.contains(needle)) {
                    return l;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no line with {needle:?} in {:#?}", rec.lines()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_selector_endpoint_and_event_changes_until_dropped() {
        use k8s_openapi::api::core::v1::{Namespace, Pod};
        use kube::api::{Patch, PatchParams, PostParams};
        sim::install_crypto_provider();
        let sim = sim::Sim::start(sim::SimConfig { nodes: 1, ..Default::default() }).await.unwrap();
        let client = sim.client().unwrap();
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "rec"}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
        let rec = Recorder::start(client.clone(), "rec");

        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }))
        .unwrap();
        let services = Api::<Service>::namespaced(client.clone(), "rec");
        services.create(&PostParams::default(), &svc).await.unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-a", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "virtual:latest"}]},
        }))
        .unwrap();
        Api::<Pod>::namespaced(client.clone(), "rec").create(&PostParams::default(), &pod).await.unwrap();
        until_line(&rec, "service web: selector {app=web}").await;
        until_line(&rec, "(web-a)] not ready []").await;

        let patch = serde_json::json!({"spec": {"selector": {"app": "other"}}});
        services.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        until_line(&rec, "service web: selector {app=other}").await;
        until_line(&rec, "endpoints web: ready [] not ready []").await;
        until_line(&rec, "event").await;

        let lines = rec.lines();
        let ats: Vec<f64> = rec.entries().iter().map(|e| e.at).collect();
        assert!(ats.windows(2).all(|w| w[0] <= w[1]), "time-ordered: {lines:#?}");
        let entries = Arc::clone(&rec.log.entries);
        drop(rec);
        // The aborted tasks release their handle on the history.
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while Arc::strong_count(&entries) > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the watch tasks stop when the recorder is dropped");
        sim.stop().await;
    }
}
