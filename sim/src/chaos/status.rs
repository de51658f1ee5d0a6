//! The status and events of a chaos object, as chaos-controller-manager writes them.
//!
//! - `status.experiment`: `desiredPhase` (`Run`/`Stop`) and one record per target
//!   `{id, selectorKey, phase, injectedCount, recoveredCount, events}`.
//! - `status.conditions`: `Selected`, `AllInjected`, `AllRecovered`, `Paused`.
//! - The CRDs have no status subresource: status is written with a full-object update,
//!   retried on 409 against the fresh object.
//! - core/v1 Events on the object (`FinalizerInited`, `Started`, `Applied`, `Recovered`,
//!   `TimeUp`, `Paused`, `Deleted`, `Failed`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::ops::{Api, Subresource, WriteCtx, now_rfc3339};
use crate::api::resources::ResourceType;
use crate::api::status::ApiResult;

/// Field manager and event source of the engine's writes.
pub const MANAGER: &str = "chaos-controller-manager";
/// The finalizer that holds a deleted object until every record is recovered.
pub const FINALIZER: &str = "chaos-mesh/records";
/// The pause annotation.
pub const PAUSE_ANNOTATION: &str = "experiment.chaos-mesh.org/pause";
/// Record phase with the fault in place.
pub const INJECTED: &str = "Injected";
/// Record phase without the fault (note the space).
pub const NOT_INJECTED: &str = "Not Injected";
/// Events kept per record (the oldest are dropped).
const EVENTS_PER_RECORD: usize = 20;

/// One target's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// `ns/pod`, or `ns/pod/container` for container-based actions.
    pub id: String,
    /// `.` or `.Target`.
    pub selector_key: String,
    /// [`INJECTED`] or [`NOT_INJECTED`].
    pub phase: String,
    /// Successful injections.
    #[serde(default)]
    pub injected_count: i64,
    /// Successful recoveries.
    #[serde(default)]
    pub recovered_count: i64,
    /// Apply and recover outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<RecordEvent>,
}

/// One apply or recover outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordEvent {
    /// `Succeeded` or `Failed`.
    pub r#type: String,
    /// `Apply` or `Recover`.
    pub operation: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When.
    pub timestamp: String,
}

/// `Apply` or `Recover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Injecting.
    Apply,
    /// Recovering.
    Recover,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Recover => "Recover",
        }
    }
}

impl Record {
    /// A fresh record, not injected.
    pub fn new(id: String, selector_key: &str) -> Self {
        Self {
            id,
            selector_key: selector_key.into(),
            phase: NOT_INJECTED.into(),
            injected_count: 0,
            recovered_count: 0,
            events: Vec::new(),
        }
    }

    /// Whether the fault is in place.
    pub fn injected(&self) -> bool {
        self.phase == INJECTED
    }

    /// Records a successful apply or recover: the phase follows.
    pub fn succeeded(&mut self, op: Operation) {
        match op {
            Operation::Apply => {
                self.phase = INJECTED.into();
                self.injected_count += 1;
            }
            Operation::Recover => {
                self.phase = NOT_INJECTED.into();
                self.recovered_count += 1;
            }
        }
        self.push("Succeeded", op, None);
    }

    /// Records a failed apply or recover: the phase stays.
    pub fn failed(&mut self, op: Operation, message: &str) {
        self.push("Failed", op, Some(message.to_string()));
    }

    fn push(&mut self, kind: &str, op: Operation, message: Option<String>) {
        self.events.push(RecordEvent {
            r#type: kind.into(),
            operation: op.as_str().into(),
            message,
            timestamp: now_rfc3339(),
        });
        if self.events.len() > EVENTS_PER_RECORD {
            let extra = self.events.len() - EVENTS_PER_RECORD;
            self.events.drain(..extra);
        }
    }
}

/// The records of a stored object; `None` before selection.
pub fn records(obj: &Value) -> Option<Vec<Record>> {
    let list = obj["status"]["experiment"]["containerRecords"].as_array()?;
    Some(list.iter().filter_map(|r| serde_json::from_value(r.clone()).ok()).collect())
}

/// Whether the pause annotation is `"true"`.
pub fn paused(obj: &Value) -> bool {
    obj["metadata"]["annotations"][PAUSE_ANNOTATION] == "true"
}

/// The status to write: `records` is `None` before selection (and after a failed one, when
/// `select_error` says why).
pub fn build(desired_run: bool, records: Option<&[Record]>, paused: bool, select_error: Option<&str>) -> Value {
    let list = records.unwrap_or_default();
    let selected = !list.is_empty();
    let all_injected = selected && list.iter().all(Record::injected);
    let all_recovered = selected && list.iter().all(|r| r.phase == NOT_INJECTED);
    let cond = |t: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    };
    let mut experiment = json!({"desiredPhase": if desired_run { "Run" } else { "Stop" }});
    if let Some(r) = records {
        experiment["containerRecords"] = serde_json::to_value(r).unwrap_or_else(|_| json!([]));
    }
    json!({
        "experiment": experiment,
        "conditions": [
            cond("Selected", selected, select_error),
            cond("AllInjected", all_injected, None),
            cond("AllRecovered", all_recovered, None),
            cond("Paused", paused, None),
        ],
    })
}

/// Replaces the object's status with `status` by full-object update, retried on conflict;
/// stops when the object is gone or its uid changed. Returns the stored object.
pub fn write(
    api: &Api,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    uid: &str,
    status: &Value,
) -> ApiResult<Option<Arc<Value>>> {
    update_same(api, rt, ns, name, uid, Subresource::Main, |cur| {
        // Rewrite conditions that did not change in substance: skip the write.
        if cur["status"] == *status {
            return None;
        }
        let mut next = cur.clone();
        next["status"] = status.clone();
        Some(next)
    })
}

/// Writes `status` through the status subresource (kinds whose CRD has one, like ChaosBlade).
pub fn write_subresource(api: &Api, rt: &ResourceType, name: &str, uid: &str, status: &Value) -> ApiResult<()> {
    update_same(api, rt, "", name, uid, Subresource::Status, |cur| {
        (cur["status"] != *status).then(|| {
            let mut next = cur.clone();
            next["status"] = status.clone();
            next
        })
    })
    .map(|_| ())
}

/// Adds (`add`) or removes the records finalizer; answers the stored object (None if gone).
pub fn set_finalizer(
    api: &Api,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    uid: &str,
    add: bool,
) -> ApiResult<Option<Arc<Value>>> {
    set_named_finalizer(api, rt, ns, name, uid, FINALIZER, add)
}

/// Adds (`add`) or removes `finalizer`; answers the stored object (None if gone).
pub fn set_named_finalizer(
    api: &Api,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    uid: &str,
    finalizer: &str,
    add: bool,
) -> ApiResult<Option<Arc<Value>>> {
    update_same(api, rt, ns, name, uid, Subresource::Main, |cur| {
        let mut list: Vec<Value> = cur["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        let has = list.iter().any(|f| f == finalizer);
        if has == add {
            return None;
        }
        if add {
            list.push(json!(finalizer));
        } else {
            list.retain(|f| f != finalizer);
        }
        let mut next = cur.clone();
        next["metadata"]["finalizers"] = json!(list);
        Some(next)
    })
}

/// Read-modify-write of the object `uid` by full-object update, retried on conflict (at most
/// 16 times). `edit` gives the new object, or `None` when the current one is already right.
/// Answers the stored object; `None` when it is gone or its uid changed.
fn update_same(
    api: &Api,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    uid: &str,
    sub: Subresource,
    edit: impl Fn(&Value) -> Option<Value>,
) -> ApiResult<Option<Arc<Value>>> {
    let ctx = WriteCtx::controller(MANAGER);
    for _ in 0..16 {
        let cur = match api.get(rt, ns, name) {
            Ok(c) => c,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        if cur["metadata"]["uid"] != uid {
            return Ok(None);
        }
        let Some(next) = edit(&cur) else { return Ok(Some(cur)) };
        match api.update(rt, ns, name, next, sub, &ctx) {
            Ok(w) => return Ok(Some(w.object)),
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Records a core/v1 Event about chaos object `obj` (`warning` for type Warning).
pub fn event(api: &Api, obj: &Value, warning: bool, reason: &str, message: &str) {
    let meta = &obj["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or("default");
    let name = meta["name"].as_str().unwrap_or_default();
    let Ok(rt) = api.resource("", "v1", "events") else { return };
    let now = now_rfc3339();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
        "involvedObject": {
            "apiVersion": obj["apiVersion"], "kind": obj["kind"], "namespace": ns, "name": name,
            "uid": meta["uid"], "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason, "message": message, "type": if warning { "Warning" } else { "Normal" },
        "source": {"component": MANAGER},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": MANAGER, "reportingInstance": MANAGER,
    });
    if let Err(e) = api.create(&rt, ns, event, &WriteCtx::controller(MANAGER)) {
        tracing::debug!(chaos = name, reason, error = %e, "could not record a chaos event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond<'a>(status: &'a Value, t: &str) -> &'a str {
        status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap()["status"].as_str().unwrap()
    }

    #[test]
    fn conditions_follow_the_records() {
        let s = build(true, None, false, Some("no pod matches"));
        assert_eq!(cond(&s, "Selected"), "False");
        assert_eq!(cond(&s, "AllInjected"), "False");
        assert_eq!(cond(&s, "AllRecovered"), "False");
        let mut r = vec![Record::new("d/p".into(), "."), Record::new("d/q".into(), ".")];
        r[0].succeeded(Operation::Apply);
        let s = build(true, Some(&r), false, None);
        assert_eq!(
            (cond(&s, "Selected"), cond(&s, "AllInjected"), cond(&s, "AllRecovered")),
            ("True", "False", "False")
        );
        r[1].succeeded(Operation::Apply);
        let s = build(true, Some(&r), true, None);
        assert_eq!((cond(&s, "AllInjected"), cond(&s, "Paused")), ("True", "True"));
        assert_eq!(s["experiment"]["containerRecords"][1]["injectedCount"], 1);
        for x in &mut r {
            x.succeeded(Operation::Recover);
        }
        let s = build(false, Some(&r), false, None);
        assert_eq!((cond(&s, "AllInjected"), cond(&s, "AllRecovered")), ("False", "True"));
        assert_eq!(s["experiment"]["desiredPhase"], "Stop");
        assert_eq!(s["experiment"]["containerRecords"][0]["phase"], "Not Injected");
        let back: Vec<Record> = serde_json::from_value(s["experiment"]["containerRecords"].clone()).unwrap();
        assert_eq!(back, r);
    }
}
