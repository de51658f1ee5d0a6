//! `hadrill sim up` as a process of its own, for the tests that reach the embedded cluster
//! from outside as users do.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Starts `hadrill sim up --nodes N --kubeconfig PATH` and returns it with its banner, once the
/// banner says the cluster is ready. Its output keeps being read (so it never blocks on a full
/// pipe); it is killed when the returned child is dropped.
pub async fn sim_up(kubeconfig: &Path, nodes: usize) -> (tokio::process::Child, String) {
    let mut up = tokio::process::Command::new(env!("CARGO_BIN_EXE_hadrill"))
        .args(["sim", "up", "--nodes", &nodes.to_string(), "--kubeconfig"])
        .arg(kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("hadrill sim up starts");
    let mut lines = BufReader::new(up.stdout.take().expect("stdout")).lines();
    let mut banner = Vec::new();
    // Building missing images on first use can take a while; the banner ends the wait.
    tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let done = line.contains("press Ctrl-C");
            banner.push(line);
            if done {
                return;
            }
        }
        panic!("hadrill sim up ended early: {banner:?}");
    })
    .await
    .expect("hadrill sim up prints its banner");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (up, banner.join("\n"))
}
