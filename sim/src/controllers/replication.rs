//! The ReplicationController manager: kube-controller-manager runs the ReplicaSet controller
//! over ReplicationControllers (k/k `pkg/controller/replication/replication_controller.go`), and
//! so does the embedded cluster ([`super::replicaset::REPLICATION_CONTROLLERS`]).

use std::sync::Arc;

use crate::api::ops::Api;
use crate::api::resources::GroupResource;
use crate::api::store::Event;

/// Runs the ReplicationController manager until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::replicaset::run(api, events, super::replicaset::REPLICATION_CONTROLLERS).await
}
