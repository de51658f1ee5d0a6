//! Steps that inject faults from the scenario library (`scenarios/*.yaml`) as Chaos Mesh
//! objects, through the injection lifecycle (targets first, `AllInjected` awaited, every object
//! in the run ledger and removed when the scenario ends, fails or is interrupted).
//!
//! Parameters a scenario declares are filled from the scenario's context when the feature does
//! not set them: `primary` / `standby` / `app` (labels of the HA service's sides), `node` (the
//! node of the primary's first pod), `container` (the HA pair's container), `leader_pod` (the
//! controller's Lease holder).

use std::time::{Duration, Instant, SystemTime};

use super::params::{Percent, Span};
use crate::HadrillWorld;
use crate::chaos::ChaosResource;
use crate::chaos::lifecycle::{InjectOptions, Recovery, Run};
use crate::chaos::model::ChaosStatus as _;
use crate::cluster::controller::{self, CONTROLLER_NS};
use crate::cluster::ha_pair::{self, Side};
use crate::scenarios::{Library, RenderOptions};
use crate::world::MarkKind;
use anyhow::{Context, ensure};
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
        let run = Run::new(world.client()?, &world.run.settings.ledger_dir(), Some(&world.cluster.run_id))?;
        world.faults.run = Some(run);
    }
    world.faults.run.as_ref().context("the chaos run")
}

fn label_text(name: &str, side: Side) -> String {
    ha_pair::selector(name, side)
}

/// Fills a parameter the feature did not set from the scenario's context.
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

/// Parses `name=value; name=value` (`;` separates, since label values hold `,` and `=`).
fn parse_settings(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in text.split("; ") {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').with_context(|| format!("{part:?}: expected name=value"))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// Renders and injects scenario `name`; returns when the fault is in place.
pub(crate) async fn inject(
    world: &mut HadrillWorld,
    name: &str,
    settings: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let library = Library::builtin()?;
    let scenario = library.get(name)?.clone();
    // The controller's faults live in the controller's namespace (owned by the run as well).
    let namespace = if scenario.parameter_named("leader_pod").is_some() {
        CONTROLLER_NS.to_string()
    } else {
        world.cluster.namespace.clone()
    };
    let mut options = RenderOptions::in_namespace(&namespace);
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
    let created = instant_of(t.created);
    world.faults.at = Some(created);
    world.mark(created, MarkKind::Fault, format!("scenario {name} injected"));
    world.figure(format!("{name}: create to AllInjected"), t.injection_latency().as_secs_f64(), None);
    // Records are `ns/pod` or `ns/pod/container`; the main selector's are the fault's pods.
    world.faults.pods = match injection.resource() {
        // A node fault takes every pod on its nodes with it.
        ChaosResource::Blade(_) => injection.targets().iter().filter_map(|p| p.metadata.name.clone()).collect(),
        _ => injection
            .status()
            .records()
            .iter()
            .filter(|r| r.selector_key == "." || r.selector_key.is_empty())
            .filter_map(|r| r.id.split('/').nth(1).map(str::to_string))
            .collect(),
    };
    world.faults.injections.push(injection);
    Ok(())
}

/// `When the scenario "primary-pod-kill" is injected`
#[when(expr = "the scenario {string} is injected")]
async fn scenario_injected(world: &mut HadrillWorld, name: String) -> anyhow::Result<()> {
    inject(world, &name, Vec::new()).await
}

/// `When the scenario "primary-network-loss-50" is injected with "loss=30; duration=20s"`
#[when(expr = "the scenario {string} is injected with {string}")]
async fn scenario_injected_with(world: &mut HadrillWorld, name: String, settings: String) -> anyhow::Result<()> {
    let settings = parse_settings(&settings)?;
    inject(world, &name, settings).await
}

/// `When a random fault from "primary-pod-kill, primary-pod-failure" is injected with seed 42`
///
/// A fault drill: picks one scenario of the list with a seeded random choice (the seed and the
/// pick are printed and put on the timeline, so a failing drill can be replayed) and injects it.
#[when(expr = "a random fault from {string} is injected with seed {int}")]
async fn random_fault(world: &mut HadrillWorld, list: String, seed: u64) -> anyhow::Result<()> {
    use rand::{RngExt as _, SeedableRng as _};
    let names: Vec<String> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    ensure!(!names.is_empty(), "{list:?}: expected scenario names separated by commas");
    let library = Library::builtin()?;
    for n in &names {
        library.get(n)?;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pick = names[rng.random_range(0..names.len())].clone();
    world.note(format!("drill: seed {seed} picked {pick}"));
    world.mark(Instant::now(), MarkKind::Note, format!("drill seed {seed}: {pick}"));
    inject(world, &pick, Vec::new()).await
}

/// `When the node hosting the primary of "dispatch" loses its network for 60 s`
#[when(expr = "the node hosting the primary of {string} loses its network for {duration}")]
async fn node_loses_network(world: &mut HadrillWorld, name: String, span: Span) -> anyhow::Result<()> {
    let node = super::ha_service::node_of_primary(world, &name).await?;
    // ChaosBlade's timeout is whole seconds; a partial second still holds the cut that long.
    let settings = vec![("node".to_string(), node), ("timeout".to_string(), span.0.as_secs_f64().ceil().to_string())];
    inject(world, "primary-node-network-loss", settings).await
}

/// `When the primary of "dispatch" is CPU-stressed by 2 workers at 100% for 60 s`
#[when(expr = "the primary of {string} is CPU-stressed by {int} worker(s) at {percent} for {duration}")]
async fn cpu_stressed(
    world: &mut HadrillWorld,
    name: String,
    workers: u32,
    load: Percent,
    span: Span,
) -> anyhow::Result<()> {
    let settings = vec![
        ("primary".to_string(), label_text(&name, Side::Primary)),
        ("workers".to_string(), workers.to_string()),
        ("load".to_string(), load.0.to_string()),
        ("duration".to_string(), span.go_duration()),
    ];
    inject(world, "primary-cpu-stress", settings).await
}

/// `When the controller's leader is killed`
#[when(expr = "the controller's leader is killed")]
async fn leader_killed(world: &mut HadrillWorld) -> anyhow::Result<()> {
    let leader = controller::leader(&world.client()?).await?;
    inject(world, "controller-leader-kill", vec![("leader_pod".into(), leader)]).await
}

/// `When the fault is removed`
///
/// Deletes every fault still in place and waits until each is confirmed recovered.
#[when(expr = "the fault is removed")]
async fn fault_removed(world: &mut HadrillWorld) -> anyhow::Result<()> {
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
/// For faults with a duration: waits for Chaos Mesh's `AllRecovered` and removes the object.
#[then(expr = "the fault ends by itself within {duration}")]
async fn fault_ends(world: &mut HadrillWorld, within: Span) -> anyhow::Result<()> {
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
    }
}
