//! Faults on real process pods: pod kill (as Chaos Mesh's pod-kill: delete, grace 0), crash
//! loops, freezing a pod's processes (it stops answering, as behind a lost network, while its
//! status stays as it was), slowness, and a node losing its network.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use sim::Sim;
use tokio::task::JoinHandle;

use super::pair::{NS, addr};

/// Deletes pods with grace period 0.
pub async fn kill(client: &Client, pods: &[Pod]) {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    // All at once: one by one, the first replacement could be Ready before the last pod dies,
    // and the side would never be wholly down.
    let deletes = pods.iter().map(|p| {
        let (api, dp) = (&api, &dp);
        async move {
            api.delete(&p.name_any(), dp).await.unwrap_or_else(|e| panic!("killing pod {}: {e}", p.name_any()));
        }
    });
    futures::future::join_all(deletes).await;
}

/// The container processes of a pod: the live processes of the cluster whose environment
/// names the pod (the kubelet sets `POD_NAME` and `POD_NAMESPACE`).
pub fn pids_of(sim: &Sim, namespace: &str, pod: &str) -> Vec<u32> {
    let want = [format!("POD_NAME={pod}"), format!("POD_NAMESPACE={namespace}")];
    sim.kubelets()
        .live_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
                want.iter().all(|w| vars.contains(&w.as_bytes()))
            })
        })
        .collect()
}

/// Sends `signal` to the process group of `pid` (container processes lead their own group).
fn signal_group(pid: u32, signal: i32) {
    let pgid = i32::try_from(pid).expect("pid fits i32");
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses a group.
    let rc = unsafe { libc::kill(-pgid, signal) };
    assert_eq!(rc, 0, "kill(-{pgid}, {signal}): {}", std::io::Error::last_os_error());
}

/// Pods whose processes are stopped (SIGSTOP): they accept no request any more, their
/// status does not change. Dropping it lets them run again (SIGCONT).
pub struct Frozen {
    pids: Vec<u32>,
}

impl Frozen {
    /// Freezes every process of `pods`.
    pub fn pods(sim: &Sim, pods: &[Pod]) -> Frozen {
        let mut pids = Vec::new();
        for p in pods {
            let found = pids_of(sim, NS, &p.name_any());
            assert!(!found.is_empty(), "no process found for pod {}", p.name_any());
            pids.extend(found);
        }
        for pid in &pids {
            signal_group(*pid, libc::SIGSTOP);
        }
        Frozen { pids }
    }

    /// Lets the processes run again.
    pub fn thaw(&self) {
        for pid in &self.pids {
            if sim::kubelet::runtime::pid_alive(*pid) {
                signal_group(*pid, libc::SIGCONT);
            }
        }
    }

    /// Stops the processes again.
    pub fn refreeze(&self) {
        for pid in &self.pids {
            if sim::kubelet::runtime::pid_alive(*pid) {
                signal_group(*pid, libc::SIGSTOP);
            }
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.thaw();
    }
}

/// A node losing its network: its kubelet stops heartbeating (the node goes Ready=Unknown
/// after the node monitor grace) and its pods stop answering.
pub fn lose_network(sim: &Sim, node: &str, pods: &[Pod]) -> Frozen {
    for p in pods {
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(node),
            "{} is not on {node}",
            p.name_any()
        );
    }
    sim.kubelets().node(node).expect("the node's kubelet").set_heartbeat(false);
    Frozen::pods(sim, pods)
}

/// Slows pods down without making them fail: their processes are stopped for `stalled`, then
/// run for `running`, over and over (as CPU throttling does), until dropped.
pub struct Slowed {
    task: JoinHandle<()>,
}

impl Slowed {
    /// Starts the cycle.
    pub fn pods(sim: &Sim, pods: &[Pod], stalled: Duration, running: Duration) -> Slowed {
        let frozen = Frozen::pods(sim, pods);
        frozen.thaw();
        let task = tokio::spawn(async move {
            loop {
                frozen.refreeze();
                tokio::time::sleep(stalled).await;
                frozen.thaw();
                tokio::time::sleep(running).await;
            }
        });
        Slowed { task }
    }
}

impl Drop for Slowed {
    fn drop(&mut self) {
        // Aborting drops the Frozen inside the task, which thaws the processes.
        self.task.abort();
    }
}

/// Makes pods crash over and over: `POST /crash` to each whenever it answers, so that every
/// restart the kubelet makes ends in another crash (CrashLoopBackOff). Stops when dropped.
pub struct CrashLoop {
    task: JoinHandle<()>,
}

impl CrashLoop {
    /// Starts crashing `pods`.
    pub fn pods(pods: &[Pod]) -> CrashLoop {
        let addrs: Vec<SocketAddr> = pods.iter().map(addr).collect();
        let task = tokio::spawn(async move {
            loop {
                for a in &addrs {
                    // Refused while the container is down; the crash ends the connection.
                    let _ = super::http::post(*a, "/crash").await;
                }
                // Nothing to watch for "the restarted process listens": poll.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        CrashLoop { task }
    }
}

impl Drop for CrashLoop {
    fn drop(&mut self) {
        self.task.abort();
    }
}
