//! Structural schemas of CustomResourceDefinitions: pruning, defaulting and
//! validation of custom resources, and the structural-schema check applied when
//! a CRD is created.
//!
//! [`default_prune_validate`] runs the steps kube-apiserver runs on a custom
//! resource in a create or update request, in its order:
//! 1. **pruning** of fields the schema does not specify (kept under
//!    `x-kubernetes-preserve-unknown-fields: true` or
//!    `additionalProperties: true`; described by an `additionalProperties`
//!    schema). `apiVersion`, `kind` and `metadata` are never pruned at the root
//!    nor inside `x-kubernetes-embedded-resource` objects. The pruned paths are
//!    returned (`spec.selector.labelSelector`, `spec.items[0].foo`) so that the
//!    caller can warn (`fieldValidation=Warn`) or fail (`Strict`).
//! 2. **null removal**: a `null` under a non-`nullable` property without
//!    `default` is dropped;
//! 3. **defaulting**: `default` of a property is set when the property is
//!    missing (or `null` and not `nullable`), recursively, also inside array
//!    items and `additionalProperties` values;
//! 4. **validation** with kube-apiserver's messages, e.g.
//!    `spec.mode: Unsupported value: "bogus": supported values: "one", "all"`,
//!    `spec.selector: Required value`,
//!    `spec.duration: Invalid value: "integer": spec.duration in body must be of type string: "integer"`.
//!
//! Keywords: `type`, `nullable`, `required`, `properties`,
//! `additionalProperties` (bool or schema), `items`, `enum`, `format`,
//! `pattern`, `minimum`/`maximum` with OpenAPI-v3.0 boolean
//! `exclusiveMinimum`/`exclusiveMaximum`, `multipleOf`,
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `uniqueItems`,
//! `minProperties`/`maxProperties`, `anyOf`/`oneOf`/`allOf`/`not`
//! (validation only, they never keep a field from pruning),
//! `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`, `x-kubernetes-list-type` (`set` and `map`
//! with `x-kubernetes-list-map-keys`: duplicates are `FieldValueDuplicate`).
//!
//! [`check_structural`] rejects a schema that kube-apiserver would refuse at
//! CRD creation (see its documentation for the list of rules).
//!
//! Simplified compared with Kubernetes:
//! * `metadata` is not touched at all: kube-apiserver prunes it to `ObjectMeta`
//!   fields and validates names and labels; the caller does that. At the root
//!   `apiVersion`/`kind`/`metadata` are neither validated nor counted for
//!   `required`; inside embedded resources `apiVersion` and `kind` must be
//!   non-empty strings (not parsed further).
//! * No CEL (`x-kubernetes-validations`), no ratcheting of unchanged invalid
//!   values on update, no `x-kubernetes-map-type`, no
//!   `x-kubernetes-list-type` check of item scalarity at runtime.
//! * Formats checked: `date-time` (RFC 3339, `T`, `t` or space), `date`,
//!   `uuid*`, `ipv4`, `ipv6`, `cidr`, `mac`, `hostname`, `byte`; all other
//!   formats (`int32`, `int64`, `duration`, ...) are accepted as
//!   kube-apiserver's string-only format checker does. As in kube-apiserver, a
//!   JSON number with an integral value (`2.0`) is an `integer`.
//! * For `anyOf`/`oneOf` without a valid branch, the errors of the branch
//!   with the fewest errors are reported (kube-openapi picks the branch that
//!   matched most checks).
//! * Values inside messages are rendered as Go would for scalars; objects and
//!   arrays are rendered as compact JSON (Go prints `map[string]interface {}`),
//!   except the list-map key of a `Duplicate` error, which imitates Go.
//! * Only the essential CRD-creation rules of [`check_structural`] exist; the
//!   other CRD validations (names, versions, printer columns, ...) are not
//!   here. A `nullable` node without `type` is caught by the "type must not be
//!   empty" rule (unless it is int-or-string or preserve-unknown-fields, which
//!   Kubernetes allows too).

use std::collections::HashMap;
use std::fmt;

use regex::Regex;
use serde_json::{Map, Value};

const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const EMBEDDED: &str = "x-kubernetes-embedded-resource";
const LIST_TYPE: &str = "x-kubernetes-list-type";
const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";

/// Why a field is invalid; one-to-one with the `reason` of a Kubernetes
/// `StatusCause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorReason {
    /// `FieldValueRequired`: a required field is missing.
    Required,
    /// `FieldValueInvalid`: the value breaks a rule (pattern, bounds, ...).
    Invalid,
    /// `FieldValueNotSupported`: the value is not one of the `enum` values.
    NotSupported,
    /// `FieldValueTypeInvalid`: the value has the wrong JSON type or format.
    TypeInvalid,
    /// `FieldValueTooLong`: a string is longer than `maxLength`.
    TooLong,
    /// `FieldValueTooMany`: a list or map has more than the allowed entries.
    TooMany,
    /// `FieldValueDuplicate`: a `set`/`map` list has a repeated entry.
    Duplicate,
}

impl FieldErrorReason {
    /// The Kubernetes `StatusCause.reason` string, e.g. `FieldValueRequired`.
    pub fn as_cause_type(&self) -> &'static str {
        match self {
            FieldErrorReason::Required => "FieldValueRequired",
            FieldErrorReason::Invalid => "FieldValueInvalid",
            FieldErrorReason::NotSupported => "FieldValueNotSupported",
            FieldErrorReason::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorReason::TooLong => "FieldValueTooLong",
            FieldErrorReason::TooMany => "FieldValueTooMany",
            FieldErrorReason::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// One validation error of a custom resource.
///
/// `field` and `message` are the `field` and `message` of the Kubernetes
/// `StatusCause`: `message` is the body without the field path, e.g.
/// `Required value` or `Unsupported value: "x": supported values: "a", "b"`.
/// [`fmt::Display`] gives the full `field: message` line that kube-apiserver
/// puts into the status message (`PodChaos.chaos-mesh.org "x" is invalid: [...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The path of the field: `spec.selector.mode`, `spec.containers[0].name`.
    pub field: String,
    /// The reason (maps to the `StatusCause` type).
    pub reason: FieldErrorReason,
    /// The message body, without the field path.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}

impl std::error::Error for FieldError {}

impl FieldError {
    /// `field.Required`: `Required value` (`: detail` when given).
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message =
            if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        FieldError { field: field.into(), reason: FieldErrorReason::Required, message }
    }

    /// `field.Invalid`: `Invalid value: <value>: detail`, where `value` is the
    /// JSON value rendered as kube-apiserver does (strings quoted).
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self::with_value(field, FieldErrorReason::Invalid, value, detail)
    }

    /// `field.TypeInvalid`: reads like `Invalid value` but has reason
    /// `FieldValueTypeInvalid`.
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self::with_value(field, FieldErrorReason::TypeInvalid, value, detail)
    }

    /// `field.NotSupported`: `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[String]) -> Self {
        let mut message = format!("Unsupported value: {}", render_value(value));
        if !supported.is_empty() {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            message.push_str(": supported values: ");
            message.push_str(&quoted.join(", "));
        }
        FieldError { field: field.into(), reason: FieldErrorReason::NotSupported, message }
    }

    /// `field.TooLong`: `Too long: may not be more than N bytes`.
    pub fn too_long(field: impl Into<String>, max: u64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        FieldError {
            field: field.into(),
            reason: FieldErrorReason::TooLong,
            message: format!("Too long: may not be more than {max} {unit}"),
        }
    }

    /// `field.TooMany`: `Too many: <actual>: must have at most N items`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: u64) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        FieldError {
            field: field.into(),
            reason: FieldErrorReason::TooMany,
            message: format!("Too many: {actual}: must have at most {max} {unit}"),
        }
    }

    /// `field.Duplicate`: `Duplicate value: <rendered>` (the value is passed
    /// already rendered).
    pub fn duplicate(field: impl Into<String>, rendered: &str) -> Self {
        FieldError {
            field: field.into(),
            reason: FieldErrorReason::Duplicate,
            message: format!("Duplicate value: {rendered}"),
        }
    }

    fn with_value(field: impl Into<String>, reason: FieldErrorReason, value: &Value, detail: &str) -> Self {
        let mut message = format!("Invalid value: {}", render_value(value));
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        FieldError { field: field.into(), reason, message }
    }
}

// ---------------------------------------------------------------------------
// Rendering helpers
// ---------------------------------------------------------------------------

/// Quotes like Go's `strconv.Quote` (`%q`).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Formats a float like Go's `%v` for the usual cases (`3`, `1.5`, `1e+21`).
fn fmt_f64(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else if f.is_finite() && f.abs() >= 1e21 {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        f.to_string()
    }
}

fn fmt_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() { n.to_string() } else { n.as_f64().map(fmt_f64).unwrap_or_else(|| n.to_string()) }
}

/// Renders a bad value inside an error message: strings quoted as Go's `%q`,
/// numbers and booleans plain, `null`, objects/arrays as compact JSON.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => fmt_number(n),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Renders a list-map key set as Go's `%#v` of a `map[string]interface{}`.
fn render_go_map(keys: &[(String, Value)]) -> String {
    let mut sorted: Vec<&(String, Value)> = keys.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let inner: Vec<String> = sorted
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Null => "interface {}(nil)".to_string(),
                other => render_value(other),
            };
            format!("{}:{value}", go_quote(k))
        })
        .collect();
    format!("map[string]interface {{}}{{{}}}", inner.join(", "))
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The `<path> in body` prefix of kube-openapi messages.
fn in_body(path: &str) -> String {
    if path.is_empty() { "in body".to_string() } else { format!("{path} in body") }
}

// ---------------------------------------------------------------------------
// Schema accessors
// ---------------------------------------------------------------------------

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn schema_type(s: &Value) -> Option<&str> {
    s.get("type").and_then(Value::as_str).filter(|t| !t.is_empty())
}

fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

enum Additional<'a> {
    Allow(bool),
    Schema(&'a Value),
}

fn additional(s: &Value) -> Option<Additional<'_>> {
    match s.get("additionalProperties")? {
        Value::Bool(b) => Some(Additional::Allow(*b)),
        v @ Value::Object(_) => Some(Additional::Schema(v)),
        _ => None,
    }
}

fn items(s: &Value) -> Option<&Value> {
    s.get("items").filter(|i| i.is_object())
}

fn nullable(s: &Value) -> bool {
    flag(s, "nullable")
}

/// The `default` of a schema node; a `null` default counts as none.
fn default_of(s: &Value) -> Option<&Value> {
    s.get("default").filter(|d| !d.is_null())
}

fn is_meta_key(k: &str) -> bool {
    matches!(k, "apiVersion" | "kind" | "metadata")
}

fn as_u64(s: &Value, key: &str) -> Option<u64> {
    let v = s.get(key)?;
    v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64))
}

fn sorted_keys(map: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort();
    keys
}

// ---------------------------------------------------------------------------
// JSON value helpers
// ---------------------------------------------------------------------------

/// The OpenAPI type name of a JSON value, as kube-openapi reports it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON integer, or a float with an integral value (kube-openapi accepts
/// those for `type: integer`).
fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0),
        _ => false,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        _ => true,
    }
}

/// Deep equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Compares a JSON number with a schema bound.
fn cmp_bound(n: &serde_json::Number, bound: f64) -> Option<std::cmp::Ordering> {
    if let Some(i) = n.as_i64()
        && bound.fract() == 0.0
        && bound >= i64::MIN as f64
        && bound <= i64::MAX as f64
    {
        return Some(i.cmp(&(bound as i64)));
    }
    n.as_f64()?.partial_cmp(&bound)
}

// ---------------------------------------------------------------------------
// String formats
// ---------------------------------------------------------------------------

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn num_in(s: &str, lo: u32, hi: u32) -> bool {
    all_digits(s) && s.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n))
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => {
            y.len() == 4 && all_digits(y) && m.len() == 2 && num_in(m, 1, 12) && d.len() == 2 && num_in(d, 1, 31)
        }
        _ => false,
    }
}

fn is_time_of_day(s: &str) -> bool {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    if frac.is_some_and(|f| !all_digits(f)) {
        return false;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    match parts.as_slice() {
        [h, m, sec] => {
            h.len() == 2 && num_in(h, 0, 23) && m.len() == 2 && num_in(m, 0, 59) && sec.len() == 2 && num_in(sec, 0, 60)
        }
        _ => false,
    }
}

/// RFC 3339 date-time: `2024-01-02T03:04:05(.123)?(Z|+01:00)`.
fn is_date_time(s: &str) -> bool {
    let Some(sep) = s.find(['T', 't', ' ']) else {
        return false;
    };
    let (date, rest) = (&s[..sep], &s[sep + 1..]);
    if !is_date(date) {
        return false;
    }
    let (time, zone_ok) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, true)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let zone = &rest[pos + 1..];
        let ok = match zone.split_once(':') {
            Some((h, m)) => h.len() == 2 && num_in(h, 0, 23) && m.len() == 2 && num_in(m, 0, 59),
            None => false,
        };
        (&rest[..pos], ok)
    } else {
        (rest, false)
    };
    zone_ok && is_time_of_day(time)
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    if let Ok(_v4) = ip.parse::<std::net::Ipv4Addr>() {
        num_in(bits, 0, 32)
    } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        num_in(bits, 0, 128)
    } else {
        false
    }
}

fn is_mac(s: &str) -> bool {
    let sep = if s.contains(':') { ':' } else { '-' };
    let parts: Vec<&str> = s.split(sep).collect();
    matches!(parts.len(), 6 | 8 | 20) && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_base64(s: &str) -> bool {
    let trimmed = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - trimmed.len() <= 2
        && trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether `s` has the string `format`; unknown formats always pass.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => is_date_time(s),
        "date" => is_date(s),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => is_uuid(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "hostname" => is_hostname(s),
        "byte" => is_base64(s),
        _ => true,
    }
}

// ---------------------------------------------------------------------------
// Pruning and defaulting
// ---------------------------------------------------------------------------

/// Removes fields the schema does not specify; records their paths.
fn prune(s: &Value, v: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let keep_meta = root || flag(s, EMBEDDED);
            let preserve = flag(s, PRESERVE);
            let props = properties(s);
            let add = additional(s);
            for key in sorted_keys(map) {
                if keep_meta && is_meta_key(&key) {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&key)).or(match add {
                    Some(Additional::Schema(a)) => Some(a),
                    _ => None,
                });
                let key_path = child(path, &key);
                if let Some(sub) = sub {
                    if let Some(value) = map.get_mut(&key) {
                        prune(sub, value, &key_path, false, pruned);
                    }
                } else if !(preserve || matches!(add, Some(Additional::Allow(true)))) {
                    map.remove(&key);
                    pruned.push(key_path);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(s) {
                for (i, item) in list.iter_mut().enumerate() {
                    prune(item_schema, item, &index(path, i), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Replaces or drops a `null` of a non-nullable field: the default if there
/// is one, else the field goes. Returns `false` when the field was dropped.
fn fix_null(map: &mut Map<String, Value>, key: &str, s: &Value) -> bool {
    if !matches!(map.get(key), Some(Value::Null)) || nullable(s) {
        return true;
    }
    match default_of(s) {
        Some(d) => {
            map.insert(key.to_string(), d.clone());
            true
        }
        None => {
            map.remove(key);
            false
        }
    }
}

/// Drops non-nullable nulls and applies `default`s, recursively.
fn apply_defaults(s: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(map) => {
            if let Some(props) = properties(s) {
                for (key, prop) in props {
                    if root && key == "metadata" {
                        continue;
                    }
                    if !map.contains_key(key) {
                        if let Some(d) = default_of(prop) {
                            map.insert(key.clone(), d.clone());
                        }
                    } else if !fix_null(map, key, prop) {
                        continue;
                    }
                    if let Some(value) = map.get_mut(key) {
                        apply_defaults(prop, value, false);
                    }
                }
            }
            if let Some(Additional::Schema(add)) = additional(s) {
                let known = properties(s);
                for key in sorted_keys(map) {
                    if (root && is_meta_key(&key)) || known.is_some_and(|p| p.contains_key(&key)) {
                        continue;
                    }
                    if !fix_null(map, &key, add) {
                        continue;
                    }
                    if let Some(value) = map.get_mut(&key) {
                        apply_defaults(add, value, false);
                    }
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(s) {
                for item in list.iter_mut() {
                    if item.is_null()
                        && !nullable(item_schema)
                        && let Some(d) = default_of(item_schema)
                    {
                        *item = d.clone();
                    }
                    apply_defaults(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Validates values against schema nodes; caches compiled `pattern`s.
#[derive(Default)]
struct Validator {
    patterns: HashMap<String, Option<Regex>>,
}

impl Validator {
    fn pattern(&mut self, pattern: &str) -> Option<&Regex> {
        self.patterns.entry(pattern.to_string()).or_insert_with(|| Regex::new(pattern).ok()).as_ref()
    }

    /// Validates `v` against `s`, appending errors.
    fn validate(&mut self, s: &Value, v: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
        if !s.is_object() {
            return;
        }
        if v.is_null() {
            if nullable(s) {
                return;
            }
            if let Some(t) = schema_type(s) {
                errs.push(type_error(path, t, "null"));
            } else if flag(s, INT_OR_STRING) {
                errs.push(type_error(path, "integer,string", "null"));
            }
            self.check_enum(s, v, path, errs);
            return;
        }
        let actual = json_type(v);
        if let Some(t) = schema_type(s) {
            if !type_matches(t, v) {
                errs.push(type_error(path, t, actual));
            }
        } else if flag(s, INT_OR_STRING) && !(v.is_string() || is_integer(v)) {
            errs.push(type_error(path, "integer,string", actual));
        }

        self.check_junctors(s, v, path, root, errs);

        match v {
            Value::String(st) => self.check_string(s, v, st, path, errs),
            Value::Number(n) => check_number(s, v, n, path, errs),
            Value::Array(list) => self.check_array(s, list, path, errs),
            _ => {}
        }
        self.check_enum(s, v, path, errs);
        if let Value::Object(map) = v {
            self.check_object(s, map, path, root, errs);
        }
    }

    fn errors_of(&mut self, s: &Value, v: &Value, path: &str, root: bool) -> Vec<FieldError> {
        let mut errs = Vec::new();
        self.validate(s, v, path, root, &mut errs);
        errs
    }

    fn check_junctors(&mut self, s: &Value, v: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
        let composite = |detail: String| FieldError::invalid(path, &Value::String(String::new()), &detail);
        if let Some(Value::Array(any_of)) = s.get("anyOf")
            && !any_of.is_empty()
        {
            let results: Vec<Vec<FieldError>> = any_of.iter().map(|sub| self.errors_of(sub, v, path, root)).collect();
            if results.iter().all(|r| !r.is_empty()) {
                errs.push(composite(format!("{} must validate at least one schema (anyOf)", go_quote(path))));
                errs.extend(best_failure(results));
            }
        }
        if let Some(Value::Array(one_of)) = s.get("oneOf")
            && !one_of.is_empty()
        {
            let results: Vec<Vec<FieldError>> = one_of.iter().map(|sub| self.errors_of(sub, v, path, root)).collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid == 0 {
                errs.push(composite(format!(
                    "{} must validate one and only one schema (oneOf). Found none valid",
                    go_quote(path)
                )));
                errs.extend(best_failure(results));
            } else if valid > 1 {
                errs.push(composite(format!(
                    "{} must validate one and only one schema (oneOf). Found {valid} valid alternatives",
                    go_quote(path)
                )));
            }
        }
        if let Some(Value::Array(all_of)) = s.get("allOf")
            && !all_of.is_empty()
        {
            let mut valid = 0;
            for sub in all_of {
                let r = self.errors_of(sub, v, path, root);
                if r.is_empty() {
                    valid += 1;
                }
                errs.extend(r);
            }
            if valid != all_of.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                errs.push(composite(format!("{} must validate all the schemas (allOf){none}", go_quote(path))));
            }
        }
        if let Some(not) = s.get("not").filter(|n| n.is_object())
            && self.errors_of(not, v, path, root).is_empty()
        {
            errs.push(composite(format!("{} must not validate the schema (not)", go_quote(path))));
        }
    }

    fn check_string(&mut self, s: &Value, v: &Value, st: &str, path: &str, errs: &mut Vec<FieldError>) {
        let len = st.chars().count() as u64;
        if let Some(max) = as_u64(s, "maxLength")
            && len > max
        {
            errs.push(FieldError::too_long(path, max));
        }
        if let Some(min) = as_u64(s, "minLength")
            && len < min
        {
            errs.push(FieldError::invalid(path, v, &format!("{} should be at least {min} chars long", in_body(path))));
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && let Some(re) = self.pattern(pattern)
            && !re.is_match(st)
        {
            errs.push(FieldError::invalid(path, v, &format!("{} should match '{pattern}'", in_body(path))));
        }
        if let Some(format) = s.get("format").and_then(Value::as_str)
            && !format_ok(format, st)
        {
            errs.push(FieldError::type_invalid(
                path,
                v,
                &format!("{} must be of type {format}: {}", in_body(path), go_quote(st)),
            ));
        }
    }

    fn check_array(&mut self, s: &Value, list: &[Value], path: &str, errs: &mut Vec<FieldError>) {
        let len = list.len();
        if let Some(min) = as_u64(s, "minItems")
            && (len as u64) < min
        {
            errs.push(FieldError::invalid(
                path,
                &Value::from(len),
                &format!("{} should have at least {min} items", in_body(path)),
            ));
        }
        if let Some(max) = as_u64(s, "maxItems")
            && len as u64 > max
        {
            errs.push(FieldError::too_many(path, len, max));
        }
        if flag(s, "uniqueItems") && list.iter().enumerate().any(|(i, a)| list[..i].iter().any(|b| json_eq(a, b))) {
            errs.push(FieldError::invalid(
                path,
                &Value::String(String::new()),
                &format!("{} shouldn't contain duplicates", in_body(path)),
            ));
        }
        if let Some(item_schema) = items(s) {
            for (i, item) in list.iter().enumerate() {
                self.validate(item_schema, item, &index(path, i), false, errs);
            }
        }
        match s.get(LIST_TYPE).and_then(Value::as_str) {
            Some("set") => {
                for (i, item) in list.iter().enumerate() {
                    if list[..i].iter().any(|b| json_eq(item, b)) {
                        errs.push(FieldError::duplicate(index(path, i), &render_value(item)));
                    }
                }
            }
            Some("map") => {
                let keys: Vec<&str> = s
                    .get(LIST_MAP_KEYS)
                    .and_then(Value::as_array)
                    .map(|k| k.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if keys.is_empty() {
                    return;
                }
                let key_of = |item: &Value| -> Vec<(String, Value)> {
                    keys.iter().map(|k| (k.to_string(), item.get(*k).cloned().unwrap_or(Value::Null))).collect()
                };
                let all: Vec<Vec<(String, Value)>> = list.iter().map(key_of).collect();
                for (i, key) in all.iter().enumerate() {
                    let same = |other: &Vec<(String, Value)>| other.iter().zip(key).all(|(a, b)| json_eq(&a.1, &b.1));
                    if all[..i].iter().any(same) {
                        errs.push(FieldError::duplicate(index(path, i), &render_go_map(key)));
                    }
                }
            }
            _ => {}
        }
    }

    fn check_enum(&mut self, s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
        let Some(Value::Array(allowed)) = s.get("enum") else {
            return;
        };
        if allowed.iter().any(|a| json_eq(a, v)) {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(st) => st.clone(),
                other => other.to_string(),
            })
            .collect();
        errs.push(FieldError::not_supported(path, v, &supported));
    }

    fn check_object(
        &mut self,
        s: &Value,
        map: &Map<String, Value>,
        path: &str,
        root: bool,
        errs: &mut Vec<FieldError>,
    ) {
        let count = map.len();
        if let Some(max) = as_u64(s, "maxProperties")
            && count as u64 > max
        {
            errs.push(FieldError::too_many(path, count, max));
        }
        if let Some(min) = as_u64(s, "minProperties")
            && (count as u64) < min
        {
            errs.push(FieldError::invalid(
                path,
                &Value::from(count),
                &format!("{} should have at least {min} properties", in_body(path)),
            ));
        }
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if root && is_meta_key(name) {
                    continue;
                }
                if !map.contains_key(name) {
                    errs.push(FieldError::required(child(path, name), ""));
                }
            }
        }
        let embedded = flag(s, EMBEDDED);
        if embedded {
            check_embedded(map, path, errs);
        }
        let props = properties(s);
        let add = additional(s);
        for key in sorted_keys(map) {
            if (root || embedded) && is_meta_key(&key) {
                continue;
            }
            let Some(value) = map.get(&key) else {
                continue;
            };
            let sub = props.and_then(|p| p.get(&key)).or(match add {
                Some(Additional::Schema(a)) => Some(a),
                _ => None,
            });
            if let Some(sub) = sub {
                self.validate(sub, value, &child(path, &key), false, errs);
            }
        }
    }
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::type_invalid(
        path,
        &Value::String(actual.to_string()),
        &format!("{} must be of type {expected}: {}", in_body(path), go_quote(actual)),
    )
}

/// The failing alternative with the fewest errors (first on a tie).
fn best_failure(results: Vec<Vec<FieldError>>) -> Vec<FieldError> {
    results.into_iter().filter(|r| !r.is_empty()).min_by_key(Vec::len).unwrap_or_default()
}

fn check_number(s: &Value, v: &Value, n: &serde_json::Number, path: &str, errs: &mut Vec<FieldError>) {
    use std::cmp::Ordering;
    if let Some(m) = s.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
    {
        let ok = match n.as_i64() {
            Some(i) if m.fract() == 0.0 && m <= i64::MAX as f64 => i % (m as i64) == 0,
            _ => n.as_f64().is_some_and(|f| {
                let q = f / m;
                (q - q.round()).abs() <= 1e-9 * q.abs().max(1.0)
            }),
        };
        if !ok {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{} should be a multiple of {}", in_body(path), fmt_f64(m)),
            ));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMaximum");
        let ord = cmp_bound(n, max);
        let bad = match ord {
            Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => exclusive,
            _ => false,
        };
        if bad {
            let rel = if exclusive { "less than" } else { "less than or equal to" };
            errs.push(FieldError::invalid(path, v, &format!("{} should be {rel} {}", in_body(path), fmt_f64(max))));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMinimum");
        let ord = cmp_bound(n, min);
        let bad = match ord {
            Some(Ordering::Less) => true,
            Some(Ordering::Equal) => exclusive,
            _ => false,
        };
        if bad {
            let rel = if exclusive { "greater than" } else { "greater than or equal to" };
            errs.push(FieldError::invalid(path, v, &format!("{} should be {rel} {}", in_body(path), fmt_f64(min))));
        }
    }
}

/// The checks kube-apiserver makes on `x-kubernetes-embedded-resource`
/// objects: `apiVersion` and `kind` are non-empty strings, `metadata` an object.
fn check_embedded(map: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    for key in ["apiVersion", "kind"] {
        let p = child(path, key);
        match map.get(key) {
            None => errs.push(FieldError::required(p, "must not be empty")),
            Some(Value::String(st)) if st.is_empty() => {
                errs.push(FieldError::invalid(p, &Value::String(String::new()), "must not be empty"));
            }
            Some(Value::String(_)) => {}
            Some(other) => errs.push(FieldError::invalid(p, other, "must be a string")),
        }
    }
    if let Some(meta) = map.get("metadata")
        && !meta.is_object()
    {
        errs.push(FieldError::invalid(child(path, "metadata"), meta, "must be an object"));
    }
}

/// Prunes, defaults and validates a custom resource against the
/// `openAPIV3Schema` of its version, in kube-apiserver's order (prune, drop
/// non-nullable nulls, apply defaults, validate).
///
/// On success returns the paths of the pruned unknown fields (in a stable,
/// depth-first order) for `fieldValidation=Warn`/`Strict`; on failure every
/// validation error. `apiVersion`, `kind` and `metadata` at the root are never
/// pruned and not validated here; `obj` is modified in place either way.
pub fn default_prune_validate(schema: &Value, obj: &mut Value) -> Result<Vec<String>, Vec<FieldError>> {
    let mut pruned = Vec::new();
    prune(schema, obj, "", true, &mut pruned);
    apply_defaults(schema, obj, true);
    let mut validator = Validator::default();
    let mut errs = Vec::new();
    validator.validate(schema, obj, "", true, &mut errs);
    if errs.is_empty() { Ok(pruned) } else { Err(errs) }
}

// ---------------------------------------------------------------------------
// Structural schema check
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

const VALID_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// `anyOf: [{type: integer}, {type: string}]`, the int-or-string exception.
fn is_int_or_string_any_of(s: &Value) -> bool {
    match s.get("anyOf").and_then(Value::as_array).map(Vec::as_slice) {
        Some([a, b]) => *a == serde_json::json!({"type": "integer"}) && *b == serde_json::json!({"type": "string"}),
        _ => false,
    }
}

fn is_int_or_string_all_of(s: &Value) -> bool {
    s.get("allOf").and_then(Value::as_array).and_then(|a| a.first()).is_some_and(is_int_or_string_any_of)
}

struct Checker {
    errs: Vec<String>,
}

impl Checker {
    fn push(&mut self, msg: String) {
        self.errs.push(msg);
    }

    fn check_pattern(&mut self, s: &Value, path: &str) {
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && let Err(e) = Regex::new(pattern)
        {
            let reason = e.to_string();
            let reason = reason.lines().last().unwrap_or("invalid pattern").trim();
            self.push(format!(
                "{path}.pattern: Invalid value: {}: must be a valid regular expression, but isn't: {reason}",
                go_quote(pattern)
            ));
        }
    }

    /// A node of the structural part of the schema.
    fn structural(&mut self, s: &Value, lvl: Level, path: &str) {
        let Some(obj) = s.as_object() else {
            self.push(format!("{path}: Invalid value: {s}: must be a schema object"));
            return;
        };
        let ty = obj.get("type");
        let type_str = ty.and_then(Value::as_str).unwrap_or("");
        match ty {
            None => {}
            Some(Value::String(t)) if t.is_empty() || VALID_TYPES.contains(&t.as_str()) => {}
            Some(other) => {
                let supported: Vec<String> = VALID_TYPES.iter().map(|t| go_quote(t)).collect();
                self.push(format!(
                    "{path}.type: Unsupported value: {}: supported values: {}",
                    render_value(other),
                    supported.join(", ")
                ));
            }
        }
        let preserve = flag(s, PRESERVE);
        let int_or_string = flag(s, INT_OR_STRING);
        let embedded = flag(s, EMBEDDED);
        if obj.get(PRESERVE) == Some(&Value::Bool(false)) {
            self.push(format!("{path}.{PRESERVE}: Invalid value: false: must be true or undefined"));
        }

        // items
        match obj.get("items") {
            Some(it @ Value::Object(_)) => self.structural(it, Level::Item, &format!("{path}.items")),
            Some(Value::Array(_)) => {
                self.push(format!("{path}.items: Forbidden: items must be a schema object and not an array"));
            }
            Some(other) => self.push(format!("{path}.items: Invalid value: {other}: must be a schema object")),
            None if type_str == "array" => {
                self.push(format!("{path}.items: Required value: must be specified"));
            }
            None => {}
        }

        // properties
        let props = properties(s);
        if let Some(props) = props {
            for key in sorted_keys(props) {
                if let Some(p) = props.get(&key) {
                    self.structural(p, Level::Field, &format!("{path}.properties[{key}]"));
                }
            }
        }

        // additionalProperties
        if let Some(add) = obj.get("additionalProperties") {
            if lvl == Level::Root {
                self.push(format!("{path}.additionalProperties: Forbidden: must not be used at the root"));
            }
            if props.is_some_and(|p| !p.is_empty()) && add != &Value::Bool(true) {
                self.push(format!(
                    "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
                ));
            }
            if embedded {
                self.push(format!(
                    "{path}.additionalProperties: Forbidden: must not be used if x-kubernetes-embedded-resource is set"
                ));
            }
            if add.is_object() {
                self.structural(add, Level::Field, &format!("{path}.additionalProperties"));
            }
        }

        if int_or_string && preserve {
            self.push(format!(
                "{path}.{PRESERVE}: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
            ));
        }
        if int_or_string && embedded {
            self.push(format!(
                "{path}.{EMBEDDED}: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
            ));
        }

        // junctors (value validation)
        let skip_any_of = is_int_or_string_any_of(s);
        let skip_first_all_of_any_of = is_int_or_string_all_of(s);
        self.junctors(s, skip_any_of, skip_first_all_of_any_of, path);
        self.check_pattern(s, path);

        if embedded && type_str != "object" {
            if type_str.is_empty() {
                self.push(format!(
                    "{path}.type: Required value: must be object if x-kubernetes-embedded-resource is true"
                ));
            } else {
                self.push(format!(
                    "{path}.type: Invalid value: {}: must be object if x-kubernetes-embedded-resource is true",
                    go_quote(type_str)
                ));
            }
        } else if type_str.is_empty() && !int_or_string && !preserve {
            let msg = match lvl {
                Level::Root => "must not be empty at the root",
                Level::Item => "must not be empty for specified array items",
                Level::Field => "must not be empty for specified object fields",
            };
            self.push(format!("{path}.type: Required value: {msg}"));
        }
        if lvl == Level::Root && !type_str.is_empty() && type_str != "object" {
            self.push(format!("{path}.type: Invalid value: {}: must be object at the root", go_quote(type_str)));
        }

        let check_metadata = lvl == Level::Root || embedded;
        if check_metadata && let Some(props) = props {
            for key in ["kind", "apiVersion"] {
                if let Some(p) = props.get(key) {
                    let t = schema_type(p).unwrap_or("");
                    if t != "string" {
                        self.push(format!(
                            "{path}.properties[{key}].type: Invalid value: {}: must be string",
                            go_quote(t)
                        ));
                    }
                }
            }
        }
        if let Some(meta) = props.and_then(|p| p.get("metadata")) {
            self.metadata(meta, check_metadata, lvl, &format!("{path}.properties[metadata]"));
        }
        if embedded && !preserve && props.is_none_or(Map::is_empty) {
            self.push(format!(
                "{path}.properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
            ));
        }

        if flag(s, "uniqueItems") {
            self.push(format!(
                "{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ));
        }
        self.list_type(s, type_str, path);
        if lvl != Level::Root
            && let Some(d) = default_of(s)
        {
            self.default_value(s, d, path);
        }
    }

    fn metadata(&mut self, meta: &Value, check_metadata: bool, lvl: Level, path: &str) {
        let t = schema_type(meta).unwrap_or("");
        if check_metadata && t != "object" {
            self.push(format!("{path}.type: Invalid value: {}: must be object", go_quote(t)));
        }
        if lvl != Level::Root {
            return;
        }
        let Some(obj) = meta.as_object() else {
            return;
        };
        let only_names =
            |p: &Value| p.as_object().is_some_and(|m| m.keys().all(|k| k == "name" || k == "generateName"));
        let allowed = obj.iter().all(|(k, v)| match k.as_str() {
            "type" | "default" | "description" | "title" => true,
            "properties" => only_names(v),
            _ => false,
        });
        if !allowed {
            self.push(format!(
                "{path}: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ));
        }
    }

    fn list_type(&mut self, s: &Value, type_str: &str, path: &str) {
        let list_type = s.get(LIST_TYPE);
        let map_keys: Vec<&Value> =
            s.get(LIST_MAP_KEYS).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
        if let Some(lt) = list_type {
            let lt_str = lt.as_str().unwrap_or("");
            if !matches!(lt_str, "atomic" | "set" | "map") {
                self.push(format!(
                    "{path}.{LIST_TYPE}: Unsupported value: {}: supported values: \"atomic\", \"set\", \"map\"",
                    render_value(lt)
                ));
            }
            if type_str != "array" {
                self.push(format!(
                    "{path}.{LIST_TYPE}: Invalid value: {}: must only be used if type is array",
                    render_value(lt)
                ));
            }
        }
        let is_map = list_type.and_then(Value::as_str) == Some("map");
        if is_map && map_keys.is_empty() {
            self.push(format!(
                "{path}.{LIST_MAP_KEYS}: Required value: must not be empty if x-kubernetes-list-type is map"
            ));
        }
        if !map_keys.is_empty() && !is_map {
            self.push(format!(
                "{path}.{LIST_TYPE}: Invalid value: {}: must be map if x-kubernetes-list-map-keys is non-empty",
                list_type.map(render_value).unwrap_or_else(|| "null".to_string())
            ));
        }
        if is_map && let Some(item) = items(s) {
            let item_type = schema_type(item).unwrap_or("");
            if item_type != "object" {
                self.push(format!(
                    "{path}.items.type: Invalid value: {}: must be object if parent array's x-kubernetes-list-type is map",
                    go_quote(item_type)
                ));
            }
            let item_props = properties(item);
            for (i, key) in map_keys.iter().enumerate() {
                let known = key.as_str().is_some_and(|k| item_props.is_some_and(|p| p.contains_key(k)));
                if !known {
                    self.push(format!(
                        "{path}.{LIST_MAP_KEYS}[{i}]: Invalid value: {}: entries must all be names of item properties",
                        render_value(key)
                    ));
                }
            }
        }
    }

    /// A `default` must survive pruning unchanged and validate.
    fn default_value(&mut self, s: &Value, d: &Value, path: &str) {
        let mut copy = d.clone();
        let mut pruned = Vec::new();
        prune(s, &mut copy, "default", false, &mut pruned);
        for p in pruned {
            self.push(format!("{path}.{p}: Invalid value: {d}: must not have unknown fields"));
        }
        apply_defaults(s, &mut copy, false);
        let mut validator = Validator::default();
        let mut errs = Vec::new();
        validator.validate(s, &copy, "default", false, &mut errs);
        for e in errs {
            self.push(format!("{path}.{e}"));
        }
    }

    fn junctors(&mut self, s: &Value, skip_any_of: bool, skip_first_all_of_any_of: bool, path: &str) {
        if !skip_any_of && let Some(any_of) = s.get("anyOf").and_then(Value::as_array) {
            for (i, sub) in any_of.iter().enumerate() {
                self.nested(sub, false, &format!("{path}.anyOf[{i}]"));
            }
        }
        if let Some(all_of) = s.get("allOf").and_then(Value::as_array) {
            for (i, sub) in all_of.iter().enumerate() {
                self.nested(sub, skip_first_all_of_any_of && i == 0, &format!("{path}.allOf[{i}]"));
            }
        }
        if let Some(one_of) = s.get("oneOf").and_then(Value::as_array) {
            for (i, sub) in one_of.iter().enumerate() {
                self.nested(sub, false, &format!("{path}.oneOf[{i}]"));
            }
        }
        if let Some(not) = s.get("not") {
            self.nested(not, false, &format!("{path}.not"));
        }
    }

    /// A schema below `anyOf`/`allOf`/`oneOf`/`not`: value validation only.
    fn nested(&mut self, v: &Value, skip_any_of: bool, path: &str) {
        let Some(obj) = v.as_object() else {
            self.push(format!("{path}: Invalid value: {v}: must be a schema object"));
            return;
        };
        self.junctors(v, skip_any_of, false, path);
        self.check_pattern(v, path);
        if let Some(it) = obj.get("items") {
            self.nested(it, false, &format!("{path}.items"));
        }
        if let Some(props) = properties(v) {
            for key in sorted_keys(props) {
                if let Some(p) = props.get(&key) {
                    self.nested(p, false, &format!("{path}.properties[{key}]"));
                }
            }
            if props.contains_key("metadata") {
                self.push(format!("{path}.properties[metadata]: Forbidden: must not be specified in a nested context"));
            }
        }
        let forbidden: [(&str, &str); 13] = [
            ("type", "must be empty to be structural"),
            ("additionalProperties", "must be undefined to be structural"),
            ("default", "must be undefined to be structural"),
            ("title", "must be empty to be structural"),
            ("description", "must be empty to be structural"),
            ("nullable", "must be false to be structural"),
            (PRESERVE, "must be false to be structural"),
            (EMBEDDED, "must be false to be structural"),
            (INT_OR_STRING, "must be false to be structural"),
            (LIST_MAP_KEYS, "must be empty to be structural"),
            (LIST_TYPE, "must be undefined to be structural"),
            ("x-kubernetes-map-type", "must be undefined to be structural"),
            ("x-kubernetes-validations", "must be empty to be structural"),
        ];
        for (key, msg) in forbidden {
            let set = match obj.get(key) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::String(st)) => !st.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                self.push(format!("{path}.{key}: Forbidden: {msg}"));
            }
        }
    }

    /// Every property/items named inside a junctor must exist in the
    /// structural part at the same place.
    fn completeness(&mut self, s: &Value, path: &str) {
        for (key, sub_path) in junctor_children(s, path) {
            self.nested_completeness(key, Some(s), path, &sub_path);
        }
        if let Some(it) = items(s) {
            self.completeness(it, &format!("{path}.items"));
        }
        if let Some(props) = properties(s) {
            for key in sorted_keys(props) {
                if let Some(p) = props.get(&key) {
                    self.completeness(p, &format!("{path}.properties[{key}]"));
                }
            }
        }
        if let Some(Additional::Schema(add)) = additional(s) {
            self.completeness(add, &format!("{path}.additionalProperties"));
        }
    }

    fn nested_completeness(&mut self, v: &Value, s: Option<&Value>, s_path: &str, v_path: &str) {
        let Some(s) = s else {
            self.push(format!("{s_path}: Required value: because it is defined in {v_path}"));
            return;
        };
        for (sub, sub_path) in junctor_children(v, v_path) {
            self.nested_completeness(sub, Some(s), s_path, &sub_path);
        }
        if let Some(it) = v.get("items").filter(|i| i.is_object()) {
            self.nested_completeness(it, items(s), &format!("{s_path}.items"), &format!("{v_path}.items"));
        }
        if let Some(props) = properties(v) {
            for key in sorted_keys(props) {
                if let Some(p) = props.get(&key) {
                    self.nested_completeness(
                        p,
                        properties(s).and_then(|sp| sp.get(&key)),
                        &format!("{s_path}.properties[{key}]"),
                        &format!("{v_path}.properties[{key}]"),
                    );
                }
            }
        }
    }
}

/// The schemas directly under `anyOf`/`allOf`/`oneOf`/`not` with their paths.
fn junctor_children<'a>(s: &'a Value, path: &str) -> Vec<(&'a Value, String)> {
    let mut out = Vec::new();
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                if sub.is_object() {
                    out.push((sub, format!("{path}.{key}[{i}]")));
                }
            }
        }
    }
    if let Some(not) = s.get("not").filter(|n| n.is_object()) {
        out.push((not, format!("{path}.not")));
    }
    out
}

/// Checks that `schema` (a version's `openAPIV3Schema`) is a structural schema
/// kube-apiserver accepts at CRD creation. Errors are sorted, one line each,
/// with paths starting at `openAPIV3Schema` (prefix them with
/// `spec.versions[i].schema.`), e.g.
/// `openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields`.
///
/// Rules:
/// * the root is `type: object`; every property, `items` and
///   `additionalProperties` schema has a `type` (one of `object`, `array`,
///   `string`, `integer`, `number`, `boolean`) unless it has
///   `x-kubernetes-int-or-string: true` or
///   `x-kubernetes-preserve-unknown-fields: true`; arrays have `items` (one
///   schema, not a list);
/// * `properties` and `additionalProperties` (other than `true`) exclude each
///   other; no `additionalProperties` at the root;
/// * inside `anyOf`/`allOf`/`oneOf`/`not`: no `type`, `default`,
///   `additionalProperties`, `nullable`, `description`, `title`,
///   `x-kubernetes-*` extensions, nor `metadata`, except the int-or-string
///   patterns `anyOf: [{type: integer}, {type: string}]` (also as `allOf[0]`);
///   every property or `items` named there is also specified outside;
/// * `x-kubernetes-preserve-unknown-fields` is `true` or absent and excludes
///   `x-kubernetes-int-or-string`; `x-kubernetes-embedded-resource` needs
///   `type: object` and properties or preserve-unknown-fields;
/// * `metadata` at the root may only restrict `name`/`generateName`;
///   `apiVersion`/`kind` (root and embedded) are strings;
/// * `pattern` compiles; `uniqueItems: true` is forbidden;
///   `x-kubernetes-list-type` is `atomic`/`set`/`map`, `map` has
///   `x-kubernetes-list-map-keys` naming properties of object items;
/// * every `default` (not at the root) contains no pruned field and validates.
pub fn check_structural(schema: &Value) -> Result<(), Vec<String>> {
    let mut checker = Checker { errs: Vec::new() };
    let root = "openAPIV3Schema";
    checker.structural(schema, Level::Root, root);
    if schema.is_object() {
        checker.completeness(schema, root);
    }
    let mut errs = checker.errs;
    errs.sort();
    errs.dedup();
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A trimmed excerpt of the Chaos Mesh v2.8.3 PodChaos v1alpha1 schema
    /// (descriptions dropped, structure and constraints as in the CRD).
    fn pod_chaos_schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["action", "mode", "selector"],
                    "properties": {
                        "action": {"type": "string", "enum": ["pod-kill", "pod-failure", "container-kill"]},
                        "containerNames": {"type": "array", "items": {"type": "string"}},
                        "duration": {"type": "string"},
                        "gracePeriod": {"type": "integer", "format": "int64", "minimum": 0},
                        "mode": {"type": "string", "enum": ["one", "all", "fixed", "fixed-percent", "random-max-percent"]},
                        "remoteCluster": {"type": "string"},
                        "selector": {
                            "type": "object",
                            "properties": {
                                "annotationSelectors": {"type": "object", "additionalProperties": {"type": "string"}},
                                "expressionSelectors": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["key", "operator"],
                                        "properties": {
                                            "key": {"type": "string"},
                                            "operator": {"type": "string"},
                                            "values": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}
                                        }
                                    }
                                },
                                "fieldSelectors": {"type": "object", "additionalProperties": {"type": "string"}},
                                "labelSelectors": {"type": "object", "additionalProperties": {"type": "string"}},
                                "namespaces": {"type": "array", "items": {"type": "string"}},
                                "nodeSelectors": {"type": "object", "additionalProperties": {"type": "string"}},
                                "nodes": {"type": "array", "items": {"type": "string"}},
                                "podPhaseSelectors": {"type": "array", "items": {"type": "string"}},
                                "pods": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
                            }
                        },
                        "value": {"type": "string"}
                    }
                },
                "status": {
                    "type": "object",
                    "required": ["experiment"],
                    "properties": {
                        "conditions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["status", "type"],
                                "properties": {
                                    "reason": {"type": "string"},
                                    "status": {"type": "string"},
                                    "type": {"type": "string"}
                                }
                            }
                        },
                        "experiment": {
                            "type": "object",
                            "properties": {
                                "containerRecords": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["id", "injectedCount", "phase", "recoveredCount", "selectorKey"],
                                        "properties": {
                                            "events": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "required": ["operation", "timestamp", "type"],
                                                    "properties": {
                                                        "message": {"type": "string"},
                                                        "operation": {"type": "string"},
                                                        "timestamp": {"type": "string", "format": "date-time"},
                                                        "type": {"type": "string"}
                                                    }
                                                }
                                            },
                                            "id": {"type": "string"},
                                            "injectedCount": {"type": "integer"},
                                            "phase": {"type": "string"},
                                            "recoveredCount": {"type": "integer"},
                                            "selectorKey": {"type": "string"}
                                        }
                                    }
                                },
                                "desiredPhase": {"type": "string", "enum": ["Run", "Stop"]}
                            }
                        }
                    }
                }
            }
        })
    }

    fn pod_chaos() -> Value {
        json!({
            "apiVersion": "chaos-mesh.org/v1alpha1",
            "kind": "PodChaos",
            "metadata": {"name": "pod-kill", "namespace": "default", "labels": {"a": "b"}},
            "spec": {
                "action": "pod-kill",
                "mode": "one",
                "gracePeriod": 0,
                "selector": {
                    "namespaces": ["default"],
                    "labelSelectors": {"app": "web"},
                    "expressionSelectors": [{"key": "tier", "operator": "In", "values": ["front"]}]
                }
            }
        })
    }

    fn run(schema: &Value, obj: &mut Value) -> Result<Vec<String>, Vec<FieldError>> {
        default_prune_validate(schema, obj)
    }

    fn errors(schema: &Value, mut obj: Value) -> Vec<String> {
        match run(schema, &mut obj) {
            Ok(p) => panic!("expected errors, got Ok({p:?})"),
            Err(errs) => errs.iter().map(ToString::to_string).collect(),
        }
    }

    fn ok(schema: &Value, obj: &mut Value) -> Vec<String> {
        match run(schema, obj) {
            Ok(p) => p,
            Err(errs) => panic!("unexpected errors: {:?}", errs.iter().map(ToString::to_string).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn valid_pod_chaos_is_unchanged() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        let before = obj.clone();
        assert_eq!(ok(&schema, &mut obj), Vec::<String>::new());
        assert_eq!(obj, before);
    }

    #[test]
    fn type_errors() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["spec"]["duration"] = json!(30);
        let mut o = obj.clone();
        let errs = run(&schema, &mut o).err().unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.duration: Invalid value: \"integer\": spec.duration in body must be of type string: \"integer\""
        );
        assert_eq!(errs[0].field, "spec.duration");
        assert_eq!(errs[0].reason, FieldErrorReason::TypeInvalid);
        assert_eq!(errs[0].reason.as_cause_type(), "FieldValueTypeInvalid");
        assert_eq!(
            errs[0].message,
            "Invalid value: \"integer\": spec.duration in body must be of type string: \"integer\""
        );

        obj["spec"]["duration"] = json!("30s");
        obj["spec"]["selector"]["namespaces"] = json!("default");
        obj["spec"]["containerNames"] = json!([1]);
        assert_eq!(
            errors(&schema, obj),
            vec![
                "spec.containerNames[0]: Invalid value: \"integer\": spec.containerNames[0] in body must be of type string: \"integer\"",
                "spec.selector.namespaces: Invalid value: \"string\": spec.selector.namespaces in body must be of type array: \"string\"",
            ]
        );
    }

    #[test]
    fn integer_and_number() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["spec"]["gracePeriod"] = json!(1.5);
        assert_eq!(
            errors(&schema, obj.clone()),
            vec![
                "spec.gracePeriod: Invalid value: \"number\": spec.gracePeriod in body must be of type integer: \"number\""
            ]
        );
        obj["spec"]["gracePeriod"] = json!(2.0);
        ok(&schema, &mut obj);
        obj["spec"]["gracePeriod"] = json!("5");
        assert_eq!(
            errors(&schema, obj),
            vec![
                "spec.gracePeriod: Invalid value: \"string\": spec.gracePeriod in body must be of type integer: \"string\""
            ]
        );
        let num = json!({"type": "object", "properties": {"n": {"type": "number"}, "b": {"type": "boolean"}}});
        ok(&num, &mut json!({"n": 3, "b": true}));
        ok(&num, &mut json!({"n": 3.25}));
        assert_eq!(
            errors(&num, json!({"n": true, "b": "yes"})),
            vec![
                "b: Invalid value: \"string\": b in body must be of type boolean: \"string\"",
                "n: Invalid value: \"boolean\": n in body must be of type number: \"boolean\"",
            ]
        );
    }

    #[test]
    fn required_fields() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        if let Some(spec) = obj["spec"].as_object_mut() {
            spec.remove("selector");
            spec.remove("mode");
        }
        let mut o = obj.clone();
        let errs = run(&schema, &mut o).err().unwrap_or_default();
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(lines, vec!["spec.mode: Required value", "spec.selector: Required value"]);
        assert_eq!(errs[1].reason.as_cause_type(), "FieldValueRequired");
        assert_eq!(errs[1].message, "Required value");

        let bare = json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos", "metadata": {"name": "x"}});
        assert_eq!(errors(&schema, bare), vec!["spec: Required value"]);

        let mut rec = pod_chaos();
        rec["status"] = json!({});
        assert_eq!(errors(&schema, rec), vec!["status.experiment: Required value"]);

        let mut nested = pod_chaos();
        nested["spec"]["selector"]["expressionSelectors"] = json!([{"key": "a"}]);
        assert_eq!(errors(&schema, nested), vec!["spec.selector.expressionSelectors[0].operator: Required value"]);
    }

    #[test]
    fn enum_values() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["spec"]["mode"] = json!("bogus");
        let mut o = obj.clone();
        let errs = run(&schema, &mut o).err().unwrap_or_default();
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "spec.mode: Unsupported value: \"bogus\": supported values: \"one\", \"all\", \"fixed\", \"fixed-percent\", \"random-max-percent\""
            ]
        );
        assert_eq!(errs[0].reason.as_cause_type(), "FieldValueNotSupported");

        // A wrong type is reported both as a type and as an enum error.
        obj["spec"]["mode"] = json!(5);
        assert_eq!(
            errors(&schema, obj),
            vec![
                "spec.mode: Invalid value: \"integer\": spec.mode in body must be of type string: \"integer\"",
                "spec.mode: Unsupported value: 5: supported values: \"one\", \"all\", \"fixed\", \"fixed-percent\", \"random-max-percent\"",
            ]
        );
        let numeric = json!({"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}});
        ok(&numeric, &mut json!({"n": 2}));
        assert_eq!(errors(&numeric, json!({"n": 3})), vec!["n: Unsupported value: 3: supported values: \"1\", \"2\""]);
    }

    #[test]
    fn string_constraints() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "name": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
            "one": {"type": "string", "maxLength": 1}
        }}}});
        ok(&schema, &mut json!({"spec": {"name": "abc"}}));
        assert_eq!(
            errors(&schema, json!({"spec": {"name": "ABC"}})),
            vec!["spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'"]
        );
        assert_eq!(
            errors(&schema, json!({"spec": {"name": "a"}})),
            vec!["spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long"]
        );
        let mut o = json!({"spec": {"name": "abcdefg", "one": "xy"}});
        let errs = run(&schema, &mut o).err().unwrap_or_default();
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "spec.name: Too long: may not be more than 5 bytes",
                "spec.one: Too long: may not be more than 1 byte",
            ]
        );
        assert_eq!(errs[0].reason.as_cause_type(), "FieldValueTooLong");
        // Length counts characters, not bytes.
        ok(&schema, &mut json!({"spec": {"one": "é"}}));
    }

    #[test]
    fn numeric_bounds() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["spec"]["gracePeriod"] = json!(-1);
        let mut o = obj.clone();
        let errs = run(&schema, &mut o).err().unwrap_or_default();
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["spec.gracePeriod: Invalid value: -1: spec.gracePeriod in body should be greater than or equal to 0"]
        );
        assert_eq!(errs[0].reason.as_cause_type(), "FieldValueInvalid");

        let bounds = json!({"type": "object", "properties": {
            "p": {"type": "integer", "minimum": 1, "maximum": 100},
            "x": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1.5, "exclusiveMaximum": true},
            "m": {"type": "integer", "multipleOf": 5}
        }});
        ok(&bounds, &mut json!({"p": 1, "x": 0.5, "m": 15}));
        ok(&bounds, &mut json!({"p": 100}));
        assert_eq!(
            errors(&bounds, json!({"p": 101, "x": 0, "m": 7})),
            vec![
                "m: Invalid value: 7: m in body should be a multiple of 5",
                "p: Invalid value: 101: p in body should be less than or equal to 100",
                "x: Invalid value: 0: x in body should be greater than 0",
            ]
        );
        assert_eq!(
            errors(&bounds, json!({"x": 1.5})),
            vec!["x: Invalid value: 1.5: x in body should be less than 1.5"]
        );
    }

    #[test]
    fn array_constraints() {
        let schema = json!({"type": "object", "properties": {"l": {
            "type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2, "uniqueItems": true
        }}});
        ok(&schema, &mut json!({"l": ["a", "b"]}));
        assert_eq!(
            errors(&schema, json!({"l": []})),
            vec!["l: Invalid value: 0: l in body should have at least 1 items"]
        );
        let mut o = json!({"l": ["a", "b", "c"]});
        let errs = run(&schema, &mut o).err().unwrap_or_default();
        assert_eq!(errs[0].to_string(), "l: Too many: 3: must have at most 2 items");
        assert_eq!(errs[0].reason.as_cause_type(), "FieldValueTooMany");
        assert_eq!(
            errors(&schema, json!({"l": ["a", "a"]})),
            vec!["l: Invalid value: \"\": l in body shouldn't contain duplicates"]
        );
    }

    #[test]
    fn pruning_unknown_fields() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["spec"]["selector"]["labelSelector"] = json!({"app": "web"});
        obj["spec"]["selector"]["expressionSelectors"][0]["bogus"] = json!(1);
        obj["spec"]["extra"] = json!({"deep": [1, 2]});
        obj["unknownTop"] = json!("x");
        obj["metadata"]["unknownMeta"] = json!("kept");
        let pruned = ok(&schema, &mut obj);
        assert_eq!(
            pruned,
            vec![
                "spec.extra",
                "spec.selector.expressionSelectors[0].bogus",
                "spec.selector.labelSelector",
                "unknownTop",
            ]
        );
        assert!(obj["spec"]["selector"].get("labelSelector").is_none());
        assert!(obj["spec"].get("extra").is_none());
        assert!(obj.get("unknownTop").is_none());
        assert_eq!(
            obj["spec"]["selector"]["expressionSelectors"][0],
            json!({"key": "tier", "operator": "In", "values": ["front"]})
        );
        // apiVersion, kind and metadata (with its content) stay.
        assert_eq!(obj["apiVersion"], json!("chaos-mesh.org/v1alpha1"));
        assert_eq!(obj["kind"], json!("PodChaos"));
        assert_eq!(obj["metadata"]["unknownMeta"], json!("kept"));
        // Maps described by additionalProperties keep every key.
        assert_eq!(obj["spec"]["selector"]["labelSelectors"], json!({"app": "web"}));
    }

    #[test]
    fn pruning_happens_before_validation() {
        // A pruned field is not validated, and pruning does not hide errors.
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["spec"]["typo"] = json!(12);
        obj["spec"]["mode"] = json!("all");
        assert_eq!(ok(&schema, &mut obj), vec!["spec.typo"]);
        let mut bad = pod_chaos();
        bad["spec"]["typo"] = json!(12);
        bad["spec"]["action"] = json!("explode");
        let errs = errors(&schema, bad);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("spec.action: Unsupported value: \"explode\""));
    }

    #[test]
    fn preserve_unknown_fields() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "known": {"type": "object", "properties": {"a": {"type": "string"}}},
                "n": {"type": "integer"}
            }},
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "open": {"type": "object", "additionalProperties": true}
        }});
        let mut obj = json!({
            "spec": {"anything": {"x": [1, {"y": 2}]}, "known": {"a": "s", "drop": 1}, "n": 1},
            "free": [1, "two", {"three": 3}],
            "open": {"k": {"nested": true}}
        });
        let pruned = ok(&schema, &mut obj);
        assert_eq!(pruned, vec!["spec.known.drop"]);
        assert_eq!(obj["spec"]["anything"], json!({"x": [1, {"y": 2}]}));
        assert_eq!(obj["free"], json!([1, "two", {"three": 3}]));
        assert_eq!(obj["open"], json!({"k": {"nested": true}}));
        // Known fields below a preserving node are still validated.
        assert_eq!(
            errors(&schema, json!({"spec": {"n": "x"}})),
            vec!["spec.n: Invalid value: \"string\": spec.n in body must be of type integer: \"string\""]
        );
        // The whole object may preserve unknown fields at the root.
        let root = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let mut any = json!({"spec": {"a": 1}, "status": "x"});
        assert!(ok(&root, &mut any).is_empty());
        assert_eq!(any["spec"], json!({"a": 1}));
    }

    #[test]
    fn defaults_are_applied() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "default": {},
            "properties": {
                "action": {"type": "string", "default": "pod-kill"},
                "mode": {"type": "string", "default": "one"},
                "replicas": {"type": "integer", "default": 1},
                "nested": {"type": "object", "default": {}, "properties": {
                    "enabled": {"type": "boolean", "default": true}
                }},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "port": {"type": "integer", "default": 80}
                }}},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "x"}},
                "opt": {"type": "string", "nullable": true, "default": "d"},
                "plain": {"type": "string"}
            }
        }}});
        let mut obj = json!({"spec": {
            "mode": "all",
            "replicas": null,
            "items": [{}, {"port": 8080}],
            "labels": {"a": null, "b": "y"},
            "opt": null,
            "plain": null
        }});
        assert!(ok(&schema, &mut obj).is_empty());
        assert_eq!(
            obj,
            json!({"spec": {
                "action": "pod-kill",
                "mode": "all",
                "replicas": 1,
                "nested": {"enabled": true},
                "items": [{"port": 80}, {"port": 8080}],
                "labels": {"a": "x", "b": "y"},
                "opt": null
            }})
        );
        // A missing parent with a default is created and defaulted in turn.
        let mut empty = json!({});
        ok(&schema, &mut empty);
        assert_eq!(empty["spec"]["action"], json!("pod-kill"));
        assert_eq!(empty["spec"]["nested"]["enabled"], json!(true));
    }

    #[test]
    fn defaults_satisfy_required() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {"spec": {
            "type": "object", "required": ["mode"],
            "properties": {"mode": {"type": "string", "default": "one"}}
        }}});
        let mut obj = json!({"spec": {}});
        ok(&schema, &mut obj);
        assert_eq!(obj["spec"]["mode"], json!("one"));
    }

    #[test]
    fn nullable_values() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "string", "nullable": true},
            "l": {"type": "array", "items": {"type": "string"}},
            "ln": {"type": "array", "items": {"type": "string", "nullable": true}}
        }});
        let mut obj = json!({"a": null, "ln": [null, "x"]});
        ok(&schema, &mut obj);
        assert_eq!(obj, json!({"a": null, "ln": [null, "x"]}));
        assert_eq!(
            errors(&schema, json!({"l": [null]})),
            vec!["l[0]: Invalid value: \"null\": l[0] in body must be of type string: \"null\""]
        );
    }

    #[test]
    fn int_or_string() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "value": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": "^[0-9]+%?$"},
            "plain": {"x-kubernetes-int-or-string": true}
        }}}});
        ok(&schema, &mut json!({"spec": {"value": 5, "plain": "x"}}));
        ok(&schema, &mut json!({"spec": {"value": "50%", "plain": 3}}));
        assert_eq!(
            errors(&schema, json!({"spec": {"plain": true}})),
            vec![
                "spec.plain: Invalid value: \"boolean\": spec.plain in body must be of type integer,string: \"boolean\""
            ]
        );
        assert_eq!(
            errors(&schema, json!({"spec": {"value": "abc"}})),
            vec!["spec.value: Invalid value: \"abc\": spec.value in body should match '^[0-9]+%?$'"]
        );
        let errs = errors(&schema, json!({"spec": {"value": 1.5}}));
        assert_eq!(
            errs[0],
            "spec.value: Invalid value: \"number\": spec.value in body must be of type integer,string: \"number\""
        );
        assert!(errs.contains(
            &"spec.value: Invalid value: \"\": \"spec.value\" must validate at least one schema (anyOf)".to_string()
        ));
    }

    #[test]
    fn list_map_and_set_duplicates() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "protocol"],
                "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "protocol": {"type": "string", "default": "TCP"},
                    "port": {"type": "integer"}
                }}
            },
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}}});
        ok(
            &schema,
            &mut json!({"spec": {"ports": [{"name": "a", "port": 1}, {"name": "a", "protocol": "UDP"}], "tags": ["x", "y"]}}),
        );
        let mut o = json!({"spec": {"ports": [
            {"name": "http", "port": 80},
            {"name": "dns", "protocol": "UDP"},
            {"name": "http", "protocol": "TCP", "port": 8080}
        ]}});
        let errs = run(&schema, &mut o).err().unwrap_or_default();
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["spec.ports[2]: Duplicate value: map[string]interface {}{\"name\":\"http\", \"protocol\":\"TCP\"}"]
        );
        assert_eq!(errs[0].reason.as_cause_type(), "FieldValueDuplicate");
        assert_eq!(
            errors(&schema, json!({"spec": {"tags": ["x", "y", "x"]}})),
            vec!["spec.tags[2]: Duplicate value: \"x\""]
        );
    }

    #[test]
    fn formats() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["status"] = json!({"experiment": {"desiredPhase": "Run", "containerRecords": [{
            "id": "default/p", "injectedCount": 1, "phase": "Injected", "recoveredCount": 0, "selectorKey": ".",
            "events": [{"operation": "Apply", "type": "Succeeded", "timestamp": "2024-05-06T07:08:09Z"}]
        }]}});
        ok(&schema, &mut obj);
        obj["status"]["experiment"]["containerRecords"][0]["events"][0]["timestamp"] = json!("yesterday");
        assert_eq!(
            errors(&schema, obj),
            vec![
                "status.experiment.containerRecords[0].events[0].timestamp: Invalid value: \"yesterday\": status.experiment.containerRecords[0].events[0].timestamp in body must be of type date-time: \"yesterday\""
            ]
        );
        for good in ["2024-05-06T07:08:09.123+02:00", "2024-05-06t07:08:09z", "2024-05-06 07:08:09-05:30"] {
            assert!(is_date_time(good), "{good}");
        }
        for bad in
            ["2024-05-06", "2024-13-06T07:08:09Z", "2024-05-06T25:08:09Z", "2024-05-06T07:08:09", "2024-05-06T07:08Z"]
        {
            assert!(!is_date_time(bad), "{bad}");
        }
        assert!(format_ok("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(!format_ok("uuid", "123e4567"));
        assert!(format_ok("ipv4", "10.0.0.1") && !format_ok("ipv4", "10.0.0.256"));
        assert!(format_ok("ipv6", "fe80::1") && !format_ok("ipv6", "fe80:::1"));
        assert!(format_ok("cidr", "10.0.0.0/8") && !format_ok("cidr", "10.0.0.0/33"));
        assert!(format_ok("date", "2024-02-29") && !format_ok("date", "24-02-29"));
        assert!(format_ok("mac", "00:1a:2b:3c:4d:5e") && !format_ok("mac", "00:1a"));
        assert!(format_ok("hostname", "a-b.example.com") && !format_ok("hostname", "-a.com"));
        assert!(format_ok("byte", "aGVsbG8=") && !format_ok("byte", "a!b="));
        assert!(format_ok("int32", "anything") && format_ok("duration", "5m"));
        let ints = json!({"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}});
        ok(&ints, &mut json!({"n": 5_000_000_000_i64}));
    }

    #[test]
    fn junctors_validate_only() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "n": {"type": "integer"}},
            "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
            "oneOf": [{"properties": {"n": {"minimum": 10}}}, {"properties": {"n": {"maximum": 0}}}],
            "allOf": [{"properties": {"a": {"maxLength": 3}}}],
            "not": {"required": ["forbidden"]}
        }}});
        ok(&schema, &mut json!({"spec": {"a": "x", "n": 20}}));
        assert_eq!(
            errors(&schema, json!({"spec": {"n": 20}})),
            vec![
                "spec: Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)",
                "spec.a: Required value",
            ]
        );
        assert_eq!(
            errors(&schema, json!({"spec": {"a": "x", "n": 5}})),
            vec![
                "spec: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found none valid",
                "spec.n: Invalid value: 5: spec.n in body should be greater than or equal to 10",
            ]
        );
        assert_eq!(
            errors(&schema, json!({"spec": {"a": "long", "n": 20}})),
            vec![
                "spec.a: Too long: may not be more than 3 bytes",
                "spec: Invalid value: \"\": \"spec\" must validate all the schemas (allOf). None validated",
            ]
        );
        // `not` only validates; junctors do not keep fields from pruning.
        let mut obj = json!({"spec": {"a": "x", "n": 20, "forbidden": 1}});
        assert_eq!(ok(&schema, &mut obj), vec!["spec.forbidden"]);
        let not_schema = json!({"type": "object", "properties": {"s": {"type": "string", "not": {"enum": ["no"]}}}});
        assert_eq!(
            errors(&not_schema, json!({"s": "no"})),
            vec!["s: Invalid value: \"\": \"s\" must not validate the schema (not)"]
        );
        let one_of_two = json!({"type": "object", "properties": {"n": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]}}});
        assert_eq!(
            errors(&one_of_two, json!({"n": 5})),
            vec![
                "n: Invalid value: \"\": \"n\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
            ]
        );
    }

    #[test]
    fn embedded_resources() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "template": {
                "type": "object",
                "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}
            }
        }}}});
        let mut obj = json!({"spec": {"template": {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"x": "y", "drop": 1}, "other": 2
        }}});
        assert_eq!(ok(&schema, &mut obj), vec!["spec.template.other", "spec.template.spec.drop"]);
        assert_eq!(obj["spec"]["template"]["metadata"], json!({"name": "p", "labels": {"a": "b"}}));
        assert_eq!(
            errors(&schema, json!({"spec": {"template": {"kind": "", "spec": {}}}})),
            vec![
                "spec.template.apiVersion: Required value: must not be empty",
                "spec.template.kind: Invalid value: \"\": must not be empty",
            ]
        );
        assert_eq!(
            errors(&schema, json!({"spec": {"template": {"apiVersion": 1, "kind": "Pod", "metadata": "x"}}})),
            vec![
                "spec.template.apiVersion: Invalid value: 1: must be a string",
                "spec.template.metadata: Invalid value: \"x\": must be an object",
            ]
        );
    }

    #[test]
    fn additional_properties_schema_is_validated() {
        let schema = pod_chaos_schema();
        let mut obj = pod_chaos();
        obj["spec"]["selector"]["labelSelectors"] = json!({"app": 1});
        obj["spec"]["selector"]["pods"] = json!({"default": ["a", 2]});
        assert_eq!(
            errors(&schema, obj),
            vec![
                "spec.selector.labelSelectors.app: Invalid value: \"integer\": spec.selector.labelSelectors.app in body must be of type string: \"integer\"",
                "spec.selector.pods.default[1]: Invalid value: \"integer\": spec.selector.pods.default[1] in body must be of type string: \"integer\"",
            ]
        );
        let props = json!({"type": "object", "properties": {"m": {"type": "object", "maxProperties": 1, "minProperties": 1, "additionalProperties": {"type": "string"}}}});
        assert_eq!(
            errors(&props, json!({"m": {"a": "1", "b": "2"}})),
            vec!["m: Too many: 2: must have at most 1 item"]
        );
        assert_eq!(
            errors(&props, json!({"m": {}})),
            vec!["m: Invalid value: 0: m in body should have at least 1 properties"]
        );
    }

    #[test]
    fn root_type_and_non_object_values() {
        let schema = pod_chaos_schema();
        let errs = errors(&schema, json!([1]));
        assert_eq!(errs, vec!["Invalid value: \"array\": in body must be of type object: \"array\""]);
        assert_eq!(
            errors(&schema, json!({"spec": "x"})),
            vec!["spec: Invalid value: \"string\": spec in body must be of type object: \"string\""]
        );
        // A null spec without default is dropped, then reported as missing.
        assert_eq!(errors(&schema, json!({"spec": null})), vec!["spec: Required value"]);
    }

    #[test]
    fn field_error_reasons_and_display() {
        let all = [
            (FieldErrorReason::Required, "FieldValueRequired"),
            (FieldErrorReason::Invalid, "FieldValueInvalid"),
            (FieldErrorReason::NotSupported, "FieldValueNotSupported"),
            (FieldErrorReason::TypeInvalid, "FieldValueTypeInvalid"),
            (FieldErrorReason::TooLong, "FieldValueTooLong"),
            (FieldErrorReason::TooMany, "FieldValueTooMany"),
            (FieldErrorReason::Duplicate, "FieldValueDuplicate"),
        ];
        for (reason, cause) in all {
            assert_eq!(reason.as_cause_type(), cause);
        }
        assert_eq!(
            FieldError::required("spec.x", "must not be empty").to_string(),
            "spec.x: Required value: must not be empty"
        );
        assert_eq!(FieldError::invalid("", &json!("a\"b"), "bad").to_string(), "Invalid value: \"a\\\"b\": bad");
        assert_eq!(FieldError::duplicate("l[1]", "\"x\"").message, "Duplicate value: \"x\"");
        assert_eq!(fmt_f64(3.0), "3");
        assert_eq!(fmt_f64(0.25), "0.25");
        assert_eq!(fmt_f64(1e21), "1e+21");
    }

    // --- check_structural ---------------------------------------------------

    fn structural_errors(schema: Value) -> Vec<String> {
        match check_structural(&schema) {
            Ok(()) => panic!("schema accepted"),
            Err(errs) => errs,
        }
    }

    #[test]
    fn pod_chaos_schema_is_structural() {
        assert_eq!(check_structural(&pod_chaos_schema()), Ok(()));
        let int_or_string = json!({"type": "object", "properties": {
            "a": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "b": {"x-kubernetes-int-or-string": true, "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^x"}]},
            "c": {"x-kubernetes-preserve-unknown-fields": true},
            "d": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            "e": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": true},
            "f": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
            "g": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                  "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
            "h": {"type": "integer", "default": 3, "minimum": 0}
        }});
        assert_eq!(check_structural(&int_or_string), Ok(()));
    }

    #[test]
    fn structural_missing_types() {
        let errs = structural_errors(json!({"properties": {
            "spec": {"properties": {"x": {"type": "string"}}},
            "list": {"type": "array", "items": {"description": "no type"}},
            "arr": {"type": "array"},
            "bad": {"type": "strin"}
        }}));
        assert_eq!(
            errs,
            vec![
                "openAPIV3Schema.properties[arr].items: Required value: must be specified",
                "openAPIV3Schema.properties[bad].type: Unsupported value: \"strin\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"",
                "openAPIV3Schema.properties[list].items.type: Required value: must not be empty for specified array items",
                "openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                "openAPIV3Schema.type: Required value: must not be empty at the root",
            ]
        );
        assert_eq!(
            structural_errors(json!({"type": "array", "items": {"type": "string"}})),
            vec!["openAPIV3Schema.type: Invalid value: \"array\": must be object at the root"]
        );
        assert_eq!(
            structural_errors(json!({"type": "object", "properties": {"n": {"nullable": true}}})),
            vec!["openAPIV3Schema.properties[n].type: Required value: must not be empty for specified object fields"]
        );
    }

    #[test]
    fn structural_junctor_rules() {
        let errs = structural_errors(json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "anyOf": [
                {"type": "object", "nullable": true, "default": {}, "description": "d"},
                {"properties": {"ghost": {"x-kubernetes-preserve-unknown-fields": true}}}
            ]
        }}}));
        assert_eq!(
            errs,
            vec![
                "openAPIV3Schema.properties[spec].anyOf[0].default: Forbidden: must be undefined to be structural",
                "openAPIV3Schema.properties[spec].anyOf[0].description: Forbidden: must be empty to be structural",
                "openAPIV3Schema.properties[spec].anyOf[0].nullable: Forbidden: must be false to be structural",
                "openAPIV3Schema.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural",
                "openAPIV3Schema.properties[spec].anyOf[1].properties[ghost].x-kubernetes-preserve-unknown-fields: Forbidden: must be false to be structural",
                "openAPIV3Schema.properties[spec].properties[ghost]: Required value: because it is defined in openAPIV3Schema.properties[spec].anyOf[1].properties[ghost]",
            ]
        );
        assert_eq!(
            structural_errors(
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"},
                "allOf": [{"items": {"properties": {"x": {"maxLength": 1}}}}]}}})
            ),
            vec![
                "openAPIV3Schema.properties[l].items.properties[x]: Required value: because it is defined in openAPIV3Schema.properties[l].allOf[0].items.properties[x]"
            ]
        );
        assert_eq!(
            structural_errors(
                json!({"type": "object", "anyOf": [{"properties": {"metadata": {}}}], "properties": {"metadata": {"type": "object"}}})
            ),
            vec!["openAPIV3Schema.anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"]
        );
    }

    #[test]
    fn structural_extension_and_misc_rules() {
        let errs = structural_errors(
            json!({"type": "object", "additionalProperties": {"type": "string"}, "properties": {
                "a": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
                "b": {"type": "string", "x-kubernetes-preserve-unknown-fields": false},
                "c": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true},
                "d": {"x-kubernetes-embedded-resource": true},
                "e": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                "f": {"type": "string", "pattern": "(unclosed"},
                "g": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "map"},
                "h": {"type": "array", "items": [{"type": "string"}]},
                "i": {"type": "integer", "default": "three"},
                "j": {"type": "object", "properties": {"k": {"type": "string"}}, "default": {"k": "v", "zz": 1}}
            }}),
        );
        let expected_prefixes = [
            "openAPIV3Schema.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            "openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root",
            "openAPIV3Schema.properties[a].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            "openAPIV3Schema.properties[b].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined",
            "openAPIV3Schema.properties[c].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            "openAPIV3Schema.properties[d].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            "openAPIV3Schema.properties[d].type: Required value: must be object if x-kubernetes-embedded-resource is true",
            "openAPIV3Schema.properties[e].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            "openAPIV3Schema.properties[f].pattern: Invalid value: \"(unclosed\": must be a valid regular expression, but isn't:",
            "openAPIV3Schema.properties[g].items.type: Invalid value: \"string\": must be object if parent array's x-kubernetes-list-type is map",
            "openAPIV3Schema.properties[g].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
            "openAPIV3Schema.properties[h].items: Forbidden: items must be a schema object and not an array",
            "openAPIV3Schema.properties[i].default: Invalid value: \"string\": default in body must be of type integer: \"string\"",
            "openAPIV3Schema.properties[j].default.zz: Invalid value: {\"k\":\"v\",\"zz\":1}: must not have unknown fields",
        ];
        for prefix in expected_prefixes {
            assert!(errs.iter().any(|e| e.starts_with(prefix)), "missing {prefix:?} in {errs:#?}");
        }
        assert_eq!(errs.len(), expected_prefixes.len(), "{errs:#?}");
    }

    #[test]
    fn structural_metadata_rules() {
        let ok_meta = json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 20}
        }}}});
        assert_eq!(check_structural(&ok_meta), Ok(()));
        assert_eq!(
            structural_errors(json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
                "labels": {"type": "object"}
            }}}})),
            vec![
                "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ]
        );
        assert_eq!(
            structural_errors(
                json!({"type": "object", "properties": {"metadata": {"type": "string"}, "kind": {"type": "integer"}}})
            ),
            vec![
                "openAPIV3Schema.properties[kind].type: Invalid value: \"integer\": must be string",
                "openAPIV3Schema.properties[metadata].type: Invalid value: \"string\": must be object",
            ]
        );
        assert_eq!(
            structural_errors(json!("not a schema")),
            vec!["openAPIV3Schema: Invalid value: \"not a schema\": must be a schema object"]
        );
    }
}
