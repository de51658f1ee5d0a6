//! How the system under test reacts to a fault, read from what it publishes: the Events it
//! writes on a Service and the Service's endpoints. Every time is measured from the fault, by
//! watch.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// Seconds from `from` to an Event's time (eventTime, else the deprecated fields' times).
fn event_offset(event: &Event, from: SystemTime) -> Option<f64> {
    let at = event
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
    let at = SystemTime::from(at);
    Some(match at.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    })
}

/// The first Event regarding Service `name` published after the fault (at `fault_wall`)
/// that `accept`s, within `limit`: (seconds after the fault, the Event). `what` names the
/// search in the timeout's error.
pub async fn first_event(
    events: Api<Event>,
    name: &str,
    fault_wall: SystemTime,
    limit: Duration,
    what: &str,
    accept: impl Fn(&Event) -> bool,
) -> anyhow::Result<(f64, Event)> {
    let stream = watcher(events, watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let search = async {
        while let Some(event) = stream.try_next().await.context("watching events")? {
            let about = event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                // The controller's adoption of the Service (written at set-up, possibly a few
                // milliseconds before the fault) says nothing about the fault.
                && event.reason.as_deref() != Some("Configured");
            // Events carry microseconds; allow for the clocks read on both sides of the fault.
            let Some(offset) = event_offset(&event, fault_wall) else { continue };
            if about && offset > -0.05 && accept(&event) {
                return Ok((offset.max(0.0), event));
            }
        }
        bail!("the event watch ended")
    };
    match tokio::time::timeout(limit, search).await {
        Ok(found) => found,
        Err(_) => bail!("{what}: no such Event regarding service {name} within {limit:?} of the fault"),
    }
}

/// Seconds after `fault` until the Endpoints `name` hold a ready address of a pod whose name
/// starts with `prefix` (e.g. the standby's pods), within `limit`.
pub async fn ready_address_of(
    endpoints: Api<Endpoints>,
    name: &str,
    prefix: &str,
    fault: Instant,
    limit: Duration,
) -> anyhow::Result<f64> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(endpoints, config).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let search = async {
        while let Some(ep) = stream.try_next().await.context("watching endpoints")? {
            let ready_standby =
                ep.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten()).any(|a| {
                    a.target_ref.as_ref().and_then(|t| t.name.as_deref()).is_some_and(|n| n.starts_with(prefix))
                });
            if ready_standby {
                return Ok(fault.elapsed().as_secs_f64());
            }
        }
        bail!("the endpoints watch ended")
    };
    match tokio::time::timeout(limit, search).await {
        Ok(found) => found,
        Err(_) => bail!("service {name}: no ready endpoint of {prefix}* within {limit:?} of the fault"),
    }
}

/// The annotation in which a controller may publish its condition of a Service (as JSON with
/// `type`, `status`, `reason`, `message`: Services have no custom conditions); the reference
/// controller's vocabulary.
pub const CONDITION_ANNOTATION: &str = hadrill_controller::annotations::CONDITION;

/// What the controller last said about Service `name`, one fact a line: its latest Event
/// regarding the Service (type, reason, note) and its condition, when it publishes one. For a
/// missed deadline's message: what the controller thought when the deadline passed.
pub async fn last_word(events: Api<Event>, services: Api<Service>, name: &str) -> String {
    let event = match events.list(&kube::api::ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Service"))
            .max_by_key(|e| event_offset(e, SystemTime::UNIX_EPOCH).map(|s| (s * 1e6) as i64))
            .map_or_else(
                || format!("the controller wrote no Event about service {name}"),
                |e| {
                    format!(
                        "the controller's last Event about service {name}: {} {}: {}",
                        e.type_.as_deref().unwrap_or("?"),
                        e.reason.as_deref().unwrap_or("?"),
                        e.note.as_deref().unwrap_or("(no note)")
                    )
                },
            ),
        Err(e) => format!("the Events about service {name} could not be listed: {e}"),
    };
    let condition = match services.get_opt(name).await {
        Ok(Some(svc)) => match svc.metadata.annotations.as_ref().and_then(|a| a.get(CONDITION_ANNOTATION)) {
            Some(json) => match serde_json::from_str::<serde_json::Value>(json) {
                Ok(c) => format!(
                    "its condition: {}={} ({}): {}",
                    c["type"].as_str().unwrap_or("?"),
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or("?"),
                    c["message"].as_str().unwrap_or_default()
                ),
                Err(_) => format!("its condition ({CONDITION_ANNOTATION}) is not JSON: {json}"),
            },
            None => format!("the controller publishes no condition on service {name} ({CONDITION_ANNOTATION})"),
        },
        Ok(None) => format!("service {name} does not exist"),
        Err(e) => format!("service {name} could not be read: {e}"),
    };
    format!("{event}\n{condition}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::PostParams;

    /// The controller's last word: its latest Event about the Service (not an older one, not one
    /// about another object) and the condition it publishes; and what is said when it has none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn last_word_is_the_latest_event_about_the_service_and_its_condition() {
        use k8s_openapi::api::core::v1::Namespace;
        sim::install_crypto_provider();
        let sim = sim::Sim::start(sim::SimConfig { nodes: 1, ..Default::default() }).await.unwrap();
        let client = sim.client().unwrap();
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "word"}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
        let (events, services) = (Api::<Event>::namespaced(client.clone(), "word"), Api::namespaced(client, "word"));

        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }))
        .unwrap();
        services.create(&PostParams::default(), &svc).await.unwrap();
        let word = last_word(events.clone(), services.clone(), "web").await;
        assert_eq!(
            word,
            "the controller wrote no Event about service web\n\
             the controller publishes no condition on service web (failover.hadrill.io/condition)"
        );

        let event = |name: &str, kind: &str, about: &str, at: &str, reason: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name}, "eventTime": at, "type": "Warning", "reason": reason,
                "note": format!("{reason} note"), "action": "Check", "reportingController": "c",
                "reportingInstance": "c-0", "regarding": {"kind": kind, "name": about, "namespace": "word"},
            }))
            .unwrap()
        };
        for e in [
            event("a", "Service", "web", "2026-01-01T00:00:02.000000Z", "BothUnhealthy"),
            event("b", "Service", "web", "2026-01-01T00:00:01.000000Z", "FailoverDelayed"),
            event("c", "Pod", "web", "2026-01-01T00:00:03.000000Z", "PodEvent"),
            event("d", "Service", "other", "2026-01-01T00:00:04.000000Z", "Other"),
        ] {
            events.create(&PostParams::default(), &e).await.unwrap();
        }
        let condition =
            r#"{"type":"Available","status":"False","reason":"BothUnhealthy","message":"no side is healthy"}"#;
        let patch = serde_json::json!({"metadata": {"annotations": {CONDITION_ANNOTATION: condition}}});
        services.patch("web", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
        let word = last_word(events, services, "web").await;
        assert_eq!(
            word,
            "the controller's last Event about service web: Warning BothUnhealthy: BothUnhealthy note\n\
             its condition: Available=False (BothUnhealthy): no side is healthy"
        );
        sim.stop().await;
    }
}
