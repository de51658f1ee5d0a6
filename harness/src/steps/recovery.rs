//! Steps about how the system under test reacts to a fault, read from what it publishes: the
//! Events it writes on the Service (detection, the cause it names) and the Service's endpoints
//! (traffic served again), watched by [`crate::probes::reaction`].

use std::time::Duration;

use anyhow::Context;
use cucumber::then;
use k8s_openapi::api::events::v1::Event;

use super::error::{StepResult, ensure};
use super::params::Span;
use crate::HadrillWorld;
use crate::cluster::ha_pair::{self, Side};
use crate::probes::reaction;
use crate::world::MarkKind;

/// The first Event on Service `name` after the incident's first fault that `accept`s.
async fn first_event(
    world: &HadrillWorld,
    name: &str,
    limit: Duration,
    what: &str,
    accept: impl Fn(&Event) -> bool,
) -> anyhow::Result<(f64, Event)> {
    let fault = world.incident()?;
    reaction::first_event(world.api()?, name, crate::world::wall_clock(fault.at), limit, what, accept)
        .await
        .with_context(|| format!("counted from \"{}\"", fault.label))
}

/// Seconds after the incident's first fault until Service `name` has a ready standby endpoint.
async fn standby_serving(world: &HadrillWorld, name: &str, limit: Duration) -> anyhow::Result<f64> {
    let fault = world.incident()?;
    let prefix = format!("{}-", ha_pair::workload(name, Side::Standby));
    reaction::ready_address_of(world.api()?, name, &prefix, fault.at, limit)
        .await
        .with_context(|| format!("counted from \"{}\"", fault.label))
}

/// `Then the fault is detected within 1 min, located within 5 min and recovered within 10 min`
///
/// The 1-5-10 requirement, counted from the incident (the first fault that hit the service's
/// pods). Detected: the first Event the system writes on the Service after it. Located: the
/// first such Event naming every pod the faults on the service hit. Recovered: the Service has
/// a ready standby endpoint again (traffic can be served).
#[then(expr = "the fault is detected within {duration}, located within {duration} and recovered within {duration}")]
async fn one_five_ten(world: &mut HadrillWorld, detect: Span, locate: Span, recover: Span) -> StepResult {
    let (detect, locate, recover) = (detect.0, locate.0, recover.0);
    let name = world.ha_service()?.to_string();
    let incident = world.incident()?;
    let fault = incident.at;
    let pods = world.faults.service_pods();
    ensure!(!pods.is_empty(), "the faults recorded no pods, so 'located' cannot be judged");

    let (detected, first) = first_event(world, &name, detect, "detection", |_| true).await?;
    world.mark(fault + Duration::from_secs_f64(detected), MarkKind::Detected, format!("detected: {}", reason(&first)));
    world.figure_from(&incident, format!("{name}: detected"), detected, Some(detect.as_secs_f64()));

    let names = pods.clone();
    let (located, cause) = first_event(world, &name, locate, "location (an Event naming the faulty pods)", move |e| {
        let note = e.note.as_deref().unwrap_or_default();
        names.iter().all(|p| note.contains(p.as_str()))
    })
    .await
    .with_context(|| format!("no Event on {name} names all of {pods:?}"))?;
    world.mark(fault + Duration::from_secs_f64(located), MarkKind::Note, format!("located: {}", reason(&cause)));
    world.figure_from(&incident, format!("{name}: located"), located, Some(locate.as_secs_f64()));

    let recovered = standby_serving(world, &name, recover).await?;
    world.mark(
        fault + Duration::from_secs_f64(recovered),
        MarkKind::Recovered,
        format!("{name} served by the standby"),
    );
    world.figure_from(&incident, format!("{name}: recovered"), recovered, Some(recover.as_secs_f64()));
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
/// An Event on the Service, written after the incident's first fault, whose note names every
/// pod of the service the faults hit (so an operator finds the cause with `kubectl describe
/// service`).
#[then(expr = "the controller reports the cause naming the dead pods")]
async fn reports_cause(world: &mut HadrillWorld) -> StepResult {
    let name = world.ha_service()?.to_string();
    let incident = world.incident()?;
    let pods = world.faults.service_pods();
    ensure!(!pods.is_empty(), "the faults recorded no pods of {name}");
    let names = pods.clone();
    let (at, event) = first_event(world, &name, crate::probes::wait::SETTLE, "the cause", move |e| {
        let note = e.note.as_deref().unwrap_or_default();
        names.iter().all(|p| note.contains(p.as_str()))
    })
    .await
    .with_context(|| format!("no Event on {name} names all of {pods:?}"))?;
    world.note(format!("controller: {}", reason(&event)));
    world.figure_from(&incident, format!("{name}: cause reported"), at, None);
    Ok(())
}

/// `Then the controller warns that both sides of "dispatch" are down`
#[then(expr = "the controller warns that both sides of {string} are down")]
async fn warns_both_down(world: &mut HadrillWorld, name: String) -> StepResult {
    let (at, event) = first_event(world, &name, crate::probes::wait::SETTLE, "a Warning", |e| {
        e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("BothUnhealthy")
    })
    .await?;
    world.note(format!("controller: {}", reason(&event)));
    world.figure(format!("{name}: both-down warning"), at, None);
    Ok(())
}
