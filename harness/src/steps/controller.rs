//! Steps about the failover controller under test ([`crate::cluster::controller`] deploys it).

use cucumber::given;

use super::error::StepResult;
use crate::HadrillWorld;
use crate::cluster::controller::{self, ControllerOptions};

/// `Given the failover controller runs with 2 replicas`
///
/// Applies deploy/controller/ unchanged (its kustomization: namespace, RBAC, Deployment), scales it, and waits
/// until the replicas are available and one holds the leader Lease.
#[given(expr = "the failover controller runs with {int} replica(s)")]
async fn controller_runs(world: &mut HadrillWorld, replicas: i32) -> StepResult {
    Ok(deploy(world, replicas, Vec::new()).await?)
}

/// `Given the failover controller runs with 2 replicas and black-box probing off`
///
/// The same, with the controller's own probes of the pods switched off
/// (`HADRILL_BLACK_BOX=false`): it then learns of a lost node only from the node's status.
#[given(expr = "the failover controller runs with {int} replica(s) and black-box probing off")]
async fn controller_runs_white_box(world: &mut HadrillWorld, replicas: i32) -> StepResult {
    Ok(deploy(world, replicas, vec![("HADRILL_BLACK_BOX", "false")]).await?)
}

/// Deploys the controller into the scenario's cluster; the scenario's run owns its namespace.
async fn deploy(world: &HadrillWorld, replicas: i32, env: Vec<(&str, &str)>) -> anyhow::Result<()> {
    let run_id = Some(world.cluster.run_id.as_str()).filter(|r| !r.is_empty());
    controller::deploy(&world.client()?, &ControllerOptions { replicas, env, run_id }).await
}
