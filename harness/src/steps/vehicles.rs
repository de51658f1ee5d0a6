//! Steps about the vehicles: simulated tugs sending heartbeats through an HA service (the
//! sample `vehicles` program in a pod of the scenario's namespace), the link gaps they saw,
//! and the continuity of their session traces across a failover.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use cucumber::{given, then};
use k8s_openapi::api::core::v1::Service;

use super::error::{StepResult, bail, ensure};
use super::params::Span;
use crate::HadrillWorld;
use crate::cluster::ha_pair::{self, Side};
use crate::probes::wait::SETTLE;
use crate::traces::checker::{Expect, Report, check};
use crate::traffic::fleet::{Fleet, Reach};
use crate::traffic::links::{self, RECOVERED_AFTER, Recovery};
use crate::traffic::vehicles::Results;
use crate::traffic::{SampleApp, VEHICLES};
use crate::world::{LinkGap, MarkKind, unix_ms, wall_clock};

/// The error of a vehicle step in a scenario without vehicles.
const NO_FLEET: &str = "no vehicles: add `Given 20 vehicles send heartbeats to \"NAME\" every 200 ms`";

fn unix_ms_now() -> u64 {
    unix_ms(SystemTime::now())
}

/// `Given 20 vehicles send heartbeats to "dispatch" every 200 ms`
///
/// Starts one vehicles pod (the sample `vehicles` program) calling the Service, each vehicle
/// in its own session trace (W3C and SkyWalking propagation alternating), and waits until
/// every vehicle has been served a few times (`traffic::fleet::Fleet::start`).
#[given(expr = "{int} vehicles send heartbeats to {string} every {int} ms")]
async fn vehicles_send(world: &mut HadrillWorld, count: usize, target: String, every_ms: u64) -> StepResult {
    ensure!(count >= 1, "at least 1 vehicle, got {count}");
    ensure!(every_ms >= 10, "heartbeats every {every_ms} ms: the interval must be at least 10 ms");
    ensure!(world.traffic.fleet.is_none(), "vehicles already run in this scenario (one fleet per scenario)");
    world
        .api::<Service>()?
        .get_opt(&target)
        .await
        .with_context(|| format!("reading service {target}"))?
        .with_context(|| {
            format!("no service {target:?}: add `Given an HA service \"{target}\" with a primary and a standby deployment of N replicas` first")
        })?;
    let app = SampleApp {
        otlp_endpoint: world.traffic.traces.as_ref().map(|t| t.otlp_endpoint()),
        vehicles: count,
        interval: Duration::from_millis(every_ms),
        // A heartbeat to a pod that vanished hangs until this; well inside any link deadline.
        timeout: Duration::from_millis(every_ms.clamp(250, 1000)),
        ..SampleApp::default()
    };
    // The embedded cluster's pod addresses are local; elsewhere, through the API server.
    let reach = if world.cluster.sim.is_some() { Reach::PodIp } else { Reach::ApiProxy };
    let fleet = Fleet::start(&world.client()?, &world.cluster.namespace, &target, &app, reach).await?;
    world.mark(Instant::now(), MarkKind::Note, format!("{count} vehicles send heartbeats to {target}"));
    world.traffic.fleet = Some(fleet);
    Ok(())
}

/// The last disruption (Unix ms): the later of the last fault and the last switch.
fn last_disruption_ms(world: &HadrillWorld) -> Option<u64> {
    let start = unix_ms(wall_clock(world.timeline.started));
    world
        .timeline
        .marks
        .iter()
        .filter(|m| matches!(m.kind, MarkKind::Fault | MarkKind::Switched))
        .map(|m| start + (m.at * 1000.0) as u64)
        .max()
}

/// `Then no vehicle loses its link for more than 3 s`
///
/// Follows the vehicles' results until every vehicle has been served several times in a row
/// after the last fault or switch (or a vehicle has had no link for longer than allowed), then
/// holds every vehicle's longest link gap (between two served heartbeats) to the limit. The
/// gaps go on the report's timeline.
#[then(expr = "no vehicle loses its link for more than {duration}")]
async fn no_link_loss(world: &mut HadrillWorld, limit: Span) -> StepResult {
    let fleet = world.traffic.fleet.clone().context(NO_FLEET)?;
    let limit_ms = limit.0.as_millis() as u64;
    let since = last_disruption_ms(world).unwrap_or_else(unix_ms_now);
    let give_up = Instant::now() + limit.0 + SETTLE;
    let results = match links::follow_recovery(&fleet, since, limit_ms, give_up, unix_ms_now).await? {
        Recovery::Back(results) => results,
        Recovery::LinkLost { vehicle, open_ms, results } => {
            record_gaps(world, &results, false);
            bail!("vehicle {vehicle} has had no link for {:.1} s (limit {limit})", open_ms as f64 / 1000.0);
        }
        Recovery::NotBack { waiting, results } => {
            record_gaps(world, &results, false);
            bail!(
                "vehicles {} were not served {RECOVERED_AFTER} times in a row within {:.0} s of the last fault or switch",
                waiting.join(", "),
                (unix_ms_now().saturating_sub(since)) as f64 / 1000.0
            );
        }
    };
    record_gaps(world, &results, true);
    let (vehicle, gap) = results.longest_gap().context("the vehicles report no gap at all")?;
    let vehicle = vehicle.to_string();
    world.figure(
        format!("{}: longest link gap ({vehicle}, {} heartbeats failed)", fleet.target, gap.failed),
        gap.ms as f64 / 1000.0,
        Some(limit.secs()),
    );
    let failed: u64 = results.vehicles.iter().map(|v| v.errors).sum();
    let over: Vec<String> = results
        .vehicles
        .iter()
        .filter_map(|v| {
            v.longest_gap.filter(|g| g.ms > limit_ms).map(|g| format!("{} {:.1} s", v.id, g.ms as f64 / 1000.0))
        })
        .collect();
    ensure!(
        over.is_empty(),
        "{} of {} vehicles lost their link for more than {limit}: {} ({failed} heartbeats failed in all)",
        over.len(),
        results.vehicles.len(),
        over.join(", ")
    );
    Ok(())
}

/// Puts every vehicle's longest gap in which heartbeats failed on the timeline (a gap still
/// open runs to now) and, once `recovered`, marks when traffic was back for all of them after
/// the last fault.
fn record_gaps(world: &mut HadrillWorld, r: &Results, recovered: bool) {
    world.timeline.link_gaps = links::gaps(r, unix_ms_now())
        .into_iter()
        .map(|(vehicle, from, to)| LinkGap {
            vehicle,
            from: world.offset_of_unix_ms(from),
            to: world.offset_of_unix_ms(to),
        })
        .collect();
    let Some(fault) = world.faults.incident().filter(|_| recovered).cloned() else { return };
    let fault_offset = world.offset(fault.at);
    let back = world
        .timeline
        .link_gaps
        .iter()
        .filter(|g| g.to >= fault_offset)
        .map(|g| g.to)
        .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))));
    if let Some(back) = back
        && !world.timeline.marks.iter().any(|m| m.kind == MarkKind::Recovered && m.label.starts_with("traffic"))
    {
        let at = world.timeline.started + Duration::from_secs_f64(back.max(0.0));
        world.mark(at, MarkKind::Recovered, "traffic recovered: every vehicle served again");
        world.figure_from(&fault, "fault to traffic recovered", back - fault_offset, None);
    }
}

/// `Then every vehicle's session trace is continuous`
///
/// Stops the vehicles (their spans are flushed), collects the spans of the scenario (the
/// embedded OTLP receiver, or Jaeger on a real cluster) and checks them: no orphan span, no
/// broken chain, one trace per vehicle session, and, when the Service has switched to the
/// standby, every session served by the primary and then the standby in the same trace.
#[then(expr = "every vehicle's session trace is continuous")]
async fn traces_continuous(world: &mut HadrillWorld) -> StepResult {
    let fleet = world.traffic.fleet.as_mut().context(NO_FLEET)?;
    let results = fleet.stop().await.context("stopping the vehicles")?;
    let (target, count) = (fleet.target.clone(), fleet.count);
    ensure!(results.spans.dropped == 0, "the vehicles dropped {} spans (export queue full)", results.spans.dropped);
    let svc = world.api::<Service>()?.get(&target).await.with_context(|| format!("reading service {target}"))?;
    let failover = ha_pair::selected_side(&target, &svc) == Some(Side::Standby);
    let sink = world.traffic.traces.as_ref().context("the scenario has no trace sink (no HA service was set up)")?;
    let lookback = world.timeline.started.elapsed() + Duration::from_secs(60);
    let spans = sink.spans(VEHICLES, lookback, SETTLE).await?;
    let mut report = check(&spans, Expect { failover });
    let lost = lost_with_killed_pods(world, &mut report).await?;
    world.traffic.trace_report = Some(match lost {
        0 => report.to_string(),
        n => format!(
            "{report}  ({n} broken chains not counted: the answering pod was killed or cut off before it exported its spans)\n"
        ),
    });
    if lost > 0 {
        world.note(format!(
            "ℹ {lost} broken chains end at pods the fault killed or cut off before they exported their spans (not counted)"
        ));
    }
    if let Some((session, gap)) = report.largest_gap() {
        world.figure(format!("largest gap in a session trace ({})", session.vehicle), gap.duration.as_secs_f64(), None);
    }
    report.ok()?;
    ensure!(report.sessions.len() == count, "{} session traces for {count} vehicles:\n{report}", report.sessions.len());
    for v in &results.vehicles {
        let session =
            report.session(&v.id).with_context(|| format!("vehicle {} has no session trace:\n{report}", v.id))?;
        ensure!(
            session.trace_id.to_hex() == v.trace_id,
            "vehicle {}: its heartbeats were traced in {} but its session is {}",
            v.id,
            session.trace_id,
            v.trace_id
        );
    }
    Ok(())
}

/// Discounts the broken chains answered by pods the scenario's faults killed or cut off
/// (`Report::discount_lost_telemetry`); returns how many.
async fn lost_with_killed_pods(world: &HadrillWorld, report: &mut Report) -> anyhow::Result<usize> {
    let killed = world.faults.all_pods();
    let Some(fleet) = world.traffic.fleet.as_ref().filter(|_| report.has_broken_chains() && !killed.is_empty()) else {
        return Ok(0);
    };
    let heartbeats = fleet.client.heartbeats(None).await.context("reading the vehicles' heartbeats")?;
    Ok(report.discount_lost_telemetry(&heartbeats, &killed))
}
