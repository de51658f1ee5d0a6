//! Shared helpers for the embedded-cluster integration tests.
#![allow(dead_code)]

pub mod kubectl;

use std::time::Duration;

use serde_json::Value;
use sim::controllers::node_lifecycle::NodeLifecycleConfig;
use sim::kubelet::{ImageEntry, ImageMap, KubeletConfig};
use sim::{Sim, SimConfig};

/// The test server binary, run as the image `hadrill/test-server`.
pub const SERVER: &str = env!("CARGO_BIN_EXE_hadrill-test-server");

/// Starts an embedded cluster with `nodes` nodes.
pub async fn start(nodes: usize) -> Sim {
    start_with(SimConfig { nodes, ..Default::default() }).await
}

/// Starts an embedded cluster whose nodes get no kubelet: the test plays it, writing pod
/// status (phase, readiness) itself, so the workload controllers see exactly that.
pub async fn start_without_kubelets(nodes: usize) -> Sim {
    let mut config = SimConfig { nodes, ..Default::default() };
    config.kubelet.enabled = false;
    start_with(config).await
}

/// A cluster of `nodes` nodes running `hadrill/test-server` images as processes, with fast
/// kubelet timings and a 2 s node-monitor grace.
pub fn process_config(nodes: usize) -> SimConfig {
    let images = ImageMap::new();
    images.insert("hadrill/test-server", ImageEntry::new(SERVER));
    let mut config =
        SimConfig { nodes, kubelet: KubeletConfig { images, ..KubeletConfig::fast() }, ..Default::default() };
    config.node_lifecycle = NodeLifecycleConfig {
        monitor_period: Duration::from_millis(100),
        grace_period: Duration::from_secs(2),
        startup_grace_period: Duration::from_secs(2),
        ..Default::default()
    };
    config
}

/// Starts an embedded cluster with a custom configuration.
pub async fn start_with(config: SimConfig) -> Sim {
    Sim::start(config).await.expect("embedded cluster starts")
}

/// A raw HTTP client for requests kube-rs cannot make (malformed bodies, odd content types).
pub struct Raw {
    base: String,
    token: String,
    http: reqwest_like::Client,
}

/// Minimal HTTP/1.1 client on tokio (the sim crate has no HTTP client dependency of its own).
pub mod reqwest_like {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A response: status code, headers, body.
    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Response {
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.body))
        }
        pub fn header(&self, name: &str) -> Vec<&str> {
            self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
        }
    }

    #[derive(Debug, Clone, Default)]
    pub struct Client;

    impl Client {
        pub async fn send(
            &self,
            addr: &str,
            token: &str,
            method: &str,
            path: &str,
            content_type: &str,
            body: &[u8],
        ) -> Response {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let auth = if token.is_empty() { String::new() } else { format!("Authorization: Bearer {token}\r\n") };
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {content_type}\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.expect("write");
            s.write_all(body).await.expect("write body");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.expect("read");
            let text = String::from_utf8_lossy(&buf).to_string();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let mut lines = head.lines();
            let status =
                lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect();
            let chunked =
                headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
            let body = if chunked { dechunk(body) } else { body.to_string() };
            Response { status, headers, body }
        }
    }

    fn dechunk(mut s: &str) -> String {
        let mut out = String::new();
        while let Some((size, rest)) = s.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || rest.len() < n {
                break;
            }
            out.push_str(&rest[..n]);
            s = rest[n..].trim_start_matches("\r\n");
        }
        out
    }
}

impl Raw {
    pub fn new(sim: &Sim) -> Self {
        Self { base: sim.addr().to_string(), token: sim.admin_token().to_string(), http: reqwest_like::Client }
    }

    /// A raw client sending `token` (empty = no Authorization header).
    pub fn with_token(sim: &Sim, token: &str) -> Self {
        Self { base: sim.addr().to_string(), token: token.to_string(), http: reqwest_like::Client }
    }

    pub async fn get(&self, path: &str) -> reqwest_like::Response {
        self.http.send(&self.base, &self.token, "GET", path, "application/json", b"").await
    }

    pub async fn send(&self, method: &str, path: &str, content_type: &str, body: &str) -> reqwest_like::Response {
        self.http.send(&self.base, &self.token, method, path, content_type, body.as_bytes()).await
    }
}

/// The PodChaos CRD fixture.
pub fn podchaos_crd() -> Value {
    serde_saphyr::from_str(include_str!("../fixtures/podchaos-crd.yaml")).expect("fixture parses")
}

/// Waits (by watch) until the object is gone.
pub async fn await_deleted<K>(api: &kube::Api<K>, name: &str, uid: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let cond = kube::runtime::wait::conditions::is_deleted(uid);
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        kube::runtime::wait::await_condition(api.clone(), name, cond),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} was not deleted within 10 s"))
    .expect("watch for deletion");
}

/// Waits (by watch) until `cond` holds for the named object.
pub async fn await_cond<K, C>(api: &kube::Api<K>, name: &str, what: &str, cond: C) -> Option<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: kube::runtime::wait::Condition<K>,
{
    await_cond_within(api, name, what, std::time::Duration::from_secs(10), cond).await
}

/// [`await_cond`] with a deadline of `within`, for conditions that take longer by design.
pub async fn await_cond_within<K, C>(
    api: &kube::Api<K>,
    name: &str,
    what: &str,
    within: std::time::Duration,
    cond: C,
) -> Option<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    C: kube::runtime::wait::Condition<K>,
{
    tokio::time::timeout(within, kube::runtime::wait::await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("watch")
}
