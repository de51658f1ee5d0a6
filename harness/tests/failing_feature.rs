//! A deliberately failing feature (tests/fixtures/failing/): the run must exit non-zero and
//! leave the failure, its figures and the failure bundle in every report.

mod feature_run;

use feature_run::{read, step_seconds};

#[test]
fn a_failing_feature_reports_its_failure_figures_and_bundle() {
    let reports = feature_run::reports_dir("failing");
    let passed = feature_run::run(feature_run::in_crate("tests/fixtures/failing"), &reports);
    assert!(!passed, "the run must fail (exit non-zero)");

    // junit.xml read as CI tools read it: every testcase has classname (the feature), name
    // (the scenario) and file; the late switch's failure says so.
    let junit = read(&reports.join("junit.xml"));
    let cases = hadrill::report::junit::read(&junit).unwrap();
    assert_eq!(cases.len(), 3, "{junit}");
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
    assert!(message.starts_with("web failed over after"), "the measured time is in the failure message: {message}");
    // A missed deadline says why: what it counts from, the controller's word (none runs here)
    // and the pods the fault hit.
    assert!(message.contains(r#"(counted from "1 pod(s) of the primary of web killed")"#), "{message}");
    assert!(message.contains("the controller wrote no Event about service web"), "{message}");
    assert!(message.contains(r#"fault "1 pod(s) of the primary of web killed" hit hadrill-"#), "{message}");

    // The refused injection: its root cause (the selector, printed) starts the junit message,
    // the HTML card and the bundle README, and the step failed within seconds.
    let refused = cases
        .iter()
        .find(|c| c.name.as_deref() == Some("A fault whose selector matches no pod"))
        .unwrap_or_else(|| panic!("{cases:#?}"));
    let root = "refusing to inject: selector `.` matches no pod: ";
    let message = refused.failure_message.as_deref().expect("a failure");
    assert!(message.starts_with(root), "{message}");
    assert!(message.contains(r#""labelSelectors":{"app":"nobody","side":"primary"}"#), "{message}");
    assert!(message.contains("← injecting primary-pod-kill"), "the contexts follow the root cause: {message}");
    let body = refused.failure_body.as_deref().unwrap_or_default();
    assert!(body.starts_with(root) && body.contains("\n← "), "one cause a line: {body}");
    let took =
        step_seconds(refused.system_out.as_deref().unwrap_or_default(), "✘  When the scenario \"primary-pod-kill\"");
    println!("the refused injection step failed after {took:.3} s");
    assert!(took < 5.0, "the injection step must fail within 5 s, took {took} s");

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
    assert!(index.contains(&format!("<pre class=\"failure\">{root}")), "the card starts with the root cause: {index}");
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

    let refused = named("A fault whose selector matches no pod");
    let readme = read(&reports.join(refused["bundle"].as_str().expect("a bundle")).join("README.txt"));
    let first = readme.lines().skip(1).find(|l| !l.is_empty()).unwrap_or_default();
    assert!(first.starts_with(&format!("failure: {root}")), "the README starts with the root cause: {readme}");

    std::fs::remove_dir_all(&reports).unwrap();
}
