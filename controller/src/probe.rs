//! Black-box health: the controller probes pods itself over HTTP, like the kubelet's readiness
//! probe but from the controller's vantage point, so that a pod whose node lost its network is
//! found in `period × threshold` even while its status still says Ready.
//!
//! Target of a pod: its IP, and the first `httpGet` readiness probe among its containers (named
//! ports resolved), overridden by the Service's `probe-path` / `probe-port` annotations, or the
//! controller's `--probe-path` / `--probe-port` when the pod has no HTTP readiness probe. Pods
//! without IP or target are not probed. A 2xx/3xx answer within the timeout is a success.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::annotations::ProbeOverride;
use crate::triggers::Triggers;

/// Prober settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Time between two probe rounds.
    pub period: Duration,
    /// Timeout of one probe (connect + answer).
    pub timeout: Duration,
    /// Consecutive failures after which a pod counts as unhealthy.
    pub failure_threshold: u32,
    /// Path for pods without an HTTP readiness probe (with `default_port`).
    pub default_path: Option<String>,
    /// Port for pods without an HTTP readiness probe.
    pub default_port: Option<u16>,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
            default_path: None,
            default_port: None,
        }
    }
}

/// One probe target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod IP.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// HTTP path.
    pub path: String,
}

impl Target {
    /// `http://IP:PORT/PATH`.
    pub fn url(&self) -> String {
        match self.ip {
            IpAddr::V4(ip) => format!("http://{ip}:{}{}", self.port, self.path),
            IpAddr::V6(ip) => format!("http://[{ip}]:{}{}", self.port, self.path),
        }
    }
}

/// The probe target of a pod, if it has one.
pub fn target_for(pod: &Pod, overrides: &ProbeOverride, settings: &ProbeSettings) -> Option<Target> {
    let ip: IpAddr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let from_probe = containers.iter().find_map(|c| {
        let get = c.readiness_probe.as_ref()?.http_get.as_ref()?;
        if get.scheme.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case("HTTP")) {
            return None;
        }
        let port = match &get.port {
            IntOrString::Int(p) => u16::try_from(*p).ok(),
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }?;
        Some((port, get.path.clone().unwrap_or_else(|| "/".into())))
    });
    let (port, path) = match (overrides.port, from_probe) {
        (Some(port), probe) => (port, probe.map(|(_, path)| path)),
        (None, Some((port, path))) => (port, Some(path)),
        (None, None) => (settings.default_port?, settings.default_path.clone()),
    };
    let path = overrides.path.clone().or(path).unwrap_or_else(|| "/".into());
    Some(Target { namespace: pod.namespace().unwrap_or_default(), pod: pod.name_any(), ip, port, path })
}

#[derive(Debug, Clone, Default)]
struct TargetState {
    consecutive_failures: u32,
    last_error: String,
}

#[derive(Default)]
struct Inner {
    by_service: HashMap<ObjectRef<Service>, Vec<Target>>,
    results: HashMap<Target, TargetState>,
}

/// Probes the registered targets periodically and remembers consecutive failures.
pub struct Prober {
    settings: ProbeSettings,
    inner: Mutex<Inner>,
}

impl Prober {
    /// A prober with nothing to probe yet.
    pub fn new(settings: ProbeSettings) -> Prober {
        Prober { settings, inner: Mutex::default() }
    }

    /// The settings.
    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the pods to probe on behalf of a Service (replacing the previous set).
    pub fn set_targets(&self, service: ObjectRef<Service>, targets: Vec<Target>) {
        let mut inner = self.lock();
        if targets.is_empty() {
            inner.by_service.remove(&service);
        } else {
            inner.by_service.insert(service, targets);
        }
    }

    /// Stops probing on behalf of a Service.
    pub fn remove(&self, service: &ObjectRef<Service>) {
        self.lock().by_service.remove(service);
    }

    /// Failing pods among `targets` (at or past the threshold): pod name → reason.
    pub fn failures<'a>(&self, targets: impl IntoIterator<Item = &'a Target>) -> HashMap<String, String> {
        let inner = self.lock();
        let threshold = self.settings.failure_threshold.max(1);
        targets
            .into_iter()
            .filter_map(|t| {
                let st = inner.results.get(t)?;
                (st.consecutive_failures >= threshold).then(|| {
                    let why = format!("probe {} failed {} times: {}", t.url(), st.consecutive_failures, st.last_error);
                    (t.pod.clone(), why)
                })
            })
            .collect()
    }

    /// Runs probe rounds every period until dropped; Services whose targets crossed the failure
    /// threshold (either way) are sent to `triggers`.
    pub async fn run(self: Arc<Self>, triggers: Triggers) {
        let mut tick = tokio::time::interval(self.settings.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let targets: HashSet<Target> = self.lock().by_service.values().flatten().cloned().collect();
            if targets.is_empty() {
                self.lock().results.clear();
                continue;
            }
            let timeout = self.settings.timeout;
            let outcomes: Vec<(Target, Result<(), String>)> = futures::stream::iter(targets)
                .map(|t| async move {
                    let r = probe(&t, timeout).await;
                    (t, r)
                })
                .buffer_unordered(64)
                .collect()
                .await;
            let changed = self.record(outcomes);
            for svc in changed {
                triggers.send(svc);
            }
        }
    }

    /// Records a round's outcomes; returns the Services whose targets crossed the threshold.
    fn record(&self, outcomes: Vec<(Target, Result<(), String>)>) -> Vec<ObjectRef<Service>> {
        let threshold = self.settings.failure_threshold.max(1);
        let mut inner = self.lock();
        let mut crossed: HashSet<Target> = HashSet::new();
        let probed: HashSet<Target> = outcomes.iter().map(|(t, _)| t.clone()).collect();
        for (target, outcome) in outcomes {
            let st = inner.results.entry(target.clone()).or_default();
            let was_failing = st.consecutive_failures >= threshold;
            match outcome {
                Ok(()) => st.consecutive_failures = 0,
                Err(e) => {
                    st.consecutive_failures = st.consecutive_failures.saturating_add(1);
                    st.last_error = e;
                }
            }
            if was_failing != (st.consecutive_failures >= threshold) {
                crossed.insert(target);
            }
        }
        inner.results.retain(|t, _| probed.contains(t));
        inner
            .by_service
            .iter()
            .filter(|(_, ts)| ts.iter().any(|t| crossed.contains(t)))
            .map(|(svc, _)| svc.clone())
            .collect()
    }
}

/// One HTTP GET; `Ok` on a 2xx/3xx answer within `timeout`.
pub async fn probe(target: &Target, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, get(target)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {}", humantime::format_duration(timeout))),
    }
}

async fn get(target: &Target) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect((target.ip, target.port)).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let host = match target.ip {
        IpAddr::V4(ip) => format!("{ip}:{}", target.port),
        IpAddr::V6(ip) => format!("[{ip}]:{}", target.port),
    };
    let request = hyper::Request::get(target.path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "hadrill-controller-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let mut conn = std::pin::pin!(conn);
    let mut response = std::pin::pin!(sender.send_request(request));
    // Drive the connection and the request together; if the connection ends first (the server
    // answered and closed), the answer is already with the request.
    let response = tokio::select! {
        r = &mut response => r,
        _ = &mut conn => response.await,
    }
    .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() || status.is_redirection() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value, ip: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": containers},
            "status": {"podIP": ip},
        }))
        .expect("pod")
    }

    #[test]
    fn targets_come_from_readiness_probes_then_overrides_then_defaults() {
        let s = ProbeSettings::default();
        let none = ProbeOverride::default();
        let with_probe = pod(
            json!([{"name": "app", "image": "i", "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}}]),
            Some("127.11.0.2"),
        );
        assert_eq!(
            target_for(&with_probe, &none, &s).map(|t| t.url()).as_deref(),
            Some("http://127.11.0.2:8080/ready")
        );
        let o = ProbeOverride { path: Some("/healthz".into()), port: Some(9000) };
        assert_eq!(target_for(&with_probe, &o, &s).map(|t| t.url()).as_deref(), Some("http://127.11.0.2:9000/healthz"));
        let plain = pod(json!([{"name": "app", "image": "i"}]), Some("127.11.0.3"));
        assert_eq!(target_for(&plain, &none, &s), None, "no probe, no default");
        let d = ProbeSettings { default_port: Some(81), default_path: Some("/up".into()), ..ProbeSettings::default() };
        assert_eq!(target_for(&plain, &none, &d).map(|t| t.url()).as_deref(), Some("http://127.11.0.3:81/up"));
        let no_ip = pod(json!([{"name": "app", "image": "i"}]), None);
        assert_eq!(target_for(&no_ip, &o, &d), None);
        let https = pod(
            json!([{"name": "app", "image": "i", "readinessProbe": {"httpGet": {"port": 443, "scheme": "HTTPS"}}}]),
            Some("127.11.0.4"),
        );
        assert_eq!(target_for(&https, &none, &s), None);
    }

    #[test]
    fn failures_count_until_the_threshold() {
        let p = Prober::new(ProbeSettings { failure_threshold: 2, ..ProbeSettings::default() });
        let t =
            Target { namespace: "ns".into(), pod: "p".into(), ip: [127, 0, 0, 1].into(), port: 1, path: "/".into() };
        let svc = ObjectRef::<Service>::new("s").within("ns");
        p.set_targets(svc.clone(), vec![t.clone()]);
        assert!(p.record(vec![(t.clone(), Err("refused".into()))]).is_empty());
        assert!(p.failures([&t]).is_empty());
        assert_eq!(p.record(vec![(t.clone(), Err("refused".into()))]), vec![svc.clone()]);
        assert_eq!(
            p.failures([&t]).get("p").map(String::as_str),
            Some("probe http://127.0.0.1:1/ failed 2 times: refused")
        );
        assert!(p.record(vec![(t.clone(), Err("refused".into()))]).is_empty(), "no new crossing");
        assert_eq!(p.record(vec![(t.clone(), Ok(()))]), vec![svc.clone()], "recovery is a crossing too");
        assert!(p.failures([&t]).is_empty());
        p.remove(&svc);
    }

    #[tokio::test]
    async fn probes_answer_by_status_code() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if head.starts_with("GET /ok ") { "200 OK" } else { "503 Service Unavailable" };
                let _ = s.write_all(format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let t = |path: &str| Target {
            namespace: "ns".into(),
            pod: "p".into(),
            ip: [127, 0, 0, 1].into(),
            port,
            path: path.into(),
        };
        let timeout = Duration::from_secs(2);
        assert_eq!(probe(&t("/ok"), timeout).await, Ok(()));
        assert_eq!(probe(&t("/bad"), timeout).await, Err("HTTP 503".to_string()));
        let closed = Target { port: 1, ..t("/") };
        assert!(probe(&closed, timeout).await.is_err());
    }
}
