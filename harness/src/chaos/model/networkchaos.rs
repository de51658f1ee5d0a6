//! `NetworkChaos`: netem faults (delay, loss, duplicate, corrupt), bandwidth limits and partitions.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::impl_chaos_status;
use super::{ChaosCondition, ExperimentStatus, PodSelector, PodSelectorSpec, SelectorMode, string_enum};

string_enum! {
    /// What a NetworkChaos does (`spec.action`).
    pub enum NetworkChaosAction {
        /// Every netem block given (delay, loss, duplicate, corrupt, rate) at once.
        Netem = "netem",
        /// Add latency (`spec.delay`).
        Delay = "delay",
        /// Drop packets (`spec.loss`).
        Loss = "loss",
        /// Duplicate packets (`spec.duplicate`).
        Duplicate = "duplicate",
        /// Corrupt packets (`spec.corrupt`).
        Corrupt = "corrupt",
        /// Drop all traffic with iptables (to the target, or everything without one).
        Partition = "partition",
        /// Limit bandwidth (`spec.bandwidth`).
        Bandwidth = "bandwidth",
    }
}

string_enum! {
    /// Traffic direction relative to the selected pods (`spec.direction`).
    pub enum Direction {
        /// From the selected pods to the target (the default).
        To = "to",
        /// From the target to the selected pods.
        From = "from",
        /// Both ways.
        Both = "both",
    }
}

/// The regex Chaos Mesh's schema puts on `delay.latency` and `delay.jitter`.
pub const LATENCY_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$";

/// Spec of a `chaos-mesh.org/v1alpha1` NetworkChaos.
///
/// [`crate::chaos::crd`] has its CRD (use that, not `CustomResourceExt::crd`, which adds a
/// status subresource Chaos Mesh does not have).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "chaos-mesh.org",
    version = "v1alpha1",
    kind = "NetworkChaos",
    singular = "networkchaos",
    plural = "networkchaos",
    namespaced,
    status = "NetworkChaosStatus",
    derive = "PartialEq",
    doc = "NetworkChaos injects network faults into the selected pods."
)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "What the network chaos does, to which pods and toward which peers.")]
pub struct NetworkChaosSpec {
    /// netem, delay, loss, duplicate, corrupt, partition or bandwidth.
    pub action: NetworkChaosAction,
    /// How many of the selected pods are affected.
    pub mode: SelectorMode,
    /// Count or percentage for the fixed and percent modes, as a string (`"2"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The pods to consider.
    pub selector: PodSelectorSpec,
    /// Go duration after creation when the fault is recovered; forever when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// to (default), from or both; from and both need a target (except for partition).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "to"))]
    pub direction: Option<Direction>,
    /// The peer pods, with their own mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<PodSelector>,
    /// IPs, CIDRs or domain names outside the cluster; only with direction to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_targets: Option<Vec<String>>,
    /// Interface on the selected pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Interface on the target pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_device: Option<String>,
    /// Latency for delay (and netem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelaySpec>,
    /// Packet loss for loss (and netem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossSpec>,
    /// Duplication for duplicate (and netem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<DuplicateSpec>,
    /// Corruption for corrupt (and netem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<CorruptSpec>,
    /// Rate limit for netem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSpec>,
    /// Token bucket for bandwidth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthSpec>,
    /// Remote cluster to run in (not supported by hadrill; leave unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
}

/// `spec.delay`: latency, jitter and reordering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelaySpec {
    /// Latency such as `100ms` (a number and one unit: ns, us, ms, s, m, h).
    #[schemars(pattern(r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$"))]
    pub latency: String,
    /// Jitter, same format as latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$"))]
    pub jitter: Option<String>,
    /// Correlation with the previous packet, percent as a string (`"25"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// Reordering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reorder: Option<ReorderSpec>,
}

/// `spec.delay.reorder`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReorderSpec {
    /// Percentage of packets sent at once, as a string.
    pub reorder: String,
    /// Correlation, percent as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// Reorder every gap-th packet.
    #[schemars(transform = super::plain_integer)]
    pub gap: i64,
}

/// `spec.loss`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LossSpec {
    /// Loss percentage as a string without `%` (`"25"`).
    pub loss: String,
    /// Correlation, percent as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// `spec.duplicate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DuplicateSpec {
    /// Duplication percentage as a string without `%`.
    pub duplicate: String,
    /// Correlation, percent as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// `spec.corrupt`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorruptSpec {
    /// Corruption percentage as a string without `%`.
    pub corrupt: String,
    /// Correlation, percent as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// `spec.rate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateSpec {
    /// Rate such as `1mbps` (units bps, kbps, mbps, gbps, tbps).
    pub rate: String,
}

/// `spec.bandwidth`: a token bucket filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthSpec {
    /// Rate such as `1mbps` (units bps, kbps, mbps, gbps, tbps).
    pub rate: String,
    /// Bytes that can be queued.
    #[schemars(range(min = 1))]
    pub limit: i32,
    /// Bucket size in bytes.
    #[schemars(range(min = 1))]
    pub buffer: i32,
    /// Maximum depletion rate of the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub peakrate: Option<i64>,
    /// Size of the peakrate bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub minburst: Option<i32>,
}

/// Status of a NetworkChaos, written by the controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "The state of the experiment, written by the controller.")]
pub struct NetworkChaosStatus {
    /// Global conditions, in random order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ChaosCondition>>,
    /// The experiment state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub experiment: Option<ExperimentStatus>,
    /// PodNetworkChaos generation per record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<BTreeMap<String, i64>>,
}

impl_chaos_status!(NetworkChaosStatus);

impl NetworkChaosSpec {
    /// The direction, `to` when unset (as the mutating webhook defaults it).
    pub fn direction_or_default(&self) -> Direction {
        self.direction.unwrap_or(Direction::To)
    }
}

impl PodSelector {
    /// A target of every pod `selector` matches.
    pub fn all(selector: PodSelectorSpec) -> Self {
        Self { selector, mode: SelectorMode::All, value: None }
    }
}
