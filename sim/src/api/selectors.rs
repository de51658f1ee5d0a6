//! Label and field selectors, parsed and matched the way kube-apiserver does.
//!
//! * [`LabelSelector`] follows `k8s.io/apimachinery/pkg/labels`: the same lexer
//!   (special symbols `= ! ( ) , > <`, keywords `in`/`notin`), the same
//!   recursive-descent parser, the same key/value validation (qualified names,
//!   63-character limit, DNS-1123 prefixes) and the same error texts, e.g.
//!   `unable to parse requirement: found '', expected: identifier`.
//!   Requirements are sorted by key, values of set-based requirements are
//!   sorted and de-duplicated, so [`fmt::Display`] gives the canonical form
//!   (`a in (x,y),b!=c,!d`) that kube-apiserver prints, for example in
//!   `Scale.status.selector`.
//! * [`FieldSelector`] follows `k8s.io/apimachinery/pkg/fields` (terms split on
//!   unescaped commas, operators `!=`, `==`, `=`, escapes `\\`, `\,`, `\=`) and
//!   the per-kind field label conversion functions of kube-apiserver.
//!
//! Simplified compared with Kubernetes:
//! * Field selectors are checked against a fixed table of kinds (core/v1
//!   `Pod`, `Event`, `Node`, `Namespace`, `Secret`, apps/v1 `ReplicaSet`,
//!   batch/v1 `Job`); the group is not looked at. Every kind accepts
//!   `metadata.name` and `metadata.namespace` (kube-apiserver does not offer
//!   `metadata.namespace` for `Node`/`Namespace`). Legacy aliases such as
//!   `spec.host` and newer fields such as `status.podIPs` are not offered.
//!   Custom resources get the metadata fields only (no `selectableFields`).
//! * An unknown field on a kind of the table reports
//!   `field label not supported: <field>`; on any other kind the generic
//!   `"<field>" is not a known field selector: only "metadata.name", "metadata.namespace"`.
//! * Field values are read from the object's JSON by dotted path instead of
//!   from a typed field set. Two fields are renamed the way kube-apiserver
//!   maps them (`source` reads `source.component`, Job `status.successful`
//!   reads `status.succeeded`). A missing value is `""`, except for the
//!   boolean/integer fields `spec.hostNetwork`, `spec.unschedulable`
//!   (`"false"`) and `status.replicas`, `status.successful` (`"0"`), which
//!   kube-apiserver renders from Go zero values.
//! * A metav1 `LabelSelector` in JSON form is read leniently: wrong JSON types
//!   give a short error of this module instead of a decoding error.
//! * Go's `%#v` rendering of `[]string` in a few error texts is imitated
//!   (`[]string{"a", "b"}`, `[]string(nil)`).

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// An invalid selector. The text is the message kube-apiserver gives for the
/// same input (it answers 400 Bad Request with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Quotes like Go's `strconv.Quote` (`%q`) for the texts that appear in errors.
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

/// Renders a `[]string` the way Go's `%#v` does.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_string();
    }
    let inner: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", inner.join(", "))
}

/// Joins errors the way `utilerrors.Aggregate` prints them.
fn aggregate(errs: Vec<String>) -> Option<String> {
    match errs.len() {
        0 => None,
        1 => errs.into_iter().next(),
        _ => Some(format!("[{}]", errs.join(", "))),
    }
}

/// The string form of a JSON scalar as it would sit in a label or field set.
fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `RegexError` of apimachinery's validation package, including its
/// double-space quirk between examples.
fn regex_error(msg: &str, fmt_re: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt_re}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(ex);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt_re);
    out.push_str("')");
    out
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
fn matches_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            match (b.first(), b.last()) {
                (Some(f), Some(l)) => ok_char(f) && ok_char(l) && b.iter().all(|c| ok_char(c) || *c == b'-'),
                _ => false,
            }
        })
}

/// `validation.IsQualifiedName`: the messages for an invalid label key.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX {
                    errs.push(format!("prefix part must be no more than {DNS1123_SUBDOMAIN_MAX} characters"));
                }
                if !matches_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part must be no more than {QUALIFIED_NAME_MAX} characters"));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `validation.IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errs.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// A `field.Invalid` error printed as `field: Invalid value: "v": detail`.
fn invalid_string(field: &str, value: &str, detail: &str) -> String {
    format!("{field}: Invalid value: {}: {detail}", go_quote(value))
}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// The operator of one [`LabelRequirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    /// `key in (a,b)`: the label exists and its value is one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or its value is none of the values.
    NotIn,
    /// `key=value`.
    Equals,
    /// `key==value` (same meaning as `=`, kept for the canonical string form).
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key>n`: the label exists, is an integer and is greater than n.
    GreaterThan,
    /// `key<n`: the label exists, is an integer and is less than n.
    LessThan,
}

impl LabelOperator {
    /// The `selection.Operator` string of Kubernetes (`in`, `notin`, `=`,
    /// `==`, `!=`, `exists`, `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            LabelOperator::In => "in",
            LabelOperator::NotIn => "notin",
            LabelOperator::Equals => "=",
            LabelOperator::DoubleEquals => "==",
            LabelOperator::NotEquals => "!=",
            LabelOperator::Exists => "exists",
            LabelOperator::DoesNotExist => "!",
            LabelOperator::GreaterThan => "gt",
            LabelOperator::LessThan => "lt",
        }
    }
}

/// One requirement of a label selector: a key, an operator and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    values: Vec<String>,
}

impl LabelRequirement {
    /// Builds a requirement, validating it like `labels.NewRequirement`: the
    /// key must be a qualified name, `In`/`NotIn` need values, the equality
    /// operators exactly one value, `Exists`/`DoesNotExist` none, `Gt`/`Lt`
    /// exactly one integer; every value must be a valid label value.
    pub fn new(key: &str, operator: LabelOperator, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid_string("key", key, &key_errs.join("; ")));
        }
        let values_desc = go_string_slice(&values);
        match operator {
            LabelOperator::In | LabelOperator::NotIn => {
                if values.is_empty() {
                    errs.push(format!(
                        "values: Invalid value: {values_desc}: for 'in', 'notin' operators, values set can't be empty"
                    ));
                }
            }
            LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {values_desc}: exact-match compatibility requires one single value"
                    ));
                }
            }
            LabelOperator::Exists | LabelOperator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(format!(
                        "values: Invalid value: {values_desc}: values set must be empty for exists and does not exist"
                    ));
                }
            }
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {values_desc}: for 'Gt', 'Lt' operators, exactly one value is required"
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid_string(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let v_errs = label_value_errors(v);
            if !v_errs.is_empty() {
                errs.push(invalid_string(&format!("values[{i}][{key}]"), v, &v_errs.join("; ")));
            }
        }
        match aggregate(errs) {
            Some(msg) => Err(SelectorError(msg)),
            None => Ok(LabelRequirement { key: key.to_string(), operator, values }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> LabelOperator {
        self.operator
    }

    /// The values (empty for `Exists`/`DoesNotExist`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let actual = labels.and_then(|l| l.get(&self.key)).map(scalar_string);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::In | LabelOperator::Equals | LabelOperator::DoubleEquals => actual.is_some_and(|a| has(&a)),
            LabelOperator::NotIn | LabelOperator::NotEquals => actual.is_none_or(|a| !has(&a)),
            LabelOperator::Exists => actual.is_some(),
            LabelOperator::DoesNotExist => actual.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let Some(actual) = actual.and_then(|a| a.parse::<i64>().ok()) else {
                    return false;
                };
                let [bound] = self.values.as_slice() else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan { actual > bound } else { actual < bound }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == LabelOperator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            LabelOperator::Exists | LabelOperator::DoesNotExist => return Ok(()),
            LabelOperator::Equals => ("=", false),
            LabelOperator::DoubleEquals => ("==", false),
            LabelOperator::NotEquals => ("!=", false),
            LabelOperator::In => (" in ", true),
            LabelOperator::NotIn => (" notin ", true),
            LabelOperator::GreaterThan => (">", false),
            LabelOperator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        if let [single] = self.values.as_slice() {
            f.write_str(single)?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: the AND of its requirements.
///
/// An empty selector matches everything; the selector built from a JSON
/// `null` ([`LabelSelector::nothing`]) matches nothing, as
/// `metav1.LabelSelectorAsSelector(nil)` does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches no object (a `null` metav1 selector).
    pub fn nothing() -> Self {
        LabelSelector { requirements: Vec::new(), nothing: true }
    }

    /// Builds the selector that requires every `key=value` of `labels`
    /// (`labels.SelectorFromSet`, without validation).
    pub fn from_labels(labels: &Map<String, Value>) -> Self {
        let mut requirements: Vec<LabelRequirement> = labels
            .iter()
            .map(|(k, v)| LabelRequirement {
                key: k.clone(),
                operator: LabelOperator::Equals,
                values: vec![scalar_string(v)],
            })
            .collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements, nothing: false }
    }

    /// Parses the query-string syntax of `?labelSelector=`: `a=b`, `a==b`,
    /// `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<5`, joined by
    /// commas (AND). Whitespace between tokens is ignored. Keys and values are
    /// validated like Kubernetes label keys and values.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(s);
        let mut requirements = parser.parse().map_err(SelectorError)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements, nothing: false })
    }

    /// Reads a `metav1.LabelSelector` in JSON form:
    /// `{"matchLabels": {k: v}, "matchExpressions": [{"key", "operator", "values"}]}`
    /// with operators `In`, `NotIn` (non-empty values), `Exists`,
    /// `DoesNotExist` (no values). `null` gives [`LabelSelector::nothing`],
    /// `{}` gives [`LabelSelector::everything`].
    pub fn from_json(sel: &Value) -> Result<Self, SelectorError> {
        let obj = match sel {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError(format!("label selector must be a JSON object, not {other}")));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Value::String(v) = v else {
                        return Err(SelectorError(format!("matchLabels[{k}]: label values must be strings, not {v}")));
                    };
                    requirements.push(LabelRequirement::new(k, LabelOperator::Equals, vec![v.clone()])?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!("matchLabels must be an object of strings, not {other}")));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(requirement_from_expression(expr)?);
                }
            }
            Some(other) => {
                return Err(SelectorError(format!("matchExpressions must be a list, not {other}")));
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements, nothing: false })
    }

    /// Whether an object with these labels (`metadata.labels`, `None` when
    /// absent) is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirement (and so matches everything).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is the match-nothing selector of a `null` metav1 selector.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// The value a selector of the form `key=v`, `key==v` or `key in (v)`
    /// requires for `key`, as `labels.Selector.RequiresExactMatch`.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In, [single]) => {
                Some(single.as_str())
            }
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn requirement_from_expression(expr: &Value) -> Result<LabelRequirement, SelectorError> {
    let Value::Object(expr) = expr else {
        return Err(SelectorError(format!("matchExpressions entries must be objects, not {expr}")));
    };
    let key = match expr.get("key") {
        Some(Value::String(k)) => k.as_str(),
        None | Some(Value::Null) => "",
        Some(other) => {
            return Err(SelectorError(format!("matchExpressions key must be a string, not {other}")));
        }
    };
    let op_text = match expr.get("operator") {
        Some(Value::String(o)) => o.as_str(),
        None | Some(Value::Null) => "",
        Some(other) => {
            return Err(SelectorError(format!("matchExpressions operator must be a string, not {other}")));
        }
    };
    let operator = match op_text {
        "In" => LabelOperator::In,
        "NotIn" => LabelOperator::NotIn,
        "Exists" => LabelOperator::Exists,
        "DoesNotExist" => LabelOperator::DoesNotExist,
        other => {
            return Err(SelectorError(format!("{} is not a valid label selector operator", go_quote(other))));
        }
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vals)) => {
            let mut out = Vec::with_capacity(vals.len());
            for v in vals {
                let Value::String(v) = v else {
                    return Err(SelectorError(format!("matchExpressions values must be strings, not {v}")));
                };
                out.push(v.clone());
            }
            out
        }
        Some(other) => {
            return Err(SelectorError(format!("matchExpressions values must be a list, not {other}")));
        }
    };
    LabelRequirement::new(key, operator, values)
}

// --- lexer -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied().filter(|b| *b != 0)
    }

    fn lex(&mut self) -> (Token, String) {
        while self.peek().is_some_and(is_whitespace) {
            self.pos += 1;
        }
        match self.peek() {
            None => (Token::EndOfString, String::new()),
            Some(b) if is_special_symbol(b) => self.scan_special_symbol(),
            Some(_) => self.scan_id_or_keyword(),
        }
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_whitespace(b) && !is_special_symbol(b)) {
            self.pos += 1;
        }
        let lit = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        match keyword_token(&lit) {
            Some(tok) => (tok, lit),
            None => (Token::Identifier, lit),
        }
    }

    /// Reads the longest run of special symbols that is a known token.
    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut buffer = String::new();
        let mut last: Option<(Token, String)> = None;
        while let Some(b) = self.peek().filter(|b| is_special_symbol(*b)) {
            buffer.push(char::from(b));
            if let Some(tok) = keyword_token(&buffer) {
                last = Some((tok, buffer.clone()));
                self.pos += 1;
            } else if last.is_some() {
                break;
            } else {
                self.pos += 1;
            }
        }
        last.unwrap_or_else(|| (Token::Error, format!("error expected: keyword found '{buffer}'")))
    }
}

// --- parser ----------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

impl Parser {
    fn new(s: &str) -> Self {
        let mut lexer = Lexer { s: s.as_bytes(), pos: 0 };
        let mut items = Vec::new();
        loop {
            let (tok, lit) = lexer.lex();
            items.push((tok, lit));
            if tok == Token::EndOfString {
                break;
            }
        }
        Parser { items, pos: 0 }
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        let idx = self.pos.min(self.items.len().saturating_sub(1));
        let (mut tok, lit) = self.items.get(idx).cloned().unwrap_or((Token::EndOfString, String::new()));
        if ctx == Context::Values && matches!(tok, Token::In | Token::NotIn) {
            tok = Token::Identifier;
        }
        (tok, lit)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.lookahead(ctx);
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => {
                            return Err(format!("found '{l}', expected: ',' or 'end of string'"));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'"));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op) = operator {
            return LabelRequirement::new(&key, op, Vec::new()).map_err(|e| e.0);
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        LabelRequirement::new(&key, operator, values.into_iter().collect()).map_err(|e| e.0)
    }

    /// Returns the key and, for `key` / `!key`, the unary operator.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOperator>), String> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(LabelOperator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = qualified_name_errors(&lit);
        if !errs.is_empty() {
            // kube-apiserver validates the key with a nil field path here.
            return Err(invalid_string("<nil>", &lit, &errs.join("; ")));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(LabelOperator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<LabelOperator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => LabelOperator::In,
            Token::Equals => LabelOperator::Equals,
            Token::DoubleEquals => LabelOperator::DoubleEquals,
            Token::GreaterThan => LabelOperator::GreaterThan,
            Token::LessThan => LabelOperator::LessThan,
            Token::NotIn => LabelOperator::NotIn,
            Token::NotEquals => LabelOperator::NotEquals,
            _ => {
                return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt"));
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (close, _) = self.consume(Context::Values);
                if close != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if tok2 == Token::Comma {
                        self.consume(Context::Values);
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// One selectable field of a kind: the selector label, the JSON path it is
/// read from, and the value of a missing field.
struct FieldSpec {
    label: &'static str,
    path: &'static str,
    missing: &'static str,
}

const fn spec(label: &'static str, path: &'static str, missing: &'static str) -> FieldSpec {
    FieldSpec { label, path, missing }
}

const METADATA_FIELDS: &[FieldSpec] =
    &[spec("metadata.name", "metadata.name", ""), spec("metadata.namespace", "metadata.namespace", "")];

const POD_FIELDS: &[FieldSpec] = &[
    spec("spec.nodeName", "spec.nodeName", ""),
    spec("spec.restartPolicy", "spec.restartPolicy", ""),
    spec("spec.schedulerName", "spec.schedulerName", ""),
    spec("spec.serviceAccountName", "spec.serviceAccountName", ""),
    spec("spec.hostNetwork", "spec.hostNetwork", "false"),
    spec("status.phase", "status.phase", ""),
    spec("status.podIP", "status.podIP", ""),
    spec("status.nominatedNodeName", "status.nominatedNodeName", ""),
];

const EVENT_FIELDS: &[FieldSpec] = &[
    spec("involvedObject.kind", "involvedObject.kind", ""),
    spec("involvedObject.namespace", "involvedObject.namespace", ""),
    spec("involvedObject.name", "involvedObject.name", ""),
    spec("involvedObject.uid", "involvedObject.uid", ""),
    spec("involvedObject.apiVersion", "involvedObject.apiVersion", ""),
    spec("involvedObject.resourceVersion", "involvedObject.resourceVersion", ""),
    spec("involvedObject.fieldPath", "involvedObject.fieldPath", ""),
    spec("reason", "reason", ""),
    spec("reportingComponent", "reportingComponent", ""),
    spec("source", "source.component", ""),
    spec("type", "type", ""),
];

const NODE_FIELDS: &[FieldSpec] = &[spec("spec.unschedulable", "spec.unschedulable", "false")];
const NAMESPACE_FIELDS: &[FieldSpec] = &[spec("status.phase", "status.phase", "")];
const SECRET_FIELDS: &[FieldSpec] = &[spec("type", "type", "")];
const REPLICASET_FIELDS: &[FieldSpec] = &[spec("status.replicas", "status.replicas", "0")];
const JOB_FIELDS: &[FieldSpec] = &[spec("status.successful", "status.succeeded", "0")];

/// The kind-specific selectable fields, or `None` for kinds that offer only
/// the metadata fields.
fn kind_fields(kind: &str) -> Option<&'static [FieldSpec]> {
    Some(match kind {
        "Pod" => POD_FIELDS,
        "Event" => EVENT_FIELDS,
        "Node" => NODE_FIELDS,
        "Namespace" => NAMESPACE_FIELDS,
        "Secret" => SECRET_FIELDS,
        "ReplicaSet" => REPLICASET_FIELDS,
        "Job" => JOB_FIELDS,
        _ => return None,
    })
}

/// One term of a field selector: `field=value` or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    field: String,
    value: String,
    not_equal: bool,
    path: Vec<String>,
    missing: &'static str,
}

impl FieldRequirement {
    /// The selector label, e.g. `spec.nodeName`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The (unescaped) value compared with.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `true` for `!=`, `false` for `=` / `==`.
    pub fn is_not_equal(&self) -> bool {
        self.not_equal
    }

    /// The string value of this field in `obj`, as in the object's field set.
    fn actual(&self, obj: &Value) -> String {
        let mut cur = obj;
        for part in &self.path {
            match cur.get(part.as_str()) {
                Some(next) => cur = next,
                None => return self.missing.to_string(),
            }
        }
        match cur {
            Value::Null => self.missing.to_string(),
            other => scalar_string(other),
        }
    }

    fn matches(&self, obj: &Value) -> bool {
        (self.actual(obj) == self.value) != self.not_equal
    }
}

/// Escapes `\`, `,` and `=` in a field selector value (`fields.EscapeValue`).
fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_field_value`], rejecting unescaped `,`/`=` and unknown
/// escapes like `fields.UnescapeValue`.
fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(SelectorError(format!("invalid field selector: invalid escape sequence: \\{other}")));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                )));
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError("invalid field selector: invalid escape sequence: \\".to_string()));
    }
    Ok(out)
}

/// Splits on commas that are not escaped with a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits `lhs<op>rhs` at the first operator (`!=`, `==`, `=`).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// A field selector: the AND of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses `?fieldSelector=` for objects of `kind`. Operators `=`, `==`,
    /// `!=`; commas separate terms (AND); `\,`, `\=` and `\\` escape those
    /// characters in values. Spaces are not trimmed (as in Kubernetes).
    /// Fields the kind does not offer are rejected with kube-apiserver's
    /// message; every kind offers `metadata.name` and `metadata.namespace`,
    /// and `Pod`, `Event`, `Node`, `Namespace`, `Secret`, `ReplicaSet`, `Job`
    /// offer their usual extra fields.
    pub fn parse(s: &str, kind: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let value = unescape_field_value(rhs)?;
            terms.push((lhs, op == "!=", value));
        }
        let extra = kind_fields(kind);
        let mut requirements = Vec::with_capacity(terms.len());
        for (field, not_equal, value) in terms {
            let spec = METADATA_FIELDS.iter().chain(extra.unwrap_or_default()).find(|f| f.label == field);
            let Some(spec) = spec else {
                return Err(SelectorError(if extra.is_some() {
                    format!("field label not supported: {field}")
                } else {
                    format!(
                        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        go_quote(field)
                    )
                }));
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                value,
                not_equal,
                path: spec.path.split('.').map(str::to_string).collect(),
                missing: spec.missing,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether `obj` (a whole object as JSON) satisfies every term. Values are
    /// read by dotted path; a missing field reads as `""` (or `"false"`/`"0"`
    /// for the boolean/integer fields), booleans and numbers by their string
    /// form.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(obj))
    }

    /// Whether the selector has no term (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in the sorted order kube-apiserver keeps them.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value a `field=value` term requires, as
    /// `fields.Selector.RequiresExactMatch` (useful for `metadata.name`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements.iter().find(|r| r.field == field && !r.not_equal).map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if r.not_equal { "!=" } else { "=" };
            write!(f, "{}{op}{}", r.field, escape_field_value(&r.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("labels must be an object"),
        }
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("parse {s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(v) => panic!("{s:?} parsed as {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn equality_operators() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        assert!(sel("app=web").matches(Some(&l)));
        assert!(sel("app==web").matches(Some(&l)));
        assert!(!sel("app=db").matches(Some(&l)));
        assert!(sel("app!=db").matches(Some(&l)));
        assert!(!sel("app!=web").matches(Some(&l)));
        // != and notin match when the label is absent.
        assert!(sel("missing!=x").matches(Some(&l)));
        assert!(sel("missing!=x").matches(None));
        assert!(!sel("app=web").matches(None));
        assert!(sel("app=web,tier=front").matches(Some(&l)));
        assert!(!sel("app=web,tier=back").matches(Some(&l)));
    }

    #[test]
    fn set_operators() {
        let l = labels(json!({"env": "prod"}));
        assert!(sel("env in (prod,staging)").matches(Some(&l)));
        assert!(sel("env in(prod)").matches(Some(&l)));
        assert!(!sel("env in (dev)").matches(Some(&l)));
        assert!(!sel("other in (prod)").matches(Some(&l)));
        assert!(sel("env notin (dev,qa)").matches(Some(&l)));
        assert!(!sel("env notin (prod)").matches(Some(&l)));
        assert!(sel("other notin (prod)").matches(Some(&l)));
        // `in` is an ordinary value inside parentheses.
        let l2 = labels(json!({"x": "in"}));
        assert!(sel("x in (in, notin)").matches(Some(&l2)));
    }

    #[test]
    fn existence_operators() {
        let l = labels(json!({"a": "1"}));
        assert!(sel("a").matches(Some(&l)));
        assert!(!sel("b").matches(Some(&l)));
        assert!(sel("!b").matches(Some(&l)));
        assert!(!sel("!a").matches(Some(&l)));
        assert!(sel("!b").matches(None));
        assert!(sel("a, !b").matches(Some(&l)));
    }

    #[test]
    fn numeric_operators() {
        let l = labels(json!({"n": "5", "s": "abc"}));
        assert!(sel("n>4").matches(Some(&l)));
        assert!(!sel("n>5").matches(Some(&l)));
        assert!(sel("n<6").matches(Some(&l)));
        assert!(!sel("n<5").matches(Some(&l)));
        assert!(!sel("s>1").matches(Some(&l)));
        assert!(!sel("missing<10").matches(Some(&l)));
        assert_eq!(
            err("n>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn whitespace_and_canonical_form() {
        let s = sel("  tier notin ( b , a ) ,app = web,!gone, has ,n > 3 ");
        assert_eq!(s.to_string(), "app=web,!gone,has,n>3,tier notin (a,b)");
        assert_eq!(sel("a==b").to_string(), "a==b");
        assert_eq!(sel("x in (b,a,b)").to_string(), "x in (a,b)");
        assert_eq!(sel("x=").to_string(), "x=");
        assert_eq!(sel("").to_string(), "");
        // Round trip.
        let again = sel(&s.to_string());
        assert_eq!(again, s);
    }

    #[test]
    fn empty_values() {
        let with_empty = labels(json!({"a": ""}));
        assert!(sel("a=").matches(Some(&with_empty)));
        assert!(sel("a in ()").matches(Some(&with_empty)));
        assert!(sel("a in (,x)").matches(Some(&with_empty)));
        assert_eq!(sel("a in (x,)").to_string(), "a in (,x)");
    }

    #[test]
    fn empty_selector() {
        let s = sel("");
        assert!(s.is_empty());
        assert!(s.matches(None));
        assert!(sel("  ").is_empty());
        assert!(!sel("a").is_empty());
        assert!(LabelSelector::everything().matches(None));
    }

    #[test]
    fn prefixed_keys() {
        let l = labels(json!({"app.kubernetes.io/name": "x"}));
        assert!(sel("app.kubernetes.io/name=x").matches(Some(&l)));
        assert_eq!(sel("app.kubernetes.io/name=x").requires_exact_match("app.kubernetes.io/name"), Some("x"));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(err("a b"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(err("a in b"), "unable to parse requirement: found 'b' expected: '('");
        assert_eq!(err("a in (b"), "unable to parse requirement: found '', expected: ',' or ')'");
        assert_eq!(err("a in (b c)"), "unable to parse requirement: found 'c', expected: ',' or ')'");
        assert_eq!(err("a in (=)"), "unable to parse requirement: found '=', expected: ',', ')' or identifier");
        assert_eq!(err("a=(b)"), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(err("=a"), "found '=', expected: !, identifier, or 'end of string'");
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("!"), "unable to parse requirement: found '', expected: identifier");
        assert_eq!(err("a<=5"), "unable to parse requirement: found '=', expected: identifier");
    }

    #[test]
    fn invalid_keys_and_values() {
        let e = err("-bad=x");
        assert_eq!(
            e,
            "unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        let long = "k".repeat(64);
        assert!(err(&format!("{long}=x")).contains("name part must be no more than 63 characters"));
        assert!(err("Bad_Prefix/x=y").contains("prefix part a lowercase RFC 1123 subdomain"));
        assert!(err("/x=y").contains("prefix part must be non-empty"));
        assert!(err("a/b/c=y").contains("a qualified name must consist of"));
        assert_eq!(
            err("app=demo-{nginx}"),
            "unable to parse requirement: values[0][app]: Invalid value: \"demo-{nginx}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 characters"));
        // 63 characters are fine.
        sel(&format!("{}={}", "k".repeat(63), "v".repeat(63)));
    }

    #[test]
    fn json_form() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.to_string(), "app=web,env notin (dev),!legacy,owner,tier in (edge,front)");
        let ok = labels(json!({"app": "web", "tier": "edge", "owner": "me"}));
        assert!(s.matches(Some(&ok)));
        let bad = labels(json!({"app": "web", "tier": "edge", "owner": "me", "legacy": "y"}));
        assert!(!s.matches(Some(&bad)));

        let empty = LabelSelector::from_json(&json!({})).unwrap_or_else(|e| panic!("{e}"));
        assert!(empty.is_empty());
        assert!(empty.matches(None));
        let nothing = LabelSelector::from_json(&Value::Null).unwrap_or_else(|e| panic!("{e}"));
        assert!(!nothing.is_empty());
        assert!(nothing.is_nothing());
        assert!(!nothing.matches(None));
        assert!(!nothing.matches(Some(&ok)));
    }

    #[test]
    fn json_form_errors() {
        let e = |v: Value| match LabelSelector::from_json(&v) {
            Ok(s) => panic!("accepted {v} as {s}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            e(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            e(json!({"matchExpressions": [{"key": "a", "operator": "NotIn"}]})),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            e(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
        );
        assert_eq!(
            e(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert!(e(json!({"matchLabels": {"-a": "x"}})).starts_with("key: Invalid value: \"-a\""));
        assert!(e(json!({"matchLabels": {"a": "x y"}})).starts_with("values[0][a]: Invalid value: \"x y\""));
        assert!(e(json!({"matchLabels": {"a": 1}})).contains("must be strings"));
        assert!(e(json!("a=b")).contains("must be a JSON object"));
        // Several problems are aggregated.
        assert!(
            e(json!({"matchExpressions": [{"key": "-a", "operator": "In"}]}))
                .starts_with("[key: Invalid value: \"-a\"")
        );
    }

    #[test]
    fn from_labels_matches_exactly() {
        let set = labels(json!({"b": "2", "a": "1"}));
        let s = LabelSelector::from_labels(&set);
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(s.matches(Some(&set)));
        assert!(!s.matches(Some(&labels(json!({"a": "1"})))));
    }

    fn fsel(s: &str, kind: &str) -> FieldSelector {
        FieldSelector::parse(s, kind).unwrap_or_else(|e| panic!("parse {s:?}: {e}"))
    }

    fn ferr(s: &str, kind: &str) -> String {
        match FieldSelector::parse(s, kind) {
            Ok(v) => panic!("{s:?} parsed as {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn field_metadata_on_every_kind() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        for kind in ["Pod", "ConfigMap", "PodChaos", "Event", "Node", "Secret", "Job"] {
            assert!(fsel("metadata.name=a", kind).matches(&obj));
            assert!(fsel("metadata.name==a", kind).matches(&obj));
            assert!(!fsel("metadata.name!=a", kind).matches(&obj));
            assert!(fsel("metadata.namespace=ns,metadata.name=a", kind).matches(&obj));
            assert!(!fsel("metadata.namespace=other", kind).matches(&obj));
        }
        assert!(fsel("metadata.namespace=", "Node").matches(&json!({"metadata": {"name": "n"}})));
    }

    #[test]
    fn field_pod() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"restartPolicy": "Always", "hostNetwork": true, "serviceAccountName": "sa", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        });
        assert!(fsel("spec.nodeName=", "Pod").matches(&pod));
        assert!(!fsel("spec.nodeName!=", "Pod").matches(&pod));
        assert!(fsel("status.phase=Running", "Pod").matches(&pod));
        assert!(fsel("status.phase!=Pending", "Pod").matches(&pod));
        assert!(fsel("spec.hostNetwork=true", "Pod").matches(&pod));
        assert!(fsel("spec.restartPolicy=Always,spec.serviceAccountName=sa", "Pod").matches(&pod));
        assert!(fsel("spec.schedulerName=default-scheduler", "Pod").matches(&pod));
        assert!(fsel("status.podIP=10.0.0.1", "Pod").matches(&pod));
        assert!(fsel("status.nominatedNodeName=", "Pod").matches(&pod));
        let bare = json!({"metadata": {"name": "q"}});
        assert!(fsel("spec.hostNetwork=false", "Pod").matches(&bare));
        assert_eq!(ferr("spec.containers=x", "Pod"), "field label not supported: spec.containers");
    }

    #[test]
    fn field_event() {
        let ev = json!({
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u1",
                "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
            "reason": "Killing", "type": "Normal", "source": {"component": "kubelet"},
            "reportingComponent": "kubelet"
        });
        for s in [
            "involvedObject.kind=Pod",
            "involvedObject.name=p",
            "involvedObject.namespace=ns",
            "involvedObject.uid=u1",
            "involvedObject.apiVersion=v1",
            "involvedObject.resourceVersion=7",
            "involvedObject.fieldPath=spec.containers{c}",
            "reason=Killing",
            "type=Normal",
            "source=kubelet",
            "reportingComponent=kubelet",
        ] {
            assert!(fsel(s, "Event").matches(&ev), "{s}");
        }
        assert!(!fsel("type=Warning", "Event").matches(&ev));
        assert_eq!(ferr("message=x", "Event"), "field label not supported: message");
    }

    #[test]
    fn field_other_kinds() {
        let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert!(fsel("spec.unschedulable=true", "Node").matches(&node));
        assert!(fsel("spec.unschedulable=false", "Node").matches(&json!({"metadata": {"name": "m"}})));
        let ns = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        assert!(fsel("status.phase=Terminating", "Namespace").matches(&ns));
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert!(fsel("type=kubernetes.io/tls", "Secret").matches(&secret));
        assert!(fsel("type!=Opaque", "Secret").matches(&secret));
        let rs = json!({"metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert!(fsel("status.replicas=3", "ReplicaSet").matches(&rs));
        assert!(fsel("status.replicas=0", "ReplicaSet").matches(&json!({"metadata": {}})));
        let job = json!({"metadata": {"name": "j"}, "status": {"succeeded": 1}});
        assert!(fsel("status.successful=1", "Job").matches(&job));
        assert_eq!(ferr("status.phase=x", "Secret"), "field label not supported: status.phase");
        assert_eq!(ferr("type=x", "Pod"), "field label not supported: type");
    }

    #[test]
    fn field_unknown_on_generic_kind() {
        assert_eq!(
            ferr("foo=bar", "PodChaos"),
            "\"foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert_eq!(
            ferr("spec.nodeName=x", "ConfigMap"),
            "\"spec.nodeName\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        // Spaces are not trimmed.
        assert!(ferr("metadata.name = x", "ConfigMap").contains("\"metadata.name \""));
    }

    #[test]
    fn field_syntax_and_escapes() {
        assert_eq!(ferr("metadata.name", "Pod"), "invalid selector: 'metadata.name'; can't understand 'metadata.name'");
        assert_eq!(
            ferr("metadata.name=a,bogus", "Pod"),
            "invalid selector: 'metadata.name=a,bogus'; can't understand 'bogus'"
        );
        assert_eq!(ferr("metadata.name=a=b", "Pod"), "invalid field selector: unescaped character in value: 61");
        assert_eq!(ferr("metadata.name=a\\x", "Pod"), "invalid field selector: invalid escape sequence: \\x");
        let s = fsel("metadata.name=a\\,b\\=c", "Pod");
        assert_eq!(s.requirements()[0].value(), "a,b=c");
        assert!(s.matches(&json!({"metadata": {"name": "a,b=c"}})));
        assert_eq!(s.to_string(), "metadata.name=a\\,b\\=c");
        assert_eq!(s.requires_exact_match("metadata.name"), Some("a,b=c"));
    }

    #[test]
    fn field_empty_and_display() {
        assert!(fsel("", "Pod").is_empty());
        assert!(fsel(",", "Pod").is_empty());
        assert!(fsel("", "Pod").matches(&json!({})));
        let s = fsel("status.phase!=Failed,metadata.name==a", "Pod");
        assert!(!s.is_empty());
        assert_eq!(s.to_string(), "metadata.name=a,status.phase!=Failed");
        assert!(s.requirements()[1].is_not_equal());
        assert_eq!(s.requirements()[1].field(), "status.phase");
        assert_eq!(s.requires_exact_match("status.phase"), None);
    }
}
