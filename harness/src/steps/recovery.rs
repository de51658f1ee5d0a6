//! Steps about how the system under test reacts to a fault, read from what it publishes: the
//! Events it writes on the Service (detection, the cause it names) and the Service's endpoints
//! (traffic served again). Every time is measured from the fault, by watch.

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail, ensure};
use cucumber::then;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::events::v1::Event;
use kube::runtime::{WatchStreamExt, watcher};

use crate::HadrillWorld;
use crate::cluster::ha_pair::{self, Side};
use crate::world::MarkKind;

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

/// An Event about Service `name` published after the fault: (seconds after the fault, note).
async fn first_event(
    world: &HadrillWorld,
    name: &str,
    limit: Duration,
    what: &str,
    accept: impl Fn(&Event) -> bool,
) -> anyhow::Result<(f64, Event)> {
    let fault = world.faults.at.context("no fault was injected before this step")?;
    let fault_wall = crate::world::wall_clock(fault);
    let events = world.api::<Event>()?;
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

/// Seconds after the fault until the Service's Endpoints hold a ready address of the standby.
async fn standby_serving(world: &HadrillWorld, name: &str, limit: Duration) -> anyhow::Result<f64> {
    let fault = world.faults.at.context("no fault was injected before this step")?;
    let prefix = format!("{}-", ha_pair::workload(name, Side::Standby));
    let endpoints = world.api::<Endpoints>()?;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(endpoints, config).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let search = async {
        while let Some(ep) = stream.try_next().await.context("watching endpoints")? {
            let ready_standby =
                ep.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten()).any(|a| {
                    a.target_ref.as_ref().and_then(|t| t.name.as_deref()).is_some_and(|n| n.starts_with(&prefix))
                });
            if ready_standby {
                return Ok(fault.elapsed().as_secs_f64());
            }
        }
        bail!("the endpoints watch ended")
    };
    match tokio::time::timeout(limit, search).await {
        Ok(found) => found,
        Err(_) => bail!("service {name}: no ready standby endpoint within {limit:?} of the fault"),
    }
}

/// Parses `1 min`, `90 s`, `5 min`, `2 h`.
fn parse_span(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (n, unit) =
        text.split_once(' ').with_context(|| format!("{text:?}: expected a number and a unit (s, min, h)"))?;
    let n: f64 = n.parse().with_context(|| format!("{text:?}: {n:?} is not a number"))?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" | "seconds" => n,
        "min" | "minute" | "minutes" => n * 60.0,
        "h" | "hour" | "hours" => n * 3600.0,
        other => bail!("{text:?}: unknown unit {other:?} (s, min or h)"),
    };
    ensure!(seconds > 0.0, "{text:?}: must be positive");
    Ok(Duration::from_secs_f64(seconds))
}

/// `Then the fault is detected within 1 min, located within 5 min and recovered within 10 min`
///
/// The 1-5-10 requirement. Detected: the first Event the system writes on the Service after
/// the fault. Located: the first such Event naming every pod the fault hit. Recovered: the
/// Service has a ready standby endpoint again (traffic can be served).
#[then(
    expr = "the fault is detected within {word} {word}, located within {word} {word} and recovered within {word} {word}"
)]
#[allow(clippy::too_many_arguments)] // cucumber passes each captured word
async fn one_five_ten(
    world: &mut HadrillWorld,
    dn: String,
    du: String,
    ln: String,
    lu: String,
    rn: String,
    ru: String,
) -> anyhow::Result<()> {
    let detect = parse_span(&format!("{dn} {du}"))?;
    let locate = parse_span(&format!("{ln} {lu}"))?;
    let recover = parse_span(&format!("{rn} {ru}"))?;
    let name = world.ha_service()?.to_string();
    let fault = world.faults.at.context("no fault was injected before this step")?;
    let pods = world.faults.pods.clone();
    ensure!(!pods.is_empty(), "the fault recorded no pods, so 'located' cannot be judged");

    let (detected, first) = first_event(world, &name, detect, "detection", |_| true).await?;
    world.mark(fault + Duration::from_secs_f64(detected), MarkKind::Detected, format!("detected: {}", reason(&first)));
    world.figure(format!("{name}: detected"), detected, Some(detect.as_secs_f64()));

    let names = pods.clone();
    let (located, cause) = first_event(world, &name, locate, "location (an Event naming the faulty pods)", move |e| {
        let note = e.note.as_deref().unwrap_or_default();
        names.iter().all(|p| note.contains(p.as_str()))
    })
    .await
    .with_context(|| format!("no Event on {name} names all of {pods:?}"))?;
    world.mark(fault + Duration::from_secs_f64(located), MarkKind::Note, format!("located: {}", reason(&cause)));
    world.figure(format!("{name}: located"), located, Some(locate.as_secs_f64()));

    let recovered = standby_serving(world, &name, recover).await?;
    world.mark(
        fault + Duration::from_secs_f64(recovered),
        MarkKind::Recovered,
        format!("{name} served by the standby"),
    );
    world.figure(format!("{name}: recovered"), recovered, Some(recover.as_secs_f64()));
    ensure!(detected <= detect.as_secs_f64(), "detected after {detected:.3} s, allowed {detect:?}");
    ensure!(located <= locate.as_secs_f64(), "located after {located:.3} s, allowed {locate:?}");
    ensure!(recovered <= recover.as_secs_f64(), "recovered after {recovered:.3} s, allowed {recover:?}");
    Ok(())
}

fn reason(e: &Event) -> String {
    format!("{} {}", e.reason.as_deref().unwrap_or("?"), e.note.as_deref().unwrap_or_default())
}

/// `Then the controller reports the cause naming the dead pods`
///
/// An Event on the Service, written after the fault, whose note names every pod the fault hit
/// (so an operator finds the cause with `kubectl describe service`).
#[then(expr = "the controller reports the cause naming the dead pods")]
async fn reports_cause(world: &mut HadrillWorld) -> anyhow::Result<()> {
    let name = world.ha_service()?.to_string();
    let pods = world.faults.pods.clone();
    ensure!(!pods.is_empty(), "the fault recorded no pods");
    let names = pods.clone();
    let (at, event) = first_event(world, &name, crate::probes::wait::SETTLE, "the cause", move |e| {
        let note = e.note.as_deref().unwrap_or_default();
        names.iter().all(|p| note.contains(p.as_str()))
    })
    .await
    .with_context(|| format!("no Event on {name} names all of {pods:?}"))?;
    world.note(format!("controller: {}", reason(&event)));
    world.figure(format!("{name}: cause reported"), at, None);
    Ok(())
}

/// `Then the controller warns that both sides of "dispatch" are down`
#[then(expr = "the controller warns that both sides of {string} are down")]
async fn warns_both_down(world: &mut HadrillWorld, name: String) -> anyhow::Result<()> {
    let (at, event) = first_event(world, &name, crate::probes::wait::SETTLE, "a Warning", |e| {
        e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("BothUnhealthy")
    })
    .await?;
    world.note(format!("controller: {}", reason(&event)));
    world.figure(format!("{name}: both-down warning"), at, None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_span("1 min").expect("min"), Duration::from_secs(60));
        assert_eq!(parse_span("90 s").expect("s"), Duration::from_secs(90));
        assert_eq!(parse_span("2 h").expect("h"), Duration::from_secs(7200));
        assert!(parse_span("5 parsecs").is_err());
        assert!(parse_span("five min").is_err());
        assert!(parse_span("10").is_err());
    }
}
