//! The reports of a feature run, rendered from what the scenarios recorded: each scenario's
//! own log lines ([`scenario_log`]: figures and notes, printed with its steps on the console,
//! in `reports/features.log` and in `reports/junit.xml`), `reports/junit.xml` ([`junit`]: a
//! testcase per scenario, from the outcomes the runner collected), `reports/metrics.json` and
//! `reports/history.jsonl` ([`metrics`]) and `reports/index.html` ([`html`]). The data they
//! render is defined in [`timeline`]. Nothing here reads a cluster or a World: the runner
//! ([`crate::runner`]) collects, this module renders.

pub mod html;
pub mod junit;
pub mod metrics;
pub mod scenario_log;
pub mod timeline;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every scenario passed.
    Passed,
    /// A scenario failed.
    Failed,
    /// A signal stopped the run (`SIGINT`, `SIGTERM`); the scenarios that had not finished
    /// are recorded as interrupted.
    Interrupted {
        /// The signal's name.
        signal: &'static str,
    },
    /// The run has not ended: still running, or killed (SIGKILL) before it could say more.
    Unfinished,
}

impl Verdict {
    /// Only a run whose every scenario passed passes.
    pub fn passed(self) -> bool {
        self == Verdict::Passed
    }

    /// `passed`, `FAILED` or `INTERRUPTED by SIGINT`, for titles and summaries.
    pub fn describe(self) -> String {
        match self {
            Verdict::Passed => "passed".into(),
            Verdict::Failed => "FAILED".into(),
            Verdict::Interrupted { signal } => format!("INTERRUPTED by {signal}"),
            Verdict::Unfinished => "UNFINISHED (still running, or killed before it could write its reports)".into(),
        }
    }

    /// The signal that stopped the run, if one did.
    pub fn signal(self) -> Option<&'static str> {
        match self {
            Verdict::Interrupted { signal } => Some(signal),
            _ => None,
        }
    }
}
