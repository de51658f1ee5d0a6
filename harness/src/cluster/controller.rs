//! The failover controller under test in a cluster: deploying deploy/controller, its leader.

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{EnvVar, Namespace};
use kube::api::{Api, Patch, PatchParams};

use super::apply::FIELD_MANAGER;
use crate::chaos::ledger::{RUN_LABEL, SHARED_LABEL};
use crate::probes::wait::until;

/// Namespace of the controller (deploy/controller).
pub const CONTROLLER_NS: &str = "hadrill-system";
/// Name of the controller's Deployment and leader Lease.
pub const CONTROLLER: &str = "hadrill-controller";
/// The kustomization of the controller alone (namespace, RBAC, Deployment).
pub const CONTROLLER_DIR: &str = "deploy/controller";

/// How the controller is deployed.
#[derive(Debug, Clone, Default)]
pub struct ControllerOptions<'a> {
    /// Replicas (at least 1).
    pub replicas: i32,
    /// Environment variables set on its container, e.g. `HADRILL_BLACK_BOX=false`.
    pub env: Vec<(&'a str, &'a str)>,
    /// The run that owns the controller's namespace (so faults on the controller are in
    /// scope), labelled as shared by runs; `None` leaves the namespace's labels alone.
    pub run_id: Option<&'a str>,
}

/// Applies deploy/controller unchanged (its kustomization, in apply order, as `kubectl apply -k`
/// and the kind provider deploy it), sets the environment, scales it, and waits until the
/// replicas are available and one holds the leader Lease.
pub async fn deploy(client: &kube::Client, options: &ControllerOptions<'_>) -> anyhow::Result<()> {
    let replicas = options.replicas;
    ensure!(replicas >= 1, "the controller needs at least 1 replica, got {replicas}");
    super::kustomize::apply(client, &super::repo_path(CONTROLLER_DIR), CONTROLLER_NS).await?;
    if let Some(run) = options.run_id {
        let label = serde_json::json!({"metadata": {"labels": {RUN_LABEL: run, SHARED_LABEL: "true"}}});
        Api::<Namespace>::all(client.clone())
            .patch(CONTROLLER_NS, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .context("labelling the controller's namespace as owned by the run")?;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), CONTROLLER_NS);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    if !options.env.is_empty() {
        let mut d = deployments.get(CONTROLLER).await.context("reading the controller's Deployment")?;
        let containers = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()).map(|s| &mut s.containers);
        let container =
            containers.and_then(|c| c.first_mut()).context("the controller's Deployment has no container")?;
        let vars = container.env.get_or_insert_with(Vec::new);
        for (name, value) in &options.env {
            vars.retain(|v| v.name != *name);
            vars.push(EnvVar { name: (*name).to_string(), value: Some((*value).to_string()), value_from: None });
        }
        // A patch, not a replace: the Deployment's status changes under us while it rolls out.
        let containers = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| &s.containers);
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": containers}}}});
        deployments
            .patch(CONTROLLER, &params, &Patch::Merge(&patch))
            .await
            .context("setting the controller's environment")?;
    }
    let scale = serde_json::json!({"spec": {"replicas": replicas}});
    deployments.patch(CONTROLLER, &params, &Patch::Merge(&scale)).await.context("scaling the controller")?;
    until(&deployments, CONTROLLER, &format!("{replicas} available controller replica(s)"), move |d: &Deployment| {
        d.status.as_ref().is_some_and(|s| {
            s.available_replicas == Some(replicas)
                && s.updated_replicas == Some(replicas)
                && s.replicas == Some(replicas)
                && s.observed_generation == d.metadata.generation
        })
    })
    .await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROLLER_NS);
    until(&leases, CONTROLLER, "a leader holding the controller Lease", |l: &Lease| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_some_and(|h| !h.is_empty())
    })
    .await?;
    Ok(())
}

/// Whether the controller's Deployment exists (a scenario may run without a controller).
pub async fn deployed(client: &kube::Client) -> anyhow::Result<bool> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), CONTROLLER_NS);
    let found =
        api.get_opt(CONTROLLER).await.with_context(|| format!("reading deployment {CONTROLLER_NS}/{CONTROLLER}"))?;
    Ok(found.is_some())
}

/// The controller's current leader (the Lease holder: its pod name).
pub async fn leader(client: &kube::Client) -> anyhow::Result<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROLLER_NS);
    let lease = leases.get(CONTROLLER).await.context("reading the controller's Lease (is the controller running?)")?;
    lease.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty()).context("the controller's Lease has no holder")
}
