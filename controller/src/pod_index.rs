//! An index of pods by `(namespace, label key, label value)`, so that finding a workload's pods
//! does not scan every pod of the cluster on each reconcile.
//!
//! The index is kept a *superset* of the pod store: a pod is added before the reflector stores
//! it and removed only after the store dropped it, and every candidate is checked against the
//! store and the selector. It can thus name pods that are gone (filtered out), never miss one.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

type Label = (String, String, String);

#[derive(Default)]
struct Inner {
    by_label: HashMap<Label, HashSet<String>>,
    /// Every (key, value) a pod is indexed under (a union until settled).
    labels_of: HashMap<(String, String), HashSet<(String, String)>>,
}

/// Pods by label.
#[derive(Default)]
pub struct PodIndex {
    inner: Mutex<Inner>,
}

fn key(pod: &Pod) -> Option<(String, String)> {
    Some((pod.metadata.namespace.clone()?, pod.metadata.name.clone()?))
}

impl PodIndex {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the pod under its current labels (before the store has it).
    pub fn add(&self, pod: &Pod) {
        let Some((ns, name)) = key(pod) else { return };
        let mut inner = self.lock();
        for (k, v) in pod.metadata.labels.iter().flatten() {
            inner.by_label.entry((ns.clone(), k.clone(), v.clone())).or_default().insert(name.clone());
            inner.labels_of.entry((ns.clone(), name.clone())).or_default().insert((k.clone(), v.clone()));
        }
    }

    /// Keeps the pod under its current labels only (after the store has them).
    pub fn settle(&self, pod: &Pod) {
        let Some((ns, name)) = key(pod) else { return };
        let current: HashSet<(String, String)> =
            pod.metadata.labels.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut inner = self.lock();
        let previous = inner.labels_of.insert((ns.clone(), name.clone()), current.clone()).unwrap_or_default();
        for (k, v) in previous.difference(&current) {
            remove_name(&mut inner.by_label, (ns.clone(), k.clone(), v.clone()), &name);
        }
        for (k, v) in current {
            inner.by_label.entry((ns.clone(), k, v)).or_default().insert(name.clone());
        }
    }

    /// Removes the pod (after the store dropped it).
    pub fn remove(&self, pod: &Pod) {
        let Some((ns, name)) = key(pod) else { return };
        let mut inner = self.lock();
        for (k, v) in inner.labels_of.remove(&(ns.clone(), name.clone())).unwrap_or_default() {
            remove_name(&mut inner.by_label, (ns.clone(), k, v), &name);
        }
    }

    /// Drops pods that `exists` denies (after a relist, when the store holds the list).
    pub fn prune(&self, exists: impl Fn(&str, &str) -> bool) {
        let mut inner = self.lock();
        let gone: Vec<(String, String)> = inner.labels_of.keys().filter(|(ns, n)| !exists(ns, n)).cloned().collect();
        for (ns, name) in gone {
            for (k, v) in inner.labels_of.remove(&(ns.clone(), name.clone())).unwrap_or_default() {
                remove_name(&mut inner.by_label, (ns.clone(), k, v), &name);
            }
        }
    }

    /// Names of pods in `ns` that may match `selector` (by its most selective `matchLabels`
    /// pair); `None` when the selector has no `matchLabels` (scan instead).
    pub fn candidates(&self, ns: &str, selector: &LabelSelector) -> Option<Vec<String>> {
        let labels = selector.match_labels.as_ref().filter(|l| !l.is_empty())?;
        let inner = self.lock();
        let smallest = labels
            .iter()
            .map(|(k, v)| inner.by_label.get(&(ns.to_string(), k.clone(), v.clone())).map_or(0, HashSet::len))
            .zip(labels.iter())
            .min_by_key(|(n, _)| *n)
            .map(|(_, kv)| kv)?;
        let set = inner.by_label.get(&(ns.to_string(), smallest.0.clone(), smallest.1.clone()));
        Some(set.map(|s| s.iter().cloned().collect()).unwrap_or_default())
    }
}

fn remove_name(by_label: &mut HashMap<Label, HashSet<String>>, label: Label, name: &str) {
    if let Some(set) = by_label.get_mut(&label) {
        set.remove(name);
        if set.is_empty() {
            by_label.remove(&label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "labels": labels}})).expect("pod")
    }

    fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            match_expressions: None,
        }
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn the_index_is_a_superset_until_settled() {
        let idx = PodIndex::default();
        idx.add(&pod("a-1", json!({"app": "a", "tier": "web"})));
        idx.add(&pod("a-2", json!({"app": "a"})));
        idx.add(&pod("b-1", json!({"app": "b"})));
        assert_eq!(idx.candidates("ns", &sel(&[("app", "a")])).map(sorted), Some(vec!["a-1".into(), "a-2".into()]));
        assert_eq!(idx.candidates("ns", &sel(&[("app", "a"), ("tier", "web")])), Some(vec!["a-1".into()]));
        assert_eq!(idx.candidates("other", &sel(&[("app", "a")])), Some(vec![]));
        assert_eq!(idx.candidates("ns", &LabelSelector::default()), None);

        // Relabelled: found under both labels until the store has the new ones.
        let moved = pod("a-2", json!({"app": "b"}));
        idx.add(&moved);
        assert!(idx.candidates("ns", &sel(&[("app", "a")])).is_some_and(|c| c.contains(&"a-2".to_string())));
        idx.settle(&moved);
        assert_eq!(idx.candidates("ns", &sel(&[("app", "a")])), Some(vec!["a-1".into()]));
        assert_eq!(idx.candidates("ns", &sel(&[("app", "b")])).map(sorted), Some(vec!["a-2".into(), "b-1".into()]));

        idx.remove(&moved);
        assert_eq!(idx.candidates("ns", &sel(&[("app", "b")])), Some(vec!["b-1".into()]));
        idx.prune(|_, name| name != "b-1");
        assert_eq!(idx.candidates("ns", &sel(&[("app", "b")])), Some(vec![]));
    }
}
