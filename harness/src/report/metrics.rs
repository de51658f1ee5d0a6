//! `reports/metrics.json` (this run's figures per scenario) and `reports/history.jsonl` (one
//! line appended per run, for nightly trends).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::Verdict;
use super::timeline::{Figure, LinkGap, Mark};

/// What one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRecord {
    /// Feature name.
    pub feature: String,
    /// Scenario name.
    pub scenario: String,
    /// Whether every step passed.
    pub passed: bool,
    /// Whether a signal stopped the run before the scenario finished (it did not pass then).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
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
    /// Why it was not run (a capability this machine lacks, and the fix), when it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl ScenarioRecord {
    /// The record of a scenario that did not finish: nothing measured, nothing bundled.
    fn unfinished(feature: &str, scenario: &str) -> ScenarioRecord {
        ScenarioRecord {
            feature: feature.to_string(),
            scenario: scenario.to_string(),
            passed: false,
            figures: Vec::new(),
            timeline: Vec::new(),
            link_gaps: Vec::new(),
            failure: None,
            bundle: None,
            skipped: None,
            interrupted: false,
        }
    }

    /// The record of a scenario that was not run, and why.
    pub fn skipped(feature: &str, scenario: &str, reason: &str) -> ScenarioRecord {
        ScenarioRecord { skipped: Some(reason.to_string()), ..Self::unfinished(feature, scenario) }
    }

    /// The record of a scenario `signal` stopped while it ran (what it measured went with its
    /// World).
    pub fn interrupted(feature: &str, scenario: &str, signal: &str) -> ScenarioRecord {
        ScenarioRecord {
            interrupted: true,
            failure: Some(format!("interrupted by {signal} before it finished")),
            ..Self::unfinished(feature, scenario)
        }
    }

    /// Whether it ran and failed (a skipped scenario did not fail).
    pub fn failed(&self) -> bool {
        !self.passed && self.skipped.is_none()
    }
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
    /// The fault it counts from, when it counts from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl From<&Figure> for FigureRecord {
    fn from(f: &Figure) -> Self {
        Self { name: f.name.clone(), seconds: f.seconds, deadline: f.deadline, from: f.from.clone() }
    }
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

/// Writes metrics.json and appends to history.jsonl in `dir`. An interrupted run says so
/// (`"interrupted": "SIGINT"`) in both.
pub fn write(dir: &Path, records: &[ScenarioRecord], wall_seconds: f64, verdict: Verdict) -> anyhow::Result<()> {
    let at = k8s_openapi::jiff::Timestamp::now().to_string();
    let passed = verdict.passed();
    let mut metrics = serde_json::json!({
        "finished_at": at, "wall_seconds": wall_seconds, "passed": passed, "scenarios": records,
    });
    if let Some(signal) = verdict.signal() {
        metrics["interrupted"] = signal.into();
    }
    let path = dir.join("metrics.json");
    let text = serde_json::to_string_pretty(&metrics).context("serialising metrics")?;
    write_atomically(&path, text.as_bytes())?;
    let figures: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .flat_map(|r| r.figures.iter().map(move |f| (format!("{} / {}", r.scenario, f.name), f.seconds.into())))
        .collect();
    let mut line = serde_json::json!({
        "finished_at": at, "wall_seconds": wall_seconds, "passed": passed,
        "scenarios": records.len(), "failed": records.iter().filter(|r| r.failed()).count(),
        "skipped": records.iter().filter(|r| r.skipped.is_some()).count(), "figures": figures,
    });
    if let Some(signal) = verdict.signal() {
        line["interrupted"] = signal.into();
    }
    let path = dir.join("history.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{line}").with_context(|| format!("appending to {}", path.display()))
}

/// Writes `path` through a temporary file beside it and a rename, so a reader (or a run killed
/// while writing) never sees it half-written.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("report");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
