//! Clusters: starting one (the provider a run uses: [`provider`]) and applying manifests to it.

pub mod apply;
pub mod chaos_mesh;
pub mod container_images;
pub mod drain;
pub mod embedded;
pub mod endpoint;
pub mod existing;
pub mod ha_pair;
pub mod images;
#[cfg(feature = "k3s")]
pub mod k3s;
pub mod kind;
pub mod kustomize;
pub mod provider;
pub mod tools;
