//! Clusters: starting one and applying manifests to it.

pub mod apply;
pub mod embedded;
pub mod ha_pair;
pub mod images;
