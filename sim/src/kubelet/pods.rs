//! The pod sync loop of one node: routes every committed change of a pod bound to the node to
//! that pod's worker (started on first sight, told when the pod is gone).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use super::NodeCtx;
use super::worker::Worker;
use crate::api::ops::ListOptions;
use crate::api::resources::GroupResource;
use crate::api::store::{Event, EventType};

/// Runs until the kubelet stops or the event channel closes.
pub(crate) async fn run(ctx: Arc<NodeCtx>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Value>>>> = HashMap::new();
    let mut stop = ctx.stop.subscribe();
    if let Ok(rt) = ctx.api.resource("", "v1", "pods")
        && let Ok(list) = ctx.api.list(&rt, None, &ListOptions::default())
    {
        for pod in list.items {
            if on_node(&pod, &ctx.node) {
                route(&ctx, &mut workers, EventType::Added, pod);
            }
        }
    }
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some((gr, ev)) = ev else { break };
                if !gr.group.is_empty() || gr.resource != "pods" || !on_node(&ev.object, &ctx.node) {
                    continue;
                }
                route(&ctx, &mut workers, ev.kind, ev.object.clone());
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

fn on_node(pod: &Value, node: &str) -> bool {
    pod["spec"]["nodeName"].as_str() == Some(node)
}

fn route(
    ctx: &Arc<NodeCtx>,
    workers: &mut HashMap<String, watch::Sender<Option<Arc<Value>>>>,
    kind: EventType,
    pod: Arc<Value>,
) {
    let Some(uid) = pod["metadata"]["uid"].as_str().map(str::to_string) else { return };
    if kind == EventType::Deleted {
        if let Some(tx) = workers.remove(&uid) {
            let _ = tx.send(None);
        }
        return;
    }
    if let Some(tx) = workers.get(&uid) {
        let _ = tx.send(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod.clone()));
    workers.insert(uid, tx);
    let worker = Worker::new(ctx.clone(), pod);
    tokio::spawn(worker.run(rx));
}
