//! The disruption controller: a PodDisruptionBudget's status, as kube-controller-manager keeps
//! it (k/k `pkg/controller/disruption/disruption.go`), for the eviction subresource to check.
//!
//! `minAvailable` as a number: the expected pods are the pods the selector selects and the
//! desired healthy count is that number. A percentage `minAvailable`, or `maxUnavailable`: the
//! expected pods are the replicas of the pods' controllers (a ReplicaSet's Deployment,
//! ReplicationController, StatefulSet, or any kind with a scale subresource), percentages
//! rounded up, and desired = expected − maxUnavailable. Healthy pods are Ready, not being
//! deleted, and not evicted less than 2 minutes ago (`disruptedPods`, entries dropped once the
//! pod is deleting, gone or the 2 minutes passed). `disruptionsAllowed` = healthy − desired (not
//! below 0; 0 when nothing is expected). Condition `DisruptionAllowed`: `SufficientPods` /
//! `InsufficientPods`, or `SyncFailed` (with no disruption allowed) when a pod has no
//! controller to scale by.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::podutil::{self, Key};
use super::queue::Reconciler;
use crate::api::ops::eviction::set_allowed_condition;
use crate::api::ops::{Api, meta_str};
use crate::api::resources::GroupResource;
use crate::api::selectors::LabelSelector;
use crate::api::status::ApiResult;
use crate::api::store::{Event, key_of};

const MANAGER: &str = "disruption-controller";
/// How long an evicted pod may take to be deleted before it counts again (`DeletionTimeout`).
const DELETION_TIMEOUT_MS: i64 = 2 * 60 * 1000;

/// The disruption controller's reconciler.
#[derive(Debug, Default)]
pub struct DisruptionController;

/// Runs the disruption controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, DisruptionController).await
}

/// The budgets in `namespace` whose selector selects an object with `labels`.
fn budgets_selecting(api: &Api, namespace: &str, labels: &[Option<&serde_json::Map<String, Value>>]) -> Vec<Key> {
    let Ok(rt) = podutil::builtin(api, "policy", "poddisruptionbudgets") else { return Vec::new() };
    podutil::list_in(api, &rt, namespace, None)
        .unwrap_or_default()
        .iter()
        .filter(|pdb| {
            LabelSelector::from_json(&pdb["spec"]["selector"]).is_ok_and(|s| labels.iter().any(|l| s.matches(*l)))
        })
        .map(|pdb| key_of(pdb))
        .collect()
}

impl Reconciler for DisruptionController {
    fn name(&self) -> &'static str {
        MANAGER
    }

    fn keys(&mut self, api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        let ns = meta_str(&event.object, "namespace");
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("policy", "poddisruptionbudgets") => out.push(key_of(&event.object)),
            ("", "pods") => {
                let labels = [
                    event.object["metadata"]["labels"].as_object(),
                    event.old.as_ref().and_then(|o| o["metadata"]["labels"].as_object()),
                ];
                out.extend(budgets_selecting(api, ns, &labels));
            }
            // A controller's scale changes what a percentage or maxUnavailable budget expects.
            ("apps", "replicasets" | "deployments" | "statefulsets") | ("", "replicationcontrollers")
                if event.old.as_ref().is_none_or(|o| o["spec"]["replicas"] != event.object["spec"]["replicas"]) =>
            {
                let labels = [event.object["spec"]["template"]["metadata"]["labels"].as_object()];
                out.extend(budgets_selecting(api, ns, &labels));
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let pdb_rt = podutil::builtin(api, "policy", "poddisruptionbudgets")?;
        let pdb = match api.get(&pdb_rt, &key.0, &key.1) {
            Ok(p) => p,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let pod_rt = podutil::builtin(api, "", "pods")?;
        let selector = LabelSelector::from_json(&pdb["spec"]["selector"]).unwrap_or_else(|_| LabelSelector::nothing());
        let pods = podutil::list_in(api, &pod_rt, &key.0, Some(selector))?;
        let now = podutil::now_ms();

        let mut status = pdb["status"].clone();
        status["observedGeneration"] = pdb["metadata"]["generation"].clone();
        let (disrupted, recheck) = disrupted_pods(&pdb, &pods, now);
        let counts = expected_and_desired(api, &pdb, &pods);
        let healthy = pods
            .iter()
            .filter(|p| {
                !podutil::is_terminating(p) && !disrupted.contains_key(meta_str(p, "name")) && podutil::is_ready(p)
            })
            .count() as i64;
        status["currentHealthy"] = json!(healthy);
        if disrupted.is_empty() {
            if let Some(m) = status.as_object_mut() {
                m.remove("disruptedPods");
            }
        } else {
            status["disruptedPods"] = json!(disrupted);
        }
        match counts {
            Ok((expected, desired)) => {
                let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
                status["expectedPods"] = json!(expected);
                status["desiredHealthy"] = json!(desired);
                status["disruptionsAllowed"] = json!(allowed);
                let reason = if allowed > 0 { "SufficientPods" } else { "InsufficientPods" };
                set_allowed_condition(&mut status, allowed > 0, reason, "");
            }
            Err(message) => {
                // failSafe: nothing may be disrupted while the budget cannot be computed.
                status["disruptionsAllowed"] = json!(0);
                set_allowed_condition(&mut status, false, "SyncFailed", &message);
            }
        }
        podutil::write_status(api, &pdb_rt, &pdb, status, MANAGER)?;
        Ok(recheck)
    }
}

/// `buildDisruptedPodMap`: the evictions still pending, and when the first one times out.
fn disrupted_pods(pdb: &Value, pods: &[Arc<Value>], now: i64) -> (BTreeMap<String, Value>, Option<Duration>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<i64> = None;
    let Some(recorded) = pdb["status"]["disruptedPods"].as_object() else { return (kept, None) };
    for pod in pods.iter().filter(|p| !podutil::is_terminating(p)) {
        let name = meta_str(pod, "name");
        let Some(at) = recorded.get(name) else { continue };
        let expires = podutil::parse_ms(at).unwrap_or(0) + DELETION_TIMEOUT_MS;
        if expires <= now {
            tracing::info!(pod = name, "evicted pod was not deleted in time; it counts as healthy again");
            continue;
        }
        kept.insert(name.to_string(), at.clone());
        recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
    }
    (kept, recheck.map(|r| Duration::from_millis((r - now).max(1) as u64)))
}

/// `getExpectedPodCount`: (expected pods, desired healthy pods), or why they cannot be known.
fn expected_and_desired(api: &Api, pdb: &Value, pods: &[Arc<Value>]) -> Result<(i64, i64), String> {
    let spec = &pdb["spec"];
    let err = |e: crate::api::status::ApiError| e.message;
    if !spec["maxUnavailable"].is_null() {
        let expected = expected_scale(api, pods)?;
        let max = podutil::scaled_value(&spec["maxUnavailable"], "0", expected, true).map_err(err)?;
        return Ok((expected, (expected - max).max(0)));
    }
    match &spec["minAvailable"] {
        Value::Number(n) => Ok((pods.len() as i64, n.as_i64().unwrap_or(0))),
        Value::String(_) => {
            let expected = expected_scale(api, pods)?;
            Ok((expected, podutil::scaled_value(&spec["minAvailable"], "0", expected, true).map_err(err)?))
        }
        _ => Ok((0, 0)),
    }
}

/// `getExpectedScale`: the summed replicas of the pods' controllers, each counted once.
fn expected_scale(api: &Api, pods: &[Arc<Value>]) -> Result<i64, String> {
    let mut scales: BTreeMap<String, i64> = BTreeMap::new();
    for pod in pods {
        let Some(owner) = podutil::controller_ref(pod) else {
            return Err(format!("found no controller ref for pod \"{}\"", meta_str(pod, "name")));
        };
        let (uid, replicas) = controller_scale(api, meta_str(pod, "namespace"), owner)
            .ok_or_else(|| format!("found no controllers for pod \"{}\"", meta_str(pod, "name")))?;
        scales.insert(uid, replicas);
    }
    Ok(scales.values().sum())
}

/// The controlling object's uid and `spec.replicas` through its scale subresource; a
/// ReplicaSet owned by a Deployment answers for the Deployment.
fn controller_scale(api: &Api, namespace: &str, owner: &Value) -> Option<(String, i64)> {
    let rt = api.registry.by_kind(owner["apiVersion"].as_str()?, owner["kind"].as_str()?)?;
    rt.scale.as_ref()?;
    let obj = api.get(&rt, namespace, owner["name"].as_str()?).ok()?;
    if obj["metadata"]["uid"] != owner["uid"] {
        return None;
    }
    if rt.kind == "ReplicaSet"
        && let Some(parent) = podutil::controller_ref(&obj).filter(|r| r["kind"] == "Deployment")
    {
        return controller_scale(api, namespace, parent);
    }
    let scale = crate::api::ops::scale_view(&rt, &obj);
    Some((meta_str(&obj, "uid").to_string(), scale["spec"]["replicas"].as_i64().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evictions_expire_after_two_minutes_or_once_the_pod_is_deleting() {
        let t0 = podutil::parse_ms(&json!("2026-01-01T00:00:00Z")).unwrap();
        let pdb = json!({"status": {"disruptedPods": {"a": "2026-01-01T00:00:00Z", "b": "2026-01-01T00:00:00Z", "gone": "2026-01-01T00:00:00Z"}}});
        let pods = vec![
            Arc::new(json!({"metadata": {"name": "a"}})),
            Arc::new(json!({"metadata": {"name": "b", "deletionTimestamp": "2026-01-01T00:00:01Z"}})),
        ];
        let (kept, recheck) = disrupted_pods(&pdb, &pods, t0 + 1000);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(recheck, Some(Duration::from_millis(119_000)));
        let (kept, _) = disrupted_pods(&pdb, &pods, t0 + DELETION_TIMEOUT_MS);
        assert!(kept.is_empty());
    }

    #[test]
    fn a_number_min_available_expects_the_selected_pods() {
        let api = Api::new(10);
        let pdb = json!({"spec": {"minAvailable": 2}});
        let pods: Vec<Arc<Value>> = (0..3).map(|i| Arc::new(json!({"metadata": {"name": format!("p{i}")}}))).collect();
        assert_eq!(expected_and_desired(&api, &pdb, &pods), Ok((3, 2)));
        let pct = json!({"spec": {"maxUnavailable": "50%"}});
        let err = expected_and_desired(&api, &pct, &pods).unwrap_err();
        assert!(err.contains("found no controller ref for pod \"p0\""), "{err}");
    }
}
