//! CRD cleanup: a deleted CustomResourceDefinition first loses all its custom resources, then
//! its `customresourcecleanup` finalizer, and stops being served.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::modify;
use crate::api::crd::{CLEANUP_FINALIZER, served_types};
use crate::api::ops::{Api, DeleteOptions, ListOptions};
use crate::api::resources::GroupResource;
use crate::api::store::{Event, EventType};

const MANAGER: &str = "apiextensions-crd-finalizer";

/// Runs until the event channel closes.
pub async fn run(api: Arc<Api>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    let mut pending: Vec<String> = Vec::new();
    let mut retry = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some((gr, e)) = ev else { return };
                if gr.group == "apiextensions.k8s.io" && gr.resource == "customresourcedefinitions"
                    && e.kind == EventType::Modified && !e.object["metadata"]["deletionTimestamp"].is_null()
                {
                    let name = e.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    if !cleanup(&api, &name) && !pending.contains(&name) {
                        pending.push(name);
                    }
                }
            }
            _ = retry.tick(), if !pending.is_empty() => {
                pending.retain(|name| !cleanup(&api, name));
            }
        }
    }
}

/// Deletes the CRD's objects; when none remain, removes the finalizer. True when done.
fn cleanup(api: &Api, crd_name: &str) -> bool {
    let Some(crd_rt) = api.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions") else { return true };
    let Ok(crd) = api.get(&crd_rt, "", crd_name) else { return true };
    let mut remaining = 0;
    if let Some(rt) = served_types(&crd).into_iter().next() {
        let opts = DeleteOptions::default();
        let _ = api.delete_collection(&rt, None, &ListOptions::default(), &opts);
        remaining = api.list(&rt, None, &ListOptions::default()).map(|l| l.items.len()).unwrap_or(0);
    }
    if remaining > 0 {
        return false;
    }
    // Stop serving before the CRD disappears: a client that sees the deletion must not be able to
    // list the custom resources any more.
    api.registry.remove_crd(crd_name);
    let result = modify(api, &crd_rt, "", crd_name, MANAGER, |o| {
        let Some(list) = o["metadata"]["finalizers"].as_array_mut() else { return false };
        let before = list.len();
        list.retain(|f| f != CLEANUP_FINALIZER);
        list.len() != before
    });
    result.is_ok()
}
