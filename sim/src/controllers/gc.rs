//! The garbage collector: removes dependents whose owners are gone (background propagation),
//! deletes dependents before their owner (foreground, finalizer `foregroundDeletion`) and
//! orphans dependents (finalizer `orphan`), following `metadata.ownerReferences`.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use super::modify;
use crate::api::ops::{Api, DeleteOptions, FOREGROUND, ORPHAN, Propagation};
use crate::api::resources::GroupResource;
use crate::api::store::{Event, EventType, ObjectRef};

const MANAGER: &str = "generic-garbage-collector";

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj["metadata"]["finalizers"].as_array().is_some_and(|a| a.iter().any(|x| x == f))
}

fn deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Runs until the event channel closes.
pub async fn run(api: Arc<Api>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    while let Some((_, e)) = events.recv().await {
        let obj = &e.object;
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        match e.kind {
            EventType::Deleted => {
                for dep in api.store.dependents(&uid) {
                    collect_dependent(&api, &dep, Propagation::Background);
                }
                for owner in owner_uids(obj) {
                    if let Some(oref) = api.store.by_uid(&owner) {
                        process_owner(&api, &oref);
                    }
                }
            }
            EventType::Added | EventType::Modified => {
                let owners = owner_uids(obj);
                if !owners.is_empty() && owners.iter().all(|u| api.store.by_uid(u).is_none()) {
                    let (ns, name) = crate::api::store::key_of(obj);
                    let gr = GroupResource {
                        group: crate::api::resources::split_api_version(obj["apiVersion"].as_str().unwrap_or_default())
                            .0
                            .to_string(),
                        resource: String::new(),
                    };
                    if let Some(rt) = api.registry.by_kind(
                        obj["apiVersion"].as_str().unwrap_or_default(),
                        obj["kind"].as_str().unwrap_or_default(),
                    ) {
                        let oref =
                            ObjectRef { gr: GroupResource { resource: rt.plural.clone(), ..gr }, namespace: ns, name };
                        collect_dependent(&api, &oref, Propagation::Background);
                    }
                }
                if deleting(obj) && (has_finalizer(obj, FOREGROUND) || has_finalizer(obj, ORPHAN)) {
                    let (ns, name) = crate::api::store::key_of(obj);
                    if let Some(rt) = api.registry.by_kind(
                        obj["apiVersion"].as_str().unwrap_or_default(),
                        obj["kind"].as_str().unwrap_or_default(),
                    ) {
                        process_owner(&api, &ObjectRef { gr: rt.group_resource(), namespace: ns, name });
                    }
                }
            }
        }
    }
}

/// Deletes a dependent whose owners are all gone (or being deleted in the foreground); drops
/// references to absent owners when others remain.
fn collect_dependent(api: &Api, dep: &ObjectRef, policy: Propagation) {
    let Some(rt) = api.registry.any_version(&dep.gr) else { return };
    let Some(obj) = api.store.get(&dep.gr, &dep.namespace, &dep.name) else { return };
    let refs = obj["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    let mut live = Vec::new();
    let mut foreground_owner = false;
    for r in &refs {
        let uid = r["uid"].as_str().unwrap_or_default();
        if let Some(owner_ref) = api.store.by_uid(uid) {
            if let Some(owner) = api.store.get(&owner_ref.gr, &owner_ref.namespace, &owner_ref.name)
                && deleting(&owner)
                && has_finalizer(&owner, FOREGROUND)
            {
                foreground_owner = true;
                continue;
            }
            live.push(uid.to_string());
        }
    }
    if live.is_empty() {
        if deleting(&obj) && !foreground_owner {
            return;
        }
        let policy = if foreground_owner { Propagation::Foreground } else { policy };
        let opts = DeleteOptions { propagation: Some(policy), ..Default::default() };
        if let Err(e) = api.delete(&rt, &dep.namespace, &dep.name, &opts)
            && e.code != 404
        {
            tracing::warn!(object = %dep.name, error = %e, "garbage collector could not delete dependent");
        }
    } else if live.len() < refs.len() && !foreground_owner {
        let result = modify(api, &rt, &dep.namespace, &dep.name, MANAGER, |o| {
            let Some(list) = o["metadata"]["ownerReferences"].as_array_mut() else { return false };
            let before = list.len();
            list.retain(|r| r["uid"].as_str().is_some_and(|u| live.iter().any(|l| l == u)));
            list.len() != before
        });
        if let Err(e) = result {
            tracing::warn!(object = %dep.name, error = %e, "garbage collector could not drop a dangling owner reference");
        }
    }
}

/// Carries out a pending foreground or orphan deletion of an owner.
fn process_owner(api: &Api, oref: &ObjectRef) {
    let Some(rt) = api.registry.any_version(&oref.gr) else { return };
    let Some(owner) = api.store.get(&oref.gr, &oref.namespace, &oref.name) else { return };
    if !deleting(&owner) {
        return;
    }
    let uid = owner["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let deps = api.store.dependents(&uid);
    let finalizer = if has_finalizer(&owner, ORPHAN) {
        for dep in &deps {
            if let Some(dep_rt) = api.registry.any_version(&dep.gr) {
                let _ = modify(api, &dep_rt, &dep.namespace, &dep.name, MANAGER, |o| {
                    let Some(list) = o["metadata"]["ownerReferences"].as_array_mut() else { return false };
                    let before = list.len();
                    list.retain(|r| r["uid"] != uid.as_str());
                    list.len() != before
                });
            }
        }
        ORPHAN
    } else if has_finalizer(&owner, FOREGROUND) {
        for dep in &deps {
            collect_dependent(api, dep, Propagation::Foreground);
        }
        if !api.store.dependents(&uid).is_empty() {
            return;
        }
        FOREGROUND
    } else {
        return;
    };
    let result = modify(api, &rt, &oref.namespace, &oref.name, MANAGER, |o| {
        let Some(list) = o["metadata"]["finalizers"].as_array_mut() else { return false };
        let before = list.len();
        list.retain(|f| f != finalizer);
        list.len() != before
    });
    if let Err(e) = result {
        tracing::warn!(object = %oref.name, error = %e, "garbage collector could not remove its finalizer");
    }
}
