//! `hadrill run` on a machine without iptables, as a child process whose PATH has no iptables
//! binary (the embedded cluster's chaos engine runs `iptables` through PATH:
//! sim/src/chaos/iptables.rs): the scenario with a network fault is skipped with the reason
//! before any scenario runs, the other passes, the run exits 0; with
//! HADRILL_REQUIRE_IPTABLES=1 the run fails at once, naming iptables.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// A scratch directory (PATH shims, reports) removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_iptables(name: &str) -> bool {
    ["iptables", "ip6tables", "xtables", "arptables", "ebtables"].iter().any(|p| name.starts_with(p))
}

/// This process's PATH with every directory holding an iptables binary replaced by a directory
/// of links to its other programs.
fn path_without_iptables(scratch: &Path) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut dirs = Vec::new();
    for (i, dir) in std::env::split_paths(&path).enumerate() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let names: Vec<std::ffi::OsString> = entries.flatten().map(|e| e.file_name()).collect();
        if !names.iter().any(|n| is_iptables(&n.to_string_lossy())) {
            dirs.push(dir);
            continue;
        }
        let shim = scratch.join(format!("bin{i}"));
        std::fs::create_dir_all(&shim).unwrap();
        for n in names.iter().filter(|n| !is_iptables(&n.to_string_lossy())) {
            let _ = symlink(dir.join(n), shim.join(n));
        }
        dirs.push(shim);
    }
    std::env::join_paths(dirs).unwrap().into_string().unwrap()
}

fn run(scratch: &Path, path: &str, require: bool) -> (Output, f64) {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/capabilities");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hadrill"));
    cmd.arg("run")
        .arg(&fixture)
        .env("PATH", path)
        .env("HADRILL_REPORTS", scratch.join("reports"))
        .env_remove("HADRILL_CLUSTER")
        .env_remove("HADRILL_REQUIRE_IPTABLES");
    if require {
        cmd.env("HADRILL_REQUIRE_IPTABLES", "1");
    }
    let started = Instant::now();
    let out = cmd.output().expect("hadrill runs");
    (out, started.elapsed().as_secs_f64())
}

#[test]
fn without_iptables_network_scenarios_are_skipped_and_the_rest_pass() {
    let scratch = Scratch(std::env::temp_dir().join(format!("hadrill-caps-{}", uuid::Uuid::new_v4().simple())));
    let path = path_without_iptables(&scratch.0);
    // The hiding is real: a shell with that PATH finds no iptables.
    let found = Command::new("sh").args(["-c", "command -v iptables"]).env("PATH", &path).output().unwrap();
    assert!(!found.status.success(), "iptables still on PATH: {}", String::from_utf8_lossy(&found.stdout));

    let (out, seconds) = run(&scratch.0, &path, false);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    println!("run without iptables: {seconds:.1} s (the skip is decided before any scenario starts)");
    assert!(out.status.success(), "nothing failed, so the run passes: {all}");
    let skip = stdout.find("⊘ skipped \"The web pods lose half of their packets\"").unwrap_or_else(|| panic!("{all}"));
    let skip_line = stdout[skip..].lines().next().unwrap_or_default();
    assert!(skip_line.contains("iptables is not installed"), "the reason: {skip_line}");
    assert!(skip_line.contains("Fix: install iptables and run as root"), "the fix: {skip_line}");
    let first_scenario = stdout.find("Scenario:").unwrap_or_else(|| panic!("the other scenario runs: {all}"));
    assert!(skip < first_scenario, "skipped before any scenario runs: {all}");
    assert!(stdout.contains("1 scenario (1 passed)"), "{all}");
    assert!(!stdout.contains("lose half of their packets\n"), "the skipped scenario is not run: {all}");

    let reports = scratch.0.join("reports");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("metrics.json")).unwrap()).unwrap();
    let skipped: Vec<&serde_json::Value> =
        metrics["scenarios"].as_array().unwrap().iter().filter(|s| s["skipped"].is_string()).collect();
    assert_eq!(skipped.len(), 1, "{metrics}");
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    let cases = hadrill::report::junit::read(&junit).unwrap();
    assert_eq!(cases.len(), 2, "{junit}");
    let case = cases.iter().find(|c| c.name.as_deref() == Some("The web pods lose half of their packets")).unwrap();
    let message = case.skipped_message.as_deref().unwrap_or_else(|| panic!("a <skipped message>: {junit}"));
    assert!(message.contains("iptables is not installed") && message.contains("Fix: install iptables"), "{message}");
    assert!(
        case.file.as_deref().is_some_and(|f| f.ends_with("capabilities.feature")) && case.line.as_deref() == Some("5"),
        "{junit}"
    );
    let other = cases.iter().find(|c| c.name.as_deref() == Some("A cluster without faults")).unwrap();
    assert!(other.skipped_message.is_none() && other.failure_message.is_none(), "{junit}");
    let index = std::fs::read_to_string(reports.join("index.html")).unwrap();
    assert!(index.contains("<span class=\"badge\">SKIPPED</span>The web pods lose half of their packets"), "{index}");
    assert!(index.contains("not run: needs iptables for primary-network-loss-50"), "{index}");
}

#[test]
fn with_iptables_required_a_machine_without_it_fails_at_once() {
    let scratch = Scratch(std::env::temp_dir().join(format!("hadrill-caps-{}", uuid::Uuid::new_v4().simple())));
    let path = path_without_iptables(&scratch.0);
    let (out, seconds) = run(&scratch.0, &path, true);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("run requiring iptables without it: failed after {seconds:.1} s");
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("HADRILL_REQUIRE_IPTABLES=1") && stderr.contains("iptables is not installed"), "{stderr}");
    assert!(!stdout.contains("Scenario:") && !stderr.contains("chaos engine: seed"), "nothing ran: {stdout}{stderr}");
    assert!(!scratch.0.join("reports/junit.xml").exists(), "no report: nothing ran");
}
