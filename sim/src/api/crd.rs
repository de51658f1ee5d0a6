//! CustomResourceDefinitions: validation, the status kube-apiserver's CRD controllers write
//! (NamesAccepted, Established, acceptedNames, storedVersions) and the resource types a CRD
//! serves. Registration happens when the CRD is written, so its resources are served at once.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ops::now_rfc3339;
use super::resources::{PrinterColumn, ResourceType, ScalePaths, Validation};

/// Finalizer that holds a CRD until its custom resources are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Checks the CRD rules kube-apiserver enforces; `Err((field, message))`.
pub fn validate(crd: &Value) -> Result<(), (String, String)> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if group.is_empty() || !group.contains('.') {
        return Err(("spec.group".into(), format!("\"{group}\": should be a domain with at least one dot")));
    }
    if plural.is_empty() || plural != plural.to_lowercase() {
        return Err(("spec.names.plural".into(), format!("\"{plural}\": must be a lowercase DNS label")));
    }
    if name != format!("{plural}.{group}") {
        return Err(("metadata.name".into(), format!("\"{name}\": must be spec.names.plural+\".\"+spec.group")));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        other => {
            return Err(("spec.scope".into(), format!("{other:?}: supported values: \"Cluster\", \"Namespaced\"")));
        }
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        return Err(("spec.versions".into(), "must have exactly one version marked as storage version".into()));
    }
    let storage = versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count();
    if storage != 1 {
        return Err(("spec.versions".into(), "must have exactly one version marked as storage version".into()));
    }
    for (i, v) in versions.iter().enumerate() {
        if let Some(schema) = v.get("schema").and_then(|s| s.get("openAPIV3Schema"))
            && let Err(problems) = super::schema::check_structural(schema)
        {
            return Err((format!("spec.versions[{i}].schema.openAPIV3Schema"), problems.join("; ")));
        }
    }
    Ok(())
}

/// Adds the cleanup finalizer and initial status to a new CRD.
pub fn prepare_create(crd: &mut Value) {
    if let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        let fins = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = fins.as_array_mut()
            && !list.iter().any(|f| f == CLEANUP_FINALIZER)
        {
            list.push(json!(CLEANUP_FINALIZER));
        }
    }
    prepare_update(crd);
}

/// Recomputes the CRD status as the apiextensions controllers would.
pub fn prepare_update(crd: &mut Value) {
    let spec = crd["spec"].clone();
    let now = now_rfc3339();
    let terminating = !crd["metadata"]["deletionTimestamp"].is_null();
    let storage: Vec<Value> = spec["versions"]
        .as_array()
        .map(|vs| vs.iter().filter(|v| v["storage"].as_bool() == Some(true)).map(|v| v["name"].clone()).collect())
        .unwrap_or_default();
    let mut stored: Vec<Value> = crd["status"]["storedVersions"].as_array().cloned().unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let old_conditions = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let keep_time = |t: &str, status: &str| {
        old_conditions
            .iter()
            .find(|c| c["type"] == t && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.clone())
    };
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted", "True")}),
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established", "True")}),
    ];
    if terminating {
        conditions.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress", "lastTransitionTime": keep_time("Terminating", "True")}));
    }
    let mut accepted = spec["names"].clone();
    if let Some(a) = accepted.as_object_mut() {
        if a.get("singular").is_none_or(|s| s.as_str().is_none_or(str::is_empty)) {
            a.insert("singular".into(), json!(spec["names"]["kind"].as_str().unwrap_or_default().to_lowercase()));
        }
        a.entry("listKind")
            .or_insert_with(|| json!(format!("{}List", spec["names"]["kind"].as_str().unwrap_or_default())));
    }
    if let Some(map) = crd.as_object_mut() {
        map.insert(
            "status".into(),
            json!({"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored}),
        );
    }
}

/// Marks a CRD whose deletion was just requested, as its registry does before the finalizer
/// controller starts (apiextensions-apiserver `registry/customresourcedefinition/etcd.go`):
/// `Terminating=True`, reason `InstanceDeletionPending`.
pub fn mark_deletion_pending(crd: &mut Value) {
    prepare_update(crd);
    if let Some(conditions) = crd["status"]["conditions"].as_array_mut()
        && let Some(c) = conditions.iter_mut().find(|c| c["type"] == "Terminating")
    {
        c["reason"] = json!("InstanceDeletionPending");
        c["message"] = json!("CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon");
    }
}

/// The resource types a CRD serves (one per served version).
pub fn served_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    spec["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["served"].as_bool() != Some(false))
                .map(|v| {
                    let sub = &v["subresources"];
                    let scale = sub.get("scale").filter(|s| s.is_object()).map(|s| ScalePaths {
                        spec_replicas: s["specReplicasPath"].as_str().unwrap_or(".spec.replicas").to_string(),
                        status_replicas: s["statusReplicasPath"].as_str().unwrap_or(".status.replicas").to_string(),
                        label_selector: s["labelSelectorPath"].as_str().map(str::to_string),
                    });
                    let validation = match v.get("schema").and_then(|s| s.get("openAPIV3Schema")) {
                        Some(s) if s.is_object() => Validation::Schema(Arc::new(s.clone())),
                        _ => Validation::None,
                    };
                    let printer_columns = v["additionalPrinterColumns"]
                        .as_array()
                        .map(|cols| {
                            cols.iter()
                                .map(|c| PrinterColumn {
                                    name: c["name"].as_str().unwrap_or_default().to_string(),
                                    type_: c["type"].as_str().unwrap_or("string").to_string(),
                                    json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                                    priority: c["priority"].as_i64().unwrap_or(0),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    ResourceType {
                        group: spec["group"].as_str().unwrap_or_default().to_string(),
                        version: v["name"].as_str().unwrap_or_default().to_string(),
                        kind: kind.clone(),
                        plural: names["plural"].as_str().unwrap_or_default().to_string(),
                        singular: names["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_lowercase()),
                        namespaced: spec["scope"] == "Namespaced",
                        short_names: strings(&names["shortNames"]),
                        categories: strings(&names["categories"]),
                        status: sub.get("status").is_some_and(Value::is_object),
                        scale,
                        extra_subresources: Vec::new(),
                        validation,
                        printer_columns,
                        crd: Some(name.clone()),
                        tracks_generation: true,
                        conversion: None,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}
