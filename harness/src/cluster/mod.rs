//! Clusters: starting one (the provider a run uses: [`provider`]), a scenario's part of it
//! ([`scenario`]), applying manifests to it and deploying the controller under test
//! ([`controller`]).

use std::path::PathBuf;

pub mod apply;
pub mod chaos_mesh;
pub mod chaosblade;
pub mod container_images;
pub mod controller;
pub mod drain;
pub mod embedded;
pub mod endpoint;
pub mod existing;
pub mod ha_pair;
pub mod ha_service;
pub mod images;
#[cfg(feature = "k3s")]
pub mod k3s;
pub mod kind;
pub mod kustomize;
pub mod provider;
pub mod scenario;
pub mod tools;

/// A path of the source tree this build came from (manifests, deploy/, kind-configs/).
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}
