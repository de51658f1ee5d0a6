//! Checking a fault's effect independently of what Chaos Mesh reports.
//!
//! `AllInjected=True` only says the controller did its part (for pod-kill: the DELETE was
//! issued). These helpers look at the cluster or the network themselves.
//!
//! - [`await_pod_gone`] (cluster-agnostic): the selected pod's uid is gone — deleted, or replaced
//!   by a pod of the same name (StatefulSet).
//! - [`Reachability`]: can the harness open a TCP connection to a pod? On the embedded cluster
//!   pods listen on loopback addresses (`127.(10+node).x.y`) the harness reaches directly, so
//!   [`LoopbackProbe`] connects from the harness process. On kind the pod network is inside the
//!   node containers: a probe there must run in the cluster (e.g. a probe pod or `kubectl exec`),
//!   which is not implemented yet — implement the trait for it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::wait::{await_condition, conditions};

/// Waits until no pod `namespace/name` with `uid` exists; returns how long that took.
pub async fn await_pod_gone(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match tokio::time::timeout(timeout, await_condition(api, name, conditions::is_deleted(uid))).await {
        Ok(Ok(_)) => Ok(t0.elapsed()),
        Ok(Err(e)) => bail!("watching pod {namespace}/{name}: {e}"),
        Err(_) => bail!("pod {namespace}/{name} (uid {uid}) still exists after {timeout:?}: the pod was not killed"),
    }
}

/// The outcome of one connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The connection was accepted.
    Connected,
    /// Refused (RST): the address answers, nothing listens on the port.
    Refused,
    /// No answer in time: what dropped packets look like.
    TimedOut,
    /// Any other failure.
    Failed(String),
}

impl Reach {
    /// Whether the connection was accepted.
    pub fn connected(&self) -> bool {
        *self == Reach::Connected
    }
}

/// Opens TCP connections to a pod the way the cluster's network allows.
pub trait Reachability {
    /// One attempt to connect to `pod`'s IP (`status.podIP`) on `port` within `timeout`.
    fn connect(&self, pod: &Pod, port: u16, timeout: Duration) -> impl Future<Output = anyhow::Result<Reach>> + Send;
}

/// Connects from the harness process: right for the embedded cluster, whose pod IPs are
/// loopback addresses on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackProbe;

impl LoopbackProbe {
    /// One attempt to connect to `addr`.
    pub async fn connect_addr(addr: SocketAddr, timeout: Duration) -> Reach {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Reach::Connected,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Reach::TimedOut,
            Ok(Err(e)) => Reach::Failed(e.to_string()),
            Err(_) => Reach::TimedOut,
        }
    }
}

impl Reachability for LoopbackProbe {
    async fn connect(&self, pod: &Pod, port: u16, timeout: Duration) -> anyhow::Result<Reach> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .with_context(|| format!("pod {name} has no status.podIP"))?;
        let ip: std::net::IpAddr = ip.parse().with_context(|| format!("pod {name}: status.podIP `{ip}`"))?;
        if !ip.is_loopback() {
            bail!(
                "pod {name} has IP {ip}, not a loopback address: the harness cannot reach it directly \
                 (on kind, probe from inside the cluster)"
            );
        }
        Ok(Self::connect_addr(SocketAddr::new(ip, port), timeout).await)
    }
}

/// Tries to connect every `interval` until an attempt fails (returns it) or `deadline` passes.
/// Polling is the only way: nothing in the API reports a packet drop.
pub async fn await_unreachable<R: Reachability>(
    probe: &R,
    pod: &Pod,
    port: u16,
    attempt_timeout: Duration,
    interval: Duration,
    deadline: Duration,
) -> anyhow::Result<Reach> {
    let end = Instant::now() + deadline;
    loop {
        let reach = probe.connect(pod, port, attempt_timeout).await?;
        if !reach.connected() {
            return Ok(reach);
        }
        if Instant::now() >= end {
            bail!("still reachable on port {port} after {deadline:?}: the network fault has no effect");
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_probe_tells_connected_from_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(LoopbackProbe::connect_addr(addr, Duration::from_secs(2)).await, Reach::Connected);
        drop(listener);
        let refused = LoopbackProbe::connect_addr(addr, Duration::from_secs(2)).await;
        assert_eq!(refused, Reach::Refused);

        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "status": {"podIP": "10.0.0.1"}
        }))
        .unwrap();
        let err = LoopbackProbe.connect(&pod, 80, Duration::from_millis(10)).await.unwrap_err();
        assert!(err.to_string().contains("not a loopback"), "{err}");
    }
}
