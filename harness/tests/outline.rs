//! A Scenario Outline with three Examples rows runs three scenarios, each a testcase of its own.

use std::path::PathBuf;

#[test]
fn an_outline_with_three_rows_runs_three_scenarios() {
    let reports = std::env::temp_dir().join(format!("hadrill-outline-{}", uuid::Uuid::new_v4().simple()));
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/outline/outline.feature");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let opts = hadrill::runner::RunOptions {
        features: vec![fixture],
        settings: Some(hadrill::settings::Settings::default().with_reports_dir(&reports)),
        ..Default::default()
    };
    assert!(rt.block_on(hadrill::runner::run_features(opts)).unwrap(), "every row passes");

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("metrics.json")).unwrap()).unwrap();
    let mut names: Vec<&str> =
        metrics["scenarios"].as_array().unwrap().iter().map(|s| s["scenario"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        ["An embedded cluster of 1 node(s)", "An embedded cluster of 2 node(s)", "An embedded cluster of 3 node(s)"]
    );
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    let mut cases: Vec<String> =
        hadrill::report::junit::read(&junit).unwrap().into_iter().filter_map(|c| c.name).collect();
    cases.sort();
    assert_eq!(cases, names, "one testcase per row: {junit}");
    let _ = std::fs::remove_dir_all(&reports);
}
