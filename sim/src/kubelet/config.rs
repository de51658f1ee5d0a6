//! Settings of the embedded kubelets. Every duration is configurable; `Default` gives the
//! Kubernetes v1.35 defaults (sources in the field docs), tests use short values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::images::ImageMap;

/// Returns the kubeconfig path a container of ServiceAccount `(namespace, name)` should get in
/// `KUBECONFIG`, or `None` for the default (a kubeconfig with the ServiceAccount's token).
pub type KubeconfigHook = Arc<dyn Fn(&str, &str) -> Option<PathBuf> + Send + Sync>;

/// Settings shared by every kubelet of a cluster.
#[derive(Clone)]
pub struct KubeletConfig {
    /// Whether nodes get a kubelet. Off, nodes are registered without an agent and a test
    /// plays the kubelet through the API (node status, Leases, pod status). Default on.
    pub enabled: bool,
    /// Image → executable; images not in the map run as virtual (process-less) containers.
    pub images: ImageMap,
    /// Node Lease `leaseDurationSeconds`. Default 40 (kubelet `nodeLeaseDurationSeconds`).
    pub lease_duration_seconds: i32,
    /// Interval between Lease renewals. Default 10 s (the kubelet renews every 25% of the
    /// lease duration: `NodeLeaseRenewIntervalFraction` 0.25 × 40 s).
    pub lease_renew_interval: Duration,
    /// How often the kubelet computes node status and posts it when it changed. Default 10 s
    /// (kubelet `nodeStatusUpdateFrequency`).
    pub node_status_update_frequency: Duration,
    /// Node status is posted at least this often even when unchanged. Default 5 min (kubelet
    /// `nodeStatusReportFrequency`).
    pub node_status_report_frequency: Duration,
    /// Node `capacity` (= `allocatable`). Default cpu "4", memory "8Gi", pods "110",
    /// ephemeral-storage "100Gi" (110 pods is the kubelet's `maxPods` default).
    pub capacity: BTreeMap<String, String>,
    /// First crash-loop back-off. Default 10 s (kubelet `initialBackOff`, pkg/kubelet).
    pub backoff_initial: Duration,
    /// Back-off cap. Default 300 s (kubelet `MaxContainerBackOff`).
    pub backoff_max: Duration,
    /// A container that ran this long without a back-off update starts over at
    /// `backoff_initial`. Default 600 s (2 × `backoff_max`, client-go flowcontrol's expiry).
    pub backoff_reset: Duration,
    /// Bytes of log kept per container instance (oldest lines dropped). Default 2 MiB.
    pub log_limit_bytes: usize,
    /// Time allowed for processes to be reaped in [`crate::Sim::stop`]. Default 5 s.
    pub shutdown_timeout: Duration,
    /// Address of the API server for `KUBERNETES_SERVICE_HOST/PORT` and the default
    /// kubeconfig; [`crate::Sim::start`] fills it in.
    pub api_server: Option<SocketAddr>,
    /// Per-ServiceAccount kubeconfig paths for `KUBECONFIG`; `None` (or a hook answering
    /// `None`) means a kubeconfig with the ServiceAccount's token, written to the run
    /// directory, so pods are authorized by RBAC as on a real cluster.
    pub kubeconfig_for: Option<KubeconfigHook>,
    /// Directory for per-run files (ServiceAccount kubeconfigs, container working directories).
    /// Default: a fresh directory under the system temp dir, removed on stop.
    pub run_dir: Option<PathBuf>,
    /// Name of the cluster (for the default kubeconfig).
    pub cluster_name: String,
    /// Image of Chaos Mesh pod-failure's "pause" containers. A container switched to it runs
    /// a process that serves nothing ([`super::images::pause_entry`]) whatever its `command`
    /// and `args`, as the real pause image's entrypoint would. `None` (the default) treats it
    /// like any other image; [`crate::Sim::start`] sets it from `ChaosConfig::pause_image`.
    pub pause_image: Option<String>,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            images: ImageMap::default(),
            lease_duration_seconds: 40,
            lease_renew_interval: Duration::from_secs(10),
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            capacity: [("cpu", "4"), ("memory", "8Gi"), ("pods", "110"), ("ephemeral-storage", "100Gi")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(600),
            log_limit_bytes: 2 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(5),
            api_server: None,
            kubeconfig_for: None,
            run_dir: None,
            cluster_name: "hadrill".into(),
            pause_image: None,
        }
    }
}

impl KubeletConfig {
    /// Short timings for tests: lease renewed every 200 ms, node status checked every 200 ms,
    /// crash-loop back-off 1 s doubling to 4 s.
    pub fn fast() -> Self {
        Self {
            lease_renew_interval: Duration::from_millis(200),
            node_status_update_frequency: Duration::from_millis(200),
            node_status_report_frequency: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(4),
            backoff_reset: Duration::from_secs(8),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for KubeletConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletConfig")
            .field("images", &self.images.len())
            .field("lease_duration_seconds", &self.lease_duration_seconds)
            .field("lease_renew_interval", &self.lease_renew_interval)
            .field("node_status_update_frequency", &self.node_status_update_frequency)
            .field("node_status_report_frequency", &self.node_status_report_frequency)
            .field("capacity", &self.capacity)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("backoff_reset", &self.backoff_reset)
            .field("log_limit_bytes", &self.log_limit_bytes)
            .field("api_server", &self.api_server)
            .field("kubeconfig_for", &self.kubeconfig_for.is_some())
            .field("run_dir", &self.run_dir)
            .finish()
    }
}
