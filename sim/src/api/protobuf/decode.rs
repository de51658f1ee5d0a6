//! Protobuf message bytes → JSON (as a JSON client would have sent it), driven by the field
//! table.
//!
//! Go's protobuf marshalling writes every non-pointer scalar, zero or not, so a decoded
//! message carries `""`, `0` and `false` for fields the client never set. kube-apiserver
//! decodes into Go structs where those zeros mean "unset" and its defaulting fills them; the
//! embedded cluster keeps JSON, where a present field counts as set. Zero scalars are
//! therefore dropped, except for the fields that are pointers in the Go types and where zero
//! is a meaningful value different from unset ([`KEEP_ZERO`]).

use base64::Engine;
use prost::encoding::{WireType, decode_key, decode_varint};
use serde_json::{Map, Value};

use super::CodecError;
use super::schema::{Field, MessageId, Scalar, Schema, Shape, Special};
use super::time;

/// JSON names of pointer fields (`*int32`, `*int64`, `*bool`, `*string`) of the built-in
/// types whose zero value means something else than "not set".
const KEEP_ZERO: &[&str] = &[
    "activeDeadlineSeconds",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "backoffLimit",
    "backoffLimitPerIndex",
    "completions",
    "defaultMode",
    "enableServiceLinks",
    "expirationSeconds",
    "failedJobsHistoryLimit",
    "fsGroup",
    "gracePeriodSeconds",
    "hostUsers",
    "immutable",
    "maxFailedIndexes",
    "mode",
    "optional",
    "parallelism",
    "priority",
    "privileged",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "startingDeadlineSeconds",
    "storageClassName",
    "successfulJobsHistoryLimit",
    "suspend",
    "terminationGracePeriodSeconds",
    "ttlSecondsAfterFinished",
];

/// One raw field read from the wire.
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
}

fn read_fields(mut buf: &[u8]) -> Result<Vec<(u32, Raw<'_>)>, CodecError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(|e| CodecError::new(format!("malformed field key: {e}")))?;
        let raw = match wire {
            WireType::Varint => Raw::Varint(decode_varint(&mut buf).map_err(|e| CodecError::new(e.to_string()))?),
            WireType::SixtyFourBit => {
                let (b, rest) = split(buf, 8)?;
                buf = rest;
                Raw::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| CodecError::new("short fixed64"))?))
            }
            WireType::ThirtyTwoBit => {
                // No Kubernetes field is fixed32; the value is skipped like an unknown field.
                buf = split(buf, 4)?.1;
                Raw::Fixed32
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|e| CodecError::new(e.to_string()))?;
                let (b, rest) = split(buf, usize::try_from(len).map_err(|_| CodecError::new("length overflow"))?)?;
                buf = rest;
                Raw::Bytes(b)
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(CodecError::new(format!("field {tag}: protobuf groups are not used by Kubernetes")));
            }
        };
        out.push((tag, raw));
    }
    Ok(out)
}

fn split(buf: &[u8], n: usize) -> Result<(&[u8], &[u8]), CodecError> {
    if buf.len() < n {
        return Err(CodecError::new(format!("truncated message: {n} bytes announced, {} left", buf.len())));
    }
    Ok(buf.split_at(n))
}

/// Decodes message `id`; `None` when its JSON form is absent (a zero `Time`).
pub fn message(s: &Schema, id: MessageId, bytes: &[u8]) -> Result<Option<Value>, CodecError> {
    let m = &s.messages[id];
    let fields = read_fields(bytes).map_err(|e| e.at(&m.name))?;
    if m.special != Special::None {
        return special(s, id, &fields);
    }
    let mut out = Map::new();
    for (tag, raw) in &fields {
        // Fields added after this table was generated are skipped, as proto decoders do.
        let Some(&i) = m.by_tag.get(tag) else { continue };
        let f = &m.fields[i];
        let v = value(s, f, raw).map_err(|e| e.at(&f.json))?;
        match f.shape {
            Shape::Single => {
                if let Some(v) = v.filter(|v| !is_zero(v) || KEEP_ZERO.contains(&f.json.as_str())) {
                    out.insert(f.json.clone(), v);
                }
            }
            Shape::Repeated => {
                if let Value::Array(items) = out.entry(f.json.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                    items.push(v.unwrap_or(Value::Null));
                }
            }
            Shape::Map => {
                let (k, v) = map_entry(s, f, raw)?;
                if let Value::Object(entries) = out.entry(f.json.clone()).or_insert_with(|| Value::Object(Map::new())) {
                    entries.insert(k, v);
                }
            }
        }
    }
    Ok(Some(Value::Object(out)))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn map_entry(s: &Schema, f: &Field, raw: &Raw<'_>) -> Result<(String, Value), CodecError> {
    let Raw::Bytes(entry) = raw else { return Err(CodecError::new("map entry is not length-delimited").at(&f.json)) };
    let mut key = String::new();
    let mut val = Value::Null;
    let value_field = Field { tag: 2, json: f.json.clone(), scalar: f.scalar, shape: Shape::Single };
    for (tag, r) in read_fields(entry)? {
        match tag {
            1 => {
                key = match scalar(s, Scalar::String, &r)? {
                    Some(Value::String(k)) => k,
                    _ => String::new(),
                }
            }
            2 => val = value(s, &value_field, &r)?.unwrap_or(Value::Null),
            _ => {}
        }
    }
    // A map value with no field 2 is the zero value of its type.
    if val.is_null() {
        val = match f.scalar {
            Scalar::String | Scalar::Bytes => Value::String(String::new()),
            Scalar::Message(id) => message(s, id, &[])?.unwrap_or(Value::Null),
            _ => Value::from(0),
        };
    }
    Ok((key, val))
}

fn value(s: &Schema, f: &Field, raw: &Raw<'_>) -> Result<Option<Value>, CodecError> {
    if f.shape == Shape::Map {
        return Ok(None);
    }
    scalar(s, f.scalar, raw)
}

fn scalar(s: &Schema, ty: Scalar, raw: &Raw<'_>) -> Result<Option<Value>, CodecError> {
    let wrong = || CodecError::new("unexpected wire type");
    Ok(match (ty, raw) {
        (Scalar::String, Raw::Bytes(b)) => Some(Value::String(
            std::str::from_utf8(b).map_err(|e| CodecError::new(format!("invalid UTF-8: {e}")))?.to_string(),
        )),
        (Scalar::Int32, Raw::Varint(n)) => Some(Value::from(*n as i64 as i32)),
        (Scalar::Int64, Raw::Varint(n)) => Some(Value::from(*n as i64)),
        (Scalar::Bool, Raw::Varint(n)) => Some(Value::Bool(*n != 0)),
        (Scalar::Double, Raw::Fixed64(n)) => serde_json::Number::from_f64(f64::from_bits(*n)).map(Value::Number),
        (Scalar::Bytes, Raw::Bytes(b)) => Some(Value::String(base64::engine::general_purpose::STANDARD.encode(b))),
        (Scalar::Message(id), Raw::Bytes(b)) => message(s, id, b)?,
        _ => return Err(wrong()),
    })
}

fn first<'a>(fields: &'a [(u32, Raw<'a>)], tag: u32) -> Option<&'a Raw<'a>> {
    fields.iter().rev().find(|(t, _)| *t == tag).map(|(_, r)| r)
}

fn int(fields: &[(u32, Raw<'_>)], tag: u32) -> i64 {
    match first(fields, tag) {
        Some(Raw::Varint(n)) => *n as i64,
        _ => 0,
    }
}

fn text<'a>(fields: &'a [(u32, Raw<'a>)], tag: u32) -> Result<&'a str, CodecError> {
    match first(fields, tag) {
        Some(Raw::Bytes(b)) => std::str::from_utf8(b).map_err(|e| CodecError::new(format!("invalid UTF-8: {e}"))),
        _ => Ok(""),
    }
}

fn part(s: &Schema, id: MessageId, tag: u32) -> Result<Field, CodecError> {
    let m = &s.messages[id];
    m.by_tag
        .get(&tag)
        .map(|&i| m.fields[i].clone())
        .ok_or_else(|| CodecError::new(format!("{} has no field {tag}", m.name)))
}

/// All values of a repeated part of a special message.
fn repeated(s: &Schema, id: MessageId, fields: &[(u32, Raw<'_>)], tag: u32) -> Result<Value, CodecError> {
    let f = part(s, id, tag)?;
    let mut items = Vec::new();
    for (_, r) in fields.iter().filter(|(t, _)| *t == tag) {
        items.push(scalar(s, f.scalar, r)?.unwrap_or(Value::Null));
    }
    Ok(Value::Array(items))
}

fn special(s: &Schema, id: MessageId, fields: &[(u32, Raw<'_>)]) -> Result<Option<Value>, CodecError> {
    let m = &s.messages[id];
    Ok(match m.special {
        Special::None => unreachable!("ordinary messages are decoded field by field"),
        Special::Time | Special::MicroTime => {
            let (seconds, nanos) = (int(fields, 1), int(fields, 2) as i32);
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            Some(Value::String(time::format_timestamp(seconds, nanos, m.special == Special::MicroTime)?))
        }
        Special::Duration => Some(Value::String(time::format_duration(int(fields, 1)))),
        Special::Quantity => Some(Value::String(text(fields, 1)?.to_string())),
        Special::IntOrString => {
            if int(fields, 1) == 1 {
                Some(Value::String(text(fields, 3)?.to_string()))
            } else {
                Some(Value::from(int(fields, 2) as i32))
            }
        }
        Special::RawJson => match first(fields, 1) {
            Some(Raw::Bytes(b)) if !b.is_empty() => Some(super::raw_object(b)?),
            _ => None,
        },
        Special::StringSlice => Some(repeated(s, id, fields, 1)?),
        Special::SchemaOrArray => {
            if first(fields, 2).is_some() {
                Some(repeated(s, id, fields, 2)?)
            } else {
                schema_part(s, id, fields, 1)?
            }
        }
        Special::SchemaOrBool => match schema_part(s, id, fields, 2)? {
            Some(schema) => Some(schema),
            None => Some(Value::Bool(int(fields, 1) != 0)),
        },
        Special::SchemaOrStringArray => {
            if first(fields, 2).is_some() {
                Some(repeated(s, id, fields, 2)?)
            } else {
                schema_part(s, id, fields, 1)?
            }
        }
    })
}

fn schema_part(s: &Schema, id: MessageId, fields: &[(u32, Raw<'_>)], tag: u32) -> Result<Option<Value>, CodecError> {
    let f = part(s, id, tag)?;
    match first(fields, tag) {
        Some(r) => scalar(s, f.scalar, r),
        None => Ok(None),
    }
}
