//! The ReplicaSet controller (and, as [`REPLICATION_CONTROLLERS`], the ReplicationController
//! manager): keeps `spec.replicas` active pods (neither terminal nor being
//! deleted) created from the template, and reports `status`.
//!
//! As kube-controller-manager: pods are created with `generateName: <rs>-` and a controller
//! owner reference; extra pods are deleted in the order of `controller.ActivePodsWithRanks`
//! (unscheduled, then pending/unknown before running, not ready before ready, lower
//! `controller.kubernetes.io/pod-deletion-cost`, more pods of the set on the same node, more
//! recently ready, more restarts, newer); pods that are deleted or reach `Failed`/`Succeeded`
//! are replaced; orphan pods matching the selector are adopted and owned pods that stop
//! matching are released. Availability honours `minReadySeconds` with a timed re-queue.
//!
//! Simplified: no expectations (the controller reads the store directly, which is always
//! current), no slow-start batching (creation stops at the first failure), the node rank counts
//! only this ReplicaSet's pods, and the logarithmic creation-time buckets of
//! `LogarithmicScaleDown` compare exact timestamps.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::podutil::{self, Key, int};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, WriteCtx, meta_str};
use crate::api::resources::GroupResource;
use crate::api::selectors::LabelSelector;
use crate::api::status::ApiResult;
use crate::api::store::{Event, key_of};

/// Most pods created or deleted in one pass (`BurstReplicas`).
const BURST: i64 = 500;

/// Which kind a [`ReplicaSetController`] keeps replicas of. kube-controller-manager runs the
/// ReplicationController manager as this same controller over converted objects; the
/// differences left are the kind's names, its plain-map selector and its status fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    api_version: &'static str,
    manager: &'static str,
    /// `spec.selector` is a plain label map (ReplicationController), not a `LabelSelector`.
    map_selector: bool,
}

/// apps/v1 ReplicaSets.
pub const REPLICA_SETS: Flavor = Flavor {
    group: "apps",
    plural: "replicasets",
    kind: "ReplicaSet",
    api_version: "apps/v1",
    manager: "replicaset-controller",
    map_selector: false,
};

/// v1 ReplicationControllers.
pub const REPLICATION_CONTROLLERS: Flavor = Flavor {
    group: "",
    plural: "replicationcontrollers",
    kind: "ReplicationController",
    api_version: "v1",
    manager: "replication-controller",
    map_selector: true,
};

impl Flavor {
    fn selector(&self, obj: &Value) -> Result<LabelSelector, crate::api::selectors::SelectorError> {
        if self.map_selector {
            return Ok(match obj["spec"]["selector"].as_object() {
                Some(labels) if !labels.is_empty() => LabelSelector::from_labels(labels),
                _ => LabelSelector::nothing(),
            });
        }
        LabelSelector::from_json(&obj["spec"]["selector"])
    }
}

/// The ReplicaSet (or ReplicationController) reconciler.
#[derive(Debug)]
pub struct ReplicaSetController {
    flavor: Flavor,
}

/// Runs the controller of `flavor` until the event channel closes.
pub async fn run(
    api: Arc<Api>,
    events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>,
    flavor: Flavor,
) {
    super::queue::run(api, events, ReplicaSetController { flavor }).await
}

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        self.flavor.manager
    }

    fn keys(&mut self, api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        let f = self.flavor;
        match (gr.group.as_str(), gr.resource.as_str()) {
            (g, r) if g == f.group && r == f.plural => out.push(key_of(&event.object)),
            ("", "pods") => {
                let pod = &event.object;
                let owners: Vec<Key> = [Some(&**pod), event.old.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| podutil::controller_key(p, f.api_version, f.kind))
                    .collect();
                if podutil::controller_ref(pod).is_none()
                    && !podutil::is_terminating(pod)
                    && let Ok(rt) = podutil::builtin(api, f.group, f.plural)
                {
                    // An orphan: the ReplicaSets that could adopt it.
                    let ns = meta_str(pod, "namespace");
                    for rs in podutil::list_in(api, &rt, ns, None).unwrap_or_default() {
                        if f.selector(&rs).is_ok_and(|s| s.matches(pod["metadata"]["labels"].as_object())) {
                            out.push(key_of(&rs));
                        }
                    }
                }
                out.extend(owners);
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let f = self.flavor;
        let rs_rt = podutil::builtin(api, f.group, f.plural)?;
        let pod_rt = podutil::builtin(api, "", "pods")?;
        let rs = match api.get(&rs_rt, &key.0, &key.1) {
            Ok(rs) => rs,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(selector) = f.selector(&rs) else {
            tracing::warn!(replicaset = %key.1, "invalid selector");
            return Ok(None);
        };
        let deleting = podutil::is_terminating(&rs);
        let owner_ref = podutil::controller_owner_ref(&rs, f.api_version, f.kind);
        let claim = |api: &Api| -> ApiResult<Vec<Arc<Value>>> {
            let pods = podutil::list_in(api, &pod_rt, &key.0, None)?;
            Ok(podutil::claim(api, &pod_rt, &rs, &owner_ref, &selector, pods, !deleting, f.manager, &|_| true))
        };
        let pods = claim(api)?;
        let active: Vec<Arc<Value>> = pods.iter().filter(|p| podutil::is_active(p)).cloned().collect();
        let want = int(&rs["spec"]["replicas"], 1);
        let mut manage_result = Ok(());
        let pods = if !deleting && active.len() as i64 != want {
            manage_result = manage(api, f, &rs, &active, want);
            claim(api)?
        } else {
            pods
        };
        let now = podutil::now_ms();
        let min_ready = int(&rs["spec"]["minReadySeconds"], 0);
        let active: Vec<Arc<Value>> = pods.iter().filter(|p| podutil::is_active(p)).cloned().collect();
        let template_labels = rs["spec"]["template"]["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        let fully_labeled = active
            .iter()
            .filter(|p| {
                let l = podutil::labels(p);
                template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .count();
        let ready = active.iter().filter(|p| podutil::is_ready(p)).count();
        let available = active.iter().filter(|p| podutil::is_available(p, min_ready, now)).count();
        let terminating = pods.iter().filter(|p| podutil::is_terminating_not_terminal(p)).count();
        let mut status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "terminatingReplicas": terminating,
            "observedGeneration": rs["metadata"]["generation"],
        });
        if f.map_selector {
            // ReplicationControllerStatus has no terminatingReplicas.
            if let Some(m) = status.as_object_mut() {
                m.remove("terminatingReplicas");
            }
        }
        if let Some(conds) = rs["status"]["conditions"].as_array().filter(|c| !c.is_empty()) {
            status["conditions"] = Value::Array(conds.clone());
        }
        podutil::write_status(api, &rs_rt, &rs, status, f.manager)?;
        manage_result?;
        Ok(podutil::next_availability(&active, min_ready, now))
    }
}

/// Creates or deletes pods so that `want` are active.
fn manage(api: &Api, f: Flavor, rs: &Value, active: &[Arc<Value>], want: i64) -> ApiResult<()> {
    let pod_rt = podutil::builtin(api, "", "pods")?;
    let ns = meta_str(rs, "namespace");
    let diff = active.len() as i64 - want;
    if diff < 0 {
        let pod = pod_from_template(rs, &rs["spec"]["template"], f.api_version, f.kind);
        for _ in 0..(-diff).min(BURST) {
            api.create(&pod_rt, ns, pod.clone(), &WriteCtx::controller(f.manager))?;
        }
    } else if diff > 0 {
        for pod in pods_to_delete(active, diff.min(BURST) as usize) {
            match api.delete(&pod_rt, ns, meta_str(&pod, "name"), &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// `controller.GetPodFromTemplate`: a pod for `owner` (labels, annotations and finalizers of the
/// template, `generateName: <owner>-`, controller owner reference).
pub fn pod_from_template(owner: &Value, template: &Value, api_version: &str, kind: &str) -> Value {
    let mut meta = serde_json::Map::new();
    for key in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(key).filter(|v| !v.is_null()) {
            meta.insert(key.into(), v.clone());
        }
    }
    meta.insert("generateName".into(), json!(format!("{}-", meta_str(owner, "name"))));
    meta.insert("namespace".into(), owner["metadata"]["namespace"].clone());
    meta.insert("ownerReferences".into(), json!([podutil::controller_owner_ref(owner, api_version, kind)]));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
}

/// The `n` pods to delete first, by `controller.ActivePodsWithRanks`.
fn pods_to_delete(active: &[Arc<Value>], n: usize) -> Vec<Arc<Value>> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in active {
        if let Some(node) = p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Value| p["spec"]["nodeName"].as_str().and_then(|n| per_node.get(n).copied()).unwrap_or(0);
    let mut ranked: Vec<(usize, Arc<Value>)> = active.iter().map(|p| (rank(p), p.clone())).collect();
    ranked.sort_by(|(ra, a), (rb, b)| deletion_order(a, *ra, b, *rb));
    ranked.into_iter().take(n).map(|(_, p)| p).collect()
}

/// `ActivePodsWithRanks.Less`: `Less` means "delete first".
fn deletion_order(a: &Value, rank_a: usize, b: &Value, rank_b: usize) -> Ordering {
    let assigned = |p: &Value| p["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let phase = |p: &Value| match p["status"]["phase"].as_str() {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    };
    let cost = |p: &Value| {
        p["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"]
            .as_str()
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or(0)
    };
    let ready_since = |p: &Value| {
        podutil::pod_condition(p, "Ready")
            .filter(|c| c["status"] == "True")
            .and_then(|c| podutil::parse_ms(&c["lastTransitionTime"]))
    };
    let restarts = |p: &Value| {
        p["status"]["containerStatuses"]
            .as_array()
            .map(|cs| cs.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).max().unwrap_or(0))
            .unwrap_or(0)
    };
    let created = |p: &Value| podutil::parse_ms(&p["metadata"]["creationTimestamp"]);
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase(a).cmp(&phase(b)))
        .then_with(|| podutil::is_ready(a).cmp(&podutil::is_ready(b)))
        .then_with(|| cost(a).cmp(&cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            // Both ready: the one ready for less time goes first.
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| match (created(a), created(b)) {
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x),
            (None, None) => Ordering::Equal,
        })
        .then_with(|| meta_str(b, "name").cmp(meta_str(a, "name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: &str) -> Arc<Value> {
        Arc::new(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": created}]},
        }))
    }

    #[test]
    fn deletion_prefers_unscheduled_pending_unready_then_newest() {
        let pods = vec![
            pod("old-ready", "n1", "Running", true, "2024-01-01T00:00:00Z"),
            pod("new-ready", "n2", "Running", true, "2024-01-01T00:01:00Z"),
            pod("unready", "n3", "Running", false, "2024-01-01T00:00:00Z"),
            pod("pending", "n4", "Pending", false, "2024-01-01T00:00:00Z"),
            pod("unscheduled", "", "Pending", false, "2024-01-01T00:00:00Z"),
        ];
        let order: Vec<String> = pods_to_delete(&pods, 5).iter().map(|p| meta_str(p, "name").to_string()).collect();
        assert_eq!(order, ["unscheduled", "pending", "unready", "new-ready", "old-ready"]);
    }

    #[test]
    fn doubled_up_nodes_go_first() {
        let pods = vec![
            pod("alone", "n1", "Running", true, "2024-01-01T00:00:00Z"),
            pod("shared-a", "n2", "Running", true, "2024-01-01T00:00:00Z"),
            pod("shared-b", "n2", "Running", true, "2024-01-01T00:00:00Z"),
        ];
        let first = pods_to_delete(&pods, 1);
        assert!(meta_str(&first[0], "name").starts_with("shared"));
    }
}
