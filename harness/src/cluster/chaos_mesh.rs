//! Installing Chaos Mesh on a real cluster with Helm, from the values in deploy/chaos-mesh/,
//! and waiting until its admission webhook answers (the manager has no readiness probe, and
//! every chaos object create fails with "failed calling webhook" until it serves).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::tools::{Tool, ToolCommand};

/// Chart version (the Chaos Mesh release whose API hadrill validates against).
pub const CHART_VERSION: &str = "2.8.3";
/// Chart repository.
pub const CHART_REPO: &str = "https://charts.chaos-mesh.org";
/// Helm release name and namespace.
pub const NAMESPACE: &str = "chaos-mesh";
/// How long Helm may take (image pulls included).
pub const HELM_TIMEOUT: &str = "5m";

/// Where the cluster's containerd listens, which decides the values file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// kind nodes: /run/containerd/containerd.sock.
    Kind,
    /// k3s: /run/k3s/containerd/containerd.sock.
    K3s,
}

impl Runtime {
    /// The values file, relative to the repository root.
    pub fn values_file(self) -> PathBuf {
        PathBuf::from(match self {
            Runtime::Kind => "deploy/chaos-mesh/values-kind.yaml",
            Runtime::K3s => "deploy/chaos-mesh/values-k3s.yaml",
        })
    }

    /// The containerd socket the values file must name.
    pub fn socket(self) -> &'static str {
        match self {
            Runtime::Kind => "/run/containerd/containerd.sock",
            Runtime::K3s => "/run/k3s/containerd/containerd.sock",
        }
    }
}

/// `helm upgrade --install` of Chaos Mesh with `values` into the cluster of `kubeconfig`
/// (idempotent: installs, or upgrades to the same release).
pub fn helm_install(values: &Path, kubeconfig: &Path) -> ToolCommand {
    ToolCommand::new(Tool::Helm)
        .args(["upgrade", "--install", NAMESPACE, "chaos-mesh", "--repo", CHART_REPO, "--version", CHART_VERSION])
        .args(["--namespace", NAMESPACE, "--create-namespace", "--values"])
        .arg(values)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--wait", "--timeout", HELM_TIMEOUT])
}

/// Installs Chaos Mesh and waits for its webhook; returns how long the webhook took after Helm.
pub async fn install(
    client: &kube::Client,
    values: &Path,
    kubeconfig: &Path,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    helm_install(values, kubeconfig).run().await.context("installing Chaos Mesh")?;
    wait_for_webhook(client, timeout).await
}

/// The object sent (as a server-side dry run) to find out whether the webhook serves; the
/// Makefile's `chaos-mesh` target sends the same file.
pub const WEBHOOK_PROBE: &str = include_str!("../../../deploy/chaos-mesh/webhook-probe.yaml");

fn probe() -> anyhow::Result<DynamicObject> {
    serde_saphyr::from_str(WEBHOOK_PROBE).context("parsing deploy/chaos-mesh/webhook-probe.yaml")
}

/// Retries a dry-run create of a PodChaos until the API server accepts it (so the mutating and
/// validating webhooks answered), for at most `timeout`. Polling: nothing can be watched for it.
pub async fn wait_for_webhook(client: &kube::Client, timeout: Duration) -> anyhow::Result<Duration> {
    let gvk = GroupVersionKind::gvk("chaos-mesh.org", "v1alpha1", "PodChaos");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &ApiResource::from_gvk_with_plural(&gvk, "podchaos"));
    let object = probe()?;
    let params = PostParams { dry_run: true, field_manager: Some(super::apply::FIELD_MANAGER.into()) };
    let start = Instant::now();
    loop {
        match api.create(&params, &object).await {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) if start.elapsed() >= timeout => {
                return Err(e).with_context(|| format!("Chaos Mesh's webhook did not answer within {timeout:?}"));
            }
            Err(e) => tracing::debug!(error = %e, "Chaos Mesh's webhook does not answer yet"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_installs_the_pinned_chart_idempotently_into_its_namespace() {
        let cmd = helm_install(Path::new("deploy/chaos-mesh/values-kind.yaml"), Path::new("/tmp/k"));
        assert_eq!(
            cmd.to_string(),
            "helm upgrade --install chaos-mesh chaos-mesh --repo https://charts.chaos-mesh.org --version 2.8.3 \
             --namespace chaos-mesh --create-namespace --values deploy/chaos-mesh/values-kind.yaml \
             --kubeconfig /tmp/k --wait --timeout 5m"
        );
    }

    #[test]
    fn the_probe_is_a_valid_pod_chaos() {
        let probe = serde_json::to_value(probe().expect("probe")).expect("json");
        let options = crate::chaos::ValidateOptions::for_namespaces([NAMESPACE]);
        let validated = crate::chaos::validate::validate_value(&probe, &options).expect("valid");
        assert!(validated.warnings.is_empty(), "{:?}", validated.warnings);
    }
}
