//! Kubeconfig files for the embedded cluster.

use std::path::Path;

use anyhow::Context;
use kube::config::{AuthInfo, Cluster, Context as KubeContext, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

/// A kubeconfig for plain HTTP to the local API server with a bearer token; `user` names the
/// user entry (e.g. `hadrill-admin` or `system:serviceaccount:ns:sa`).
pub fn with_token(name: &str, url: &str, user: &str, token: &str, namespace: &str) -> Kubeconfig {
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.to_string(),
            cluster: Some(Cluster { server: Some(url.to_string()), ..Default::default() }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_string(),
            auth_info: Some(auth(token)),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: name.to_string(),
            context: Some(KubeContext {
                cluster: name.to_string(),
                user: Some(user.to_string()),
                namespace: Some(namespace.into()),
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

/// A token-only AuthInfo.
pub fn auth(token: &str) -> AuthInfo {
    // AuthInfo keeps the token as a secret type; building it from JSON avoids a dependency.
    serde_json::from_value(serde_json::json!({ "token": token })).unwrap_or_default()
}

/// Writes a kubeconfig as YAML.
pub fn write(config: &Kubeconfig, path: &Path) -> anyhow::Result<()> {
    let text = serde_saphyr::to_string(config).context("serialising the kubeconfig")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing the kubeconfig to {}", path.display()))
}
