//! The runner's cucumber hooks. Before a scenario: the World joins the run ([`RunScope`]) and
//! the scenario counts as in progress. After it: its figures are kept (also of failed
//! scenarios), a failed scenario's bundle is written ([`super::bundle`]), and the World is torn
//! down. Scenarios still in progress when a signal stops the run are recorded as interrupted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cucumber::event::ScenarioFinished;
use cucumber::gherkin::{Feature, Scenario};
use futures::FutureExt as _;
use futures::future::LocalBoxFuture;

use super::bundle::{self, Claims};
use crate::HadrillWorld;
use crate::report::junit;
use crate::report::metrics::{FigureRecord, ScenarioRecord};
use crate::world::RunScope;

/// How long a whole bundle may take before the run moves on without it.
const BUNDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What the hooks of one run share: what the scenarios share, where reports go, and what the
/// finished scenarios recorded.
#[derive(Debug)]
pub struct Hooks {
    scope: RunScope,
    reports: PathBuf,
    claims: Claims,
    records: Mutex<Vec<ScenarioRecord>>,
    /// Feature and scenario names of the scenarios started and not finished.
    in_progress: Mutex<Vec<(String, String)>>,
}

impl Hooks {
    /// The hooks of a run writing its reports (and bundles) into `reports`; the bundles of
    /// earlier runs there are removed.
    pub fn new(scope: RunScope, reports: PathBuf) -> Arc<Hooks> {
        let claims = Claims::begin_run(&reports);
        Arc::new(Hooks { scope, reports, claims, records: Mutex::default(), in_progress: Mutex::default() })
    }

    /// Cucumber `before` hook: the World joins the run; the scenario is in progress.
    pub fn before_scenario(&self, feature: &Feature, scenario: &Scenario, world: &mut HadrillWorld) {
        world.run = self.scope.clone();
        self.in_progress().push((feature.name.clone(), scenario.name.clone()));
    }

    fn in_progress(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.in_progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cucumber `after` hook: keeps the scenario's record, writes its bundle when it failed,
    /// then tears the World down (a cleanup that fails is a warning: the verdict stands).
    pub fn after_scenario<'a>(
        self: Arc<Self>,
        feature: &'a Feature,
        scenario: &'a Scenario,
        finished: &'a ScenarioFinished,
        world: Option<&'a mut HadrillWorld>,
    ) -> LocalBoxFuture<'a, ()> {
        async move {
            let mut record = record(feature, scenario, finished, world.as_deref());
            if let Some(world) = world {
                if !record.passed {
                    record.bundle = write_bundle(&self.reports, &self.claims, world, &record).await;
                }
                if let Err(e) = world.teardown().await {
                    eprintln!("warning: cleaning up after {:?}: {e:#}", record.scenario);
                }
            }
            let mut in_progress = self.in_progress();
            if let Some(i) = in_progress.iter().position(|(f, s)| *f == record.feature && *s == record.scenario) {
                in_progress.remove(i);
            }
            drop(in_progress);
            self.records.lock().unwrap_or_else(|p| p.into_inner()).push(record);
        }
        .boxed_local()
    }

    /// JUnit cases of the scenarios in progress when `signal` stopped the run: skipped,
    /// interrupted.
    pub fn in_progress_cases(&self, signal: &str) -> Vec<junit::Case> {
        let message = format!("interrupted by {signal} before it finished");
        self.in_progress()
            .iter()
            .map(|(feature, scenario)| junit::Case {
                feature: feature.clone(),
                scenario: scenario.clone(),
                outcome: junit::Outcome::Skipped { message: message.clone() },
                ..Default::default()
            })
            .collect()
    }

    /// The records of a run `signal` stopped: the finished scenarios', then one per scenario
    /// that was still in progress, marked interrupted (what it measured went with its World).
    pub fn interrupted_records(&self, signal: &str) -> Vec<ScenarioRecord> {
        let mut records = self.records();
        records.extend(
            self.in_progress().iter().map(|(feature, scenario)| ScenarioRecord::interrupted(feature, scenario, signal)),
        );
        records
    }

    /// What the finished scenarios recorded, in the order they finished.
    pub fn records(&self) -> Vec<ScenarioRecord> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What the scenario measured and how it ended.
fn record(
    feature: &Feature,
    scenario: &Scenario,
    finished: &ScenarioFinished,
    world: Option<&HadrillWorld>,
) -> ScenarioRecord {
    let (figures, timeline, link_gaps) = world
        .map(|w| {
            let t = &w.timeline;
            (t.figures.iter().map(FigureRecord::from).collect(), t.marks.clone(), t.link_gaps.clone())
        })
        .unwrap_or_default();
    let failure = match finished {
        ScenarioFinished::StepPassed => None,
        ScenarioFinished::StepSkipped => Some("a step was skipped".to_string()),
        ScenarioFinished::StepFailed(_, _, err) => Some(super::outcomes::failure_text(err)),
        ScenarioFinished::BeforeHookFailed(info) => Some(format!("a before hook panicked: {info:?}")),
    };
    ScenarioRecord {
        feature: feature.name.clone(),
        scenario: scenario.name.clone(),
        passed: matches!(finished, ScenarioFinished::StepPassed),
        interrupted: false,
        figures,
        timeline,
        link_gaps,
        failure,
        bundle: None,
        skipped: None,
    }
}

/// Writes the failure bundle; its directory relative to `reports`, or `None` (with a warning)
/// when it could not be written: a missing bundle must not fail the run.
async fn write_bundle(
    reports: &Path,
    claims: &Claims,
    world: &HadrillWorld,
    record: &ScenarioRecord,
) -> Option<String> {
    let name = claims.claim(&record.scenario);
    let dir = reports.join(&name);
    let about =
        bundle::About { feature: &record.feature, scenario: &record.scenario, failure: record.failure.as_deref() };
    match tokio::time::timeout(BUNDLE_LIMIT, bundle::collect(world, &dir, about)).await {
        Ok(Ok(dir)) => {
            println!("    📦 failure bundle: {}", dir.display());
            Some(name)
        }
        Ok(Err(e)) => {
            eprintln!("warning: no failure bundle for {:?}: {e:#}", record.scenario);
            None
        }
        Err(_) => {
            eprintln!(
                "warning: the failure bundle for {:?} took over {BUNDLE_LIMIT:?}; it is incomplete",
                record.scenario
            );
            None
        }
    }
}
