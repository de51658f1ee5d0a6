//! Recording stand-ins for docker, kind, helm and kubectl: small shell scripts, first on PATH,
//! that append their command line to a log and answer what their callers need. kind keeps a
//! list of its clusters and writes the kubeconfig of a real API server (the test's embedded
//! cluster) where `create cluster` / `export kubeconfig` are told to.
//!
//! A test steers them with files in the scratch directory: `fail` holds a command-line prefix
//! whose command exits 1, `block` one whose command marks `blocked` and then waits (for a
//! signal). The mark is a redirection (no child process between the mark and the sleep).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A scratch directory with the stand-ins in `bin/`, removed on drop.
pub struct StandIns {
    /// The scratch directory.
    pub dir: PathBuf,
}

/// The part every stand-in shares: log the command line, then fail or block when told to.
const PROLOGUE: &str = r#"#!/bin/sh
dir='@DIR@'
line='@TOOL@'
for a in "$@"; do line="$line $a"; done
printf '%s\n' "$line" >> "$dir/commands.log"
matches() { [ -s "$dir/$1" ] && case "$line" in "$(cat "$dir/$1")"*) true;; *) false;; esac; }
if matches fail; then echo "@TOOL@ (stand-in): failing as told: $line" >&2; exit 1; fi
if matches block; then : > "$dir/blocked"; exec sleep 600; fi
name=hadrill; kubeconfig=; prev=
for a in "$@"; do
  case "$prev" in --name) name=$a;; --kubeconfig) kubeconfig=$a;; esac
  prev=$a
done
"#;

/// kind: `get clusters` lists the clusters created here (kind's message when there is none),
/// `create cluster` and `export kubeconfig` write the API server's kubeconfig, `delete
/// cluster` forgets the cluster (nothing to do when it is gone, as kind).
const KIND: &str = r#"case "$1 $2" in
  "get clusters")
    if [ -s "$dir/clusters" ]; then cat "$dir/clusters"; else echo "No kind clusters found." >&2; fi ;;
  "create cluster")
    cp "$dir/api.kubeconfig" "$kubeconfig" && echo "$name" >> "$dir/clusters" ;;
  "export kubeconfig")
    cp "$dir/api.kubeconfig" "$kubeconfig" ;;
  "delete cluster")
    touch "$dir/clusters"; grep -vx "$name" "$dir/clusters" > "$dir/clusters.new"; mv "$dir/clusters.new" "$dir/clusters" ;;
esac
exit 0
"#;

impl StandIns {
    /// Writes the four stand-ins, and `api` (a kubeconfig) for kind to hand out.
    pub fn new(name: &str, api: Option<&Path>) -> Self {
        let dir = std::env::temp_dir().join(format!("hadrill-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("bin")).expect("scratch dir");
        let s = StandIns { dir };
        for (tool, body) in [("docker", "exit 0\n"), ("kind", KIND), ("helm", "exit 0\n"), ("kubectl", "exit 0\n")] {
            s.script(tool, body);
        }
        if let Some(api) = api {
            std::fs::copy(api, s.dir.join("api.kubeconfig")).expect("copy the kubeconfig");
        }
        s
    }

    /// Adds a stand-in `tool` (logged like the others) running `body` after the prologue.
    pub fn script(&self, tool: &str, body: &str) {
        let path = self.bin().join(tool);
        let text = PROLOGUE.replace("@DIR@", &self.dir.to_string_lossy()).replace("@TOOL@", tool) + body;
        std::fs::write(&path, text).expect("write stand-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// The directory to put first on PATH.
    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// PATH: the stand-ins, then the system's shell utilities (no real docker, kind, helm or
    /// kubectl is reached: the stand-ins come first).
    pub fn path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin().display())
    }

    /// The command whose line starts with `prefix` exits 1.
    pub fn fail(&self, prefix: &str) {
        std::fs::write(self.dir.join("fail"), prefix).expect("write fail");
    }

    /// The command whose line starts with `prefix` waits until it is killed.
    pub fn block(&self, prefix: &str) {
        std::fs::write(self.dir.join("block"), prefix).expect("write block");
    }

    /// Marks the cluster `name` as existing before the run.
    pub fn existing_cluster(&self, name: &str) {
        std::fs::write(self.dir.join("clusters"), format!("{name}\n")).expect("write clusters");
    }

    /// Waits (at most `limit`) until the blocking command has started.
    pub fn wait_blocked(&self, limit: Duration) {
        let start = Instant::now();
        while !self.dir.join("blocked").exists() {
            assert!(start.elapsed() < limit, "the blocking command did not start within {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The recorded command lines, in order.
    pub fn commands(&self) -> Vec<String> {
        self.log().lines().map(String::from).collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("commands.log")).unwrap_or_default()
    }

    /// The clusters kind knows now.
    pub fn clusters(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("clusters")).unwrap_or_default().lines().map(String::from).collect()
    }
}

impl Drop for StandIns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends SIGINT to `pid` (a negative pid: to the process group).
pub fn interrupt(pid: i64) {
    let status = std::process::Command::new("kill").args(["-INT", "--", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -INT {pid}");
}

/// Asserts that `got` is `want`, line by line, showing both on failure.
pub fn assert_commands(got: &[String], want: &[String]) {
    if got != want {
        let show = |l: &[String]| l.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n");
        panic!("commands differ\n got:\n{}\nwant:\n{}", show(got), show(want));
    }
}
