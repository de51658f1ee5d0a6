//! Routes "look at this Service again" requests (from watches of pods, nodes and workloads, and
//! from the prober) to the controller of the Service's namespace.

use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

type Route = (Option<String>, UnboundedSender<ObjectRef<Service>>);

/// Reconcile triggers, one channel per watched scope (a namespace, or all).
#[derive(Clone, Default)]
pub struct Triggers {
    routes: Arc<Mutex<Vec<Route>>>,
}

impl Triggers {
    /// Registers a scope (`None` = all namespaces) and returns its receiving end.
    pub fn add(&self, namespace: Option<String>) -> UnboundedReceiver<ObjectRef<Service>> {
        let (tx, rx) = unbounded_channel();
        self.routes.lock().unwrap_or_else(PoisonError::into_inner).push((namespace, tx));
        rx
    }

    /// Sends a Service to the scope(s) that watch its namespace.
    pub fn send(&self, service: ObjectRef<Service>) {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        for (scope, tx) in routes.iter() {
            if scope.is_none() || scope.as_deref() == service.namespace.as_deref() {
                let _ = tx.send(service.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_go_to_the_scopes_of_their_namespace() {
        let t = Triggers::default();
        let mut all = t.add(None);
        let mut a = t.add(Some("a".into()));
        let mut b = t.add(Some("b".into()));
        t.send(ObjectRef::new("s").within("a"));
        assert_eq!(all.try_recv().map(|r| r.name), Ok("s".to_string()));
        assert_eq!(a.try_recv().map(|r| r.name), Ok("s".to_string()));
        assert!(b.try_recv().is_err());
    }
}
