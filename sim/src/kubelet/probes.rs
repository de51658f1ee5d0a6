//! Container probes, executed for real: `httpGet` (HTTP only: an `HTTPS` probe fails with a
//! message saying so), `tcpSocket` and `exec` (the command runs on the host with the
//! container's environment). `grpc` probes are not supported and fail.
//!
//! Semantics follow the kubelet's probe workers: nothing is probed before `initialDelaySeconds`
//! after the container started; then one probe per `periodSeconds`, each bounded by
//! `timeoutSeconds`; the reported result changes only after `successThreshold` consecutive
//! successes or `failureThreshold` consecutive failures. The result before that is Failure
//! for readiness and startup probes and Success for liveness probes. Every failed attempt is
//! reported (for the `Unhealthy` event). After a liveness or startup failure result the worker
//! stops (the container is killed; its next instance gets new workers).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Probe types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `startupProbe`: gates the other probes; failure restarts the container.
    Startup,
    /// `livenessProbe`: failure restarts the container.
    Liveness,
    /// `readinessProbe`: drives the container's `ready`.
    Readiness,
}

impl ProbeKind {
    /// Field of the container spec.
    pub fn field(self) -> &'static str {
        match self {
            Self::Startup => "startupProbe",
            Self::Liveness => "livenessProbe",
            Self::Readiness => "readinessProbe",
        }
    }

    /// Name used in events (`Liveness probe failed: ...`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        }
    }

    /// The result assumed before the first conclusive probe.
    pub fn initial(self) -> bool {
        self == Self::Liveness
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `httpGet`.
    Http {
        /// `HTTP` or `HTTPS`.
        scheme: String,
        /// Host (default: pod IP).
        host: String,
        /// Port.
        port: u16,
        /// Path with query.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// `tcpSocket`.
    Tcp {
        /// Host (default: pod IP).
        host: String,
        /// Port.
        port: u16,
    },
    /// `exec`.
    Exec {
        /// argv.
        command: Vec<String>,
    },
    /// A probe that cannot run (unsupported handler or unresolvable port); fails with this text.
    Invalid(String),
}

/// A parsed probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// What to run.
    pub action: Action,
    /// `initialDelaySeconds` (default 0).
    pub initial_delay: Duration,
    /// `periodSeconds` (default 10).
    pub period: Duration,
    /// `timeoutSeconds` (default 1).
    pub timeout: Duration,
    /// `successThreshold` (default 1).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3).
    pub failure_threshold: u32,
    /// `terminationGracePeriodSeconds` of the probe, if set.
    pub termination_grace: Option<i64>,
}

fn secs(v: &Value, default: u64) -> Duration {
    Duration::from_secs(v.as_u64().unwrap_or(default))
}

fn threshold(v: &Value, default: u32) -> u32 {
    v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(default).max(1)
}

impl Probe {
    /// Parses the probe `kind` of `container`, or `None` when it has none.
    pub fn parse(kind: ProbeKind, container: &Value, pod_ip: &str) -> Option<Self> {
        let p = &container[kind.field()];
        if !p.is_object() {
            return None;
        }
        let action = if p["httpGet"].is_object() {
            let h = &p["httpGet"];
            match resolve_port(&h["port"], container) {
                Ok(port) => Action::Http {
                    scheme: h["scheme"].as_str().unwrap_or("HTTP").to_string(),
                    host: h["host"].as_str().filter(|s| !s.is_empty()).unwrap_or(pod_ip).to_string(),
                    port,
                    path: match h["path"].as_str() {
                        Some(p) if p.starts_with('/') => p.to_string(),
                        Some(p) => format!("/{p}"),
                        None => "/".to_string(),
                    },
                    headers: h["httpHeaders"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| Some((x["name"].as_str()?.to_string(), x["value"].as_str()?.to_string())))
                        .collect(),
                },
                Err(e) => Action::Invalid(e),
            }
        } else if p["tcpSocket"].is_object() {
            let t = &p["tcpSocket"];
            match resolve_port(&t["port"], container) {
                Ok(port) => Action::Tcp {
                    host: t["host"].as_str().filter(|s| !s.is_empty()).unwrap_or(pod_ip).to_string(),
                    port,
                },
                Err(e) => Action::Invalid(e),
            }
        } else if p["exec"].is_object() {
            let command: Vec<String> = p["exec"]["command"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            if command.is_empty() {
                Action::Invalid("exec probe has no command".into())
            } else {
                Action::Exec { command }
            }
        } else if p["grpc"].is_object() {
            Action::Invalid("gRPC probes are not supported by the embedded kubelet".into())
        } else {
            Action::Invalid("probe has no handler".into())
        };
        Some(Self {
            action,
            initial_delay: secs(&p["initialDelaySeconds"], 0),
            period: secs(&p["periodSeconds"], 10).max(Duration::from_secs(1)),
            timeout: secs(&p["timeoutSeconds"], 1).max(Duration::from_secs(1)),
            success_threshold: threshold(&p["successThreshold"], 1),
            failure_threshold: threshold(&p["failureThreshold"], 3),
            termination_grace: p["terminationGracePeriodSeconds"].as_i64(),
        })
    }
}

/// A numeric port, or a named port of the container.
fn resolve_port(port: &Value, container: &Value) -> Result<u16, String> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).map_err(|_| format!("invalid port number: {n}"));
    }
    let name = port.as_str().unwrap_or_default();
    if let Ok(n) = name.parse::<u16>() {
        return Ok(n);
    }
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("unable to find port {name:?} in container {}", container["name"]))
}

/// What a probe worker reports.
#[derive(Debug, Clone)]
pub enum ProbeEvent {
    /// One attempt failed (text for the `Unhealthy` event).
    Failed(String),
    /// The result changed (after the thresholds).
    Result(bool),
}

/// Runs a probe worker until aborted (or, for liveness/startup, until it reports Failure).
pub async fn worker(
    kind: ProbeKind,
    probe: Probe,
    env: Vec<(String, String)>,
    started: tokio::time::Instant,
    report: impl Fn(ProbeEvent) + Send + 'static,
) {
    tokio::time::sleep_until(started + probe.initial_delay).await;
    let mut current = kind.initial();
    let mut last: Option<bool> = None;
    let mut run = 0u32;
    let mut ticker = tokio::time::interval(probe.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (ok, output) = run_once(&probe.action, probe.timeout, &env).await;
        if !ok {
            report(ProbeEvent::Failed(output));
        }
        if last == Some(ok) {
            run = run.saturating_add(1);
        } else {
            last = Some(ok);
            run = 1;
        }
        let needed = if ok { probe.success_threshold } else { probe.failure_threshold };
        if run < needed {
            continue;
        }
        if ok != current {
            current = ok;
            report(ProbeEvent::Result(ok));
        }
        if !ok && kind != ProbeKind::Readiness {
            return;
        }
        if ok && kind == ProbeKind::Startup {
            return;
        }
    }
}

/// Runs one probe attempt: (success, message).
pub async fn run_once(action: &Action, timeout: Duration, env: &[(String, String)]) -> (bool, String) {
    match action {
        Action::Http { scheme, host, port, path, headers } => {
            let url = format!("{}://{host}:{port}{path}", scheme.to_lowercase());
            if !scheme.eq_ignore_ascii_case("HTTP") {
                return (false, format!("Get \"{url}\": HTTPS probes are not supported by the embedded kubelet"));
            }
            match tokio::time::timeout(timeout, http_get(host, *port, path, headers)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => (true, String::new()),
                Ok(Ok(code)) => (false, format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(e)) => (false, format!("Get \"{url}\": {e}")),
                Err(_) => (
                    false,
                    format!(
                        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    ),
                ),
            }
        }
        Action::Tcp { host, port } => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), *port))).await {
                Ok(Ok(_)) => (true, String::new()),
                Ok(Err(e)) => (false, format!("dial tcp {host}:{port}: connect: {}", io_text(&e))),
                Err(_) => (false, format!("dial tcp {host}:{port}: i/o timeout")),
            }
        }
        Action::Exec { command } => exec(command, timeout, env).await,
        Action::Invalid(msg) => (false, msg.clone()),
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Result<u16, String> {
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: connect: {}", io_text(&e)))?;
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {host}:{port}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.35\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("EOF".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 8192 {
            return Err("malformed HTTP response".into());
        }
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("malformed HTTP response {:?}", line.lines().next().unwrap_or_default()))
}

async fn exec(command: &[String], timeout: Duration, env: &[(String, String)]) -> (bool, String) {
    let Some((program, args)) = command.split_first() else { return (false, "exec probe has no command".into()) };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("exec {program:?}: {e}")),
    };
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.truncate(10 * 1024);
            if out.status.success() {
                (true, text)
            } else if text.trim().is_empty() {
                (false, format!("command {command:?} exited with {}", out.status.code().unwrap_or(-1)))
            } else {
                (false, text)
            }
        }
        Ok(Err(e)) => (false, format!("exec {program:?}: {e}")),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the probe's own process group.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            (false, format!("command {command:?} timed out"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_named_ports_and_defaults() {
        let c = json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "readyz"}}});
        let p = Probe::parse(ProbeKind::Readiness, &c, "127.11.0.2").unwrap();
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.failure_threshold, 3);
        match p.action {
            Action::Http { port, path, host, .. } => {
                assert_eq!((port, path.as_str(), host.as_str()), (8080, "/readyz", "127.11.0.2"))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Probe::parse(ProbeKind::Liveness, &c, "x").is_none());
        let bad = json!({"name": "c", "livenessProbe": {"tcpSocket": {"port": "nope"}}});
        assert!(matches!(Probe::parse(ProbeKind::Liveness, &bad, "x").unwrap().action, Action::Invalid(_)));
    }

    #[tokio::test]
    async fn exec_and_tcp_attempts() {
        let path = vec![("PATH".to_string(), std::env::var("PATH").unwrap_or_default())];
        let ok = run_once(&Action::Exec { command: vec!["true".into()] }, Duration::from_secs(5), &path).await;
        assert!(ok.0);
        let bad = run_once(&Action::Exec { command: vec!["false".into()] }, Duration::from_secs(5), &path).await;
        assert!(!bad.0);
        let refused = run_once(&Action::Tcp { host: "127.0.0.1".into(), port: 1 }, Duration::from_secs(1), &path).await;
        assert!(!refused.0 && refused.1.contains("connection refused"), "{refused:?}");
    }
}
