//! The feature runner and its reports: the console, `reports/junit.xml` (cucumber's JUnit
//! writer) and `reports/features.log` (the same human-readable transcript as the console,
//! without colours).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use cucumber::{World as _, WriterExt as _, writer};

use crate::HadrillWorld;

/// Where reports go.
pub fn reports_dir() -> PathBuf {
    std::env::var_os("HADRILL_REPORTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reports"))
}

/// Runs the features under `features` and writes the reports; returns whether all passed.
/// Steps that match no definition fail the run.
pub async fn run_features(features: &Path) -> anyhow::Result<bool> {
    sim::install_crypto_provider();
    let dir = reports_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let junit = File::create(dir.join("junit.xml")).context("creating reports/junit.xml")?;
    let log = File::create(dir.join("features.log")).context("creating reports/features.log")?;
    let started = Instant::now();
    let result = HadrillWorld::cucumber()
        .with_writer(
            writer::Basic::raw(std::io::stdout(), writer::Coloring::Auto, 0)
                .summarized()
                .tee::<HadrillWorld, _>(writer::JUnit::for_tee(junit, 0))
                .tee::<HadrillWorld, _>(writer::Basic::raw(log, writer::Coloring::Never, 0).discard_stats_writes())
                .normalized(),
        )
        .fail_on_skipped()
        .with_default_cli()
        .run(features)
        .await;
    let passed = !cucumber::writer::Stats::execution_has_failed(&result);
    println!(
        "feature suite {} in {:.1} s; reports: {}, {}",
        if passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        dir.join("junit.xml").display(),
        dir.join("features.log").display()
    );
    Ok(passed)
}
