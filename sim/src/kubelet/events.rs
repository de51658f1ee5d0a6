//! core/v1 Events about pods, as the kubelet records them (`source.component: kubelet`,
//! `source.host: <node>`, `reportingComponent: kubelet`, `reportingInstance: <node>`). A repeat
//! of the same event (same object, container, type, reason and message) bumps `count` and
//! `lastTimestamp` of the existing Event, like client-go's event correlator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::api::ops::{Api, WriteCtx, now_rfc3339};

/// Manager name of the kubelet's writes.
pub const KUBELET: &str = "kubelet";

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Records events for one node.
#[derive(Debug)]
pub struct Recorder {
    api: Arc<Api>,
    node: String,
    seen: Mutex<HashMap<String, String>>,
}

impl Recorder {
    /// A recorder for `node`.
    pub fn new(api: Arc<Api>, node: &str) -> Self {
        Self { api, node: node.to_string(), seen: Mutex::new(HashMap::new()) }
    }

    /// Records an event about `pod` (and the container at `field_path`, e.g.
    /// `spec.containers{web}`, if given).
    pub fn pod(&self, pod: &Value, field_path: Option<&str>, kind: EventType, reason: &str, message: &str) {
        let meta = &pod["metadata"];
        let ns = meta["namespace"].as_str().unwrap_or("default");
        let pod_name = meta["name"].as_str().unwrap_or_default();
        let uid = meta["uid"].as_str().unwrap_or_default();
        let key = format!("{uid}\0{}\0{}\0{reason}\0{message}", field_path.unwrap_or(""), kind.as_str());
        let Ok(rt) = self.api.resource("", "v1", "events") else { return };
        let now = now_rfc3339();
        let existing = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        if let Some(name) = existing {
            let mut bumped = false;
            let result = crate::controllers::modify(&self.api, &rt, ns, &name, KUBELET, |e| {
                let count = e["count"].as_i64().unwrap_or(1);
                e["count"] = json!(count + 1);
                e["lastTimestamp"] = json!(now);
                bumped = true;
                true
            });
            if result.is_ok() && bumped {
                return;
            }
        }
        let mut involved = json!({"kind": "Pod", "namespace": ns, "name": pod_name, "uid": uid, "apiVersion": "v1",
            "resourceVersion": meta["resourceVersion"]});
        if let Some(fp) = &field_path {
            involved["fieldPath"] = json!(fp);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("{pod_name}.{nanos:x}");
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": kind.as_str(),
            "source": {"component": KUBELET, "host": self.node},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "eventTime": null,
            "reportingComponent": KUBELET, "reportingInstance": self.node,
        });
        match self.api.create(&rt, ns, event, &WriteCtx::controller(KUBELET)) {
            Ok(_) => {
                self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key, name);
            }
            Err(e) => tracing::debug!(pod = pod_name, reason, error = %e, "could not record an event"),
        }
    }

    /// Forgets the correlation state of a pod that is gone.
    pub fn forget_pod(&self, uid: &str) {
        let prefix = format!("{uid}\0");
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| !k.starts_with(&prefix));
    }
}
