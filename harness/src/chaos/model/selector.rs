//! The pod selector shared by every kind (`spec.selector`, `spec.target`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::string_enum;

string_enum! {
    /// How many of the matching pods are picked (`spec.mode`).
    pub enum SelectorMode {
        /// One random pod.
        One = "one",
        /// Every matching pod.
        All = "all",
        /// `value` pods (an integer string, capped at the number of matches).
        Fixed = "fixed",
        /// `value` percent of the matches, rounded up.
        FixedPercent = "fixed-percent",
        /// A random percentage between 0 and `value` (may pick none).
        RandomMaxPercent = "random-max-percent",
    }
}

/// Which pods a chaos object targets. All the given kinds of selector must match (AND), except
/// `pods`, which replaces every other field when it is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSelectorSpec {
    /// Namespaces the pods must be in; the chaos object's own namespace when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Names of the nodes the pods must run on (united with `nodeSelectors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    /// Explicit pods: namespace to pod names. When non-empty every other field is ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<BTreeMap<String, Vec<String>>>,
    /// Node labels; the pods must run on a matching node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selectors: Option<BTreeMap<String, String>>,
    /// Pod fields that must equal the given values, e.g. `metadata.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_selectors: Option<BTreeMap<String, String>>,
    /// Pod labels that must all match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selectors: Option<BTreeMap<String, String>>,
    /// Pod annotations that must all match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotation_selectors: Option<BTreeMap<String, String>>,
    /// Set-based label requirements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_selectors: Option<Vec<ExpressionSelector>>,
    /// Pod phases to match (Pending, Running, Succeeded, Failed, Unknown); any phase when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_phase_selectors: Option<Vec<String>>,
}

/// A set-based label requirement (`key`, `operator`, `values`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpressionSelector {
    /// The label key.
    pub key: String,
    /// One of In, NotIn, Exists, DoesNotExist.
    pub operator: String,
    /// Values for In and NotIn (non-empty); empty for Exists and DoesNotExist.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub values: Option<Vec<String>>,
}

/// A selector with its own mode (`spec.target` of a NetworkChaos).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSelector {
    /// The pods to consider.
    pub selector: PodSelectorSpec,
    /// How many of them are picked.
    pub mode: SelectorMode,
    /// Count or percentage for the fixed and percent modes, as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl PodSelectorSpec {
    /// A selector for pods with all of `labels` in `namespace`.
    pub fn labels_in(namespace: &str, labels: &[(&str, &str)]) -> Self {
        Self {
            namespaces: Some(vec![namespace.to_string()]),
            label_selectors: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Self::default()
        }
    }
}
