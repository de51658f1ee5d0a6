//! The feature runner: checks the features ([`check`]: read by [`features`], planned by
//! [`plan`]), skips the scenarios this machine cannot run ([`capabilities`]), sets up the run's
//! cluster, runs the other scenarios with cucumber, and through its hooks ([`hooks`]) keeps
//! each scenario's figures, writes a failure bundle per failed scenario ([`bundle`]) and tears each World down. Its
//! reports: the console, `reports/junit.xml` (each scenario's outcome collected by
//! [`outcomes`], rendered by [`crate::report::junit`] and written atomically: at the start one
//! that says the run is unfinished — what a killed run leaves —, then the real one when the run
//! ends), `reports/features.log` (the console's transcript without colours) and what
//! [`crate::report`] renders.
//!
//! SIGINT or SIGTERM ([`crate::signals`]) stops a run on every provider: the scenarios in
//! progress are dropped and their Worlds torn down (faults removed, pods and embedded clusters
//! stopped), the reports are written with the run marked interrupted, the run-wide cluster is
//! swept and torn down, and the run ends with [`crate::signals::Interrupted`] (exit status 130
//! or 143). A second signal exits at once.

pub mod bundle;
pub mod capabilities;
pub mod check;
pub mod features;
pub mod hooks;
pub mod outcomes;
pub mod plan;
pub mod reports_lock;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cucumber::{World as _, WriterExt as _, writer};

use crate::HadrillWorld;
use crate::cluster::provider::{ClusterFlags, RunCluster};
use crate::report::metrics::ScenarioRecord;
use crate::report::{Verdict, html, junit, metrics, scenario_log};
use crate::settings::{CONCURRENCY_ENV, REQUIRE_IPTABLES_ENV, Settings};
use crate::signals;
use crate::world::RunScope;
use plan::ScenarioPlan;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Feature files or directories (default: the repository's `features/`).
    pub features: Vec<PathBuf>,
    /// Tag expression, e.g. `@smoke and not @serial`.
    pub tags: Option<String>,
    /// The cluster provider and its options (`--cluster` ...); absent ones come from the
    /// settings (`HADRILL_CLUSTER` ...), the default is `sim`.
    pub cluster: ClusterFlags,
    /// The settings; `None` reads them from the process environment when the run starts.
    pub settings: Option<Settings>,
}

/// The repository's `features/` directory.
pub fn default_features_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../features")
}

/// Checks and runs the features and writes the reports; returns whether all passed. A signal
/// ends it with [`signals::Interrupted`] after the cleanup (see the module docs).
pub async fn run_features(opts: RunOptions) -> anyhow::Result<bool> {
    sim::install_crypto_provider();
    signals::listen()?;
    let settings = match opts.settings.clone() {
        Some(s) => s,
        None => Settings::from_env()?,
    };
    // A bad provider choice, a refused context or a missing tool stops the run before anything.
    let choice = opts.cluster.resolve_with(|name| settings.var(name))?;
    choice.preflight()?;
    let files = check::selected_feature_files(&opts.features)?;
    let checked = check::check(&files)?;
    if !checked.problems.is_empty() {
        for p in &checked.problems {
            eprintln!("{p}");
        }
        anyhow::bail!(
            "{} problem(s) in the features; nothing was run (`hadrill check` lists them, `hadrill steps` the step library)",
            checked.problems.len()
        );
    }
    let tags: Option<cucumber::gherkin::tagexpr::TagOperation> = match &opts.tags {
        Some(t) => Some(t.parse().map_err(|e| anyhow::anyhow!("--tags {t:?} is not a tag expression: {e}"))?),
        None => None,
    };
    let selected: Vec<&ScenarioPlan> = checked.plans.iter().filter(|p| tagged(tags.as_ref(), &p.tags)).collect();
    match &opts.tags {
        Some(t) => anyhow::ensure!(!selected.is_empty(), "no scenario matches --tags {t:?}"),
        None => anyhow::ensure!(!selected.is_empty(), "the selected features hold no scenario"),
    }
    // What the machine lacks skips the scenarios that need it, before any cluster starts.
    let skips = capabilities::unmet(selected.iter().copied(), choice.provider(), capabilities::probe_iptables);
    if settings.require_iptables
        && let Some(first) = skips.first()
    {
        anyhow::bail!(
            "{REQUIRE_IPTABLES_ENV}=1 and {} scenario(s) cannot run on this machine; nothing was run. {:?} ({}:{}) {}",
            skips.len(),
            first.plan.scenario,
            first.plan.file.display(),
            first.plan.line,
            first.reason
        );
    }
    for skip in &skips {
        println!(
            "⊘ skipped {:?} ({}:{}): {}",
            skip.plan.scenario,
            skip.plan.file.display(),
            skip.plan.line,
            skip.reason
        );
    }
    let dir = settings.reports_dir.clone();
    // Held to the end of the run: a second run into `dir` is refused before anything starts.
    let _lock = reports_lock::lock(&dir)?;
    // What killed runs left on this host (chains, ledgers of embedded clusters) goes first.
    for r in crate::chaos::host::sweep(&settings.ledger_dir(), false) {
        println!("host sweep: {r}");
    }
    // The run-wide cluster (nothing for sim); torn down below, or by its drop on an error.
    let cluster = RunCluster::setup(&choice, settings.ledger_dir()).await?;
    if let Some(shared) = cluster.shared() {
        match settings.concurrency {
            Some(n) => println!("running {n} scenario(s) at once on the {} ({CONCURRENCY_ENV})", shared.label),
            None => println!(
                "running scenarios one at a time on the {}: they share its controller in hadrill-system \
                 (HADRILL_CONCURRENCY=N overrides)",
                shared.label
            ),
        }
    }
    let log = File::create(dir.join("features.log")).context("creating reports/features.log")?;
    // Until the run ends, the reports say it has not: what a killed run (SIGKILL) leaves.
    let junit_path = dir.join("junit.xml");
    junit::write(&junit_path, &junit::Report { cases: Vec::new(), interrupted: true })?;
    let page = html::render(&[], &metrics::read_history(&dir), 0.0, Verdict::Unfinished);
    metrics::write_atomically(&dir.join("index.html"), page.as_bytes())?;
    let concurrency = concurrency(settings.concurrency, cluster.shared().is_some());
    let scope = RunScope { settings: Arc::new(settings), shared: cluster.shared().cloned() };
    let hooks = hooks::Hooks::new(scope, dir.clone());
    let (before, after) = (hooks.clone(), hooks.clone());
    let started = Instant::now();
    let outcomes = outcomes::Outcomes::default();
    let cucumber = HadrillWorld::cucumber::<PathBuf>()
        .with_parser(Prepared)
        .with_writer(
            writer::Basic::raw(std::io::stdout(), writer::Coloring::Auto, 0)
                .summarized()
                .tee::<HadrillWorld, _>(outcomes.collector().discard_stats_writes().discard_arbitrary_writes())
                .tee::<HadrillWorld, _>(writer::Basic::raw(log, writer::Coloring::Never, 0).discard_stats_writes())
                .normalized(),
        )
        .fail_on_skipped()
        .max_concurrent_scenarios(concurrency)
        .before(move |feature, _, scenario, world| {
            before.before_scenario(feature, scenario, world);
            Box::pin(std::future::ready(()))
        })
        .after(move |feature, _, scenario, finished, world| {
            after.clone().after_scenario(feature, scenario, finished, world)
        });
    // Figures reach each testcase's JUnit system-out only as cucumber scenario logs.
    let cucumber = if scenario_log::begin() {
        cucumber.configure_and_init_tracing(
            tracing_subscriber::fmt::format::DefaultFields::new(),
            scenario_log::Plain,
            scenario_log::subscriber,
        )
    } else {
        cucumber
    };
    // Default options: without them cucumber would parse the process arguments (hadrill's own,
    // or cargo test's); paths and tags come in through `opts`.
    let cucumber = cucumber.with_default_cli();
    let skipped: Vec<ScenarioPlan> = skips.iter().map(|s| s.plan.clone()).collect();
    let filter = move |feature: &cucumber::gherkin::Feature,
                       rule: Option<&cucumber::gherkin::Rule>,
                       scenario: &cucumber::gherkin::Scenario| {
        let all: Vec<String> = feature
            .tags
            .iter()
            .chain(rule.iter().flat_map(|r| r.tags.iter()))
            .chain(scenario.tags.iter())
            .cloned()
            .collect();
        tagged(tags.as_ref(), &all) && !skipped.iter().any(|p| p.is(feature.path.as_deref(), scenario))
    };
    // Only the features the check read (outlines expanded), through the filter.
    // Dropped on a signal, the run drops the scenarios in progress: each World tears down.
    let outcome = cluster.run(cucumber.filter_run(checked.features, filter)).await;
    scenario_log::end();
    let wall = started.elapsed().as_secs_f64();
    // What ran, then what was skipped before the run (each a testcase with its reason).
    let report = |interrupted: bool| {
        let mut report = outcomes.report(interrupted);
        report.cases.extend(skips.iter().map(|s| junit::Case {
            feature: s.plan.feature.clone(),
            scenario: s.plan.scenario.clone(),
            file: Some(outcomes::display_path(&s.plan.file)),
            line: Some(s.plan.line),
            outcome: junit::Outcome::Skipped { message: s.reason.clone() },
            ..junit::Case::default()
        }));
        report
    };
    let with_skips = |mut records: Vec<ScenarioRecord>| {
        records.extend(skips.iter().map(|s| ScenarioRecord::skipped(&s.plan.feature, &s.plan.scenario, &s.reason)));
        records
    };
    let result = match outcome {
        Ok(result) => result,
        Err(interrupted) => {
            let signal = interrupted.signal.name();
            let verdict = Verdict::Interrupted { signal };
            // What finished is reported; the scenarios in progress as skipped, interrupted.
            let mut report = report(true);
            report.cases.extend(hooks.in_progress_cases(signal));
            if let Err(e) = junit::write(&junit_path, &report) {
                eprintln!("warning: {e:#}");
            }
            if let Err(e) = write_reports(&dir, &with_skips(hooks.interrupted_records(signal)), wall, verdict) {
                eprintln!("warning: {e:#}");
            }
            return Err(cluster.interrupted(interrupted).await);
        }
    };
    junit::write(&junit_path, &report(false))?;
    let verdict =
        if cucumber::writer::Stats::execution_has_failed(&result) { Verdict::Failed } else { Verdict::Passed };
    write_reports(&dir, &with_skips(hooks.records()), wall, verdict)?;
    cluster.teardown().await?;
    Ok(verdict.passed())
}

/// Writes metrics.json, history.jsonl and index.html into `dir` and prints where they are.
fn write_reports(dir: &Path, records: &[ScenarioRecord], wall: f64, verdict: Verdict) -> anyhow::Result<()> {
    metrics::write(dir, records, wall, verdict)?;
    let page = html::render(records, &metrics::read_history(dir), wall, verdict);
    let index = dir.join("index.html");
    metrics::write_atomically(&index, page.as_bytes())?;
    println!(
        "feature suite {} in {wall:.1} s; reports: {}, {}, {}, {}",
        verdict.describe(),
        index.display(),
        dir.join("junit.xml").display(),
        dir.join("features.log").display(),
        dir.join("metrics.json").display()
    );
    for r in records {
        if let Some(b) = &r.bundle {
            println!("  failure bundle of {:?}: {}", r.scenario, dir.join(b).display());
        }
    }
    Ok(())
}

/// Scenarios run at once: `set` (`HADRILL_CONCURRENCY`), else 3 on embedded clusters (each
/// has a cluster of its own with real processes, so more only makes them wait for the CPU), and
/// 1 on a run-wide real cluster (`shared`), where scenarios share the controller in
/// hadrill-system. `@serial` scenarios run alone.
fn concurrency(set: Option<usize>, shared: bool) -> usize {
    set.unwrap_or(if shared { 1 } else { 3 })
}

/// Whether `tags` (a scenario's with its feature's and rule's) satisfy `op` (any, without one).
fn tagged(op: Option<&cucumber::gherkin::tagexpr::TagOperation>, tags: &[String]) -> bool {
    use cucumber::tag::Ext as _;
    op.is_none_or(|op| op.eval(tags.iter()))
}

/// Hands cucumber the features the check read, outlines expanded: only the named files are
/// parsed, once, and what cucumber runs is what was checked.
struct Prepared;

impl cucumber::Parser<Vec<cucumber::gherkin::Feature>> for Prepared {
    type Cli = cucumber::cli::Empty;
    type Output = futures::stream::Iter<std::vec::IntoIter<cucumber::parser::Result<cucumber::gherkin::Feature>>>;

    fn parse(self, features: Vec<cucumber::gherkin::Feature>, _: Self::Cli) -> Self::Output {
        futures::stream::iter(features.into_iter().map(Ok).collect::<Vec<_>>())
    }
}
