//! The node agent's heartbeats: the node Lease in `kube-node-lease` (renewed every
//! `lease_renew_interval`) and the node status (conditions, addresses, capacity, nodeInfo),
//! posted when it differs from what the API holds or every `node_status_report_frequency`.
//! Both pause while the node's heartbeat is off.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::NodeCtx;
use super::events::KUBELET;
use crate::api::ops::{WriteCtx, now_micro, now_rfc3339};

/// Runs until the kubelet stops.
pub(crate) async fn run(ctx: Arc<NodeCtx>) {
    let mut heartbeat = ctx.heartbeat.subscribe();
    let mut stop = ctx.stop.subscribe();
    let mut lease_tick = tokio::time::interval(ctx.config.lease_renew_interval);
    let mut status_tick = tokio::time::interval(ctx.config.node_status_update_frequency);
    for t in [&mut lease_tick, &mut status_tick] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut last_report: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if *heartbeat.borrow() {
                    renew_lease(&ctx);
                }
            }
            _ = status_tick.tick() => {
                if *heartbeat.borrow() {
                    post_status(&ctx, &mut last_report);
                }
            }
            changed = heartbeat.changed() => {
                if changed.is_err() {
                    break;
                }
                if *heartbeat.borrow_and_update() {
                    renew_lease(&ctx);
                    last_report = None;
                    post_status(&ctx, &mut last_report);
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

fn renew_lease(ctx: &NodeCtx) {
    let api = &ctx.api;
    let Ok(rt) = api.resource("coordination.k8s.io", "v1", "leases") else { return };
    let now = now_micro();
    let node = &ctx.node;
    let mut renewed = false;
    let result = crate::controllers::modify(api, &rt, "kube-node-lease", node, KUBELET, |lease| {
        lease["spec"]["holderIdentity"] = json!(node);
        lease["spec"]["leaseDurationSeconds"] = json!(ctx.config.lease_duration_seconds);
        lease["spec"]["renewTime"] = json!(now);
        renewed = true;
        true
    });
    if let Err(e) = result {
        tracing::warn!(node = %node, error = %e, "kubelet could not renew its lease");
        return;
    }
    if renewed {
        return;
    }
    let owner = node_uid(ctx).map(|uid| json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]));
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": ctx.config.lease_duration_seconds, "renewTime": now},
    });
    if let Some(o) = owner {
        lease["metadata"]["ownerReferences"] = o;
    }
    if let Err(e) = api.create(&rt, "kube-node-lease", lease, &WriteCtx::controller(KUBELET))
        && e.code != 409
    {
        tracing::warn!(node = %node, error = %e, "kubelet could not create its lease");
    }
}

fn node_uid(ctx: &NodeCtx) -> Option<String> {
    let rt = ctx.api.resource("", "v1", "nodes").ok()?;
    let node = ctx.api.get(&rt, "", &ctx.node).ok()?;
    node["metadata"]["uid"].as_str().map(str::to_string)
}

/// `(type, reason, message)` of the conditions a healthy kubelet reports; Ready is True, the
/// pressure conditions False.
const CONDITIONS: [(&str, &str, &str); 4] = [
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "KubeletReady", "kubelet is posting ready status"),
];

fn desired_status(ctx: &NodeCtx) -> (Value, Value, Value) {
    let addresses = json!([
        {"type": "InternalIP", "address": ctx.host_ip.to_string()},
        {"type": "Hostname", "address": ctx.node},
    ]);
    let capacity = json!(ctx.config.capacity);
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
    let boot_id =
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let id = super::images::hex64(&ctx.node);
    let node_info = json!({
        "machineID": &id[..32], "systemUUID": &id[32..], "bootID": boot_id,
        "kernelVersion": kernel, "osImage": "hadrill embedded node", "containerRuntimeVersion": "hadrill://0.1.0",
        "kubeletVersion": "v1.35.0", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": arch,
    });
    (addresses, capacity, node_info)
}

fn post_status(ctx: &NodeCtx, last_report: &mut Option<Instant>) {
    let Ok(rt) = ctx.api.resource("", "v1", "nodes") else { return };
    let Ok(node) = ctx.api.get(&rt, "", &ctx.node) else { return };
    let (addresses, capacity, node_info) = desired_status(ctx);
    let current = &node["status"];
    let conditions_ok = CONDITIONS.iter().all(|(t, reason, _)| {
        current["conditions"].as_array().into_iter().flatten().any(|c| {
            c["type"] == *t && c["reason"] == *reason && c["status"] == if *t == "Ready" { "True" } else { "False" }
        })
    });
    let due = last_report.is_none_or(|t| t.elapsed() >= ctx.config.node_status_report_frequency);
    if conditions_ok && !due && current["addresses"] == addresses && current["capacity"] == capacity {
        return;
    }
    let now = now_rfc3339();
    let result = super::update_status(&ctx.api, "nodes", "", &ctx.node, |n| {
        let old = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> = CONDITIONS
            .iter()
            .map(|(t, reason, message)| {
                let status = if *t == "Ready" { "True" } else { "False" };
                let since = old
                    .iter()
                    .find(|c| c["type"] == *t && c["status"] == status)
                    .and_then(|c| c["lastTransitionTime"].as_str())
                    .unwrap_or(&now)
                    .to_string();
                json!({"type": t, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": since})
            })
            .collect();
        conditions.extend(
            old.iter().filter(|c| !CONDITIONS.iter().any(|(t, _, _)| c["type"] == *t)).cloned().collect::<Vec<_>>(),
        );
        let s = &mut n["status"];
        s["conditions"] = json!(conditions);
        s["addresses"] = addresses.clone();
        s["capacity"] = capacity.clone();
        s["allocatable"] = capacity.clone();
        s["nodeInfo"] = node_info.clone();
        s["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": 10250}});
        true
    });
    match result {
        Ok(_) => *last_report = Some(Instant::now()),
        Err(e) => tracing::warn!(node = %ctx.node, error = %e, "kubelet could not post node status"),
    }
}
