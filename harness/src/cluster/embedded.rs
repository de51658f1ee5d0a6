//! The embedded cluster as a scenario's cluster: the project's images run as processes, and
//! the scenario gets a namespace of its own.

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use super::images::{Build, project_images};

pub use crate::chaos::ledger::RUN_LABEL;

/// Starts an embedded cluster of `nodes` nodes whose kubelets run the project's images.
///
/// Timings are shortened where Kubernetes' defaults only make a test wait: crash-loop back-off
/// starts at 1 s (10 s on a kubelet), node status is posted every 200 ms. Node lifecycle keeps
/// Kubernetes' grace periods unless a step asks otherwise.
pub async fn start(nodes: usize) -> anyhow::Result<sim::Sim> {
    // The first call may build the images (cargo): off the runtime's threads, so a signal
    // still stops the run meanwhile.
    let (images, absent) =
        tokio::task::spawn_blocking(|| project_images(Build::Fresh)).await.context("building the project images")??;
    if !absent.is_empty() {
        tracing::warn!(images = ?absent, "these images are not built; their pods run as virtual containers");
    }
    let mut config = sim::SimConfig { nodes, ..Default::default() };
    config.kubelet = sim::kubelet::KubeletConfig { images, ..sim::kubelet::KubeletConfig::fast() };
    sim::Sim::start(config).await.context("starting the embedded cluster")
}

/// A short random run id (lowercase hex, usable in names).
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// Creates the scenario's namespace `hadrill-RUN`, labelled as owned by the run.
pub async fn create_namespace(client: &kube::Client, run: &str) -> anyhow::Result<String> {
    let name = format!("hadrill-{run}");
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {RUN_LABEL: run}}
    }))
    .context("building the namespace")?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(name)
}
