//! The status Chaos Mesh's controller writes (a plain field, no status subresource).
//!
//! Reading is lenient: unknown fields are ignored and missing ones default, so a status from a
//! newer controller still parses. Conditions come in random order: look them up by type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::string_enum;

/// Record phase of a target with the fault in place.
pub const PHASE_INJECTED: &str = "Injected";
/// Record phase of a target without the fault (note the space).
pub const PHASE_NOT_INJECTED: &str = "Not Injected";

string_enum! {
    /// What the controller wants for the experiment (`status.experiment.desiredPhase`).
    pub enum DesiredPhase {
        /// Inject (or keep injected).
        Run = "Run",
        /// Recover.
        Stop = "Stop",
    }
}

string_enum! {
    /// The condition types Chaos Mesh reports.
    pub enum ConditionType {
        /// The targets were selected (records exist).
        Selected = "Selected",
        /// There are records and every one is `Injected`.
        AllInjected = "AllInjected",
        /// There are records and every one is `Not Injected`.
        AllRecovered = "AllRecovered",
        /// The pause annotation is set.
        Paused = "Paused",
    }
}

/// One condition: `{type, status: "True"|"False", reason}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = condition_required)]
pub struct ChaosCondition {
    /// Condition type, e.g. `AllInjected`.
    #[serde(default)]
    pub r#type: String,
    /// `True` or `False`.
    #[serde(default)]
    pub status: String,
    /// Why, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn condition_required(s: &mut schemars::Schema) {
    super::require(s, &["status", "type"]);
}

impl ChaosCondition {
    /// Whether the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The experiment state: desired phase and one record per target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// `Run` or `Stop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_phase: Option<DesiredPhase>,
    /// One record per selected target (pod, or container for container-based actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_records: Option<Vec<Record>>,
}

/// The injection state of one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = record_required)]
pub struct Record {
    /// `ns/pod`, or `ns/pod/container` for container-based actions.
    #[serde(default)]
    pub id: String,
    /// `.` for the main selector, `.Target` for a NetworkChaos target.
    #[serde(default)]
    pub selector_key: String,
    /// `Injected`, `Not Injected`, or a NetworkChaos transient `.../Wait` phase.
    #[serde(default)]
    pub phase: String,
    /// Successful injections so far.
    #[serde(default)]
    #[schemars(transform = super::plain_integer)]
    pub injected_count: i64,
    /// Successful recoveries so far.
    #[serde(default)]
    #[schemars(transform = super::plain_integer)]
    pub recovered_count: i64,
    /// Apply and recover events, successes and failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<RecordEvent>>,
}

fn record_required(s: &mut schemars::Schema) {
    super::require(s, &["id", "injectedCount", "phase", "recoveredCount", "selectorKey"]);
}

impl Record {
    /// Whether the fault is in place on this target.
    pub fn is_injected(&self) -> bool {
        self.phase == PHASE_INJECTED
    }

    /// Whether the fault is gone from this target.
    pub fn is_recovered(&self) -> bool {
        self.phase == PHASE_NOT_INJECTED
    }
}

/// One apply or recover attempt on a target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = event_required)]
pub struct RecordEvent {
    /// `Succeeded` or `Failed`.
    #[serde(default)]
    pub r#type: String,
    /// `Apply` or `Recover`.
    #[serde(default)]
    pub operation: String,
    /// Details, e.g. why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When (RFC 3339).
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: String,
}

fn event_required(s: &mut schemars::Schema) {
    super::require(s, &["operation", "timestamp", "type"]);
}

/// Read access to the part of the status every kind shares.
pub trait ChaosStatus {
    /// The conditions, in the controller's (random) order.
    fn conditions(&self) -> &[ChaosCondition];
    /// The experiment state, if written yet.
    fn experiment(&self) -> Option<&ExperimentStatus>;

    /// The condition of type `t`, if reported.
    fn condition(&self, t: ConditionType) -> Option<&ChaosCondition> {
        self.conditions().iter().find(|c| c.r#type == t.as_str())
    }

    /// Whether condition `t` is reported `True`.
    fn is(&self, t: ConditionType) -> bool {
        self.condition(t).is_some_and(ChaosCondition::is_true)
    }

    /// The records (empty before selection).
    fn records(&self) -> &[Record] {
        self.experiment().and_then(|e| e.container_records.as_deref()).unwrap_or_default()
    }

    /// The desired phase, if written yet.
    fn desired_phase(&self) -> Option<DesiredPhase> {
        self.experiment().and_then(|e| e.desired_phase)
    }

    /// Injection finished: `Selected` and `AllInjected` are both `True`.
    fn injected(&self) -> bool {
        self.is(ConditionType::Selected) && self.is(ConditionType::AllInjected)
    }

    /// Recovery finished (after the duration ran out or a pause): `AllRecovered` is `True`.
    fn recovered(&self) -> bool {
        self.is(ConditionType::AllRecovered)
    }

    /// What the status says went wrong with the injection, in the controller's words: each
    /// record whose last attempt is a failed `Apply` (`ns/pod: message`), or `Selected=True`
    /// with no target recorded. `None` while nothing failed.
    fn injection_failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .records()
            .iter()
            .filter_map(|r| {
                let last = r.events.as_deref().unwrap_or_default().last()?;
                (last.r#type == "Failed" && last.operation == "Apply")
                    .then(|| format!("{}: {}", r.id, last.message.as_deref().unwrap_or("(no message)")))
            })
            .collect();
        if !failed.is_empty() {
            return Some(failed.join("; "));
        }
        (self.is(ConditionType::Selected) && self.records().is_empty())
            .then(|| "Selected=True, but no target was recorded (the selector picked no pod)".to_string())
    }
}

/// Implements [`ChaosStatus`] for a status struct with `conditions` and `experiment` fields.
macro_rules! impl_chaos_status {
    ($t:ty) => {
        impl $crate::chaos::model::ChaosStatus for $t {
            fn conditions(&self) -> &[$crate::chaos::model::ChaosCondition] {
                self.conditions.as_deref().unwrap_or_default()
            }
            fn experiment(&self) -> Option<&$crate::chaos::model::ExperimentStatus> {
                self.experiment.as_ref()
            }
        }
    };
}
pub(crate) use impl_chaos_status;
