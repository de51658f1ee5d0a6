//! PodChaos, as chaos-controller-manager and chaos-daemon carry it out:
//!
//! - `pod-kill`: deletes the pod with `gracePeriodSeconds = spec.gracePeriod` (default 0). The
//!   owning controller replaces it. One-shot.
//! - `container-kill`: kills the container's process through its node's kubelet (SIGKILL to the
//!   process group); the kubelet restarts it per `restartPolicy`. One-shot.
//! - `pod-failure`: saves each container's image in a pod annotation and switches it to the
//!   pause image. The kubelet restarts the container as a process that serves nothing (probes
//!   fail, nothing listens) while the pod stays Running; recovery puts the images back. Only
//!   `spec.containers` are switched: the kubelet does not re-run completed init containers.
//!   An object whose finalizer is force-removed leaves the pause images in place (the original
//!   images stay in the pod's `pod-failure.chaos-mesh.org/<container>` annotations).

use serde_json::{Value, json};

use super::Shared;
use super::status::{MANAGER, Operation};
use crate::api::ops::{DeleteOptions, Subresource, WriteCtx};

/// Annotation prefix under which pod-failure keeps a container's original image.
pub const IMAGE_ANNOTATION_PREFIX: &str = "pod-failure.chaos-mesh.org/";

/// Applies or recovers the action of `obj` on the target with record `id`.
pub(crate) async fn act(shared: &Shared, obj: &Value, id: &str, op: Operation) -> Result<(), String> {
    let action = obj["spec"]["action"].as_str().unwrap_or_default();
    match (action, op) {
        ("pod-kill", Operation::Apply) => kill_pod(shared, obj, id),
        ("container-kill", Operation::Apply) => kill_container(shared, id).await,
        ("pod-failure", op) => fail_pod(shared, id, op == Operation::Apply),
        (_, Operation::Recover) => Ok(()),
        (other, _) => Err(format!("spec.action {other:?} is not one of pod-kill, pod-failure, container-kill")),
    }
}

fn split_id(id: &str) -> (&str, &str, Option<&str>) {
    let mut parts = id.splitn(3, '/');
    let ns = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    (ns, name, parts.next())
}

fn kill_pod(shared: &Shared, obj: &Value, id: &str) -> Result<(), String> {
    let (ns, name, _) = split_id(id);
    let rt = shared.api.resource("", "v1", "pods").map_err(|e| e.message)?;
    let grace = obj["spec"]["gracePeriod"].as_i64().unwrap_or(0);
    let opts = DeleteOptions { grace_period: Some(grace), ..Default::default() };
    match shared.api.delete(&rt, ns, name, &opts) {
        Ok(_) => Ok(()),
        // Already gone: what the kill wanted.
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(format!("deleting pod {id}: {}", e.message)),
    }
}

async fn kill_container(shared: &Shared, id: &str) -> Result<(), String> {
    let (ns, name, container) = split_id(id);
    let container = container.ok_or_else(|| format!("record {id} names no container"))?;
    let rt = shared.api.resource("", "v1", "pods").map_err(|e| e.message)?;
    let pod = shared.api.get(&rt, ns, name).map_err(|e| format!("reading pod {ns}/{name}: {}", e.message))?;
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let Some(handle) = shared.nodes.iter().find(|n| n.name() == node) else {
        return Err(format!("pod {ns}/{name} is on node {node:?}, which has no embedded kubelet"));
    };
    handle.kill_container(uid, container).await
}

/// Switches the pod's containers to the pause image (`fail`) or back.
fn fail_pod(shared: &Shared, id: &str, fail: bool) -> Result<(), String> {
    let (ns, name, _) = split_id(id);
    let rt = shared.api.resource("", "v1", "pods").map_err(|e| e.message)?;
    let pause = shared.config.pause_image.as_str();
    let ctx = WriteCtx::controller(MANAGER);
    for _ in 0..16 {
        let pod = match shared.api.get(&rt, ns, name) {
            Ok(p) => p,
            // A pod that is gone has nothing to recover; one to fail must exist.
            Err(e) if e.code == 404 && !fail => return Ok(()),
            Err(e) => return Err(format!("reading pod {id}: {}", e.message)),
        };
        let mut next = (*pod).clone();
        let mut changed = false;
        let containers = next["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let mut annotations = next["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        let mut updated = Vec::new();
        for mut c in containers {
            let cname = c["name"].as_str().unwrap_or_default().to_string();
            let key = format!("{IMAGE_ANNOTATION_PREFIX}{cname}");
            if fail {
                if !annotations.contains_key(&key) {
                    annotations.insert(key, c["image"].clone());
                    c["image"] = json!(pause);
                    changed = true;
                }
            } else if let Some(image) = annotations.remove(&key) {
                c["image"] = image;
                changed = true;
            }
            updated.push(c);
        }
        if !changed {
            return Ok(());
        }
        next["spec"]["containers"] = json!(updated);
        next["metadata"]["annotations"] = Value::Object(annotations);
        match shared.api.update(&rt, ns, name, next, Subresource::Main, &ctx) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 && !fail => return Ok(()),
            Err(e) => return Err(format!("updating the images of pod {id}: {}", e.message)),
        }
    }
    Err(format!("updating the images of pod {id}: too many conflicts"))
}
