//! Conversion between API versions that share one storage. kube-apiserver stores
//! `events.k8s.io/v1` Events and core/v1 Events as the same objects; the embedded cluster
//! stores the core/v1 form and converts field by field, so events a controller records with
//! kube-runtime's `Recorder` show up in `kubectl describe` and vice versa.

use serde_json::{Map, Value};

/// core/v1 field <-> events.k8s.io/v1 field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
];

fn convert(obj: &Value, api_version: &str, from_core: bool) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from("Event"));
    if let Some(meta) = obj.get("metadata") {
        out.insert("metadata".into(), meta.clone());
    }
    for (core, events) in EVENT_FIELDS {
        let (src, dst) = if from_core { (core, events) } else { (events, core) };
        if let Some(v) = obj.get(*src).filter(|v| !v.is_null()) {
            out.insert((*dst).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// A stored (core/v1) Event as `events.k8s.io/v1`.
pub fn event_from_storage(obj: &Value) -> Value {
    convert(obj, "events.k8s.io/v1", true)
}

/// An `events.k8s.io/v1` Event in its stored (core/v1) form.
pub fn event_to_storage(obj: &Value) -> Value {
    convert(obj, "v1", false)
}

/// How a served type maps onto another type's storage.
#[derive(Debug, Clone, Copy)]
pub struct Conversion {
    /// Storage group.
    pub storage_group: &'static str,
    /// Storage resource.
    pub storage_resource: &'static str,
    /// Stored form -> served form.
    pub from_storage: fn(&Value) -> Value,
    /// Served form -> stored form.
    pub to_storage: fn(&Value) -> Value,
}

/// `events.k8s.io/v1` Events are stored as core/v1 Events.
pub const EVENTS: Conversion = Conversion {
    storage_group: "",
    storage_resource: "events",
    from_storage: event_from_storage,
    to_storage: event_to_storage,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_versions() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
            "regarding": {"kind": "Service", "name": "dispatch"}, "note": "FailedOver: primary unhealthy",
            "reason": "FailedOver", "type": "Normal", "action": "Switch", "reportingController": "hadrill-controller",
            "reportingInstance": "c-1", "eventTime": "2026-01-01T00:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}});
        let core = event_to_storage(&v1);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "dispatch");
        assert_eq!(core["message"], "FailedOver: primary unhealthy");
        assert_eq!(core["reportingComponent"], "hadrill-controller");
        assert_eq!(event_from_storage(&core), v1);
    }
}
