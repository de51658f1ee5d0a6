//! Steps that inject faults from the scenario library (`scenarios/*.yaml`) as Chaos Mesh
//! objects, through the injection lifecycle (targets first, `AllInjected` awaited, every object
//! in the run ledger and removed when the scenario ends, fails or is interrupted).
//!
//! Parameters a scenario declares are filled from the scenario's context when the feature does
//! not set them: `primary` / `standby` / `app` (labels of the HA service's sides), `node` (the
//! node of the primary's first pod), `container` (the HA pair's container), `leader_pod` (the
//! controller's Lease holder).

use std::time::{Duration, Instant, SystemTime};

use super::catalog::FaultStep;
use super::error::{StepResult, ensure};
use super::params::{Percent, Span};
use crate::HadrillWorld;
use crate::chaos::ChaosResource;
use crate::chaos::lifecycle::{InjectOptions, Recovery, Run};
use crate::chaos::model::ChaosStatus as _;
use crate::cluster::controller::{self, CONTROLLER_NS};
use crate::cluster::ha_pair::{self, Side};
use crate::scenarios::{Library, RenderOptions};
use crate::world::MarkKind;
use anyhow::Context;
use cucumber::{then, when};

/// The instant a [`SystemTime`] from the lifecycle's timeline stands for.
fn instant_of(at: SystemTime) -> Instant {
    let now = Instant::now();
    match SystemTime::now().duration_since(at) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(now),
        Err(_) => now,
    }
}

/// The run (ledger + cleanup) of this scenario, created on first use.
fn chaos_run(world: &mut HadrillWorld) -> anyhow::Result<&Run> {
    if world.faults.run.is_none() {
        ensure!(!world.cluster.run_id.is_empty(), "no run yet: start the scenario with `Given a cluster with N nodes`");
        let (client, dir, id) = (world.client()?, world.run.settings.ledger_dir(), &world.cluster.run_id);
        let run = match world.cluster.sim {
            Some(_) => Run::new_embedded(client, &dir, id)?,
            None => Run::new(client, &dir, Some(id))?,
        };
        world.faults.run = Some(run);
    }
    world.faults.run.as_ref().context("the chaos run")
}

fn label_text(name: &str, side: Side) -> String {
    ha_pair::selector(name, side)
}

/// Where a scenario parameter the feature did not set takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextSource {
    /// The HA service set up earlier (its sides' labels, the primary's node).
    HaService,
    /// The failover controller deployed earlier (its Lease holder).
    Controller,
    /// A constant of the HA pair (its container's name).
    Fixed,
}

/// The context [`context_value`] fills parameter `param` from; `None`: its default.
pub fn context_source(param: &str) -> Option<ContextSource> {
    match param {
        "primary" | "standby" | "app" | "node" => Some(ContextSource::HaService),
        "leader_pod" => Some(ContextSource::Controller),
        "container" => Some(ContextSource::Fixed),
        _ => None,
    }
}

/// Fills a parameter the feature did not set from the scenario's context (the names
/// [`context_source`] lists).
async fn context_value(world: &HadrillWorld, param: &str) -> anyhow::Result<Option<String>> {
    Ok(match param {
        "primary" => Some(label_text(world.ha_service()?, Side::Primary)),
        "standby" => Some(label_text(world.ha_service()?, Side::Standby)),
        "app" => Some(format!("app={}", world.ha_service()?)),
        "container" => Some(ha_pair::CONTAINER.to_string()),
        "node" => Some(super::ha_service::node_of_primary(world, world.ha_service()?).await?),
        "leader_pod" => Some(controller::leader(&world.client()?).await?),
        _ => None,
    })
}

/// Parses `name=value; name=value` (`;` separates, with or without spaces around it, since
/// selectors hold `,` and `=`; no label value or duration holds a `;`).
pub fn parse_settings(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in text.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').with_context(|| format!("{part:?}: expected name=value"))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// What a fault step injects, read from its text alone: `hadrill check` renders it before any
/// cluster exists, and the run decides from it what the scenario needs of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFault {
    /// The scenario of the library.
    pub scenario: String,
    /// The parameters the step sets; the others come from the context ([`context_source`]) or
    /// the scenario's defaults.
    pub settings: Vec<(String, String)>,
}

/// The fault of a `step` whose arguments (in order, quotes removed) are `args`.
pub fn planned(step: FaultStep, args: &[String]) -> anyhow::Result<PlannedFault> {
    let arg = |i: usize| args.get(i).map(String::as_str).with_context(|| format!("argument {} is missing", i + 1));
    let parse = |i: usize| -> anyhow::Result<Span> { arg(i)?.parse::<Span>().map_err(anyhow::Error::msg) };
    let (scenario, settings) = match step {
        FaultStep::Scenario => (arg(0)?.to_string(), Vec::new()),
        FaultStep::ScenarioWith => (arg(0)?.to_string(), parse_settings(arg(1)?)?),
        FaultStep::NodeNetwork => node_network(None, parse(1)?),
        FaultStep::CpuStress => {
            let workers: u32 = arg(1)?.parse().with_context(|| format!("{:?}: expected a whole number", args[1]))?;
            let load: Percent = arg(2)?.parse().map_err(anyhow::Error::msg)?;
            cpu_stress(arg(0)?, workers, load, parse(3)?)
        }
        FaultStep::LeaderKill => (LEADER_KILL.to_string(), Vec::new()),
        FaultStep::Drill => {
            let seed: u64 = arg(1)?.parse().with_context(|| format!("{:?}: expected a whole number", args[1]))?;
            (drill_pick(arg(0)?, seed)?, Vec::new())
        }
    };
    Ok(PlannedFault { scenario, settings })
}

/// The scenario of the node network step and its settings (`node`: the primary's node, filled
/// from the context when `None`).
fn node_network(node: Option<String>, span: Span) -> (String, Vec<(String, String)>) {
    // ChaosBlade's timeout is whole seconds; a partial second still holds the cut that long.
    let mut settings = vec![("timeout".to_string(), span.0.as_secs_f64().ceil().to_string())];
    if let Some(node) = node {
        settings.insert(0, ("node".to_string(), node));
    }
    ("primary-node-network-loss".to_string(), settings)
}

/// The scenario of the CPU stress step and its settings.
fn cpu_stress(name: &str, workers: u32, load: Percent, span: Span) -> (String, Vec<(String, String)>) {
    let settings = vec![
        ("primary".to_string(), label_text(name, Side::Primary)),
        ("workers".to_string(), workers.to_string()),
        ("load".to_string(), load.0.to_string()),
        ("duration".to_string(), span.go_duration()),
    ];
    ("primary-cpu-stress".to_string(), settings)
}

/// The scenario that kills the controller's leader.
const LEADER_KILL: &str = "controller-leader-kill";

/// The drill's pick among `list` (names separated by commas) for `seed`: the same seed always
/// picks the same scenario, so a failed drill can be replayed.
pub fn drill_pick(list: &str, seed: u64) -> anyhow::Result<String> {
    use rand::{RngExt as _, SeedableRng as _};
    let names: Vec<String> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    ensure!(!names.is_empty(), "{list:?}: expected scenario names separated by commas");
    let library = Library::builtin()?;
    for n in &names {
        library.get(n)?;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Ok(names[rng.random_range(0..names.len())].clone())
}

/// The namespace `scenario` is rendered into when the scenario's own is `namespace`: the
/// controller's faults live in the controller's namespace (owned by the run as well).
pub fn namespace_for<'a>(scenario: &crate::scenarios::Scenario, namespace: &'a str) -> &'a str {
    if scenario.parameter_named("leader_pod").is_some() { CONTROLLER_NS } else { namespace }
}

/// Renders and injects scenario `name`; returns when the fault is in place.
pub(crate) async fn inject(
    world: &mut HadrillWorld,
    name: &str,
    settings: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let library = Library::builtin()?;
    let scenario = library.get(name)?.clone();
    let mut options = RenderOptions::in_namespace(namespace_for(&scenario, &world.cluster.namespace));
    for (k, v) in &settings {
        options = options.set(k, v);
    }
    for p in &scenario.parameters {
        if settings.iter().any(|(k, _)| *k == p.name) {
            continue;
        }
        if let Some(v) = context_value(world, &p.name).await? {
            options = options.set(&p.name, &v);
        }
    }
    let rendered = library.render(name, &options)?;
    let inject = InjectOptions { scenario: Some(name.to_string()), ..InjectOptions::default() };
    let run = chaos_run(world)?;
    let injection = run.inject(&rendered.resource, &inject).await.with_context(|| format!("injecting {name}"))?;
    let t = injection.timeline();
    // A ChaosBlade has no conditions: it is in place once the operator reports it Running.
    let in_place = if matches!(injection.resource(), ChaosResource::Blade(_)) { "Running" } else { "AllInjected" };
    world.figure(format!("{name}: create to {in_place}"), t.injection_latency().as_secs_f64(), None);
    // Records are `ns/pod` or `ns/pod/container`; the main selector's are the fault's pods.
    let pods = match injection.resource() {
        // A node fault takes every pod on its nodes with it.
        ChaosResource::Blade(_) => injection
            .targets()
            .iter()
            .filter_map(|p| Some(format!("{}/{}", p.metadata.namespace.as_deref()?, p.metadata.name.as_deref()?)))
            .collect(),
        _ => injection
            .status()
            .records()
            .iter()
            .filter(|r| r.selector_key == "." || r.selector_key.is_empty())
            .filter_map(|r| {
                let mut parts = r.id.split('/');
                Some(format!("{}/{}", parts.next()?, parts.next()?))
            })
            .collect(),
    };
    world.fault(format!("scenario {name} injected"), instant_of(t.created), pods);
    world.faults.injections.push(injection);
    Ok(())
}

/// `When the scenario "primary-pod-kill" is injected`
#[when(expr = "the scenario {string} is injected")]
async fn scenario_injected(world: &mut HadrillWorld, name: String) -> StepResult {
    Ok(inject(world, &name, Vec::new()).await?)
}

/// `When the scenario "primary-network-loss-50" is injected with "loss=30; duration=20s"`
#[when(expr = "the scenario {string} is injected with {string}")]
async fn scenario_injected_with(world: &mut HadrillWorld, name: String, settings: String) -> StepResult {
    let settings = parse_settings(&settings)?;
    Ok(inject(world, &name, settings).await?)
}

/// `When a random fault from "primary-pod-kill, primary-pod-failure" is injected with seed 42`
///
/// A fault drill: picks one scenario of the list with a seeded random choice (the seed and the
/// pick are printed and put on the timeline, so a failing drill can be replayed) and injects it.
#[when(expr = "a random fault from {string} is injected with seed {int}")]
async fn random_fault(world: &mut HadrillWorld, list: String, seed: u64) -> StepResult {
    let pick = drill_pick(&list, seed)?;
    world.note(format!("drill: seed {seed} picked {pick}"));
    world.mark(Instant::now(), MarkKind::Note, format!("drill seed {seed}: {pick}"));
    Ok(inject(world, &pick, Vec::new()).await?)
}

/// `When the node hosting the primary of "dispatch" loses its network for 60 s`
#[when(expr = "the node hosting the primary of {string} loses its network for {duration}")]
async fn node_loses_network(world: &mut HadrillWorld, name: String, span: Span) -> StepResult {
    let node = super::ha_service::node_of_primary(world, &name).await?;
    let (scenario, settings) = node_network(Some(node), span);
    Ok(inject(world, &scenario, settings).await?)
}

/// `When the primary of "dispatch" is CPU-stressed by 2 workers at 100% for 60 s`
#[when(expr = "the primary of {string} is CPU-stressed by {int} worker(s) at {percent} for {duration}")]
async fn cpu_stressed(world: &mut HadrillWorld, name: String, workers: u32, load: Percent, span: Span) -> StepResult {
    let (scenario, settings) = cpu_stress(&name, workers, load, span);
    Ok(inject(world, &scenario, settings).await?)
}

/// `When the controller's leader is killed`
#[when(expr = "the controller's leader is killed")]
async fn leader_killed(world: &mut HadrillWorld) -> StepResult {
    let leader = controller::leader(&world.client()?).await?;
    Ok(inject(world, LEADER_KILL, vec![("leader_pod".into(), leader)]).await?)
}

/// `When the fault is removed`
///
/// Deletes every fault still in place and waits until each is confirmed recovered.
#[when(expr = "the fault is removed")]
async fn fault_removed(world: &mut HadrillWorld) -> StepResult {
    ensure!(!world.faults.injections.is_empty(), "no fault is in place");
    for injection in std::mem::take(&mut world.faults.injections) {
        let what = injection.object().to_string();
        let t = injection.recover(Recovery::Delete, Duration::from_secs(60)).await?;
        if let Some(r) = t.recovered {
            world.mark(instant_of(r), MarkKind::FaultRemoved, format!("{what} removed"));
        }
    }
    Ok(())
}

/// `Then the fault ends by itself within 30 s`
///
/// For faults that end by themselves: waits for Chaos Mesh's `AllRecovered`, or for a
/// ChaosBlade's timeout to pass and its nodes to be Ready again, and removes the object.
#[then(expr = "the fault ends by itself within {duration}")]
async fn fault_ends(world: &mut HadrillWorld, within: Span) -> StepResult {
    ensure!(!world.faults.injections.is_empty(), "no fault is in place");
    for injection in std::mem::take(&mut world.faults.injections) {
        let what = injection.object().to_string();
        let t = injection.recover(Recovery::Duration, within.0).await?;
        if let Some(r) = t.recovered {
            world.mark(instant_of(r), MarkKind::FaultRemoved, format!("{what} recovered"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_split_on_semicolons_and_keep_commas_in_values() {
        let s = parse_settings("loss=30; primary=app=db,side=primary").expect("parse");
        assert_eq!(s, vec![("loss".into(), "30".into()), ("primary".into(), "app=db,side=primary".into())]);
        assert!(parse_settings("loss").is_err());
        let tight = parse_settings("loss=30;duration=60s ;primary=app=db").expect("parse");
        assert_eq!(
            tight,
            vec![("loss".into(), "30".into()), ("duration".into(), "60s".into()), ("primary".into(), "app=db".into())]
        );
    }
}
