//! Writing the decision to the Service: server-side apply with field manager
//! `hadrill-controller` (forced: the controller owns `spec.selector` and its status
//! annotations), then a JSON merge patch removing selector keys that another field manager
//! still owns and the active workload does not have.
//!
//! Every apply carries the full set of fields the controller owns (selector, `active`,
//! `switched-at`, `condition`), since fields left out of an apply are removed, and the
//! resourceVersion it decided from, so a decision on a stale Service is refused (409).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Map, Value, json};

use crate::annotations::{self, Condition};
use crate::workload::Side;

/// Field manager of the controller's writes.
pub const FIELD_MANAGER: &str = "hadrill-controller";

/// What the controller wants the Service to say.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// The `active` annotation (`None`: not written).
    pub active: Option<Side>,
    /// The `switched-at` annotation, verbatim (`None`: not written).
    pub switched_at: Option<String>,
    /// The `condition` annotation.
    pub condition: Condition,
}

/// Applies `desired` to the Service; returns the Service as written.
pub async fn apply(client: &Client, service: &Service, desired: &Desired) -> kube::Result<Service> {
    let ns = service.namespace().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let mut ann = Map::new();
    if let Some(active) = desired.active {
        ann.insert(annotations::ACTIVE.into(), json!(active.as_str()));
    }
    if let Some(at) = &desired.switched_at {
        ann.insert(annotations::SWITCHED_AT.into(), json!(at));
    }
    let condition = serde_json::to_string(&desired.condition).unwrap_or_default();
    ann.insert(annotations::CONDITION.into(), json!(condition));
    let body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        // The decision was made from this version of the Service: if it changed since (an
        // operator's `kubectl annotate`), the apply fails with 409 and the next reconcile
        // decides again instead of overwriting the newer intent.
        "metadata": {"name": service.name_any(), "namespace": ns, "annotations": ann,
            "resourceVersion": service.resource_version()},
        "spec": {"selector": desired.selector},
    });
    let written =
        api.patch(&service.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    let extra: Map<String, Value> = written
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .into_iter()
        .flatten()
        .filter(|(k, _)| !desired.selector.contains_key(*k))
        .map(|(k, _)| (k.clone(), Value::Null))
        .collect();
    if extra.is_empty() {
        return Ok(written);
    }
    tracing::info!(service = %service.name_any(), keys = ?extra.keys().collect::<Vec<_>>(), "removing selector keys owned by another manager");
    let patch = json!({"spec": {"selector": extra}});
    api.patch(
        &service.name_any(),
        &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
        &Patch::Merge(&patch),
    )
    .await
}
