//! A small kustomize: renders the kustomizations under deploy/ the way `kubectl apply -k` does,
//! so the embedded cluster, the kind and k3s providers and the tests all deploy the same
//! objects from the same files without needing kubectl.
//!
//! Supported fields (anything else is refused, naming the file): `resources` (manifest files
//! inside the kustomization's directory, or directories holding a kustomization), `namespace`,
//! `images` (`name`, `newName`, `newTag`, `digest`) and `patches` given as `path:` to a strategic
//! merge patch, whose target is the object with the patch's kind, name and namespace.
//! Objects come out in the order of `resources` (the apply order), not re-sorted by kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use sim::api::merge::list_types::BuiltinListTypes;
use sim::api::merge::strategic::strategic_merge;

use super::apply::parse_manifest;

/// The file name kustomize looks for in a directory.
pub const KUSTOMIZATION: &str = "kustomization.yaml";

/// One rendered object and where it came from.
#[derive(Debug, Clone)]
pub struct RenderedObject {
    /// The object, after namespace, images and patches.
    pub object: Value,
    /// The manifest file it was read from.
    pub source: PathBuf,
    /// Its 1-based document index in that file.
    pub document: usize,
}

impl RenderedObject {
    /// `Kind namespace/name` (or `Kind name` when cluster-scoped), for messages.
    pub fn label(&self) -> String {
        let kind = self.object["kind"].as_str().unwrap_or_default();
        let name = self.object["metadata"]["name"].as_str().unwrap_or_default();
        match self.object["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        }
    }

    /// Container images of the object's pod template (or pod), init containers included.
    pub fn images(&self) -> Vec<String> {
        let mut out = Vec::new();
        for spec in pod_specs(&self.object) {
            for list in ["initContainers", "containers"] {
                for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(i) = c["image"].as_str() {
                        out.push(i.to_string());
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    #[serde(rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(rename = "kind")]
    _kind: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    namespace: Option<String>,
    #[serde(default)]
    images: Vec<ImageOverride>,
    #[serde(default)]
    patches: Vec<PatchRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImageOverride {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRef {
    path: String,
}

/// Kinds that have no namespace (the ones a deploy/ manifest may contain).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Renders the kustomization in `dir`.
pub fn render(dir: &Path) -> anyhow::Result<Vec<RenderedObject>> {
    render_dir(dir, &mut Vec::new())
}

/// The rendered objects as one multi-document YAML text (for `apply_file` or a human).
pub fn to_yaml(objects: &[RenderedObject]) -> anyhow::Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&o.object).with_context(|| format!("writing {} as YAML", o.label()))?);
    }
    Ok(out)
}

/// Renders the kustomization in `dir` and applies the result with
/// [`apply_file`](super::apply::apply_file) (server-side apply, each batch dry-run first, so a
/// refused object changes nothing of its batch). Namespaces and CRDs go first, as their own
/// batch, because the other objects cannot even be dry-run before their namespace or type
/// exists. Returns `kind/name` of each applied object.
pub async fn apply(client: &kube::Client, dir: &Path, namespace: &str) -> anyhow::Result<Vec<String>> {
    let objects = render(dir)?;
    let (first, rest): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| matches!(o.object["kind"].as_str(), Some("Namespace" | "CustomResourceDefinition")));
    let mut applied = Vec::new();
    for batch in [first, rest] {
        if batch.is_empty() {
            continue;
        }
        let file = std::env::temp_dir().join(format!("hadrill-kustomize-{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, to_yaml(&batch)?).with_context(|| format!("writing {}", file.display()))?;
        let result = super::apply::apply_file(client, &file, namespace)
            .await
            .with_context(|| format!("applying the kustomization {}", dir.display()));
        let _ = std::fs::remove_file(&file);
        applied.extend(result?);
    }
    Ok(applied)
}

fn render_dir(dir: &Path, stack: &mut Vec<PathBuf>) -> anyhow::Result<Vec<RenderedObject>> {
    let file = dir.join(KUSTOMIZATION);
    let canonical = dir.canonicalize().with_context(|| format!("kustomization directory {}", dir.display()))?;
    if stack.contains(&canonical) {
        bail!("{}: the kustomization includes itself (through {:?})", file.display(), stack);
    }
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let k: Kustomization = serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    stack.push(canonical.clone());
    let mut objects = Vec::new();
    for (i, entry) in k.resources.iter().enumerate() {
        let at = || format!("{}: resources[{i}] {entry:?}", file.display());
        let path = dir.join(entry);
        if path.is_dir() {
            if !path.join(KUSTOMIZATION).is_file() {
                bail!("{}: the directory has no {KUSTOMIZATION}", at());
            }
            objects.extend(render_dir(&path, stack)?);
        } else if path.is_file() {
            // kustomize's default load restriction: files must be inside the kustomization root.
            let real = path.canonicalize().with_context(at)?;
            if !real.starts_with(&canonical) {
                bail!("{}: a file outside the kustomization's directory (reference its directory instead)", at());
            }
            for doc in parse_manifest(&path)? {
                objects.push(RenderedObject { object: doc.object, source: path.clone(), document: doc.index });
            }
        } else {
            bail!("{}: no such file or directory", at());
        }
    }
    stack.pop();
    if let Some(ns) = &k.namespace {
        for o in &mut objects {
            let kind = o.object["kind"].as_str().unwrap_or_default();
            if !CLUSTER_SCOPED.contains(&kind) {
                o.object["metadata"]["namespace"] = Value::String(ns.clone());
            }
        }
    }
    for (i, img) in k.images.iter().enumerate() {
        let mut used = false;
        for o in &mut objects {
            used |= override_image(&mut o.object, img);
        }
        if !used {
            bail!("{}: images[{i}] {:?} matches no container image", file.display(), img.name);
        }
    }
    for (i, p) in k.patches.iter().enumerate() {
        let path = dir.join(&p.path);
        let at = format!("{}: patches[{i}] {:?}", file.display(), p.path);
        let docs = parse_manifest(&path).with_context(|| at.clone())?;
        for doc in docs {
            apply_patch(&mut objects, &doc.object).with_context(|| format!("{at} document {}", doc.index))?;
        }
    }
    check_unique(&objects, &file)?;
    Ok(objects)
}

fn apply_patch(objects: &mut [RenderedObject], patch: &Value) -> anyhow::Result<()> {
    let key = |v: &Value| {
        (
            v["apiVersion"].as_str().unwrap_or_default().to_string(),
            v["kind"].as_str().unwrap_or_default().to_string(),
            v["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        )
    };
    let want = key(patch);
    let want_ns = patch["metadata"]["namespace"].as_str();
    let target = objects.iter_mut().find(|o| {
        key(&o.object) == want && want_ns.is_none_or(|ns| o.object["metadata"]["namespace"].as_str() == Some(ns))
    });
    let Some(target) = target else {
        bail!("the patch's target {} {} {} matches no resource", want.0, want.1, want.2);
    };
    target.object = strategic_merge(&target.object, patch, &BuiltinListTypes)
        .map_err(|e| anyhow::anyhow!("patching {}: {e}", target.label()))?;
    Ok(())
}

/// Applies an `images:` entry to every matching container; true when one matched.
fn override_image(object: &mut Value, img: &ImageOverride) -> bool {
    let mut used = false;
    for spec in pod_specs_mut(object) {
        for list in ["initContainers", "containers"] {
            // `get_mut`, not indexing: indexing a missing key would insert a null.
            for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                let Some(current) = c["image"].as_str() else { continue };
                let (name, tag, digest) = split_image(current);
                if name != img.name {
                    continue;
                }
                used = true;
                let name = img.new_name.as_deref().unwrap_or(name);
                let image = match (&img.digest, &img.new_tag, digest, tag) {
                    (Some(d), _, _, _) => format!("{name}@{d}"),
                    (None, Some(t), _, _) => format!("{name}:{t}"),
                    (None, None, Some(d), _) => format!("{name}@{d}"),
                    (None, None, None, Some(t)) => format!("{name}:{t}"),
                    (None, None, None, None) => name.to_string(),
                };
                c["image"] = Value::String(image);
            }
        }
    }
    used
}

/// Splits `repo[:tag][@digest]` (a registry port's colon is not a tag).
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

const POD_SPEC_PATHS: &[&[&str]] =
    &[&["spec"], &["spec", "template", "spec"], &["spec", "jobTemplate", "spec", "template", "spec"]];

fn is_pod_spec(v: &Value) -> bool {
    v.get("containers").is_some_and(Value::is_array)
}

fn pod_specs(object: &Value) -> Vec<&Value> {
    POD_SPEC_PATHS
        .iter()
        .filter_map(|p| p.iter().try_fold(object, |v, k| v.get(*k)))
        .filter(|v| is_pod_spec(v))
        .collect()
}

fn pod_specs_mut(object: &mut Value) -> Vec<&mut Value> {
    // At most one of the paths is a pod spec, so take the first that is.
    let Some(path) =
        POD_SPEC_PATHS.iter().find(|p| p.iter().try_fold(&*object, |v, k| v.get(*k)).is_some_and(is_pod_spec))
    else {
        return Vec::new();
    };
    let mut v = object;
    for k in path.iter() {
        match v.get_mut(*k) {
            Some(next) => v = next,
            None => return Vec::new(),
        }
    }
    vec![v]
}

fn check_unique(objects: &[RenderedObject], file: &Path) -> anyhow::Result<()> {
    let mut seen: BTreeMap<String, &RenderedObject> = BTreeMap::new();
    for o in objects {
        let id = format!("{} {}", o.object["apiVersion"].as_str().unwrap_or_default(), o.label());
        if let Some(first) = seen.insert(id.clone(), o) {
            bail!(
                "{}: {id} is defined twice ({} document {} and {} document {})",
                file.display(),
                first.source.display(),
                first.document,
                o.source.display(),
                o.document
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Self {
            let d = std::env::temp_dir().join(format!("hadrill-kustomize-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).expect("temp dir");
            Dir(d)
        }
        fn write(&self, rel: &str, text: &str) -> &Self {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
            self
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n        - {name: web, image: 'acme/web:1', args: [a]}\n        - {name: side, image: 'localhost:5000/acme/side'}\n";

    #[test]
    fn images_namespace_and_patches_apply_in_resource_order() {
        let d = Dir::new("ok");
        d.write("base/kustomization.yaml", "resources: [ns.yaml, deploy.yaml]\n")
            .write("base/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
            .write("base/deploy.yaml", DEPLOY)
            .write(
                "over/kustomization.yaml",
                "resources: [../base]\nnamespace: shop\nimages:\n  - {name: acme/web, newTag: '2'}\n  - {name: localhost:5000/acme/side, newName: acme/side, digest: 'sha256:ab'}\npatches:\n  - path: p.yaml\n",
            )
            .write(
                "over/p.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: web, args: [b]}\n",
            );
        let out = render(&d.0.join("over")).expect("renders");
        let labels: Vec<_> = out.iter().map(RenderedObject::label).collect();
        assert_eq!(labels, ["Namespace shop", "Deployment shop/web"]);
        assert_eq!(out[1].images(), ["acme/web:2", "acme/side@sha256:ab"]);
        // The patch merged the container by name: args replaced, image kept.
        assert_eq!(out[1].object["spec"]["template"]["spec"]["containers"][0]["args"], serde_json::json!(["b"]));
        assert!(to_yaml(&out).expect("yaml").contains("image: acme/web:2"));
    }

    #[test]
    fn errors_name_the_file_and_the_entry() {
        let d = Dir::new("bad");
        d.write("a/kustomization.yaml", "resources: [missing.yaml]\n");
        let err = format!("{:#}", render(&d.0.join("a")).expect_err("missing file"));
        assert!(err.contains("kustomization.yaml: resources[0] \"missing.yaml\": no such file"), "{err}");

        d.write("b/kustomization.yaml", "resources: []\ncommonLabels: {a: b}\n");
        let err = format!("{:#}", render(&d.0.join("b")).expect_err("unsupported field"));
        assert!(err.contains("commonLabels"), "{err}");

        d.write("c/kustomization.yaml", "resources: [d.yaml]\nimages: [{name: acme/nothing, newTag: x}]\n")
            .write("c/d.yaml", DEPLOY);
        let err = format!("{:#}", render(&d.0.join("c")).expect_err("unused image"));
        assert!(err.contains("images[0] \"acme/nothing\" matches no container image"), "{err}");

        d.write("e/kustomization.yaml", "resources: [../c/d.yaml]\n");
        let err = format!("{:#}", render(&d.0.join("e")).expect_err("outside the root"));
        assert!(err.contains("outside the kustomization's directory"), "{err}");

        d.write("f/kustomization.yaml", "resources: [d.yaml, d2.yaml]\n")
            .write("f/d.yaml", DEPLOY)
            .write("f/d2.yaml", DEPLOY);
        let err = format!("{:#}", render(&d.0.join("f")).expect_err("duplicate"));
        assert!(err.contains("defined twice"), "{err}");

        d.write("g/kustomization.yaml", "resources: [d.yaml]\npatches: [{path: p.yaml}]\n")
            .write("g/d.yaml", DEPLOY)
            .write("g/p.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\nspec: {}\n");
        let err = format!("{:#}", render(&d.0.join("g")).expect_err("no target"));
        assert!(err.contains("patches[0]") && err.contains("matches no resource"), "{err}");
    }

    #[test]
    fn image_references_split_at_tag_and_digest_not_at_a_port() {
        assert_eq!(split_image("hadrill/controller:dev"), ("hadrill/controller", Some("dev"), None));
        assert_eq!(split_image("localhost:5000/a/b"), ("localhost:5000/a/b", None, None));
        assert_eq!(split_image("r:1/a:2@sha256:x"), ("r:1/a", Some("2"), Some("sha256:x")));
    }
}
