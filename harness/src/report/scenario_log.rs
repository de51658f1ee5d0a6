//! A scenario's own log: measured figures and one-line notes (a drill's seed, a chaos object's
//! name) recorded while it runs, kept with that scenario in every report.
//!
//! The writers of a run (console, `features.log`, and the runner's collector for
//! `reports/junit.xml`) see only the scenario's cucumber events, so a plain `println!` reaches
//! the console but no report. During a feature run the lines are therefore emitted as
//! `tracing` events on [`TARGET`]; cucumber's tracing integration turns those into
//! `Scenario::Log` events, which every writer keeps with the scenario's steps. Outside such a run (or when the process
//! already had a global subscriber) [`line`] prints to stdout instead, so a figure is never lost
//! and never printed twice.

use std::fmt;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Layer, SubscriberExt as _};
use tracing_subscriber::registry::{LookupSpan, Registry};

/// The `tracing` target of figures and notes; the only one that reaches the scenario logs.
pub const TARGET: &str = "hadrill::figures";

/// Where cucumber's own spans (scenario, step, hook) live. They must reach the collecting layer:
/// they carry the scenario's id, without which a line would go to every running scenario.
const CUCUMBER_SPANS: &str = "cucumber";

/// Indentation of a line in the transcript: under the step text (`   ✔  Then ...`).
const INDENT: &str = "      ";

/// Whether the running feature run collects [`TARGET`] events into the scenario logs.
static COLLECTING: AtomicBool = AtomicBool::new(false);

/// Whether this process's global subscriber was installed by [`begin`] (it can be only once).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Records one line in the current scenario's log (or on stdout when nothing collects).
pub fn line(text: impl fmt::Display) {
    if COLLECTING.load(Ordering::Acquire) {
        tracing::info!(target: TARGET, "{text}");
    } else {
        println!("{INDENT}{text}");
    }
}

/// Called before a feature run: whether this run may install cucumber's tracing collector
/// (the process has no global subscriber yet). On `true` the caller must install it, with
/// [`Plain`] and [`subscriber`]; lines are then collected until [`end`]. Feature runs in one
/// process are meant to follow each other: the flag is process-wide.
pub fn begin() -> bool {
    let nobody_else = tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>());
    let ours = nobody_else && !INSTALLED.swap(true, Ordering::AcqRel);
    COLLECTING.store(ours, Ordering::Release);
    ours
}

/// Called after a feature run: lines go to stdout again (the collector went with the run).
pub fn end() {
    COLLECTING.store(false, Ordering::Release);
}

/// The process's subscriber during a feature run: cucumber's collecting layer sees only
/// [`TARGET`] (and cucumber's spans); everything else goes to stderr, filtered by `RUST_LOG`
/// (default `warn`: the embedded cluster logs a lot at `info`).
pub fn subscriber<L>(collect: L) -> impl Subscriber + Send + Sync
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    let only_lines = Targets::new().with_target(TARGET, Level::INFO).with_target(CUCUMBER_SPANS, Level::ERROR);
    let from_env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    // The lines are on stdout already, with their scenario; `RUST_LOG=info` must not repeat them.
    let not_lines = Targets::new().with_default(LevelFilter::TRACE).with_target(TARGET, LevelFilter::OFF);
    let stderr = tracing_subscriber::fmt::layer()
        // `scenario{__cucumber_scenario_id=3}:step` is noise to a reader: `scenario:step`.
        .fmt_fields(cucumber::tracing::SkipScenarioIdSpan(DefaultFields::new()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(from_env.and(not_lines));
    tracing_subscriber::registry().with(collect.with_filter(only_lines)).with(stderr)
}

/// Formats a line as itself, indented under its step: no timestamp, level or target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        writer.write_str(INDENT)?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
