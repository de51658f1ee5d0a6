//! `reports/metrics.json` (this run's figures per scenario) and `reports/history.jsonl` (one
//! line appended per run, for nightly trends).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use cucumber::event::ScenarioFinished;
use cucumber::gherkin::{Feature, Rule, Scenario};
use futures::FutureExt as _;
use futures::future::LocalBoxFuture;
use serde::Serialize;

use super::bundle;
use crate::HadrillWorld;
use crate::world::{Figure, LinkGap, Mark};

/// What one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRecord {
    /// Feature name.
    pub feature: String,
    /// Scenario name.
    pub scenario: String,
    /// Whether every step passed.
    pub passed: bool,
    /// Figures, in the order measured.
    pub figures: Vec<FigureRecord>,
    /// The timeline: faults, detection, switch, recovery.
    pub timeline: Vec<Mark>,
    /// The vehicles' link gaps.
    pub link_gaps: Vec<LinkGap>,
    /// Why it failed (the failed step and its error), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The failure bundle's directory, relative to the reports directory, when one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// One figure as written to the reports.
#[derive(Debug, Clone, Serialize)]
pub struct FigureRecord {
    /// What was measured.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
    /// The deadline, if the figure was held to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<f64>,
}

impl From<&Figure> for FigureRecord {
    fn from(f: &Figure) -> Self {
        Self { name: f.name.clone(), seconds: f.seconds, deadline: f.deadline }
    }
}

static RECORDS: Mutex<Vec<ScenarioRecord>> = Mutex::new(Vec::new());

/// How long a whole bundle may take before the run moves on without it.
const BUNDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Cucumber `after` hook: keeps the scenario's figures (also of failed scenarios) and, when it
/// failed, writes its bundle under `reports` ([`super::bundle`]).
pub fn after_scenario<'a>(
    reports: PathBuf,
    feature: &'a Feature,
    _rule: Option<&'a Rule>,
    scenario: &'a Scenario,
    finished: &'a ScenarioFinished,
    world: Option<&'a mut HadrillWorld>,
) -> LocalBoxFuture<'a, ()> {
    async move {
        let world = world.map(|w| &*w);
        let mut record = record(feature, scenario, finished, world);
        if let (false, Some(world)) = (record.passed, world) {
            record.bundle = write_bundle(&reports, world, &record).await;
        }
        RECORDS.lock().unwrap_or_else(|p| p.into_inner()).push(record);
    }
    .boxed_local()
}

/// What the scenario measured and how it ended.
fn record(
    feature: &Feature,
    scenario: &Scenario,
    finished: &ScenarioFinished,
    world: Option<&HadrillWorld>,
) -> ScenarioRecord {
    let (figures, timeline, link_gaps) = world
        .map(|w| (w.figures.iter().map(FigureRecord::from).collect(), w.marks.clone(), w.link_gaps.clone()))
        .unwrap_or_default();
    let failure = match finished {
        ScenarioFinished::StepPassed => None,
        ScenarioFinished::StepSkipped => Some("a step was skipped".to_string()),
        // A step's error reaches cucumber as a panic; its prefix is noise in a report.
        ScenarioFinished::StepFailed(_, _, err) => {
            let text = err.to_string();
            Some(text.strip_prefix("Step panicked. Captured output: ").map(str::to_string).unwrap_or(text))
        }
        ScenarioFinished::BeforeHookFailed(info) => Some(format!("a before hook panicked: {info:?}")),
    };
    ScenarioRecord {
        feature: feature.name.clone(),
        scenario: scenario.name.clone(),
        passed: matches!(finished, ScenarioFinished::StepPassed),
        figures,
        timeline,
        link_gaps,
        failure,
        bundle: None,
    }
}

/// Writes the failure bundle; its directory relative to `reports`, or `None` (with a warning)
/// when it could not be written: a missing bundle must not fail the run.
async fn write_bundle(reports: &Path, world: &HadrillWorld, record: &ScenarioRecord) -> Option<String> {
    let name = bundle::claim(&record.scenario);
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

/// Takes what the hook collected so far.
pub fn take() -> Vec<ScenarioRecord> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Reads history.jsonl in `dir` (oldest first); unreadable lines are skipped with a warning,
/// a missing file is an empty history.
pub fn read_history(dir: &Path) -> Vec<serde_json::Value> {
    let path = dir.join("history.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else { return Vec::new() };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .filter_map(|(i, l)| match serde_json::from_str(l) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("warning: {}:{}: not a history line: {e}", path.display(), i + 1);
                None
            }
        })
        .collect()
}

/// Writes metrics.json and appends to history.jsonl in `dir`.
pub fn write(dir: &Path, records: &[ScenarioRecord], wall_seconds: f64, passed: bool) -> anyhow::Result<()> {
    let at = k8s_openapi::jiff::Timestamp::now().to_string();
    let metrics = serde_json::json!({
        "finished_at": at, "wall_seconds": wall_seconds, "passed": passed, "scenarios": records,
    });
    let path = dir.join("metrics.json");
    let text = serde_json::to_string_pretty(&metrics).context("serialising metrics")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let figures: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .flat_map(|r| r.figures.iter().map(move |f| (format!("{} / {}", r.scenario, f.name), f.seconds.into())))
        .collect();
    let line = serde_json::json!({
        "finished_at": at, "wall_seconds": wall_seconds, "passed": passed,
        "scenarios": records.len(), "failed": records.iter().filter(|r| !r.passed).count(), "figures": figures,
    });
    let path = dir.join("history.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{line}").with_context(|| format!("appending to {}", path.display()))
}
