//! Each scenario's outcome, collected from cucumber's events as the run goes, for
//! `reports/junit.xml` ([`crate::report::junit`] renders it). The collector is a cucumber
//! [`Writer`] teed beside the console; the runner keeps an [`Outcomes`] handle to it and, when
//! the run ends (or is interrupted), takes the [`junit::Report`] of what finished.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cucumber::event::{self, Cucumber, Hook, RetryableScenario, Scenario};
use cucumber::{Event, Writer, gherkin, parser};

use crate::HadrillWorld;
use crate::report::junit::{self, Case, Outcome, Step, StepStatus};

/// What the scenarios that finished so far ended with; a handle shared with the collector.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    finished: Arc<Mutex<Vec<Case>>>,
}

impl Outcomes {
    /// A collector to tee into the run's writer (it feeds this handle).
    pub fn collector(&self) -> Collector {
        Collector { outcomes: self.clone(), running: HashMap::new() }
    }

    /// The JUnit report of the scenarios that finished; `interrupted` when the run stopped
    /// before every selected scenario ran.
    pub fn report(&self, interrupted: bool) -> junit::Report {
        let cases = self.finished.lock().unwrap_or_else(|p| p.into_inner()).clone();
        junit::Report { cases, interrupted }
    }
}

/// The text of a failed step's error: what the step returned (the harness's step errors show
/// their cause chain, root cause first), without cucumber's "Step panicked" prefix.
pub fn failure_text(err: &event::StepError) -> String {
    let text = err.to_string();
    text.strip_prefix("Step panicked. Captured output: ").map(str::to_string).unwrap_or(text)
}

/// The text of a panic payload (a hook's failure).
fn panic_text(info: &event::Info) -> String {
    info.downcast_ref::<String>()
        .cloned()
        .or_else(|| info.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a hook panicked (no message)".to_string())
}

/// A scenario's key while it runs: its feature file and position.
type Key = (Option<PathBuf>, String, usize, usize);

/// A scenario that started and has not finished.
struct Running {
    started: SystemTime,
    case: Case,
    steps_seen: usize,
    /// When the step running now started.
    step_started: Option<SystemTime>,
}

/// The cucumber writer that fills an [`Outcomes`].
pub struct Collector {
    outcomes: Outcomes,
    running: HashMap<Key, Running>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").field("running", &self.running.len()).finish_non_exhaustive()
    }
}

impl Writer<HadrillWorld> for Collector {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(&mut self, event: parser::Result<Event<Cucumber<HadrillWorld>>>, _: &Self::Cli) {
        let Ok(ev) = event else { return };
        let (ev, meta) = ev.split();
        let Cucumber::Feature(feature, ev) = ev else { return };
        match ev {
            event::Feature::Scenario(sc, ev) | event::Feature::Rule(_, event::Rule::Scenario(sc, ev)) => {
                self.scenario(&feature, &sc, ev, meta.at);
            }
            _ => {}
        }
    }
}

impl cucumber::writer::NonTransforming for Collector {}

impl Collector {
    fn scenario(
        &mut self,
        feature: &gherkin::Feature,
        sc: &gherkin::Scenario,
        ev: RetryableScenario<HadrillWorld>,
        at: SystemTime,
    ) {
        let key = (feature.path.clone(), sc.name.clone(), sc.position.line, sc.position.col);
        // A retried scenario starts again: only its last attempt is its outcome.
        if matches!(ev.event, Scenario::Started) {
            let case = Case {
                feature: feature.name.clone(),
                scenario: sc.name.clone(),
                file: feature.path.as_deref().map(display_path),
                line: Some(sc.position.line),
                ..Case::default()
            };
            let mut running = Running { started: at, case, steps_seen: 0, step_started: None };
            if let Some(r) = ev.retries.filter(|r| r.current > 0) {
                running.case.log.push(format!("attempt {} of {}", r.current + 1, r.current + r.left + 1));
            }
            self.running.insert(key, running);
            return;
        }
        let Some(running) = self.running.get_mut(&key) else { return };
        match ev.event {
            Scenario::Started => {}
            Scenario::Log(line) => {
                let line = line.trim().to_string();
                match running.case.steps.last_mut() {
                    Some(step) => step.log.push(line),
                    None => running.case.log.push(line),
                }
            }
            Scenario::Background(step, ev) => running.step(&step, ev, false, at),
            Scenario::Step(step, ev) => running.step(&step, ev, true, at),
            Scenario::Hook(kind, Hook::Failed(_, info)) => {
                let failed = Outcome::failed(&panic_text(&info), Some(format!("the {kind} hook")));
                if running.case.outcome == Outcome::Passed {
                    running.case.outcome = failed;
                }
            }
            Scenario::Hook(..) => {}
            Scenario::Finished => {
                let Some(mut running) = self.running.remove(&key) else { return };
                // Steps after a failure never start: listed as not run.
                for step in sc.steps.iter().skip(running.steps_seen) {
                    running.case.steps.push(Step {
                        text: step_text(step),
                        status: StepStatus::Skipped,
                        seconds: None,
                        log: Vec::new(),
                    });
                }
                running.case.seconds = at.duration_since(running.started).unwrap_or_default().as_secs_f64();
                self.outcomes.finished.lock().unwrap_or_else(|p| p.into_inner()).push(running.case);
            }
        }
    }
}

impl Running {
    fn step(&mut self, step: &gherkin::Step, ev: event::Step<HadrillWorld>, own: bool, at: SystemTime) {
        let status = match ev {
            event::Step::Started => {
                self.steps_seen += usize::from(own);
                self.step_started = Some(at);
                let text = step_text(step);
                self.case.steps.push(Step { text, status: StepStatus::Skipped, seconds: None, log: Vec::new() });
                return;
            }
            event::Step::Passed(..) => StepStatus::Passed,
            event::Step::Skipped => StepStatus::Skipped,
            event::Step::Failed(_, _, _, err) => {
                self.case.outcome = Outcome::failed(&failure_text(&err), Some(step_text(step)));
                StepStatus::Failed
            }
        };
        if let Some(last) = self.case.steps.last_mut() {
            last.status = status;
            last.seconds = self.step_started.take().map(|s| at.duration_since(s).unwrap_or_default().as_secs_f64());
        }
    }
}

/// `When the primary is killed`.
fn step_text(step: &gherkin::Step) -> String {
    format!("{} {}", step.keyword.trim(), step.value)
}

/// A feature file's path as CI tools link it: relative to the repository when under it.
pub fn display_path(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}
