//! In-memory object storage with etcd-like semantics: one cluster-wide, strictly increasing
//! resourceVersion; per-resource event history that watches read by cursor (so no event is
//! lost or reordered, and a cursor older than the kept history gets 410 Gone); indexes by uid
//! and by owner uid for garbage collection.
//!
//! The store knows nothing of API semantics: [`Store::mutate`] runs a caller-supplied closure
//! against the current object under the store lock, so read-modify-write is atomic.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::resources::GroupResource;
use super::status::ApiError;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// Wire name: `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    /// resourceVersion of the change (for DELETED: the version of the deletion).
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for DELETED, its last state with the deletion's RV).
    pub object: Arc<Value>,
    /// The object before the change, if it existed.
    pub old: Option<Arc<Value>>,
}

/// A reference to a stored object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// Group + resource.
    pub gr: GroupResource,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// What a [`Store::mutate`] closure decided.
pub enum Mutation {
    /// Store this new object (the object must not exist).
    Create(Value),
    /// Replace the object.
    Update(Value),
    /// Remove the object (its final state is given, e.g. with deletionTimestamp).
    Delete(Value),
    /// Change nothing and answer with this object.
    Unchanged(Arc<Value>),
}

/// Result of a mutation.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The object as stored (or as deleted).
    pub object: Arc<Value>,
    /// The event written, if anything changed.
    pub event: Option<EventType>,
}

#[derive(Debug)]
struct Table {
    objects: BTreeMap<(String, String), Arc<Value>>,
    log: VecDeque<Arc<Event>>,
    /// Events with rv <= compacted may have been dropped from `log`.
    compacted: u64,
    notify: watch::Sender<u64>,
}

impl Table {
    fn new(rv: u64) -> Self {
        // Nothing was ever dropped from a new table: every cursor is still served.
        Self { objects: BTreeMap::new(), log: VecDeque::new(), compacted: 0, notify: watch::channel(rv).0 }
    }
}

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    tables: HashMap<GroupResource, Table>,
    by_uid: HashMap<String, ObjectRef>,
    dependents: HashMap<String, BTreeSet<ObjectRef>>,
    subscribers: Vec<mpsc::UnboundedSender<(GroupResource, Arc<Event>)>>,
}

/// Runs under the store lock right after a commit, before watchers are notified.
pub type CommitHook = Box<dyn Fn(&GroupResource, &Event) + Send + Sync>;

/// The object store.
pub struct Store {
    inner: Mutex<Inner>,
    history: usize,
    hook: Option<CommitHook>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("history", &self.history).finish_non_exhaustive()
    }
}

/// A page of a list.
#[derive(Debug)]
pub struct Page {
    /// Objects in key order.
    pub items: Vec<Arc<Value>>,
    /// Cluster resourceVersion at the time of the read.
    pub rv: u64,
    /// Key of the last returned item when more remain.
    pub next: Option<(String, String)>,
}

/// Why a cursor can no longer be served.
#[derive(Debug, Clone, Copy)]
pub struct Expired {
    /// Oldest resourceVersion still served.
    pub oldest: u64,
}

impl Store {
    /// A store that keeps up to `history` events per resource for watches.
    pub fn new(history: usize) -> Self {
        Self { inner: Mutex::new(Inner { rv: 1, ..Default::default() }), history: history.max(1), hook: None }
    }

    /// A store with a commit hook (see [`CommitHook`]).
    pub fn with_hook(history: usize, hook: CommitHook) -> Self {
        Self { hook: Some(hook), ..Self::new(history) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written object (every write is a
        // single map insert after the closure returned), so poisoning is safe to ignore.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current cluster resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Reads one object.
    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner.tables.get(gr)?.objects.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// Looks up where an object with this uid lives.
    pub fn by_uid(&self, uid: &str) -> Option<ObjectRef> {
        self.lock().by_uid.get(uid).cloned()
    }

    /// Objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<ObjectRef> {
        self.lock().dependents.get(owner_uid).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Lists objects of `gr` (in `namespace` if given) that pass `filter`, in key order, starting
    /// after `after`, returning at most `limit` (0 = all).
    pub fn list(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
        limit: usize,
        filter: &dyn Fn(&Value) -> bool,
    ) -> Page {
        let inner = self.lock();
        let rv = inner.rv;
        let Some(table) = inner.tables.get(gr) else { return Page { items: vec![], rv, next: None } };
        let start = match (after, namespace) {
            (Some(k), _) => std::ops::Bound::Excluded(k.clone()),
            (None, Some(ns)) => std::ops::Bound::Included((ns.to_string(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut next = None;
        for ((ns, name), obj) in table.objects.range((start, std::ops::Bound::Unbounded)) {
            if let Some(want) = namespace
                && ns != want
            {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                next = Some((ns.clone(), name.clone()));
                break;
            }
            items.push(obj.clone());
        }
        // `next` holds the first item NOT returned; the continue token names the last returned.
        let next = next.and_then(|_| items.last().map(|o| key_of(o)));
        Page { items, rv, next }
    }

    /// Number of objects of any resource in `namespace`.
    pub fn count_in_namespace(&self, namespace: &str) -> usize {
        let inner = self.lock();
        inner
            .tables
            .values()
            .map(|t| {
                t.objects
                    .range((namespace.to_string(), String::new())..)
                    .take_while(|((ns, _), _)| ns == namespace)
                    .count()
            })
            .sum()
    }

    /// Resources that have objects in `namespace`.
    pub fn resources_in_namespace(&self, namespace: &str) -> Vec<GroupResource> {
        let inner = self.lock();
        inner
            .tables
            .iter()
            .filter(|(_, t)| {
                t.objects
                    .range((namespace.to_string(), String::new())..)
                    .next()
                    .is_some_and(|((ns, _), _)| ns == namespace)
            })
            .map(|(gr, _)| gr.clone())
            .collect()
    }

    /// Atomically reads the object and applies the closure's decision.
    pub fn mutate<F>(&self, gr: &GroupResource, namespace: &str, name: &str, f: F) -> Result<Committed, ApiError>
    where
        F: FnOnce(Option<&Arc<Value>>, u64) -> Result<Mutation, ApiError>,
    {
        let mut inner = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let next_rv = inner.rv + 1;
        let current = inner.tables.get(gr).and_then(|t| t.objects.get(&key)).cloned();
        let decision = f(current.as_ref(), next_rv)?;
        let (kind, mut obj) = match decision {
            Mutation::Unchanged(obj) => return Ok(Committed { object: obj, event: None }),
            Mutation::Create(obj) => {
                if current.is_some() {
                    return Err(ApiError::already_exists(&gr.group, &gr.resource, name));
                }
                (EventType::Added, obj)
            }
            Mutation::Update(obj) => {
                if current.is_none() {
                    return Err(ApiError::not_found(&gr.group, &gr.resource, name));
                }
                (EventType::Modified, obj)
            }
            Mutation::Delete(obj) => {
                if current.is_none() {
                    return Err(ApiError::not_found(&gr.group, &gr.resource, name));
                }
                (EventType::Deleted, obj)
            }
        };
        inner.rv = next_rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(next_rv.to_string()));
        }
        let obj = Arc::new(obj);
        let oref = ObjectRef { gr: gr.clone(), namespace: namespace.to_string(), name: name.to_string() };
        index(&mut inner, &oref, current.as_deref(), (kind != EventType::Deleted).then_some(&*obj));
        let history = self.history;
        let table = inner.tables.entry(gr.clone()).or_insert_with(|| Table::new(next_rv - 1));
        if kind == EventType::Deleted {
            table.objects.remove(&key);
        } else {
            table.objects.insert(key, obj.clone());
        }
        let event = Arc::new(Event { rv: next_rv, kind, object: obj.clone(), old: current });
        if let Some(hook) = &self.hook {
            hook(gr, &event);
        }
        table.log.push_back(event.clone());
        while table.log.len() > history {
            if let Some(dropped) = table.log.pop_front() {
                table.compacted = dropped.rv;
            }
        }
        table.notify.send_replace(next_rv);
        inner.subscribers.retain(|s| s.send((gr.clone(), event.clone())).is_ok());
        Ok(Committed { object: obj, event: Some(kind) })
    }

    /// Events of `gr` with rv > `after`, at most `max`, or [`Expired`] when `after` is older than
    /// the kept history.
    pub fn events_after(&self, gr: &GroupResource, after: u64, max: usize) -> Result<Vec<Arc<Event>>, Expired> {
        let inner = self.lock();
        let Some(table) = inner.tables.get(gr) else {
            return Ok(Vec::new());
        };
        if after < table.compacted {
            return Err(Expired { oldest: table.compacted + 1 });
        }
        let start = table.log.partition_point(|e| e.rv <= after);
        Ok(table.log.range(start..).take(max).cloned().collect())
    }

    /// A receiver that changes whenever `gr` gets a new event.
    pub fn notifier(&self, gr: &GroupResource) -> watch::Receiver<u64> {
        let mut inner = self.lock();
        let rv = inner.rv;
        inner.tables.entry(gr.clone()).or_insert_with(|| Table::new(rv)).notify.subscribe()
    }

    /// Every committed event of every resource, for in-process controllers.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().subscribers.push(tx);
        rx
    }
}

/// `(namespace, name)` of an object.
pub fn key_of(obj: &Value) -> (String, String) {
    let meta = &obj["metadata"];
    (meta["namespace"].as_str().unwrap_or_default().to_string(), meta["name"].as_str().unwrap_or_default().to_string())
}

fn owner_uids(obj: Option<&Value>) -> Vec<String> {
    obj.and_then(|o| o["metadata"]["ownerReferences"].as_array())
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn index(inner: &mut Inner, oref: &ObjectRef, old: Option<&Value>, new: Option<&Value>) {
    let old_uid = old.and_then(|o| o["metadata"]["uid"].as_str());
    let new_uid = new.and_then(|o| o["metadata"]["uid"].as_str());
    if let Some(uid) = old_uid
        && new_uid != Some(uid)
    {
        inner.by_uid.remove(uid);
    }
    if let Some(uid) = new_uid {
        inner.by_uid.insert(uid.to_string(), oref.clone());
    }
    let before = owner_uids(old);
    let after = owner_uids(new);
    for uid in before.iter().filter(|u| !after.contains(u)) {
        if let Some(set) = inner.dependents.get_mut(uid) {
            set.remove(oref);
            if set.is_empty() {
                inner.dependents.remove(uid);
            }
        }
    }
    for uid in after.iter().filter(|u| !before.contains(u)) {
        inner.dependents.entry(uid.clone()).or_default().insert(oref.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gr() -> GroupResource {
        GroupResource { group: String::new(), resource: "configmaps".into() }
    }

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}")}})
    }

    #[test]
    fn resource_versions_increase_and_history_expires() {
        let s = Store::new(2);
        for n in ["a", "b", "c"] {
            s.mutate(&gr(), "default", n, |_, _| Ok(Mutation::Create(cm(n)))).unwrap();
        }
        assert_eq!(s.resource_version(), 4);
        assert!(s.events_after(&gr(), 1, 10).is_err());
        let evs = s.events_after(&gr(), 2, 10).unwrap();
        assert_eq!(evs.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn create_twice_is_already_exists_and_list_pages() {
        let s = Store::new(10);
        for n in ["a", "b", "c"] {
            s.mutate(&gr(), "default", n, |_, _| Ok(Mutation::Create(cm(n)))).unwrap();
        }
        let err = s.mutate(&gr(), "default", "a", |_, _| Ok(Mutation::Create(cm("a")))).unwrap_err();
        assert_eq!(err.code, 409);
        let p1 = s.list(&gr(), Some("default"), None, 2, &|_| true);
        assert_eq!(p1.items.len(), 2);
        let p2 = s.list(&gr(), Some("default"), p1.next.as_ref(), 2, &|_| true);
        assert_eq!(p2.items.len(), 1);
        assert!(p2.next.is_none());
    }

    #[test]
    fn owner_index_follows_owner_references() {
        let s = Store::new(10);
        let mut dep = cm("dep");
        dep["metadata"]["ownerReferences"] = json!([{"uid": "owner-1", "name": "o", "kind": "X", "apiVersion": "v1"}]);
        s.mutate(&gr(), "default", "dep", |_, _| Ok(Mutation::Create(dep.clone()))).unwrap();
        assert_eq!(s.dependents("owner-1").len(), 1);
        s.mutate(&gr(), "default", "dep", |cur, _| Ok(Mutation::Delete((**cur.unwrap()).clone()))).unwrap();
        assert!(s.dependents("owner-1").is_empty());
        assert!(s.by_uid("u-dep").is_none());
    }
}
