//! Command-line flags (each with an environment variable fallback) and their translation into
//! [`Settings`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::Settings;
use crate::annotations::{Failback, Policy};
use crate::health::Checks;
use crate::leader::LeaderSettings;
use crate::probe::ProbeSettings;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// hadrill's reference failover controller: keeps each HA Service's selector on a healthy
/// workload (primary or standby). Logs are filtered with RUST_LOG (default `info`).
#[derive(Debug, Clone, Parser)]
#[command(name = "hadrill-controller", version, about, long_about = None)]
pub struct Args {
    /// Namespaces to watch, comma-separated; all when empty.
    #[arg(long, env = "HADRILL_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Identity in the leader election and events (default: $POD_NAME, else $HOSTNAME).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// White-box health: pod and node status.
    #[arg(long, env = "HADRILL_WHITE_BOX", default_value_t = true, action = ArgAction::Set)]
    pub white_box: bool,
    /// Black-box health: the controller's own HTTP probes of the pods.
    #[arg(long, env = "HADRILL_BLACK_BOX", default_value_t = true, action = ArgAction::Set)]
    pub black_box: bool,
    /// Time between two black-box probe rounds.
    #[arg(long, env = "HADRILL_PROBE_PERIOD", default_value = "1s", value_parser = duration)]
    pub probe_period: Duration,
    /// Timeout of one black-box probe.
    #[arg(long, env = "HADRILL_PROBE_TIMEOUT", default_value = "1s", value_parser = duration)]
    pub probe_timeout: Duration,
    /// Consecutive probe failures after which a pod is unhealthy.
    #[arg(long, env = "HADRILL_PROBE_FAILURE_THRESHOLD", default_value_t = 3)]
    pub probe_failure_threshold: u32,
    /// Probe path for pods without an HTTP readiness probe.
    #[arg(long, env = "HADRILL_PROBE_PATH")]
    pub probe_path: Option<String>,
    /// Probe port for pods without an HTTP readiness probe.
    #[arg(long, env = "HADRILL_PROBE_PORT")]
    pub probe_port: Option<u16>,
    /// Window in which container restarts make a pod unhealthy.
    #[arg(long, env = "HADRILL_RESTART_WINDOW", default_value = "2m", value_parser = duration)]
    pub restart_window: Duration,
    /// Restarts within the window that make a pod unhealthy.
    #[arg(long, env = "HADRILL_RESTART_THRESHOLD", default_value_t = 1)]
    pub restart_threshold: u32,
    /// Minimum time between two automatic switches of a Service (annotation `dwell` overrides).
    #[arg(long, env = "HADRILL_DWELL", default_value = "30s", value_parser = duration)]
    pub dwell: Duration,
    /// Failback policy (annotation `failback` overrides).
    #[arg(long, env = "HADRILL_FAILBACK", value_enum, default_value_t = Failback::Manual)]
    pub failback: Failback,
    /// How long the primary must be healthy before an automatic failback (annotation
    /// `failback-after` overrides).
    #[arg(long, env = "HADRILL_FAILBACK_AFTER", default_value = "1m", value_parser = duration)]
    pub failback_after: Duration,
    /// Elect a leader among replicas with a Lease (only the leader acts).
    #[arg(long, env = "HADRILL_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "HADRILL_LEASE_NAME", default_value = "hadrill-controller")]
    pub lease_name: String,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "hadrill-system")]
    pub lease_namespace: String,
    /// Lease validity after each renewal (whole seconds).
    #[arg(long, env = "HADRILL_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// How long before expiry the leader renews (whole seconds).
    #[arg(long, env = "HADRILL_LEASE_GRACE", default_value = "5s", value_parser = duration)]
    pub lease_grace: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "HADRILL_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Periodic re-evaluation of every Service.
    #[arg(long, env = "HADRILL_RESYNC", default_value = "5m", value_parser = duration)]
    pub resync: Duration,
    /// Log format.
    #[arg(long, env = "HADRILL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Args {
    /// The settings these flags describe.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let identity = self
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("hadrill-controller-{}", std::process::id()));
        let leader = self.leader_elect.then(|| LeaderSettings {
            lease_name: self.lease_name.clone(),
            lease_namespace: self.lease_namespace.clone(),
            duration: self.lease_duration,
            grace: self.lease_grace,
        });
        if let Some(l) = &leader {
            l.validate()?;
        }
        if !self.white_box && !self.black_box {
            anyhow::bail!("at least one of --white-box and --black-box must be on");
        }
        Ok(Settings {
            identity,
            namespaces: self.namespaces.iter().filter(|n| !n.is_empty()).cloned().collect(),
            checks: Checks {
                white_box: self.white_box,
                black_box: self.black_box,
                restart_threshold: self.restart_threshold.max(1),
                restart_window: self.restart_window,
            },
            probe: ProbeSettings {
                period: self.probe_period,
                timeout: self.probe_timeout,
                failure_threshold: self.probe_failure_threshold.max(1),
                default_path: self.probe_path.clone(),
                default_port: self.probe_port,
            },
            policy: Policy { dwell: self.dwell, failback: self.failback, failback_after: self.failback_after },
            leader,
            listen: Some(self.listen),
            resync: self.resync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_settings() {
        let args = Args::try_parse_from([
            "hadrill-controller",
            "--namespaces=a,b",
            "--identity=pod-1",
            "--black-box=false",
            "--dwell=5s",
            "--failback=auto",
            "--lease-duration=4s",
            "--lease-grace=1s",
            "--log-format=json",
        ])
        .expect("parses");
        let s = args.settings().expect("valid");
        assert_eq!(s.namespaces, ["a", "b"]);
        assert_eq!(s.identity, "pod-1");
        assert!(s.checks.white_box && !s.checks.black_box);
        assert_eq!(s.policy.dwell, Duration::from_secs(5));
        assert_eq!(s.policy.failback, Failback::Auto);
        assert_eq!(s.leader.map(|l| l.duration), Some(Duration::from_secs(4)));
        assert_eq!(args.log_format, LogFormat::Json);
        let bad = Args::try_parse_from(["x", "--white-box=false", "--black-box=false"]).expect("parses");
        assert!(bad.settings().is_err());
    }
}
