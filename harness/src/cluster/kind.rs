//! The `kind` cluster provider: a cluster created from kind-configs/, Chaos Mesh installed from
//! deploy/chaos-mesh/ and the chaosblade-operator (node faults) from deploy/chaosblade/, the
//! project images built from deploy/docker/ and loaded into the nodes. The same files drive the
//! Makefile (`make cluster-up chaos-mesh chaosblade images`), so there is one source of truth.
//!
//! A cluster this provider created is deleted by [`KindCluster::down`], or when the value is
//! dropped (a failed step, a panic), unless [`KindOptions::keep`] is set. An existing cluster of
//! the same name is reused and never deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use super::chaos_mesh::{self, Runtime};
use super::chaosblade;
use super::container_images::{self, ImageBuild};
use super::tools::{Tool, ToolCommand};

/// Default cluster name (kubectl context `kind-hadrill`).
pub const DEFAULT_NAME: &str = "hadrill";
/// Default config: the multi-node, multi-zone cluster the chaos features need.
pub const DEFAULT_CONFIG: &str = "kind-configs/multi-node.yaml";
/// How long `kind create cluster` waits for the control plane.
pub const CREATE_WAIT: &str = "5m";
/// How long Chaos Mesh's webhook may take to answer after Helm is done.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(180);

/// A kind cluster configuration (`kind.x-k8s.io/v1alpha4` `Cluster`), as far as hadrill's
/// configs use it. Every field kind defines is listed; anything else is refused, so a typo in
/// kind-configs/ is an error here rather than a field kind silently ignores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindConfig {
    /// Always `Cluster`.
    pub kind: String,
    /// Always `kind.x-k8s.io/v1alpha4`.
    pub api_version: String,
    /// Cluster name (the `--name` flag wins).
    pub name: Option<String>,
    /// The nodes; kind needs at least one control plane.
    #[serde(default)]
    pub nodes: Vec<KindNode>,
    /// Cluster networking.
    pub networking: Option<KindNetworking>,
    /// Kubernetes feature gates.
    pub feature_gates: Option<BTreeMap<String, bool>>,
    /// API server `--runtime-config`.
    pub runtime_config: Option<BTreeMap<String, String>>,
    /// kubeadm config patches.
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    /// kubeadm JSON 6902 patches.
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Vec<serde_json::Value>,
    /// containerd config.toml patches (TOML merged into the node's config).
    #[serde(default)]
    pub containerd_config_patches: Vec<String>,
    /// containerd JSON 6902 patches.
    #[serde(default, rename = "containerdConfigPatchesJSON6902")]
    pub containerd_config_patches_json6902: Vec<String>,
}

/// A node of a [`KindConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindNode {
    /// `control-plane` or `worker`.
    pub role: NodeRole,
    /// Node image, e.g. `kindest/node:v1.35.8@sha256:...`.
    pub image: Option<String>,
    /// Node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host paths mounted into the node.
    #[serde(default)]
    pub extra_mounts: Vec<KindMount>,
    /// Host ports forwarded to the node.
    #[serde(default)]
    pub extra_port_mappings: Vec<KindPortMapping>,
    /// kubeadm config patches for this node.
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    /// kubeadm JSON 6902 patches for this node.
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Vec<serde_json::Value>,
}

/// `networking` of a [`KindConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindNetworking {
    /// `ipv4`, `ipv6` or `dual`.
    pub ip_family: Option<String>,
    /// Host port of the API server.
    pub api_server_port: Option<i32>,
    /// Host address of the API server.
    pub api_server_address: Option<String>,
    /// Pod CIDR.
    pub pod_subnet: Option<String>,
    /// Service CIDR.
    pub service_subnet: Option<String>,
    /// Leave out kindnet (install another CNI).
    #[serde(rename = "disableDefaultCNI")]
    pub disable_default_cni: Option<bool>,
    /// `iptables`, `ipvs`, `nftables` or `none`.
    pub kube_proxy_mode: Option<String>,
    /// DNS search domains of the nodes.
    pub dns_search: Option<Vec<String>>,
}

/// `extraMounts` entry of a [`KindNode`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindMount {
    /// Path on the host.
    pub host_path: String,
    /// Path in the node.
    pub container_path: String,
    /// Mount read-only.
    pub read_only: Option<bool>,
    /// Relabel for SELinux.
    pub selinux_relabel: Option<bool>,
    /// `None`, `HostToContainer` or `Bidirectional`.
    pub propagation: Option<String>,
}

/// `extraPortMappings` entry of a [`KindNode`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindPortMapping {
    /// Port in the node.
    pub container_port: i32,
    /// Port on the host (0 or absent: a random one).
    pub host_port: Option<i32>,
    /// Host address to listen on.
    pub listen_address: Option<String>,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: Option<String>,
}

/// A kind node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the API server (tainted NoSchedule when there are workers).
    ControlPlane,
    /// Runs workloads.
    Worker,
}

impl KindConfig {
    /// Reads and checks a config file; errors name the file and the field.
    pub fn from_file(path: &Path) -> anyhow::Result<KindConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading kind config {}", path.display()))?;
        let config: KindConfig =
            serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        ensure!(
            config.kind == "Cluster" && config.api_version == "kind.x-k8s.io/v1alpha4",
            "{}: expected kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4 (got {}, {})",
            path.display(),
            config.kind,
            config.api_version
        );
        ensure!(
            config.nodes.iter().any(|n| n.role == NodeRole::ControlPlane),
            "{}: nodes: kind needs at least one node with role: control-plane",
            path.display()
        );
        Ok(config)
    }

    /// The nodes that run workloads: the workers, or the control plane when there are none
    /// (kind then removes its taint).
    pub fn workload_nodes(&self) -> usize {
        match self.nodes.iter().filter(|n| n.role == NodeRole::Worker).count() {
            0 => self.nodes.len(),
            n => n,
        }
    }
}

/// What [`KindCluster::up`] does.
#[derive(Debug, Clone)]
pub struct KindOptions {
    /// kind config file.
    pub config: PathBuf,
    /// Cluster name.
    pub name: String,
    /// Leave the cluster running at the end.
    pub keep: bool,
    /// Images to build with docker and load into the nodes.
    pub images: Vec<ImageBuild>,
    /// Install Chaos Mesh (and wait for its webhook).
    pub chaos_mesh: bool,
    /// Install the chaosblade-operator (and wait for its DaemonSet on every node).
    pub chaosblade: bool,
    /// Where to write the cluster's kubeconfig (never the user's ~/.kube/config).
    pub kubeconfig: PathBuf,
    /// The repository root: build context and base of relative paths.
    pub root: PathBuf,
}

impl KindOptions {
    /// The defaults for the source tree at `root`: multi-node config, cluster `hadrill`, every
    /// project image, Chaos Mesh and the chaosblade-operator, kubeconfig in reports/.
    pub fn new(root: &Path) -> Self {
        KindOptions {
            config: root.join(DEFAULT_CONFIG),
            name: DEFAULT_NAME.into(),
            keep: false,
            images: container_images::project_builds(),
            chaos_mesh: true,
            chaosblade: true,
            kubeconfig: root.join("reports").join(format!("kind-{DEFAULT_NAME}.kubeconfig")),
            root: root.to_path_buf(),
        }
    }

    /// The tools `up` needs.
    pub fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![Tool::Docker, Tool::Kind];
        if self.chaos_mesh || self.chaosblade {
            tools.push(Tool::Helm);
        }
        if self.chaosblade {
            tools.push(Tool::Kubectl);
        }
        tools
    }

    /// `kind create cluster`.
    pub fn create_command(&self) -> ToolCommand {
        ToolCommand::new(Tool::Kind)
            .args(["create", "cluster", "--name", &self.name, "--config"])
            .arg(&self.config)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--wait", CREATE_WAIT])
    }

    /// `kind export kubeconfig` (for a cluster that exists already).
    pub fn export_kubeconfig_command(&self) -> ToolCommand {
        ToolCommand::new(Tool::Kind)
            .args(["export", "kubeconfig", "--name", &self.name, "--kubeconfig"])
            .arg(&self.kubeconfig)
    }

    /// `kind load docker-image` of every image, or `None` when there is none.
    pub fn load_command(&self) -> Option<ToolCommand> {
        (!self.images.is_empty()).then(|| {
            ToolCommand::new(Tool::Kind)
                .args(["load", "docker-image", "--name", &self.name])
                .args(self.images.iter().map(|i| i.reference.as_str()))
        })
    }

    /// `kind delete cluster`.
    pub fn delete_command(&self) -> ToolCommand {
        ToolCommand::new(Tool::Kind)
            .args(["delete", "cluster", "--name", &self.name, "--kubeconfig"])
            .arg(&self.kubeconfig)
    }
}

/// A running kind cluster.
pub struct KindCluster {
    options: KindOptions,
    client: kube::Client,
    /// Whether this value created the cluster (and so may delete it).
    created: bool,
    /// Set once `down` ran, so `Drop` does nothing more.
    down: bool,
}

impl std::fmt::Debug for KindCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindCluster")
            .field("name", &self.options.name)
            .field("kubeconfig", &self.options.kubeconfig)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Names of the kind clusters that exist (`kind get clusters`, one per line).
pub fn parse_cluster_list(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("No kind clusters"))
        .map(String::from)
        .collect()
}

impl KindCluster {
    /// Creates (or reuses) the cluster, loads the images and installs Chaos Mesh and the
    /// chaosblade-operator. If a later
    /// step fails, a cluster created here is deleted again (unless `keep`).
    pub async fn up(options: &KindOptions) -> anyhow::Result<KindCluster> {
        // Everything that can be checked without side effects comes first.
        check_name(&options.name)?;
        for tool in options.tools() {
            tool.locate()?;
        }
        let config = KindConfig::from_file(&options.config)?;
        for image in &options.images {
            let file = options.root.join(&image.dockerfile);
            ensure!(file.is_file(), "image {}: no Dockerfile at {}", image.reference, file.display());
        }
        if let Some(dir) = options.kubeconfig.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }

        let existing = parse_cluster_list(&ToolCommand::new(Tool::Kind).args(["get", "clusters"]).run().await?);
        let created = !existing.contains(&options.name);
        if created {
            tracing::info!(name = %options.name, nodes = config.nodes.len(), "creating the kind cluster");
            if let Err(e) = options.create_command().run().await {
                // kind leaves a half-created cluster behind when a node fails to start.
                if !options.keep {
                    options.delete_command().run_blocking();
                }
                return Err(e).context("creating the kind cluster");
            }
        } else {
            tracing::info!(name = %options.name, "reusing the existing kind cluster (it will not be deleted)");
            options.export_kubeconfig_command().run().await?;
        }
        let client = match client_from(&options.kubeconfig).await {
            Ok(c) => c,
            Err(e) => {
                if created && !options.keep {
                    options.delete_command().run_blocking();
                }
                return Err(e);
            }
        };
        // From here on, Drop deletes a cluster created above if anything fails.
        let cluster = KindCluster { options: options.clone(), client, created, down: false };

        container_images::build_all(&options.images, &options.root).await?;
        if let Some(load) = options.load_command() {
            load.run().await.context("loading the project images into the kind nodes")?;
        }
        if options.chaos_mesh {
            let values = options.root.join(Runtime::Kind.values_file());
            let waited = chaos_mesh::install(&cluster.client, &values, &options.kubeconfig, WEBHOOK_TIMEOUT).await?;
            tracing::info!(seconds = waited.as_secs_f64(), "Chaos Mesh's webhook answers");
        }
        if options.chaosblade {
            chaosblade::install(&options.root.join(chaosblade::values_file()), &options.kubeconfig).await?;
            tracing::info!("chaosblade-tool runs on every node");
        }
        Ok(cluster)
    }

    /// A client for the cluster (admin).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The kubeconfig file of the cluster (context `kind-<name>`).
    pub fn kubeconfig(&self) -> &Path {
        &self.options.kubeconfig
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// Deletes the cluster if this value created it and `keep` is not set.
    pub async fn down(mut self) -> anyhow::Result<()> {
        self.down = true;
        if self.created && !self.options.keep {
            self.options.delete_command().run().await.context("deleting the kind cluster")?;
        }
        Ok(())
    }
}

impl Drop for KindCluster {
    fn drop(&mut self) {
        if !self.down && self.created && !self.options.keep {
            tracing::warn!(name = %self.options.name, "deleting the kind cluster (not shut down with down())");
            self.options.delete_command().run_blocking();
        }
    }
}

/// A client from a kubeconfig file (its current context).
pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))?;
    kube::Client::try_from(config).context("building a client")
}

/// Refuses a kind cluster name kind itself would refuse (it becomes container and context names).
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 50
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        bail!(
            "kind cluster name {name:?}: use lowercase letters, digits, '-' and '.', starting with a letter or digit"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> KindOptions {
        let mut o = KindOptions::new(Path::new("/src"));
        o.name = "ci".into();
        o.kubeconfig = PathBuf::from("/tmp/ci.kubeconfig");
        o
    }

    #[test]
    fn commands_name_the_cluster_config_and_a_private_kubeconfig() {
        let o = options();
        assert_eq!(
            o.create_command().to_string(),
            "kind create cluster --name ci --config /src/kind-configs/multi-node.yaml --kubeconfig /tmp/ci.kubeconfig --wait 5m"
        );
        assert_eq!(
            o.export_kubeconfig_command().to_string(),
            "kind export kubeconfig --name ci --kubeconfig /tmp/ci.kubeconfig"
        );
        assert_eq!(o.delete_command().to_string(), "kind delete cluster --name ci --kubeconfig /tmp/ci.kubeconfig");
        let load = o.load_command().expect("images").arg_strings();
        assert_eq!(load[..4], ["load", "docker-image", "--name", "ci"]);
        assert!(load.contains(&"hadrill/controller:dev".to_string()), "{load:?}");
        assert!(KindOptions { images: vec![], ..o.clone() }.load_command().is_none());
        assert_eq!(o.tools(), [Tool::Docker, Tool::Kind, Tool::Helm, Tool::Kubectl]);
        let only_chaos_mesh = KindOptions { chaosblade: false, ..o.clone() };
        assert_eq!(only_chaos_mesh.tools(), [Tool::Docker, Tool::Kind, Tool::Helm]);
        assert_eq!(KindOptions { chaos_mesh: false, ..only_chaos_mesh }.tools(), [Tool::Docker, Tool::Kind]);
    }

    #[test]
    fn the_cluster_list_ignores_the_empty_message() {
        assert!(parse_cluster_list("No kind clusters found.\n").is_empty());
        assert_eq!(parse_cluster_list("hadrill\nother\n"), ["hadrill", "other"]);
    }

    #[test]
    fn bad_configs_name_the_file_and_the_field() {
        let dir = std::env::temp_dir().join(format!("hadrill-kindcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("c.yaml");
        std::fs::write(
            &f,
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n    lables: {a: b}\n",
        )
        .expect("write");
        let err = KindConfig::from_file(&f).expect_err("typo").to_string();
        assert!(err.contains("c.yaml") && err.contains("lables"), "{err}");
        std::fs::write(&f, "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: worker\n")
            .expect("write");
        let err = KindConfig::from_file(&f).expect_err("no control plane").to_string();
        assert!(err.contains("control-plane"), "{err}");
        std::fs::write(&f, "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: master\n")
            .expect("write");
        assert!(KindConfig::from_file(&f).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn cluster_names_follow_kinds_rules() {
        check_name("hadrill").expect("ok");
        check_name("ci-2.a").expect("ok");
        for bad in ["", "Hadrill", "-x", "a_b", &"x".repeat(51)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
