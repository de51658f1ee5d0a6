//! The two workloads of an HA Service: references to them (`deployment/dispatch-a`), the side
//! each plays (primary or standby), and what the controller reads from them (replica counts and
//! pod selector).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

/// The kinds of workload an HA Service can point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl WorkloadKind {
    /// Lower-case kind as written in annotations.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }
}

/// A workload named by an annotation, e.g. `deployment/dispatch-a`, in the Service's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkloadRef {
    /// Kind of the workload.
    pub kind: WorkloadKind,
    /// Name of the workload.
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// Why a workload reference could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed workload reference {value:?}: {why} (expected deployment/NAME or statefulset/NAME)")]
pub struct RefParseError {
    value: String,
    why: &'static str,
}

impl FromStr for WorkloadRef {
    type Err = RefParseError;

    /// Accepts `KIND/NAME` with KIND one of `deployment`, `deployments`, `deploy`, `statefulset`,
    /// `statefulsets`, `sts` (case-insensitive, optionally suffixed `.apps`), and NAME a DNS-1123
    /// subdomain.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| RefParseError { value: s.to_string(), why };
        let (kind, name) = s.trim().split_once('/').ok_or_else(|| err("no '/'"))?;
        let kind = kind.to_ascii_lowercase();
        let kind = match kind.strip_suffix(".apps").unwrap_or(&kind) {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            _ => return Err(err("unknown kind")),
        };
        if !is_dns1123_subdomain(name) {
            return Err(err("invalid name"));
        }
        Ok(WorkloadRef { kind, name: name.to_string() })
    }
}

fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The role a workload plays for an HA Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The preferred workload.
    Primary,
    /// The workload that takes over when the primary is unhealthy.
    Standby,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Standby,
            Side::Standby => Side::Primary,
        }
    }

    /// `primary` or `standby`, as written in the `active` annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Standby => "standby",
        }
    }

    /// Parses `primary` / `standby` (case-insensitive).
    pub fn parse(s: &str) -> Option<Side> {
        match s.trim().to_ascii_lowercase().as_str() {
            "primary" => Some(Side::Primary),
            "standby" => Some(Side::Standby),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the controller reads from a Deployment or StatefulSet.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Which workload this is.
    pub reference: WorkloadRef,
    /// `spec.replicas` (default 1).
    pub desired: i32,
    /// `status.availableReplicas` (as reported by the workload controller; informative).
    pub available: i32,
    /// `spec.selector`.
    pub selector: LabelSelector,
}

impl Workload {
    /// Reads a Deployment.
    pub fn from_deployment(d: &Deployment) -> Workload {
        let spec = d.spec.as_ref();
        Workload {
            reference: WorkloadRef { kind: WorkloadKind::Deployment, name: d.name_any() },
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            available: d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
            selector: spec.map(|s| s.selector.clone()).unwrap_or_default(),
        }
    }

    /// Reads a StatefulSet.
    pub fn from_statefulset(s: &StatefulSet) -> Workload {
        let spec = s.spec.as_ref();
        let status = s.status.as_ref();
        Workload {
            reference: WorkloadRef { kind: WorkloadKind::StatefulSet, name: s.name_any() },
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            available: status.and_then(|s| s.available_replicas.or(s.ready_replicas)).unwrap_or(0),
            selector: spec.map(|s| s.selector.clone()).unwrap_or_default(),
        }
    }

    /// The selector as a Service selector: its `matchLabels`. `None` when the selector uses
    /// `matchExpressions` or is empty — a Service selector cannot express either.
    pub fn service_selector(&self) -> Option<BTreeMap<String, String>> {
        let has_expressions = self.selector.match_expressions.as_ref().is_some_and(|e| !e.is_empty());
        let labels = self.selector.match_labels.clone().unwrap_or_default();
        (!has_expressions && !labels.is_empty()).then_some(labels)
    }

    /// Whether the workload's selector selects a pod with these labels. An empty or malformed
    /// selector selects nothing.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        selects(&self.selector, labels)
    }
}

/// Whether `selector` selects `labels`, as the API server evaluates label selectors; an empty
/// or malformed selector selects nothing here (a workload's selector is never empty).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector.match_labels.iter().flatten();
    let expressions = selector.match_expressions.iter().flatten();
    let mut any = false;
    for (k, v) in match_labels {
        any = true;
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for e in expressions {
        any = true;
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn references_parse_in_their_accepted_spellings() {
        let cases = [
            ("deployment/dispatch-a", Some((WorkloadKind::Deployment, "dispatch-a"))),
            ("Deployment/dispatch-a", Some((WorkloadKind::Deployment, "dispatch-a"))),
            ("deploy/x", Some((WorkloadKind::Deployment, "x"))),
            ("deployments.apps/x", Some((WorkloadKind::Deployment, "x"))),
            ("statefulset/dispatch-b", Some((WorkloadKind::StatefulSet, "dispatch-b"))),
            ("sts/db-0.x", Some((WorkloadKind::StatefulSet, "db-0.x"))),
            ("dispatch-a", None),
            ("daemonset/x", None),
            ("deployment/", None),
            ("deployment/Upper", None),
            ("deployment/-x", None),
            ("deployment/a/b", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<WorkloadRef>().ok().map(|r| (r.kind, r.name));
            assert_eq!(got, want.map(|(k, n)| (k, n.to_string())), "{input}");
        }
        assert_eq!("sts/b".parse::<WorkloadRef>().map(|r| r.to_string()), Ok("statefulset/b".to_string()));
    }

    #[test]
    fn service_selector_needs_match_labels_only() {
        let labels = BTreeMap::from([("app".to_string(), "a".to_string())]);
        let mut w = Workload {
            reference: WorkloadRef { kind: WorkloadKind::Deployment, name: "a".into() },
            desired: 1,
            available: 1,
            selector: LabelSelector { match_labels: Some(labels.clone()), match_expressions: None },
        };
        assert_eq!(w.service_selector(), Some(labels.clone()));
        assert!(w.selects(&labels));
        w.selector.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["x".into()]),
        }]);
        assert_eq!(w.service_selector(), None);
        assert!(!w.selects(&labels), "tier In (x) does not match");
        w.selector = LabelSelector::default();
        assert_eq!(w.service_selector(), None);
        assert!(!w.selects(&labels), "an empty selector selects nothing here");
    }

    #[test]
    fn selectors_evaluate_like_the_api_server() {
        let labels = BTreeMap::from([("app".to_string(), "a".to_string()), ("tier".to_string(), "db".to_string())]);
        let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        };
        let sel = |labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: (!labels.is_empty())
                .then(|| labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        };
        let cases = [
            (sel(&[("app", "a")], vec![]), true),
            (sel(&[("app", "b")], vec![]), false),
            (sel(&[("app", "a")], vec![req("tier", "In", &["db", "web"])]), true),
            (sel(&[], vec![req("tier", "NotIn", &["db"])]), false),
            (sel(&[], vec![req("zone", "NotIn", &["x"])]), true),
            (sel(&[], vec![req("tier", "Exists", &[])]), true),
            (sel(&[], vec![req("tier", "DoesNotExist", &[])]), false),
            (sel(&[], vec![req("tier", "Gt", &["1"])]), false),
            (sel(&[], vec![]), false),
        ];
        for (i, (s, want)) in cases.into_iter().enumerate() {
            assert_eq!(selects(&s, &labels), want, "case {i}");
        }
    }
}
