//! In-process controllers of the embedded cluster (the kube-controller-manager and
//! apiextensions subset): garbage collection, namespace lifecycle and the workload controllers
//! (Deployment, ReplicaSet, ReplicationController, StatefulSet, Job, CronJob, TTL after
//! finished, disruption budgets, Endpoints, EndpointSlice).

pub mod crd;
pub mod cronjob;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod replication;
pub mod scheduler;
pub mod statefulset;
pub mod ttl_after_finished;

use std::sync::Arc;

use serde_json::Value;

use crate::api::ops::{Api, Subresource, WriteCtx};
use crate::api::resources::ResourceType;
use crate::api::status::ApiResult;

/// Read-modify-write of one object through the API semantics, retried on conflict.
/// `change` returns `false` to leave the object alone.
pub fn modify(
    api: &Api,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    manager: &str,
    mut change: impl FnMut(&mut Value) -> bool,
) -> ApiResult<()> {
    let ctx = WriteCtx::controller(manager);
    for _ in 0..16 {
        let cur = match api.get(rt, namespace, name) {
            Ok(c) => c,
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut next = (*cur).clone();
        if !change(&mut next) {
            return Ok(());
        }
        match api.update(rt, namespace, name, next, Subresource::Main, &ctx) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Spawns the core controllers (garbage collection, namespaces, CRDs) and, if `workloads`, the
/// workload and endpoints controllers; they stop when the returned handles are aborted.
pub fn spawn_all(api: &Arc<Api>, workloads: bool) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(gc::run(api.clone(), api.store.subscribe())),
        tokio::spawn(namespace::run(api.clone(), api.store.subscribe())),
        tokio::spawn(crd::run(api.clone(), api.store.subscribe())),
    ];
    if workloads {
        tasks.extend([
            tokio::spawn(deployment::run(api.clone(), api.store.subscribe())),
            tokio::spawn(replicaset::run(api.clone(), api.store.subscribe(), replicaset::REPLICA_SETS)),
            tokio::spawn(replication::run(api.clone(), api.store.subscribe())),
            tokio::spawn(statefulset::run(api.clone(), api.store.subscribe())),
            tokio::spawn(job::run(api.clone(), api.store.subscribe())),
            tokio::spawn(cronjob::run(api.clone(), api.store.subscribe())),
            tokio::spawn(disruption::run(api.clone(), api.store.subscribe())),
            tokio::spawn(ttl_after_finished::run(api.clone(), api.store.subscribe())),
            tokio::spawn(endpoints::run(api.clone(), api.store.subscribe())),
            tokio::spawn(endpointslice::run(api.clone(), api.store.subscribe())),
        ]);
    }
    tasks
}

/// Spawns the scheduler and the node lifecycle controller (each if enabled).
pub fn spawn_scheduling(
    api: &Arc<Api>,
    scheduler: &scheduler::SchedulerConfig,
    lifecycle: &node_lifecycle::NodeLifecycleConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if scheduler.enabled {
        tasks.push(tokio::spawn(scheduler::run(api.clone(), api.store.subscribe(), scheduler.clone())));
    }
    if lifecycle.enabled {
        tasks.push(tokio::spawn(node_lifecycle::run(api.clone(), api.store.subscribe(), lifecycle.clone())));
    }
    tasks
}
