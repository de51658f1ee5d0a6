//! Applying YAML manifests with server-side apply, as `kubectl apply --server-side` does:
//! every document is resolved through API discovery and applied with the `hadrill` field
//! manager. All documents are parsed, resolved and dry-run before anything is applied, so a
//! bad file changes nothing.

use std::path::Path;

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde_json::Value;

/// Field manager hadrill applies with.
pub use crate::FIELD_MANAGER;

/// One parsed document with its source position.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based index of the document in its file.
    pub index: usize,
    /// The object.
    pub object: Value,
}

/// Parses a multi-document YAML file into objects, naming the file and document on error.
pub fn parse_manifest(path: &Path) -> anyhow::Result<Vec<Document>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading manifest {}", path.display()))?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).with_context(|| format!("{}: not valid YAML", path.display()))?;
    let mut out = Vec::new();
    for (i, obj) in docs.into_iter().enumerate() {
        if obj.is_null() {
            continue;
        }
        for field in ["apiVersion", "kind"] {
            if obj[field].as_str().is_none_or(str::is_empty) {
                bail!(
                    "{} document {}: missing `{field}` (expected e.g. apiVersion: apps/v1, kind: Deployment)",
                    path.display(),
                    i + 1
                );
            }
        }
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            bail!("{} document {}: missing `metadata.name`", path.display(), i + 1);
        }
        out.push(Document { index: i + 1, object: obj });
    }
    Ok(out)
}

/// Applies every document of `path` into `namespace` (for namespaced kinds without one).
/// Returns `kind/name` of each applied object.
pub async fn apply_file(client: &kube::Client, path: &Path, namespace: &str) -> anyhow::Result<Vec<String>> {
    let docs = parse_manifest(path)?;
    let discovery = Discovery::new(client.clone()).run().await.context("API discovery")?;
    let mut resolved = Vec::new();
    for doc in docs {
        let api_version = doc.object["apiVersion"].as_str().unwrap_or_default();
        let kind = doc.object["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = discovery.resolve_gvk(&gvk).with_context(|| {
            format!("{} document {}: the cluster does not serve {kind} in {api_version}", path.display(), doc.index)
        })?;
        let obj: DynamicObject = serde_json::from_value(doc.object.clone())
            .with_context(|| format!("{} document {}: not a Kubernetes object", path.display(), doc.index))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = obj.metadata.namespace.clone().unwrap_or_else(|| namespace.to_string());
                Api::namespaced_with(client.clone(), &ns, &ar)
            }
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        resolved.push((
            api,
            obj,
            format!("{}/{}", kind.to_lowercase(), doc.object["metadata"]["name"].as_str().unwrap_or_default()),
        ));
    }
    // A server-side dry run of every document first: an object the API server refuses stops
    // the whole file before anything is changed.
    for (api, obj, label) in &resolved {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let mut pp = PatchParams::apply(FIELD_MANAGER).force();
        pp.dry_run = true;
        api.patch(&name, &pp, &Patch::Apply(obj)).await.map_err(|e| {
            anyhow::anyhow!("{label} from {} is refused by the API server: {}", path.display(), refusal(&e))
        })?;
    }
    let mut applied = Vec::new();
    for (api, obj, label) in resolved {
        let name = obj.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
            .await
            .with_context(|| format!("applying {label} from {}", path.display()))?;
        applied.push(label);
    }
    Ok(applied)
}

/// The API server's reason for refusing a request: its Status reason, code, message and each
/// cause (field and message), as `kubectl apply` prints them.
pub fn refusal(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let mut text = format!("{} ({}): {}", status.reason, status.code, status.message);
            for cause in status.details.iter().flat_map(|d| d.causes.iter()) {
                match cause.field.as_str() {
                    "" => text.push_str(&format!("\n  - {}", cause.message)),
                    field => text.push_str(&format!("\n  - {field}: {}", cause.message)),
                }
            }
            text
        }
        other => format!("{other:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_without_kind_is_refused_with_its_position() {
        let dir = std::env::temp_dir().join(format!("hadrill-apply-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("m.yaml");
        std::fs::write(
            &f,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n",
        )
        .unwrap();
        let err = parse_manifest(&f).unwrap_err().to_string();
        assert!(err.contains("document 2") && err.contains("kind"), "{err}");
        std::fs::write(&f, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n").unwrap();
        assert_eq!(parse_manifest(&f).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
