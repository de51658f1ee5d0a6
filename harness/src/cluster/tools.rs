//! The command-line tools real clusters need (docker, kind, helm, kubectl), run as processes.
//!
//! A missing tool stops with the exact command that installs it; the Makefile prints the same
//! hints (a test checks they agree). A failed command reports its command line and the end of
//! its standard error.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};

/// kind release the node image in kind-configs/ was published with.
pub const KIND_VERSION: &str = "v0.33.0";
/// kubectl release matching the clusters' Kubernetes version (kind-configs/, k3s).
pub const KUBECTL_VERSION: &str = "v1.35.8";

/// An external tool hadrill runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// Builds the project images and runs kind's and k3s's nodes.
    Docker,
    /// Creates and deletes kind clusters, loads images into their nodes.
    Kind,
    /// Installs Chaos Mesh.
    Helm,
    /// Talks to clusters from the Makefile.
    Kubectl,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 4] = [Tool::Docker, Tool::Kind, Tool::Helm, Tool::Kubectl];

    /// The executable's name.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Docker => "docker",
            Tool::Kind => "kind",
            Tool::Helm => "helm",
            Tool::Kubectl => "kubectl",
        }
    }

    /// The exact commands that install the tool on Linux amd64 (with a link for other systems).
    pub fn install_hint(self) -> &'static str {
        match self {
            Tool::Docker => {
                "curl -fsSL https://get.docker.com | sh   (other systems: https://docs.docker.com/engine/install/)"
            }
            Tool::Kind => {
                "curl -Lo kind https://kind.sigs.k8s.io/dl/v0.33.0/kind-linux-amd64 && sudo install -m 0755 kind /usr/local/bin/kind   (other systems: https://kind.sigs.k8s.io/docs/user/quick-start/)"
            }
            Tool::Helm => {
                "curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash   (other systems: https://helm.sh/docs/intro/install/)"
            }
            Tool::Kubectl => {
                "curl -LO https://dl.k8s.io/release/v1.35.8/bin/linux/amd64/kubectl && sudo install -m 0755 kubectl /usr/local/bin/kubectl   (other systems: https://kubernetes.io/docs/tasks/tools/)"
            }
        }
    }

    /// Finds the tool on `PATH`, or explains how to install it.
    pub fn locate(self) -> anyhow::Result<PathBuf> {
        self.locate_in(std::env::var_os("PATH").as_deref())
    }

    /// Finds the tool in the directories of `path` (a `PATH`-style list).
    pub fn locate_in(self, path: Option<&OsStr>) -> anyhow::Result<PathBuf> {
        let found = path
            .into_iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(self.program()))
            .find(|p| is_executable(p));
        match found {
            Some(p) => Ok(p),
            None => bail!(
                "`{}` is not installed (not found on PATH); install it with:\n  {}",
                self.program(),
                self.install_hint()
            ),
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One invocation of a tool: built here, shown in logs and errors, run with [`ToolCommand::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCommand {
    /// The tool.
    pub tool: Tool,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Standard input, if any.
    pub stdin: Option<Vec<u8>>,
}

impl ToolCommand {
    /// A command of `tool` without arguments.
    pub fn new(tool: Tool) -> Self {
        ToolCommand { tool, args: Vec::new(), stdin: None }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The arguments as text (for tests and messages).
    pub fn arg_strings(&self) -> Vec<String> {
        self.args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    /// Runs the command with the tool found on `PATH`; returns its standard output.
    pub async fn run(&self) -> anyhow::Result<String> {
        self.run_with(&self.tool.locate()?).await
    }

    /// Runs the command with the executable `program`; returns its standard output.
    pub async fn run_with(&self, program: &Path) -> anyhow::Result<String> {
        tracing::info!(command = %self, "running");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting `{self}`"))?;
        if let (Some(input), Some(mut pipe)) = (&self.stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            pipe.write_all(input).await.with_context(|| format!("writing the input of `{self}`"))?;
        }
        let out = child.wait_with_output().await.with_context(|| format!("waiting for `{self}`"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            bail!("`{self}` failed ({}):\n{}", out.status, tail(&stderr, 20));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs the command synchronously (for `Drop`, where no runtime may be available);
    /// failures are logged, not returned.
    pub fn run_blocking(&self) -> bool {
        let Ok(program) = self.tool.locate() else { return false };
        tracing::info!(command = %self, "running");
        match std::process::Command::new(program).args(&self.args).stdin(Stdio::null()).output() {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                tracing::warn!(command = %self, stderr = %tail(&String::from_utf8_lossy(&out.stderr), 5), "failed");
                false
            }
            Err(e) => {
                tracing::warn!(command = %self, error = %e, "could not run");
                false
            }
        }
    }
}

impl fmt::Display for ToolCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tool.program())?;
        for a in &self.args {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                write!(f, " '{}'", a.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hadrill-tools-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    #[test]
    fn a_missing_tool_names_the_exact_install_command() {
        let empty = temp_dir("empty");
        for tool in Tool::ALL {
            let err = tool.locate_in(Some(empty.as_os_str())).expect_err("nothing on this PATH").to_string();
            assert!(err.contains(&format!("`{}` is not installed", tool.program())), "{err}");
            assert!(err.contains(tool.install_hint()), "{err}");
        }
        assert!(Tool::Kind.install_hint().contains(KIND_VERSION));
        assert!(Tool::Kubectl.install_hint().contains(KUBECTL_VERSION));
        std::fs::remove_dir_all(&empty).ok();
    }

    #[test]
    fn a_tool_is_found_on_the_path_only_when_executable() {
        let dir = temp_dir("path");
        std::fs::write(dir.join("helm"), "not executable").expect("write");
        let path = std::env::join_paths([dir.clone()]).expect("path");
        assert!(Tool::Helm.locate_in(Some(&path)).is_err());
        let helm = script(&dir, "helm", "exit 0");
        assert_eq!(Tool::Helm.locate_in(Some(&path)).expect("found"), helm);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn output_input_and_failures_are_reported() {
        let dir = temp_dir("run");
        let echo = script(&dir, "kind", r#"echo "args: $*"; cat; echo "bad news" >&2; test "$1" = ok"#);
        let ok = ToolCommand::new(Tool::Kind).args(["ok", "two words"]);
        let out = ok.clone().arg("x").run_with(&echo).await.expect("succeeds");
        assert!(out.starts_with("args: ok two words x"), "{out}");
        let mut with_input = ok.clone();
        with_input.stdin = Some(b"from stdin".to_vec());
        assert!(with_input.run_with(&echo).await.expect("succeeds").contains("from stdin"));
        let err = ToolCommand::new(Tool::Kind).arg("nope").run_with(&echo).await.expect_err("fails").to_string();
        assert!(err.contains("`kind nope` failed") && err.contains("bad news"), "{err}");
        assert_eq!(ok.to_string(), "kind ok 'two words'");
        std::fs::remove_dir_all(&dir).ok();
    }
}
