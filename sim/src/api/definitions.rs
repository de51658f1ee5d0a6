//! OpenAPI schemas of the built-in kinds, as kube-apiserver publishes them in `/openapi/v2`
//! `definitions` and `/openapi/v3` `components.schemas`: generated from k8s-openapi's
//! `JsonSchema` impls (named `io.k8s.api.core.v1.Pod` like Kubernetes' own), tagged with
//! `x-kubernetes-group-version-kind`, and with the list semantics kubectl's client-side apply
//! reads (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`,
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`) from the server's own
//! [`BuiltinListTypes`] table, so that kubectl computes the same strategic merge patch the
//! server applies.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use crate::api::merge::list_types::{BuiltinListTypes, ListType, ListTypes};

/// The OpenAPI flavour of a document: where definitions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Swagger 2.0: `#/definitions/`.
    V2,
    /// OpenAPI 3.0: `#/components/schemas/`.
    V3,
}

impl Flavour {
    /// The `$ref` prefix.
    pub fn ref_prefix(self) -> &'static str {
        match self {
            Flavour::V2 => "#/definitions/",
            Flavour::V3 => "#/components/schemas/",
        }
    }
}

/// A top-level kind known to k8s-openapi.
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    name: String,
    add: fn(&mut SchemaGenerator) -> Schema,
}

fn kind<T: k8s_openapi::Resource + JsonSchema>() -> Kind {
    Kind {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        name: T::schema_name().into_owned(),
        add: |g| g.subschema_for::<T>(),
    }
}

/// Every GA kind of k8s-openapi: whatever the registry serves finds its schema by name, so a
/// kind added to the built-in table needs no change here.
fn kinds() -> Vec<Kind> {
    use k8s_openapi::api::{
        admissionregistration::v1 as adm, apps::v1 as apps, autoscaling::v1 as as1, autoscaling::v2 as as2,
        batch::v1 as batch, certificates::v1 as cert, coordination::v1 as coord, core::v1 as core,
        discovery::v1 as disc, events::v1 as ev, networking::v1 as net, node::v1 as node, policy::v1 as policy,
        rbac::v1 as rbac, scheduling::v1 as sched, storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    vec![
        kind::<core::Namespace>(),
        kind::<core::LimitRange>(),
        kind::<core::Pod>(),
        kind::<core::ResourceQuota>(),
        kind::<core::Binding>(),
        kind::<core::Node>(),
        kind::<core::PersistentVolumeClaim>(),
        kind::<core::ServiceAccount>(),
        kind::<core::Endpoints>(),
        kind::<core::Event>(),
        kind::<core::ConfigMap>(),
        kind::<core::PodTemplate>(),
        kind::<core::Secret>(),
        kind::<core::PersistentVolume>(),
        kind::<core::ReplicationController>(),
        kind::<core::Service>(),
        kind::<apps::DaemonSet>(),
        kind::<apps::Deployment>(),
        kind::<apps::StatefulSet>(),
        kind::<apps::ReplicaSet>(),
        kind::<apps::ControllerRevision>(),
        kind::<batch::Job>(),
        kind::<batch::CronJob>(),
        kind::<policy::PodDisruptionBudget>(),
        kind::<policy::Eviction>(),
        kind::<net::IngressClass>(),
        kind::<net::Ingress>(),
        kind::<net::NetworkPolicy>(),
        kind::<storage::StorageClass>(),
        kind::<storage::CSIDriver>(),
        kind::<storage::CSINode>(),
        kind::<storage::VolumeAttachment>(),
        kind::<rbac::Role>(),
        kind::<rbac::RoleBinding>(),
        kind::<rbac::ClusterRole>(),
        kind::<rbac::ClusterRoleBinding>(),
        kind::<coord::Lease>(),
        kind::<disc::EndpointSlice>(),
        kind::<ev::Event>(),
        kind::<as1::HorizontalPodAutoscaler>(),
        kind::<as1::Scale>(),
        kind::<as2::HorizontalPodAutoscaler>(),
        kind::<sched::PriorityClass>(),
        kind::<node::RuntimeClass>(),
        kind::<cert::CertificateSigningRequest>(),
        kind::<adm::ValidatingWebhookConfiguration>(),
        kind::<adm::MutatingWebhookConfiguration>(),
        kind::<apiext::CustomResourceDefinition>(),
    ]
}

/// All definitions in one flavour, generated once.
fn all(flavour: Flavour) -> &'static Map<String, Value> {
    static V2: OnceLock<Map<String, Value>> = OnceLock::new();
    static V3: OnceLock<Map<String, Value>> = OnceLock::new();
    let cell = match flavour {
        Flavour::V2 => &V2,
        Flavour::V3 => &V3,
    };
    cell.get_or_init(|| generate(flavour))
}

fn generate(flavour: Flavour) -> Map<String, Value> {
    let settings = match flavour {
        Flavour::V2 => {
            // Swagger 2.0 as Kubernetes writes it: `$ref` with sibling `description`.
            let mut settings = SchemaSettings::draft07();
            settings.transforms.clear();
            settings
        }
        Flavour::V3 => SchemaSettings::openapi3(),
    };
    let mut generator = SchemaGenerator::new(settings);
    let kinds = kinds();
    for k in &kinds {
        (k.add)(&mut generator);
    }
    let mut defs = generator.take_definitions(true);
    for k in &kinds {
        if let Some(Value::Object(def)) = defs.get_mut(&k.name) {
            def.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": k.group, "version": k.version, "kind": k.kind}]),
            );
        }
    }
    // List semantics, walked from each kind's root so that path-suffix rules apply
    // (`spec.template.spec.containers` and `spec.containers` are both container lists).
    let lists = BuiltinListTypes;
    let mut done = BTreeSet::new();
    for k in &kinds {
        annotate_lists(&mut defs, &k.name, &mut Vec::new(), &lists, flavour, &mut done);
    }
    defs
}

fn ref_target(schema: &Value, flavour: Flavour) -> Option<String> {
    let r = schema.get("$ref").or_else(|| schema.get("allOf").and_then(|a| a.get(0)).and_then(|s| s.get("$ref")))?;
    r.as_str()?.strip_prefix(flavour.ref_prefix()).map(str::to_string)
}

fn annotate_lists(
    defs: &mut Map<String, Value>,
    name: &str,
    path: &mut Vec<String>,
    lists: &BuiltinListTypes,
    flavour: Flavour,
    done: &mut BTreeSet<String>,
) {
    // A definition is annotated from the first path that reaches it, and the walk stops at
    // recursion (JSONSchemaProps).
    if !done.insert(name.to_string()) || path.len() > 12 {
        return;
    }
    let Some(props) = defs.get(name).and_then(|d| d.get("properties")).and_then(Value::as_object).cloned() else {
        return;
    };
    for (field, schema) in props {
        path.push(field.clone());
        if schema.get("type").and_then(Value::as_str) == Some("array") {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            let ext = match lists.list_type(&p) {
                ListType::Map(keys) => json!({
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": keys,
                    "x-kubernetes-patch-merge-key": keys.first(), "x-kubernetes-patch-strategy": "merge"}),
                ListType::Set => json!({"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}),
                ListType::Atomic => json!({"x-kubernetes-list-type": "atomic"}),
            };
            if let (Some(Value::Object(target)), Value::Object(ext)) =
                (defs.get_mut(name).and_then(|d| d.get_mut("properties")).and_then(|p| p.get_mut(&field)), ext)
            {
                target.extend(ext);
            }
            if let Some(item) = schema.get("items").and_then(|i| ref_target(i, flavour)) {
                annotate_lists(defs, &item, path, lists, flavour, done);
            }
        } else if let Some(target) = ref_target(&schema, flavour) {
            annotate_lists(defs, &target, path, lists, flavour, done);
        }
        path.pop();
    }
}

/// The definition name of a built-in kind, if k8s-openapi has it.
pub fn name_of(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    static NAMES: OnceLock<Vec<(String, String, String, String)>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            kinds().into_iter().map(|k| (k.group.into(), k.version.into(), k.kind.into(), k.name)).collect()
        })
        .iter()
        .find(|(g, v, k, _)| g == group && v == version && k == kind)
        .map(|(_, _, _, n)| n.as_str())
}

/// The definitions reachable from `roots` (the roots included).
pub fn closure(roots: &[&str], flavour: Flavour) -> Map<String, Value> {
    let defs = all(flavour);
    let mut out = Map::new();
    let mut todo: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(def) = defs.get(&name) else { continue };
        collect_refs(def, flavour, &mut todo);
        out.insert(name, def.clone());
    }
    out
}

fn collect_refs(v: &Value, flavour: Flavour, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(flavour.ref_prefix())) {
                out.push(r.to_string());
            }
            m.values().for_each(|x| collect_refs(x, flavour, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, flavour, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_their_gvk_and_list_semantics() {
        let defs = closure(&["io.k8s.api.apps.v1.Deployment"], Flavour::V3);
        assert_eq!(
            defs["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Container");
        let ports = &defs["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert!(defs.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        let v2 = closure(&["io.k8s.api.core.v1.Pod"], Flavour::V2);
        assert_eq!(
            v2["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
    }
}
