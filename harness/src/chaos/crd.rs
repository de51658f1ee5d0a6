//! CustomResourceDefinitions of the modelled kinds, generated from the types.
//!
//! Compared with `CustomResourceExt::crd()` of the derive, these match Chaos Mesh's own CRDs:
//! no status subresource (the controller writes status with a full update), `listKind` set,
//! (ChaosBlade keeps its status subresource and cluster scope, as chaosblade-operator's CRD),
//! `apiVersion`/`kind`/`metadata` declared at the root, and no `nullable`/`title` keys. The
//! schema is structural, so an API server validates, defaults and prunes against it.
//! `deploy/crds/chaos-mesh/*.yaml` and `deploy/crds/chaosblade/` hold the output of
//! [`manifest_yaml`]; a test keeps them equal.

use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::ChaosKind;
use super::model::{ChaosBlade, NetworkChaos, PodChaos, StressChaos};

/// Directory of the committed CRD manifests, relative to the repository root (one
/// subdirectory per project, see [`file_name`]).
pub const MANIFEST_DIR: &str = "deploy/crds";

/// The CRD of `kind`.
pub fn definition(kind: ChaosKind) -> CustomResourceDefinition {
    let (mut crd, description) = match kind {
        ChaosKind::PodChaos => (PodChaos::crd(), "PodChaos kills or fails the selected pods or containers."),
        ChaosKind::NetworkChaos => (NetworkChaos::crd(), "NetworkChaos injects network faults into the selected pods."),
        ChaosKind::StressChaos => {
            (StressChaos::crd(), "StressChaos runs CPU or memory stressors in the selected containers.")
        }
        ChaosKind::ChaosBlade => {
            (ChaosBlade::crd(), "ChaosBlade runs chaosblade experiments on nodes, pods or containers.")
        }
    };
    crd.spec.names.short_names = (kind == ChaosKind::ChaosBlade).then(|| vec!["blade".to_string()]);
    crd.spec.names.list_kind = Some(format!("{}List", kind.as_str()));
    for version in &mut crd.spec.versions {
        if kind.namespaced() {
            version.subresources = None;
        }
        if let Some(v) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            let mut schema = serde_json::to_value(&*v).unwrap_or(Value::Null);
            tidy(&mut schema);
            if let Some(root) = schema.as_object_mut() {
                root.insert("description".into(), json!(description));
                let props = root.entry("properties").or_insert_with(|| json!({}));
                if let Some(props) = props.as_object_mut() {
                    props.insert(
                        "apiVersion".into(),
                        json!({"type": "string", "description": format!("APIVersion of this object: {}.", kind.api_version())}),
                    );
                    props.insert(
                        "kind".into(),
                        json!({"type": "string", "description": format!("Kind of this object: {}.", kind.as_str())}),
                    );
                    props.insert("metadata".into(), json!({"type": "object"}));
                }
            }
            if let Ok(fixed) = serde_json::from_value(schema) {
                *v = fixed;
            }
        }
    }
    crd
}

/// Installs (or updates) the three CRDs with server-side apply, as field manager `hadrill`.
/// Their resources are served once the API server reports them established.
pub async fn install(client: &kube::Client) -> anyhow::Result<()> {
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(crate::FIELD_MANAGER).force();
    for def in definitions() {
        let name = def.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&def))
            .await
            .map_err(|e| anyhow::anyhow!("installing CRD {name}: {e}"))?;
    }
    Ok(())
}

/// The CRDs, PodChaos first.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    ChaosKind::ALL.into_iter().map(definition).collect()
}

/// The `openAPIV3Schema` of `kind` as JSON (computed once).
pub fn schema(kind: ChaosKind) -> &'static Value {
    static SCHEMAS: OnceLock<Vec<Value>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        ChaosKind::ALL
            .into_iter()
            .map(|k| {
                definition(k)
                    .spec
                    .versions
                    .first()
                    .and_then(|v| v.schema.as_ref())
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or(Value::Null)
            })
            .collect()
    });
    let index = ChaosKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    &all[index]
}

/// Path of `kind`'s manifest in [`MANIFEST_DIR`]: `chaos-mesh/podchaos.yaml`,
/// `chaosblade/chaosblades.yaml`.
pub fn file_name(kind: ChaosKind) -> String {
    let project = if kind.namespaced() { "chaos-mesh" } else { "chaosblade" };
    format!("{project}/{}.yaml", kind.plural())
}

/// The manifest of `kind` as committed: a header comment and the CRD as YAML.
pub fn manifest_yaml(kind: ChaosKind) -> anyhow::Result<String> {
    let body = serde_saphyr::to_string(&definition(kind))?;
    let api = if kind.namespaced() { "the Chaos Mesh v2.8.3 API" } else { "the chaosblade-operator 1.7 API" };
    Ok(format!(
        "# {} CRD ({}, {api}).\n\
         # Generated by `hadrill crds --out-dir {MANIFEST_DIR}` from harness/src/chaos/model; do not edit.\n\
         ---\n{body}",
        kind.as_str(),
        kind.api_version()
    ))
}

/// All the manifests as one multi-document YAML stream.
pub fn all_manifests_yaml() -> anyhow::Result<String> {
    let mut out = String::new();
    for kind in ChaosKind::ALL {
        out.push_str(&manifest_yaml(kind)?);
    }
    Ok(out)
}

/// Removes what Chaos Mesh's schema does not have: `nullable` and the `null` in enums (schemars
/// marks every `Option` so) and `title` (split off doc comments).
fn tidy(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("nullable");
            map.remove("title");
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            for (key, child) in map.iter_mut() {
                // Inside `properties` the keys are field names, not schema keywords.
                if key == "properties" {
                    if let Value::Object(props) = child {
                        props.values_mut().for_each(tidy);
                    }
                } else if key != "enum" && key != "default" && key != "required" {
                    tidy(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}
