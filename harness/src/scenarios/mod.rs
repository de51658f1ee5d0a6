//! The fault scenario library: named Chaos Mesh objects with typed parameters.
//!
//! Each scenario is one YAML file in `scenarios/` (format in `scenarios/README.md`):
//!
//! ```yaml
//! name: primary-network-loss-50          # must equal the file name
//! description: Half of the primary's packets are lost.
//! parameters:
//!   - name: primary
//!     type: labels                       # string | integer | duration | percent | labels | bool
//!     default: {app: db, role: primary}
//!     description: Labels of the primary's pod.
//! resource:                              # a Chaos Mesh object with ${param} placeholders
//!   apiVersion: chaos-mesh.org/v1alpha1
//!   kind: NetworkChaos
//!   metadata: {name: primary-network-loss-50, namespace: "${namespace}"}
//!   spec:
//!     action: loss
//!     mode: all
//!     selector:
//!       namespaces: ["${namespace}"]
//!       labelSelectors: ${primary}
//!     loss: {loss: "50"}
//! ```
//!
//! `${namespace}` is built in: the namespace of the run (`--namespace`), also the only namespace
//! the rendered object may name. An unquoted whole placeholder keeps the parameter's type
//! (integer, bool, labels mapping); a quoted one or one inside a longer string is text. `$${`
//! writes a literal `${`.
//!
//! Loading checks the file (unknown keys, types, defaults, placeholders that name no parameter,
//! parameters never used); rendering checks the values and then validates the result with
//! [`crate::chaos::validate`]. Every error names the file, the line and what was expected, and
//! nothing is returned unless everything is valid.

mod params;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

pub use params::{Bounds, ParamType, ParamValue};
use yaml::{Located, Node};

use crate::chaos::validate::{Finding, ValidateOptions, dns_label, validate_value};
use crate::chaos::{ChaosKind, ChaosResource};

/// The built-in parameter every scenario has: the namespace of the run.
pub const NAMESPACE_PARAM: &str = "namespace";

/// Namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The library compiled into hadrill: `scenarios/*.yaml` of the repository.
pub const BUILTIN: &[(&str, &str)] = &[
    ("scenarios/all-pods-kill.yaml", include_str!("../../../scenarios/all-pods-kill.yaml")),
    ("scenarios/controller-leader-kill.yaml", include_str!("../../../scenarios/controller-leader-kill.yaml")),
    ("scenarios/primary-container-kill.yaml", include_str!("../../../scenarios/primary-container-kill.yaml")),
    ("scenarios/primary-cpu-stress.yaml", include_str!("../../../scenarios/primary-cpu-stress.yaml")),
    ("scenarios/primary-memory-stress.yaml", include_str!("../../../scenarios/primary-memory-stress.yaml")),
    ("scenarios/primary-network-delay.yaml", include_str!("../../../scenarios/primary-network-delay.yaml")),
    ("scenarios/primary-network-loss-50.yaml", include_str!("../../../scenarios/primary-network-loss-50.yaml")),
    ("scenarios/primary-node-network-loss.yaml", include_str!("../../../scenarios/primary-node-network-loss.yaml")),
    ("scenarios/primary-pod-failure.yaml", include_str!("../../../scenarios/primary-pod-failure.yaml")),
    ("scenarios/primary-pod-kill.yaml", include_str!("../../../scenarios/primary-pod-kill.yaml")),
    ("scenarios/standby-partition.yaml", include_str!("../../../scenarios/standby-partition.yaml")),
];

// ---------------------------------------------------------------------------------------------
// Errors

/// One problem at a place in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given (empty when the problem is not in a file).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Diagnostic {
    fn at(file: &str, loc: Location, message: impl Into<String>) -> Self {
        let known = loc.line() > 0;
        Self {
            file: file.to_string(),
            line: known.then(|| loc.line()),
            column: known.then(|| loc.column()),
            message: message.into(),
        }
    }

    fn in_file(file: &str, message: impl Into<String>) -> Self {
        Self { file: file.to_string(), line: None, column: None, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            f.write_str(&self.file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a scenario could not be loaded or rendered: one or more diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl From<Diagnostic> for ScenarioError {
    fn from(d: Diagnostic) -> Self {
        Self { diagnostics: vec![d] }
    }
}

fn fail_if_any(diagnostics: Vec<Diagnostic>) -> Result<(), ScenarioError> {
    if diagnostics.is_empty() { Ok(()) } else { Err(ScenarioError { diagnostics }) }
}

// ---------------------------------------------------------------------------------------------
// The file format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    name: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    parameters: Option<Spanned<Vec<Spanned<ParamDoc>>>>,
    resource: Located,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamDoc {
    name: Spanned<String>,
    #[serde(rename = "type")]
    ty: Spanned<String>,
    #[serde(default)]
    default: Option<Located>,
    description: Spanned<String>,
    #[serde(default)]
    minimum: Option<Spanned<i64>>,
    #[serde(default)]
    maximum: Option<Spanned<i64>>,
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// Its name, as in `${name}`.
    pub name: String,
    /// Its type.
    pub ty: ParamType,
    /// Bounds (integers only).
    pub bounds: Bounds,
    /// The default; a parameter without one must be set.
    pub default: Option<ParamValue>,
    /// What it means.
    pub description: String,
    /// Where it is declared.
    pub location: Location,
}

/// A loaded scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (the file name without `.yaml`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// The file it came from, as given.
    pub file: String,
    /// Its parameters, in file order (without the built-in `namespace`).
    pub parameters: Vec<Parameter>,
    /// The kind of chaos object it renders.
    pub kind: ChaosKind,
    /// The action, as in the template (`pod-kill`; `stress:cpu` for StressChaos).
    pub action: String,
    parameters_location: Location,
    template: Located,
    source: String,
}

/// How to render a scenario.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The run's namespace: `${namespace}`, and the only namespace the object may name.
    pub namespace: String,
    /// `name=value` settings, as text (`--set loss=50`, `--set primary=app=db,role=primary`).
    pub set: Vec<(String, String)>,
    /// Accept selectors that pick every pod of the namespace.
    pub allow_namespace_wide_selector: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { namespace: DEFAULT_NAMESPACE.into(), set: Vec::new(), allow_namespace_wide_selector: false }
    }
}

impl RenderOptions {
    /// Rendering into `namespace` with the defaults.
    pub fn in_namespace(namespace: &str) -> Self {
        Self { namespace: namespace.into(), ..Self::default() }
    }

    /// The same options with `name` set to `value`.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.set.push((name.into(), value.into()));
        self
    }
}

/// A rendered, validated scenario.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The scenario's name.
    pub scenario: String,
    /// The chaos object, ready to create.
    pub resource: ChaosResource,
    /// The parameter values used (the built-in `namespace` included).
    pub values: BTreeMap<String, ParamValue>,
    /// Validation warnings, located in the template.
    pub warnings: Vec<Diagnostic>,
}

impl Rendered {
    /// The object as YAML.
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        self.resource.to_yaml()
    }
}

// ---------------------------------------------------------------------------------------------
// Placeholders

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Param(String),
}

/// Splits a template string into text and `${param}` pieces.
fn pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            let end = r.find('}').ok_or_else(|| format!("unterminated placeholder in `{s}`: expected `${{name}}`"))?;
            let name = &r[..end];
            if !is_param_name(name) {
                return Err(format!(
                    "bad placeholder `${{{name}}}`: expected a parameter name (lowercase letters, digits, _), or `$${{` for a literal `${{`"
                ));
            }
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Param(name.to_string()));
            rest = &r[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn is_param_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether the scalar at `loc` is written quoted (or as a block scalar) in `source`.
fn is_quoted(source: &str, loc: Location) -> bool {
    let (Ok(line), Ok(col)) = (usize::try_from(loc.line()), usize::try_from(loc.column())) else {
        return false;
    };
    if line == 0 || col == 0 {
        return false;
    }
    source
        .lines()
        .nth(line - 1)
        .and_then(|l| l.chars().nth(col - 1))
        .is_some_and(|c| matches!(c, '"' | '\'' | '|' | '>'))
}

// ---------------------------------------------------------------------------------------------
// Loading

impl Scenario {
    /// Loads one scenario from `text`; `file` names it in messages and must be `<name>.yaml`.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let doc: FileDoc = serde_saphyr::from_str(text).map_err(|e| {
            let loc = e.location().unwrap_or(Location::UNKNOWN);
            let plain = e.without_snippet().to_string();
            let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
            let mut message = plain.strip_suffix(&suffix).unwrap_or(&plain).to_string();
            if message.starts_with("missing field") || message.starts_with("invalid type") {
                message.push_str(" (a scenario is a mapping with name, description, parameters, resource)");
            }
            Diagnostic::at(file, loc, message)
        })?;
        let mut diags = Vec::new();

        let stem = Path::new(file).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if let Err(e) = dns_label(&doc.name.value) {
            diags.push(Diagnostic::at(file, doc.name.referenced, format!("name: {e}")));
        } else if doc.name.value != stem {
            diags.push(Diagnostic::at(
                file,
                doc.name.referenced,
                format!("name `{}` must match the file name (expected `{stem}`)", doc.name.value),
            ));
        }
        if doc.description.value.trim().is_empty() {
            diags.push(Diagnostic::at(file, doc.description.referenced, "description: expected a sentence or two"));
        }

        let mut parameters: Vec<Parameter> = Vec::new();
        let parameters_location = doc.parameters.as_ref().map(|p| p.referenced).unwrap_or(Location::UNKNOWN);
        let mut broken = BTreeSet::new();
        for p in doc.parameters.map(|p| p.value).unwrap_or_default() {
            let declared = p.value.name.value.clone();
            match Self::parameter(file, p) {
                Ok(param) => {
                    if param.name == NAMESPACE_PARAM {
                        diags.push(Diagnostic::at(
                            file,
                            param.location,
                            "parameter `namespace` is built in (set with --namespace); do not declare it",
                        ));
                    } else if parameters.iter().any(|q| q.name == param.name) {
                        diags.push(Diagnostic::at(
                            file,
                            param.location,
                            format!("parameter `{}` is declared twice", param.name),
                        ));
                    } else {
                        parameters.push(param);
                    }
                }
                Err(mut d) => {
                    diags.append(&mut d);
                    broken.insert(declared);
                }
            }
        }

        let template = doc.resource;
        // Placeholders of parameters that failed to load are not reported again.
        let mut used = broken;
        check_template(file, text, &template, &parameters, &mut used, &mut diags);
        for p in &parameters {
            if !used.contains(&p.name) {
                diags.push(Diagnostic::at(
                    file,
                    p.location,
                    format!("parameter `{}` is declared but never used in resource", p.name),
                ));
            }
        }
        let (kind, action) = match summarize(file, &template) {
            Ok(ka) => ka,
            Err(d) => {
                diags.push(d);
                (ChaosKind::PodChaos, String::new())
            }
        };
        fail_if_any(diags)?;
        Ok(Scenario {
            name: doc.name.value,
            description: doc.description.value.trim().to_string(),
            file: file.to_string(),
            parameters,
            kind,
            action,
            parameters_location,
            template,
            source: text.to_string(),
        })
    }

    fn parameter(file: &str, p: Spanned<ParamDoc>) -> Result<Parameter, Vec<Diagnostic>> {
        let location = p.referenced;
        let p = p.value;
        let mut diags = Vec::new();
        let name = p.name.value.clone();
        if !is_param_name(&name) {
            diags.push(Diagnostic::at(
                file,
                p.name.referenced,
                format!("parameter name `{name}`: expected lowercase letters, digits and _ (starting with a letter)"),
            ));
        }
        let ty = match ParamType::parse(&p.ty.value) {
            Some(t) => Some(t),
            None => {
                let all: Vec<&str> = ParamType::ALL.iter().map(|t| t.as_str()).collect();
                diags.push(Diagnostic::at(
                    file,
                    p.ty.referenced,
                    format!("parameter `{name}`: unknown type `{}`, expected one of {}", p.ty.value, all.join(", ")),
                ));
                None
            }
        };
        let bounds =
            Bounds { minimum: p.minimum.as_ref().map(|m| m.value), maximum: p.maximum.as_ref().map(|m| m.value) };
        if ty.is_some_and(|t| t != ParamType::Integer) {
            for b in [&p.minimum, &p.maximum].into_iter().flatten() {
                diags.push(Diagnostic::at(
                    file,
                    b.referenced,
                    format!("parameter `{name}`: minimum/maximum only apply to integers"),
                ));
            }
        }
        if p.description.value.trim().is_empty() {
            diags.push(Diagnostic::at(
                file,
                p.description.referenced,
                format!("parameter `{name}`: description is empty"),
            ));
        }
        let default = match (ty, &p.default) {
            (Some(t), Some(d)) if d.value != Node::Null => match params::parse_node(t, bounds, &d.value) {
                Ok(v) => Some(v),
                Err(e) => {
                    diags.push(Diagnostic::at(file, d.referenced, format!("default of parameter `{name}` ({t}): {e}")));
                    None
                }
            },
            _ => None,
        };
        match ty {
            Some(ty) if diags.is_empty() => Ok(Parameter {
                name,
                ty,
                bounds,
                default,
                description: p.description.value.trim().to_string(),
                location,
            }),
            _ => Err(diags),
        }
    }

    /// The parameter named `name`.
    pub fn parameter_named(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// Renders with `options` and validates the result. Errors name the file and line: of the
    /// parameter declaration for a bad or missing value, of the template node for a field
    /// Chaos Mesh would refuse.
    pub fn render(&self, options: &RenderOptions) -> Result<Rendered, ScenarioError> {
        let file = self.file.as_str();
        let mut diags = Vec::new();
        let mut values: BTreeMap<String, ParamValue> = BTreeMap::new();
        match dns_label(&options.namespace) {
            Ok(()) => {
                values.insert(NAMESPACE_PARAM.into(), ParamValue::String(options.namespace.clone()));
            }
            Err(e) => diags.push(Diagnostic::in_file(file, format!("--namespace: {e}"))),
        }
        let mut set: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, text) in &options.set {
            if name == NAMESPACE_PARAM {
                diags.push(Diagnostic::in_file(file, "set the namespace with --namespace, not --set namespace=..."));
                continue;
            }
            match self.parameter_named(name) {
                None => {
                    let mut known: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
                    if known.is_empty() {
                        known.push("(none)");
                    }
                    diags.push(Diagnostic::at(
                        file,
                        self.parameters_location,
                        format!(
                            "unknown parameter `{name}` for scenario {}; its parameters are: {}",
                            self.name,
                            known.join(", ")
                        ),
                    ));
                }
                Some(_) => {
                    if set.insert(name, text).is_some() {
                        diags.push(Diagnostic::in_file(file, format!("parameter `{name}` is set twice")));
                    }
                }
            }
        }
        for p in &self.parameters {
            match (set.get(p.name.as_str()), &p.default) {
                (Some(text), _) => match params::parse_text(p.ty, p.bounds, text) {
                    Ok(v) => {
                        values.insert(p.name.clone(), v);
                    }
                    Err(e) => diags.push(Diagnostic::at(
                        file,
                        p.location,
                        format!("parameter `{}` ({}) set to `{text}`: {e}", p.name, p.ty),
                    )),
                },
                (None, Some(d)) => {
                    values.insert(p.name.clone(), d.clone());
                }
                (None, None) => diags.push(Diagnostic::at(
                    file,
                    p.location,
                    format!(
                        "parameter `{}` ({}) has no default: pass --set {}=<{}>",
                        p.name,
                        p.ty,
                        p.name,
                        p.ty.expected(p.bounds)
                    ),
                )),
            }
        }
        fail_if_any(diags)?;

        let mut diags = Vec::new();
        let value = substitute(file, &self.source, &self.template, &values, &mut diags);
        fail_if_any(diags)?;

        let validate_options = ValidateOptions::for_namespaces([options.namespace.clone()])
            .with_namespace_wide_selector(options.allow_namespace_wide_selector);
        match validate_value(&value, &validate_options) {
            Ok(v) => Ok(Rendered {
                scenario: self.name.clone(),
                resource: v.resource,
                warnings: v.warnings.iter().map(|w| self.locate(w, &values)).collect(),
                values,
            }),
            Err(e) => Err(ScenarioError { diagnostics: e.errors.iter().map(|f| self.locate(f, &values)).collect() }),
        }
    }

    /// Places a validation finding at the template node of its path, naming the parameter
    /// that supplied the value.
    fn locate(&self, finding: &Finding, values: &BTreeMap<String, ParamValue>) -> Diagnostic {
        let (node, location) = node_at(&self.template, &finding.path);
        let mut message = finding.to_string();
        if let Node::Str(s) = &node.value
            && let Ok(pieces) = pieces(s)
        {
            let from: Vec<String> = pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Param(n) => {
                        Some(format!("`{n}` = {}", values.get(n).map(|v| v.to_string()).unwrap_or_default()))
                    }
                    Piece::Text(_) => None,
                })
                .collect();
            if !from.is_empty() {
                message.push_str(&format!(" (from parameter {})", from.join(", ")));
            }
        }
        Diagnostic::at(&self.file, location, format!("{}: {message}", self.kind))
    }
}

/// The deepest template node along `path` (`spec.selector.namespaces[0]`) and where to point:
/// the value for a scalar or a list item, the key for a mapping or list (or for the parent
/// of a missing field).
fn node_at<'a>(root: &'a Located, path: &str) -> (&'a Located, Location) {
    let mut node = root;
    let mut key_loc = root.referenced;
    let point = |node: &Located, key_loc: Location| match node.value {
        Node::Map(_) | Node::Seq(_) => key_loc,
        _ => node.referenced,
    };
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        let next = match &node.value {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.value == key),
            _ => None,
        };
        match next {
            Some((k, v)) => {
                node = v;
                key_loc = k.referenced;
            }
            None => return (node, key_loc),
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: Option<usize> = index.trim_end_matches(']').parse().ok();
            match (&node.value, i) {
                (Node::Seq(items), Some(i)) if i < items.len() => {
                    node = &items[i];
                    key_loc = node.referenced;
                }
                _ => return (node, key_loc),
            }
        }
    }
    (node, point(node, key_loc))
}

/// Checks every placeholder of the template: declared, and labels only as a whole unquoted value.
fn check_template(
    file: &str,
    source: &str,
    node: &Located,
    parameters: &[Parameter],
    used: &mut BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let ctx = CheckCtx { file, source, parameters };
    ctx.node(node, used, diags);
}

struct CheckCtx<'a> {
    file: &'a str,
    source: &'a str,
    parameters: &'a [Parameter],
}

impl CheckCtx<'_> {
    fn node(&self, node: &Located, used: &mut BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
        match &node.value {
            Node::Str(s) => self.string(s, node.referenced, true, used, diags),
            Node::Seq(items) => {
                for item in items {
                    self.node(item, used, diags);
                }
            }
            Node::Map(entries) => {
                for (k, v) in entries {
                    self.string(&k.value, k.referenced, false, used, diags);
                    self.node(v, used, diags);
                }
            }
            _ => {}
        }
    }

    fn string(
        &self,
        s: &str,
        loc: Location,
        whole_allowed: bool,
        used: &mut BTreeSet<String>,
        diags: &mut Vec<Diagnostic>,
    ) {
        let file = self.file;
        let pieces = match pieces(s) {
            Ok(p) => p,
            Err(e) => {
                diags.push(Diagnostic::at(file, loc, e));
                return;
            }
        };
        let whole = pieces.len() == 1 && whole_allowed && !is_quoted(self.source, loc);
        for piece in &pieces {
            let Piece::Param(name) = piece else { continue };
            if name == NAMESPACE_PARAM {
                continue;
            }
            match self.parameters.iter().find(|p| &p.name == name) {
                None if used.contains(name) => {}
                None => {
                    let mut known: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
                    known.push(NAMESPACE_PARAM);
                    diags.push(Diagnostic::at(
                        file,
                        loc,
                        format!("placeholder `${{{name}}}` names no parameter; declared: {}", known.join(", ")),
                    ));
                }
                Some(p) => {
                    used.insert(name.clone());
                    if p.ty == ParamType::Labels && !whole {
                        diags.push(Diagnostic::at(
                            file,
                            loc,
                            format!("labels parameter `{name}` must be a whole unquoted value (e.g. `labelSelectors: ${{{name}}}`)"),
                        ));
                    }
                }
            }
        }
    }
}

/// Kind and action of a template, checking `apiVersion` and `kind` are literal and supported.
fn summarize(file: &str, template: &Located) -> Result<(ChaosKind, String), Diagnostic> {
    let names = ChaosKind::ALL.map(ChaosKind::as_str).join(", ");
    let Node::Map(_) = &template.value else {
        return Err(Diagnostic::at(file, template.referenced, "resource: expected a Chaos Mesh object (a mapping)"));
    };
    let kind_node = template.value.get("kind").ok_or_else(|| {
        Diagnostic::at(file, template.referenced, format!("resource.kind is missing: expected one of {names}"))
    })?;
    let kind = kind_node.value.as_str().and_then(ChaosKind::from_kind).ok_or_else(|| {
        Diagnostic::at(
            file,
            kind_node.referenced,
            format!("resource.kind: expected one of {names} (written out, no placeholder)"),
        )
    })?;
    let spec = template.value.get("spec");
    let action = match kind {
        // scope/target/action of the (first) experiment, as ChaosResource::action gives it.
        ChaosKind::ChaosBlade => {
            let exp = spec.and_then(|s| s.value.get("experiments")).and_then(|e| match &e.value {
                Node::Seq(items) => items.first(),
                _ => None,
            });
            let field = |f: &str| exp.and_then(|e| e.value.get(f)).and_then(|v| v.value.as_str()).unwrap_or("?");
            format!("{}/{}/{}", field("scope"), field("target"), field("action"))
        }
        ChaosKind::StressChaos => {
            let stressors: Vec<&str> = match spec.and_then(|s| s.value.get("stressors")).map(|s| &s.value) {
                Some(Node::Map(entries)) => entries.iter().map(|(k, _)| k.value.as_str()).collect(),
                _ => Vec::new(),
            };
            if stressors.is_empty() { "stress".to_string() } else { format!("stress:{}", stressors.join("+")) }
        }
        _ => spec
            .and_then(|s| s.value.get("action"))
            .and_then(|a| a.value.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| "?".to_string()),
    };
    Ok((kind, action))
}

/// The template with every placeholder replaced.
fn substitute(
    file: &str,
    source: &str,
    node: &Located,
    values: &BTreeMap<String, ParamValue>,
    diags: &mut Vec<Diagnostic>,
) -> Value {
    SubstCtx { file, source, values }.node(node, diags)
}

struct SubstCtx<'a> {
    file: &'a str,
    source: &'a str,
    values: &'a BTreeMap<String, ParamValue>,
}

impl SubstCtx<'_> {
    fn node(&self, node: &Located, diags: &mut Vec<Diagnostic>) -> Value {
        match &node.value {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            Node::Str(s) => self.string(s, node.referenced, true, diags),
            Node::Seq(items) => Value::Array(items.iter().map(|i| self.node(i, diags)).collect()),
            Node::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match self.string(&k.value, k.referenced, false, diags) {
                        Value::String(s) => s,
                        _ => continue,
                    };
                    let value = self.node(v, diags);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        }
    }

    fn string(&self, s: &str, loc: Location, whole_allowed: bool, diags: &mut Vec<Diagnostic>) -> Value {
        let pieces = match pieces(s) {
            Ok(p) => p,
            Err(e) => {
                diags.push(Diagnostic::at(self.file, loc, e));
                return Value::Null;
            }
        };
        if let [Piece::Param(name)] = pieces.as_slice()
            && whole_allowed
            && !is_quoted(self.source, loc)
            && let Some(v) = self.values.get(name)
        {
            return v.to_json();
        }
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Param(name) => match self.values.get(&name) {
                    Some(v) => out.push_str(&v.to_string()),
                    None => diags.push(Diagnostic::at(self.file, loc, format!("no value for `${{{name}}}`"))),
                },
            }
        }
        Value::String(out)
    }
}

// ---------------------------------------------------------------------------------------------
// The library

/// A set of scenarios, by name.
#[derive(Debug, Clone)]
pub struct Library {
    scenarios: Vec<Scenario>,
}

impl Library {
    /// The library compiled into hadrill ([`BUILTIN`]).
    pub fn builtin() -> Result<Library, ScenarioError> {
        Self::from_sources(BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string())))
    }

    /// Every `*.yaml` file of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Library, ScenarioError> {
        let io = |e: std::io::Error| Diagnostic::in_file(&dir.display().to_string(), format!("cannot read: {e}"));
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
        files.sort();
        let mut sources = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Diagnostic::in_file(&path.display().to_string(), format!("cannot read: {e}")))?;
            sources.push((path.display().to_string(), text));
        }
        Self::from_sources(sources)
    }

    /// Scenarios from `(file, text)` pairs; every file's problems are reported together.
    pub fn from_sources(sources: impl IntoIterator<Item = (String, String)>) -> Result<Library, ScenarioError> {
        let mut scenarios: Vec<Scenario> = Vec::new();
        let mut diags = Vec::new();
        for (file, text) in sources {
            match Scenario::parse(&file, &text) {
                Ok(s) => {
                    if let Some(other) = scenarios.iter().find(|o| o.name == s.name) {
                        diags.push(Diagnostic::in_file(
                            &file,
                            format!("scenario `{}` is also defined in {}", s.name, other.file),
                        ));
                    } else {
                        scenarios.push(s);
                    }
                }
                Err(mut e) => diags.append(&mut e.diagnostics),
            }
        }
        fail_if_any(diags)?;
        scenarios.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Library { scenarios })
    }

    /// The scenarios, by name.
    pub fn scenarios(&self) -> &[Scenario] {
        &self.scenarios
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.scenarios.iter().map(|s| s.name.as_str()).collect()
    }

    /// The scenario named `name`; the error lists the known ones.
    pub fn get(&self, name: &str) -> Result<&Scenario, ScenarioError> {
        self.scenarios.iter().find(|s| s.name == name).ok_or_else(|| {
            Diagnostic::in_file("", format!("unknown scenario `{name}`; known scenarios: {}", self.names().join(", ")))
                .into()
        })
    }

    /// Renders the scenario named `name`.
    pub fn render(&self, name: &str, options: &RenderOptions) -> Result<Rendered, ScenarioError> {
        self.get(name)?.render(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_split_into_pieces() {
        let p = |s: &str| pieces(s).unwrap();
        assert_eq!(p("${a}"), vec![Piece::Param("a".into())]);
        assert_eq!(
            p("x-${a}-${b_2}"),
            vec![
                Piece::Text("x-".into()),
                Piece::Param("a".into()),
                Piece::Text("-".into()),
                Piece::Param("b_2".into())
            ]
        );
        assert_eq!(p("$${a} costs $5"), vec![Piece::Text("${a} costs $5".into())]);
        assert_eq!(p(""), vec![]);
        assert!(pieces("${a").is_err());
        assert!(pieces("${A}").is_err());
        assert!(pieces("${}").is_err());
    }

    #[test]
    fn quoting_is_read_from_the_source() {
        let src = "a: ${x}\nb: \"${x}\"\nc: '${x}'\n";
        let doc: Located = serde_saphyr::from_str(src).unwrap();
        let quoted: Vec<bool> =
            ["a", "b", "c"].iter().map(|k| is_quoted(src, doc.value.get(k).unwrap().referenced)).collect();
        assert_eq!(quoted, [false, true, true]);
    }
}
