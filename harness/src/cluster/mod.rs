//! Clusters: starting one and applying manifests to it.

pub mod apply;
pub mod images;
