//! How lists merge: the list semantics shared by strategic merge patch
//! ([`super::strategic`]) and server-side apply ([`super::apply`]).
//!
//! Kubernetes attaches merge semantics to every list field of its schema:
//!
//! * `atomic` lists are replaced whole by whoever writes them;
//! * `set` lists hold scalars and merge as a union (e.g. `metadata.finalizers`);
//! * `map` lists (associative lists) hold objects identified by one or more key
//!   fields (e.g. containers by `name`) and merge element by element.
//!
//! A list is addressed by its *path*: the field names from the object root with
//! list indices omitted, e.g. `["spec", "template", "spec", "containers"]`.
//! Keys of plain maps (labels, annotations, `data`) appear in the path as if
//! they were field names.
//!
//! Two implementations are provided:
//!
//! * [`BuiltinListTypes`]: a hand-written table for the Kubernetes built-in
//!   kinds this project serves. It matches by path *suffix*, so a `PodSpec`
//!   is recognised under `pod.spec`, `deployment.spec.template.spec`,
//!   `cronjob.spec.jobTemplate.spec.template.spec`, and so on.
//! * [`SchemaListTypes`]: reads a CRD `openAPIV3Schema`, honouring
//!   `x-kubernetes-list-type` and `x-kubernetes-list-map-keys` (default
//!   `atomic`, as in Kubernetes), and falls back to the built-in table for
//!   `metadata` (CRD schemas do not describe `ObjectMeta`).
//!
//! Simplifications compared with Kubernetes:
//!
//! * The built-in table covers the commonly patched lists (see
//!   [`BuiltinListTypes`]); every other built-in list is treated as atomic,
//!   where Kubernetes may know a finer type.
//! * The strategic-merge-patch merge key is derived from the first map key
//!   ([`ListTypes::strategic_merge_key`]). For the built-in table this gives the
//!   real `patchMergeKey` (`containerPort` for container ports, `port` for
//!   service ports, `topologyKey` for topology spread constraints, ...).
//!   Lists that Kubernetes merges by key in one mechanism but not the other are
//!   not distinguished.
//! * Only lists carry semantics: every object (struct or map) is granular,
//!   i.e. `+structType=atomic` / `x-kubernetes-map-type: atomic` are ignored.

use serde_json::Value;

/// How a list field merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole on every write; owned as a single field by apply.
    Atomic,
    /// A list of distinct scalars merged as a union; each value is owned on
    /// its own by apply (`v:<json>` in `FieldsV1`).
    Set,
    /// An associative list of objects identified by the given key fields,
    /// e.g. `["name"]` or `["containerPort", "protocol"]`; elements are merged
    /// and owned one by one (`k:{...}` in `FieldsV1`).
    Map(Vec<String>),
}

/// Source of list semantics for a kind of object.
pub trait ListTypes {
    /// The type of the list at `path` (field names from the object root, list
    /// indices omitted, e.g. `["spec", "template", "spec", "containers"]`).
    fn list_type(&self, path: &[&str]) -> ListType;

    /// The strategic-merge-patch merge key (`patchMergeKey`) of the list at
    /// `path`, or `None` when the list is not merged by key.
    ///
    /// The default derives it from [`ListTypes::list_type`]: the first key of a
    /// [`ListType::Map`]. This matches Kubernetes for the built-in table.
    fn strategic_merge_key(&self, path: &[&str]) -> Option<String> {
        match self.list_type(path) {
            ListType::Map(keys) => keys.into_iter().next(),
            ListType::Atomic | ListType::Set => None,
        }
    }

    /// The value a map-list key field takes when an element omits it (e.g.
    /// `protocol` defaults to `"TCP"` for ports), or `None` when it has no
    /// default. Used by server-side apply to identify elements.
    fn map_key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        let _ = (path, key);
        None
    }
}

/// List semantics of the Kubernetes built-in kinds, matched by path suffix.
///
/// | path (suffix)                                         | type                                       |
/// |-------------------------------------------------------|--------------------------------------------|
/// | `metadata.ownerReferences`                            | map, key `uid`                             |
/// | `metadata.finalizers`                                 | set                                        |
/// | `status.conditions`                                   | map, key `type`                            |
/// | `spec.{containers,initContainers,ephemeralContainers}`| map, key `name`                            |
/// | `spec.{volumes,imagePullSecrets,resourceClaims,schedulingGates}` | map, key `name`                 |
/// | `spec.hostAliases`                                    | map, key `ip`                              |
/// | `spec.topologySpreadConstraints`                      | map, keys `topologyKey`, `whenUnsatisfiable` |
/// | `spec.tolerations`                                    | atomic                                     |
/// | `<containers>.env`                                    | map, key `name`                            |
/// | `<containers>.envFrom`                                | atomic                                     |
/// | `<containers>.ports`                                  | map, keys `containerPort`, `protocol`      |
/// | `<containers>.volumeMounts`                           | map, key `mountPath`                       |
/// | `<containers>.volumeDevices`                          | map, key `devicePath`                      |
/// | `<containers>.resources.claims`                       | map, key `name`                            |
/// | `spec.ports` (exact path: Service)                    | map, keys `port`, `protocol`               |
/// | anything else                                         | atomic                                     |
///
/// `<containers>` stands for any of `containers`, `initContainers`,
/// `ephemeralContainers`. The `protocol` key of ports defaults to `"TCP"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinListTypes;

/// Field names that hold a list of containers in a `PodSpec`.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

fn map_of(keys: &[&str]) -> ListType {
    ListType::Map(keys.iter().map(|k| (*k).to_string()).collect())
}

/// True when `path` is the `ports` list of a container or of a Service.
fn is_ports_list(path: &[&str]) -> bool {
    match path {
        ["spec", "ports"] => true,
        [.., parent, "ports"] => CONTAINER_LISTS.contains(parent),
        _ => false,
    }
}

impl ListTypes for BuiltinListTypes {
    fn list_type(&self, path: &[&str]) -> ListType {
        // Exact paths first.
        if path == ["spec", "ports"] {
            return map_of(&["port", "protocol"]);
        }
        match path {
            [.., "metadata", "ownerReferences"] => map_of(&["uid"]),
            [.., "metadata", "finalizers"] => ListType::Set,
            [.., "status", "conditions"] => map_of(&["type"]),
            [.., container, "resources", "claims"] if CONTAINER_LISTS.contains(container) => map_of(&["name"]),
            [.., container, field] if CONTAINER_LISTS.contains(container) => match *field {
                "env" => map_of(&["name"]),
                "ports" => map_of(&["containerPort", "protocol"]),
                "volumeMounts" => map_of(&["mountPath"]),
                "volumeDevices" => map_of(&["devicePath"]),
                _ => ListType::Atomic,
            },
            [.., "spec", field] => match *field {
                "containers"
                | "initContainers"
                | "ephemeralContainers"
                | "volumes"
                | "imagePullSecrets"
                | "resourceClaims"
                | "schedulingGates" => map_of(&["name"]),
                "hostAliases" => map_of(&["ip"]),
                "topologySpreadConstraints" => map_of(&["topologyKey", "whenUnsatisfiable"]),
                _ => ListType::Atomic,
            },
            _ => ListType::Atomic,
        }
    }

    fn map_key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        (key == "protocol" && is_ports_list(path)).then(|| Value::String("TCP".to_string()))
    }
}

/// List semantics read from a CRD structural schema (`openAPIV3Schema`).
///
/// Honours `x-kubernetes-list-type` (`atomic`, `set`, `map`) and
/// `x-kubernetes-list-map-keys`; a list without a type (or a `map` list
/// without keys, or a path the schema does not describe) is atomic. Key
/// defaults come from the `default` of the key property in `items`. Paths under
/// `metadata` are answered by [`BuiltinListTypes`].
#[derive(Debug, Clone, Copy)]
pub struct SchemaListTypes<'a> {
    /// The `openAPIV3Schema` of the served CRD version (the root object schema).
    pub schema: &'a Value,
}

impl SchemaListTypes<'_> {
    /// The schema node describing the value at `path`, unwrapping `items` of
    /// arrays on the way (list indices are omitted from paths).
    fn node(&self, path: &[&str]) -> Option<&Value> {
        let mut cur = self.schema;
        for name in path {
            cur = unwrap_items(cur);
            cur = match cur.get("properties").and_then(|p| p.get(*name)) {
                Some(node) => node,
                None => match cur.get("additionalProperties") {
                    Some(node @ Value::Object(_)) => node,
                    _ => return None,
                },
            };
        }
        Some(cur)
    }
}

/// Follow `items` while `node` describes an array.
fn unwrap_items(mut node: &Value) -> &Value {
    while let Some(items) = node.get("items") {
        node = items;
    }
    node
}

impl ListTypes for SchemaListTypes<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        if path.first() == Some(&"metadata") {
            return BuiltinListTypes.list_type(path);
        }
        let Some(node) = self.node(path) else {
            return ListType::Atomic;
        };
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                if keys.is_empty() { ListType::Atomic } else { ListType::Map(keys) }
            }
            _ => ListType::Atomic,
        }
    }

    fn map_key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        if path.first() == Some(&"metadata") {
            return BuiltinListTypes.map_key_default(path, key);
        }
        let node = self.node(path)?;
        node.get("items")?.get("properties")?.get(key)?.get("default").cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(k: &[&str]) -> ListType {
        map_of(k)
    }

    #[test]
    fn builtin_pod_spec_lists_under_any_template() {
        let b = BuiltinListTypes;
        for prefix in
            [vec!["spec"], vec!["spec", "template", "spec"], vec!["spec", "jobTemplate", "spec", "template", "spec"]]
        {
            let at = |tail: &[&str]| {
                let mut p = prefix.clone();
                p.extend_from_slice(tail);
                b.list_type(&p)
            };
            assert_eq!(at(&["containers"]), keys(&["name"]));
            assert_eq!(at(&["initContainers"]), keys(&["name"]));
            assert_eq!(at(&["ephemeralContainers"]), keys(&["name"]));
            assert_eq!(at(&["volumes"]), keys(&["name"]));
            assert_eq!(at(&["imagePullSecrets"]), keys(&["name"]));
            assert_eq!(at(&["resourceClaims"]), keys(&["name"]));
            assert_eq!(at(&["hostAliases"]), keys(&["ip"]));
            assert_eq!(at(&["topologySpreadConstraints"]), keys(&["topologyKey", "whenUnsatisfiable"]));
            assert_eq!(at(&["tolerations"]), ListType::Atomic);
            assert_eq!(at(&["containers", "env"]), keys(&["name"]));
            assert_eq!(at(&["initContainers", "envFrom"]), ListType::Atomic);
            assert_eq!(at(&["containers", "ports"]), keys(&["containerPort", "protocol"]));
            assert_eq!(at(&["containers", "volumeMounts"]), keys(&["mountPath"]));
            assert_eq!(at(&["containers", "volumeDevices"]), keys(&["devicePath"]));
            assert_eq!(at(&["containers", "resources", "claims"]), keys(&["name"]));
            assert_eq!(at(&["containers", "args"]), ListType::Atomic);
        }
    }

    #[test]
    fn builtin_metadata_status_and_service() {
        let b = BuiltinListTypes;
        assert_eq!(b.list_type(&["metadata", "ownerReferences"]), keys(&["uid"]));
        assert_eq!(b.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert_eq!(b.list_type(&["status", "conditions"]), keys(&["type"]));
        assert_eq!(b.list_type(&["spec", "ports"]), keys(&["port", "protocol"]));
        assert_eq!(b.list_type(&["subsets", "ports"]), ListType::Atomic);
        assert_eq!(b.list_type(&["rules"]), ListType::Atomic);
        assert_eq!(b.list_type(&[]), ListType::Atomic);
    }

    #[test]
    fn builtin_strategic_merge_keys_match_patch_merge_key() {
        let b = BuiltinListTypes;
        assert_eq!(b.strategic_merge_key(&["spec", "containers"]).as_deref(), Some("name"));
        assert_eq!(b.strategic_merge_key(&["spec", "containers", "ports"]).as_deref(), Some("containerPort"));
        assert_eq!(b.strategic_merge_key(&["spec", "ports"]).as_deref(), Some("port"));
        assert_eq!(b.strategic_merge_key(&["metadata", "finalizers"]), None);
        assert_eq!(b.strategic_merge_key(&["spec", "tolerations"]), None);
    }

    #[test]
    fn builtin_protocol_defaults_to_tcp() {
        let b = BuiltinListTypes;
        assert_eq!(
            b.map_key_default(&["spec", "template", "spec", "containers", "ports"], "protocol"),
            Some(json!("TCP"))
        );
        assert_eq!(b.map_key_default(&["spec", "ports"], "protocol"), Some(json!("TCP")));
        assert_eq!(b.map_key_default(&["spec", "containers"], "name"), None);
    }

    #[test]
    fn schema_list_types_follow_extensions() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "tags": {"type": "array", "x-kubernetes-list-type": "set",
                                 "items": {"type": "string"}},
                        "plain": {"type": "array", "items": {"type": "string"}},
                        "atomic": {"type": "array", "x-kubernetes-list-type": "atomic",
                                   "items": {"type": "string"}},
                        "broken": {"type": "array", "x-kubernetes-list-type": "map",
                                   "items": {"type": "object"}},
                        "workers": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name", "zone"],
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "zone": {"type": "string", "default": "a"},
                                    "ports": {"type": "array", "x-kubernetes-list-type": "set",
                                              "items": {"type": "integer"}}
                                }
                            }
                        },
                        "byName": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "array",
                                "x-kubernetes-list-type": "set",
                                "items": {"type": "string"}
                            }
                        }
                    }
                }
            }
        });
        let s = SchemaListTypes { schema: &schema };
        assert_eq!(s.list_type(&["spec", "tags"]), ListType::Set);
        assert_eq!(s.list_type(&["spec", "plain"]), ListType::Atomic);
        assert_eq!(s.list_type(&["spec", "atomic"]), ListType::Atomic);
        assert_eq!(s.list_type(&["spec", "broken"]), ListType::Atomic);
        assert_eq!(s.list_type(&["spec", "workers"]), keys(&["name", "zone"]));
        assert_eq!(s.list_type(&["spec", "workers", "ports"]), ListType::Set);
        assert_eq!(s.list_type(&["spec", "byName", "anything"]), ListType::Set);
        assert_eq!(s.list_type(&["spec", "missing"]), ListType::Atomic);
        assert_eq!(s.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert_eq!(s.list_type(&["metadata", "ownerReferences"]), keys(&["uid"]));
        assert_eq!(s.strategic_merge_key(&["spec", "workers"]).as_deref(), Some("name"));
        assert_eq!(s.map_key_default(&["spec", "workers"], "zone"), Some(json!("a")));
        assert_eq!(s.map_key_default(&["spec", "workers"], "name"), None);
    }
}
