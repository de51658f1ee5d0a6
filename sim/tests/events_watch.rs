//! Events written through events.k8s.io/v1 reach watchers of that API and of core/v1 alike.

mod support;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

fn event(name: &str) -> Event {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reason": "FailedOver", "note": "primary down", "type": "Warning", "action": "Switch",
        "reportingController": "test/controller", "reportingInstance": "t-1",
        "regarding": {"kind": "Service", "name": "dispatch", "namespace": "default", "apiVersion": "v1"},
    }))
    .expect("event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_created_after_the_watch_started_is_delivered_in_both_apis() {
    let sim = support::start(1).await;
    let client = sim.client().expect("client");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    events.create(&PostParams::default(), &event("before")).await.expect("create before");
    let mut new_api = std::pin::pin!(watcher(events.clone(), watcher::Config::default()).applied_objects());
    let mut old_api = std::pin::pin!(watcher(core, watcher::Config::default()).applied_objects());
    let first = new_api.try_next().await.expect("watch").expect("an event");
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    let first = old_api.try_next().await.expect("watch").expect("an event");
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    events.create(&PostParams::default(), &event("after")).await.expect("create after");
    let limit = std::time::Duration::from_secs(10);
    let next = tokio::time::timeout(limit, new_api.try_next()).await.expect("delivered in time").expect("watch");
    let next = next.expect("an event");
    assert_eq!(next.metadata.name.as_deref(), Some("after"));
    assert_eq!(next.note.as_deref(), Some("primary down"));
    assert_eq!(next.regarding.and_then(|r| r.name).as_deref(), Some("dispatch"));
    let next = tokio::time::timeout(limit, old_api.try_next()).await.expect("delivered in time").expect("watch");
    let next = next.expect("an event");
    assert_eq!(next.metadata.name.as_deref(), Some("after"));
    assert_eq!(next.message.as_deref(), Some("primary down"));
}
