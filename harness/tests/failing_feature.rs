//! A deliberately failing feature (tests/fixtures/failing/): the run must exit non-zero and
//! leave the failure, its figures and the failure bundle in every report.

use std::path::{Path, PathBuf};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_failing_feature_reports_its_failure_figures_and_bundle() {
    let reports = std::env::temp_dir().join(format!("hadrill-failing-{}", uuid::Uuid::new_v4().simple()));
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/failing");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let opts = hadrill::runner::RunOptions {
        features: vec![fixture],
        settings: Some(hadrill::settings::Settings::default().with_reports_dir(&reports)),
        ..Default::default()
    };
    let passed = rt.block_on(hadrill::runner::run_features(opts)).unwrap();
    assert!(!passed, "the run must fail (exit non-zero)");

    // junit.xml read as CI tools read it: every testcase has classname (the feature), name
    // (the scenario) and file; the late switch's failure says so.
    let junit = read(&reports.join("junit.xml"));
    let cases = hadrill::report::junit::read(&junit).unwrap();
    assert_eq!(cases.len(), 2, "{junit}");
    for c in &cases {
        assert_eq!(c.classname.as_deref(), Some("A failover later than its deadline (a deliberate failure)"), "{c:?}");
        assert_eq!(c.file.as_deref(), Some("harness/tests/fixtures/failing/failing.feature"), "{c:?}");
        assert!(c.name.as_deref().is_some_and(|n| !n.contains("failing.feature")), "the name is the scenario's: {c:?}");
    }
    let late = cases
        .iter()
        .find(|c| c.name.as_deref() == Some("A switch two seconds after the fault misses a one-second deadline"))
        .unwrap_or_else(|| panic!("{cases:#?}"));
    let message = late.failure_message.as_deref().expect("a failure");
    assert!(message.contains("web failed over after"), "the measured time is in the failure message: {message}");

    let metrics: serde_json::Value = serde_json::from_str(&read(&reports.join("metrics.json"))).unwrap();
    let scenarios = metrics["scenarios"].as_array().expect("scenarios");
    let named = |prefix: &str| {
        scenarios
            .iter()
            .find(|s| s["scenario"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no scenario {prefix:?} in {scenarios:?}"))
    };
    let scenario = named("A switch two seconds");
    assert_eq!(scenario["passed"], false);
    let figures = scenario["figures"].as_array().expect("figures");
    let figure = figures.iter().find(|f| f["name"] == "web: fault to switch").expect("the late switch is measured");
    assert_eq!(figure["deadline"], 1.0);
    assert!(figure["seconds"].as_f64().unwrap() >= 2.0, "{figure}");
    let bundle = scenario["bundle"].as_str().expect("a bundle is recorded");
    assert!(bundle.starts_with("a-switch-two-seconds-after-the-fault"), "{bundle}");

    let index = read(&reports.join("index.html"));
    assert!(index.contains("<article class=\"card fail\""), "{index}");
    assert!(index.contains("web failed over after"), "{index}");
    assert!(index.contains("<tr class=\"over\"><td>web: fault to switch</td>"), "{index}");
    assert!(index.contains(&format!("<a href=\"{bundle}/README.txt\">")), "{index}");
    assert!(index.contains("<g class=\"mark fault\"") && index.contains("<g class=\"mark switched\""), "{index}");

    let dir = reports.join(bundle);
    let pods = read(&dir.join("pods.txt"));
    assert!(pods.contains("pod web-standby-"), "{pods}");
    assert!(!read(&dir.join("events.txt")).contains("(no events)"));
    let logs: Vec<_> = std::fs::read_dir(dir.join("logs")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(logs.iter().any(|n| n.to_string_lossy().starts_with("web-standby-")), "{logs:?}");
    let readme = read(&dir.join("README.txt"));
    assert!(readme.contains("web: fault to switch: ") && readme.contains("(deadline 1 s)"), "{readme}");
    assert!(read(&dir.join("services.yaml")).contains("side: standby"));
    assert!(dir.join("chaos.yaml").is_file() && dir.join("timeline.json").is_file());

    // Vehicles cut off for two seconds against a one-second limit: the failure names the link,
    // the longest gap is measured, the gaps are on the timeline, the bundle has the vehicles'
    // results and the trace diagnosis.
    let vehicles = named("Vehicles cut off");
    assert_eq!(vehicles["passed"], false);
    let failure = vehicles["failure"].as_str().expect("a failure message");
    assert!(failure.contains("link for"), "{failure}");
    assert!(!vehicles["link_gaps"].as_array().expect("link gaps").is_empty(), "{vehicles}");
    let dir = reports.join(vehicles["bundle"].as_str().expect("a bundle"));
    let results: serde_json::Value = serde_json::from_str(&read(&dir.join("vehicles.json"))).unwrap();
    assert_eq!(results["vehicles"].as_array().map(Vec::len), Some(4), "{results}");
    assert!(results["errors"].as_u64().unwrap() > 0, "heartbeats failed while cut off: {results}");
    let diagnosis = read(&dir.join("trace-diagnosis.txt"));
    assert!(diagnosis.contains("vehicle v-0 trace "), "{diagnosis}");

    std::fs::remove_dir_all(&reports).unwrap();
}
