//! Validation of chaos objects before anything is created.
//!
//! Three layers, all reported with the field path (`spec.loss.loss`) and what was expected:
//!
//! 1. **Schema** ([`parse_value`]): `apiVersion`/`kind`, unknown fields (which the API server
//!    would silently prune — a typo such as `labelSelector` would widen the selection to the
//!    whole namespace), types and enums of Chaos Mesh's v2.8.3 CRD.
//! 2. **Webhook**: the rules Chaos Mesh's admission webhook adds: `value` per `mode`, Go
//!    durations, container-kill needs `containerNames`, percentages as floats 0–100 without `%`,
//!    each network action's block, `from`/`both` need a `target` (not for partition),
//!    `externalTargets` only with `to`, stressors, bounds the schema declares.
//! 3. **Blast radius** (hadrill's own): a selector must narrow the pods (labels, expressions,
//!    fields, annotations, pods, nodes or node labels) unless
//!    [`ValidateOptions::allow_namespace_wide_selector`] is set, and every namespace it names
//!    must be one of [`ValidateOptions::allowed_namespaces`] (the run's own namespaces);
//!    `status` must not be sent and `remoteCluster` is not supported.
//!
//! A ChaosBlade has its own rules ([`super::blade`]): the node network loss hadrill runs, with
//! the nodes, an integer percent, an interface and a timeout (so it ends on the node by itself).
//!
//! Findings that are not errors (a field Chaos Mesh ignores, a fault that never ends) come back
//! as warnings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::model::{
    API_VERSION, BandwidthSpec, ChaosBlade, DelaySpec, Direction, NetworkChaos, NetworkChaosAction, PodChaos,
    PodChaosAction, PodSelectorSpec, SelectorMode, StressChaos,
};
use super::{ChaosKind, ChaosResource, crd};

/// What a validation may accept beyond Chaos Mesh's own rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidateOptions {
    /// Namespaces the object and its selectors may name (the run's own namespaces). Empty
    /// allows none.
    pub allowed_namespaces: BTreeSet<String>,
    /// Accept a selector that only names namespaces, i.e. every pod in them.
    pub allow_namespace_wide_selector: bool,
}

impl ValidateOptions {
    /// Options allowing exactly `namespaces`, with namespace-wide selectors refused.
    pub fn for_namespaces<I, S>(namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { allowed_namespaces: namespaces.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// The same options with namespace-wide selectors allowed (or not).
    pub fn with_namespace_wide_selector(mut self, allow: bool) -> Self {
        self.allow_namespace_wide_selector = allow;
        self
    }
}

/// One problem, at a field path such as `spec.selector.labelSelectors`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Dotted field path; `[i]` for list items.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Finding {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Errors (and the warnings found alongside) of an invalid object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// `Kind "name"` of the object when known.
    pub subject: String,
    /// The errors, at least one.
    pub errors: Vec<Finding>,
    /// Warnings found on the way.
    pub warnings: Vec<Finding>,
}

impl ValidationErrors {
    /// Whether some error is at `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{} is invalid ({n} error{}):", self.subject, if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// A valid object and the warnings about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The typed object.
    pub resource: ChaosResource,
    /// Things Chaos Mesh accepts but that are probably not meant.
    pub warnings: Vec<Finding>,
}

/// Errors and warnings of one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Problems that make the object invalid.
    pub errors: Vec<Finding>,
    /// Things that are allowed but probably not meant.
    pub warnings: Vec<Finding>,
}

impl Report {
    pub(crate) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Finding::new(path, message));
    }

    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Finding::new(path, message));
    }

    pub(crate) fn check<T>(&mut self, path: &str, result: Result<T, String>) {
        if let Err(e) = result {
            self.err(path, e);
        }
    }

    /// `Ok(warnings)` when there is no error.
    pub fn into_result(self, subject: String) -> Result<Vec<Finding>, ValidationErrors> {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(ValidationErrors { subject, errors: self.errors, warnings: self.warnings })
        }
    }
}

/// The Chaos Mesh webhook's and hadrill's rules on a typed object.
pub trait Validate {
    /// Every finding.
    fn report(&self, options: &ValidateOptions) -> Report;

    /// `Kind "name"`, for messages.
    fn subject(&self) -> String;

    /// `Ok(warnings)`, or every error.
    fn validate(&self, options: &ValidateOptions) -> Result<Vec<Finding>, ValidationErrors> {
        self.report(options).into_result(self.subject())
    }
}

pub(crate) fn subject_of(kind: &str, meta: &kube::api::ObjectMeta) -> String {
    match &meta.name {
        Some(name) => format!("{kind} \"{name}\""),
        None => kind.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Layer 1: schema

/// Reads a chaos object from JSON: checks `apiVersion` and `kind`, refuses fields the CRD does
/// not have (with a suggestion), and reports type errors with their path. `status` is read
/// leniently. No semantic checks: see [`validate_value`].
pub fn parse_value(value: &Value) -> Result<ChaosResource, ValidationErrors> {
    let (resource, report, subject) = parse_report(value);
    match resource {
        Some(r) if report.errors.is_empty() => Ok(r),
        _ => Err(failure(subject, report)),
    }
}

/// [`parse_value`], then the webhook and blast-radius rules of [`Validate`]. An object whose
/// only schema problem is an unknown field is checked further, so a typo such as
/// `labelSelector` also shows what it does (an empty selector).
pub fn validate_value(value: &Value, options: &ValidateOptions) -> Result<Validated, ValidationErrors> {
    let (resource, mut report, subject) = parse_report(value);
    let Some(resource) = resource else {
        return Err(failure(subject, report));
    };
    let semantic = resource.report(options);
    report.errors.extend(semantic.errors);
    report.warnings.extend(semantic.warnings);
    if report.errors.is_empty() {
        Ok(Validated { resource, warnings: report.warnings })
    } else {
        Err(failure(resource.subject(), report))
    }
}

/// The typed object when it deserializes, and the schema findings.
fn parse_report(value: &Value) -> (Option<ChaosResource>, Report, String) {
    let name = value.pointer("/metadata/name").and_then(Value::as_str);
    let kind_str = value.get("kind").and_then(Value::as_str);
    let subject = match (kind_str, name) {
        (Some(k), Some(n)) => format!("{k} \"{n}\""),
        (Some(k), None) => k.to_string(),
        (None, Some(n)) => format!("\"{n}\""),
        (None, None) => "chaos object".to_string(),
    };
    let mut report = Report::default();
    if !value.is_object() {
        report.err("", format!("expected a mapping (a Chaos Mesh object), got {}", json_type(value)));
        return (None, report, subject);
    }
    // The apiVersion the kind has (Chaos Mesh's when the kind is unknown).
    let expected = kind_str.and_then(ChaosKind::from_kind).map_or(API_VERSION, ChaosKind::api_version);
    match value.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v == expected => {}
        Some(other) => report.err("apiVersion", format!("expected {expected}, got `{other}`")),
        None => report.err("apiVersion", format!("required field is missing (expected {expected})")),
    }
    let names = ChaosKind::ALL.map(ChaosKind::as_str).join(", ");
    let kind = match kind_str {
        Some(k) => match ChaosKind::from_kind(k) {
            Some(kind) => Some(kind),
            None => {
                report.err("kind", format!("expected one of {names}, got `{k}`"));
                None
            }
        },
        None => {
            report.err("kind", format!("required field is missing (expected one of {names})"));
            None
        }
    };
    let Some(kind) = kind else {
        return (None, report, subject);
    };
    unknown_fields(crd::schema(kind), value, "", &mut report);
    let typed = match kind {
        ChaosKind::PodChaos => typed::<PodChaos>(value).map(ChaosResource::Pod),
        ChaosKind::NetworkChaos => typed::<NetworkChaos>(value).map(ChaosResource::Network),
        ChaosKind::StressChaos => typed::<StressChaos>(value).map(ChaosResource::Stress),
        ChaosKind::ChaosBlade => typed::<ChaosBlade>(value).map(ChaosResource::Blade),
    };
    match typed {
        Ok(resource) => (Some(resource), report, subject),
        Err(finding) => {
            if !report.errors.contains(&finding) {
                report.errors.push(finding);
            }
            (None, report, subject)
        }
    }
}

fn failure(subject: String, report: Report) -> ValidationErrors {
    ValidationErrors { subject, errors: report.errors, warnings: report.warnings }
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, Finding> {
    serde_path_to_error::deserialize::<_, T>(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.inner().to_string();
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            return Finding::new(join(&path, field), "required field is missing");
        }
        let hint = if message.starts_with("invalid type: integer") && message.ends_with("expected a string") {
            " (Chaos Mesh wants a string here: quote the number, e.g. \"2\")"
        } else {
            ""
        };
        Finding::new(path, format!("{message}{hint}"))
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Reports every field of `value` that `schema` does not declare.
fn unknown_fields(schema: &Value, value: &Value, path: &str, report: &mut Report) {
    let root = path.is_empty();
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, child) in map {
                    if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                        continue;
                    }
                    match props.get(key) {
                        Some(s) => unknown_fields(s, child, &join(path, key), report),
                        None if child.is_null() => {}
                        None => {
                            let known: Vec<&str> = props.keys().map(String::as_str).collect();
                            let hint = match closest(key, &known) {
                                Some(s) => format!("; did you mean `{s}`?"),
                                None => format!("; known fields: {}", known.join(", ")),
                            };
                            report.err(
                                join(path, key),
                                format!("unknown field (the API server would drop it silently){hint}"),
                            );
                        }
                    }
                }
            } else if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (key, child) in map {
                    unknown_fields(add, child, &join(path, key), report);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(item_schema, item, &format!("{path}[{i}]"), report);
                }
            }
        }
        _ => {}
    }
}

/// The candidate within edit distance 3 of `word` (case-insensitive), if any.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Layers 2 and 3: webhook and blast radius

impl Validate for ChaosResource {
    fn report(&self, options: &ValidateOptions) -> Report {
        match self {
            ChaosResource::Pod(r) => r.report(options),
            ChaosResource::Network(r) => r.report(options),
            ChaosResource::Stress(r) => r.report(options),
            ChaosResource::Blade(r) => r.report(options),
        }
    }

    fn subject(&self) -> String {
        match self {
            ChaosResource::Pod(r) => r.subject(),
            ChaosResource::Network(r) => r.subject(),
            ChaosResource::Stress(r) => r.subject(),
            ChaosResource::Blade(r) => r.subject(),
        }
    }
}

/// The fields every kind shares.
struct Common<'a> {
    meta: &'a kube::api::ObjectMeta,
    has_status: bool,
    mode: SelectorMode,
    value: Option<&'a str>,
    selector: &'a PodSelectorSpec,
    duration: Option<&'a str>,
    container_names: Option<&'a [String]>,
    remote_cluster: Option<&'a str>,
}

fn check_common(c: &Common<'_>, options: &ValidateOptions, r: &mut Report) {
    match (&c.meta.name, &c.meta.generate_name) {
        (Some(name), _) => r.check("metadata.name", dns_subdomain(name)),
        (None, Some(_)) => {}
        (None, None) => r.err("metadata.name", "required field is missing"),
    }
    if let Some(ns) = &c.meta.namespace {
        r.check("metadata.namespace", dns_label(ns));
        r.check("metadata.namespace", namespace_allowed(ns, options));
    }
    if c.has_status {
        r.err("status", "must not be set: the controller writes status (a create with a status is rejected)");
    }
    check_mode_value("spec", c.mode, c.value, r);
    check_selector("spec.selector", c.selector, options, r);
    if let Some(d) = c.duration {
        r.check("spec.duration", positive_duration(d));
    }
    if let Some(names) = c.container_names {
        for (i, n) in names.iter().enumerate() {
            r.check(&format!("spec.containerNames[{i}]"), dns_label(n));
        }
    }
    if c.remote_cluster.is_some() {
        r.err("spec.remoteCluster", "not supported by hadrill: leave it unset to run in the cluster under test");
    }
}

/// Checks `value` against `mode` (`{prefix}.value`).
fn check_mode_value(prefix: &str, mode: SelectorMode, value: Option<&str>, r: &mut Report) {
    let path = join(prefix, "value");
    match mode {
        SelectorMode::One | SelectorMode::All => {
            if value.is_some() {
                r.warn(path, format!("ignored with mode `{mode}`"));
            }
        }
        SelectorMode::Fixed => match value {
            None => r.err(path, "required with mode `fixed`: the number of pods as a string, e.g. \"2\""),
            Some(v) => match go_atoi(v) {
                Some(n) if n > 0 => {}
                Some(n) => r.err(path, format!("must be greater than 0 with mode `fixed`, got {n}")),
                None => r.err(path, format!("expected an integer string such as \"2\" with mode `fixed`, got `{v}`")),
            },
        },
        SelectorMode::FixedPercent | SelectorMode::RandomMaxPercent => match value {
            None => r.err(path, format!("required with mode `{mode}`: a percentage from 1 to 100 as a string, e.g. \"50\"")),
            Some(v) => match go_atoi(v) {
                Some(n) if (1..=100).contains(&n) => {}
                Some(n) => r.err(path, format!("expected a percentage from 1 to 100 with mode `{mode}`, got {n}")),
                None => r.err(
                    path,
                    format!("expected an integer percentage from 1 to 100 without `%` (e.g. \"50\") with mode `{mode}`, got `{v}`"),
                ),
            },
        },
    }
}

/// Go's `strconv.Atoi`: optional sign and decimal digits.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

const POD_PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

fn non_empty<K, V>(m: &Option<BTreeMap<K, V>>) -> bool {
    m.as_ref().is_some_and(|m| !m.is_empty())
}

fn non_empty_vec<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

/// Checks a selector at `path` (`spec.selector` or `spec.target.selector`).
fn check_selector(path: &str, s: &PodSelectorSpec, options: &ValidateOptions, r: &mut Report) {
    let narrows = non_empty(&s.label_selectors)
        || non_empty_vec(&s.expression_selectors)
        || non_empty(&s.field_selectors)
        || non_empty(&s.annotation_selectors)
        || non_empty(&s.pods)
        || non_empty_vec(&s.nodes)
        || non_empty(&s.node_selectors);
    if !narrows && !options.allow_namespace_wide_selector {
        r.err(
            join(path, "labelSelectors"),
            "the selector has no labelSelectors, expressionSelectors, fieldSelectors, annotationSelectors, \
             pods, nodes or nodeSelectors, so it selects every pod of the namespace; name the pods \
             (or allow namespace-wide selectors explicitly)",
        );
    }
    if let Some(namespaces) = &s.namespaces {
        for (i, ns) in namespaces.iter().enumerate() {
            let p = format!("{path}.namespaces[{i}]");
            r.check(&p, dns_label(ns));
            r.check(&p, namespace_allowed(ns, options));
        }
    }
    if let Some(pods) = &s.pods {
        for (ns, names) in pods {
            let p = format!("{path}.pods.{ns}");
            r.check(&p, dns_label(ns));
            r.check(&p, namespace_allowed(ns, options));
            if names.is_empty() {
                r.err(&p, "expected at least one pod name");
            }
            for (i, n) in names.iter().enumerate() {
                r.check(&format!("{p}[{i}]"), dns_subdomain(n));
            }
        }
        if !pods.is_empty() {
            let ignored: Vec<&str> = [
                ("labelSelectors", non_empty(&s.label_selectors)),
                ("expressionSelectors", non_empty_vec(&s.expression_selectors)),
                ("fieldSelectors", non_empty(&s.field_selectors)),
                ("annotationSelectors", non_empty(&s.annotation_selectors)),
                ("nodes", non_empty_vec(&s.nodes)),
                ("nodeSelectors", non_empty(&s.node_selectors)),
                ("namespaces", non_empty_vec(&s.namespaces)),
                ("podPhaseSelectors", non_empty_vec(&s.pod_phase_selectors)),
            ]
            .into_iter()
            .filter_map(|(n, set)| set.then_some(n))
            .collect();
            if !ignored.is_empty() {
                r.warn(join(path, "pods"), format!("when pods is set, Chaos Mesh ignores {}", ignored.join(", ")));
            }
        }
    }
    for (field, map) in [("labelSelectors", &s.label_selectors), ("nodeSelectors", &s.node_selectors)] {
        for (k, v) in map.iter().flatten() {
            let p = format!("{path}.{field}.{k}");
            r.check(&p, label_key(k));
            r.check(&p, label_value(v));
        }
    }
    for (field, map) in [("annotationSelectors", &s.annotation_selectors), ("fieldSelectors", &s.field_selectors)] {
        for k in map.iter().flatten().map(|(k, _)| k) {
            if k.is_empty() {
                r.err(format!("{path}.{field}"), "keys must not be empty");
            }
        }
    }
    for (i, e) in s.expression_selectors.iter().flatten().enumerate() {
        let p = format!("{path}.expressionSelectors[{i}]");
        r.check(&format!("{p}.key"), label_key(&e.key));
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                r.err(format!("{p}.values"), format!("must be non-empty with operator {}", e.operator))
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                r.err(format!("{p}.values"), format!("must be empty with operator {}", e.operator))
            }
            op if !OPERATORS.contains(&op) => {
                r.err(format!("{p}.operator"), format!("expected one of {}, got `{op}`", OPERATORS.join(", ")))
            }
            _ => {}
        }
        for (j, v) in values.iter().enumerate() {
            r.check(&format!("{p}.values[{j}]"), label_value(v));
        }
    }
    for (i, phase) in s.pod_phase_selectors.iter().flatten().enumerate() {
        if !POD_PHASES.contains(&phase.as_str()) {
            r.err(
                format!("{path}.podPhaseSelectors[{i}]"),
                format!("expected one of {}, got `{phase}`", POD_PHASES.join(", ")),
            );
        }
    }
    for (i, node) in s.nodes.iter().flatten().enumerate() {
        r.check(&format!("{path}.nodes[{i}]"), dns_subdomain(node));
    }
}

fn namespace_allowed(ns: &str, options: &ValidateOptions) -> Result<(), String> {
    if options.allowed_namespaces.contains(ns) {
        Ok(())
    } else if options.allowed_namespaces.is_empty() {
        Err(format!("namespace `{ns}` is not allowed: this run allows no namespaces"))
    } else {
        let allowed: Vec<&str> = options.allowed_namespaces.iter().map(String::as_str).collect();
        Err(format!("namespace `{ns}` is not one of this run's namespaces ({})", allowed.join(", ")))
    }
}

impl Validate for PodChaos {
    fn subject(&self) -> String {
        subject_of("PodChaos", &self.metadata)
    }

    fn report(&self, options: &ValidateOptions) -> Report {
        let s = &self.spec;
        let mut r = Report::default();
        check_common(
            &Common {
                meta: &self.metadata,
                has_status: self.status.is_some(),
                mode: s.mode,
                value: s.value.as_deref(),
                selector: &s.selector,
                duration: s.duration.as_deref(),
                container_names: s.container_names.as_deref(),
                remote_cluster: s.remote_cluster.as_deref(),
            },
            options,
            &mut r,
        );
        if s.action == PodChaosAction::ContainerKill && !non_empty_vec(&s.container_names) {
            r.err("spec.containerNames", "required with action container-kill: the containers to kill, e.g. [db]");
        }
        if let Some(g) = s.grace_period {
            if g < 0 {
                r.err("spec.gracePeriod", format!("must be 0 or more seconds, got {g}"));
            } else if s.action != PodChaosAction::PodKill {
                r.warn("spec.gracePeriod", format!("only used by pod-kill; ignored with action {}", s.action));
            }
        }
        if s.action.is_one_shot() && s.duration.is_some() {
            r.warn("spec.duration", format!("ignored: {} is one-shot", s.action));
        }
        if s.action == PodChaosAction::PodFailure && s.duration.is_none() {
            r.warn("spec.duration", "unset: the pods stay failed until the object is deleted or paused");
        }
        r
    }
}

impl Validate for NetworkChaos {
    fn subject(&self) -> String {
        subject_of("NetworkChaos", &self.metadata)
    }

    fn report(&self, options: &ValidateOptions) -> Report {
        let s = &self.spec;
        let mut r = Report::default();
        check_common(
            &Common {
                meta: &self.metadata,
                has_status: self.status.is_some(),
                mode: s.mode,
                value: s.value.as_deref(),
                selector: &s.selector,
                duration: s.duration.as_deref(),
                container_names: None,
                remote_cluster: s.remote_cluster.as_deref(),
            },
            options,
            &mut r,
        );
        use NetworkChaosAction as A;
        let blocks = [
            ("delay", s.delay.is_some()),
            ("loss", s.loss.is_some()),
            ("duplicate", s.duplicate.is_some()),
            ("corrupt", s.corrupt.is_some()),
            ("rate", s.rate.is_some()),
            ("bandwidth", s.bandwidth.is_some()),
        ];
        let netem = ["delay", "loss", "duplicate", "corrupt"];
        match s.action {
            A::Delay | A::Loss | A::Duplicate | A::Corrupt | A::Bandwidth => {
                let own = s.action.as_str();
                if !blocks.iter().any(|(b, set)| *b == own && *set) {
                    let example = match s.action {
                        A::Delay => "{latency: \"100ms\"}",
                        A::Loss => "{loss: \"25\"}",
                        A::Duplicate => "{duplicate: \"25\"}",
                        A::Corrupt => "{corrupt: \"25\"}",
                        _ => "{rate: \"1mbps\", limit: 20971520, buffer: 10000}",
                    };
                    r.err(format!("spec.{own}"), format!("required with action {own}: e.g. {own}: {example}"));
                }
                for (b, set) in blocks {
                    if !set || b == own {
                        continue;
                    }
                    if s.action != A::Bandwidth && netem.contains(&b) {
                        r.warn(
                            format!("spec.{b}"),
                            format!("also applied: Chaos Mesh merges every netem block with action {own}"),
                        );
                    } else {
                        r.warn(format!("spec.{b}"), format!("ignored with action {own}"));
                    }
                }
            }
            A::Netem => {
                if !blocks.iter().any(|(b, set)| *set && *b != "bandwidth") {
                    r.err("spec.delay", "action netem needs at least one of delay, loss, duplicate, corrupt, rate");
                }
                if s.bandwidth.is_some() {
                    r.warn("spec.bandwidth", "ignored with action netem");
                }
            }
            A::Partition => {
                for (b, set) in blocks {
                    if set {
                        r.warn(format!("spec.{b}"), "ignored with action partition");
                    }
                }
            }
        }
        if let Some(d) = &s.delay {
            check_delay(d, &mut r);
        }
        if let Some(l) = &s.loss {
            r.check("spec.loss.loss", percent(&l.loss));
            check_correlation("spec.loss.correlation", &l.correlation, &mut r);
        }
        if let Some(d) = &s.duplicate {
            r.check("spec.duplicate.duplicate", percent(&d.duplicate));
            check_correlation("spec.duplicate.correlation", &d.correlation, &mut r);
        }
        if let Some(c) = &s.corrupt {
            r.check("spec.corrupt.corrupt", percent(&c.corrupt));
            check_correlation("spec.corrupt.correlation", &c.correlation, &mut r);
        }
        if let Some(rate) = &s.rate {
            r.check("spec.rate.rate", bandwidth_rate(&rate.rate));
        }
        if let Some(b) = &s.bandwidth {
            check_bandwidth(b, &mut r);
        }
        let direction = s.direction_or_default();
        if s.action != A::Partition && direction != Direction::To && s.target.is_none() {
            r.err(
                "spec.target",
                format!("required with direction {direction} (only partition may omit it): the peer pods, {{mode, selector}}"),
            );
        }
        if non_empty_vec(&s.external_targets) && direction != Direction::To {
            r.err("spec.externalTargets", format!("only allowed with direction to, got direction {direction}"));
        }
        for (i, t) in s.external_targets.iter().flatten().enumerate() {
            if t.trim().is_empty() {
                r.err(
                    format!("spec.externalTargets[{i}]"),
                    "expected an IP, a CIDR or a domain name, got an empty string",
                );
            }
        }
        if let Some(t) = &s.target {
            check_mode_value("spec.target", t.mode, t.value.as_deref(), &mut r);
            check_selector("spec.target.selector", &t.selector, options, &mut r);
        } else if s.action == A::Partition && !non_empty_vec(&s.external_targets) {
            r.warn(
                "spec.target",
                "unset: the selected pods lose all traffic in that direction, DNS and the API server included",
            );
        }
        if s.duration.is_none() {
            r.warn("spec.duration", "unset: the fault stays until the object is deleted or paused");
        }
        r
    }
}

fn check_delay(d: &DelaySpec, r: &mut Report) {
    r.check("spec.delay.latency", latency(&d.latency));
    if let Some(j) = &d.jitter {
        r.check("spec.delay.jitter", latency(j));
    }
    check_correlation("spec.delay.correlation", &d.correlation, r);
    if let Some(o) = &d.reorder {
        r.check("spec.delay.reorder.reorder", percent(&o.reorder));
        check_correlation("spec.delay.reorder.correlation", &o.correlation, r);
        if o.gap < 0 {
            r.err("spec.delay.reorder.gap", format!("must be 0 or more, got {}", o.gap));
        }
    }
}

fn check_correlation(path: &str, c: &Option<String>, r: &mut Report) {
    if let Some(c) = c {
        r.check(path, percent(c));
    }
}

fn check_bandwidth(b: &BandwidthSpec, r: &mut Report) {
    r.check("spec.bandwidth.rate", bandwidth_rate(&b.rate));
    if b.limit < 1 {
        r.err("spec.bandwidth.limit", format!("must be 1 or more bytes, got {}", b.limit));
    }
    if b.buffer < 1 {
        r.err("spec.bandwidth.buffer", format!("must be 1 or more bytes, got {}", b.buffer));
    }
    if b.peakrate.is_some_and(|p| p < 0) {
        r.err("spec.bandwidth.peakrate", "must be 0 or more");
    }
    if b.minburst.is_some_and(|m| m < 0) {
        r.err("spec.bandwidth.minburst", "must be 0 or more");
    }
}

impl Validate for StressChaos {
    fn subject(&self) -> String {
        subject_of("StressChaos", &self.metadata)
    }

    fn report(&self, options: &ValidateOptions) -> Report {
        let s = &self.spec;
        let mut r = Report::default();
        check_common(
            &Common {
                meta: &self.metadata,
                has_status: self.status.is_some(),
                mode: s.mode,
                value: s.value.as_deref(),
                selector: &s.selector,
                duration: s.duration.as_deref(),
                container_names: s.container_names.as_deref(),
                remote_cluster: s.remote_cluster.as_deref(),
            },
            options,
            &mut r,
        );
        if let Some(ng) = &s.stressng_stressors {
            if ng.trim().is_empty() {
                r.err("spec.stressngStressors", "must not be empty: stress-ng options such as \"--cpu 1\"");
            } else if s.stressors.is_some() {
                r.warn("spec.stressors", "ignored: stressngStressors wins when both are set");
            }
        }
        match &s.stressors {
            None if s.stressng_stressors.is_none() => r.err(
                "spec.stressors",
                "required: a cpu and/or memory stressor, e.g. {cpu: {workers: 1, load: 50}} (or stressngStressors)",
            ),
            None => {}
            Some(st) => {
                if st.cpu.is_none() && st.memory.is_none() {
                    r.err(
                        "spec.stressors",
                        "expected a cpu and/or memory stressor, e.g. {cpu: {workers: 1, load: 50}}",
                    );
                }
                if let Some(cpu) = &st.cpu {
                    check_workers("spec.stressors.cpu.workers", cpu.workers, &mut r);
                    if let Some(load) = cpu.load
                        && !(0..=100).contains(&load)
                    {
                        r.err("spec.stressors.cpu.load", format!("expected a percentage from 0 to 100, got {load}"));
                    }
                }
                if let Some(mem) = &st.memory {
                    check_workers("spec.stressors.memory.workers", mem.workers, &mut r);
                    if let Some(size) = &mem.size {
                        r.check("spec.stressors.memory.size", memory_size(size));
                    }
                    if let Some(adj) = mem.oom_score_adj
                        && !(-1000..=1000).contains(&adj)
                    {
                        r.err("spec.stressors.memory.oomScoreAdj", format!("expected -1000 to 1000, got {adj}"));
                    }
                }
            }
        }
        if s.duration.is_none() {
            r.warn("spec.duration", "unset: the stress stays until the object is deleted or paused");
        }
        r
    }
}

fn check_workers(path: &str, workers: i64, r: &mut Report) {
    if !(1..=8192).contains(&workers) {
        r.err(path, format!("expected 1 to 8192 workers, got {workers}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Value formats

/// Parses a Go duration (`time.ParseDuration`): `300ms`, `1m30s`, `-1.5h`, `0`. Units ns, us
/// (µs), ms, s, m, h; no days. Returns the sign (true when negative) and the magnitude.
pub fn parse_go_duration(s: &str) -> Result<(bool, std::time::Duration), String> {
    let bad = || {
        format!("expected a Go duration such as \"30s\", \"1m30s\" or \"2h\" (units ns, us, ms, s, m, h), got `{s}`")
    };
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok((negative, std::time::Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("{}: missing unit", bad())),
            other => return Err(format!("{}: unknown unit `{other}`", bad())),
        };
        let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| bad())? };
        let mut frac_nanos: u128 = 0;
        if !frac_part.is_empty() {
            // Keep at most 30 digits of fraction: plenty below 1ns for every unit.
            let digits = &frac_part[..frac_part.len().min(30)];
            let num: u128 = digits.parse().map_err(|_| bad())?;
            frac_nanos = num * scale / 10u128.pow(digits.len() as u32);
        }
        total = int
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac_nanos))
            .and_then(|v| v.checked_add(total))
            .ok_or_else(|| format!("{}: out of range", bad()))?;
        if total > i64::MAX as u128 {
            return Err(format!("{}: out of range", bad()));
        }
        rest = after;
    }
    let nanos = u64::try_from(total).map_err(|_| bad())?;
    Ok((negative, std::time::Duration::from_nanos(nanos)))
}

/// A Go duration that is more than zero.
pub fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_go_duration(s)? {
        (false, d) if !d.is_zero() => Ok(d),
        _ => Err(format!("expected a positive Go duration such as \"30s\" or \"1m30s\", got `{s}`")),
    }
}

/// A Chaos Mesh percentage: a string that parses as a float from 0 to 100, without `%`.
pub fn percent(s: &str) -> Result<f64, String> {
    if s.ends_with('%') {
        return Err(format!("expected a number from 0 to 100 without `%` (e.g. \"25\"), got `{s}`"));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Ok(v),
        Ok(_) => Err(format!("expected a number from 0 to 100, got `{s}`")),
        Err(_) => Err(format!("expected a number from 0 to 100 as a string (e.g. \"25\"), got `{s}`")),
    }
}

fn latency(s: &str) -> Result<(), String> {
    let unit_start = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(unit_start);
    let num_ok = match num.split_once('.') {
        Some((i, f)) => !i.is_empty() && !f.is_empty() && i.bytes().chain(f.bytes()).all(|b| b.is_ascii_digit()),
        None => !num.is_empty(),
    };
    if num_ok && matches!(unit, "ns" | "us" | "ms" | "s" | "m" | "h") {
        Ok(())
    } else {
        Err(format!("expected a number and one unit (ns, us, ms, s, m, h) such as \"100ms\", got `{s}`"))
    }
}

fn bandwidth_rate(s: &str) -> Result<(), String> {
    let lower = s.trim().to_ascii_lowercase();
    for unit in ["tbps", "gbps", "mbps", "kbps", "bps"] {
        if let Some(n) = lower.strip_suffix(unit)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(());
        }
    }
    Err(format!("expected an integer rate with a unit (bps, kbps, mbps, gbps, tbps) such as \"1mbps\", got `{s}`"))
}

/// A StressChaos memory size: `256MB`, `1GiB` (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB) or `25%`.
pub fn memory_size(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "expected a size such as \"256MB\", \"1GiB\" or \"25%\" (units B, KB/KiB, MB/MiB, GB/GiB, TB/TiB), got `{s}`"
        )
    };
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    if unit == "%" {
        return if value > 0.0 && value <= 100.0 { Ok(()) } else { Err(bad()) };
    }
    let units = ["", "b", "kb", "kib", "mb", "mib", "gb", "gib", "tb", "tib"];
    if value > 0.0 && units.contains(&unit.to_ascii_lowercase().as_str()) { Ok(()) } else { Err(bad()) }
}

/// A DNS-1123 label (namespace, container name): at most 63 of `a-z0-9-`, alphanumeric ends.
pub fn dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a DNS-1123 label (at most 63 lowercase letters, digits and '-', alphanumeric at both ends), got `{s}`"
        ))
    }
}

/// A DNS-1123 subdomain (object and node names): dot-separated labels, at most 253 characters.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| dns_label(l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!("expected a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253), got `{s}`"))
    }
}

fn label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A Kubernetes label key: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63
/// alphanumerics, `-`, `_`, `.`.
pub fn label_key(s: &str) -> Result<(), String> {
    let ok = match s.split_once('/') {
        Some((prefix, name)) => dns_subdomain(prefix).is_ok() && label_name(name),
        None => label_name(s),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a label key such as `app` or `example.com/role` (at most 63 alphanumerics, '-', '_', '.'), got `{s}`"
        ))
    }
}

/// A Kubernetes label value: empty, or at most 63 alphanumerics, `-`, `_`, `.` with
/// alphanumeric ends.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || label_name(s) {
        Ok(())
    } else {
        Err(format!(
            "expected a label value (at most 63 alphanumerics, '-', '_', '.', alphanumeric at both ends), got `{s}`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn go_durations_parse_as_go_does() {
        let ok = |s: &str| parse_go_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("30s"), (false, Duration::from_secs(30)));
        assert_eq!(ok("1m30s"), (false, Duration::from_secs(90)));
        assert_eq!(ok("2h"), (false, Duration::from_secs(7200)));
        assert_eq!(ok("1.5h"), (false, Duration::from_secs(5400)));
        assert_eq!(ok("300ms"), (false, Duration::from_millis(300)));
        assert_eq!(ok("2h45m"), (false, Duration::from_secs(9900)));
        assert_eq!(ok("10us"), (false, Duration::from_micros(10)));
        assert_eq!(ok("10\u{b5}s"), (false, Duration::from_micros(10)));
        assert_eq!(ok(".5s"), (false, Duration::from_millis(500)));
        assert_eq!(ok("-1.5h"), (true, Duration::from_secs(5400)));
        assert_eq!(ok("0"), (false, Duration::ZERO));
        for bad in ["", "1d", "30", "s", ".s", "1.5", "30 s", "1h-5m", "3000000h", "+", "1w"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("-5s").is_err());
        assert_eq!(positive_duration("5s"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn percentages_latency_sizes_and_rates() {
        assert_eq!(percent("25"), Ok(25.0));
        assert_eq!(percent("12.5"), Ok(12.5));
        assert_eq!(percent("0"), Ok(0.0));
        assert_eq!(percent("100"), Ok(100.0));
        for bad in ["25%", "101", "-1", "x", "", "NaN", "inf"] {
            assert!(percent(bad).is_err(), "{bad:?}");
        }
        for good in ["100ms", "1.5s", "10us", "2h", "0ns"] {
            assert!(latency(good).is_ok(), "{good}");
        }
        for bad in ["100", "ms", "1m30s", "1.s", ".5s", "10 ms", "1d"] {
            assert!(latency(bad).is_err(), "{bad}");
        }
        for good in ["256MB", "1GiB", "25%", "100", "512kb", "1.5GB"] {
            assert!(memory_size(good).is_ok(), "{good}");
        }
        for bad in ["0MB", "lots", "1PB", "150%", "0%", "MB"] {
            assert!(memory_size(bad).is_err(), "{bad}");
        }
        for good in ["1mbps", "100KBPS", "10bps"] {
            assert!(bandwidth_rate(good).is_ok(), "{good}");
        }
        for bad in ["1mb", "fast", "1.5mbps", "mbps"] {
            assert!(bandwidth_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_labels() {
        assert!(dns_label("demo-1").is_ok());
        assert!(dns_label("Demo").is_err());
        assert!(dns_label("-a").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(dns_subdomain("web-0.db").is_ok());
        assert!(dns_subdomain("web..0").is_err());
        assert!(label_key("app").is_ok());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("Bad Key").is_err());
        assert!(label_key("/name").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_3").is_ok());
        assert!(label_value("-x").is_err());
        assert_eq!(go_atoi("+3"), Some(3));
        assert_eq!(go_atoi("3.0"), None);
        assert_eq!(closest("labelSelector", &["labelSelectors", "namespaces"]), Some("labelSelectors"));
        assert_eq!(closest("zzzzzz", &["labelSelectors"]), None);
    }
}
