//! Shared by the tests that run feature files and read their reports back: a run with its
//! reports in a fresh temporary directory, and what the reports say.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A file's text; a test fails naming the file when it cannot be read.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh reports directory under the system's temporary directory.
pub fn reports_dir(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hadrill-{test}-{}", uuid::Uuid::new_v4().simple()))
}

/// `path` relative to the harness crate.
pub fn in_crate(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The options of an in-process run of `features` writing its reports into `reports`.
pub fn options(features: PathBuf, reports: &Path) -> hadrill::runner::RunOptions {
    hadrill::runner::RunOptions {
        features: vec![features],
        settings: Some(hadrill::settings::Settings::default().with_reports_dir(reports)),
        ..Default::default()
    }
}

/// Runs `features` in this process with the reports in `reports`; whether every scenario passed.
pub fn run(features: PathBuf, reports: &Path) -> bool {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(hadrill::runner::run_features(options(features, reports))).unwrap()
}

/// Seconds of the step whose `<system-out>` line starts with `prefix` (`✘  When ... (0.512 s)`).
pub fn step_seconds(system_out: &str, prefix: &str) -> f64 {
    let line = system_out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {system_out}"));
    let open = line.rfind(" (").unwrap_or_else(|| panic!("no time: {line}"));
    line[open + 2..].trim_end_matches(" s)").parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}
