//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Every object records which *manager* owns which fields, in
//! `metadata.managedFields`:
//!
//! ```json
//! [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
//!   "time": "2026-11-22T04:00:00Z", "fieldsType": "FieldsV1",
//!   "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
//! ```
//!
//! `fieldsV1` is a trie of path elements: `f:<field>` for object fields,
//! `k:{"name":"app"}` for elements of map lists (key fields JSON-encoded,
//! sorted by name, defaults filled in), `v:<json>` for elements of set lists
//! and `i:<index>` for elements that cannot be keyed. A leaf is `{}`; a node
//! that is itself owned and also has owned children carries `".": {}`.
//! Owned are: scalars, atomic lists, empty objects, and every element of a
//! set or map list; objects with fields are not owned themselves, only their
//! fields are.
//!
//! An entry is identified by manager, operation and subresource, plus
//! `apiVersion` for `Update` entries (as in Kubernetes, an applier keeps one
//! entry whatever version it applies with).
//!
//! [`apply`] (server-side apply) works as Kubernetes documents it:
//!
//! 1. the applied configuration is merged into the live object: objects
//!    recursively, map lists element by element (by key), set lists as a
//!    union, atomic lists and scalars replaced;
//! 2. fields the manager owned through its previous `Apply` but omits now are
//!    removed from the object unless another manager (or the new
//!    configuration) owns them or something below them; objects and lists
//!    emptied by such removals are removed too;
//! 3. fields whose value the apply changes (or adds) and that another manager
//!    owns are conflicts. Without `force` the apply fails with every conflict;
//!    with `force` the other managers lose them. Fields applied with the
//!    value they already have are shared, not conflicts;
//! 4. the applied configuration's fields become the manager's `Apply` entry
//!    (replacing the previous one); fields removed from the object are taken
//!    from every manager; entries left empty are dropped.
//!
//! [`record_update`] tracks ownership for every other write: fields added or
//! changed become the writer's (an `Update` entry) and are taken from other
//! managers; removed fields are taken from all.
//!
//! Fields never owned: `apiVersion`, `kind`, and `metadata.{managedFields,
//! resourceVersion, uid, creationTimestamp, generation, name, namespace}`;
//! `status` too when [`ApplyOptions::ignore_status`] is set. Entries are
//! written sorted like Kubernetes does (operation, time, manager, apiVersion,
//! subresource) and FieldsV1 keys are sorted, so output is deterministic.
//! When a write changes nothing but timestamps, the previous `managedFields`
//! are kept verbatim (as Kubernetes does), so a repeated apply is a no-op.
//!
//! Simplifications compared with Kubernetes (structured-merge-diff):
//!
//! * Objects are always granular (`+structType=atomic` and
//!   `x-kubernetes-map-type: atomic` are not known): e.g. a Deployment's
//!   `spec.selector` is owned field by field instead of as one leaf.
//! * `null` values in an applied configuration are dropped (the field is
//!   neither set nor owned).
//! * The order of a merged list: elements of the applied configuration in
//!   their applied order, each live-only element kept after the element that
//!   preceded it in the live list.
//! * A live object without (or with empty) `managedFields` gets, on its
//!   first apply, an `Update` entry `before-first-apply` owning all its
//!   fields (as Kubernetes does); updates never do that.
//! * Entry times are compared as strings for sorting (fine for the uniform
//!   RFC 3339 UTC form used here). The cap Kubernetes puts on the number of
//!   `Update` entries is not implemented.
//! * No version conversion: all entries are treated as if recorded with the
//!   same API version.
//! * Client-provided `managedFields` on updates: absent or `[]` keeps the
//!   current ones; a list of only empty objects (`[{}]`) strips them and
//!   records nothing; any other list replaces them before the update is
//!   recorded. Malformed entries are dropped.

use super::list_types::{ListType, ListTypes};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Options of one server-side apply request.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// The field manager (`?fieldManager=`), e.g. `kubectl`.
    pub manager: &'a str,
    /// Take ownership of conflicting fields instead of failing (`?force=true`).
    pub force: bool,
    /// API version of the request, e.g. `apps/v1`, recorded in the entry.
    pub api_version: &'a str,
    /// Current time in RFC 3339 form, e.g. `2026-11-22T04:00:00Z`.
    pub now: &'a str,
    /// The subresource applied to (`Some("status")`), or `None` for the main
    /// resource.
    pub subresource: Option<&'a str>,
    /// Leave `status` out of the apply entirely (neither merged nor owned):
    /// set this for the main resource of kinds with a status subresource.
    pub ignore_status: bool,
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The manager owning the field, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// The field, e.g. `.spec.replicas` or
    /// `.spec.containers[name="app"].image`.
    pub field: String,
    /// The owning entry's API version when it is an `Update` entry (shown as
    /// `using apps/v1`), `None` for an `Apply` entry.
    pub api_version: Option<String>,
    /// The owning entry's subresource, if any.
    pub subresource: Option<String>,
}

impl Conflict {
    /// The owner as kube-apiserver prints it: `"name"`, plus
    /// ` with subresource "status"` and ` using apps/v1` when relevant.
    pub fn owner(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if let Some(version) = &self.api_version {
            s.push_str(&format!(" using {version}"));
        }
        s
    }
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers would change (HTTP 409). Sorted by
    /// manager, then field.
    Conflicts(Vec<Conflict>),
    /// The applied configuration is unusable (HTTP 422/400), e.g. a map-list
    /// element without its key or duplicate keys.
    Invalid(String),
}

impl fmt::Display for ApplyError {
    /// Matches kube-apiserver: `Apply failed with 1 conflict: conflict with
    /// "m" using apps/v1: .spec.replicas`, or for several, one group per
    /// manager (`conflicts with "m":`) followed by `- <field>` lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Invalid(message) => f.write_str(message),
            ApplyError::Conflicts(conflicts) => {
                if let [only] = conflicts.as_slice() {
                    return write!(f, "Apply failed with 1 conflict: conflict with {}: {}", only.owner(), only.field);
                }
                write!(f, "Apply failed with {} conflicts: ", conflicts.len())?;
                let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
                for c in conflicts {
                    groups.entry(c.owner()).or_default().push(&c.field);
                }
                let mut lines = Vec::new();
                for (owner, fields) in groups {
                    lines.push(format!("conflicts with {owner}:"));
                    lines.extend(fields.into_iter().map(|field| format!("- {field}")));
                }
                f.write_str(&lines.join("\n"))
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// Server-side apply of `applied` (the applier's partial intent) onto `live`
/// (the stored object, `None` when the apply creates it).
///
/// Returns the merged object with `metadata.managedFields` updated. See the
/// module docs for the semantics. System fields of `live` (uid,
/// resourceVersion, ...) are kept as they are; the caller still owns
/// preconditions, defaulting, validation and resetting fields its strategy
/// controls.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    lists: &dyn ListTypes,
    opts: &ApplyOptions,
) -> Result<Value, ApplyError> {
    let Value::Object(applied_map) = applied else {
        return Err(ApplyError::Invalid("an apply configuration must be a JSON object".into()));
    };
    if let Some(live) = live
        && !live.is_object()
    {
        return Err(ApplyError::Invalid("the live object must be a JSON object".into()));
    }
    let mut config = applied_map.clone();
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        meta.remove("managedFields");
    }
    if opts.ignore_status {
        config.remove("status");
    }
    let config = Value::Object(config);

    let walker = Walker { lists, ignore_status: opts.ignore_status, strict: true };
    let new_set = FieldSet::of(&walker.flatten(&config).map_err(ApplyError::Invalid)?);
    let lenient = Walker { strict: false, ..walker };

    let empty = Value::Object(Map::new());
    let live_value = live.unwrap_or(&empty);
    let mut entries = match live {
        Some(live) if managed_fields(live).and_then(Value::as_array).is_none_or(Vec::is_empty) => {
            let fields = FieldSet::of(&lenient.flatten_lenient(live));
            vec![Entry {
                manager: "before-first-apply".into(),
                operation: UPDATE.into(),
                api_version: opts.api_version.into(),
                time: Some(opts.now.into()),
                subresource: None,
                fields,
            }]
        }
        Some(live) => decode_entries(managed_fields(live)),
        None => Vec::new(),
    };

    let me = Identity {
        manager: opts.manager.into(),
        operation: APPLY.into(),
        api_version: None,
        subresource: opts.subresource.map(str::to_string),
    };
    let last_set = entries.iter().find(|e| e.identity() == me).map(|e| e.fields.clone()).unwrap_or_default();
    entries.retain(|e| e.identity() != me);

    // 1. Merge.
    let mut names = Vec::new();
    let mut merged = merge_values(live_value, &config, &mut names, lists).map_err(ApplyError::Invalid)?;

    // 2. Prune what the manager applied before and gives up now.
    let mut keep = new_set.clone();
    for e in &entries {
        keep.extend(&e.fields);
    }
    for path in last_set.0.difference(&new_set.0) {
        if !keep.has_at_or_under(path) {
            remove_path(&mut merged, path, lists, &keep);
        }
    }

    // 3. Conflicts and ownership changes.
    let before = lenient.flatten_lenient(live_value);
    let after = lenient.flatten_lenient(&merged);
    let diff = Diff::between(&before, &after);
    let mut conflicts = Vec::new();
    for e in &entries {
        for path in e.fields.0.intersection(&diff.changed.0) {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                field: display_path(path),
                api_version: (e.operation != APPLY).then(|| e.api_version.clone()),
                subresource: e.subresource.clone(),
            });
        }
    }
    if !conflicts.is_empty() && !opts.force {
        conflicts.sort();
        conflicts.dedup();
        return Err(ApplyError::Conflicts(conflicts));
    }
    for e in &mut entries {
        e.fields.remove_all(&diff.changed);
        e.fields.remove_all(&diff.removed);
    }

    // 4. The manager's new Apply entry.
    entries.push(Entry {
        manager: opts.manager.into(),
        operation: APPLY.into(),
        api_version: opts.api_version.into(),
        time: Some(opts.now.into()),
        subresource: opts.subresource.map(str::to_string),
        fields: new_set,
    });
    write_entries(&mut merged, entries, live);
    Ok(merged)
}

/// Records ownership for a non-apply write (create, update, patch) by
/// `manager`: fields added or changed between `old` (`None` on create) and
/// `new` become owned by the manager's `Update` entry (one per manager, API
/// version and subresource) and are taken from other managers; fields removed
/// from the object are taken from all managers; empty entries are dropped.
/// Writes the result into `new`'s `metadata.managedFields`.
///
/// The starting entries are `old`'s, unless `new` carries its own (see the
/// module docs). Does nothing when `new` is not a JSON object.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    lists: &dyn ListTypes,
    manager: &str,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) {
    if !new.is_object() {
        return;
    }
    let old_raw = old.and_then(managed_fields);
    let mut entries = match managed_fields(new) {
        Some(Value::Array(list)) if !list.is_empty() => {
            if list.iter().all(|e| e.as_object().is_some_and(Map::is_empty)) {
                // `[{}]`: the client asks for managedFields to be stripped.
                if let Some(Value::Object(meta)) = new.get_mut("metadata") {
                    meta.remove("managedFields");
                }
                return;
            }
            decode_entries(managed_fields(new))
        }
        _ => decode_entries(old_raw),
    };

    let walker = Walker { lists, ignore_status: false, strict: false };
    let empty = Value::Object(Map::new());
    let before = walker.flatten_lenient(old.unwrap_or(&empty));
    let after = walker.flatten_lenient(new);
    let diff = Diff::between(&before, &after);

    let me = Identity {
        manager: manager.into(),
        operation: UPDATE.into(),
        api_version: Some(api_version.into()),
        subresource: subresource.map(str::to_string),
    };
    let mut mine = FieldSet::default();
    for e in &mut entries {
        if e.identity() == me {
            mine.extend(&e.fields);
        } else {
            e.fields.remove_all(&diff.changed);
            e.fields.remove_all(&diff.removed);
        }
    }
    entries.retain(|e| e.identity() != me);
    mine.remove_all(&diff.removed);
    mine.extend(&diff.changed);
    entries.push(Entry {
        manager: manager.into(),
        operation: UPDATE.into(),
        api_version: api_version.into(),
        time: Some(now.into()),
        subresource: subresource.map(str::to_string),
        fields: mine,
    });
    write_entries(new, entries, old);
}

// ---------------------------------------------------------------------------
// Managed fields entries

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

/// What makes two entries the same manager.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Identity {
    manager: String,
    operation: String,
    /// Only for `Update` entries.
    api_version: Option<String>,
    subresource: Option<String>,
}

impl Entry {
    fn identity(&self) -> Identity {
        Identity {
            manager: self.manager.clone(),
            operation: self.operation.clone(),
            api_version: (self.operation != APPLY).then(|| self.api_version.clone()),
            subresource: self.subresource.clone(),
        }
    }

    fn decode(value: &Value) -> Option<Entry> {
        let map = value.as_object()?;
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
        if let Some(kind) = text("fieldsType")
            && kind != "FieldsV1"
        {
            return None;
        }
        let mut fields = FieldSet::default();
        match map.get("fieldsV1") {
            None | Some(Value::Null) => {}
            Some(trie) => decode_trie(trie, &mut Vec::new(), &mut fields.0)?,
        }
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation")?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields,
        })
    }

    fn encode(&self) -> Value {
        // Insertion order follows Kubernetes (matters only with preserve_order).
        let mut map = Map::new();
        map.insert("manager".into(), Value::String(self.manager.clone()));
        map.insert("operation".into(), Value::String(self.operation.clone()));
        map.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            map.insert("time".into(), Value::String(time.clone()));
        }
        map.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        map.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(sub) = &self.subresource {
            map.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(map)
    }

    /// Sort key used by Kubernetes for the stored list.
    fn sort_key(&self) -> (&str, &str, &str, &str, &str) {
        (
            &self.operation,
            self.time.as_deref().unwrap_or(""),
            &self.manager,
            &self.api_version,
            self.subresource.as_deref().unwrap_or(""),
        )
    }
}

fn managed_fields(object: &Value) -> Option<&Value> {
    object.get("metadata")?.get("managedFields")
}

/// Decodes a `managedFields` list, dropping malformed entries and merging
/// entries of the same identity.
fn decode_entries(raw: Option<&Value>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for entry in raw.and_then(Value::as_array).into_iter().flatten() {
        let Some(entry) = Entry::decode(entry) else {
            continue;
        };
        match entries.iter_mut().find(|e| e.identity() == entry.identity()) {
            Some(existing) => {
                existing.fields.extend(&entry.fields);
                if entry.time > existing.time {
                    existing.time = entry.time;
                }
            }
            None => entries.push(entry),
        }
    }
    entries
}

/// Drops empty entries, sorts, and stores the entries in `object`, keeping
/// `previous`'s `managedFields` verbatim when only timestamps would change.
fn write_entries(object: &mut Value, mut entries: Vec<Entry>, previous: Option<&Value>) {
    entries.retain(|e| !e.fields.0.is_empty());
    entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    let mut encoded = (!entries.is_empty()).then(|| Value::Array(entries.iter().map(Entry::encode).collect()));
    if let Some(previous) = previous {
        let previous_raw = managed_fields(previous);
        if without_managed_fields(previous) == without_managed_fields(object)
            && same_ignoring_time(&decode_entries(previous_raw), &entries)
        {
            encoded = previous_raw.cloned();
        }
    }
    let Value::Object(root) = object else {
        return;
    };
    match encoded {
        Some(list) => {
            let meta = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(meta) = meta {
                meta.insert("managedFields".into(), list);
            }
        }
        None => {
            if let Some(Value::Object(meta)) = root.get_mut("metadata") {
                meta.remove("managedFields");
            }
        }
    }
}

fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(Value::Object(meta)) = copy.get_mut("metadata") {
        meta.remove("managedFields");
    }
    copy
}

fn same_ignoring_time(a: &[Entry], b: &[Entry]) -> bool {
    let normalise = |entries: &[Entry]| {
        let mut list: Vec<(Identity, String, FieldSet)> = entries
            .iter()
            .filter(|e| !e.fields.0.is_empty())
            .map(|e| (e.identity(), e.api_version.clone(), e.fields.clone()))
            .collect();
        list.sort_by(|x, y| x.0.cmp(&y.0));
        list
    };
    normalise(a) == normalise(b)
}

// ---------------------------------------------------------------------------
// Field sets

/// A path of encoded elements (`f:spec`, `k:{"name":"a"}`, `v:"x"`, `i:0`).
type Path = Vec<String>;

/// A set of owned field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    fn of(flat: &Flat<'_>) -> FieldSet {
        FieldSet(flat.keys().cloned().collect())
    }

    fn extend(&mut self, other: &FieldSet) {
        self.0.extend(other.0.iter().cloned());
    }

    fn remove_all(&mut self, other: &FieldSet) {
        self.0.retain(|p| !other.0.contains(p));
    }

    /// True when `path` or a path below it is in the set.
    fn has_at_or_under(&self, path: &Path) -> bool {
        self.0.range(path.clone()..).next().is_some_and(|p| p.starts_with(path))
    }

    fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        fn encode(node: &Node) -> Value {
            let mut map = Map::new();
            if node.member && !node.children.is_empty() {
                map.insert(".".into(), Value::Object(Map::new()));
            }
            for (key, child) in &node.children {
                map.insert(key.clone(), encode(child));
            }
            Value::Object(map)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for element in path {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        encode(&root)
    }
}

/// Reads a FieldsV1 trie into `out`; `None` when it is not one.
fn decode_trie(value: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) -> Option<()> {
    let map = value.as_object()?;
    if map.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (key, child) in map {
        if key == "." {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            continue;
        }
        prefix.push(key.clone());
        let decoded = decode_trie(child, prefix, out);
        prefix.pop();
        decoded?;
    }
    Some(())
}

/// Renders a path like structured-merge-diff does:
/// `.spec.containers[name="app"].image`, `.metadata.finalizers[="x"]`.
fn display_path(path: &Path) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(fields) => {
                    let mut parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    parts.sort();
                    out.push_str(&format!("[{}]", parts.join(",")));
                }
                Err(_) => out.push_str(&format!("[{key}]")),
            }
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        } else {
            out.push_str(&format!("[{element}]"));
        }
    }
    out
}

/// JSON with object keys sorted at every level (identity of set elements).
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    let v = map.get(k).map_or_else(|| "null".to_string(), canonical);
                    format!("{}:{v}", Value::String(k.clone()))
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(list) => {
            let parts: Vec<String> = list.iter().map(canonical).collect();
            format!("[{}]", parts.join(","))
        }
        scalar => scalar.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Flattening objects into owned paths

/// What is at an owned path: a comparable leaf value, or a list element
/// (identified by its path alone).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaf<'v> {
    Value(&'v Value),
    Element,
}

type Flat<'v> = BTreeMap<Path, Leaf<'v>>;

/// The paths an object's fields occupy.
#[derive(Clone, Copy)]
struct Walker<'l> {
    lists: &'l dyn ListTypes,
    ignore_status: bool,
    /// Reject elements without keys and duplicates (applied configurations);
    /// otherwise fall back to `i:<index>` and skip duplicates.
    strict: bool,
}

impl Walker<'_> {
    fn flatten<'v>(&self, root: &'v Value) -> Result<Flat<'v>, String> {
        let mut out = Flat::new();
        if let Value::Object(map) = root {
            self.walk_fields(map, &mut Vec::new(), &mut Vec::new(), &mut out)?;
        }
        Ok(out)
    }

    /// Lenient flattening never fails; errors only come from strict mode.
    fn flatten_lenient<'v>(&self, root: &'v Value) -> Flat<'v> {
        let lenient = Walker { strict: false, ..*self };
        lenient.flatten(root).unwrap_or_default()
    }

    fn ignored(&self, path: &Path) -> bool {
        match path.as_slice() {
            [one] => one == "f:apiVersion" || one == "f:kind" || (self.ignore_status && one == "f:status"),
            [meta, field] if meta == "f:metadata" => matches!(
                field.as_str(),
                "f:managedFields"
                    | "f:resourceVersion"
                    | "f:uid"
                    | "f:creationTimestamp"
                    | "f:generation"
                    | "f:name"
                    | "f:namespace"
            ),
            _ => false,
        }
    }

    fn walk_fields<'v>(
        &self,
        map: &'v Map<String, Value>,
        path: &mut Path,
        names: &mut Vec<&'v str>,
        out: &mut Flat<'v>,
    ) -> Result<(), String> {
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            path.push(format!("f:{key}"));
            if !self.ignored(path) {
                names.push(key);
                let walked = self.walk_value(value, path, names, out);
                names.pop();
                walked?;
            }
            path.pop();
        }
        Ok(())
    }

    fn walk_value<'v>(
        &self,
        value: &'v Value,
        path: &mut Path,
        names: &mut Vec<&'v str>,
        out: &mut Flat<'v>,
    ) -> Result<(), String> {
        match value {
            Value::Object(map) if !map.is_empty() => self.walk_fields(map, path, names, out),
            Value::Array(list) => {
                let list_type = self.lists.list_type(names);
                if list_type == ListType::Atomic {
                    out.insert(path.clone(), Leaf::Value(value));
                    return Ok(());
                }
                for (index, element) in list.iter().enumerate() {
                    if element.is_null() {
                        continue;
                    }
                    let id = element_id(element, &list_type, names, self.lists, index, self.strict)
                        .map_err(|e| format!("{}: element {index}: {e}", display_path(path)))?;
                    path.push(id);
                    if out.contains_key(path.as_slice()) {
                        if self.strict {
                            let key = path.last().map(|k| display_path(&vec![k.clone()]));
                            path.pop();
                            return Err(format!(
                                "{}: duplicate entries for key {}",
                                display_path(path),
                                key.unwrap_or_default()
                            ));
                        }
                        path.pop();
                        continue;
                    }
                    out.insert(path.clone(), Leaf::Element);
                    if let (ListType::Map(_), Value::Object(fields)) = (&list_type, element) {
                        self.walk_fields(fields, path, names, out)?;
                    }
                    path.pop();
                }
                Ok(())
            }
            leaf => {
                out.insert(path.clone(), Leaf::Value(leaf));
                Ok(())
            }
        }
    }
}

/// The encoded path element of a set or map list element.
fn element_id(
    element: &Value,
    list_type: &ListType,
    names: &[&str],
    lists: &dyn ListTypes,
    index: usize,
    strict: bool,
) -> Result<String, String> {
    match list_type {
        ListType::Atomic => Ok(format!("i:{index}")),
        ListType::Set => Ok(format!("v:{}", canonical(element))),
        ListType::Map(keys) => {
            let Value::Object(fields) = element else {
                return if strict {
                    Err("associative list elements must be objects".into())
                } else {
                    Ok(format!("i:{index}"))
                };
            };
            let mut sorted: Vec<&String> = keys.iter().collect();
            sorted.sort();
            let mut parts = Vec::new();
            for key in sorted {
                let value = match fields.get(key.as_str()) {
                    Some(v) if !v.is_null() => Some(v.clone()),
                    _ => lists.map_key_default(names, key),
                };
                match value {
                    Some(v) => parts.push(format!("{}:{}", Value::String(key.clone()), canonical(&v))),
                    None if strict => {
                        return Err(format!("associative list with keys has an element that omits key field {key:?}"));
                    }
                    None => {}
                }
            }
            if parts.is_empty() { Ok(format!("i:{index}")) } else { Ok(format!("k:{{{}}}", parts.join(","))) }
        }
    }
}

/// Changes between two flattened objects.
struct Diff {
    /// Added or modified paths.
    changed: FieldSet,
    /// Paths no longer present.
    removed: FieldSet,
}

impl Diff {
    fn between(before: &Flat<'_>, after: &Flat<'_>) -> Diff {
        let mut changed = FieldSet::default();
        let mut removed = FieldSet::default();
        for (path, leaf) in after {
            if before.get(path) != Some(leaf) {
                changed.0.insert(path.clone());
            }
        }
        for path in before.keys() {
            if !after.contains_key(path) {
                removed.0.insert(path.clone());
            }
        }
        Diff { changed, removed }
    }
}

// ---------------------------------------------------------------------------
// Merging and pruning

/// Merges the applied configuration `applied` into `live`.
fn merge_values<'a>(
    live: &'a Value,
    applied: &'a Value,
    names: &mut Vec<&'a str>,
    lists: &dyn ListTypes,
) -> Result<Value, String> {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) => {
            let mut out = live_map.clone();
            for (key, value) in applied_map {
                if value.is_null() {
                    continue;
                }
                names.push(key);
                let merged = match live_map.get(key) {
                    Some(live_value) => merge_values(live_value, value, names, lists),
                    None => Ok(strip_nulls(value)),
                };
                names.pop();
                out.insert(key.clone(), merged?);
            }
            Ok(Value::Object(out))
        }
        (Value::Array(live_list), Value::Array(applied_list)) => {
            let list_type = lists.list_type(names);
            if list_type == ListType::Atomic {
                return Ok(strip_nulls(applied));
            }
            merge_lists(live_list, applied_list, &list_type, names, lists).map(Value::Array)
        }
        _ => Ok(strip_nulls(applied)),
    }
}

/// Merges two set or map lists: applied elements in applied order, each
/// live-only element kept after the element that preceded it in `live`.
fn merge_lists<'a>(
    live: &'a [Value],
    applied: &'a [Value],
    list_type: &ListType,
    names: &mut Vec<&'a str>,
    lists: &dyn ListTypes,
) -> Result<Vec<Value>, String> {
    let id = |v: &Value, i: usize| element_id(v, list_type, names, lists, i, false).ok();
    let live_ids: Vec<Option<String>> = live.iter().enumerate().map(|(i, v)| id(v, i)).collect();
    let applied_ids: Vec<Option<String>> = applied.iter().enumerate().map(|(i, v)| id(v, i)).collect();
    let find_live =
        |wanted: &Option<String>| wanted.as_ref().and_then(|w| live_ids.iter().position(|l| l.as_ref() == Some(w)));
    let find_applied =
        |wanted: &Option<String>| wanted.as_ref().and_then(|w| applied_ids.iter().position(|a| a.as_ref() == Some(w)));

    let mut out = Vec::with_capacity(live.len() + applied.len());
    let mut emitted = vec![false; applied.len()];
    let mut live_used = vec![false; live.len()];
    let mut next = 0;
    let mut emit_until =
        |end: usize, out: &mut Vec<Value>, live_used: &mut Vec<bool>, names: &mut Vec<&'a str>| -> Result<(), String> {
            while next <= end && next < applied.len() {
                let j = next;
                next += 1;
                if emitted[j] || applied[j].is_null() {
                    continue;
                }
                emitted[j] = true;
                match find_live(&applied_ids[j]) {
                    Some(l) => {
                        live_used[l] = true;
                        out.push(merge_values(&live[l], &applied[j], names, lists)?);
                    }
                    None => out.push(strip_nulls(&applied[j])),
                }
            }
            Ok(())
        };
    for (l, live_value) in live.iter().enumerate() {
        if live_used[l] {
            continue;
        }
        match find_applied(&live_ids[l]) {
            Some(j) => emit_until(j, &mut out, &mut live_used, names)?,
            None => out.push(live_value.clone()),
        }
    }
    emit_until(usize::MAX - 1, &mut out, &mut live_used, names)?;
    Ok(out)
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect())
        }
        Value::Array(list) => Value::Array(list.iter().map(strip_nulls).collect()),
        scalar => scalar.clone(),
    }
}

/// Removes the value at `path` from `root`, then removes objects and lists
/// that the removal left empty (unless `keep` owns them). Key fields of
/// surviving map-list elements are never removed.
fn remove_path(root: &mut Value, path: &Path, lists: &dyn ListTypes, keep: &FieldSet) {
    let remover = Remover { lists, keep, path };
    remover.remove_in(root, 0, &mut Vec::new(), &[]);
}

/// Removal of one path from an object.
struct Remover<'r> {
    lists: &'r dyn ListTypes,
    keep: &'r FieldSet,
    path: &'r Path,
}

impl Remover<'_> {
    /// Removes `path[depth..]` below `value`; returns true when `value`
    /// became empty and its parent should drop it.
    fn remove_in(&self, value: &mut Value, depth: usize, names: &mut Vec<String>, key_fields: &[String]) -> bool {
        let Some(head) = self.path.get(depth) else {
            return false;
        };
        let last = depth + 1 == self.path.len();
        if let Some(field) = head.strip_prefix("f:") {
            let Value::Object(map) = value else {
                return false;
            };
            if last {
                if key_fields.iter().any(|k| k == field) || map.remove(field).is_none() {
                    return false;
                }
            } else {
                let Some(child) = map.get_mut(field) else {
                    return false;
                };
                names.push(field.to_string());
                let emptied = self.remove_in(child, depth + 1, names, &[]);
                names.pop();
                if !emptied || self.keep.0.contains(&self.path[..=depth]) {
                    return false;
                }
                map.remove(field);
            }
            return map.is_empty();
        }
        let Value::Array(list) = value else {
            return false;
        };
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let list_type = self.lists.list_type(&name_refs);
        let position = list
            .iter()
            .enumerate()
            .position(|(i, e)| element_id(e, &list_type, &name_refs, self.lists, i, false).is_ok_and(|id| id == *head));
        let Some(position) = position else {
            return false;
        };
        if last {
            list.remove(position);
            return list.is_empty();
        }
        let keys = match &list_type {
            ListType::Map(keys) => keys.clone(),
            ListType::Atomic | ListType::Set => Vec::new(),
        };
        if let Some(element) = list.get_mut(position) {
            self.remove_in(element, depth + 1, names, &keys);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::list_types::{BuiltinListTypes, SchemaListTypes};
    use super::*;
    use serde_json::json;

    const T0: &str = "2026-11-22T04:00:00Z";
    const T1: &str = "2026-11-22T04:01:00Z";
    const T2: &str = "2026-11-22T04:02:00Z";

    fn opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
        ApplyOptions { manager, force, api_version: "apps/v1", now, subresource: None, ignore_status: true }
    }

    fn ok(result: Result<Value, ApplyError>) -> Value {
        match result {
            Ok(v) => v,
            Err(e) => panic!("apply failed: {e}"),
        }
    }

    fn conflicts(result: Result<Value, ApplyError>) -> Vec<Conflict> {
        match result {
            Err(ApplyError::Conflicts(c)) => c,
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    fn entries(object: &Value) -> Vec<Value> {
        managed_fields(object).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    /// The fieldsV1 of the entry of `manager` with `operation`.
    fn fields_of(object: &Value, manager: &str, operation: &str) -> Option<Value> {
        entries(object)
            .into_iter()
            .find(|e| e["manager"] == json!(manager) && e["operation"] == json!(operation))
            .map(|e| e["fieldsV1"].clone())
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [
                    {"name": "app", "image": image, "ports": [{"containerPort": 80}]}
                ]}}
            }
        })
    }

    fn lease(holder: &str, renew: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "leader", "namespace": "default"},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": 15,
                "acquireTime": renew,
                "renewTime": renew,
                "leaseTransitions": 0
            }
        })
    }

    #[test]
    fn create_records_apply_entry_with_fields_v1() {
        let out = ok(apply(None, &deployment(2, "app:1"), &BuiltinListTypes, &opts("kubectl", false, T0)));
        assert_eq!(out["spec"]["replicas"], json!(2));
        assert_eq!(
            entries(&out),
            vec![json!({
                "manager": "kubectl",
                "operation": "Apply",
                "apiVersion": "apps/v1",
                "time": T0,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {
                            "k:{\"name\":\"app\"}": {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {
                                    "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                        ".": {},
                                        "f:containerPort": {}
                                    }
                                }
                            }
                        }}}
                    }
                }
            })]
        );
    }

    #[test]
    fn reapply_is_idempotent() {
        let l = BuiltinListTypes;
        let first = ok(apply(None, &deployment(2, "app:1"), &l, &opts("kubectl", false, T0)));
        let second = ok(apply(Some(&first), &deployment(2, "app:1"), &l, &opts("kubectl", false, T1)));
        assert_eq!(first, second);
        assert_eq!(entries(&second)[0]["time"], json!(T0));
    }

    #[test]
    fn conflict_without_force_names_manager_and_field() {
        let l = BuiltinListTypes;
        let created = ok(apply(None, &deployment(2, "app:1"), &l, &opts("kubectl", false, T0)));
        let err = apply(
            Some(&created),
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web"}, "spec": {"replicas": 5}}),
            &l,
            &opts("hpa", false, T1),
        );
        let c = conflicts(err.clone());
        assert_eq!(
            c,
            vec![Conflict {
                manager: "kubectl".into(),
                field: ".spec.replicas".into(),
                api_version: None,
                subresource: None
            }]
        );
        assert_eq!(
            err.err().map(|e| e.to_string()).as_deref(),
            Some("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas")
        );
    }

    #[test]
    fn conflict_message_for_update_owner_and_plural() {
        let l = BuiltinListTypes;
        let mut created = deployment(2, "app:1");
        record_update(None, &mut created, &l, "kubectl-client-side-apply", "apps/v1", T0, None);
        let err = apply(Some(&created), &deployment(3, "app:2"), &l, &opts("kubectl", false, T1));
        let c = conflicts(err.clone());
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].field, ".spec.replicas");
        assert_eq!(c[1].field, ".spec.template.spec.containers[name=\"app\"].image");
        assert_eq!(
            err.err().map(|e| e.to_string()).unwrap_or_default(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n\
             - .spec.replicas\n\
             - .spec.template.spec.containers[name=\"app\"].image"
        );
        let one = ApplyError::Conflicts(vec![c[0].clone()]);
        assert_eq!(
            one.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn force_takes_ownership() {
        let l = BuiltinListTypes;
        let created = ok(apply(None, &deployment(2, "app:1"), &l, &opts("kubectl", false, T0)));
        let out = ok(apply(
            Some(&created),
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web"}, "spec": {"replicas": 5}}),
            &l,
            &opts("hpa", true, T1),
        ));
        assert_eq!(out["spec"]["replicas"], json!(5));
        assert_eq!(fields_of(&out, "hpa", "Apply"), Some(json!({"f:spec": {"f:replicas": {}}})));
        let kubectl = fields_of(&out, "kubectl", "Apply").unwrap_or_default();
        assert!(kubectl["f:spec"].get("f:replicas").is_none());
        assert!(kubectl["f:spec"].get("f:template").is_some());
        // kubectl re-applying its old replicas now conflicts with hpa.
        let c = conflicts(apply(Some(&out), &deployment(2, "app:1"), &l, &opts("kubectl", false, T2)));
        assert_eq!(c[0].manager, "hpa");
        assert_eq!(c[0].field, ".spec.replicas");
    }

    #[test]
    fn omitted_previously_applied_fields_are_removed() {
        let l = BuiltinListTypes;
        let mut config = deployment(2, "app:1");
        config["metadata"]["labels"]["extra"] = json!("x");
        config["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .into_iter()
            .for_each(|c| c.push(json!({"name": "sidecar", "image": "side:1"})));
        config["spec"]["paused"] = json!(false);
        let first = ok(apply(None, &config, &l, &opts("kubectl", false, T0)));
        assert_eq!(first["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len), Some(2));

        let second = ok(apply(Some(&first), &deployment(2, "app:1"), &l, &opts("kubectl", false, T1)));
        assert_eq!(second["metadata"]["labels"], json!({"app": "web"}));
        assert!(second["spec"].get("paused").is_none());
        assert_eq!(
            second["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]}])
        );
        assert_eq!(
            fields_of(&second, "kubectl", "Apply"),
            fields_of(&ok(apply(None, &deployment(2, "app:1"), &l, &opts("kubectl", false, T0))), "kubectl", "Apply")
        );
    }

    #[test]
    fn pruning_keeps_objects_the_new_config_sets_empty() {
        let l = BuiltinListTypes;
        let first = ok(apply(
            None,
            &json!({"metadata": {"name": "c"}, "spec": {"x": {"y": 1}, "z": {"w": 1}}}),
            &l,
            &opts("m", false, T0),
        ));
        let second =
            ok(apply(Some(&first), &json!({"metadata": {"name": "c"}, "spec": {"x": {}}}), &l, &opts("m", false, T1)));
        assert_eq!(second["spec"], json!({"x": {}}));
        assert_eq!(fields_of(&second, "m", "Apply"), Some(json!({"f:spec": {"f:x": {}}})));
    }

    #[test]
    fn omitted_fields_owned_by_others_are_kept() {
        let l = BuiltinListTypes;
        let mut config = deployment(2, "app:1");
        config["metadata"]["labels"]["team"] = json!("a");
        let first = ok(apply(None, &config, &l, &opts("kubectl", false, T0)));
        // Another applier shares the label (same value: no conflict).
        let shared = ok(apply(
            Some(&first),
            &json!({"metadata": {"name": "web", "labels": {"team": "a"}}}),
            &l,
            &opts("labeler", false, T1),
        ));
        let second = ok(apply(Some(&shared), &deployment(2, "app:1"), &l, &opts("kubectl", false, T2)));
        assert_eq!(second["metadata"]["labels"], json!({"app": "web", "team": "a"}));
        assert_eq!(fields_of(&second, "labeler", "Apply"), Some(json!({"f:metadata": {"f:labels": {"f:team": {}}}})));
    }

    #[test]
    fn equal_values_share_ownership() {
        let l = BuiltinListTypes;
        let first = ok(apply(None, &deployment(2, "app:1"), &l, &opts("a", false, T0)));
        let second = ok(apply(Some(&first), &deployment(2, "app:1"), &l, &opts("b", false, T1)));
        assert_eq!(fields_of(&second, "a", "Apply"), fields_of(&second, "b", "Apply"));
        assert!(fields_of(&second, "a", "Apply").is_some());
        // Now changing the shared field conflicts with the other owner.
        let c = conflicts(apply(Some(&second), &deployment(3, "app:1"), &l, &opts("b", false, T2)));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].manager, "a");
        // When `a` gives the field up, `b` keeps it and the value stays.
        let third = ok(apply(
            Some(&second),
            &json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]}]}}}}),
            &l,
            &opts("a", false, T2),
        ));
        assert_eq!(third["spec"]["replicas"], json!(2));
        assert_eq!(third["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn map_list_elements_are_owned_by_key() {
        let l = BuiltinListTypes;
        let first = ok(apply(None, &deployment(2, "app:1"), &l, &opts("kubectl", false, T0)));
        // A second manager adds its own container: no conflict, both kept.
        let second = ok(apply(
            Some(&first),
            &json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "side:1"}]}}}}),
            &l,
            &opts("injector", false, T1),
        ));
        let names: Vec<&str> = second["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["app", "sidecar"]);
        assert_eq!(
            fields_of(&second, "injector", "Apply"),
            Some(json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}}))
        );
        // Changing the other manager's container image conflicts on that element.
        let c = conflicts(apply(
            Some(&second),
            &json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:2"}]}}}}),
            &l,
            &opts("injector", false, T2),
        ));
        assert_eq!(c[0].field, ".spec.template.spec.containers[name=\"app\"].image");
        // The injector dropping its container removes only that element.
        let third = ok(apply(
            Some(&second),
            &json!({"metadata": {"name": "web", "labels": {"injected": "no"}}}),
            &l,
            &opts("injector", false, T2),
        ));
        assert_eq!(third["spec"]["template"]["spec"]["containers"], first["spec"]["template"]["spec"]["containers"]);
    }

    #[test]
    fn defaulted_key_fields_identify_the_same_element() {
        let l = BuiltinListTypes;
        let mut live = ok(apply(None, &deployment(1, "app:1"), &l, &opts("kubectl", false, T0)));
        // The server defaulted the protocol after the first apply.
        live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
        let out = ok(apply(Some(&live), &deployment(1, "app:1"), &l, &opts("kubectl", false, T1)));
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
    }

    #[test]
    fn merged_lists_follow_applied_order_and_keep_live_only_elements() {
        let l = BuiltinListTypes;
        let live = json!({"metadata": {"name": "p", "managedFields": []},
            "spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
        let out = ok(apply(
            Some(&live),
            &json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}]}}),
            &l,
            &ApplyOptions { force: true, ..opts("m", false, T0) },
        ));
        let names: Vec<&str> =
            out["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["b", "a", "x", "c"]);
    }

    #[test]
    fn set_lists_union_and_atomic_lists_replace() {
        let l = BuiltinListTypes;
        let live = ok(apply(
            None,
            &json!({"metadata": {"name": "x", "finalizers": ["a"]},
                    "spec": {"containers": [{"name": "c", "args": ["1", "2"]}]}}),
            &l,
            &opts("one", false, T0),
        ));
        let out = ok(apply(
            Some(&live),
            &json!({"metadata": {"name": "x", "finalizers": ["b"]}}),
            &l,
            &opts("two", false, T1),
        ));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(fields_of(&out, "two", "Apply"), Some(json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}})));
        let out = ok(apply(
            Some(&out),
            &json!({"metadata": {"name": "x", "finalizers": ["a"]},
                    "spec": {"containers": [{"name": "c", "args": ["3"]}]}}),
            &l,
            &opts("one", false, T2),
        ));
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["3"]));
        let c = conflicts(apply(
            Some(&out),
            &json!({"spec": {"containers": [{"name": "c", "args": ["4"]}]}}),
            &l,
            &opts("two", false, T2),
        ));
        assert_eq!(c[0].field, ".spec.containers[name=\"c\"].args");
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let l = BuiltinListTypes;
        let err = apply(None, &json!({"spec": {"containers": [{"image": "x"}]}}), &l, &opts("m", false, T0));
        assert!(
            matches!(&err, Err(ApplyError::Invalid(m)) if m.contains(".spec.containers: element 0") && m.contains("\"name\"")),
            "{err:?}"
        );
        let err =
            apply(None, &json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}), &l, &opts("m", false, T0));
        assert!(
            matches!(&err, Err(ApplyError::Invalid(m)) if m == ".spec.containers: duplicate entries for key [name=\"a\"]"),
            "{err:?}"
        );
        assert!(matches!(apply(None, &json!([]), &l, &opts("m", false, T0)), Err(ApplyError::Invalid(_))));
    }

    #[test]
    fn status_is_ignored_when_asked() {
        let l = BuiltinListTypes;
        let mut config = deployment(1, "app:1");
        config["status"] = json!({"replicas": 9});
        let out = ok(apply(None, &config, &l, &opts("m", false, T0)));
        assert!(out.get("status").is_none());
        let mut status_opts = opts("m", false, T0);
        status_opts.ignore_status = false;
        status_opts.subresource = Some("status");
        let out = ok(apply(Some(&out), &json!({"status": {"replicas": 9}}), &l, &status_opts));
        assert_eq!(out["status"]["replicas"], json!(9));
        let status_entry = entries(&out).into_iter().find(|e| e["subresource"] == json!("status"));
        assert_eq!(status_entry.map(|e| e["fieldsV1"].clone()), Some(json!({"f:status": {"f:replicas": {}}})));
    }

    #[test]
    fn record_update_on_create_owns_everything_but_ignored_fields() {
        let l = BuiltinListTypes;
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "d", "uid": "u", "resourceVersion": "1"},
            "data": {"a": "1"}});
        record_update(None, &mut obj, &l, "kubectl-create", "v1", T0, None);
        assert_eq!(
            entries(&obj),
            vec![json!({"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                        "time": T0, "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}})]
        );
    }

    #[test]
    fn record_update_transfers_ownership() {
        let l = BuiltinListTypes;
        let created = ok(apply(None, &deployment(2, "app:1"), &l, &opts("kubectl", false, T0)));
        let mut updated = created.clone();
        updated["spec"]["replicas"] = json!(4);
        updated["spec"]["paused"] = json!(true);
        if let Some(labels) = updated["metadata"]["labels"].as_object_mut() {
            labels.remove("app");
        }
        record_update(Some(&created), &mut updated, &l, "kube-controller-manager", "apps/v1", T1, None);
        assert_eq!(
            fields_of(&updated, "kube-controller-manager", "Update"),
            // The emptied labels object is now an (empty-object) leaf it owns.
            Some(json!({"f:metadata": {"f:labels": {}}, "f:spec": {"f:paused": {}, "f:replicas": {}}}))
        );
        let kubectl = fields_of(&updated, "kubectl", "Apply").unwrap_or_default();
        assert!(kubectl["f:spec"].get("f:replicas").is_none());
        assert!(kubectl.get("f:metadata").is_none());
        // Entries are sorted: Apply before Update.
        let ops: Vec<Value> = entries(&updated).iter().map(|e| e["operation"].clone()).collect();
        assert_eq!(ops, [json!("Apply"), json!("Update")]);
        // kubectl applying its old replicas now conflicts with the controller.
        let err = apply(Some(&updated), &deployment(2, "app:1"), &l, &opts("kubectl", false, T2));
        assert_eq!(
            err.err().map(|e| e.to_string()).unwrap_or_default(),
            "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn record_update_noop_keeps_managed_fields_and_merges_same_manager() {
        let l = BuiltinListTypes;
        let mut obj = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        record_update(None, &mut obj, &l, "m", "v1", T0, None);
        let mut same = obj.clone();
        record_update(Some(&obj), &mut same, &l, "m", "v1", T1, None);
        assert_eq!(same, obj);
        let mut more = obj.clone();
        more["data"]["b"] = json!("2");
        record_update(Some(&obj), &mut more, &l, "m", "v1", T1, None);
        assert_eq!(
            entries(&more),
            vec![json!({"manager": "m", "operation": "Update", "apiVersion": "v1", "time": T1,
                        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}})]
        );
        // Removing everything the manager owned drops its entry.
        let mut emptied = more.clone();
        emptied["data"] = json!({});
        record_update(Some(&more), &mut emptied, &l, "other", "v1", T2, None);
        assert!(fields_of(&emptied, "m", "Update").is_none());
        assert_eq!(fields_of(&emptied, "other", "Update"), Some(json!({"f:data": {}})));
    }

    #[test]
    fn record_update_honours_client_managed_fields() {
        let l = BuiltinListTypes;
        let mut obj = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        record_update(None, &mut obj, &l, "m", "v1", T0, None);
        let mut stripped = obj.clone();
        stripped["metadata"]["managedFields"] = json!([{}]);
        record_update(Some(&obj), &mut stripped, &l, "m", "v1", T1, None);
        assert!(stripped["metadata"].get("managedFields").is_none());
        let mut kept = obj.clone();
        kept["metadata"]["managedFields"] = json!([]);
        record_update(Some(&obj), &mut kept, &l, "m", "v1", T1, None);
        assert_eq!(kept, obj);
    }

    #[test]
    fn first_apply_on_unmanaged_object_conflicts_with_before_first_apply() {
        let l = BuiltinListTypes;
        let live = deployment(2, "app:1");
        let c = conflicts(apply(Some(&live), &deployment(3, "app:1"), &l, &opts("kubectl", false, T0)));
        assert_eq!(c[0].manager, "before-first-apply");
        assert_eq!(c[0].field, ".spec.replicas");
        let same = ok(apply(Some(&live), &deployment(2, "app:1"), &l, &opts("kubectl", false, T0)));
        assert!(fields_of(&same, "before-first-apply", "Update").is_some());
    }

    #[test]
    fn lease_leader_election_between_two_managers() {
        let l = BuiltinListTypes;
        let mut lease_opts = opts("node-a", false, T0);
        lease_opts.api_version = "coordination.k8s.io/v1";
        lease_opts.ignore_status = false;
        let held = ok(apply(None, &lease("node-a", T0), &l, &lease_opts));
        // node-a renews: no conflict with itself.
        let renewed = ok(apply(Some(&held), &lease("node-a", T1), &l, &ApplyOptions { now: T1, ..lease_opts }));
        assert_eq!(renewed["spec"]["renewTime"], json!(T1));

        let b_opts = ApplyOptions { manager: "node-b", now: T2, ..lease_opts };
        let err = apply(Some(&renewed), &lease("node-b", T2), &l, &b_opts);
        let c = conflicts(err.clone());
        assert!(c.iter().all(|c| c.manager == "node-a"));
        assert!(c.iter().any(|c| c.field == ".spec.holderIdentity"));
        assert!(!c.iter().any(|c| c.field == ".spec.leaseDurationSeconds"));
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("Apply failed with 3 conflicts: conflicts with \"node-a\":\n"), "{message}");
        assert!(message.contains("- .spec.holderIdentity"), "{message}");

        let taken = ok(apply(Some(&renewed), &lease("node-b", T2), &l, &ApplyOptions { force: true, ..b_opts }));
        assert_eq!(taken["spec"]["holderIdentity"], json!("node-b"));
        assert_eq!(
            fields_of(&taken, "node-b", "Apply"),
            Some(json!({"f:spec": {"f:acquireTime": {}, "f:holderIdentity": {}, "f:leaseDurationSeconds": {},
                                   "f:leaseTransitions": {}, "f:renewTime": {}}}))
        );
        // node-a keeps only the fields it shares with node-b's values.
        assert_eq!(
            fields_of(&taken, "node-a", "Apply"),
            Some(json!({"f:spec": {"f:leaseDurationSeconds": {}, "f:leaseTransitions": {}}}))
        );
        // node-a trying to take it back without force conflicts with node-b.
        let c = conflicts(apply(Some(&taken), &lease("node-a", T2), &l, &ApplyOptions { now: T2, ..lease_opts }));
        assert!(c.iter().any(|c| c.manager == "node-b" && c.field == ".spec.holderIdentity"));
    }

    #[test]
    fn crd_schema_lists_are_honoured() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "workers": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}}});
        let l = SchemaListTypes { schema: &schema };
        let first = ok(apply(
            None,
            &json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
                    "spec": {"workers": [{"name": "a", "size": 1}], "tags": ["t1"]}}),
            &l,
            &opts("one", false, T0),
        ));
        let second = ok(apply(
            Some(&first),
            &json!({"spec": {"workers": [{"name": "b", "size": 2}], "tags": ["t2"]}}),
            &l,
            &opts("two", false, T1),
        ));
        assert_eq!(
            second["spec"],
            json!({"workers": [{"name": "a", "size": 1}, {"name": "b", "size": 2}], "tags": ["t1", "t2"]})
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let trie = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
                          "f:spec": {"f:list": {"k:{\"name\":\"x\"}": {".": {}, "f:name": {}}, "v:1": {}}}});
        let mut set = BTreeSet::new();
        assert!(decode_trie(&trie, &mut Vec::new(), &mut set).is_some());
        assert_eq!(FieldSet(set).to_fields_v1(), trie);
        assert!(decode_trie(&json!({"f:a": 1}), &mut Vec::new(), &mut BTreeSet::new()).is_none());
    }

    #[test]
    fn paths_render_like_structured_merge_diff() {
        let path: Path = vec![
            "f:spec".into(),
            "f:ports".into(),
            "k:{\"port\":80,\"protocol\":\"TCP\"}".into(),
            "f:targetPort".into(),
        ];
        assert_eq!(display_path(&path), ".spec.ports[port=80,protocol=\"TCP\"].targetPort");
        assert_eq!(
            display_path(&vec!["f:metadata".into(), "f:finalizers".into(), "v:\"x\"".into()]),
            ".metadata.finalizers[=\"x\"]"
        );
        assert_eq!(canonical(&json!({"b": 1, "a": [true, null]})), "{\"a\":[true,null],\"b\":1}");
    }
}
