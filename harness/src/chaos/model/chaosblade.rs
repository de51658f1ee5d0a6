//! `ChaosBlade` (`chaosblade.io/v1alpha1`, chaosblade-operator 1.7): hadrill's node-level
//! faults. Cluster-scoped; one experiment per object here, `scope: node`, `target: network`,
//! `action: loss`, with its flags as matchers (`names`, `percent`, `interface`, `timeout`).
//! Why ChaosBlade and not Chaos Mesh for this fault: `scenarios/README.md`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of ChaosBlade.
pub const BLADE_GROUP: &str = "chaosblade.io";
/// `apiVersion` of ChaosBlade.
pub const BLADE_API_VERSION: &str = "chaosblade.io/v1alpha1";
/// The operator's finalizer: held until the experiment is destroyed on the node.
pub const BLADE_FINALIZER: &str = "finalizer.chaosblade.io";

/// Spec of a `chaosblade.io/v1alpha1` ChaosBlade.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "chaosblade.io",
    version = "v1alpha1",
    kind = "ChaosBlade",
    plural = "chaosblades",
    status = "ChaosBladeStatus",
    derive = "PartialEq",
    doc = "ChaosBlade runs chaosblade experiments on nodes, pods or containers."
)]
#[serde(rename_all = "camelCase")]
pub struct ChaosBladeSpec {
    /// The experiments.
    pub experiments: Vec<BladeExperiment>,
}

/// One experiment: where (`scope`), on what (`target`), what (`action`), with which flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BladeExperiment {
    /// `node`, `pod` or `container`.
    pub scope: String,
    /// E.g. `network`.
    pub target: String,
    /// E.g. `loss`.
    pub action: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// The flags of `blade create <target> <action>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<BladeMatcher>,
}

/// One flag and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BladeMatcher {
    /// Flag name, e.g. `percent`.
    pub name: String,
    /// Its values (always a list, even for one).
    pub value: Vec<String>,
}

/// Status the operator writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChaosBladeStatus {
    /// `Initial`, `Running`, `Updating`, `Destroying`, `Destroyed` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// One per experiment.
    #[serde(default)]
    pub exp_statuses: Vec<BladeExpStatus>,
}

/// Outcome of one experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BladeExpStatus {
    /// `Success` or `Error`.
    #[serde(default)]
    pub state: String,
    /// Whether it is in place.
    #[serde(default)]
    pub success: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChaosBlade {
    /// The one experiment, if there is exactly one.
    pub fn experiment(&self) -> Option<&BladeExperiment> {
        match self.spec.experiments.as_slice() {
            [e] => Some(e),
            _ => None,
        }
    }

    /// The values of matcher `name` of the one experiment.
    pub fn matcher(&self, name: &str) -> Option<&[String]> {
        self.experiment()?.matchers.iter().find(|m| m.name == name).map(|m| m.value.as_slice())
    }

    /// The nodes (`names` matcher).
    pub fn nodes(&self) -> Vec<String> {
        self.matcher("names").map(<[String]>::to_vec).unwrap_or_default()
    }

    /// `scope/target/action` of the one experiment, e.g. `node/network/loss`.
    pub fn action(&self) -> String {
        match self.experiment() {
            Some(e) => format!("{}/{}/{}", e.scope, e.target, e.action),
            None => format!("{} experiments", self.spec.experiments.len()),
        }
    }

    /// Whether the operator reports every experiment in place (`Running`, all successful).
    pub fn injected(&self) -> Result<bool, String> {
        let Some(st) = &self.status else { return Ok(false) };
        if st.phase.as_deref() == Some("Error") || st.exp_statuses.iter().any(|e| !e.success && e.error.is_some()) {
            let why: Vec<&str> = st.exp_statuses.iter().filter_map(|e| e.error.as_deref()).collect();
            return Err(format!("phase {:?}: {}", st.phase.as_deref().unwrap_or(""), why.join("; ")));
        }
        Ok(st.phase.as_deref() == Some("Running") && st.exp_statuses.iter().all(|e| e.success))
    }
}
