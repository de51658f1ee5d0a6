//! Steps about an HA service (primary + standby + Service): setting it up, the faults that
//! hit it directly, and the deadlines its failover is held to.

use std::time::{Duration, Instant};

use anyhow::Context;
use cucumber::{given, then, when};

use super::error::{StepResult, bail, ensure};
use super::params::{SideParam, Span};
use crate::HadrillWorld;
use crate::cluster::drain::{self, DrainOptions};
use crate::cluster::ha_pair::Side;
use crate::cluster::ha_service::HaService;
use crate::world::MarkKind;

/// The HA service `name` in the scenario's namespace.
fn service(world: &HadrillWorld, name: &str) -> anyhow::Result<HaService> {
    Ok(HaService::new(&world.client()?, &world.cluster.namespace, name))
}

/// `Given an HA service "dispatch" with a primary and a standby deployment of 2 replicas`
///
/// Sets up the pair (`cluster::ha_service`), its spans going to the scenario's trace sink
/// (started here on first use); with a controller running, also waits until it has adopted
/// the Service.
#[given(expr = "an HA service {string} with a primary and a standby deployment of {int} replica(s)")]
async fn ha_service(world: &mut HadrillWorld, name: String, replicas: i32) -> StepResult {
    if world.traffic.traces.is_none() {
        world.traffic.traces = Some(match world.cluster.sim {
            Some(_) => crate::traces::sink::Sink::embedded().await?,
            None => crate::traces::sink::Sink::jaeger(world.client()?).await?,
        });
    }
    let otlp = world.traffic.traces.as_ref().map(|t| t.otlp_endpoint());
    let svc = service(world, &name)?;
    svc.create(replicas, otlp.as_deref()).await?;
    world.service.names.push(name);
    if crate::cluster::controller::deployed(&world.client()?).await? {
        svc.adopted().await?;
    }
    Ok(())
}

/// The node of the primary's first live pod.
pub(crate) async fn node_of_primary(world: &HadrillWorld, name: &str) -> anyhow::Result<String> {
    service(world, name)?.primary_node().await
}

/// Kills pods of one side and records the fault (its time is the kill's start).
async fn kill(world: &mut HadrillWorld, name: &str, side: Side, count: Option<usize>) -> anyhow::Result<()> {
    let at = Instant::now();
    let killed = service(world, name)?.kill(side, count).await?;
    let pods = killed.iter().map(|p| format!("{}/{p}", world.cluster.namespace)).collect();
    world.fault(format!("{} pod(s) of the {} of {name} killed", killed.len(), side.as_str()), at, pods);
    Ok(())
}

/// `When the node hosting the primary of "dispatch" is drained`
///
/// Drains the node of the primary's first pod as `kubectl drain` does (`cluster::drain`: cordon,
/// evictions honouring the disruption budgets, refused ones asked again every 5 s, 60 s in
/// all) and returns once its pods are gone; deadlines count from the cordon. The node is
/// uncordoned when the scenario ends.
#[when(expr = "the node hosting the primary of {string} is drained")]
async fn primary_node_drained(world: &mut HadrillWorld, name: String) -> StepResult {
    let node = node_of_primary(world, &name).await?;
    let opts = DrainOptions { run: Some(world.cluster.run_id.clone()), ..Default::default() };
    let client = world.client()?;
    world.faults.cordoned.push(node.clone());
    let at = Instant::now();
    let drained = drain::drain(&client, &node, &opts).await?;
    // The evicted pods are the fault's: a drain of the primary's node is an incident of the service.
    world.fault(format!("node {node} (hosting the primary of {name}) drained"), at, drained.evicted.clone());
    world.figure(
        format!("drain of node {node} ({} pod(s) evicted)", drained.evicted.len()),
        drained.took.as_secs_f64(),
        None,
    );
    Ok(())
}

/// `When every pod of the primary of "dispatch" is killed`
#[when(expr = "every pod of the {side} of {string} is killed")]
async fn kill_all(world: &mut HadrillWorld, side: SideParam, name: String) -> StepResult {
    Ok(kill(world, &name, side.0, None).await?)
}

/// `When 1 pod of the primary of "dispatch" is killed`
#[when(expr = "{int} pod(s) of the {side} of {string} is/are killed")]
async fn kill_some(world: &mut HadrillWorld, count: usize, side: SideParam, name: String) -> StepResult {
    Ok(kill(world, &name, side.0, Some(count)).await?)
}

/// `When the standby of "dispatch" is scaled to 0`
///
/// Scales one side's Deployment and waits until it has exactly that many ready replicas
/// (a side with no pods is unhealthy).
#[when(expr = "the {side} of {string} is scaled to {int}")]
async fn scaled(world: &mut HadrillWorld, side: SideParam, name: String, replicas: i32) -> StepResult {
    Ok(service(world, &name)?.scale(side.0, replicas).await?)
}

/// `Then "dispatch" fails over to the standby within 10 s`
///
/// Measured from the incident (the first fault that hit the service's pods) to the Service
/// selecting the standby's pods, by watch. A miss says why: the controller's last word on the
/// Service and the pods each fault hit.
#[then(expr = "{string} fails over to the standby within {duration}")]
async fn fails_over(world: &mut HadrillWorld, name: String, within: Span) -> StepResult {
    let incident = world.incident()?;
    let start = incident.at;
    let deadline = within.0;
    // Wait past the deadline (bounded) so a late switch is still measured and reported.
    let limit = deadline * 3 + Duration::from_secs(5);
    let from = format!("counted from \"{}\"", incident.label);
    let progress = format!("{name} to fail over");
    let Some(took) = service(world, &name)?.await_side(Side::Standby, start, limit, &progress).await? else {
        let why = missed_why(world, &name).await;
        bail!("{name} did not fail over within {:.1?} (deadline {within}, {from})\n{why}", start.elapsed());
    };
    world.mark(start + took, MarkKind::Switched, format!("{name} switched to the standby"));
    world.figure_from(&incident, format!("{name}: fault to switch"), took.as_secs_f64(), Some(within.secs()));
    if took > deadline {
        let why = missed_why(world, &name).await;
        bail!("{name} failed over after {took:.3?}, deadline {within} ({from})\n{why}");
    }
    Ok(())
}

/// Why a deadline was missed, one fact a line: the controller's last Event about Service
/// `name` and its condition (what it thought), then the pods each fault hit.
async fn missed_why(world: &HadrillWorld, name: &str) -> String {
    let word = match (world.api(), world.api()) {
        (Ok(events), Ok(services)) => crate::probes::reaction::last_word(events, services, name).await,
        (Err(e), _) | (_, Err(e)) => format!("the controller's word on {name} could not be read: {e}"),
    };
    format!("{word}\n{}", world.faults.describe())
}

/// `Then "dispatch" stays on the primary for 10 s`
///
/// Watches the Service for the whole window: any change of its selector away from the
/// primary fails the step at once. (A window is the only way to observe that nothing happens.)
#[then(expr = "{string} stays on the primary for {duration}")]
async fn stays(world: &mut HadrillWorld, name: String, window: Span) -> StepResult {
    service(world, &name)?.stays_on(Side::Primary, window.0).await?;
    world.figure(format!("{name}: stayed on the primary"), window.secs(), None);
    Ok(())
}

/// `Given "dispatch" fails back automatically after 5 s`
///
/// Annotates the Service for the controller: failback `auto` once the primary has been healthy
/// that long, and the same minimum dwell between switches.
#[given(expr = "{string} fails back automatically after {duration}")]
async fn failback_auto(world: &mut HadrillWorld, name: String, after: Span) -> StepResult {
    Ok(service(world, &name)?.fail_back_after(&after.go_duration()).await?)
}

/// `Then "dispatch" fails back to the primary within 30 s`
///
/// Measured from the switch to the standby (the last Switched mark) to the Service selecting
/// the primary again, by watch.
#[then(expr = "{string} fails back to the primary within {duration}")]
async fn fails_back(world: &mut HadrillWorld, name: String, within: Span) -> StepResult {
    let switched = world
        .timeline
        .marks
        .iter()
        .rev()
        .find(|m| m.kind == MarkKind::Switched)
        .map(|m| world.timeline.started + Duration::from_secs_f64(m.at))
        .context("no switch to the standby was observed before this step")?;
    let deadline = within.0;
    let limit = deadline * 2 + Duration::from_secs(5);
    let progress = format!("{name} to fail back");
    let Some(took) = service(world, &name)?.await_side(Side::Primary, switched, limit, &progress).await? else {
        bail!("{name} did not fail back within {:.1?} (deadline {within})", switched.elapsed());
    };
    world.mark(switched + took, MarkKind::Switched, format!("{name} failed back to the primary"));
    world.figure(format!("{name}: switch to failback"), took.as_secs_f64(), Some(within.secs()));
    ensure!(took <= deadline, "{name} failed back after {took:.3?}, deadline {within}");
    Ok(())
}
