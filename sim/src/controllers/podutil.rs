//! Helpers shared by the workload controllers: pod readiness and availability, controller
//! references and adoption, template hashing and int-or-percent arithmetic, with the semantics
//! of kube-controller-manager's `podutil`, `controller` and `deploymentutil` packages.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::api::ops::{Api, ListOptions, Subresource, WriteCtx};
use crate::api::resources::ResourceType;
use crate::api::selectors::LabelSelector;
use crate::api::status::{ApiError, ApiResult};

/// `(namespace, name)` of an object a controller reconciles.
pub type Key = (String, String);

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_millisecond()
}

/// Parses a Kubernetes `Time` / `MicroTime` into milliseconds since the Unix epoch.
pub fn parse_ms(t: &Value) -> Option<i64> {
    t.as_str()?.parse::<k8s_openapi::jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

/// An `i64` field read as a Kubernetes `int32` (absent or malformed: `default`).
pub fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

/// The pod's condition of `kind`, if any.
pub fn pod_condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

/// `podutil.IsPodReady`: the `Ready` condition is `True`.
pub fn is_ready(pod: &Value) -> bool {
    pod_condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

/// Whether the pod has a deletion timestamp.
pub fn is_terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

/// `podutil.IsPodTerminal`: phase `Succeeded` or `Failed`.
pub fn is_terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// `controller.IsPodActive`: neither terminal nor being deleted.
pub fn is_active(pod: &Value) -> bool {
    !is_terminal(pod) && !is_terminating(pod)
}

/// Terminating and not yet terminal (counted as `terminatingReplicas`).
pub fn is_terminating_not_terminal(pod: &Value) -> bool {
    is_terminating(pod) && !is_terminal(pod)
}

/// How long until a ready pod counts as available with `min_ready_seconds` (`podutil.IsPodAvailable`):
/// `Some(ZERO)` when it already is, `None` when it is not ready at all.
pub fn available_in(pod: &Value, min_ready_seconds: i64, now: i64) -> Option<Duration> {
    let ready = pod_condition(pod, "Ready").filter(|c| c["status"] == "True")?;
    if min_ready_seconds <= 0 {
        return Some(Duration::ZERO);
    }
    let since = parse_ms(&ready["lastTransitionTime"])?;
    let at = since + min_ready_seconds * 1000;
    // Kubernetes: available when lastTransitionTime + minReadySeconds is strictly before now.
    if at < now { Some(Duration::ZERO) } else { Some(Duration::from_millis((at - now + 1) as u64)) }
}

/// `podutil.IsPodAvailable`.
pub fn is_available(pod: &Value, min_ready_seconds: i64, now: i64) -> bool {
    available_in(pod, min_ready_seconds, now) == Some(Duration::ZERO)
}

/// The earliest time (from now) at which one of `pods` turns from ready to available.
pub fn next_availability(pods: &[Arc<Value>], min_ready_seconds: i64, now: i64) -> Option<Duration> {
    pods.iter().filter_map(|p| available_in(p, min_ready_seconds, now)).filter(|d| !d.is_zero()).min()
}

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)
}

/// `(namespace, name)` of the object of `kind` (`api_version`) controlling `obj`, if that is
/// what controls it.
pub fn controller_key(obj: &Value, api_version: &str, kind: &str) -> Option<Key> {
    let r = controller_ref(obj)?;
    (r["kind"] == kind && r["apiVersion"] == api_version).then(|| {
        (
            obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
            r["name"].as_str().unwrap_or_default().to_string(),
        )
    })
}

/// Whether `obj` is controlled by the object with this uid.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    controller_ref(obj).is_some_and(|r| r["uid"] == uid)
}

/// A controller owner reference to `owner` (controller and blockOwnerDeletion set).
pub fn controller_owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The labels of an object as a map (empty when absent).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj["metadata"]["labels"].as_object().cloned().unwrap_or_default()
}

/// Looks up a built-in resource type that is always registered.
pub fn builtin(api: &Api, group: &str, plural: &str) -> ApiResult<Arc<ResourceType>> {
    api.resource(group, "v1", plural)
}

/// Objects of `rt` in `namespace` matching `selector` (all objects when `None`).
pub fn list_in(
    api: &Api,
    rt: &ResourceType,
    namespace: &str,
    selector: Option<LabelSelector>,
) -> ApiResult<Vec<Arc<Value>>> {
    let opts = ListOptions { label_selector: selector.map(Arc::new), ..Default::default() };
    Ok(api.list(rt, Some(namespace), &opts)?.items)
}

/// `ControllerRefManager.Claim*`: the objects of `candidates` that `owner` controls after adopting
/// orphans that match `selector` (when `can_adopt`) and releasing owned objects that no longer
/// match. `extra_match` narrows which orphans may be adopted (e.g. StatefulSet pod names).
#[allow(clippy::too_many_arguments)]
pub fn claim(
    api: &Api,
    rt: &ResourceType,
    owner: &Value,
    owner_ref: &Value,
    selector: &LabelSelector,
    candidates: Vec<Arc<Value>>,
    can_adopt: bool,
    manager: &str,
    extra_match: &dyn Fn(&Value) -> bool,
) -> Vec<Arc<Value>> {
    let uid = owner["metadata"]["uid"].as_str().unwrap_or_default();
    let mut claimed = Vec::new();
    // Checked once, on the first orphan, against the store rather than the caller's copy: an
    // orphaning delete of the owner removes its references and only then the owner, so an owner
    // read before that began must not take back what it just let go (RecheckDeletionTimestamp).
    let mut fresh_can_adopt: Option<bool> = None;
    for obj in candidates {
        let matches = selector.matches(obj["metadata"]["labels"].as_object());
        match controller_ref(&obj) {
            Some(r) if r["uid"] == uid => {
                if matches {
                    claimed.push(obj);
                } else if can_adopt
                    // An owner being deleted neither adopts nor releases.
                    && let Err(e) = set_controller(api, rt, &obj, uid, None, manager)
                {
                    tracing::debug!(object = %crate::api::ops::meta_str(&obj, "name"), error = %e, "could not release");
                }
            }
            Some(_) => {}
            None => {
                if !can_adopt || !matches || is_terminating(&obj) || !extra_match(&obj) {
                    continue;
                }
                if !*fresh_can_adopt.get_or_insert_with(|| owner_alive(api, owner)) {
                    continue;
                }
                match set_controller(api, rt, &obj, uid, Some(owner_ref), manager) {
                    Ok(Some(adopted)) => claimed.push(adopted),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(object = %crate::api::ops::meta_str(&obj, "name"), error = %e, "could not adopt")
                    }
                }
            }
        }
    }
    claimed
}

/// Whether `owner`, as stored now, still exists with the same uid and is not being deleted.
fn owner_alive(api: &Api, owner: &Value) -> bool {
    let Some(rt) = api
        .registry
        .by_kind(owner["apiVersion"].as_str().unwrap_or_default(), owner["kind"].as_str().unwrap_or_default())
    else {
        return false;
    };
    let (ns, name) = crate::api::store::key_of(owner);
    api.store
        .get(&rt.group_resource(), &ns, &name)
        .is_some_and(|now| now["metadata"]["uid"] == owner["metadata"]["uid"] && !is_terminating(&now))
}

/// Adopts (`Some(owner_ref)`) or releases (`None`) `obj`, with the current version as precondition.
fn set_controller(
    api: &Api,
    rt: &ResourceType,
    obj: &Value,
    owner_uid: &str,
    owner_ref: Option<&Value>,
    manager: &str,
) -> ApiResult<Option<Arc<Value>>> {
    let mut next = obj.clone();
    let refs = next["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    let mut refs: Vec<Value> = refs.into_iter().filter(|r| r["uid"] != owner_uid).collect();
    if let Some(r) = owner_ref {
        refs.push(r.clone());
    }
    if let Some(meta) = next["metadata"].as_object_mut() {
        if refs.is_empty() {
            meta.remove("ownerReferences");
        } else {
            meta.insert("ownerReferences".into(), Value::Array(refs));
        }
    }
    let (ns, name) = crate::api::store::key_of(obj);
    let written = api.update(rt, &ns, &name, next, Subresource::Main, &WriteCtx::controller(manager))?;
    Ok(owner_ref.map(|_| written.object))
}

/// `rand.SafeEncodeString`: maps each byte to an alphabet without vowels or look-alikes.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char).collect()
}

/// 32-bit FNV-1a.
pub fn fnv32a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// 32-bit FNV-1 (the variant `hash/fnv.New32` computes).
pub fn fnv32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| h.wrapping_mul(0x0100_0193) ^ u32::from(*b))
}

/// `controller.ComputeHash`: the `pod-template-hash` of a pod template (FNV-1a over its canonical
/// JSON, plus the collision count), safe-encoded.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut data = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&fnv32a(&data).to_string())
}

/// Resolves an int-or-percent (`GetScaledValueFromIntOrPercent`) against `total`; percentages
/// round up or down as asked. Missing values use `default`.
pub fn scaled_value(v: &Value, default: &str, total: i64, round_up: bool) -> Result<i64, ApiError> {
    let v = if v.is_null() { Value::String(default.to_string()) } else { v.clone() };
    match &v {
        Value::Number(n) => n.as_i64().ok_or_else(|| ApiError::bad_request(format!("invalid int-or-percent {n}"))),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%').and_then(|p| p.parse().ok()).ok_or_else(|| {
                ApiError::bad_request(format!("invalid value for IntOrString: {s:?} is not a percentage"))
            })?;
            let scaled = pct * total;
            Ok(if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) })
        }
        other => Err(ApiError::bad_request(format!("invalid int-or-percent {other}"))),
    }
}

/// Writes `status` through the status subresource unless the object already has it.
pub fn write_status(api: &Api, rt: &ResourceType, obj: &Value, status: Value, manager: &str) -> ApiResult<Arc<Value>> {
    if obj["status"] == status {
        return Ok(Arc::new(obj.clone()));
    }
    let mut next = obj.clone();
    next["status"] = status;
    let (ns, name) = crate::api::store::key_of(obj);
    Ok(api.update(rt, &ns, &name, next, Subresource::Status, &WriteCtx::controller(manager))?.object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_asked() {
        assert_eq!(scaled_value(&json!("25%"), "25%", 10, true).unwrap(), 3);
        assert_eq!(scaled_value(&json!("25%"), "25%", 10, false).unwrap(), 2);
        assert_eq!(scaled_value(&json!(2), "25%", 10, false).unwrap(), 2);
        assert_eq!(scaled_value(&Value::Null, "25%", 4, true).unwrap(), 1);
        assert!(scaled_value(&json!("x"), "25%", 4, true).is_err());
    }

    #[test]
    fn hashes_are_stable_and_safe() {
        let t = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t.clone(), None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32(b"a"), 0x050c_5d7e);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
        let t0 = parse_ms(&json!("2024-01-01T00:00:00Z")).unwrap();
        assert!(is_available(&pod, 0, t0));
        assert!(!is_available(&pod, 5, t0 + 4000));
        assert_eq!(available_in(&pod, 5, t0 + 4000), Some(Duration::from_millis(1001)));
        assert!(is_available(&pod, 5, t0 + 5001));
        assert_eq!(available_in(&json!({}), 5, t0), None);
    }
}
