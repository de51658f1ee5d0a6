//! Namespace lifecycle: a `default` ServiceAccount in every new namespace, and termination —
//! a deleted namespace's content is deleted, then its `kubernetes` finalizer is removed and the
//! namespace goes away.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::modify;
use crate::api::ops::{Api, DeleteOptions, ListOptions, WriteCtx};
use crate::api::resources::GroupResource;
use crate::api::store::{Event, EventType};

const MANAGER: &str = "namespace-controller";

/// Runs until the event channel closes.
pub async fn run(api: Arc<Api>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    let mut terminating: BTreeSet<String> = BTreeSet::new();
    let mut retry = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some((gr, e)) = ev else { return };
                let obj = &e.object;
                if gr.group.is_empty() && gr.resource == "namespaces" {
                    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    match e.kind {
                        EventType::Added => ensure_default_service_account(&api, &name),
                        EventType::Modified if !obj["metadata"]["deletionTimestamp"].is_null() => {
                            terminating.insert(name.clone());
                            terminate(&api, &name);
                        }
                        EventType::Deleted => { terminating.remove(&name); }
                        _ => {}
                    }
                } else if e.kind == EventType::Deleted {
                    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
                    if terminating.contains(ns) {
                        terminate(&api, ns);
                    }
                }
            }
            // Content can outlive one pass (finalizers, graceful pods): look again.
            _ = retry.tick(), if !terminating.is_empty() => {
                for ns in terminating.clone() {
                    terminate(&api, &ns);
                }
            }
        }
    }
}

fn ensure_default_service_account(api: &Api, namespace: &str) {
    let Some(rt) = api.registry.get("", "v1", "serviceaccounts") else { return };
    if api.get(&rt, namespace, "default").is_ok() {
        return;
    }
    let sa =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}});
    if let Err(e) = api.create(&rt, namespace, sa, &WriteCtx::controller("service-account-controller"))
        && e.code != 409
        && e.code != 403
    {
        tracing::warn!(namespace, error = %e, "could not create the default ServiceAccount");
    }
}

fn terminate(api: &Api, namespace: &str) {
    for gr in api.store.resources_in_namespace(namespace) {
        let Some(rt) = api.registry.any_version(&gr) else { continue };
        if !rt.namespaced {
            continue;
        }
        let opts = DeleteOptions::default();
        if let Err(e) = api.delete_collection(&rt, Some(namespace), &ListOptions::default(), &opts) {
            tracing::warn!(namespace, resource = %gr, error = %e, "namespace controller could not delete content");
        }
    }
    if api.store.count_in_namespace(namespace) > 0 {
        return;
    }
    let Some(rt) = api.registry.get("", "v1", "namespaces") else { return };
    let result = modify(api, &rt, "", namespace, MANAGER, |ns| match ns["spec"]["finalizers"].as_array_mut() {
        Some(list) if list.iter().any(|f| f == "kubernetes") => {
            list.retain(|f| f != "kubernetes");
            true
        }
        _ => false,
    });
    if let Err(e) = result {
        tracing::warn!(namespace, error = %e, "namespace controller could not finalize");
    }
}
