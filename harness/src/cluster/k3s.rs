//! The `k3s` cluster provider (cargo feature `k3s`), for CI runners that have Docker but no
//! kind: a single-node k3s in a privileged container started with testcontainers, the
//! project images imported into its containerd, Chaos Mesh installed with the k3s values from
//! deploy/chaos-mesh/ (k3s's containerd socket). The container is removed when the cluster is
//! shut down or dropped (a failed step, a panic).

use std::path::{Path, PathBuf};

use anyhow::Context;
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

use super::chaos_mesh::{self, Runtime};
use super::container_images::{self, ImageBuild};
use super::kind::{WEBHOOK_TIMEOUT, client_from};
use super::tools::{Tool, ToolCommand};

/// The k3s image tag: Kubernetes v1.35.8, the version of kind-configs/ and of the k8s-openapi
/// feature the harness is built with (the module's own default is much older).
pub const K3S_TAG: &str = "v1.35.8-k3s1";
/// Label on the container, so `make clean` can sweep leftovers.
pub const PROVIDER_LABEL: (&str, &str) = ("hadrill.io/provider", "k3s");
/// Where the images tarball is copied inside the container.
const IMAGES_TAR: &str = "/tmp/hadrill-images.tar";

/// What [`K3sCluster::up`] does.
#[derive(Debug, Clone)]
pub struct K3sOptions {
    /// rancher/k3s image tag.
    pub tag: String,
    /// Images to build with docker and import into the node.
    pub images: Vec<ImageBuild>,
    /// Install Chaos Mesh (and wait for its webhook).
    pub chaos_mesh: bool,
    /// Where to write the cluster's kubeconfig.
    pub kubeconfig: PathBuf,
    /// The repository root: build context and base of relative paths.
    pub root: PathBuf,
}

impl K3sOptions {
    /// The defaults for the source tree at `root`: every project image, Chaos Mesh,
    /// kubeconfig in reports/.
    pub fn new(root: &Path) -> Self {
        K3sOptions {
            tag: K3S_TAG.into(),
            images: container_images::project_builds(),
            chaos_mesh: true,
            kubeconfig: root.join("reports/k3s.kubeconfig"),
            root: root.to_path_buf(),
        }
    }

    /// The tools `up` needs (testcontainers talks to the Docker engine itself; the docker CLI
    /// builds and moves the images).
    pub fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![Tool::Docker];
        if self.chaos_mesh {
            tools.push(Tool::Helm);
        }
        tools
    }
}

/// The commands that put `images` into the containerd of container `id`: save them to a
/// tarball, copy it in, import it into the `k8s.io` namespace the kubelet uses.
pub fn import_commands(images: &[ImageBuild], id: &str, tar: &Path) -> Vec<ToolCommand> {
    if images.is_empty() {
        return Vec::new();
    }
    vec![
        ToolCommand::new(Tool::Docker)
            .args(["save", "--output"])
            .arg(tar)
            .args(images.iter().map(|i| i.reference.as_str())),
        ToolCommand::new(Tool::Docker).arg("cp").arg(tar).arg(format!("{id}:{IMAGES_TAR}")),
        ToolCommand::new(Tool::Docker).args([
            "exec",
            id,
            "k3s",
            "ctr",
            "--namespace",
            "k8s.io",
            "images",
            "import",
            IMAGES_TAR,
        ]),
    ]
}

/// Points the kubeconfig k3s wrote (server `https://127.0.0.1:6443` inside the container) at
/// the port Docker mapped on `host`.
pub fn rewrite_server(kubeconfig: &str, host: &str, port: u16) -> anyhow::Result<String> {
    let mut kc: kube::config::Kubeconfig = serde_saphyr::from_str(kubeconfig).context("parsing k3s's kubeconfig")?;
    anyhow::ensure!(!kc.clusters.is_empty(), "k3s's kubeconfig has no cluster");
    for c in &mut kc.clusters {
        if let Some(cluster) = c.cluster.as_mut() {
            cluster.server = Some(format!("https://{host}:{port}"));
        }
    }
    serde_saphyr::to_string(&kc).context("writing the kubeconfig")
}

/// A running k3s cluster in a container.
pub struct K3sCluster {
    container: ContainerAsync<K3s>,
    client: kube::Client,
    kubeconfig: PathBuf,
    conf_dir: ConfDir,
}

/// k3s's conf directory on the host (its admin kubeconfig, the images tar), removed when
/// dropped: after `down`, and after a step of `up` failed. k3s writes its files as root; what
/// cannot be removed stays in the temp dir.
struct ConfDir(PathBuf);

impl Drop for ConfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for K3sCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3sCluster")
            .field("container", &self.container.id())
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl K3sCluster {
    /// Starts k3s, imports the images and installs Chaos Mesh. On any error the container is
    /// removed again (it is dropped).
    pub async fn up(options: &K3sOptions) -> anyhow::Result<K3sCluster> {
        for tool in options.tools() {
            tool.locate()?;
        }
        for image in &options.images {
            let file = options.root.join(&image.dockerfile);
            anyhow::ensure!(file.is_file(), "image {}: no Dockerfile at {}", image.reference, file.display());
        }
        // Built before the container starts, so a failed build costs no k3s start.
        container_images::build_all(&options.images, &options.root).await?;

        let conf_dir = ConfDir(std::env::temp_dir().join(format!("hadrill-k3s-{}", uuid::Uuid::new_v4().simple())));
        std::fs::create_dir_all(&conf_dir.0).with_context(|| format!("creating {}", conf_dir.0.display()))?;
        let container = K3s::default()
            .with_conf_mount(&conf_dir.0)
            .with_tag(options.tag.as_str())
            .with_privileged(true)
            .with_userns_mode("host")
            .with_label(PROVIDER_LABEL.0, PROVIDER_LABEL.1)
            .start()
            .await
            .with_context(|| format!("starting rancher/k3s:{} (needs a Docker engine)", options.tag))?;
        let port = container.get_host_port_ipv4(KUBE_SECURE_PORT).await.context("k3s's API port")?;
        let host = container.get_host().await.context("the Docker host")?.to_string();
        let raw = container.image().read_kube_config().context("reading k3s's kubeconfig")?;
        if let Some(dir) = options.kubeconfig.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&options.kubeconfig, rewrite_server(&raw, &host, port)?)
            .with_context(|| format!("writing {}", options.kubeconfig.display()))?;
        let client = client_from(&options.kubeconfig).await?;
        let cluster = K3sCluster { container, client, kubeconfig: options.kubeconfig.clone(), conf_dir };

        let tar = cluster.conf_dir.0.join("images.tar");
        for cmd in import_commands(&options.images, cluster.container.id(), &tar) {
            cmd.run().await.context("importing the project images into k3s")?;
        }
        let _ = std::fs::remove_file(&tar);
        if options.chaos_mesh {
            let values = options.root.join(Runtime::K3s.values_file());
            let waited = chaos_mesh::install(&cluster.client, &values, &options.kubeconfig, WEBHOOK_TIMEOUT).await?;
            tracing::info!(seconds = waited.as_secs_f64(), "Chaos Mesh's webhook answers");
        }
        Ok(cluster)
    }

    /// A client for the cluster (admin).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The kubeconfig file of the cluster.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Removes the container.
    pub async fn down(self) -> anyhow::Result<()> {
        self.container.rm().await.context("removing the k3s container")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_saved_copied_and_imported_into_the_kubelets_namespace() {
        let builds = container_images::project_builds();
        let cmds: Vec<String> =
            import_commands(&builds[..1], "abc", Path::new("/tmp/i.tar")).iter().map(ToString::to_string).collect();
        assert_eq!(
            cmds,
            [
                format!("docker save --output /tmp/i.tar {}", builds[0].reference),
                "docker cp /tmp/i.tar abc:/tmp/hadrill-images.tar".to_string(),
                "docker exec abc k3s ctr --namespace k8s.io images import /tmp/hadrill-images.tar".to_string(),
            ]
        );
        assert!(import_commands(&[], "abc", Path::new("/x")).is_empty());
    }

    #[test]
    fn the_kubeconfig_points_at_the_mapped_port() {
        let raw = "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: QUJD\n\
                   contexts:\n- name: default\n  context: {cluster: default, user: default}\ncurrent-context: default\n\
                   users:\n- name: default\n  user: {client-certificate-data: QUJD, client-key-data: QUJD}\n";
        let out = rewrite_server(raw, "127.0.0.1", 32768).expect("rewritten");
        assert!(out.contains("https://127.0.0.1:32768") && !out.contains(":6443"), "{out}");
        assert!(out.contains("QUJD"));
        assert!(rewrite_server("apiVersion: v1\nkind: Config\n", "h", 1).is_err());
    }

    #[test]
    fn the_defaults_use_a_current_k3s_and_the_k3s_values() {
        let o = K3sOptions::new(Path::new("/src"));
        assert_eq!(o.tag, K3S_TAG);
        assert!(K3S_TAG.starts_with("v1.35."));
        assert_eq!(o.tools(), [Tool::Docker, Tool::Helm]);
    }
}
