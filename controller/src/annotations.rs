//! The Service annotations the controller reads (configuration) and writes (status).
//!
//! A Service is an HA Service when it carries [`PRIMARY`] or [`STANDBY`]:
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     failover.hadrill.io/primary: deployment/dispatch-a     # required
//!     failover.hadrill.io/standby: statefulset/dispatch-b    # required
//!     failover.hadrill.io/dwell: 30s                         # optional, overrides --dwell
//!     failover.hadrill.io/failback: auto                     # optional: auto | manual (--failback)
//!     failover.hadrill.io/failback-after: 1m                 # optional, overrides --failback-after
//!     failover.hadrill.io/probe-path: /healthz               # optional black-box probe override
//!     failover.hadrill.io/probe-port: "8080"                 # optional black-box probe override
//! ```
//!
//! The controller writes [`ACTIVE`] (`primary` / `standby`), [`SWITCHED_AT`] (RFC 3339, ms) and
//! [`CONDITION`] (a JSON condition, as Services have no custom conditions). [`ACTIVE`] is also the
//! manual control: `kubectl annotate svc X failover.hadrill.io/active=primary --overwrite` asks
//! for a switch (a manual failback); the controller honours it when that side is healthy.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::workload::{RefParseError, Side, WorkloadRef};

/// Prefix of every annotation key of the controller.
pub const PREFIX: &str = "failover.hadrill.io/";
/// Input: the primary workload, `KIND/NAME`.
pub const PRIMARY: &str = "failover.hadrill.io/primary";
/// Input: the standby workload, `KIND/NAME`.
pub const STANDBY: &str = "failover.hadrill.io/standby";
/// Input: minimum time between two automatic switches (humantime: `30s`, `2m`).
pub const DWELL: &str = "failover.hadrill.io/dwell";
/// Input: `auto` or `manual`.
pub const FAILBACK: &str = "failover.hadrill.io/failback";
/// Input: how long the primary must have been healthy before an automatic failback.
pub const FAILBACK_AFTER: &str = "failover.hadrill.io/failback-after";
/// Input: HTTP path of the black-box probe (overrides the pods' readiness probe).
pub const PROBE_PATH: &str = "failover.hadrill.io/probe-path";
/// Input: port of the black-box probe (overrides the pods' readiness probe).
pub const PROBE_PORT: &str = "failover.hadrill.io/probe-port";
/// Output (and manual control): the side the Service selects, `primary` or `standby`.
pub const ACTIVE: &str = "failover.hadrill.io/active";
/// Output: when the selector last changed, RFC 3339 with milliseconds.
pub const SWITCHED_AT: &str = "failover.hadrill.io/switched-at";
/// Output: the controller's condition for the Service, as JSON ([`Condition`]).
pub const CONDITION: &str = "failover.hadrill.io/condition";

/// Failback policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Failback {
    /// Switch back to the primary once it has been healthy for the failback period.
    Auto,
    /// Stay on the standby; an operator fails back by setting [`ACTIVE`] to `primary`.
    #[default]
    Manual,
}

impl Failback {
    /// `auto` / `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failback::Auto => "auto",
            Failback::Manual => "manual",
        }
    }
}

/// Switching policy of one Service (controller defaults, overridden by annotations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Minimum time between two automatic switches (anti-flapping).
    pub dwell: Duration,
    /// Failback policy.
    pub failback: Failback,
    /// How long the primary must be healthy before an automatic failback.
    pub failback_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { dwell: Duration::from_secs(30), failback: Failback::Manual, failback_after: Duration::from_secs(60) }
    }
}

/// Black-box probe overrides of one Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeOverride {
    /// HTTP path.
    pub path: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
}

/// The HA configuration of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSpec {
    /// The preferred workload.
    pub primary: WorkloadRef,
    /// The fallback workload.
    pub standby: WorkloadRef,
    /// Switching policy.
    pub policy: Policy,
    /// Black-box probe overrides.
    pub probe: ProbeOverride,
}

impl HaSpec {
    /// The workload playing `side`.
    pub fn workload(&self, side: Side) -> &WorkloadRef {
        match side {
            Side::Primary => &self.primary,
            Side::Standby => &self.standby,
        }
    }
}

/// A configuration error, reported as an `InvalidConfig` Warning event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required annotation is absent.
    #[error("annotation {0} is missing")]
    Missing(&'static str),
    /// A workload reference is malformed.
    #[error("annotation {key}: {source}")]
    BadReference {
        /// Annotation key.
        key: &'static str,
        /// What is wrong.
        source: RefParseError,
    },
    /// An annotation value is malformed.
    #[error("annotation {key}: invalid value {value:?}: {why}")]
    BadValue {
        /// Annotation key.
        key: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// Primary and standby are the same workload.
    #[error("primary and standby are the same workload {0}")]
    SameWorkload(String),
    /// A named workload does not exist.
    #[error("{side} {workload} not found")]
    WorkloadNotFound {
        /// Which side.
        side: Side,
        /// The reference.
        workload: WorkloadRef,
    },
    /// A workload's selector cannot be a Service selector.
    #[error("{side} {workload} has an unusable selector: {why}")]
    UnusableSelector {
        /// Which side.
        side: Side,
        /// The reference.
        workload: WorkloadRef,
        /// What is wrong.
        why: &'static str,
    },
}

/// Whether the Service is managed by the controller.
pub fn is_ha(annotations: &BTreeMap<String, String>) -> bool {
    annotations.contains_key(PRIMARY) || annotations.contains_key(STANDBY)
}

/// The workload references of an HA Service, leniently (for mapping watch events to Services).
pub fn workload_refs(annotations: &BTreeMap<String, String>) -> impl Iterator<Item = WorkloadRef> + '_ {
    [PRIMARY, STANDBY].into_iter().filter_map(|k| annotations.get(k)?.parse().ok())
}

fn duration(
    annotations: &BTreeMap<String, String>,
    key: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match annotations.get(key) {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v.trim()).map_err(|e| ConfigError::BadValue {
            key,
            value: v.clone(),
            why: e.to_string(),
        }),
    }
}

/// Parses the HA configuration of a Service; `defaults` are the controller's flags.
pub fn parse(annotations: &BTreeMap<String, String>, defaults: &Policy) -> Result<HaSpec, ConfigError> {
    let reference = |key: &'static str| -> Result<WorkloadRef, ConfigError> {
        annotations
            .get(key)
            .ok_or(ConfigError::Missing(key))?
            .parse()
            .map_err(|source| ConfigError::BadReference { key, source })
    };
    let primary = reference(PRIMARY)?;
    let standby = reference(STANDBY)?;
    if primary == standby {
        return Err(ConfigError::SameWorkload(primary.to_string()));
    }
    let failback = match annotations.get(FAILBACK).map(|v| v.trim().to_ascii_lowercase()) {
        None => defaults.failback,
        Some(v) if v == "auto" => Failback::Auto,
        Some(v) if v == "manual" => Failback::Manual,
        Some(v) => {
            return Err(ConfigError::BadValue { key: FAILBACK, value: v, why: "expected auto or manual".into() });
        }
    };
    let policy = Policy {
        dwell: duration(annotations, DWELL, defaults.dwell)?,
        failback,
        failback_after: duration(annotations, FAILBACK_AFTER, defaults.failback_after)?,
    };
    let port = match annotations.get(PROBE_PORT) {
        None => None,
        Some(v) => Some(v.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| ConfigError::BadValue {
            key: PROBE_PORT,
            value: v.clone(),
            why: "expected a port number 1-65535".into(),
        })?),
    };
    let path = annotations.get(PROBE_PATH).map(|p| p.trim().to_string());
    if let Some(p) = path.as_ref().filter(|p| !p.starts_with('/')) {
        return Err(ConfigError::BadValue { key: PROBE_PATH, value: p.clone(), why: "must start with '/'".into() });
    }
    Ok(HaSpec { primary, standby, policy, probe: ProbeOverride { path, port } })
}

/// The controller's condition of a Service, kept as JSON in [`CONDITION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Always `Available`: whether the Service selects a healthy workload.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// `ActiveHealthy`, `FailoverDelayed`, `BothUnhealthy` or `InvalidConfig`.
    pub reason: String,
    /// Human-readable details.
    pub message: String,
    /// When status or reason last changed (RFC 3339, ms).
    pub last_transition_time: String,
}

impl Condition {
    /// A condition of type `Available`; the transition time is filled in by [`Condition::since`].
    pub fn available(status: bool, reason: &str, message: impl Into<String>) -> Condition {
        Condition {
            type_: "Available".into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: String::new(),
        }
    }

    /// Sets the transition time: kept from `previous` when status and reason are unchanged.
    pub fn since(mut self, previous: Option<&Condition>, now: Timestamp) -> Condition {
        self.last_transition_time = match previous {
            Some(p) if p.status == self.status && p.reason == self.reason => p.last_transition_time.clone(),
            _ => format_time(now),
        };
        self
    }
}

/// The status annotations as found on a Service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded {
    /// [`ACTIVE`], if present and valid.
    pub active: Option<Side>,
    /// [`SWITCHED_AT`], if present and valid.
    pub switched_at: Option<Timestamp>,
    /// The raw [`SWITCHED_AT`] value (kept verbatim when rewriting).
    pub switched_at_raw: Option<String>,
    /// [`CONDITION`], if present and valid.
    pub condition: Option<Condition>,
}

/// Reads the status annotations.
pub fn recorded(annotations: &BTreeMap<String, String>) -> Recorded {
    let switched_at_raw = annotations.get(SWITCHED_AT).cloned();
    Recorded {
        active: annotations.get(ACTIVE).and_then(|v| Side::parse(v)),
        switched_at: switched_at_raw.as_deref().and_then(|v| v.parse().ok()),
        switched_at_raw,
        condition: annotations.get(CONDITION).and_then(|v| serde_json::from_str(v).ok()),
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-03T10:15:30.123Z`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_full_configuration_parses() {
        let a = ann(&[
            (PRIMARY, "deployment/dispatch-a"),
            (STANDBY, "statefulset/dispatch-b"),
            (DWELL, "5s"),
            (FAILBACK, "Auto"),
            (FAILBACK_AFTER, "2m"),
            (PROBE_PATH, "/ready"),
            (PROBE_PORT, "8080"),
        ]);
        let spec = parse(&a, &Policy::default()).expect("valid");
        assert_eq!(spec.primary.to_string(), "deployment/dispatch-a");
        assert_eq!(spec.standby.to_string(), "statefulset/dispatch-b");
        assert_eq!(
            spec.policy,
            Policy {
                dwell: Duration::from_secs(5),
                failback: Failback::Auto,
                failback_after: Duration::from_secs(120)
            }
        );
        assert_eq!(spec.probe, ProbeOverride { path: Some("/ready".into()), port: Some(8080) });
        assert!(is_ha(&a));
        assert_eq!(workload_refs(&a).count(), 2);
    }

    #[test]
    fn defaults_apply_and_errors_name_the_annotation() {
        let base = [(PRIMARY, "deployment/a"), (STANDBY, "deployment/b")];
        let spec = parse(&ann(&base), &Policy::default()).expect("valid");
        assert_eq!(spec.policy, Policy::default());
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![(PRIMARY, "deployment/a")], "annotation failover.hadrill.io/standby is missing"),
            (vec![(STANDBY, "deployment/a")], "annotation failover.hadrill.io/primary is missing"),
            (
                vec![(PRIMARY, "dispatch-a"), (STANDBY, "deployment/b")],
                "annotation failover.hadrill.io/primary: malformed workload reference \"dispatch-a\": no '/' (expected deployment/NAME or statefulset/NAME)",
            ),
            (
                vec![(PRIMARY, "deploy/a"), (STANDBY, "deployment/a")],
                "primary and standby are the same workload deployment/a",
            ),
            (
                vec![base[0], base[1], (FAILBACK, "sometimes")],
                "annotation failover.hadrill.io/failback: invalid value \"sometimes\": expected auto or manual",
            ),
            (vec![base[0], base[1], (DWELL, "soon")], "annotation failover.hadrill.io/dwell: invalid value \"soon\""),
            (
                vec![base[0], base[1], (PROBE_PORT, "0")],
                "annotation failover.hadrill.io/probe-port: invalid value \"0\"",
            ),
            (
                vec![base[0], base[1], (PROBE_PATH, "x")],
                "annotation failover.hadrill.io/probe-path: invalid value \"x\"",
            ),
        ];
        for (pairs, want) in cases {
            let err = parse(&ann(&pairs), &Policy::default()).expect_err(want).to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn recorded_status_round_trips() {
        let t: Timestamp = "2026-11-03T10:15:30.123456Z".parse().expect("timestamp");
        assert_eq!(format_time(t), "2026-11-03T10:15:30.123Z");
        let c = Condition::available(false, "BothUnhealthy", "both down").since(None, t);
        assert_eq!(c.last_transition_time, "2026-11-03T10:15:30.123Z");
        let later: Timestamp = "2026-11-03T11:00:00Z".parse().expect("timestamp");
        let same = Condition::available(false, "BothUnhealthy", "still down").since(Some(&c), later);
        assert_eq!(same.last_transition_time, c.last_transition_time);
        let changed = Condition::available(true, "ActiveHealthy", "up").since(Some(&c), later);
        assert_eq!(changed.last_transition_time, "2026-11-03T11:00:00.000Z");
        let a = ann(&[
            (ACTIVE, "standby"),
            (SWITCHED_AT, "2026-11-03T10:15:30.123Z"),
            (CONDITION, &serde_json::to_string(&c).expect("json")),
        ]);
        let r = recorded(&a);
        assert_eq!(r.active, Some(Side::Standby));
        assert_eq!(r.switched_at.map(format_time).as_deref(), Some("2026-11-03T10:15:30.123Z"));
        assert_eq!(r.condition, Some(c));
        assert_eq!(recorded(&BTreeMap::new()), Recorded::default());
    }
}
