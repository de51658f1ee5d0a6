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
