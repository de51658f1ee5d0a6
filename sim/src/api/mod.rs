//! The Kubernetes API server subset: storage, semantics and HTTP.

pub mod auth;
pub mod builtin;
pub mod conversion;
pub mod crd;
pub mod defaults;
pub mod definitions;
pub mod http;
pub mod merge;
pub mod names;
pub mod ops;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod status;
pub mod store;

/// Spawns the in-process controllers for this API.
pub fn controllers_spawn(api: &std::sync::Arc<ops::Api>, workloads: bool) -> Vec<tokio::task::JoinHandle<()>> {
    crate::controllers::spawn_all(api, workloads)
}
