//! Events on HA Services (`events.k8s.io/v1`), one per decision. Repetitions are filtered by the
//! caller (an event is published when a Service's reason or note changes), so every event is a
//! create: kube-runtime's `Recorder` would fold a second `FailedOver` within minutes into the
//! first one's series, keeping the first note, while here each note names the pods of its own
//! failover.

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

/// Name of the reporting controller in events.
pub const REPORTING_CONTROLLER: &str = "hadrill.io/failover-controller";

/// The most bytes an event note may have.
const NOTE_MAX: usize = 1024;

/// Publishes events on Services.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
}

impl Publisher {
    /// A publisher reporting as `instance` (the pod name / leader identity).
    pub fn new(client: Client, instance: impl Into<String>) -> Publisher {
        Publisher { client, instance: instance.into() }
    }

    /// Publishes one event on `service`.
    pub async fn publish(&self, service: &Service, warning: bool, reason: &str, note: &str) -> kube::Result<()> {
        let ns = service.namespace().unwrap_or_else(|| "default".into());
        let now = Timestamp::now();
        let regarding: ObjectReference = service.object_ref(&());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", service.name_any(), now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(action(reason).into()),
            reason: Some(reason.into()),
            note: Some(truncate(note, NOTE_MAX)),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            regarding: Some(regarding),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &ns).create(&PostParams::default(), &event).await.map(|_| ())
    }
}

/// The action an event reason reports.
fn action(reason: &str) -> &'static str {
    match reason {
        "FailedOver" | "FailedBack" | "Switched" | "Configured" => "Switch",
        "InvalidConfig" => "Validate",
        _ => "Evaluate",
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(600);
        let cut = truncate(&long, NOTE_MAX);
        assert!(cut.len() <= NOTE_MAX && cut.ends_with('…'));
        assert_eq!(action("FailedOver"), "Switch");
        assert_eq!(action("BothUnhealthy"), "Evaluate");
    }
}
