//! The step library. Each module holds the steps of one subject:
//!
//! - [`cluster`]: starting the embedded cluster, applying manifests, what the cluster lists.

pub mod catalog;
pub mod cluster;
