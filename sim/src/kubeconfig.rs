//! Kubeconfig files for the embedded cluster.

use std::path::Path;

use anyhow::Context;
use kube::config::{AuthInfo, Cluster, Context as KubeContext, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

/// The admin kubeconfig: plain HTTP to the local API server, unrestricted user.
pub fn admin(name: &str, url: &str) -> Kubeconfig {
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.to_string(),
            cluster: Some(Cluster { server: Some(url.to_string()), ..Default::default() }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: format!("{name}-admin"),
            auth_info: Some(AuthInfo::default()),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: name.to_string(),
            context: Some(KubeContext {
                cluster: name.to_string(),
                user: Some(format!("{name}-admin")),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(name.to_string()),
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        ..Default::default()
    }
}

/// Writes a kubeconfig as YAML.
pub fn write(config: &Kubeconfig, path: &Path) -> anyhow::Result<()> {
    let text = serde_saphyr::to_string(config).context("serialising the kubeconfig")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing the kubeconfig to {}", path.display()))
}
