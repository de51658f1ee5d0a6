//! An injection the chaos engine cannot do, through a whole feature run: `hadrill run` on
//! tests/fixtures/no-iptables/ with a stand-in `iptables` first on PATH that lists rules (so the
//! capability check before the run passes, as it does on a machine whose iptables works at
//! first) but refuses every change, as iptables does when another program holds the xtables
//! lock. The injection step must fail within seconds of its start — not after the injection
//! timeout — with the engine's words as the root cause of the junit failure. (A machine with no
//! iptables at all never gets here: the run skips the scenario first, tests/capabilities.rs.)

mod feature_run;

use std::process::Command;

use feature_run::{read, step_seconds};

/// A directory holding an `iptables` that answers `-S` and refuses everything else.
fn refusing_iptables(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("iptables");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -S ] && { echo '-P OUTPUT ACCEPT'; exit 0; }; done\n\
         echo 'iptables: Resource temporarily unavailable.' >&2\nexit 4\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn an_injection_the_engine_cannot_do_fails_its_step_within_seconds_with_the_root_cause() {
    let reports = feature_run::reports_dir("no-iptables");
    let fixture = feature_run::in_crate("tests/fixtures/no-iptables");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let first = refusing_iptables(&reports);
    let path = std::env::join_paths(std::iter::once(first).chain(std::env::split_paths(&path))).unwrap();
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
                && c.name.as_deref() == Some("Packet loss where iptables refuses every change")
        })
        .unwrap_or_else(|| panic!("{junit}"));
    let message = case.failure_message.as_deref().expect("a failure");
    let root = message.split(" ← ").next().unwrap_or_default();
    assert!(root.contains("Resource temporarily unavailable"), "the root cause comes first: {message}");
    assert!(message.contains("the chaos engine reports a failure"), "{message}");
    assert!(message.contains("the object was removed (deleted)"), "{message}");
    assert!(message.ends_with("← injecting primary-network-loss-50"), "{message}");
    assert!(console.contains("Resource temporarily unavailable"), "the console shows it too:\n{console}");

    let out = case.system_out.as_deref().unwrap_or_default();
    let took = step_seconds(out, "✘  When the scenario");
    println!("the injection step failed after {took:.3} s");
    assert!(took < 5.0, "the injection step must fail within 5 s of its start, took {took} s");
    std::fs::remove_dir_all(&reports).unwrap();
}
