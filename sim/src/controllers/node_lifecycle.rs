//! The node lifecycle controller and the taint eviction controller of kube-controller-manager.
//!
//! Node health: a node is healthy while its kubelet renews its Lease in `kube-node-lease`
//! (`spec.renewTime`) or the `lastHeartbeatTime` of its Ready condition. Both are compared with
//! the controller's own clock when it observes them, as Kubernetes does. When neither moved
//! for `grace_period` (`startup_grace_period` for a node that never posted a Ready condition),
//! the kubelet-owned conditions Ready, MemoryPressure, DiskPressure and PIDPressure become
//! `Unknown` with reason `NodeStatusUnknown` and message `Kubelet stopped posting node status.`
//! (`NodeStatusNeverUpdated` / `Kubelet never posted node status.` for a node that never posted
//! them), a `NodeNotReady` Event is recorded and the Ready condition of every pod on the node
//! becomes False (Warning Event `NodeNotReady`, `Node is not ready`).
//!
//! Taints: NoSchedule taints follow the conditions at once (TaintNodesByCondition: Ready False →
//! `node.kubernetes.io/not-ready`, Unknown → `node.kubernetes.io/unreachable`, pressure
//! conditions, `spec.unschedulable`). NoExecute `not-ready` / `unreachable` taints are added at
//! the monitor passes, limited per zone to `eviction_rate` nodes per second (first one at once),
//! and removed when the node is Ready again. As in Kubernetes, when every zone is fully
//! disrupted (no Ready node anywhere) the controller assumes a control-plane network problem:
//! it removes the NoExecute taints and evicts nothing; a zone in partial disruption (more than
//! 2 nodes and at least `unhealthy_zone_threshold` of them not Ready) taints at
//! `secondary_eviction_rate` in large clusters and not at all in small ones.
//!
//! Taint-based eviction: a pod on a node with NoExecute taints is deleted at once if some taint
//! is not tolerated, after the smallest `tolerationSeconds` of the tolerations that match
//! (counted from when the controller first saw the pod under the taint — for taints this
//! controller adds, their `timeAdded`), or never if none of them has `tolerationSeconds`.
//! Before deleting, the pod gets the `DisruptionTarget` condition (reason
//! `DeletionByTaintManager`) and a `TaintManagerEviction` Event; a scheduled eviction that
//! becomes moot is cancelled with a `Cancelling deletion of Pod` Event.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::modify;
use super::scheduler::model::{Readiness, TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, Taint, Toleration};
use super::scheduler::recorder::{Recorder, modify_status, set_condition};
use crate::api::ops::{Api, DeleteOptions, ListOptions, now_rfc3339};
use crate::api::resources::{GroupResource, ResourceType};
use crate::api::store::{Event, EventType};

const MANAGER: &str = "node-controller";
const EVICTION_MANAGER: &str = "taint-eviction-controller";
/// Namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Label that keeps a node out of zone disruption accounting.
const EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";
/// Conditions owned by the kubelet that go Unknown with it.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Settings of the node lifecycle and taint eviction controllers (kube-controller-manager
/// flags and their v1.35 defaults).
#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// Whether the controllers run (default true).
    pub enabled: bool,
    /// How often node health is checked: `--node-monitor-period`, 5 s.
    pub monitor_period: Duration,
    /// How long a node may go without a heartbeat before its conditions become Unknown:
    /// `--node-monitor-grace-period`, 50 s (raised from 40 s in v1.32).
    pub grace_period: Duration,
    /// The same for a node that never posted a Ready condition: `--node-startup-grace-period`, 60 s.
    pub startup_grace_period: Duration,
    /// Nodes per second given NoExecute taints in a healthy zone: `--node-eviction-rate`, 0.1.
    pub eviction_rate: f64,
    /// The same in a partially disrupted zone of a large cluster: `--secondary-node-eviction-rate`, 0.01.
    pub secondary_eviction_rate: f64,
    /// Zones up to this size stop tainting in partial disruption: `--large-cluster-size-threshold`, 50.
    pub large_cluster_threshold: usize,
    /// Fraction of not-Ready nodes (with more than 2) that makes a zone partially disrupted:
    /// `--unhealthy-zone-threshold`, 0.55.
    pub unhealthy_zone_threshold: f64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(50),
            startup_grace_period: Duration::from_secs(60),
            eviction_rate: 0.1,
            secondary_eviction_rate: 0.01,
            large_cluster_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }
}

/// Health signals last seen for a node.
#[derive(Debug)]
struct Health {
    /// When the controller last saw a heartbeat (or the node's creation).
    probe: Instant,
    heartbeat: Option<String>,
    lease_renew: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// A token bucket of burst 1.
#[derive(Debug)]
struct Limiter {
    qps: f64,
    tokens: f64,
    last: Instant,
}

impl Limiter {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(1.0);
        self.last = now;
        if self.qps > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Scheduled {
    uid: String,
    fire: Instant,
}

struct Controller {
    api: Arc<Api>,
    config: NodeLifecycleConfig,
    nodes_rt: Arc<ResourceType>,
    pods_rt: Arc<ResourceType>,
    health: HashMap<String, Health>,
    zone_states: HashMap<String, ZoneState>,
    limiters: HashMap<String, Limiter>,
    evictions: HashMap<(String, String), Scheduled>,
    recorder: Recorder,
    eviction_recorder: Recorder,
}

/// Runs both controllers until the event channel closes.
pub async fn run(
    api: Arc<Api>,
    mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>,
    config: NodeLifecycleConfig,
) {
    let (Ok(nodes_rt), Ok(pods_rt)) = (api.resource("", "v1", "nodes"), api.resource("", "v1", "pods")) else {
        return;
    };
    let mut monitor = tokio::time::interval(config.monitor_period.max(Duration::from_millis(1)));
    monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut c = Controller {
        api,
        config,
        nodes_rt,
        pods_rt,
        health: HashMap::new(),
        zone_states: HashMap::new(),
        limiters: HashMap::new(),
        evictions: HashMap::new(),
        recorder: Recorder::new(MANAGER),
        eviction_recorder: Recorder::new(EVICTION_MANAGER),
    };
    c.resync();
    loop {
        let next = c.evictions.values().map(|s| s.fire).min();
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            ev = events.recv() => match ev {
                Some((gr, ev)) => c.handle(&gr, &ev),
                None => return,
            },
            _ = monitor.tick() => c.monitor(),
            _ = tokio::time::sleep_until(next.unwrap_or(far).into()) => c.fire_due(),
        }
    }
}

fn ready_condition(node: &Value) -> Option<&Value> {
    node["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")
}

fn no_execute_taints(node: &Value) -> Vec<Taint> {
    Taint::list(node).into_iter().filter(|t| t.effect == "NoExecute").collect()
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// The Instant matching an RFC 3339 timestamp of the past (now, if it cannot be read).
fn instant_of(ts: &Value) -> Instant {
    let now = Instant::now();
    let Some(t) = ts.as_str().and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok()) else { return now };
    let Ok(since_epoch) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else { return now };
    let age = since_epoch.as_secs_f64() - t.as_millisecond() as f64 / 1000.0;
    if age <= 0.0 { now } else { now.checked_sub(Duration::from_secs_f64(age)).unwrap_or(now) }
}

/// Whether lease renew time `new` is later than `old`.
fn later(new: &str, old: Option<&str>) -> bool {
    let Some(old) = old else { return true };
    match (new.parse::<k8s_openapi::jiff::Timestamp>(), old.parse::<k8s_openapi::jiff::Timestamp>()) {
        (Ok(n), Ok(o)) => n > o,
        _ => new != old,
    }
}

fn zone_of(node: &Value) -> String {
    let labels = &node["metadata"]["labels"];
    format!(
        "{}:{}",
        labels["topology.kubernetes.io/region"].as_str().unwrap_or_default(),
        labels["topology.kubernetes.io/zone"].as_str().unwrap_or_default()
    )
}

impl Controller {
    fn list(&self, rt: &ResourceType) -> Vec<Arc<Value>> {
        self.api.list(rt, None, &ListOptions::default()).map(|l| l.items).unwrap_or_default()
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Value>> {
        self.list(&self.pods_rt).into_iter().filter(|p| p["spec"]["nodeName"] == node).collect()
    }

    fn resync(&mut self) {
        for node in self.list(&self.nodes_rt) {
            self.observe_node(&node);
            self.no_schedule_pass(&node);
        }
        for node in self.list(&self.nodes_rt) {
            self.evaluate_node_pods(&node);
        }
    }

    fn handle(&mut self, gr: &GroupResource, ev: &Event) {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("", "nodes") => {
                let name = name_of(&ev.object);
                if ev.kind == EventType::Deleted {
                    self.health.remove(&name);
                    return;
                }
                self.observe_node(&ev.object);
                self.no_schedule_pass(&ev.object);
                let old_taints = ev.old.as_deref().map(no_execute_taints).unwrap_or_default();
                if old_taints != no_execute_taints(&ev.object) {
                    self.evaluate_node_pods(&ev.object);
                }
            }
            ("coordination.k8s.io", "leases") if ev.object["metadata"]["namespace"] == LEASE_NAMESPACE => {
                if ev.kind == EventType::Deleted {
                    return;
                }
                let name = name_of(&ev.object);
                let Some(renew) = ev.object["spec"]["renewTime"].as_str() else { return };
                let h = self.health.entry(name).or_insert(Health {
                    probe: Instant::now(),
                    heartbeat: None,
                    lease_renew: None,
                });
                if later(renew, h.lease_renew.as_deref()) {
                    h.lease_renew = Some(renew.to_string());
                    h.probe = Instant::now();
                }
            }
            ("", "pods") => {
                let key = crate::api::store::key_of(&ev.object);
                if ev.kind == EventType::Deleted || !ev.object["metadata"]["deletionTimestamp"].is_null() {
                    self.evictions.remove(&key);
                    return;
                }
                let Some(node_name) = ev.object["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else { return };
                let old = ev.old.as_deref();
                let newly_bound = old.is_none_or(|o| o["spec"]["nodeName"] != node_name);
                let tolerations_changed =
                    old.is_none_or(|o| o["spec"]["tolerations"] != ev.object["spec"]["tolerations"]);
                if !newly_bound && !tolerations_changed {
                    return;
                }
                let Ok(node) = self.api.get(&self.nodes_rt, "", node_name) else { return };
                if newly_bound && Readiness::of(&node) != Readiness::Ready && Readiness::of(&node) != Readiness::Missing
                {
                    self.mark_pod_not_ready(&ev.object);
                }
                self.evaluate_pod(&ev.object, &no_execute_taints(&node));
            }
            _ => {}
        }
    }

    /// Notes a node's heartbeat (the Ready condition's lastHeartbeatTime).
    fn observe_node(&mut self, node: &Value) {
        let name = name_of(node);
        let heartbeat = ready_condition(node).and_then(|c| c["lastHeartbeatTime"].as_str()).map(str::to_string);
        match self.health.get_mut(&name) {
            None => {
                let probe = if heartbeat.is_none() {
                    instant_of(&node["metadata"]["creationTimestamp"])
                } else {
                    Instant::now()
                };
                self.health.insert(name, Health { probe, heartbeat, lease_renew: None });
            }
            Some(h) => {
                if heartbeat.is_some() && heartbeat != h.heartbeat {
                    h.heartbeat = heartbeat;
                    h.probe = Instant::now();
                }
            }
        }
    }

    /// One pass of node health monitoring.
    fn monitor(&mut self) {
        let mut nodes = Vec::new();
        for node in self.list(&self.nodes_rt) {
            self.observe_node(&node);
            let node = self.check_health(&node).map(Arc::new).unwrap_or(node);
            nodes.push(node);
        }
        let all_disrupted = self.handle_disruption(&nodes);
        for node in &nodes {
            self.no_schedule_pass(node);
            self.no_execute_pass(node, all_disrupted);
        }
    }

    /// Marks the node's kubelet conditions Unknown once its grace period ran out; returns the
    /// updated node.
    fn check_health(&mut self, node: &Value) -> Option<Value> {
        let name = name_of(node);
        let h = self.health.get(&name)?;
        let grace =
            if ready_condition(node).is_none() { self.config.startup_grace_period } else { self.config.grace_period };
        if h.probe.elapsed() <= grace {
            return None;
        }
        let was_ready = Readiness::of(node) == Readiness::Ready;
        let now = now_rfc3339();
        let updated = modify_status(&self.api, &self.nodes_rt, "", &name, MANAGER, |n| {
            let created = n["metadata"]["creationTimestamp"].clone();
            if !n["status"].is_object() {
                n["status"] = json!({});
            }
            if !n["status"]["conditions"].is_array() {
                n["status"]["conditions"] = json!([]);
            }
            let Some(list) = n["status"]["conditions"].as_array_mut() else { return false };
            let mut changed = false;
            for kind in KUBELET_CONDITIONS {
                match list.iter_mut().find(|c| c["type"] == kind) {
                    None => {
                        list.push(json!({
                            "type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                            "message": "Kubelet never posted node status.",
                            "lastHeartbeatTime": created, "lastTransitionTime": now,
                        }));
                        changed = true;
                    }
                    Some(c) if c["status"] != "Unknown" => {
                        c["status"] = json!("Unknown");
                        c["reason"] = json!("NodeStatusUnknown");
                        c["message"] = json!("Kubelet stopped posting node status.");
                        c["lastTransitionTime"] = json!(now);
                        changed = true;
                    }
                    Some(_) => {}
                }
            }
            changed
        });
        let updated = match updated {
            Ok(Some(n)) => n,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "could not mark the node Unknown");
                return None;
            }
        };
        if let Some(h) = self.health.get_mut(&name) {
            h.heartbeat = ready_condition(&updated).and_then(|c| c["lastHeartbeatTime"].as_str()).map(str::to_string);
        }
        if was_ready {
            let msg = format!("Node {name} status is now: NodeNotReady");
            self.recorder.event(&self.api, &updated, "Normal", "NodeNotReady", &msg);
            for pod in self.pods_on(&name) {
                self.mark_pod_not_ready(&pod);
            }
        }
        Some(updated)
    }

    /// Sets a pod's Ready condition to False (if it has one that is not False yet).
    fn mark_pod_not_ready(&self, pod: &Value) {
        let (ns, name) = crate::api::store::key_of(pod);
        let now = now_rfc3339();
        let result = modify_status(&self.api, &self.pods_rt, &ns, &name, MANAGER, |p| {
            let Some(list) = p["status"]["conditions"].as_array_mut() else { return false };
            let Some(ready) = list.iter_mut().find(|c| c["type"] == "Ready") else { return false };
            if ready["status"] == "False" {
                return false;
            }
            ready["status"] = json!("False");
            ready["lastTransitionTime"] = json!(now);
            true
        });
        match result {
            Ok(Some(updated)) => {
                self.recorder.event(&self.api, &updated, "Warning", "NodeNotReady", "Node is not ready")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(pod = %name, error = %e, "could not mark the pod not ready"),
        }
    }

    /// Computes zone states and eviction rates; returns whether every zone is fully disrupted.
    fn handle_disruption(&mut self, nodes: &[Arc<Value>]) -> bool {
        let mut zones: HashMap<String, (usize, usize)> = HashMap::new();
        for n in nodes {
            if n["metadata"]["labels"].get(EXCLUDE_DISRUPTION).is_some() {
                continue;
            }
            let e = zones.entry(zone_of(n)).or_default();
            if Readiness::of(n) == Readiness::Ready { e.0 += 1 } else { e.1 += 1 }
        }
        let states: HashMap<String, (ZoneState, usize)> = zones
            .iter()
            .map(|(z, (ready, not_ready))| {
                let state = if *ready == 0 && *not_ready > 0 {
                    ZoneState::FullDisruption
                } else if *not_ready > 2
                    && *not_ready as f64 / (*ready + *not_ready) as f64 >= self.config.unhealthy_zone_threshold
                {
                    ZoneState::PartialDisruption
                } else {
                    ZoneState::Normal
                };
                (z.clone(), (state, ready + not_ready))
            })
            .collect();
        let all_now = !states.is_empty() && states.values().all(|(s, _)| *s == ZoneState::FullDisruption);
        let all_before =
            !self.zone_states.is_empty() && self.zone_states.values().all(|s| *s == ZoneState::FullDisruption);
        if all_before && !all_now {
            // Leaving cluster-wide disruption: every node gets a fresh grace period.
            for h in self.health.values_mut() {
                h.probe = Instant::now();
            }
        }
        self.zone_states = states.iter().map(|(z, (s, _))| (z.clone(), *s)).collect();
        for (zone, (state, size)) in &states {
            let qps = if all_now {
                0.0
            } else {
                match state {
                    ZoneState::Normal | ZoneState::FullDisruption => self.config.eviction_rate,
                    ZoneState::PartialDisruption if *size > self.config.large_cluster_threshold => {
                        self.config.secondary_eviction_rate
                    }
                    ZoneState::PartialDisruption => 0.0,
                }
            };
            let l = self.limiters.entry(zone.clone()).or_insert(Limiter { qps, tokens: 1.0, last: Instant::now() });
            l.qps = qps;
        }
        all_now
    }

    /// Keeps the condition NoSchedule taints in step with the node's conditions.
    fn no_schedule_pass(&self, node: &Value) {
        let mut wanted = BTreeSet::new();
        for c in node["status"]["conditions"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let key = match (c["type"].as_str().unwrap_or_default(), c["status"].as_str().unwrap_or_default()) {
                ("Ready", "False") => TAINT_NOT_READY,
                ("Ready", "Unknown") => TAINT_UNREACHABLE,
                ("MemoryPressure", "True") => "node.kubernetes.io/memory-pressure",
                ("DiskPressure", "True") => "node.kubernetes.io/disk-pressure",
                ("NetworkUnavailable", "True") => "node.kubernetes.io/network-unavailable",
                ("PIDPressure", "True") => "node.kubernetes.io/pid-pressure",
                _ => continue,
            };
            wanted.insert(key);
        }
        if node["spec"]["unschedulable"].as_bool() == Some(true) {
            wanted.insert(TAINT_UNSCHEDULABLE);
        }
        let managed = |k: &str| {
            k == TAINT_NOT_READY
                || k == TAINT_UNREACHABLE
                || k == TAINT_UNSCHEDULABLE
                || k.starts_with("node.kubernetes.io/") && k.ends_with("-pressure")
                || k == "node.kubernetes.io/network-unavailable"
        };
        let have: BTreeSet<String> = Taint::list(node)
            .into_iter()
            .filter(|t| t.effect == "NoSchedule" && managed(&t.key))
            .map(|t| t.key)
            .collect();
        let wanted: BTreeSet<String> = wanted.into_iter().map(str::to_string).collect();
        if have == wanted {
            return;
        }
        let add: Vec<(String, &str)> = wanted.difference(&have).map(|k| (k.clone(), "NoSchedule")).collect();
        let remove: Vec<(String, &str)> = have.difference(&wanted).map(|k| (k.clone(), "NoSchedule")).collect();
        self.swap_taints(&name_of(node), &add, &remove);
    }

    /// Adds / removes the NoExecute not-ready / unreachable taints.
    fn no_execute_pass(&mut self, node: &Value, all_disrupted: bool) {
        let name = name_of(node);
        let taints = no_execute_taints(node);
        let has = |k: &str| taints.iter().any(|t| t.key == k);
        let (has_nr, has_ur) = (has(TAINT_NOT_READY), has(TAINT_UNREACHABLE));
        let both = [(TAINT_NOT_READY.to_string(), "NoExecute"), (TAINT_UNREACHABLE.to_string(), "NoExecute")];
        if all_disrupted {
            if has_nr || has_ur {
                self.swap_taints(&name, &[], &both);
            }
            return;
        }
        let (want, other) = match Readiness::of(node) {
            Readiness::Ready => {
                if has_nr || has_ur {
                    self.swap_taints(&name, &[], &both);
                }
                return;
            }
            Readiness::Missing => return,
            Readiness::NotReady => (TAINT_NOT_READY, TAINT_UNREACHABLE),
            Readiness::Unknown => (TAINT_UNREACHABLE, TAINT_NOT_READY),
        };
        if has(want) {
            return;
        }
        let add = [(want.to_string(), "NoExecute")];
        if has(other) {
            // Swapping one NoExecute taint for the other is not rate limited.
            self.swap_taints(&name, &add, &[(other.to_string(), "NoExecute")]);
            return;
        }
        let zone = zone_of(node);
        let allowed = self.limiters.get_mut(&zone).is_some_and(Limiter::take);
        if allowed {
            self.swap_taints(&name, &add, &[]);
        }
    }

    fn swap_taints(&self, node: &str, add: &[(String, &str)], remove: &[(String, &str)]) {
        let now = now_rfc3339();
        let result = modify(&self.api, &self.nodes_rt, "", node, MANAGER, |n| {
            let mut list = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
            let before = list.clone();
            list.retain(|t| !remove.iter().any(|(k, e)| t["key"] == k.as_str() && t["effect"] == *e));
            for (k, e) in add {
                if !list.iter().any(|t| t["key"] == k.as_str() && t["effect"] == *e) {
                    list.push(json!({"key": k, "effect": e, "timeAdded": now}));
                }
            }
            if list == before {
                return false;
            }
            if !n["spec"].is_object() {
                n["spec"] = json!({});
            }
            n["spec"]["taints"] = if list.is_empty() { Value::Null } else { Value::Array(list) };
            if let Some(spec) = n["spec"].as_object_mut() {
                spec.retain(|_, v| !v.is_null());
            }
            true
        });
        if let Err(e) = result {
            tracing::warn!(node, error = %e, "could not update node taints");
        }
    }

    fn evaluate_node_pods(&mut self, node: &Value) {
        let taints = no_execute_taints(node);
        for pod in self.pods_on(&name_of(node)) {
            self.evaluate_pod(&pod, &taints);
        }
    }

    /// Schedules, cancels or carries out the taint-based eviction of a pod.
    fn evaluate_pod(&mut self, pod: &Value, taints: &[Taint]) {
        let key = crate::api::store::key_of(pod);
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            self.evictions.remove(&key);
            return;
        }
        if taints.is_empty() {
            self.cancel(pod, &key);
            return;
        }
        let tolerations = Toleration::list(pod);
        let mut used: Vec<&Toleration> = Vec::new();
        let mut all_tolerated = true;
        for taint in taints {
            let matching: Vec<&Toleration> = tolerations.iter().filter(|t| t.tolerates(taint)).collect();
            if matching.is_empty() {
                all_tolerated = false;
            }
            used.extend(matching);
        }
        if !all_tolerated {
            self.evictions.remove(&key);
            self.evict(pod);
            return;
        }
        let Some(seconds) = used.iter().filter_map(|t| t.seconds).min() else {
            self.cancel(pod, &key);
            return;
        };
        if self.evictions.contains_key(&key) {
            return;
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let fire = Instant::now() + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        self.evictions.insert(key, Scheduled { uid, fire });
    }

    fn cancel(&mut self, pod: &Value, key: &(String, String)) {
        if self.evictions.remove(key).is_some() {
            let msg = format!("Cancelling deletion of Pod {}/{}", key.0, key.1);
            self.eviction_recorder.event(&self.api, pod, "Normal", "TaintManagerEviction", &msg);
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        let due: Vec<((String, String), String)> =
            self.evictions.iter().filter(|(_, s)| s.fire <= now).map(|(k, s)| (k.clone(), s.uid.clone())).collect();
        for (key, uid) in due {
            self.evictions.remove(&key);
            if let Ok(pod) = self.api.get(&self.pods_rt, &key.0, &key.1)
                && pod["metadata"]["uid"] == uid.as_str()
                && pod["metadata"]["deletionTimestamp"].is_null()
            {
                self.evict(&pod);
            }
        }
    }

    /// Deletes a pod for a NoExecute taint it does not (or no longer) tolerate.
    fn evict(&self, pod: &Value) {
        let (ns, name) = crate::api::store::key_of(pod);
        let msg = format!("Marking for deletion Pod {ns}/{name}");
        self.eviction_recorder.event(&self.api, pod, "Normal", "TaintManagerEviction", &msg);
        let condition = json!({
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": now_rfc3339(),
        });
        let result = modify_status(&self.api, &self.pods_rt, &ns, &name, EVICTION_MANAGER, |p| {
            set_condition(p, condition.clone())
        });
        if let Err(e) = result {
            tracing::warn!(pod = %name, error = %e, "could not add the DisruptionTarget condition");
        }
        if let Err(e) = self.api.delete(&self.pods_rt, &ns, &name, &DeleteOptions::default())
            && e.code != 404
        {
            tracing::warn!(pod = %name, error = %e, "taint eviction failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_a_burst_of_one_then_the_rate() {
        let mut l = Limiter { qps: 0.1, tokens: 1.0, last: Instant::now() };
        assert!(l.take());
        assert!(!l.take());
        let mut stopped = Limiter { qps: 0.0, tokens: 1.0, last: Instant::now() };
        assert!(!stopped.take(), "a zero rate stops tainting");
    }

    #[test]
    fn lease_times_compare_as_times() {
        assert!(later("2026-01-01T00:00:01.000000Z", Some("2026-01-01T00:00:00.500000Z")));
        assert!(!later("2026-01-01T00:00:00.000000Z", Some("2026-01-01T00:00:00.500000Z")));
        assert!(later("x", None));
    }

    #[test]
    fn creation_time_maps_to_the_past() {
        let old = instant_of(&json!("2000-01-01T00:00:00Z"));
        assert!(old.elapsed() > Duration::from_secs(3600) || old.elapsed() == Duration::ZERO);
        assert!(instant_of(&json!("not a time")).elapsed() < Duration::from_secs(1));
    }
}
