//! `hadrill check` and `hadrill run` as a user runs them, on features with one mistake each:
//! both refuse the file before any cluster exists (the run writes no report), and the message
//! names the file, the line (and column) and what is expected.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory (features, reports) removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("hadrill-check-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `name` with `bytes`; its path.
    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn reports(&self) -> PathBuf {
        self.0.join("reports")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hadrill(scratch: &Scratch, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hadrill"))
        .args(args)
        .env("HADRILL_REPORTS", scratch.reports())
        .env_remove("HADRILL_CLUSTER")
        .env_remove("HADRILL_REQUIRE_IPTABLES")
        .output()
        .expect("hadrill runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `check` and `run` of a feature holding `scenario_body` (steps under one scenario) both refuse
/// it before anything runs, with `file:line:column:` and every one of `expected`.
fn refused(feature: &str, line: usize, expected: &[&str]) {
    let scratch = Scratch::new();
    let file = scratch.file("bad.feature", feature);
    refused_file(&scratch, &file, line, expected);
}

fn refused_file(scratch: &Scratch, file: &Path, line: usize, expected: &[&str]) {
    let path = file.to_str().unwrap();
    for args in [vec!["check", path], vec!["run", path]] {
        let out = hadrill(scratch, &args);
        let all = text(&out);
        assert!(!out.status.success(), "{args:?} must fail: {all}");
        let at = format!("{path}:{line}:");
        assert!(all.contains(&at), "{args:?}: the message names {at}: {all}");
        for e in expected {
            assert!(all.contains(e), "{args:?}: the message says {e:?}: {all}");
        }
        assert!(!scratch.reports().join("junit.xml").exists(), "{args:?}: nothing ran, no report: {all}");
        assert!(!all.contains("chaos engine: seed"), "{args:?}: no cluster started: {all}");
    }
}

/// A scenario with a cluster, a controller and an HA service, then `step`.
fn after_setup(step: &str) -> String {
    format!(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n    And the failover controller runs with 1 replica\n    \
         And an HA service \"dispatch\" with a primary and a standby deployment of 1 replica\n    {step}\n"
    )
}

#[test]
fn an_unknown_scenario_name_is_refused_with_the_known_ones() {
    refused(
        &after_setup("When the scenario \"primary-pod-kil\" is injected"),
        6,
        &["unknown scenario `primary-pod-kil`", "known scenarios: ", "primary-pod-kill"],
    );
}

#[test]
fn a_loss_over_100_is_refused_with_the_range() {
    refused(
        &after_setup("When the scenario \"primary-network-loss-50\" is injected with \"loss=150\""),
        6,
        &[
            "parameter `loss` (percent) set to `150`",
            "expected a number from 0 to 100",
            "primary-network-loss-50.yaml:",
        ],
    );
}

#[test]
fn a_loss_that_is_not_a_number_is_refused() {
    refused(
        &after_setup("When the scenario \"primary-network-loss-50\" is injected with \"loss=abc\""),
        6,
        &["set to `abc`", "expected a number from 0 to 100"],
    );
}

#[test]
fn an_unknown_parameter_is_refused_with_the_scenarios_parameters() {
    refused(
        &after_setup("When the scenario \"primary-network-loss-50\" is injected with \"unknownparam=1\""),
        6,
        &["unknown parameter `unknownparam`", "its parameters are: primary, loss, correlation, duration"],
    );
}

#[test]
fn a_duration_in_days_is_refused_with_the_units() {
    refused(
        &after_setup("When the scenario \"primary-network-loss-50\" is injected with \"duration=5d\""),
        6,
        &["set to `5d`", "a Go duration such as 30s", "no days"],
    );
}

#[test]
fn an_ha_service_before_a_cluster_names_the_step_to_add() {
    refused(
        "Feature: f\n  Scenario: s\n    Given an HA service \"dispatch\" with a primary and a standby deployment of 1 replica\n",
        3,
        &["needs a cluster first: add `Given a cluster with 3 nodes` before it"],
    );
}

#[test]
fn vehicles_before_their_ha_service_name_the_step_to_add() {
    refused(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n    And 5 vehicles send heartbeats to \"dispatch\" every 200 ms\n",
        4,
        &[
            "needs the HA service \"dispatch\" first: add `Given an HA service \"dispatch\" with a primary and a standby",
        ],
    );
}

#[test]
fn a_fault_before_its_target_names_the_step_to_add() {
    refused(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n    When the scenario \"primary-pod-kill\" is injected\n",
        4,
        &["scenario primary-pod-kill targets the HA service", "add `Given an HA service \"dispatch\""],
    );
    refused(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n    When the controller's leader is killed\n",
        4,
        &["targets the failover controller", "add `Given the failover controller runs with 2 replicas` before it"],
    );
    refused(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n    Then the fault ends by itself within 30 s\n",
        4,
        &["needs a fault before it"],
    );
}

#[test]
fn a_gherkin_syntax_error_gives_its_line_and_column() {
    refused(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n  Scenari: misspelt\n    Given a cluster with 1 node\n",
        4,
        &[":4:3: not valid Gherkin at \"Scenari: misspelt\"", "expected a step (Given, When, Then, And, But)"],
    );
}

#[test]
fn bytes_that_are_not_utf8_are_named_with_their_position() {
    let scratch = Scratch::new();
    let file = scratch.file("latin1.feature", b"Feature: f\n  Scenario: caf\xe9\n    Given a cluster with 1 node\n");
    refused_file(&scratch, &file, 2, &[":2:16: not UTF-8: byte 0xE9", "save the file as UTF-8"]);
}

#[test]
fn a_manifest_of_an_unknown_kind_or_a_missing_one_is_refused() {
    let scratch = Scratch::new();
    let manifest = scratch.file("m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Widget\nmetadata: {name: b}\n");
    let feature = format!(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n    When the manifest \"{}\" is applied\n",
        manifest.display()
    );
    let file = scratch.file("m.feature", feature);
    refused_file(&scratch, &file, 4, &["document 2: unknown kind Widget in v1; expected one of", "ConfigMap"]);
    refused(
        "Feature: f\n  Scenario: s\n    Given a cluster with 1 node\n    When the manifest \"features/manifests/nope.yaml\" is applied\n",
        4,
        &["manifest features/manifests/nope.yaml: no such file"],
    );
}

#[test]
fn a_feature_with_only_a_background_is_refused() {
    refused(
        "Feature: Only set-up\n  Background:\n    Given a cluster with 1 node\n",
        1,
        &["has only a Background", "add a Scenario"],
    );
}

#[test]
fn a_run_that_selects_no_scenario_is_an_error() {
    let scratch = Scratch::new();
    let file = scratch.file("ok.feature", "Feature: f\n  Scenario: s\n    Given an embedded cluster with 1 node\n");
    let out = hadrill(&scratch, &["run", file.to_str().unwrap(), "--tags", "@nothing"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no scenario matches --tags \"@nothing\""), "{}", text(&out));
    assert!(!scratch.reports().join("junit.xml").exists());
}

#[test]
fn only_the_named_files_are_parsed() {
    let scratch = Scratch::new();
    scratch.file("broken.feature", "Feature: broken\n  Scenari: no\n");
    let good = scratch.file(
        "good.feature",
        "Feature: good\n  Scenario: s\n    Given an embedded cluster with 1 node\n    Then the cluster lists 1 node\n",
    );
    let check = hadrill(&scratch, &["check", good.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    let run = hadrill(&scratch, &["run", good.to_str().unwrap()]);
    assert!(run.status.success(), "the broken sibling is not read: {}", text(&run));
    assert!(!text(&run).contains("broken"), "{}", text(&run));
}

#[test]
fn a_refused_manifest_carries_the_api_servers_reason() {
    let scratch = Scratch::new();
    let manifest = scratch.file("bad-name.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_One}\n");
    let file = scratch.file(
        "refused.feature",
        format!(
            "Feature: f\n  Scenario: s\n    Given an embedded cluster with 1 node\n    When the manifest \"{}\" is applied\n",
            manifest.display()
        ),
    );
    let check = hadrill(&scratch, &["check", file.to_str().unwrap()]);
    assert!(check.status.success(), "the file is a ConfigMap: {}", text(&check));
    let run = hadrill(&scratch, &["run", file.to_str().unwrap()]);
    let all = text(&run);
    assert!(!run.status.success(), "{all}");
    // kube-apiserver: staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go NewInvalid —
    // reason Invalid, code 422, one cause per field error.
    assert!(
        all.contains("configmap/Bad_One from") && all.contains("is refused by the API server: Invalid (422)"),
        "{all}"
    );
    assert!(all.contains("- metadata.name: "), "the cause names the field: {all}");
}
