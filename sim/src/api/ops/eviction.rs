//! `pods/eviction`: a delete that honours PodDisruptionBudgets, as kube-apiserver's
//! `EvictionREST` does it (k/k `pkg/registry/core/pod/storage/eviction.go`).
//!
//! Pods that are Pending, terminal or already being deleted are deleted at once. Otherwise the
//! pod's one budget (more is a 500) must allow a disruption: the budget's status is decremented
//! and the pod recorded in `disruptedPods` (an update with the budget's resourceVersion, retried
//! on conflict), then the pod gets the `DisruptionTarget` condition and is deleted with the
//! eviction's delete options. A budget that forbids it answers 429 with kube-apiserver's message
//! and a `DisruptionBudget` cause. An unready pod is evicted without using up the budget when
//! `unhealthyPodEvictionPolicy: AlwaysAllow`, or (`IfHealthyBudget`, the default) while the
//! budget has its desired healthy pods.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Api, DeleteOptions, ListOptions, Subresource, WriteCtx, meta_str, now_rfc3339};
use crate::api::resources::ResourceType;
use crate::api::selectors::LabelSelector;
use crate::api::status::{ApiError, ApiResult, Cause};

/// Tries of a read-modify-write that loses to a concurrent writer (`evictionsRetry`: 20 steps).
const RETRIES: usize = 20;
/// More recorded disruptions than this and the budget refuses (`MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;
/// The message of every 429 an eviction answers.
pub const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
const MANAGER: &str = "eviction";

/// `tooManyRequests`: the budget changed under us, or its controller has not seen it yet.
fn still_processing(pdb: &str) -> ApiError {
    ApiError::too_many_requests(
        VIOLATION,
        10,
        vec![Cause {
            reason: "DisruptionBudget".into(),
            field: String::new(),
            message: format!("The disruption budget {pdb} is still being processed by the server."),
        }],
    )
}

/// `disruptionDeniedMessage`.
fn denied_message(pdb: &Value) -> String {
    let name = meta_str(pdb, "name");
    let status = &pdb["status"];
    let (current, desired) =
        (status["currentHealthy"].as_i64().unwrap_or(0), status["desiredHealthy"].as_i64().unwrap_or(0));
    let condition = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "DisruptionAllowed"))
        .filter(|c| c["status"] == "False" && c["message"].as_str().is_some_and(|m| !m.is_empty()));
    match condition {
        Some(c) if c["reason"] == "SyncFailed" => format!(
            "The disruption budget {name} does not allow evicting pods currently because it failed sync: {}",
            c["message"].as_str().unwrap_or_default()
        ),
        _ if current <= desired => {
            format!("The disruption budget {name} needs {desired} healthy pods and has {current} currently")
        }
        Some(c) => format!(
            "The disruption budget {name} does not allow evicting pods currently ({}): {}",
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        ),
        None => format!("The disruption budget {name} does not allow evicting pods currently"),
    }
}

/// `canIgnorePDB`.
fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed" | "Pending"))
        || !pod["metadata"]["deletionTimestamp"].is_null()
}

/// `shouldPinPodResourceVersion`: a running pod is deleted only as it was checked.
fn should_pin(pod: &Value) -> bool {
    !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        && pod["metadata"]["deletionTimestamp"].is_null()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True")
}

impl Api {
    /// Evicts pod `namespace/name` as asked by a policy/v1 (or v1beta1) `Eviction` body;
    /// `dry_run` is the request's `dryRun=All`.
    pub fn evict(&self, namespace: &str, name: &str, eviction: &Value, dry_run: bool) -> ApiResult<()> {
        if meta_str(eviction, "name") != name {
            return Err(ApiError::bad_request("name in URL does not match name in Eviction object"));
        }
        let mut opts = DeleteOptions::from_json(&eviction["deleteOptions"])?;
        opts.dry_run |= dry_run;
        let pod_rt = self.resource("", "v1", "pods")?;
        let caller_pinned = opts.precondition_rv.is_some();
        let mut tries = 0;
        let pod = loop {
            let pod = self.get(&pod_rt, namespace, name)?;
            if !can_ignore_pdb(&pod) {
                break pod;
            }
            let mut o = opts.clone();
            if should_pin(&pod) && !caller_pinned {
                o.precondition_rv = Some(meta_str(&pod, "resourceVersion").to_string());
            }
            match self.delete_evicted(&pod_rt, namespace, name, &o) {
                Err(e) if e.code == 409 && !caller_pinned && tries < RETRIES => tries += 1,
                other => return other,
            }
        };
        let pinned = self.guard_pdb(&pod, opts.dry_run)?;
        if pinned.is_some() && !caller_pinned {
            opts.precondition_rv = Some(meta_str(&pod, "resourceVersion").to_string());
        }
        match self.delete_evicted(&pod_rt, namespace, name, &opts) {
            Err(e) if e.code == 409 && !caller_pinned => Err(pinned.map(|p| still_processing(&p)).unwrap_or(e)),
            other => other,
        }
    }

    /// The pod's budgets: every PodDisruptionBudget of its namespace whose selector selects it.
    fn budgets_of(&self, pdb_rt: &ResourceType, pod: &Value) -> ApiResult<Vec<Arc<Value>>> {
        let all = self.list(pdb_rt, Some(meta_str(pod, "namespace")), &ListOptions::default())?.items;
        Ok(all
            .into_iter()
            .filter(|pdb| {
                LabelSelector::from_json(&pdb["spec"]["selector"])
                    .is_ok_and(|s| s.matches(pod["metadata"]["labels"].as_object()))
            })
            .collect())
    }

    /// `guardPDB`: checks and uses up the budget. `Ok(Some(budget))` when an unready pod may go
    /// without using it (the delete is then pinned to the pod's resourceVersion).
    fn guard_pdb(&self, pod: &Value, dry_run: bool) -> ApiResult<Option<String>> {
        let pdb_rt = self.resource("policy", "v1", "poddisruptionbudgets")?;
        let too_many = || {
            ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            )
        };
        let budgets = self.budgets_of(&pdb_rt, pod)?;
        if budgets.len() > 1 {
            return Err(too_many());
        }
        let Some(pdb) = budgets.into_iter().next() else { return Ok(None) };
        let name = meta_str(&pdb, "name").to_string();
        if !is_ready(pod) {
            if pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow" {
                return Ok(Some(name));
            }
            let status = &pdb["status"];
            let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
            if status["currentHealthy"].as_i64().unwrap_or(0) >= desired && desired > 0 {
                return Ok(Some(name));
            }
        }
        let mut pdb = pdb;
        for _ in 0..RETRIES {
            match self.check_and_decrement(&pdb_rt, &pdb, meta_str(pod, "name"), dry_run) {
                Err(e) if e.code == 409 => {
                    let budgets = self.budgets_of(&pdb_rt, pod)?;
                    if budgets.len() > 1 {
                        return Err(too_many());
                    }
                    match budgets.into_iter().next() {
                        Some(next) => pdb = next,
                        None => return Ok(None),
                    }
                }
                other => return other.map(|_| None),
            }
        }
        Err(still_processing(&name))
    }

    /// `checkAndDecrement`.
    fn check_and_decrement(&self, pdb_rt: &ResourceType, pdb: &Value, pod: &str, dry_run: bool) -> ApiResult<()> {
        let name = meta_str(pdb, "name");
        let status = &pdb["status"];
        if status["observedGeneration"].as_i64().unwrap_or(0) < pdb["metadata"]["generation"].as_i64().unwrap_or(0) {
            return Err(still_processing(name));
        }
        let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
        let forbidden =
            |why: &str| ApiError::forbidden(format!("poddisruptionbudget.policy \"{name}\" is forbidden: {why}"));
        if allowed < 0 {
            return Err(forbidden("pdb disruptions allowed is negative"));
        }
        if status["disruptedPods"].as_object().is_some_and(|d| d.len() > MAX_DISRUPTED_PODS) {
            return Err(forbidden("DisruptedPods map too big - too many evictions not confirmed by PDB controller"));
        }
        if allowed == 0 {
            let cause = Cause { reason: "DisruptionBudget".into(), field: String::new(), message: denied_message(pdb) };
            return Err(ApiError::too_many_requests(VIOLATION, 0, vec![cause]));
        }
        if dry_run {
            return Ok(());
        }
        let mut next = pdb.clone();
        next["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if allowed == 1 {
            set_insufficient(&mut next["status"]);
        }
        if !next["status"]["disruptedPods"].is_object() {
            next["status"]["disruptedPods"] = json!({});
        }
        next["status"]["disruptedPods"][pod] = json!(now_rfc3339());
        self.update(
            pdb_rt,
            meta_str(pdb, "namespace"),
            name,
            next,
            Subresource::Status,
            &WriteCtx::controller(MANAGER),
        )?;
        Ok(())
    }

    /// `addConditionAndDeletePod`: the `DisruptionTarget` condition, then the delete.
    fn delete_evicted(
        &self,
        pod_rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<()> {
        let mut opts = opts.clone();
        if !opts.dry_run {
            let pod = self.get(pod_rt, namespace, name)?;
            check_preconditions(&pod, &opts)?;
            let mut next = (*pod).clone();
            if set_disruption_target(&mut next) {
                let written =
                    self.update(pod_rt, namespace, name, next, Subresource::Status, &WriteCtx::controller(MANAGER))?;
                if opts.precondition_rv.is_some() {
                    opts.precondition_rv = Some(meta_str(&written.object, "resourceVersion").to_string());
                }
            }
        }
        self.delete(pod_rt, namespace, name, &opts)?;
        Ok(())
    }
}

fn check_preconditions(pod: &Value, opts: &DeleteOptions) -> ApiResult<()> {
    let name = meta_str(pod, "name");
    if let Some(uid) = opts.precondition_uid.as_deref().filter(|u| *u != meta_str(pod, "uid")) {
        return Err(ApiError::conflict(
            "",
            "pods",
            name,
            &format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                meta_str(pod, "uid")
            ),
        ));
    }
    if let Some(rv) = opts.precondition_rv.as_deref().filter(|rv| *rv != meta_str(pod, "resourceVersion")) {
        return Err(ApiError::conflict(
            "",
            "pods",
            name,
            &format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                meta_str(pod, "resourceVersion")
            ),
        ));
    }
    Ok(())
}

/// Sets `DisruptionTarget: True (EvictionByEvictionAPI)`; false when it already was.
fn set_disruption_target(pod: &mut Value) -> bool {
    let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True" && c["reason"] == "EvictionByEvictionAPI")
    {
        return false;
    }
    let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "DisruptionTarget").collect();
    conditions.push(json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": now_rfc3339(), "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}));
    pod["status"]["conditions"] = Value::Array(conditions);
    true
}

/// `UpdateDisruptionAllowedCondition` for a budget with no disruption left.
pub fn set_insufficient(status: &mut Value) {
    set_allowed_condition(status, false, "InsufficientPods", "");
}

/// Sets the budget's `DisruptionAllowed` condition (a `metav1.Condition`), keeping its
/// transition time when the status does not change.
pub fn set_allowed_condition(status: &mut Value, allowed: bool, reason: &str, message: &str) {
    let value = if allowed { "True" } else { "False" };
    let generation = status["observedGeneration"].clone();
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let old = conditions.iter().find(|c| c["type"] == "DisruptionAllowed");
    let since = match old {
        Some(c) if c["status"] == value => c["lastTransitionTime"].clone(),
        _ => json!(now_rfc3339()),
    };
    let mut conditions: Vec<Value> = conditions.iter().filter(|c| c["type"] != "DisruptionAllowed").cloned().collect();
    conditions.push(json!({"type": "DisruptionAllowed", "status": value, "observedGeneration": generation,
        "lastTransitionTime": since, "reason": reason, "message": message}));
    status["conditions"] = Value::Array(conditions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_names_the_budget_and_its_counts() {
        let pdb = json!({"metadata": {"name": "web"}, "status": {"currentHealthy": 1, "desiredHealthy": 1}});
        assert_eq!(denied_message(&pdb), "The disruption budget web needs 1 healthy pods and has 1 currently");
        let failed = json!({"metadata": {"name": "web"}, "status": {"currentHealthy": 3, "desiredHealthy": 1,
            "conditions": [{"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": "found no controllers"}]}});
        assert_eq!(
            denied_message(&failed),
            "The disruption budget web does not allow evicting pods currently because it failed sync: found no controllers"
        );
    }

    #[test]
    fn pending_terminal_and_deleting_pods_skip_the_budget() {
        assert!(can_ignore_pdb(&json!({"status": {"phase": "Pending"}})));
        assert!(can_ignore_pdb(&json!({"status": {"phase": "Succeeded"}})));
        assert!(can_ignore_pdb(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}})
        ));
        assert!(!can_ignore_pdb(&json!({"status": {"phase": "Running"}})));
    }
}
