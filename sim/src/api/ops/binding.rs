//! `pods/binding`: how a scheduler assigns a pod to a node. The pod's `spec.nodeName` is set
//! once (409 if it is already bound) and its `PodScheduled` condition becomes True.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Api, now_rfc3339};
use crate::api::resources::GroupResource;
use crate::api::status::{ApiError, ApiResult};
use crate::api::store::Mutation;

impl Api {
    /// Binds pod `namespace/name` to `node`.
    pub fn bind(&self, namespace: &str, name: &str, node: &str) -> ApiResult<Arc<Value>> {
        if node.is_empty() {
            return Err(ApiError::invalid_field(
                "Binding",
                name,
                "",
                "FieldValueRequired",
                "target.name",
                "Required value",
            ));
        }
        let gr = GroupResource { group: String::new(), resource: "pods".into() };
        let committed = self.store.mutate(&gr, namespace, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found("", "pods", name))?;
            if !cur["metadata"]["deletionTimestamp"].is_null() {
                return Err(ApiError::conflict("", "pods", name, "pod is being deleted, cannot be assigned to a host"));
            }
            if let Some(bound) = cur["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict("", "pods", name, &format!("pod {name} is already assigned to node \"{bound}\"")));
            }
            let mut pod = (**cur).clone();
            pod["spec"]["nodeName"] = json!(node);
            let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
            pod["status"]["conditions"] = Value::Array(conditions);
            Ok(Mutation::Update(pod))
        })?;
        Ok(committed.object)
    }
}
