//! `PodChaos`: kill pods or containers, or make pods fail.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::impl_chaos_status;
use super::{ChaosCondition, ExperimentStatus, PodSelectorSpec, SelectorMode, string_enum};

string_enum! {
    /// What a PodChaos does (`spec.action`).
    pub enum PodChaosAction {
        /// Delete the pods (one-shot; the owner recreates them).
        PodKill = "pod-kill",
        /// Swap every container image for a pause image until recovery.
        PodFailure = "pod-failure",
        /// Kill the containers named in `containerNames` (one-shot).
        ContainerKill = "container-kill",
    }
}

/// Spec of a `chaos-mesh.org/v1alpha1` PodChaos.
///
/// Build one with [`PodChaos::new`]; [`crate::chaos::crd`] has its CRD (use that, not
/// `CustomResourceExt::crd`, which adds a status subresource Chaos Mesh does not have).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "chaos-mesh.org",
    version = "v1alpha1",
    kind = "PodChaos",
    singular = "podchaos",
    plural = "podchaos",
    namespaced,
    status = "PodChaosStatus",
    derive = "PartialEq",
    doc = "PodChaos kills or fails the selected pods or containers."
)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "What the pod chaos does and to which pods.")]
pub struct PodChaosSpec {
    /// pod-kill, pod-failure or container-kill.
    pub action: PodChaosAction,
    /// How many of the selected pods are affected.
    pub mode: SelectorMode,
    /// Count or percentage for the fixed and percent modes, as a string (`"2"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The pods to consider.
    pub selector: PodSelectorSpec,
    /// Containers to affect (required for container-kill); the first container when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_names: Option<Vec<String>>,
    /// Seconds of grace for pod-kill; 0 deletes at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub grace_period: Option<i64>,
    /// Go duration (`30s`, `1m30s`) after creation when the fault is recovered; ignored by the one-shot actions, forever when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Remote cluster to run in (not supported by hadrill; leave unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
}

/// Status of a PodChaos, written by the controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "The state of the experiment, written by the controller.")]
pub struct PodChaosStatus {
    /// Global conditions, in random order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ChaosCondition>>,
    /// The experiment state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub experiment: Option<ExperimentStatus>,
}

impl_chaos_status!(PodChaosStatus);

impl PodChaosAction {
    /// One-shot actions ignore `duration` and pause, and never report `AllRecovered`.
    pub fn is_one_shot(self) -> bool {
        matches!(self, PodChaosAction::PodKill | PodChaosAction::ContainerKill)
    }
}
