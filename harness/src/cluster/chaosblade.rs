//! Installing the chaosblade-operator on a real cluster with Helm, from the values in
//! deploy/chaosblade/, and waiting for its chaosblade-tool DaemonSet: node faults (a ChaosBlade
//! node network loss, scenarios/primary-node-network-loss.yaml) are executed by that DaemonSet,
//! one privileged pod per node. The Makefile's `chaosblade` target runs the same two commands.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::tools::{Tool, ToolCommand};

/// Chart (and operator/tool image) version; the Makefile's `CHAOSBLADE_VERSION`.
pub const CHART_VERSION: &str = "1.7.4";
/// Helm release name.
pub const RELEASE: &str = "chaosblade-operator";
/// The namespace the operator and its DaemonSet run in.
pub const NAMESPACE: &str = "chaosblade";
/// The DaemonSet that runs `blade` on every node.
pub const TOOL_DAEMONSET: &str = "chaosblade-tool";
/// How long Helm and the rollout may take (image pulls included).
pub const TIMEOUT: &str = "5m";

/// The chart is published as a release asset, not in a Helm repository.
pub fn chart_url() -> String {
    format!(
        "https://github.com/chaosblade-io/chaosblade-operator/releases/download/v{CHART_VERSION}/\
         chaosblade-operator-amd64-{CHART_VERSION}.tgz"
    )
}

/// The values file, relative to the repository root.
pub fn values_file() -> PathBuf {
    PathBuf::from("deploy/chaosblade/values-kind.yaml")
}

/// `helm upgrade --install` of the operator with `values` into the cluster of `kubeconfig`
/// (idempotent: installs, or upgrades to the same release).
pub fn helm_install(values: &Path, kubeconfig: &Path) -> ToolCommand {
    ToolCommand::new(Tool::Helm)
        .args(["upgrade", "--install", RELEASE])
        .arg(chart_url())
        .args(["--namespace", NAMESPACE, "--create-namespace", "--values"])
        .arg(values)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--wait", "--timeout", TIMEOUT])
}

/// `kubectl rollout status` of the chaosblade-tool DaemonSet: Helm's `--wait` does not wait
/// for DaemonSet pods on every node.
pub fn rollout_command(kubeconfig: &Path) -> ToolCommand {
    ToolCommand::new(Tool::Kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", NAMESPACE, "rollout", "status"])
        .arg(format!("daemonset/{TOOL_DAEMONSET}"))
        .args(["--timeout", TIMEOUT])
}

/// Installs the operator and waits until chaosblade-tool runs on every node.
pub async fn install(values: &Path, kubeconfig: &Path) -> anyhow::Result<()> {
    helm_install(values, kubeconfig).run().await.context("installing the chaosblade-operator")?;
    rollout_command(kubeconfig).run().await.context("waiting for the chaosblade-tool DaemonSet")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_installs_the_pinned_release_asset_and_waits_for_the_daemonset() {
        let (values, kc) = (values_file(), Path::new("/tmp/k"));
        assert_eq!(
            helm_install(&values, kc).to_string(),
            "helm upgrade --install chaosblade-operator \
             https://github.com/chaosblade-io/chaosblade-operator/releases/download/v1.7.4/chaosblade-operator-amd64-1.7.4.tgz \
             --namespace chaosblade --create-namespace --values deploy/chaosblade/values-kind.yaml \
             --kubeconfig /tmp/k --wait --timeout 5m"
        );
        assert_eq!(
            rollout_command(kc).to_string(),
            "kubectl --kubeconfig /tmp/k -n chaosblade rollout status daemonset/chaosblade-tool --timeout 5m"
        );
    }

    /// The Makefile's `chaosblade` target installs the same version as the kind provider.
    #[test]
    fn the_makefile_pins_the_same_version() {
        let makefile = std::fs::read_to_string(super::super::repo_path("Makefile")).expect("Makefile");
        let pinned = makefile.lines().find_map(|l| l.strip_prefix("CHAOSBLADE_VERSION ?= ")).map(str::trim);
        assert_eq!(pinned, Some(CHART_VERSION));
    }
}
