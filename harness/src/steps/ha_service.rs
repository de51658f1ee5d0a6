//! Steps about an HA service (primary + standby + Service): setting it up, the faults that
//! hit it directly, and the deadlines its failover is held to.

use std::time::{Duration, Instant};

use anyhow::Context;
use cucumber::{given, then, when};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use super::error::{StepResult, bail, ensure};
use super::params::{SideParam, Span};
use crate::HadrillWorld;
use crate::cluster::drain::{self, DrainOptions};
use crate::cluster::ha_pair::{self, Side};
use crate::probes::wait::until;
use crate::world::MarkKind;

/// `Given an HA service "dispatch" with a primary and a standby deployment of 2 replicas`
///
/// Creates both Deployments (the sample service, exporting spans to the scenario's trace
/// sink) with their disruption budgets, waits until both sides are available, then creates the annotated Service (so the
/// controller never sees a side still starting); with a controller running, also waits until
/// it has adopted the Service.
#[given(expr = "an HA service {string} with a primary and a standby deployment of {int} replica(s)")]
async fn ha_service(world: &mut HadrillWorld, name: String, replicas: i32) -> StepResult {
    if world.traffic.traces.is_none() {
        world.traffic.traces = Some(match world.cluster.sim {
            Some(_) => crate::traces::sink::Sink::embedded().await?,
            None => crate::traces::sink::Sink::jaeger(world.client()?).await?,
        });
    }
    let otlp = world.traffic.traces.as_ref().map(|t| t.otlp_endpoint());
    let deployments = world.api::<Deployment>()?;
    let budgets = world.api::<PodDisruptionBudget>()?;
    for side in [Side::Primary, Side::Standby] {
        let d = ha_pair::deployment(&name, side, replicas, otlp.as_deref())?;
        deployments
            .create(&PostParams::default(), &d)
            .await
            .with_context(|| format!("creating deployment {}", ha_pair::workload(&name, side)))?;
        budgets
            .create(&PostParams::default(), &ha_pair::budget(&name, side)?)
            .await
            .with_context(|| format!("creating the disruption budget {}", ha_pair::workload(&name, side)))?;
    }
    for side in [Side::Primary, Side::Standby] {
        let what = format!("{} {replicas} available replica(s)", ha_pair::workload(&name, side));
        until(&deployments, &ha_pair::workload(&name, side), &what, move |d: &Deployment| {
            d.status.as_ref().is_some_and(|s| s.available_replicas == Some(replicas))
        })
        .await?;
    }
    world
        .api::<Service>()?
        .create(&PostParams::default(), &ha_pair::service(&name)?)
        .await
        .with_context(|| format!("creating service {name}"))?;
    world.service.names.push(name.clone());
    if controller_present(world).await? {
        let services = world.api::<Service>()?;
        until(&services, &name, "the controller to adopt the Service", |s: &Service| {
            s.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.get("failover.hadrill.io/active").map(String::as_str) == Some("primary"))
        })
        .await?;
    }
    Ok(())
}

async fn controller_present(world: &HadrillWorld) -> anyhow::Result<bool> {
    let api: kube::Api<Deployment> = kube::Api::namespaced(world.client()?, crate::cluster::controller::CONTROLLER_NS);
    Ok(api.get_opt(crate::cluster::controller::CONTROLLER).await?.is_some())
}

/// The live (not terminating) pods of one side.
async fn pods_of(world: &HadrillWorld, name: &str, side: Side) -> anyhow::Result<Vec<Pod>> {
    let lp = ListParams::default().labels(&ha_pair::selector(name, side));
    let mut pods = world.api::<Pod>()?.list(&lp).await.context("listing pods")?.items;
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    Ok(pods)
}

/// The node of the primary's first live pod.
pub(crate) async fn node_of_primary(world: &HadrillWorld, name: &str) -> anyhow::Result<String> {
    let pods = pods_of(world, name, Side::Primary).await?;
    pods.iter()
        .find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .with_context(|| format!("no pod of the primary of {name} is on a node"))
}

async fn kill(world: &mut HadrillWorld, name: &str, side: Side, count: Option<usize>) -> anyhow::Result<()> {
    let which = side.as_str();
    let pods = pods_of(world, name, side).await?;
    ensure!(!pods.is_empty(), "the {which} of {name} has no pods to kill");
    let n = count.unwrap_or(pods.len());
    ensure!(n <= pods.len(), "asked to kill {n} pods of the {which} of {name}, it has {}", pods.len());
    let api = world.api::<Pod>()?;
    let at = Instant::now();
    let names: Vec<String> =
        pods.iter().take(n).map(|p| p.metadata.name.clone().context("pod without a name")).collect::<Result<_, _>>()?;
    // All at once, as a PodChaos pod-kill does: one by one, the Deployment's replacement for the
    // first could be Ready before the last is killed, and the side would never be all down.
    let kills = names.iter().map(|pod| {
        let api = api.clone();
        async move {
            api.delete(pod, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                .await
                .with_context(|| format!("killing pod {pod}"))
        }
    });
    futures::future::try_join_all(kills).await?;
    let pods = names.iter().map(|p| format!("{}/{p}", world.cluster.namespace)).collect();
    world.fault(format!("{n} pod(s) of the {which} of {name} killed"), at, pods);
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
    let SideParam(side) = side;
    let workload = ha_pair::workload(&name, side);
    let deployments = world.api::<Deployment>()?;
    let scale = serde_json::json!({"spec": {"replicas": replicas}});
    deployments
        .patch(&workload, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&scale))
        .await
        .with_context(|| format!("scaling {workload}"))?;
    until(&deployments, &workload, &format!("{workload} at {replicas} ready replica(s)"), move |d: &Deployment| {
        d.status.as_ref().is_some_and(|s| {
            s.observed_generation == d.metadata.generation
                && s.replicas.unwrap_or(0) == replicas
                && s.ready_replicas.unwrap_or(0) == replicas
        })
    })
    .await?;
    Ok(())
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
    let Some(took) = await_side(world, &name, Side::Standby, start, limit, "fail over").await? else {
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

/// Waits by watch (printing progress) until Service `name` selects `side`, at most `limit`;
/// returns the time since `from`, or `None` when the limit ran out.
async fn await_side(
    world: &HadrillWorld,
    name: &str,
    side: Side,
    from: Instant,
    limit: Duration,
    verb: &str,
) -> anyhow::Result<Option<Duration>> {
    let services = world.api::<Service>()?;
    let n = name.to_string();
    let what = format!("the switch to the {}", side.as_str());
    let wait = until(&services, name, &what, move |s: &Service| ha_pair::selected_side(&n, s) == Some(side));
    let progress = format!("{name} to {verb}");
    match tokio::time::timeout(limit, crate::probes::progress::waiting(&progress, wait)).await {
        Ok(Ok(_)) => Ok(Some(from.elapsed())),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

/// `Then "dispatch" stays on the primary for 10 s`
///
/// Watches the Service for the whole window: any change of its selector away from the
/// primary fails the step at once. (A window is the only way to observe that nothing happens.)
#[then(expr = "{string} stays on the primary for {duration}")]
async fn stays(world: &mut HadrillWorld, name: String, window: Span) -> StepResult {
    let services = world.api::<Service>()?;
    let current = services.get(&name).await.with_context(|| format!("reading service {name}"))?;
    ensure!(ha_pair::selected_side(&name, &current) == Some(Side::Primary), "{name} does not select the primary now");
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(services, config).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let held = tokio::time::sleep(window.0);
    tokio::pin!(held);
    loop {
        tokio::select! {
            _ = &mut held => break,
            next = stream.try_next() => {
                let svc = next.context("watching the service")?.context("the service watch ended")?;
                if ha_pair::selected_side(&name, &svc) != Some(Side::Primary) {
                    bail!("{name} switched away from the primary: selector {:?}", svc.spec.and_then(|s| s.selector));
                }
            }
        }
    }
    world.figure(format!("{name}: stayed on the primary"), window.secs(), None);
    Ok(())
}

/// `Given "dispatch" fails back automatically after 5 s`
///
/// Annotates the Service for the controller: failback `auto` once the primary has been healthy
/// that long, and the same minimum dwell between switches.
#[given(expr = "{string} fails back automatically after {duration}")]
async fn failback_auto(world: &mut HadrillWorld, name: String, after: Span) -> StepResult {
    let patch = serde_json::json!({"metadata": {"annotations": {
        "failover.hadrill.io/failback": "auto",
        "failover.hadrill.io/failback-after": after.go_duration(),
        "failover.hadrill.io/dwell": after.go_duration(),
    }}});
    world
        .api::<Service>()?
        .patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating service {name} for automatic failback"))?;
    Ok(())
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
    let Some(took) = await_side(world, &name, Side::Primary, switched, limit, "fail back").await? else {
        bail!("{name} did not fail back within {:.1?} (deadline {within})", switched.elapsed());
    };
    world.mark(switched + took, MarkKind::Switched, format!("{name} failed back to the primary"));
    world.figure(format!("{name}: switch to failback"), took.as_secs_f64(), Some(within.secs()));
    ensure!(took <= deadline, "{name} failed back after {took:.3?}, deadline {within}");
    Ok(())
}
