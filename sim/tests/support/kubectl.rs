//! Running the machine's `kubectl` against an embedded cluster. kubectl is optional for users:
//! without it the tests print a notice and pass, unless HADRILL_REQUIRE_KUBECTL=1 (set by CI)
//! makes its absence a failure.

use std::path::PathBuf;
use std::process::Command;

/// Whether kubectl is on PATH (panics when it is required and missing).
pub fn available(test: &str) -> bool {
    let found = Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("HADRILL_REQUIRE_KUBECTL").is_err(),
            "kubectl is required (HADRILL_REQUIRE_KUBECTL is set) but not found"
        );
        eprintln!("NOTICE: kubectl not found on PATH; skipping {test}");
    }
    found
}

/// kubectl with one kubeconfig and a private HOME (no cache shared between tests).
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
}

/// What a kubectl run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    /// kubectl with the cluster's kubeconfig and a HOME of its own (a fresh discovery cache)
    /// in a temporary directory, which is returned for the test's files.
    pub fn for_cluster(sim: &sim::Sim, tag: &str) -> (Kubectl, PathBuf) {
        let dir = std::env::temp_dir().join(format!("hadrill-kubectl-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("kubectl's temporary directory");
        let kubeconfig = dir.join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("write the kubeconfig");
        (Kubectl { kubeconfig, home: dir.clone() }, dir)
    }

    /// `kubectl get ARGS -o json`: the object.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&all).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {args:?} is not JSON ({e}): {out}"))
    }

    /// A command line for `args`, for callers that stream its output.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        // Flags first: everything after a `--` in `args` belongs to the remote command.
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args).env("HOME", &self.home);
        cmd
    }

    /// Runs kubectl; panics with its output when it fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args).await;
        assert!(ok, "kubectl {} failed:\n{out}", args.join(" "));
        out
    }

    /// Runs kubectl; whether it succeeded, and stdout and stderr together.
    pub async fn run(&self, args: &[&str]) -> (bool, String) {
        let r = self.output(args, None).await;
        (r.code == Some(0), format!("{}{}", r.stdout, r.stderr))
    }

    /// Runs kubectl with `stdin` as its input (none: no input); its exit code and output.
    pub async fn output(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        self.output_with_env(args, stdin, &[]).await
    }

    /// [`Kubectl::output`] with extra environment variables.
    pub async fn output_with_env(&self, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        cmd.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).await.expect("write kubectl's input");
        }
        let out = child.wait_with_output().await.expect("kubectl runs");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
