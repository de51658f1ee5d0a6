//! `reports/metrics.json` (this run's figures per scenario) and `reports/history.jsonl` (one
//! line appended per run, for nightly trends).

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use cucumber::event::ScenarioFinished;
use cucumber::gherkin::{Feature, Rule, Scenario};
use futures::FutureExt as _;
use futures::future::LocalBoxFuture;
use serde::Serialize;

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

/// Cucumber `after` hook: keeps the scenario's figures (also of failed scenarios).
pub fn after_scenario<'a>(
    feature: &'a Feature,
    _rule: Option<&'a Rule>,
    scenario: &'a Scenario,
    finished: &'a ScenarioFinished,
    world: Option<&'a mut HadrillWorld>,
) -> LocalBoxFuture<'a, ()> {
    let (figures, timeline, link_gaps) = world
        .map(|w| (w.figures.iter().map(FigureRecord::from).collect(), w.marks.clone(), w.link_gaps.clone()))
        .unwrap_or_default();
    let failure = match finished {
        ScenarioFinished::StepPassed => None,
        ScenarioFinished::StepSkipped => Some("a step was skipped".to_string()),
        ScenarioFinished::StepFailed(_, _, err) => Some(err.to_string()),
        ScenarioFinished::BeforeHookFailed(info) => Some(format!("a before hook panicked: {info:?}")),
    };
    let record = ScenarioRecord {
        feature: feature.name.clone(),
        scenario: scenario.name.clone(),
        passed: matches!(finished, ScenarioFinished::StepPassed),
        figures,
        timeline,
        link_gaps,
        failure,
    };
    RECORDS.lock().unwrap_or_else(|p| p.into_inner()).push(record);
    async {}.boxed_local()
}

/// Takes what the hook collected so far.
pub fn take() -> Vec<ScenarioRecord> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|p| p.into_inner()))
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
