//! The incident's clock through a feature run: features/controller_ha.feature, whose second
//! scenario kills every primary pod and then the controller's leader. "Fault to switch" and the
//! 1-5-10 figures must count from the pod kill (and name it), not from the later leader kill,
//! and the feature passes.

mod feature_run;

use feature_run::read;

#[test]
fn a_fault_on_the_controller_after_the_pod_kill_does_not_restart_the_clock() {
    let reports = feature_run::reports_dir("clock");
    let passed = feature_run::run(feature_run::in_crate("../features/controller_ha.feature"), &reports);
    let junit = read(&reports.join("junit.xml"));
    assert!(passed, "controller_ha.feature passes:\n{junit}");

    let metrics: serde_json::Value = serde_json::from_str(&read(&reports.join("metrics.json"))).unwrap();
    let scenario = metrics["scenarios"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["scenario"] == "The leader is killed just after the primary dies"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let pod_kill = "1 pod(s) of the primary of dispatch killed";
    let mark = |prefix: &str| {
        scenario["timeline"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["label"].as_str().is_some_and(|l| l.starts_with(prefix))))
            .and_then(|m| m["at"].as_f64())
            .unwrap_or_else(|| panic!("no mark {prefix:?}: {scenario}"))
    };
    let (killed, leader, switched) =
        (mark(pod_kill), mark("scenario controller-leader-kill injected"), mark("dispatch switched to the standby"));
    assert!(killed < leader, "the pod kill comes first: {killed} {leader}");
    let figure = |name: &str| {
        scenario["figures"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == name))
            .unwrap_or_else(|| panic!("no figure {name:?}: {scenario}"))
            .clone()
    };
    let to_switch = figure("dispatch: fault to switch");
    let seconds = to_switch["seconds"].as_f64().unwrap();
    println!(
        "fault to switch {seconds:.3} s; pod kill at {killed:.3} s, leader kill at {leader:.3} s, switch at {switched:.3} s"
    );
    assert_eq!(to_switch["from"], pod_kill, "{to_switch}");
    assert!(
        (seconds - (switched - killed)).abs() < 0.01,
        "counted from the pod kill: {seconds} vs {}",
        switched - killed
    );
    for name in ["dispatch: detected", "dispatch: located", "dispatch: recovered"] {
        assert_eq!(figure(name)["from"], pod_kill, "{name}");
    }
    std::fs::remove_dir_all(&reports).unwrap();
}
