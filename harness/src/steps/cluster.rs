//! Steps about the cluster itself.

use anyhow::Context;
use cucumber::{given, then, when};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, ListParams};

use super::error::{StepResult, bail, ensure};
use crate::HadrillWorld;
use crate::cluster::apply::apply_file;
use crate::cluster::repo_path;
use crate::cluster::scenario::{self, ScenarioCluster};

/// `Given a cluster with 3 nodes`
///
/// The run's cluster (`--cluster`): on `sim`, an embedded cluster of its own, as
/// `an embedded cluster with N nodes`; on a real cluster, which must have at least N Ready
/// schedulable nodes, a namespace of its own that is removed when the scenario ends.
#[given(expr = "a cluster with {int} node(s)")]
async fn cluster(world: &mut HadrillWorld, nodes: usize) -> StepResult {
    let shared = world.run.shared.clone();
    adopt(world, scenario::set_up(shared.as_ref(), nodes).await?);
    Ok(())
}

/// `Given an embedded cluster with 3 nodes`
///
/// Always the embedded cluster, whatever the run's provider (features about the embedded
/// cluster itself).
#[given(expr = "an embedded cluster with {int} node(s)")]
async fn embedded_cluster(world: &mut HadrillWorld, nodes: usize) -> StepResult {
    adopt(world, scenario::set_up(None, nodes).await?);
    Ok(())
}

/// Makes `set_up` the scenario's cluster (its chaos run is the one the faults steps use, so
/// their objects share its ledger and cleanup).
fn adopt(world: &mut HadrillWorld, set_up: ScenarioCluster) {
    let c = &mut world.cluster;
    c.run_id = set_up.run_id;
    c.namespace = set_up.namespace;
    c.client = Some(set_up.client);
    c.sim = set_up.sim;
    c.recorder = Some(set_up.recorder);
    world.faults.run = set_up.run;
}

/// `When the manifest "features/manifests/web.yaml" is applied`
#[when(expr = "the manifest {string} is applied")]
async fn manifest_applied(world: &mut HadrillWorld, path: String) -> StepResult {
    let applied = apply_file(&world.client()?, &repo_path(&path), &world.cluster.namespace).await?;
    ensure!(!applied.is_empty(), "{path} holds no objects");
    Ok(())
}

/// `Then the cluster lists 3 nodes`
#[then(expr = "the cluster lists {int} node(s)")]
async fn lists_nodes(world: &mut HadrillWorld, want: usize) -> StepResult {
    let nodes: Api<Node> = Api::all(world.client()?);
    let got = nodes.list(&ListParams::default()).await?.items.len();
    ensure!(got == want, "the cluster lists {got} nodes, expected {want}");
    Ok(())
}

/// `Then the deployment "web" wants 2 replicas`
#[then(expr = "the deployment {string} wants {int} replica(s)")]
async fn deployment_wants(world: &mut HadrillWorld, name: String, want: i32) -> StepResult {
    let api: Api<Deployment> = world.api()?;
    let d = api.get(&name).await.with_context(|| format!("reading deployment {name}"))?;
    let got = d.spec.and_then(|s| s.replicas).unwrap_or(1);
    ensure!(got == want, "deployment {name} wants {got} replicas, expected {want}");
    Ok(())
}

/// `Then the service "web" selects pods labelled "app=web"`
#[then(expr = "the service {string} selects pods labelled {string}")]
async fn service_selects(world: &mut HadrillWorld, name: String, label: String) -> StepResult {
    let api: Api<Service> = world.api()?;
    let svc = api.get(&name).await.with_context(|| format!("reading service {name}"))?;
    let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
    let (k, v) = label.split_once('=').with_context(|| format!("{label:?} is not key=value"))?;
    ensure!(selector.get(k).map(String::as_str) == Some(v), "service {name} selects {selector:?}, expected {label}");
    Ok(())
}

/// `When the deployment "web" is deleted`
#[when(expr = "the deployment {string} is deleted")]
async fn deployment_deleted(world: &mut HadrillWorld, name: String) -> StepResult {
    let api: Api<Deployment> = world.api()?;
    api.delete(&name, &Default::default()).await.with_context(|| format!("deleting deployment {name}"))?;
    Ok(())
}

/// `Then the deployment "web" is gone`
#[then(expr = "the deployment {string} is gone")]
async fn deployment_gone(world: &mut HadrillWorld, name: String) -> StepResult {
    let api: Api<Deployment> = world.api()?;
    match api.get_opt(&name).await? {
        None => Ok(()),
        Some(_) => bail!("deployment {name} still exists"),
    }
}
