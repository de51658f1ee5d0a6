//! Scenario parameters: their types and how values are read (from `--set` text or a YAML
//! default) and written into a template.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::yaml::Node;
use crate::chaos::validate::{label_key, label_value, positive_duration};

/// The type of a scenario parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Any non-empty string.
    String,
    /// An integer, optionally bounded by `minimum`/`maximum`.
    Integer,
    /// A positive Go duration (`30s`, `1m30s`, `2h`), written as a string.
    Duration,
    /// A number from 0 to 100, written as Chaos Mesh wants it: a string without `%` (`"50"`).
    Percent,
    /// Kubernetes labels, `key=value,key2=value2` on the command line, a mapping in YAML.
    Labels,
    /// `true` or `false`.
    Bool,
}

impl ParamType {
    /// Every type.
    pub const ALL: [ParamType; 6] = [
        ParamType::String,
        ParamType::Integer,
        ParamType::Duration,
        ParamType::Percent,
        ParamType::Labels,
        ParamType::Bool,
    ];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Duration => "duration",
            ParamType::Percent => "percent",
            ParamType::Labels => "labels",
            ParamType::Bool => "bool",
        }
    }

    /// The type named `s`.
    pub fn parse(s: &str) -> Option<ParamType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// What a value of this type looks like, for messages.
    pub fn expected(self, bounds: Bounds) -> String {
        match self {
            ParamType::String => "a non-empty string".into(),
            ParamType::Integer => match (bounds.minimum, bounds.maximum) {
                (Some(lo), Some(hi)) => format!("an integer from {lo} to {hi}"),
                (Some(lo), None) => format!("an integer of at least {lo}"),
                (None, Some(hi)) => format!("an integer of at most {hi}"),
                (None, None) => "an integer".into(),
            },
            ParamType::Duration => "a Go duration such as 30s, 1m30s or 2h (units ns, us, ms, s, m, h; no days)".into(),
            ParamType::Percent => "a number from 0 to 100, e.g. 50 or 12.5 (a trailing % is allowed)".into(),
            ParamType::Labels => "labels as key=value pairs separated by commas, e.g. app=db,role=primary".into(),
            ParamType::Bool => "true or false".into(),
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds of an integer parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Smallest allowed value.
    pub minimum: Option<i64>,
    /// Largest allowed value.
    pub maximum: Option<i64>,
}

/// A typed parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A Go duration, as written.
    Duration(String),
    /// A percentage as Chaos Mesh writes it (no `%`).
    Percent(String),
    /// Labels.
    Labels(BTreeMap<String, String>),
    /// A boolean.
    Bool(bool),
}

impl ParamValue {
    /// The value where a template has the whole placeholder unquoted (`value: ${p}`):
    /// integers and booleans stay typed, labels become a mapping, the rest are strings.
    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::Integer(i) => Value::from(*i),
            ParamValue::Bool(b) => Value::Bool(*b),
            ParamValue::Labels(l) => {
                Value::Object(l.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect())
            }
            other => Value::String(other.to_string()),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::String(s) | ParamValue::Duration(s) | ParamValue::Percent(s) => f.write_str(s),
            ParamValue::Integer(i) => write!(f, "{i}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Labels(l) => {
                let pairs: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
                f.write_str(&pairs.join(","))
            }
        }
    }
}

/// Reads `text` (from `--set name=text`) as a value of type `ty`.
pub fn parse_text(ty: ParamType, bounds: Bounds, text: &str) -> Result<ParamValue, String> {
    let bad = || format!("expected {}, got `{text}`", ty.expected(bounds));
    match ty {
        ParamType::String => {
            if text.is_empty() {
                Err(bad())
            } else {
                Ok(ParamValue::String(text.to_string()))
            }
        }
        ParamType::Integer => {
            let i: i64 = text.trim().parse().map_err(|_| bad())?;
            check_bounds(i, ty, bounds)
        }
        ParamType::Duration => {
            positive_duration(text).map_err(|_| bad())?;
            Ok(ParamValue::Duration(text.to_string()))
        }
        ParamType::Percent => percent(text.trim()).ok_or_else(bad),
        ParamType::Labels => {
            let mut labels = BTreeMap::new();
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| format!("{}: `{pair}` has no `=`", bad()))?;
                label_key(k.trim()).map_err(|e| format!("{}: {e}", bad()))?;
                label_value(v.trim()).map_err(|e| format!("{}: {e}", bad()))?;
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
            if labels.is_empty() {
                return Err(bad());
            }
            Ok(ParamValue::Labels(labels))
        }
        ParamType::Bool => match text.trim() {
            "true" => Ok(ParamValue::Bool(true)),
            "false" => Ok(ParamValue::Bool(false)),
            _ => Err(bad()),
        },
    }
}

/// Reads a YAML `default:` node as a value of type `ty`.
pub fn parse_node(ty: ParamType, bounds: Bounds, node: &Node) -> Result<ParamValue, String> {
    let bad = || format!("expected {}, got {}", ty.expected(bounds), node.type_name());
    match (ty, node) {
        (ParamType::String | ParamType::Duration, Node::Str(s)) => parse_text(ty, bounds, s),
        (ParamType::Integer, Node::Int(i)) => check_bounds(*i, ty, bounds),
        (ParamType::Percent, Node::Int(i)) => parse_text(ty, bounds, &i.to_string()),
        (ParamType::Percent, Node::Float(f)) => parse_text(ty, bounds, &f.to_string()),
        (ParamType::Percent, Node::Str(s)) => parse_text(ty, bounds, s),
        (ParamType::Bool, Node::Bool(b)) => Ok(ParamValue::Bool(*b)),
        (ParamType::Labels, Node::Map(entries)) => {
            let mut pairs = Vec::new();
            for (k, v) in entries {
                match &v.value {
                    Node::Str(s) => pairs.push(format!("{}={s}", k.value)),
                    other => {
                        return Err(format!(
                            "label `{}`: expected a string value (quote it), got {}",
                            k.value,
                            other.type_name()
                        ));
                    }
                }
            }
            if pairs.is_empty() {
                return Err(bad());
            }
            parse_text(ty, bounds, &pairs.join(","))
        }
        _ => Err(bad()),
    }
}

fn check_bounds(i: i64, ty: ParamType, bounds: Bounds) -> Result<ParamValue, String> {
    if bounds.minimum.is_some_and(|lo| i < lo) || bounds.maximum.is_some_and(|hi| i > hi) {
        Err(format!("expected {}, got {i}", ty.expected(bounds)))
    } else {
        Ok(ParamValue::Integer(i))
    }
}

fn percent(text: &str) -> Option<ParamValue> {
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    let valid = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    match number.parse::<f64>() {
        Ok(v) if valid && (0.0..=100.0).contains(&v) => Some(ParamValue::Percent(number.to_string())),
        _ => None,
    }
}
