//! The resource registry: every served resource type (built-in or from a CRD), looked up by
//! group, version and plural, as the API server's handlers and discovery need it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::builtin;

/// How objects of a type are validated on write.
#[derive(Clone)]
pub enum Validation {
    /// A built-in kind: deserialised into its k8s-openapi type.
    Builtin(builtin::Validator),
    /// A custom resource: the version's `openAPIV3Schema`.
    Schema(Arc<Value>),
    /// Stored as given.
    None,
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Validation::Builtin(_) => f.write_str("Builtin"),
            Validation::Schema(_) => f.write_str("Schema"),
            Validation::None => f.write_str("None"),
        }
    }
}

/// Where a scale subresource reads and writes replicas.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// JSON path of desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// JSON path of observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// JSON path of the label selector, e.g. `.status.selector` (CRDs) or `.spec.selector` (built-ins).
    pub label_selector: Option<String>,
}

/// A printer column of a custom resource (`additionalPrinterColumns`).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type (`string`, `integer`, `date`, ...).
    pub type_: String,
    /// Simple JSON path, e.g. `.spec.action`.
    pub json_path: String,
    /// 0 = always shown, >0 = only with `-o wide`.
    pub priority: i64,
}

/// A served resource type.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name used in paths, e.g. `deployments`.
    pub plural: String,
    /// Singular name, e.g. `deployment`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl, e.g. `deploy`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: Option<ScalePaths>,
    /// Extra subresources served by the cluster (e.g. `log`, `binding`, `eviction`).
    pub extra_subresources: Vec<&'static str>,
    /// Write validation.
    pub validation: Validation,
    /// Printer columns for custom resources.
    pub printer_columns: Vec<PrinterColumn>,
    /// The CRD that defines this type, if any.
    pub crd: Option<String>,
    /// Whether `metadata.generation` is tracked (bumped on spec change).
    pub tracks_generation: bool,
    /// Served from another type's storage, with conversion.
    pub conversion: Option<super::conversion::Conversion>,
}

impl ResourceType {
    /// `apiVersion` string: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Storage key shared by all versions of the type (and by converted types).
    pub fn group_resource(&self) -> GroupResource {
        match &self.conversion {
            Some(c) => GroupResource { group: c.storage_group.into(), resource: c.storage_resource.into() },
            None => GroupResource { group: self.group.clone(), resource: self.plural.clone() },
        }
    }

    /// A stored object as this type serves it.
    pub fn from_storage(&self, obj: &Value) -> Value {
        match &self.conversion {
            Some(c) => (c.from_storage)(obj),
            None => obj.clone(),
        }
    }

    /// Verbs served on the collection/object.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

/// Storage identity of a resource: group + plural, independent of version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::status::qualified(&self.group, &self.resource))
    }
}

/// All served types, keyed by (group, version, plural).
#[derive(Debug, Default)]
pub struct Registry {
    types: RwLock<BTreeMap<(String, String, String), Arc<ResourceType>>>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn with_builtins() -> Self {
        let r = Self::default();
        for t in builtin::types() {
            r.insert(t);
        }
        r
    }

    /// Adds or replaces a type.
    pub fn insert(&self, t: ResourceType) {
        let key = (t.group.clone(), t.version.clone(), t.plural.clone());
        self.types.write().unwrap_or_else(|p| p.into_inner()).insert(key, Arc::new(t));
    }

    /// Replaces the types served for a CRD in one step (no window where they are missing).
    pub fn replace_crd(&self, crd: &str, types: Vec<ResourceType>) {
        let mut all = self.types.write().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, t| t.crd.as_deref() != Some(crd));
        for t in types {
            all.insert((t.group.clone(), t.version.clone(), t.plural.clone()), Arc::new(t));
        }
    }

    /// Removes every type defined by the named CRD.
    pub fn remove_crd(&self, crd: &str) {
        self.types.write().unwrap_or_else(|p| p.into_inner()).retain(|_, t| t.crd.as_deref() != Some(crd));
    }

    /// Looks a type up by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let types = self.types.read().ok()?;
        types.get(&(group.to_string(), version.to_string(), plural.to_string())).cloned()
    }

    /// Any version of a group/resource (for internal controllers).
    pub fn any_version(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        let types = self.types.read().ok()?;
        types.values().find(|t| t.group == gr.group && t.plural == gr.resource).cloned()
    }

    /// Finds the type of an `apiVersion` + `kind` pair.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        let types = self.types.read().ok()?;
        types.values().find(|t| t.group == group && t.version == version && t.kind == kind).cloned()
    }

    /// Every type, sorted by group, version, plural.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.types.read().map(|t| t.values().cloned().collect()).unwrap_or_default()
    }

    /// Versions served per group, preferred first (core group is "").
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.all() {
            let versions = groups.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version priority: GA > beta > alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else { return (0, 0, 0) };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, major, 0);
    };
    (stage, major, n.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order_prefers_ga_then_beta() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn builtins_are_served() {
        let r = Registry::with_builtins();
        assert!(r.get("apps", "v1", "deployments").is_some_and(|t| t.scale.is_some()));
        assert!(r.get("", "v1", "nodes").is_some_and(|t| !t.namespaced));
        assert!(r.by_kind("coordination.k8s.io/v1", "Lease").is_some());
        assert!(r.get("", "v1", "nope").is_none());
    }
}
