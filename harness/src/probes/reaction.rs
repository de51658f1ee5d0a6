//! How the system under test reacts to a fault, read from what it publishes: the Events it
//! writes on a Service and the Service's endpoints. Every time is measured from the fault, by
//! watch.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Endpoints;
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
