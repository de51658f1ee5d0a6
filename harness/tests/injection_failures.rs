//! An injection the chaos engine cannot do, through a whole feature run: `hadrill run` on
//! tests/fixtures/no-iptables/ with iptables hidden from the process's PATH (the engine's
//! probe finds no iptables, as on a machine without the package). The injection step must
//! fail within seconds of its start — not after the injection timeout — with the engine's
//! words as the root cause of the junit failure.

mod feature_run;

use std::path::PathBuf;
use std::process::Command;

use feature_run::{read, step_seconds};

#[test]
fn an_injection_the_engine_cannot_do_fails_its_step_within_seconds_with_the_root_cause() {
    let reports = feature_run::reports_dir("no-iptables");
    let fixture = feature_run::in_crate("tests/fixtures/no-iptables");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let without: Vec<PathBuf> = std::env::split_paths(&path).filter(|d| !d.join("iptables").exists()).collect();
    let path = std::env::join_paths(without).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hadrill"))
        .arg("run")
        .arg(&fixture)
        .env("PATH", &path)
        .env("HADRILL_REPORTS", &reports)
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the run must fail:\n{console}");

    let junit = read(&reports.join("junit.xml"));
    let cases = hadrill::report::junit::read(&junit).unwrap();
    let case = cases
        .iter()
        .find(|c| {
            c.classname.as_deref() == Some("A fault the chaos engine cannot inject")
                && c.name.as_deref() == Some("Packet loss where iptables is not installed")
        })
        .unwrap_or_else(|| panic!("{junit}"));
    let message = case.failure_message.as_deref().expect("a failure");
    let root = message.split(" ← ").next().unwrap_or_default();
    assert!(root.contains("iptables is not installed"), "the root cause comes first: {message}");
    assert!(message.contains("the chaos engine reports a failure"), "{message}");
    assert!(message.contains("the object was removed (deleted)"), "{message}");
    assert!(message.ends_with("← injecting primary-network-loss-50"), "{message}");
    assert!(console.contains("iptables is not installed"), "the console shows it too:\n{console}");

    let out = case.system_out.as_deref().unwrap_or_default();
    let took = step_seconds(out, "✘  When the scenario");
    println!("the injection step failed after {took:.3} s");
    assert!(took < 5.0, "the injection step must fail within 5 s of its start, took {took} s");
    std::fs::remove_dir_all(&reports).unwrap();
}
