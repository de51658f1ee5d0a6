//! Pods that left recently. A killed pod is gone from the API before the controller judges its
//! workload (its replacement is what is left to see), so the reason for a failover would name
//! only the replacements. The controller remembers deleted pods for a window and names them in
//! its events: `dispatch-a-7c9d: deleted 0.4 s ago`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;

use crate::health::restarts::later;

/// Upper bound of remembered pods (a mass deletion must not grow memory without bound).
const MAX: usize = 10_000;

#[derive(Debug, Clone)]
struct Departure {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    at: Timestamp,
}

/// Recently deleted pods, oldest first.
#[derive(Debug)]
pub struct Departures {
    window: Duration,
    list: Mutex<VecDeque<Departure>>,
}

impl Departures {
    /// Remembers pods for `window`.
    pub fn new(window: Duration) -> Departures {
        Departures { window, list: Mutex::new(VecDeque::new()) }
    }

    /// Records that `pod` was deleted at `now`.
    pub fn record(&self, pod: &Pod, now: Timestamp) {
        let (Some(namespace), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone()) else {
            return;
        };
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.push_back(Departure { namespace, name, labels, at: now });
        while list.len() > MAX {
            list.pop_front();
        }
    }

    /// Pods of `namespace` selected by `selector` that were deleted within the window before
    /// `now`, oldest first, as `name: deleted N s ago`.
    pub fn matching(&self, namespace: &str, selector: &LabelSelector, now: Timestamp) -> Vec<String> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        while list.front().is_some_and(|d| later(d.at, self.window) <= now) {
            list.pop_front();
        }
        list.iter()
            .filter(|d| d.namespace == namespace && crate::workload::selects(selector, &d.labels))
            .map(|d| {
                let ago = Duration::try_from(now.duration_since(d.at)).unwrap_or_default();
                format!("{}: deleted {:.1} s ago", d.name, ago.as_secs_f64())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, app: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name, "labels": {"app": app}}
        }))
        .expect("pod")
    }

    fn selector(app: &str) -> LabelSelector {
        LabelSelector { match_labels: Some(BTreeMap::from([("app".into(), app.into())])), match_expressions: None }
    }

    #[test]
    fn deleted_pods_are_named_for_their_workload_within_the_window_only() {
        let d = Departures::new(Duration::from_secs(60));
        let t0 = Timestamp::UNIX_EPOCH;
        d.record(&pod("a", "web-1", "web"), t0);
        d.record(&pod("a", "db-1", "db"), t0);
        d.record(&pod("b", "web-2", "web"), t0);
        let t1 = later(t0, Duration::from_millis(1500));
        assert_eq!(d.matching("a", &selector("web"), t1), vec!["web-1: deleted 1.5 s ago".to_string()]);
        assert!(d.matching("a", &selector("cache"), t1).is_empty());
        let t2 = later(t0, Duration::from_secs(61));
        assert!(d.matching("a", &selector("web"), t2).is_empty(), "outside the window");
    }
}
