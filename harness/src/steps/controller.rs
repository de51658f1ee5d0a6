//! Steps about the failover controller under test.

use anyhow::{Context, ensure};
use cucumber::given;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{EnvVar, Namespace};
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
    deploy(world, replicas, &[]).await
}

/// `Given the failover controller runs with 2 replicas and black-box probing off`
///
/// The same, with the controller's own probes of the pods switched off
/// (`HADRILL_BLACK_BOX=false`): it then learns of a lost node only from the node's status.
#[given(expr = "the failover controller runs with {int} replica(s) and black-box probing off")]
async fn controller_runs_white_box(world: &mut HadrillWorld, replicas: i32) -> anyhow::Result<()> {
    deploy(world, replicas, &[("HADRILL_BLACK_BOX", "false")]).await
}

/// Applies deploy/controller, sets `env` on its container, scales it, waits for a leader.
async fn deploy(world: &mut HadrillWorld, replicas: i32, env: &[(&str, &str)]) -> anyhow::Result<()> {
    ensure!(replicas >= 1, "the controller needs at least 1 replica, got {replicas}");
    let client = world.client()?;
    // The kustomization lists the files in apply order; rendering it is what `kubectl apply -k`
    // and the kind provider deploy too.
    crate::cluster::kustomize::apply(&client, &super::cluster::repo_path("deploy/controller"), CONTROLLER_NS).await?;
    // The run owns the controller's namespace too, so faults on the controller are in scope.
    if !world.run_id.is_empty() {
        let label = serde_json::json!({"metadata": {"labels": {
            crate::cluster::embedded::RUN_LABEL: world.run_id,
            crate::chaos::ledger::SHARED_LABEL: "true",
        }}});
        Api::<Namespace>::all(client.clone())
            .patch(CONTROLLER_NS, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .context("labelling the controller's namespace as owned by the run")?;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), CONTROLLER_NS);
    if !env.is_empty() {
        let mut d = deployments.get(CONTROLLER).await.context("reading the controller's Deployment")?;
        let containers = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()).map(|s| &mut s.containers);
        let container =
            containers.and_then(|c| c.first_mut()).context("the controller's Deployment has no container")?;
        let vars = container.env.get_or_insert_with(Vec::new);
        for (name, value) in env {
            vars.retain(|v| v.name != *name);
            vars.push(EnvVar { name: (*name).to_string(), value: Some((*value).to_string()), value_from: None });
        }
        // A patch, not a replace: the Deployment's status changes under us while it rolls out.
        let containers = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| &s.containers);
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": containers}}}});
        deployments
            .patch(
                CONTROLLER,
                &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
                &Patch::Merge(&patch),
            )
            .await
            .context("setting the controller's environment")?;
    }
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
        d.status.as_ref().is_some_and(|s| {
            s.available_replicas == Some(replicas)
                && s.updated_replicas == Some(replicas)
                && s.replicas == Some(replicas)
                && s.observed_generation == d.metadata.generation
        })
    })
    .await?;
    let leases: Api<Lease> = Api::namespaced(client, CONTROLLER_NS);
    until(&leases, CONTROLLER, "a leader holding the controller Lease", |l: &Lease| {
        l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_some_and(|h| !h.is_empty())
    })
    .await?;
    Ok(())
}
