//! The built-in kinds the embedded API server serves, and their validation by
//! deserialising into the k8s-openapi types (a body that does not fit is 422 naming the field;
//! fields the type does not know are reported so `fieldValidation` can prune, warn or refuse).

use k8s_openapi::api::{admissionregistration, apps, batch, coordination, core, discovery, events, policy, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::resources::{ResourceType, ScalePaths, Validation};
use super::status::Cause;

/// Result of validating a built-in object.
#[derive(Debug)]
pub struct Typed {
    /// The object as the typed model re-serialises it (unknown fields dropped).
    pub pruned: Value,
    /// Paths of fields the type does not know, e.g. `spec.replica`.
    pub unknown: Vec<String>,
}

/// Validates one built-in object.
pub type Validator = fn(&Value) -> Result<Typed, Vec<Cause>>;

/// Deserialises `value` into `T`, reporting the failing field path, then re-serialises it.
pub fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Typed, Vec<Cause>> {
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| vec![cause_of(&e)])?;
    let pruned = serde_json::to_value(&parsed).map_err(|e| {
        vec![Cause { reason: "FieldValueInvalid".into(), field: String::new(), message: e.to_string() }]
    })?;
    let mut unknown = Vec::new();
    unknown_fields(value, &pruned, String::new(), &mut unknown);
    Ok(Typed { pruned, unknown })
}

fn cause_of(e: &serde_path_to_error::Error<serde_json::Error>) -> Cause {
    let mut field = e.path().to_string();
    if field == "." {
        field.clear();
    }
    let inner = e.inner().to_string();
    // serde reports a missing field at its parent: name the field itself, as Kubernetes does.
    if let Some(missing) = inner.strip_prefix("missing field `").and_then(|s| s.split('`').next()) {
        let field = if field.is_empty() { missing.to_string() } else { format!("{field}.{missing}") };
        return Cause { reason: "FieldValueRequired".into(), field, message: "Required value".into() };
    }
    let reason = if inner.starts_with("invalid type") { "FieldValueTypeInvalid" } else { "FieldValueInvalid" };
    Cause { reason: reason.into(), field, message: format!("Invalid value: {inner}") }
}

/// Collects fields present (and non-null) in `input` but dropped by the typed round-trip.
fn unknown_fields(input: &Value, typed: &Value, path: String, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match t.get(k) {
                    Some(tv) => unknown_fields(v, tv, p, out),
                    None if !v.is_null() && !is_empty_container(v) => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t.iter()).enumerate() {
                unknown_fields(iv, tv, format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

struct Spec {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    extra: &'static [&'static str],
    generation: bool,
    validator: Validator,
}

fn build(s: Spec) -> ResourceType {
    let all = matches!(
        s.plural,
        "pods"
            | "services"
            | "deployments"
            | "replicasets"
            | "statefulsets"
            | "daemonsets"
            | "replicationcontrollers"
            | "jobs"
            | "cronjobs"
    );
    ResourceType {
        group: s.group.into(),
        version: s.version.into(),
        kind: s.kind.into(),
        plural: s.plural.into(),
        singular: s.kind.to_lowercase(),
        namespaced: s.namespaced,
        short_names: s.short.iter().map(|x| x.to_string()).collect(),
        categories: if all { vec!["all".into()] } else { vec![] },
        status: s.status,
        scale: s.scale.then(|| ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".spec.selector".into()),
        }),
        extra_subresources: s.extra.to_vec(),
        validation: Validation::Builtin(s.validator),
        printer_columns: Vec::new(),
        crd: None,
        tracks_generation: s.generation,
        conversion: (s.group == "events.k8s.io").then_some(super::conversion::EVENTS),
    }
}

/// Every built-in type served by the embedded cluster.
pub fn types() -> Vec<ResourceType> {
    let ns = true;
    let cluster = false;
    vec![
        build(Spec {
            group: "",
            version: "v1",
            kind: "Namespace",
            plural: "namespaces",
            namespaced: cluster,
            short: &["ns"],
            status: true,
            scale: false,
            extra: &["finalize"],
            generation: false,
            validator: typed::<core::v1::Namespace>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "Pod",
            plural: "pods",
            namespaced: ns,
            short: &["po"],
            status: true,
            scale: false,
            extra: &["log", "binding", "eviction", "proxy", "exec", "attach", "portforward"],
            generation: true,
            validator: typed::<core::v1::Pod>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "Service",
            plural: "services",
            namespaced: ns,
            short: &["svc"],
            status: true,
            scale: false,
            extra: &["proxy"],
            generation: false,
            validator: typed::<core::v1::Service>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "Endpoints",
            plural: "endpoints",
            namespaced: ns,
            short: &["ep"],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<core::v1::Endpoints>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "Node",
            plural: "nodes",
            namespaced: cluster,
            short: &["no"],
            status: true,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<core::v1::Node>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "Event",
            plural: "events",
            namespaced: ns,
            short: &["ev"],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<core::v1::Event>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "ConfigMap",
            plural: "configmaps",
            namespaced: ns,
            short: &["cm"],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<core::v1::ConfigMap>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "Secret",
            plural: "secrets",
            namespaced: ns,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<core::v1::Secret>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "ServiceAccount",
            plural: "serviceaccounts",
            namespaced: ns,
            short: &["sa"],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<core::v1::ServiceAccount>,
        }),
        build(Spec {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            plural: "deployments",
            namespaced: ns,
            short: &["deploy"],
            status: true,
            scale: true,
            extra: &[],
            generation: true,
            validator: typed::<apps::v1::Deployment>,
        }),
        build(Spec {
            group: "apps",
            version: "v1",
            kind: "ReplicaSet",
            plural: "replicasets",
            namespaced: ns,
            short: &["rs"],
            status: true,
            scale: true,
            extra: &[],
            generation: true,
            validator: typed::<apps::v1::ReplicaSet>,
        }),
        build(Spec {
            group: "apps",
            version: "v1",
            kind: "StatefulSet",
            plural: "statefulsets",
            namespaced: ns,
            short: &["sts"],
            status: true,
            scale: true,
            extra: &[],
            generation: true,
            validator: typed::<apps::v1::StatefulSet>,
        }),
        build(Spec {
            group: "apps",
            version: "v1",
            kind: "DaemonSet",
            plural: "daemonsets",
            namespaced: ns,
            short: &["ds"],
            status: true,
            scale: false,
            extra: &[],
            generation: true,
            validator: typed::<apps::v1::DaemonSet>,
        }),
        build(Spec {
            group: "apps",
            version: "v1",
            kind: "ControllerRevision",
            plural: "controllerrevisions",
            namespaced: ns,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<apps::v1::ControllerRevision>,
        }),
        build(Spec {
            group: "coordination.k8s.io",
            version: "v1",
            kind: "Lease",
            plural: "leases",
            namespaced: ns,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<coordination::v1::Lease>,
        }),
        build(Spec {
            group: "discovery.k8s.io",
            version: "v1",
            kind: "EndpointSlice",
            plural: "endpointslices",
            namespaced: ns,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<discovery::v1::EndpointSlice>,
        }),
        build(Spec {
            group: "events.k8s.io",
            version: "v1",
            kind: "Event",
            plural: "events",
            namespaced: ns,
            short: &["ev"],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<events::v1::Event>,
        }),
        build(Spec {
            group: "rbac.authorization.k8s.io",
            version: "v1",
            kind: "Role",
            plural: "roles",
            namespaced: ns,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<rbac::v1::Role>,
        }),
        build(Spec {
            group: "rbac.authorization.k8s.io",
            version: "v1",
            kind: "RoleBinding",
            plural: "rolebindings",
            namespaced: ns,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<rbac::v1::RoleBinding>,
        }),
        build(Spec {
            group: "rbac.authorization.k8s.io",
            version: "v1",
            kind: "ClusterRole",
            plural: "clusterroles",
            namespaced: cluster,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<rbac::v1::ClusterRole>,
        }),
        build(Spec {
            group: "rbac.authorization.k8s.io",
            version: "v1",
            kind: "ClusterRoleBinding",
            plural: "clusterrolebindings",
            namespaced: cluster,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<rbac::v1::ClusterRoleBinding>,
        }),
        build(Spec {
            group: "",
            version: "v1",
            kind: "ReplicationController",
            plural: "replicationcontrollers",
            namespaced: ns,
            short: &["rc"],
            status: true,
            scale: true,
            extra: &[],
            generation: true,
            validator: typed::<core::v1::ReplicationController>,
        }),
        build(Spec {
            group: "batch",
            version: "v1",
            kind: "Job",
            plural: "jobs",
            namespaced: ns,
            short: &[],
            status: true,
            scale: false,
            extra: &[],
            generation: true,
            validator: typed::<batch::v1::Job>,
        }),
        build(Spec {
            group: "batch",
            version: "v1",
            kind: "CronJob",
            plural: "cronjobs",
            namespaced: ns,
            short: &["cj"],
            status: true,
            scale: false,
            extra: &[],
            generation: true,
            validator: typed::<batch::v1::CronJob>,
        }),
        build(Spec {
            group: "policy",
            version: "v1",
            kind: "PodDisruptionBudget",
            plural: "poddisruptionbudgets",
            namespaced: ns,
            short: &["pdb"],
            status: true,
            scale: false,
            extra: &[],
            generation: true,
            validator: typed::<policy::v1::PodDisruptionBudget>,
        }),
        build(Spec {
            group: "apiregistration.k8s.io",
            version: "v1",
            kind: "APIService",
            plural: "apiservices",
            namespaced: cluster,
            short: &[],
            status: true,
            scale: false,
            extra: &[],
            generation: false,
            validator: typed::<APIService>,
        }),
        build(Spec {
            group: "admissionregistration.k8s.io",
            version: "v1",
            kind: "ValidatingWebhookConfiguration",
            plural: "validatingwebhookconfigurations",
            namespaced: cluster,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: true,
            validator: typed::<admissionregistration::v1::ValidatingWebhookConfiguration>,
        }),
        build(Spec {
            group: "admissionregistration.k8s.io",
            version: "v1",
            kind: "MutatingWebhookConfiguration",
            plural: "mutatingwebhookconfigurations",
            namespaced: cluster,
            short: &[],
            status: false,
            scale: false,
            extra: &[],
            generation: true,
            validator: typed::<admissionregistration::v1::MutatingWebhookConfiguration>,
        }),
        build(Spec {
            group: "apiextensions.k8s.io",
            version: "v1",
            kind: "CustomResourceDefinition",
            plural: "customresourcedefinitions",
            namespaced: cluster,
            short: &["crd", "crds"],
            status: true,
            scale: false,
            extra: &[],
            generation: true,
            validator: typed::<CustomResourceDefinition>,
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_error_names_the_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": "eighty"}]}]}});
        let err = typed::<core::v1::Pod>(&pod).unwrap_err();
        assert_eq!(err[0].field, "spec.containers[0].ports[0].containerPort");
        assert_eq!(err[0].reason, "FieldValueTypeInvalid");
    }

    #[test]
    fn unknown_fields_are_reported_and_pruned() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labelz": {"a": "b"}},
            "data": {"k": "v"}, "extra": 1, "nothing": null});
        let t = typed::<core::v1::ConfigMap>(&cm).unwrap();
        assert_eq!(t.unknown, vec!["extra".to_string(), "metadata.labelz".to_string()]);
        assert!(t.pruned.get("extra").is_none());
        assert_eq!(t.pruned["data"]["k"], "v");
    }
}
