//! The message layouts of the Kubernetes protobuf types, read from `fields.txt` (generated
//! from `k8s-pb` and `k8s-openapi` by `sim/tests/protobuf_schema.rs`).

use std::collections::HashMap;
use std::sync::OnceLock;

/// Index of a message in [`Schema::messages`].
pub type MessageId = usize;

/// A field's wire representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `string`.
    String,
    /// `int32` (varint).
    Int32,
    /// `int64` (varint).
    Int64,
    /// `bool` (varint).
    Bool,
    /// `bytes` (base64 in JSON).
    Bytes,
    /// `double` (fixed 64).
    Double,
    /// An embedded message.
    Message(MessageId),
}

/// Whether a field holds one value, a list or a string-keyed map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One value.
    Single,
    /// `repeated`.
    Repeated,
    /// `map<string, V>`.
    Map,
}

/// One field of a message.
#[derive(Debug, Clone)]
pub struct Field {
    /// Field number.
    pub tag: u32,
    /// JSON name.
    pub json: String,
    /// Value type.
    pub scalar: Scalar,
    /// Cardinality.
    pub shape: Shape,
}

/// Messages whose JSON form is not an object of their fields (Go types with custom
/// JSON marshalling, or Go slices wrapped in a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// An ordinary message.
    None,
    /// `metav1.Time`: RFC 3339 seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339 microseconds.
    MicroTime,
    /// `metav1.Duration`: a Go duration string.
    Duration,
    /// `resource.Quantity`: a string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`, apiextensions `JSON`: embedded JSON bytes.
    RawJson,
    /// A Go `[]string` named type (`ExtraValue`): JSON is the array of field 1.
    StringSlice,
    /// apiextensions `JSONSchemaPropsOrArray`: a schema (1) or an array of schemas (2).
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: a bool (1) or a schema (2).
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: a schema (1) or an array of strings (2).
    SchemaOrStringArray,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Message {
    /// OpenAPI-style name, e.g. `io.k8s.api.core.v1.Pod`.
    pub name: String,
    /// Fields in table order.
    pub fields: Vec<Field>,
    /// JSON name → index into `fields`.
    pub by_json: HashMap<String, usize>,
    /// Field number → index into `fields`.
    pub by_tag: HashMap<u32, usize>,
    /// Non-object JSON form, if any.
    pub special: Special,
}

/// All messages, and the top-level kinds.
#[derive(Debug)]
pub struct Schema {
    /// Messages by id.
    pub messages: Vec<Message>,
    by_name: HashMap<String, MessageId>,
    /// `apiVersion` → protobuf package (`apps/v1` → `io.k8s.api.apps.v1`).
    packages: HashMap<String, String>,
}

impl Schema {
    /// The schema built into the server.
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse(include_str!("fields.txt")))
    }

    /// Parses the table. The table is generated and checked by a test, so a malformed line is a
    /// build defect: it is skipped rather than failing requests at run time.
    fn parse(text: &str) -> Schema {
        // (message name, [(tag, JSON name, type)]) before references are resolved.
        type RawMessage = (String, Vec<(u32, String, String)>);
        let mut raw: Vec<RawMessage> = Vec::new();
        let mut packages = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["kind", api_version, kind, message] => {
                    if let Some(pkg) = message.strip_suffix(&format!(".{kind}")) {
                        packages.insert(api_version.to_string(), pkg.to_string());
                    }
                }
                ["message", name] => raw.push((name.to_string(), Vec::new())),
                [tag, json, kind] => {
                    if let (Some(last), Ok(tag)) = (raw.last_mut(), tag.parse()) {
                        last.1.push((tag, json.to_string(), kind.to_string()));
                    }
                }
                _ => {}
            }
        }
        let by_name: HashMap<String, MessageId> = raw.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        let messages = raw
            .into_iter()
            .map(|(name, fields)| {
                let fields: Vec<Field> = fields
                    .into_iter()
                    .filter_map(|(tag, json, kind)| {
                        let (shape, ty) = if let Some(t) = kind.strip_prefix("[]") {
                            (Shape::Repeated, t)
                        } else if let Some(t) = kind.strip_prefix("map:") {
                            (Shape::Map, t)
                        } else {
                            (Shape::Single, kind.as_str())
                        };
                        let scalar = match ty {
                            "string" => Scalar::String,
                            "int32" => Scalar::Int32,
                            "int64" => Scalar::Int64,
                            "bool" => Scalar::Bool,
                            "bytes" => Scalar::Bytes,
                            "double" => Scalar::Double,
                            other => Scalar::Message(*by_name.get(other)?),
                        };
                        Some(Field { tag, json, scalar, shape })
                    })
                    .collect();
                let by_json = fields.iter().enumerate().map(|(i, f)| (f.json.clone(), i)).collect();
                let by_tag = fields.iter().enumerate().map(|(i, f)| (f.tag, i)).collect();
                let special = special_of(&name);
                Message { name, fields, by_json, by_tag, special }
            })
            .collect();
        Schema { messages, by_name, packages }
    }

    /// The message of a kind served at `apiVersion` (also list kinds, `Status`, `Scale`, ...).
    pub fn message_of(&self, api_version: &str, kind: &str) -> Option<MessageId> {
        // Status, DeleteOptions, WatchEvent... are meta/v1 types whichever group they are sent to.
        let pkg = self.packages.get(api_version).map(String::as_str);
        pkg.and_then(|p| self.by_name.get(&format!("{p}.{kind}")))
            .or_else(|| self.by_name.get(&format!("io.k8s.apimachinery.pkg.apis.meta.v1.{kind}")))
            .copied()
    }
}

fn special_of(name: &str) -> Special {
    let short = name.rsplit('.').next().unwrap_or(name);
    match (name, short) {
        ("io.k8s.apimachinery.pkg.apis.meta.v1.Time", _) => Special::Time,
        ("io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime", _) => Special::MicroTime,
        ("io.k8s.apimachinery.pkg.apis.meta.v1.Duration", _) => Special::Duration,
        ("io.k8s.apimachinery.pkg.api.resource.Quantity", _) => Special::Quantity,
        ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", _) => Special::IntOrString,
        ("io.k8s.apimachinery.pkg.runtime.RawExtension", _) | ("io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1", _) => {
            Special::RawJson
        }
        (n, "JSON") if n.starts_with("io.k8s.apiextensions-apiserver.") => Special::RawJson,
        (n, "JSONSchemaPropsOrArray") if n.starts_with("io.k8s.apiextensions-apiserver.") => Special::SchemaOrArray,
        (n, "JSONSchemaPropsOrBool") if n.starts_with("io.k8s.apiextensions-apiserver.") => Special::SchemaOrBool,
        (n, "JSONSchemaPropsOrStringArray") if n.starts_with("io.k8s.apiextensions-apiserver.") => {
            Special::SchemaOrStringArray
        }
        (_, "ExtraValue") => Special::StringSlice,
        _ => Special::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_resolves_every_message_reference() {
        let s = Schema::get();
        let pod = s.message_of("v1", "Pod").expect("Pod");
        let spec = &s.messages[pod].fields[s.messages[pod].by_json["spec"]];
        assert_eq!(spec.tag, 2);
        assert!(matches!(spec.scalar, Scalar::Message(m) if s.messages[m].name == "io.k8s.api.core.v1.PodSpec"));
        assert!(s.message_of("apps/v1", "DeploymentList").is_some());
        assert_eq!(
            s.message_of("apps/v1", "Status").map(|m| s.messages[m].name.as_str()),
            Some("io.k8s.apimachinery.pkg.apis.meta.v1.Status")
        );
        // Every `kind` reference in the text resolved: the generated table names no unknown type.
        let text = include_str!("fields.txt");
        let refs = text.lines().filter(|l| l.starts_with("  ")).count();
        let fields: usize = s.messages.iter().map(|m| m.fields.len()).sum();
        assert_eq!(refs, fields, "a field of the table names a message the table does not define");
    }
}
