//! Waiting by watch: for one object, for a set of objects, and a recorded history of one
//! Service that tests read from any point on.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Upper bound for anything the cluster or the controller should do by itself (a safety net,
/// not a sleep: every wait returns as soon as its condition holds).
pub const PROMPTLY: Duration = Duration::from_secs(30);

/// Waits until `cond` holds for the named object; on timeout, panics showing the object.
pub async fn until<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + serde::Serialize + Send + 'static,
{
    match tokio::time::timeout(PROMPTLY, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(other) => panic!("watching {name} for {what}: {other:?}"),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten().and_then(|o| serde_json::to_string(&o).ok());
            panic!("timed out after {PROMPTLY:?} waiting for {name}: {what}; now: {}", now.unwrap_or_default())
        }
    }
}

/// Waits until `cond` holds for the objects with `labels` (as a name → object map).
pub async fn until_all<K>(api: &Api<K>, labels: &str, what: &str, cond: impl Fn(&BTreeMap<String, K>) -> bool) -> Vec<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut stream = std::pin::pin!(watcher(api.clone(), watcher::Config::default().labels(labels)));
    let mut seen: BTreeMap<String, K> = BTreeMap::new();
    let mut listing: BTreeMap<String, K> = BTreeMap::new();
    let mut synced = false;
    let wait = async {
        while let Some(event) = stream.try_next().await.expect("watch") {
            match event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(o) => {
                    listing.insert(o.name_any(), o);
                }
                watcher::Event::InitDone => {
                    seen = std::mem::take(&mut listing);
                    synced = true;
                }
                watcher::Event::Apply(o) => {
                    seen.insert(o.name_any(), o);
                }
                watcher::Event::Delete(o) => {
                    seen.remove(&o.name_any());
                }
            }
            if synced && cond(&seen) {
                return seen.values().cloned().collect::<Vec<_>>();
            }
        }
        panic!("the watch for {what} ended");
    };
    match tokio::time::timeout(PROMPTLY, wait).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PROMPTLY:?} waiting for {what}"),
    }
}

/// Awaits `f`, panicking after `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// One observed version of a Service.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When the watch delivered it.
    pub at: Instant,
    /// The Service.
    pub svc: Service,
}

/// Every version of one Service a watch delivered, from before the test's faults on: a fault
/// to switch time is measured at delivery, and "no switch" is checked over the whole history.
pub struct ServiceLog {
    name: String,
    seen: watch::Receiver<Vec<Seen>>,
    task: JoinHandle<()>,
}

impl ServiceLog {
    /// Starts watching Service `name` in `ns` (it need not exist yet).
    pub fn start(client: &Client, ns: &str, name: &str) -> ServiceLog {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        let (tx, rx) = watch::channel(Vec::new());
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn(async move {
            let stream = watcher(api, config).default_backoff().applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(next) = stream.next().await {
                if let Ok(svc) = next {
                    tx.send_modify(|v| v.push(Seen { at: Instant::now(), svc }));
                }
            }
        });
        ServiceLog { name: name.to_string(), seen: rx, task }
    }

    /// How many versions were seen so far (a position to wait or check from).
    pub fn mark(&self) -> usize {
        self.seen.borrow().len()
    }

    /// Versions seen from position `from` on.
    pub fn since(&self, from: usize) -> Vec<Seen> {
        self.seen.borrow().get(from..).map(<[Seen]>::to_vec).unwrap_or_default()
    }

    /// Waits for the first version at or after `from` satisfying `cond`; returns its position.
    pub async fn wait(&self, from: usize, what: &str, cond: impl Fn(&Service) -> bool) -> (usize, Seen) {
        let mut rx = self.seen.clone();
        let first =
            |v: &Vec<Seen>| v.iter().enumerate().skip(from).find(|(_, s)| cond(&s.svc)).map(|(i, s)| (i, s.clone()));
        match tokio::time::timeout(PROMPTLY, rx.wait_for(|v| first(v).is_some())).await {
            Ok(Ok(v)) => first(&v).expect("the version just seen"),
            Ok(Err(_)) => panic!("the watch of Service {} ended", self.name),
            Err(_) => {
                let last = self.seen.borrow().last().map(|s| s.svc.annotations().clone());
                panic!(
                    "timed out after {PROMPTLY:?} waiting for Service {}: {what}; last annotations: {last:?}",
                    self.name
                )
            }
        }
    }
}

impl Drop for ServiceLog {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            let seen = self.seen.borrow();
            eprintln!("--- Service {}: {} versions seen ---", self.name, seen.len());
            let t0 = seen.first().map(|s| s.at);
            for s in seen.iter() {
                let after = t0.map(|t| s.at - t).unwrap_or_default();
                let selector = s.svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
                let ann = s.svc.annotations();
                eprintln!(
                    "+{after:?} rv {:?} selector {selector:?} active {:?} condition {:?}",
                    s.svc.resource_version(),
                    ann.get(hadrill_controller::annotations::ACTIVE),
                    ann.get(hadrill_controller::annotations::CONDITION)
                );
            }
        }
    }
}

/// Waits for an event (events.k8s.io/v1) about Service `svc` satisfying `cond`.
pub async fn event(client: &Client, ns: &str, svc: &str, what: &str, cond: impl Fn(&Event) -> bool) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let stream = watcher(events, watcher::Config::default()).applied_objects();
    let matching = stream.try_filter(|e| {
        let ok = e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(svc) && cond(e);
        futures::future::ready(ok)
    });
    let mut matching = std::pin::pin!(matching);
    within(PROMPTLY, what, matching.next()).await.expect("event stream ended").expect("event watch")
}

/// Events about Service `svc` so far.
pub async fn events_of(client: &Client, ns: &str, svc: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let all = events.list(&ListParams::default()).await.expect("list events").items;
    all.into_iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(svc)).collect()
}
