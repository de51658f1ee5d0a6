//! Steps about the failover controller under test.

use anyhow::{Context, ensure};
use cucumber::given;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};

use crate::HadrillWorld;
use crate::cluster::apply::FIELD_MANAGER;
use crate::probes::wait::until;

/// Namespace of the controller (deploy/controller).
pub const CONTROLLER_NS: &str = "hadrill-system";
/// Name of the controller's Deployment and leader Lease.
pub const CONTROLLER: &str = "hadrill-controller";

/// `Given the failover controller runs with 2 replicas`
///
/// Applies deploy/controller/ unchanged (its kustomization: namespace, RBAC, Deployment), scales it, and waits
/// until the replicas are available and one holds the leader Lease.
#[given(expr = "the failover controller runs with {int} replica(s)")]
async fn controller_runs(world: &mut HadrillWorld, replicas: i32) -> anyhow::Result<()> {
    ensure!(replicas >= 1, "the controller needs at least 1 replica, got {replicas}");
    let client = world.client()?;
    // The kustomization lists the files in apply order; rendering it is what `kubectl apply -k`
    // and the kind provider deploy too.
    crate::cluster::kustomize::apply(&client, &super::cluster::repo_path("deploy/controller"), CONTROLLER_NS).await?;
    // The run owns the controller's namespace too, so faults on the controller are in scope.
    if !world.run_id.is_empty() {
        let label = serde_json::json!({"metadata": {"labels": {crate::cluster::embedded::RUN_LABEL: world.run_id}}});
        Api::<Namespace>::all(client.clone())
            .patch(CONTROLLER_NS, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .context("labelling the controller's namespace as owned by the run")?;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), CONTROLLER_NS);
    let scale = serde_json::json!({"spec": {"replicas": replicas}});
    deployments
        .patch(
            CONTROLLER,
            &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
            &Patch::Merge(&scale),
        )
        .await
        .context("scaling the controller")?;
    until(&deployments, CONTROLLER, &format!("{replicas} available controller replica(s)"), move |d: &Deployment| {
        d.status
            .as_ref()
            .is_some_and(|s| s.available_replicas == Some(replicas) && s.updated_replicas == Some(replicas))
    })
    .await?;
    let leases: Api<Lease> = Api::namespaced(client, CONTROLLER_NS);
    until(&leases, CONTROLLER, "a leader holding the controller Lease", |l: &Lease| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_some_and(|h| !h.is_empty())
    })
    .await?;
    Ok(())
}
