//! `hadrill run --cluster ...` as a user runs it: bad choices and missing tools stop the run
//! before anything happens (no report written, no tool run), with a message saying what to
//! do; the Makefile's kind targets pass flags the runner accepts.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hadrill::cluster::provider;
use hadrill::cluster::tools::Tool;

/// A scratch directory (reports, PATH entries) removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hadrill-cli-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn reports(&self) -> PathBuf {
        self.0.join("reports")
    }

    /// A fake tool that leaves a mark when it is run.
    fn tool(&self, bin: &Path, name: &str) {
        std::fs::create_dir_all(bin).unwrap();
        let file = bin.join(name);
        let mark = self.0.join(format!("{name}.ran"));
        std::fs::write(&file, format!("#!/bin/sh\ntouch '{}'\nexit 1\n", mark.display())).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `hadrill ARGS` with a clean provider environment, reports in `scratch`, and `path` as PATH.
fn hadrill(scratch: &Scratch, path: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hadrill"));
    cmd.args(args).env("PATH", path).env("HADRILL_REPORTS", scratch.reports()).env("RUST_LOG", "warn");
    for var in [
        provider::CLUSTER_ENV,
        provider::KEEP_ENV,
        hadrill::cluster::existing::ALLOW_ENV,
        hadrill::cluster::existing::CONTEXT_ENV,
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("hadrill runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kind_without_its_tools_stops_before_anything_with_the_install_commands() {
    let scratch = Scratch::new("kind-tools");
    let empty = scratch.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = hadrill(&scratch, &empty, &["run", "--cluster", "kind"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    for tool in [Tool::Docker, Tool::Kind, Tool::Helm, Tool::Kubectl] {
        assert!(err.contains(&format!("`{tool}` is not installed")) && err.contains(tool.install_hint()), "{err}");
    }
    assert!(!scratch.reports().exists(), "nothing was written: {err}");

    // With docker present (a fake that marks when run), the others are still named, and
    // docker is never run: the check comes before any side effect.
    let bin = scratch.0.join("bin");
    scratch.tool(&bin, "docker");
    let out = hadrill(&scratch, &bin, &["run"], &[(provider::CLUSTER_ENV, "kind")]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(!err.contains("`docker` is not installed") && err.contains("`kind` is not installed"), "{err}");
    assert!(!scratch.0.join("docker.ran").exists(), "docker was run: {err}");
    assert!(!scratch.reports().exists(), "nothing was written: {err}");
}

/// Arguments, environment, and what the error must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_choices_are_refused_with_what_is_accepted() {
    let scratch = Scratch::new("choices");
    let path = Path::new("/usr/bin:/bin");
    let cases: &[Case] = &[
        (&["run", "--cluster", "kinde"], &[], "--cluster \"kinde\": not a cluster provider; expected sim, kind"),
        (&["run"], &[(provider::CLUSTER_ENV, "docker")], "HADRILL_CLUSTER=\"docker\": not a cluster provider"),
        (&["run", "--context", "kind-hadrill"], &[], "--context applies to --cluster existing only"),
        (&["run", "--cluster", "kind", "--allow-context", "x"], &[], "--allow-context applies to --cluster existing"),
        (&["run", "--cluster", "existing", "--context", "prod"], &[], "refusing to run chaos against context \"prod\""),
        (&["run", "--cluster", "existing"], &[], "no kubeconfig context given"),
        (&["run", "--cluster", "kind"], &[(provider::KEEP_ENV, "perhaps")], "HADRILL_KEEP_CLUSTER=\"perhaps\""),
    ];
    for (args, env, expected) in cases {
        let out = hadrill(&scratch, path, args, env);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(expected), "{args:?} {env:?}: {}", stderr(&out));
    }
    #[cfg(not(feature = "k3s"))]
    {
        let out = hadrill(&scratch, path, &["run", "--cluster", "k3s"], &[]);
        assert!(stderr(&out).contains("--features k3s"), "{}", stderr(&out));
    }
    assert!(!scratch.reports().exists(), "nothing was written");
}

/// `make -n TARGET` with continuation lines joined and runs of blanks collapsed.
fn make_n(target: &str) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("make").current_dir(root).args(["--no-print-directory", "-n", target]).output().ok()?;
    assert!(out.status.success(), "make -n {target}: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).replace("\\\n", " ").split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn the_makefile_uses_the_providers_with_flags_the_runner_accepts() {
    let Some(features_kind) = make_n("features-kind") else {
        eprintln!("NOTICE: make is not installed; skipping the Makefile checks");
        return;
    };
    let existing = "run --cluster existing --kubeconfig reports/kind-hadrill.kubeconfig \
                    --context kind-hadrill --allow-context kind-hadrill";
    assert!(features_kind.contains(existing), "{features_kind}");
    let managed = make_n("features-kind-managed").unwrap();
    assert!(
        managed.contains("run --tags '@nightly' --cluster kind --kind-config kind-configs/multi-node.yaml"),
        "{managed}"
    );
    // The provider deploys with the commands `make deploy` runs.
    let deploy = make_n("deploy").unwrap();
    let kubeconfig = Path::new("reports/kind-hadrill.kubeconfig");
    for cmd in [provider::deploy_command(Path::new(""), kubeconfig), provider::rollout_command(kubeconfig)] {
        assert!(deploy.contains(&cmd.to_string()), "make -n deploy lacks `{cmd}`:\n{deploy}");
    }

    // Those flags parse, and the existing provider gets as far as reading the kubeconfig.
    let scratch = Scratch::new("make-flags");
    let missing = scratch.0.join("nope.kubeconfig");
    let args: Vec<String> = existing
        .replace("reports/kind-hadrill.kubeconfig", &missing.to_string_lossy())
        .split(' ')
        .map(String::from)
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = hadrill(&scratch, Path::new("/usr/bin:/bin"), &args, &[]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("reading kubeconfig") && err.contains("nope.kubeconfig"), "{err}");
}
