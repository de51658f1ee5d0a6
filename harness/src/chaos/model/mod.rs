//! Typed `chaos-mesh.org/v1alpha1` resources, field for field as Chaos Mesh v2.8.3, and
//! `chaosblade.io/v1alpha1` ChaosBlade (chaosblade-operator 1.7).
//!
//! Every optional field is an `Option` that is left out when unset, so a value read from YAML
//! serializes back to the same fields and a new object never carries a `status`.
//! Strings stay strings where Chaos Mesh uses strings (`value`, percentages, durations, latency).

mod chaosblade;
mod networkchaos;
mod podchaos;
mod selector;
mod status;
mod stresschaos;

pub use chaosblade::{
    BLADE_API_VERSION, BLADE_FINALIZER, BLADE_GROUP, BladeExpStatus, BladeExperiment, BladeMatcher, ChaosBlade,
    ChaosBladeSpec, ChaosBladeStatus,
};
pub use networkchaos::{
    BandwidthSpec, CorruptSpec, DelaySpec, Direction, DuplicateSpec, LATENCY_PATTERN, LossSpec, NetworkChaos,
    NetworkChaosAction, NetworkChaosSpec, NetworkChaosStatus, RateSpec, ReorderSpec,
};
pub use podchaos::{PodChaos, PodChaosAction, PodChaosSpec, PodChaosStatus};
pub use selector::{ExpressionSelector, PodSelector, PodSelectorSpec, SelectorMode};
pub use status::{
    ChaosCondition, ChaosStatus, ConditionType, DesiredPhase, ExperimentStatus, PHASE_INJECTED, PHASE_NOT_INJECTED,
    Record, RecordEvent,
};
pub use stresschaos::{
    CpuStressor, MemoryStressor, StressChaos, StressChaosSpec, StressChaosStatus, StressInstance, Stressors,
};

/// API group of every Chaos Mesh resource.
pub const GROUP: &str = "chaos-mesh.org";
/// API version of the modelled resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the modelled resources.
pub const API_VERSION: &str = "chaos-mesh.org/v1alpha1";

/// Defines a string enum: serde names, `as_str`, `ALL`, `Display`, `FromStr` and a JSON schema
/// `{type: string, enum: [...]}` (schemars would make a `oneOf` of documented variants, which
/// is not a structural schema).
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The wire names, in schema order.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown value `{other}`, expected one of: {}", Self::names().join(", "))),
                }
            }
        }

        impl ::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                ::schemars::json_schema!({ "type": "string", "enum": [$($text),+] })
            }
        }
    };
}
pub(crate) use string_enum;

/// Sets `required` on an object schema to exactly `fields` and drops the `default` serde put on
/// them: used where Chaos Mesh's schema requires a field that the Rust type reads leniently.
pub(crate) fn require(schema: &mut schemars::Schema, fields: &[&str]) {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for field in fields {
            if let Some(p) = props.get_mut(*field).and_then(|p| p.as_object_mut()) {
                p.remove("default");
            }
        }
    }
    schema.insert("required".into(), serde_json::json!(fields));
}

/// Drops `format` from an integer schema where Chaos Mesh declares a plain `integer` (a Go `int`).
pub(crate) fn plain_integer(schema: &mut schemars::Schema) {
    schema.remove("format");
}
