//! Figures of passing scenarios reach `reports/junit.xml` (each testcase's `<system-out>`) and
//! `reports/features.log`, each in its own scenario; a second run in the same process works.

mod feature_run;

use feature_run::read;

const FEATURE: &str = "Measured figures of passing scenarios are kept in every report";

/// The testcase of scenario `name`, found as CI tools find it: by classname (the feature) and name.
fn testcase(cases: &[hadrill::report::junit::ReadCase], name: &str) -> hadrill::report::junit::ReadCase {
    cases
        .iter()
        .find(|c| c.classname.as_deref() == Some(FEATURE) && c.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no testcase {FEATURE:?} / {name:?} in {cases:#?}"))
        .clone()
}

#[test]
fn figures_of_passing_scenarios_are_in_their_junit_system_out() {
    let reports = feature_run::reports_dir("figures");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let opts = feature_run::options(feature_run::in_crate("tests/fixtures/figures"), &reports);
    assert!(rt.block_on(hadrill::runner::run_features(opts.clone())).unwrap(), "the fixture passes");

    let junit = read(&reports.join("junit.xml"));
    let cases = hadrill::report::junit::read(&junit).unwrap();
    let alpha = testcase(&cases, "Alpha stays on its primary");
    let beta = testcase(&cases, "Beta stays on its primary");
    assert!(alpha.failure_message.is_none() && beta.failure_message.is_none(), "{junit}");
    assert_eq!(alpha.file.as_deref(), Some("harness/tests/fixtures/figures/figures.feature"), "{alpha:?}");
    assert_eq!((alpha.line.as_deref(), beta.line.as_deref()), (Some("6"), Some("11")));
    let (alpha, beta) = (alpha.system_out.unwrap_or_default(), beta.system_out.unwrap_or_default());
    assert!(alpha.contains("⏱ alpha: stayed on the primary: 1.000 s"), "{alpha}");
    assert!(beta.contains("⏱ beta: stayed on the primary: 2.000 s"), "{beta}");
    assert!(
        !alpha.contains("beta:") && !beta.contains("alpha:"),
        "a figure only in its own scenario:\n{alpha}\n{beta}"
    );
    assert_eq!(alpha.matches("⏱").count(), 1, "once, not twice: {alpha}");
    // Nothing but the figures reaches the scenario logs (the cluster logs a lot at info).
    assert!(!alpha.contains("INFO") && !alpha.contains("sim::"), "{alpha}");

    let log = read(&reports.join("features.log"));
    assert_eq!(log.matches("⏱ alpha: stayed on the primary: 1.000 s").count(), 1, "{log}");

    // A second run in this process cannot install the tracing collector again (one global
    // subscriber per process): it still runs, passes and keeps its figures in metrics.json.
    assert!(rt.block_on(hadrill::runner::run_features(opts)).unwrap(), "the second run passes too");
    let metrics: serde_json::Value = serde_json::from_str(&read(&reports.join("metrics.json"))).unwrap();
    let names: Vec<&str> = metrics["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .flat_map(|s| s["figures"].as_array().expect("figures").iter().filter_map(|f| f["name"].as_str()))
        .collect();
    assert!(
        names.contains(&"alpha: stayed on the primary") && names.contains(&"beta: stayed on the primary"),
        "{names:?}"
    );

    std::fs::remove_dir_all(&reports).unwrap();
}
