//! The scheduler (kube-scheduler's default profile, the parts that matter on the embedded
//! cluster): binds pending pods of `default-scheduler` to nodes through `pods/binding`.
//!
//! - Filters ([`filter`]): NodeUnschedulable, TaintToleration (NoSchedule / NoExecute; a node
//!   whose Ready condition is not True, or was never posted, counts as carrying the
//!   corresponding `not-ready` / `unreachable` NoSchedule taint), NodeAffinity (nodeSelector and
//!   required node affinity), NodePorts, NodeResourcesFit (CPU, memory, pod count) and
//!   InterPodAffinity (required affinity and anti-affinity on any topology key, with the
//!   namespaces / namespaceSelector / matchLabelKeys rules of Kubernetes).
//! - Scores ([`score`]): spreading and least-requested, deterministic tie-break.
//! - A pod no node fits gets `PodScheduled=False`, reason `Unschedulable`, with kube-scheduler's
//!   message, and a Warning Event `FailedScheduling`; it is retried when a node or pod changes
//!   in a way that can help with what rejected it (queueing hints), and at the latest after
//!   `podMaxInUnschedulablePodsDuration`.
//!
//! Not modelled: preemption (messages report what v1.35 reports when no pod has a lower
//! priority), preferred inter-pod affinity scoring, image locality, volumes, DRA,
//! user-defined topology spread constraints, scheduling gates beyond holding the pod.

pub mod filter;
pub mod model;
pub mod quantity;
pub mod recorder;
pub mod score;

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::api::ops::{Api, ListOptions, now_rfc3339};
use crate::api::resources::{GroupResource, ResourceType};
use crate::api::selectors::LabelSelector;
use crate::api::store::{Event, EventType};
use filter::TAINT_TOLERATION;
use filter::{ALL, Cluster, INTER_POD_AFFINITY, NODE_AFFINITY, NODE_PORTS, NODE_UNSCHEDULABLE, RESOURCES_FIT};
use model::{NodeInfo, PodInfo};
use recorder::Recorder;

/// The scheduler name pods ask for by default.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Whether the scheduler runs at all (default true).
    pub enabled: bool,
    /// How long a pod may stay unschedulable before it is retried even though nothing relevant
    /// changed: KubeSchedulerConfiguration `podMaxInUnschedulablePodsDuration`, 5 min.
    pub max_in_unschedulable: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { enabled: true, max_in_unschedulable: Duration::from_secs(300) }
    }
}

type Key = (String, String);

/// A pod waiting to be scheduled.
#[derive(Debug)]
struct Entry {
    priority: i64,
    seq: u64,
    /// Plugins that rejected the pod at its last attempt (0 = waiting in the active queue).
    failed: u8,
    last_attempt: Instant,
}

struct Scheduler {
    api: Arc<Api>,
    config: SchedulerConfig,
    pods_rt: Arc<ResourceType>,
    cluster: Cluster,
    queue: HashMap<Key, Entry>,
    active: BTreeSet<(Reverse<i64>, u64, Key)>,
    seq: u64,
    recorder: Recorder,
}

/// Runs the scheduler until the event channel closes.
pub async fn run(api: Arc<Api>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>, config: SchedulerConfig) {
    let Ok(pods_rt) = api.resource("", "v1", "pods") else { return };
    let flush_every = config.max_in_unschedulable.min(Duration::from_secs(30)).max(Duration::from_millis(10));
    let mut s = Scheduler {
        api,
        config,
        pods_rt,
        cluster: Cluster::default(),
        queue: HashMap::new(),
        active: BTreeSet::new(),
        seq: 0,
        recorder: Recorder::new(SCHEDULER_NAME),
    };
    s.resync();
    let mut flush = tokio::time::interval(flush_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Ok((gr, ev)) = events.try_recv() {
            s.handle(&gr, &ev);
        }
        if let Some((_, _, key)) = s.active.pop_first() {
            s.attempt(key);
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Some((gr, ev)) => s.handle(&gr, &ev),
                None => return,
            },
            _ = flush.tick() => s.flush_unschedulable(),
        }
    }
}

fn key_of(obj: &Value) -> Key {
    crate::api::store::key_of(obj)
}

fn terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// Whether this scheduler should place the pod now.
fn pending(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && pod["spec"]["schedulerName"].as_str().unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
        && pod["metadata"]["deletionTimestamp"].is_null()
        && pod["spec"]["schedulingGates"].as_array().is_none_or(Vec::is_empty)
        && !terminal(pod)
}

impl Scheduler {
    /// Reads every node and pod (at start).
    fn resync(&mut self) {
        if let Ok(rt) = self.api.resource("", "v1", "nodes")
            && let Ok(list) = self.api.list(&rt, None, &ListOptions::default())
        {
            for n in list.items {
                let info = NodeInfo::parse(&n);
                self.cluster.nodes.insert(info.name.clone(), info);
            }
        }
        if let Ok(list) = self.api.list(&self.pods_rt, None, &ListOptions::default()) {
            for p in list.items {
                self.track_pod(&p);
                if pending(&p) {
                    self.enqueue(&p);
                }
            }
        }
    }

    fn enqueue(&mut self, pod: &Value) {
        let key = key_of(pod);
        if self.queue.contains_key(&key) {
            return;
        }
        self.seq += 1;
        let priority = pod["spec"]["priority"].as_i64().unwrap_or(0);
        self.queue.insert(key.clone(), Entry { priority, seq: self.seq, failed: 0, last_attempt: Instant::now() });
        self.active.insert((Reverse(priority), self.seq, key));
    }

    fn dequeue(&mut self, key: &Key) {
        if let Some(e) = self.queue.remove(key) {
            self.active.remove(&(Reverse(e.priority), e.seq, key.clone()));
        }
    }

    /// Moves unschedulable pods rejected by one of `plugins` back to the active queue.
    fn activate(&mut self, plugins: u8) {
        if plugins == 0 {
            return;
        }
        for (key, e) in self.queue.iter_mut() {
            if e.failed & plugins != 0 {
                e.failed = 0;
                self.active.insert((Reverse(e.priority), e.seq, key.clone()));
            }
        }
    }

    fn flush_unschedulable(&mut self) {
        let limit = self.config.max_in_unschedulable;
        for (key, e) in self.queue.iter_mut() {
            if e.failed != 0 && e.last_attempt.elapsed() >= limit {
                e.failed = 0;
                self.active.insert((Reverse(e.priority), e.seq, key.clone()));
            }
        }
    }

    /// Keeps the cache of bound pods current; returns the plugins the change may help.
    fn track_pod(&mut self, pod: &Value) -> u8 {
        let key = key_of(pod);
        let live = pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) && !terminal(pod);
        let old = self.cluster.pods.remove(&key);
        if !live {
            return if old.is_some() { RESOURCES_FIT | NODE_PORTS | INTER_POD_AFFINITY } else { 0 };
        }
        let info = PodInfo::parse(pod);
        let hint = match &old {
            None => INTER_POD_AFFINITY,
            Some(o) if o.labels != info.labels => INTER_POD_AFFINITY,
            Some(_) => 0,
        };
        self.cluster.pods.insert(key, info);
        hint
    }

    fn handle(&mut self, gr: &GroupResource, ev: &Event) {
        if !gr.group.is_empty() {
            return;
        }
        match gr.resource.as_str() {
            "pods" => {
                let hint = if ev.kind == EventType::Deleted {
                    let had = self.cluster.pods.remove(&key_of(&ev.object)).is_some();
                    if had { RESOURCES_FIT | NODE_PORTS | INTER_POD_AFFINITY } else { 0 }
                } else {
                    self.track_pod(&ev.object)
                };
                let key = key_of(&ev.object);
                if ev.kind != EventType::Deleted && pending(&ev.object) {
                    if !self.queue.contains_key(&key) {
                        self.enqueue(&ev.object);
                    } else if let Some(old) = &ev.old {
                        let changed = old["spec"] != ev.object["spec"]
                            || old["metadata"]["labels"] != ev.object["metadata"]["labels"];
                        if changed && let Some(e) = self.queue.get_mut(&key) {
                            e.failed = 0;
                            self.active.insert((Reverse(e.priority), e.seq, key.clone()));
                        }
                    }
                } else {
                    self.dequeue(&key);
                }
                self.activate(hint);
            }
            "nodes" => {
                let name = ev.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
                if ev.kind == EventType::Deleted {
                    self.cluster.nodes.remove(&name);
                    return;
                }
                let info = NodeInfo::parse(&ev.object);
                let hint = match self.cluster.nodes.get(&name) {
                    None => ALL,
                    Some(old) => node_change(old, &info),
                };
                self.cluster.nodes.insert(name, info);
                self.activate(hint);
            }
            "namespaces" => {
                let changed =
                    ev.old.as_ref().is_none_or(|o| o["metadata"]["labels"] != ev.object["metadata"]["labels"]);
                if changed {
                    self.activate(INTER_POD_AFFINITY);
                }
            }
            _ => {}
        }
    }

    /// One scheduling cycle for one pod.
    fn attempt(&mut self, key: Key) {
        let pod = match self.api.get(&self.pods_rt, &key.0, &key.1) {
            Ok(p) if pending(&p) => p,
            _ => {
                self.dequeue(&key);
                return;
            }
        };
        let info = PodInfo::parse(&pod);
        let usage = self.cluster.usage();
        let ns_rt = self.api.resource("", "v1", "namespaces").ok();
        let api = self.api.clone();
        let ns_labels = move |ns: &str| -> Option<Map<String, Value>> {
            let rt = ns_rt.as_ref()?;
            api.get(rt, "", ns).ok()?["metadata"]["labels"].as_object().cloned()
        };
        let (feasible, rejected) = self.cluster.filter(&info, &usage, &ns_labels);
        let chosen = if feasible.is_empty() {
            None
        } else {
            let spread = if feasible.len() > 1 { self.spread_selectors(&pod) } else { Vec::new() };
            score::select(&self.cluster, &info, &feasible, &usage, &spread)
        };
        let Some(node) = chosen else {
            let message = filter::fit_error(self.cluster.nodes.len(), &rejected);
            let failed = if rejected.is_empty() { ALL } else { filter::failed_plugins(&rejected) };
            self.unschedulable(&key, &pod, failed, &message);
            return;
        };
        match self.api.bind(&key.0, &key.1, &node) {
            Ok(bound) => {
                self.dequeue(&key);
                self.cluster.pods.insert(key.clone(), PodInfo::parse(&bound));
                self.activate(INTER_POD_AFFINITY);
                let msg = format!("Successfully assigned {}/{} to {node}", key.0, key.1);
                self.recorder.event(&self.api, &bound, "Normal", "Scheduled", &msg);
            }
            Err(e) if e.code == 404 || e.code == 409 => self.dequeue(&key),
            Err(e) => {
                tracing::warn!(pod = %key.1, node = %node, error = %e, "binding failed");
                self.unschedulable(&key, &pod, ALL, &format!("Binding rejected: {}", e.message));
            }
        }
    }

    fn unschedulable(&mut self, key: &Key, pod: &Value, failed: u8, message: &str) {
        if let Some(e) = self.queue.get_mut(key) {
            e.failed = failed;
            e.last_attempt = Instant::now();
        }
        let condition = json!({
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": null, "lastTransitionTime": now_rfc3339(),
        });
        let result = recorder::modify_status(&self.api, &self.pods_rt, &key.0, &key.1, SCHEDULER_NAME, |p| {
            pending(p) && recorder::set_condition(p, condition.clone())
        });
        if let Err(e) = result {
            tracing::warn!(pod = %key.1, error = %e, "could not record the PodScheduled condition");
        }
        self.recorder.event(&self.api, pod, "Warning", "FailedScheduling", message);
    }

    /// Selectors of the Services, ReplicaSets and StatefulSets selecting the pod (the default
    /// PodTopologySpread constraints spread over these).
    fn spread_selectors(&self, pod: &Value) -> Vec<LabelSelector> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let labels = pod["metadata"]["labels"].as_object();
        let mut out = Vec::new();
        let sources = [("", "v1", "services"), ("apps", "v1", "replicasets"), ("apps", "v1", "statefulsets")];
        for (group, version, plural) in sources {
            let Ok(rt) = self.api.resource(group, version, plural) else { continue };
            let Ok(list) = self.api.list(&rt, Some(ns), &ListOptions::default()) else { continue };
            for obj in list.items {
                let sel = if plural == "services" {
                    match obj["spec"]["selector"].as_object() {
                        Some(m) if !m.is_empty() => LabelSelector::from_labels(m),
                        _ => continue,
                    }
                } else {
                    match LabelSelector::from_json(&obj["spec"]["selector"]) {
                        Ok(s) if !s.is_empty() && !s.is_nothing() => s,
                        _ => continue,
                    }
                };
                if sel.matches(labels) {
                    out.push(sel);
                }
            }
        }
        out
    }
}

/// The plugins a node update may help.
fn node_change(old: &NodeInfo, new: &NodeInfo) -> u8 {
    let mut hint = 0;
    if old.taints != new.taints || old.readiness != new.readiness {
        hint |= TAINT_TOLERATION;
    }
    if old.labels != new.labels {
        hint |= NODE_AFFINITY | INTER_POD_AFFINITY;
    }
    if old.unschedulable != new.unschedulable {
        hint |= NODE_UNSCHEDULABLE;
    }
    if old.allocatable != new.allocatable || old.max_pods != new.max_pods {
        hint |= RESOURCES_FIT;
    }
    hint
}
