//! Strategic merge patch (`application/strategic-merge-patch+json`), as
//! kube-apiserver applies it to built-in kinds.
//!
//! [`strategic_merge`] merges a patch into an original object:
//!
//! * objects merge recursively; a `null` value deletes the key (and nulls in
//!   a subtree the original does not have are dropped, like the API server's
//!   `IgnoreUnmatchedNulls`);
//! * scalars and values of a different type replace the original value;
//! * lists merge according to [`ListTypes`]: lists with a merge key
//!   ([`ListTypes::strategic_merge_key`]) merge element-wise by key (a patch
//!   element merges into the original element with the same key, new ones are
//!   appended); [`ListType::Set`] lists of scalars merge as an ordered union
//!   without duplicates; every other list is atomic and replaced whole;
//! * directives:
//!   - `"$patch": "replace"` in an object replaces the original object with the
//!     rest of the patch object; as a list element `{"$patch": "replace"}`
//!     replaces the whole list with the other patch elements; in a keyed list
//!     element together with the key it replaces just that element;
//!   - `"$patch": "delete"` in an object deletes it; in a keyed list element it
//!     deletes the original element(s) with that key;
//!   - `"$patch": "merge"` is the default behaviour and is accepted anywhere;
//!   - any other `$patch` value is an error;
//!   - `"$deleteFromPrimitiveList/<field>": [values]` removes those values from
//!     the scalar list `<field>` (before the patch's own `<field>` is merged);
//!   - `"$setElementOrder/<field>": [...]` (sent by `kubectl apply`) orders the
//!     merged list `<field>`: elements named in it (by merge key, or by value
//!     for scalar lists) come in that order, and each element not named keeps
//!     its place right after the element it followed in the original list;
//!   - `"$retainKeys": [names]` drops the original object's keys that are not
//!     named before the patch is merged.
//!
//!   Directives never appear in the result.
//!
//! Simplifications compared with Kubernetes:
//!
//! * `"$patch": "delete"` on an object field removes the key; Kubernetes
//!   leaves an empty object `{}` in its place. At the top level the result is
//!   `{}` in both.
//! * `"$patch": "merge"` is accepted on objects (Kubernetes only accepts
//!   `replace`/`delete` there).
//! * `$retainKeys` does not check that the patch's keys are all listed
//!   (Kubernetes rejects such a patch).
//! * The placement of unlisted elements under `$setElementOrder` uses the
//!   "stay after your original predecessor" rule described above, which is
//!   equivalent to Kubernetes' for the orders `kubectl apply` produces but may
//!   differ for arbitrary orders.
//! * Which lists merge by key comes from [`ListTypes`] rather than from Go
//!   struct tags (`patchStrategy`/`patchMergeKey`); lists the table does not
//!   know are replaced (as Kubernetes does for lists without a patch strategy).
//!   kube-apiserver refuses strategic merge patches for custom resources; this
//!   function does not, and uses whatever [`ListTypes`] it is given.

use super::list_types::{ListType, ListTypes};
use serde_json::{Map, Value};

/// Key of the `$patch` directive.
const PATCH: &str = "$patch";
/// Key of the `$retainKeys` directive.
const RETAIN_KEYS: &str = "$retainKeys";
/// Prefix of `$setElementOrder/<field>` directives.
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
/// Prefix of `$deleteFromPrimitiveList/<field>` directives.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Why a strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// A `$patch` directive other than `replace`, `delete` or `merge`.
    #[error("$patch directive {directive} is not supported{}", at(.path))]
    UnsupportedDirective {
        /// The directive value as JSON, e.g. `"foo"` (with quotes).
        directive: String,
        /// Where it was found, e.g. `spec.template`; empty at the top level.
        path: String,
    },
    /// An element of a list merged by key does not carry the key.
    #[error("list element at {path} is missing merge key \"{key}\"")]
    MissingMergeKey {
        /// The element, e.g. `spec.containers[1]`.
        path: String,
        /// The merge key, e.g. `name`.
        key: String,
    },
    /// The patch is malformed (not an object, a directive of the wrong shape,
    /// a scalar where a keyed list expects objects, ...).
    #[error("{}{message}", prefix(.path))]
    Invalid {
        /// Where the problem is; empty at the top level.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Formats an optional location prefix (`spec.x: `) for error messages.
fn prefix(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!("{path}: ") }
}

/// Formats an optional location suffix for error messages.
fn at(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!(" at {path}") }
}

/// Applies a strategic merge `patch` to `original` and returns the result.
///
/// `original` must be a JSON object (or `null`, treated as `{}`); `patch` must
/// be a JSON object. `lists` tells how each list merges. See the module docs
/// for the exact semantics.
pub fn strategic_merge(original: &Value, patch: &Value, lists: &dyn ListTypes) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(invalid("", "a strategic merge patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(map) => Some(map),
        Value::Null => None,
        _ => {
            return Err(invalid("", "the object to patch must be a JSON object"));
        }
    };
    let mut cx = Cx { lists, names: Vec::new(), display: Vec::new() };
    Ok(match merge_map(original, patch, &mut cx)? {
        Merged::Value(map) => Value::Object(map),
        Merged::Deleted => Value::Object(Map::new()),
    })
}

fn invalid(path: &str, message: impl Into<String>) -> PatchError {
    PatchError::Invalid { path: path.to_string(), message: message.into() }
}

/// Where the merge currently is.
struct Cx<'l, 'p> {
    lists: &'l dyn ListTypes,
    /// Field names from the root (list indices omitted), for [`ListTypes`].
    names: Vec<&'p str>,
    /// Display segments (`.field`, `[3]`) for error messages.
    display: Vec<String>,
}

impl Cx<'_, '_> {
    fn path(&self) -> String {
        let joined: String = self.display.concat();
        joined.strip_prefix('.').unwrap_or(&joined).to_string()
    }

    fn element_path(&self, index: usize) -> String {
        format!("{}[{index}]", self.path())
    }
}

/// Outcome of merging into an object: a value, or a request to delete it.
enum Merged {
    Value(Map<String, Value>),
    Deleted,
}

/// What a `$patch` directive asks for.
#[derive(PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

fn directive_of(map: &Map<String, Value>, path: &str) -> Result<Directive, PatchError> {
    match map.get(PATCH) {
        None => Ok(Directive::Merge),
        Some(Value::String(s)) if s == "merge" => Ok(Directive::Merge),
        Some(Value::String(s)) if s == "replace" => Ok(Directive::Replace),
        Some(Value::String(s)) if s == "delete" => Ok(Directive::Delete),
        Some(other) => Err(PatchError::UnsupportedDirective { directive: other.to_string(), path: path.to_string() }),
    }
}

/// True for keys that are directives rather than fields.
fn is_directive_key(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn merge_map<'p>(
    original: Option<&Map<String, Value>>,
    patch: &'p Map<String, Value>,
    cx: &mut Cx<'_, 'p>,
) -> Result<Merged, PatchError> {
    let directive = directive_of(patch, &cx.path())?;
    match directive {
        Directive::Delete => return Ok(Merged::Deleted),
        Directive::Replace => {
            // The rest of the patch, cleaned of directives and nulls.
            return merge_map_fields(None, patch, cx).map(Merged::Value);
        }
        Directive::Merge => {}
    }
    merge_map_fields(original, patch, cx).map(Merged::Value)
}

/// Merges the fields of `patch` (ignoring its `$patch`) into `original`.
fn merge_map_fields<'p>(
    original: Option<&Map<String, Value>>,
    patch: &'p Map<String, Value>,
    cx: &mut Cx<'_, 'p>,
) -> Result<Map<String, Value>, PatchError> {
    let mut result = original.cloned().unwrap_or_default();

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Some(names) = retain.as_array().and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        else {
            return Err(invalid(&cx.path(), "$retainKeys must be a list of strings"));
        };
        result.retain(|k, _| names.contains(&k.as_str()));
    }

    for (key, values) in patch {
        let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
            continue;
        };
        let Some(values) = values.as_array() else {
            return Err(invalid(&cx.path(), format!("{key} must be a list")));
        };
        if let Some(Value::Array(list)) = result.get_mut(field) {
            list.retain(|v| !values.contains(v));
        }
    }

    for (key, patch_value) in patch {
        if is_directive_key(key) {
            continue;
        }
        if patch_value.is_null() {
            result.remove(key);
            continue;
        }
        cx.names.push(key);
        cx.display.push(format!(".{key}"));
        let merged = merge_field(result.get(key), patch_value, patch, key, cx);
        cx.names.pop();
        cx.display.pop();
        match merged? {
            Some(value) => {
                result.insert(key.clone(), value);
            }
            None => {
                result.remove(key);
            }
        }
    }

    // `$setElementOrder` for lists the patch does not otherwise touch.
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        if patch.contains_key(field) {
            continue;
        }
        let Some(order) = order.as_array() else {
            return Err(invalid(&cx.path(), format!("{key} must be a list")));
        };
        if let Some(Value::Array(list)) = result.get(field) {
            cx.names.push(field);
            let reordered = reorder(list.clone(), list, order, cx);
            cx.names.pop();
            result.insert(field.to_string(), Value::Array(reordered));
        }
    }
    Ok(result)
}

/// Merges one field; `None` means the field is to be removed.
fn merge_field<'p>(
    original: Option<&Value>,
    patch_value: &'p Value,
    parent_patch: &'p Map<String, Value>,
    key: &str,
    cx: &mut Cx<'_, 'p>,
) -> Result<Option<Value>, PatchError> {
    match patch_value {
        Value::Object(patch_map) => {
            let original_map = original.and_then(Value::as_object);
            Ok(match merge_map(original_map, patch_map, cx)? {
                Merged::Value(map) => Some(Value::Object(map)),
                Merged::Deleted => None,
            })
        }
        Value::Array(patch_list) => {
            let order = match parent_patch.get(&format!("{SET_ELEMENT_ORDER}{key}")) {
                None => None,
                Some(Value::Array(order)) => Some(order.as_slice()),
                Some(_) => {
                    return Err(invalid(&cx.path(), format!("{SET_ELEMENT_ORDER}{key} must be a list")));
                }
            };
            let original_list = original.and_then(Value::as_array);
            merge_list(original_list, patch_list, order, cx).map(|l| Some(Value::Array(l)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

/// A list element that is only a `$patch` directive, e.g. `{"$patch": "replace"}`.
fn directive_only(value: &Value) -> Option<&Value> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(PATCH),
        _ => None,
    }
}

fn merge_list<'p>(
    original: Option<&Vec<Value>>,
    patch: &'p [Value],
    order: Option<&[Value]>,
    cx: &mut Cx<'_, 'p>,
) -> Result<Vec<Value>, PatchError> {
    // A `{"$patch": "replace"}` element replaces the whole list.
    let mut replace_all = false;
    for (i, element) in patch.iter().enumerate() {
        if let Some(d) = directive_only(element) {
            match d.as_str() {
                Some("replace") => replace_all = true,
                Some("merge") | Some("delete") => {}
                _ => {
                    return Err(PatchError::UnsupportedDirective {
                        directive: d.to_string(),
                        path: cx.element_path(i),
                    });
                }
            }
        }
    }
    let original = if replace_all { None } else { original };

    let merge_key = cx.lists.strategic_merge_key(&cx.names);
    let merged = match (&merge_key, cx.lists.list_type(&cx.names)) {
        (Some(key), _) => merge_keyed_list(original, patch, key, cx)?,
        (None, ListType::Set) => {
            let mut result: Vec<Value> = Vec::new();
            for value in original.into_iter().flatten() {
                if !result.contains(value) {
                    result.push(value.clone());
                }
            }
            for value in patch {
                if directive_only(value).is_some() || result.contains(value) {
                    continue;
                }
                result.push(clean(value, cx)?);
            }
            result
        }
        (None, _) => {
            let mut result = Vec::with_capacity(patch.len());
            for value in patch {
                if directive_only(value).is_none() {
                    result.push(clean(value, cx)?);
                }
            }
            result
        }
    };

    Ok(match order {
        Some(order) => reorder(merged, original.map_or(&[], Vec::as_slice), order, cx),
        None => merged,
    })
}

/// `value` with directives and nulls stripped, as if merged into nothing.
fn clean<'p>(value: &'p Value, cx: &mut Cx<'_, 'p>) -> Result<Value, PatchError> {
    match value {
        Value::Object(map) => Ok(match merge_map(None, map, cx)? {
            Merged::Value(map) => Value::Object(map),
            Merged::Deleted => Value::Object(Map::new()),
        }),
        Value::Array(list) => merge_list(None, list, None, cx).map(Value::Array),
        scalar => Ok(scalar.clone()),
    }
}

fn merge_keyed_list<'p>(
    original: Option<&Vec<Value>>,
    patch: &'p [Value],
    key: &str,
    cx: &mut Cx<'_, 'p>,
) -> Result<Vec<Value>, PatchError> {
    let mut result: Vec<Value> = original.cloned().unwrap_or_default();
    for (i, element) in patch.iter().enumerate() {
        if directive_only(element).is_some() {
            continue;
        }
        let Value::Object(element_map) = element else {
            return Err(invalid(
                &cx.element_path(i),
                format!("list elements must be objects with merge key \"{key}\""),
            ));
        };
        let directive = directive_of(element_map, &cx.element_path(i))?;
        let Some(key_value) = element_map.get(key) else {
            return Err(PatchError::MissingMergeKey { path: cx.element_path(i), key: key.to_string() });
        };
        let position = result.iter().position(|o| o.get(key) == Some(key_value));
        if directive == Directive::Delete {
            result.retain(|o| o.get(key) != Some(key_value));
            continue;
        }
        cx.display.push(format!("[{i}]"));
        let base = match directive {
            Directive::Replace => None,
            _ => position.and_then(|p| result.get(p)).and_then(Value::as_object),
        };
        let merged = merge_map(base, element_map, cx);
        cx.display.pop();
        let merged = match merged? {
            Merged::Value(map) => Value::Object(map),
            // Not reachable ($patch: delete handled above); keep the list intact.
            Merged::Deleted => continue,
        };
        match position.and_then(|p| result.get_mut(p)) {
            Some(slot) => *slot = merged,
            None => result.push(merged),
        }
    }
    Ok(result)
}

/// Orders `merged` by a `$setElementOrder` list. Elements named in `order`
/// (by merge key, or by value for scalar lists) come in that order; every
/// other element keeps its place right after the element that preceded it in
/// `original` (at the front when nothing preceded it).
fn reorder(merged: Vec<Value>, original: &[Value], order: &[Value], cx: &Cx<'_, '_>) -> Vec<Value> {
    let merge_key = cx.lists.strategic_merge_key(&cx.names);
    let identity = |v: &Value| -> Option<Value> {
        match &merge_key {
            Some(k) => v.get(k).cloned(),
            None => Some(v.clone()),
        }
    };
    let wanted: Vec<Value> = order.iter().filter_map(&identity).collect();
    let rank = |v: &Value| identity(v).and_then(|id| wanted.iter().position(|w| *w == id));

    let (mut listed, unlisted): (Vec<Value>, Vec<Value>) = merged.into_iter().partition(|v| rank(v).is_some());
    listed.sort_by_key(|v| rank(v).unwrap_or(usize::MAX));

    // Attach each unlisted element to its nearest preceding original element.
    let original_ids: Vec<Option<Value>> = original.iter().map(&identity).collect();
    let mut front: Vec<Value> = Vec::new();
    let mut after: Vec<Vec<Value>> = vec![Vec::new(); listed.len()];
    let mut tail: Vec<Value> = Vec::new();
    for value in unlisted {
        let id = identity(&value);
        let own_position = original_ids.iter().position(|o| id.is_some() && *o == id);
        let Some(own_position) = own_position else {
            // Not in the original (and not listed): keep it at the end.
            tail.push(value);
            continue;
        };
        let anchor = original_ids[..own_position].iter().rev().find_map(|prev| {
            let prev = prev.as_ref()?;
            listed.iter().position(|l| identity(l).as_ref() == Some(prev))
        });
        match anchor {
            Some(slot) => after[slot].push(value),
            None => front.push(value),
        }
    }
    let mut result = front;
    for (value, followers) in listed.into_iter().zip(after) {
        result.push(value);
        result.extend(followers);
    }
    result.extend(tail);
    result
}

#[cfg(test)]
mod tests {
    use super::super::list_types::BuiltinListTypes;
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value) -> Value {
        match strategic_merge(&original, &patch, &BuiltinListTypes) {
            Ok(v) => v,
            Err(e) => panic!("patch failed: {e}"),
        }
    }

    fn smp_err(original: Value, patch: Value) -> PatchError {
        match strategic_merge(&original, &patch, &BuiltinListTypes) {
            Ok(v) => panic!("expected an error, got {v}"),
            Err(e) => e,
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "replicas": 1,
                "template": {"spec": {
                    "containers": [
                        {"name": "app", "image": "app:1",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "sidecar", "image": "side:1"}
                    ],
                    "tolerations": [{"key": "a", "operator": "Exists"}]
                }}
            }
        })
    }

    #[test]
    fn scalars_replace_and_objects_merge() {
        let out =
            smp(deployment(), json!({"spec": {"replicas": 3}, "metadata": {"labels": {"tier": "back", "new": "x"}}}));
        assert_eq!(out["spec"]["replicas"], json!(3));
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "tier": "back", "new": "x"}));
        assert_eq!(out["metadata"]["name"], json!("web"));
    }

    #[test]
    fn null_deletes_keys() {
        let out = smp(deployment(), json!({"metadata": {"labels": {"tier": null, "absent": null}}}));
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        // Nulls in a subtree the original lacks are dropped.
        let out = smp(json!({}), json!({"spec": {"a": {"b": null, "c": 1}}}));
        assert_eq!(out, json!({"spec": {"a": {"c": 1}}}));
    }

    #[test]
    fn containers_merge_by_name() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
                {"name": "new", "image": "new:1"}
            ]}}}}),
        );
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers,
            &json!([
                {"name": "app", "image": "app:2",
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "side:1"},
                {"name": "new", "image": "new:1"}
            ])
        );
    }

    #[test]
    fn container_ports_merge_by_container_port() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}
            ]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])
        );
    }

    #[test]
    fn patch_delete_removes_list_element_and_object() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "$patch": "delete"}
            ]}}}, "metadata": {"labels": {"$patch": "delete"}}}),
        );
        let containers = out["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len);
        assert_eq!(containers, Some(1));
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["name"], json!("app"));
        assert!(out["metadata"].get("labels").is_none());
    }

    #[test]
    fn patch_replace_on_object_and_list() {
        let out = smp(deployment(), json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));

        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"$patch": "replace"},
                {"name": "solo", "image": "solo:1"}
            ]}}}}),
        );
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "solo", "image": "solo:1"}]));

        // Element-level replace keeps the other elements.
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "$patch": "replace", "image": "app:9"}
            ]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "app:9"}, {"name": "sidecar", "image": "side:1"}])
        );
    }

    #[test]
    fn patch_merge_directive_is_accepted() {
        let out = smp(deployment(), json!({"metadata": {"labels": {"$patch": "merge", "x": "y"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "tier": "front", "x": "y"}));
    }

    #[test]
    fn unknown_directive_is_rejected() {
        let err = smp_err(deployment(), json!({"spec": {"$patch": "foo"}}));
        assert_eq!(err.to_string(), "$patch directive \"foo\" is not supported at spec");
        let err = smp_err(deployment(), json!({"$patch": "foo"}));
        assert_eq!(err.to_string(), "$patch directive \"foo\" is not supported");
    }

    #[test]
    fn missing_merge_key_is_reported_with_path() {
        let err = smp_err(
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"image": "y"}]}}),
        );
        assert_eq!(err, PatchError::MissingMergeKey { path: "spec.containers[1]".into(), key: "name".into() });
        assert_eq!(err.to_string(), "list element at spec.containers[1] is missing merge key \"name\"");
    }

    #[test]
    fn set_element_order_is_accepted_stripped_and_honoured() {
        // What `kubectl apply` (client-side) sends when adding a container first.
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "init"}, {"name": "app"}, {"name": "sidecar"}],
                "containers": [{"name": "init", "image": "init:1"}]
            }}}}),
        );
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["init", "app", "sidecar"]);
        assert!(!out.to_string().contains("$setElementOrder"));

        // Reordering without touching the list.
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]
            }}}}),
        );
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["name"], json!("sidecar"));
    }

    #[test]
    fn set_element_order_keeps_unlisted_elements_in_place() {
        let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let out = smp(
            original,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                "containers": [{"name": "c", "image": "c"}]
            }}),
        );
        let names: Vec<&str> =
            out["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn finalizers_merge_as_union() {
        let out =
            smp(json!({"metadata": {"finalizers": ["a", "b"]}}), json!({"metadata": {"finalizers": ["b", "c", "c"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    }

    #[test]
    fn delete_from_primitive_list() {
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "finalizers": ["d"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c", "d"]));
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["b", "a"],
                "$deleteFromPrimitiveList/finalizers": ["x"]
            }}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}),
        );
        assert_eq!(out["spec"]["template"]["spec"]["tolerations"], json!([{"key": "b", "operator": "Exists"}]));
        let out = smp(
            json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}),
            json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
        );
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
    }

    #[test]
    fn retain_keys_drops_unlisted_original_keys() {
        let out = smp(
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn conditions_merge_by_type() {
        let out = smp(
            json!({"status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "Scheduled", "status": "True"}
            ]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}])
        );
    }

    #[test]
    fn directives_are_stripped_from_new_subtrees() {
        let out = smp(
            json!({}),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "a", "$setElementOrder/env": [{"name": "X"}],
                                "env": [{"name": "X", "value": "1"}]}]
            }}}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "env": [{"name": "X", "value": "1"}]}
            ]}}}})
        );
    }

    #[test]
    fn invalid_patches_are_rejected() {
        assert!(matches!(smp_err(json!({}), json!([1])), PatchError::Invalid { .. }));
        let err = smp_err(json!({"spec": {"containers": []}}), json!({"spec": {"containers": ["x"]}}));
        assert!(err.to_string().contains("spec.containers[0]"), "{err}");
        assert!(matches!(smp_err(json!({}), json!({"a": {"$retainKeys": "x"}})), PatchError::Invalid { .. }));
    }

    #[test]
    fn type_changes_replace() {
        let out = smp(json!({"a": {"b": 1}}), json!({"a": "flat"}));
        assert_eq!(out, json!({"a": "flat"}));
        let out = smp(json!({"a": "flat"}), json!({"a": {"b": 1}}));
        assert_eq!(out, json!({"a": {"b": 1}}));
    }
}
