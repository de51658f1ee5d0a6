//! `StressChaos`: CPU and memory stress inside the selected containers.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::impl_chaos_status;
use super::{ChaosCondition, ExperimentStatus, PodSelectorSpec, SelectorMode};

/// Spec of a `chaos-mesh.org/v1alpha1` StressChaos (it has no `action`).
///
/// [`crate::chaos::crd`] has its CRD (use that, not `CustomResourceExt::crd`, which adds a
/// status subresource Chaos Mesh does not have).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "chaos-mesh.org",
    version = "v1alpha1",
    kind = "StressChaos",
    singular = "stresschaos",
    plural = "stresschaos",
    namespaced,
    status = "StressChaosStatus",
    derive = "PartialEq",
    doc = "StressChaos runs CPU or memory stressors in the selected containers."
)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "Which stressors run, in which containers of which pods.")]
pub struct StressChaosSpec {
    /// How many of the selected pods are affected.
    pub mode: SelectorMode,
    /// Count or percentage for the fixed and percent modes, as a string (`"2"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The pods to consider.
    pub selector: PodSelectorSpec,
    /// Containers to stress; the first container when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_names: Option<Vec<String>>,
    /// CPU and/or memory stressors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stressors: Option<Stressors>,
    /// Raw stress-ng options; wins over `stressors` when both are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stressng_stressors: Option<String>,
    /// Go duration after creation when the stress stops; forever when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Remote cluster to run in (not supported by hadrill; leave unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
}

/// `spec.stressors`: at least one of cpu and memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stressors {
    /// CPU stressor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStressor>,
    /// Memory stressor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStressor>,
}

/// `spec.stressors.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuStressor {
    /// Number of workers, 1 to 8192.
    #[schemars(range(max = 8192), transform = super::plain_integer)]
    pub workers: i64,
    /// Load per worker in percent, 0 to 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100), transform = super::plain_integer)]
    pub load: Option<i64>,
    /// Extra stress-ng options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
}

/// `spec.stressors.memory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStressor {
    /// Number of workers, 1 to 8192.
    #[schemars(range(max = 8192), transform = super::plain_integer)]
    pub workers: i64,
    /// Bytes per worker: `256MB`, `1GiB` (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB) or a percentage of memory (`25%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// oom_score_adj of the stress process, -1000 to 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1000, max = 1000), extend("default" = 0), transform = super::plain_integer)]
    pub oom_score_adj: Option<i64>,
    /// Extra options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
}

/// Status of a StressChaos, written by the controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "The state of the experiment, written by the controller.")]
pub struct StressChaosStatus {
    /// Global conditions, in random order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ChaosCondition>>,
    /// The experiment state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub experiment: Option<ExperimentStatus>,
    /// The stress processes, by record id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<BTreeMap<String, StressInstance>>,
}

impl_chaos_status!(StressChaosStatus);

/// One set of stress processes in a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StressInstance {
    /// stress-ng process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// When stress-ng started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub start_time: Option<String>,
    /// memStress process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_uid: Option<String>,
    /// When memStress started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub memory_start_time: Option<String>,
}
