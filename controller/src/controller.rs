//! Wiring: reflector stores of Services, Deployments, StatefulSets, Pods and Nodes; watch events
//! of the latter mapped to the HA Services they concern; one kube-runtime `Controller` on
//! Services per watched scope (all namespaces, or each listed namespace).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::Settings;
use crate::annotations;
use crate::departures::Departures;
use crate::events::Publisher;
use crate::health::NodeReadiness;
use crate::health::restarts::{RestartTracker, later};
use crate::memory::ServiceMemory;
use crate::metrics::Metrics;
use crate::pod_index::PodIndex;
use crate::probe::Prober;
use crate::triggers::Triggers;
use crate::workload::{Workload, WorkloadKind, WorkloadRef};

/// State shared by every scope of one controller instance.
pub struct Shared {
    /// Settings.
    pub settings: Settings,
    /// API client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Black-box prober.
    pub prober: Arc<Prober>,
    /// Event publisher.
    pub events: Publisher,
    /// Whether this instance leads.
    pub leading: watch::Receiver<bool>,
    /// Nodes.
    pub nodes: Store<Node>,
    /// Reconcile triggers.
    pub triggers: Triggers,
    /// Whether the caches are synced (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Pods deleted recently (named in the reason of a failover).
    pub departures: Departures,
    restarts: Mutex<RestartTracker>,
    memory: Mutex<HashMap<ObjectRef<Service>, ServiceMemory>>,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        settings: Settings,
        client: Client,
        metrics: Arc<Metrics>,
        leading: watch::Receiver<bool>,
        nodes: Store<Node>,
        ready: Arc<AtomicBool>,
    ) -> Shared {
        Shared {
            prober: Arc::new(Prober::new(settings.probe.clone())),
            events: Publisher::new(client.clone(), settings.identity.clone()),
            restarts: Mutex::new(RestartTracker::new(settings.checks.restart_window)),
            departures: Departures::new(settings.checks.restart_window),
            memory: Mutex::default(),
            triggers: Triggers::default(),
            settings,
            client,
            metrics,
            leading,
            nodes,
            ready,
        }
    }

    /// Whether this instance may act.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// The restart tracker.
    pub fn restarts(&self) -> MutexGuard<'_, RestartTracker> {
        self.restarts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the memory of a Service.
    pub fn with_memory<T>(&self, key: &ObjectRef<Service>, f: impl FnOnce(&mut ServiceMemory) -> T) -> T {
        let mut all = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        f(all.entry(key.clone()).or_default())
    }

    /// Forgets a Service (no longer HA, or gone).
    pub fn forget(&self, key: &ObjectRef<Service>) {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        self.prober.remove(key);
    }

    /// Forgets Services of `scope` that `exists` denies.
    fn forget_gone(
        &self,
        in_scope: impl Fn(&ObjectRef<Service>) -> bool,
        exists: impl Fn(&ObjectRef<Service>) -> bool,
    ) {
        let gone: Vec<ObjectRef<Service>> = {
            let all = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
            all.keys().filter(|k| in_scope(k) && !exists(k)).cloned().collect()
        };
        for key in gone {
            self.forget(&key);
        }
    }
}

/// One watched scope: a namespace, or all namespaces.
pub struct Scope {
    /// Process-wide state.
    pub shared: Arc<Shared>,
    /// The namespace (`None`: all).
    pub namespace: Option<String>,
    /// Services.
    pub services: Store<Service>,
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// StatefulSets.
    pub statefulsets: Store<StatefulSet>,
    /// Pods.
    pub pods: Store<Pod>,
    /// Pods by label.
    pub pod_index: Arc<PodIndex>,
    last_gc: Mutex<Timestamp>,
}

impl Scope {
    /// A scope reading the given stores.
    pub fn new(
        shared: Arc<Shared>,
        namespace: Option<String>,
        services: Store<Service>,
        deployments: Store<Deployment>,
        statefulsets: Store<StatefulSet>,
        pods: Store<Pod>,
    ) -> Scope {
        Scope {
            shared,
            namespace,
            services,
            deployments,
            statefulsets,
            pods,
            pod_index: Arc::default(),
            last_gc: Mutex::new(Timestamp::now()),
        }
    }

    /// The named workload in `ns`, if it exists.
    pub fn workload(&self, ns: &str, r: &WorkloadRef) -> Option<Workload> {
        match r.kind {
            WorkloadKind::Deployment => {
                self.deployments.get(&ObjectRef::new(&r.name).within(ns)).map(|d| Workload::from_deployment(&d))
            }
            WorkloadKind::StatefulSet => {
                self.statefulsets.get(&ObjectRef::new(&r.name).within(ns)).map(|s| Workload::from_statefulset(&s))
            }
        }
    }

    /// Pods in `ns` that `workload` selects.
    pub fn pods_of(&self, ns: &str, workload: &Workload) -> Vec<Arc<Pod>> {
        let selected = |p: &Pod| {
            p.metadata.namespace.as_deref() == Some(ns)
                && p.metadata.labels.as_ref().is_some_and(|l| workload.selects(l))
        };
        let mut pods = match self.pod_index.candidates(ns, &workload.selector) {
            Some(names) => names
                .iter()
                .filter_map(|n| self.pods.get(&ObjectRef::new(n).within(ns)))
                .filter(|p| selected(p))
                .collect(),
            None => self.pods.state_filter(selected),
        };
        pods.sort_by_key(|p| p.name_any());
        pods
    }

    fn ha_services(&self, ns: &str) -> impl Iterator<Item = Arc<Service>> + use<> {
        let ns = ns.to_string();
        self.services
            .state()
            .into_iter()
            .filter(move |s| s.namespace().as_deref() == Some(ns.as_str()) && annotations::is_ha(s.annotations()))
    }

    /// Every HA Service of the scope.
    pub fn all_services(&self) -> Vec<ObjectRef<Service>> {
        self.services
            .state()
            .iter()
            .filter(|s| annotations::is_ha(s.annotations()))
            .map(|s| ObjectRef::from_obj(&**s))
            .collect()
    }

    /// HA Services naming this workload.
    pub fn services_for_workload(&self, ns: &str, kind: WorkloadKind, name: &str) -> Vec<ObjectRef<Service>> {
        self.ha_services(ns)
            .filter(|s| annotations::workload_refs(s.annotations()).any(|r| r.kind == kind && r.name == name))
            .map(|s| ObjectRef::from_obj(&*s))
            .collect()
    }

    /// HA Services one of whose workloads selects this pod.
    pub fn services_for_pod(&self, pod: &Pod) -> Vec<ObjectRef<Service>> {
        let Some(ns) = pod.namespace() else { return Vec::new() };
        self.ha_services(&ns)
            .filter(|s| {
                annotations::workload_refs(s.annotations())
                    .filter_map(|r| self.workload(&ns, &r))
                    .any(|w| w.selects(pod.labels()))
            })
            .map(|s| ObjectRef::from_obj(&*s))
            .collect()
    }

    /// HA Services with a pod on this node.
    pub fn services_for_node(&self, node: &str) -> HashSet<ObjectRef<Service>> {
        self.pods
            .state_filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .iter()
            .flat_map(|p| self.services_for_pod(p))
            .collect()
    }

    /// Forgets Services of this scope that no longer exist (at most once a minute).
    pub fn gc(&self, now: Timestamp) {
        {
            let mut last = self.last_gc.lock().unwrap_or_else(PoisonError::into_inner);
            if later(*last, Duration::from_secs(60)) > now {
                return;
            }
            *last = now;
        }
        let ns = self.namespace.clone();
        self.shared.forget_gone(
            |k| ns.is_none() || k.namespace == ns,
            |k| self.services.get(k).is_some_and(|s| annotations::is_ha(s.annotations())),
        );
    }
}

/// An API handle for a scope.
pub fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch event that matters for triggering.
pub enum Change<K> {
    /// Created or updated.
    Applied(K),
    /// Deleted.
    Deleted(K),
    /// A (re)list completed and the store holds its result: changes in between were not seen
    /// one by one. `first` for the initial list.
    Resynced {
        /// Whether this is the initial list.
        first: bool,
    },
}

/// Runs a reflector into `writer`, yielding changes after the store has taken them.
pub fn reflect<K>(api: Api<K>, writer: Writer<K>) -> impl Stream<Item = Change<K>> + Send
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    reflect_with(api, writer, |_| {})
}

/// [`reflect`], calling `before_store` with each object listed or applied before the store
/// takes it.
pub fn reflect_with<K>(
    api: Api<K>,
    writer: Writer<K>,
    before_store: impl Fn(&K) + Send + 'static,
) -> impl Stream<Item = Change<K>> + Send
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let events = watcher(api, watcher::Config::default()).default_backoff().inspect(move |event| {
        if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = event {
            before_store(o);
        }
    });
    let mut lists = 0u64;
    reflector::reflector(writer, events).filter_map(move |event| {
        let change = match event {
            Ok(watcher::Event::Apply(o)) => Some(Change::Applied(o)),
            Ok(watcher::Event::Delete(o)) => Some(Change::Deleted(o)),
            Ok(watcher::Event::InitDone) => {
                lists += 1;
                Some(Change::Resynced { first: lists == 1 })
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
            Err(e) => {
                tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "watch failed; relisting");
                None
            }
        };
        futures::future::ready(change)
    })
}

/// The Service watch of a scope as the controller's trigger: every change, and every Service
/// after a (re)list — once the store holds the list, so that no reconcile request finds the
/// store without its object.
pub fn service_triggers(
    api: Api<Service>,
    writer: Writer<Service>,
    store: Store<Service>,
) -> impl Stream<Item = Result<Service, watcher::Error>> + Send {
    reflect(api, writer).flat_map(move |change| {
        let services: Vec<Service> = match change {
            Change::Applied(s) => vec![s],
            Change::Deleted(_) => Vec::new(),
            Change::Resynced { .. } => store.state().iter().map(|s| Service::clone(s)).collect(),
        };
        futures::stream::iter(services.into_iter().map(Ok))
    })
}

/// Watches nodes; a change of a node's readiness triggers the Services with pods on it.
pub async fn watch_nodes(
    client: Client,
    writer: Writer<Node>,
    nodes: Store<Node>,
    scopes: Vec<Arc<Scope>>,
    triggers: Triggers,
) {
    let mut seen: HashMap<String, NodeReadiness> = HashMap::new();
    let stream = reflect(Api::<Node>::all(client), writer);
    let mut stream = std::pin::pin!(stream);
    while let Some(change) = stream.next().await {
        let (name, readiness) = match &change {
            Change::Applied(n) => (n.name_any(), Some(NodeReadiness::of(n))),
            Change::Deleted(n) => (n.name_any(), None),
            Change::Resynced { first } => {
                // Readiness as listed; after a relist, every Service may have missed a change.
                seen = nodes.state().iter().map(|n| (n.name_any(), NodeReadiness::of(n))).collect();
                if !first {
                    scopes.iter().flat_map(|s| s.all_services()).for_each(|svc| triggers.send(svc));
                }
                continue;
            }
        };
        let previous = match readiness {
            Some(r) => seen.insert(name.clone(), r),
            None => seen.remove(&name),
        };
        if previous.is_some() && previous == readiness {
            continue;
        }
        for scope in &scopes {
            for svc in scope.services_for_node(&name) {
                triggers.send(svc);
            }
        }
    }
}

/// Watches pods, Deployments and StatefulSets of a scope, triggering the Services they concern.
pub async fn watch_workloads(
    scope: Arc<Scope>,
    deployments: Writer<Deployment>,
    statefulsets: Writer<StatefulSet>,
    pods: Writer<Pod>,
) {
    let client = scope.shared.client.clone();
    let ns = scope.namespace.clone();
    let triggers = scope.shared.triggers.clone();
    let index = scope.pod_index.clone();
    let (index_after, store) = (scope.pod_index.clone(), scope.pods.clone());
    let shared = scope.shared.clone();
    let pods = reflect_with(api::<Pod>(&client, ns.as_deref()), pods, move |p| index.add(p)).map(move |c| match c {
        Change::Applied(p) => {
            index_after.settle(&p);
            Touched::Pod(Box::new(p))
        }
        Change::Deleted(p) => {
            index_after.remove(&p);
            shared.departures.record(&p, Timestamp::now());
            Touched::Pod(Box::new(p))
        }
        Change::Resynced { first } => {
            index_after.prune(|ns, name| store.get(&ObjectRef::new(name).within(ns)).is_some());
            Touched::Resynced { first }
        }
    });
    let deployments = reflect(api::<Deployment>(&client, ns.as_deref()), deployments).map(|c| match c {
        Change::Applied(d) | Change::Deleted(d) => {
            Touched::Workload(WorkloadKind::Deployment, d.namespace(), d.name_any())
        }
        Change::Resynced { first } => Touched::Resynced { first },
    });
    let statefulsets = reflect(api::<StatefulSet>(&client, ns.as_deref()), statefulsets).map(|c| match c {
        Change::Applied(s) | Change::Deleted(s) => {
            Touched::Workload(WorkloadKind::StatefulSet, s.namespace(), s.name_any())
        }
        Change::Resynced { first } => Touched::Resynced { first },
    });
    let merged = futures::stream::select(pods, futures::stream::select(deployments, statefulsets));
    let mut merged = std::pin::pin!(merged);
    while let Some(touched) = merged.next().await {
        let services = match touched {
            Touched::Pod(p) => scope.services_for_pod(&p),
            Touched::Workload(kind, Some(ns), name) => scope.services_for_workload(&ns, kind, &name),
            Touched::Workload(_, None, _) | Touched::Resynced { first: true } => Vec::new(),
            Touched::Resynced { first: false } => scope.all_services(),
        };
        for svc in services {
            triggers.send(svc);
        }
    }
}

enum Touched {
    Pod(Box<Pod>),
    Workload(WorkloadKind, Option<String>, String),
    Resynced { first: bool },
}

/// Marks the instance ready once every store has synced.
pub async fn wait_ready(nodes: &Store<Node>, scopes: &[Arc<Scope>], ready: &AtomicBool) {
    let _ = nodes.wait_until_ready().await;
    for s in scopes {
        let _ = futures::join!(
            s.deployments.wait_until_ready(),
            s.statefulsets.wait_until_ready(),
            s.pods.wait_until_ready()
        );
    }
    ready.store(true, Ordering::SeqCst);
}
