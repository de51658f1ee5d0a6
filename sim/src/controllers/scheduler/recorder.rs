//! Helpers shared by the scheduler and the node lifecycle controller: core/v1 Events recorded
//! the way client-go's recorder does (one Event per object, reason and message, its `count`
//! and `lastTimestamp` bumped on repeats), and read-modify-write of `/status`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::api::ops::{Api, Subresource, WriteCtx, now_rfc3339};
use crate::api::resources::ResourceType;
use crate::api::status::ApiResult;

/// Events remembered for aggregation (client-go's correlator keeps an LRU of 4096).
const MAX_SERIES: usize = 4096;

/// (involved object uid, reason, message) → (namespace, name) of the Event recording it.
type Series = HashMap<(String, String, String), (String, String)>;

/// Records Events for one component (`source.component`, e.g. `default-scheduler`).
#[derive(Debug)]
pub struct Recorder {
    component: String,
    series: Mutex<Series>,
}

impl Recorder {
    /// A recorder for `component`.
    pub fn new(component: &str) -> Self {
        Self { component: component.to_string(), series: Mutex::new(HashMap::new()) }
    }

    /// Records an Event of `kind` (`Normal` / `Warning`) about `object` (a stored object).
    /// Failures (e.g. a terminating namespace) are logged and otherwise ignored, as client-go does.
    pub fn event(&self, api: &Api, object: &Value, kind: &str, reason: &str, message: &str) {
        let Ok(rt) = api.resource("", "v1", "events") else { return };
        let meta = &object["metadata"];
        let uid = meta["uid"].as_str().unwrap_or_default().to_string();
        let name = meta["name"].as_str().unwrap_or_default();
        let obj_ns = meta["namespace"].as_str().unwrap_or_default();
        let namespace = if obj_ns.is_empty() { "default" } else { obj_ns };
        let key = (uid.clone(), reason.to_string(), message.to_string());
        let now = now_rfc3339();
        let known = self.series.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        if let Some((ev_ns, ev_name)) = known {
            let mut bumped = false;
            let result = super::super::modify(api, &rt, &ev_ns, &ev_name, &self.component, |ev| {
                let count = ev["count"].as_i64().unwrap_or(1);
                ev["count"] = json!(count + 1);
                ev["lastTimestamp"] = json!(now);
                bumped = true;
                true
            });
            if result.is_ok() && bumped {
                return;
            }
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let ev_name = format!("{name}.{nanos:x}");
        let mut involved = json!({
            "apiVersion": object["apiVersion"], "kind": object["kind"], "name": name, "uid": uid,
            "resourceVersion": meta["resourceVersion"],
        });
        if !obj_ns.is_empty() {
            involved["namespace"] = json!(obj_ns);
        }
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": ev_name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": kind,
            "source": {"component": self.component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.component,
        });
        match api.create(&rt, namespace, event, &WriteCtx::controller(&self.component)) {
            Ok(_) => {
                let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
                if series.len() >= MAX_SERIES {
                    series.clear();
                }
                series.insert(key, (namespace.to_string(), ev_name));
            }
            Err(e) => tracing::debug!(component = %self.component, reason, error = %e, "could not record an event"),
        }
    }
}

/// Read-modify-write of an object's `/status`, retried on conflict; `change` returns `false`
/// to leave the object alone. A missing object is not an error.
pub fn modify_status(
    api: &Api,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    manager: &str,
    mut change: impl FnMut(&mut Value) -> bool,
) -> ApiResult<Option<Value>> {
    let ctx = WriteCtx::controller(manager);
    for _ in 0..16 {
        let cur = match api.get(rt, namespace, name) {
            Ok(c) => c,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut next = (*cur).clone();
        if !change(&mut next) {
            return Ok(None);
        }
        match api.update(rt, namespace, name, next, Subresource::Status, &ctx) {
            Ok(w) => return Ok(Some((*w.object).clone())),
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Sets (adds or replaces) the condition of `type` in `obj.status.conditions`; the transition
/// time moves only when the status changes. Returns whether anything changed.
pub fn set_condition(obj: &mut Value, condition: Value) -> bool {
    let Some(kind) = condition["type"].as_str().map(str::to_string) else { return false };
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let Some(list) = obj["status"]["conditions"].as_array_mut() else { return false };
    let mut condition = condition;
    match list.iter_mut().find(|c| c["type"] == kind.as_str()) {
        Some(existing) => {
            if existing["status"] == condition["status"] && !existing["lastTransitionTime"].is_null() {
                condition["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            let same = ["status", "reason", "message"].iter().all(|k| existing[*k] == condition[*k]);
            if same {
                return false;
            }
            *existing = condition;
        }
        None => list.push(condition),
    }
    true
}
