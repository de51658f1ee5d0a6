//! JSON (as stored) → protobuf message bytes, driven by the field table.

use base64::Engine;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use serde_json::Value;

use super::CodecError;
use super::schema::{Field, MessageId, Scalar, Schema, Shape, Special};
use super::time;

/// Appends the fields of message `id` holding `value` (without key or length) to `buf`.
pub fn message(s: &Schema, id: MessageId, value: &Value, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let m = &s.messages[id];
    if m.special != Special::None {
        return special(s, id, value, buf);
    }
    let Value::Object(map) = value else {
        return Err(CodecError::new(format!("expected an object for {}, found {}", m.name, kind_of(value))));
    };
    for (key, v) in map {
        if v.is_null() {
            continue;
        }
        // Keys the message does not have (apiVersion/kind of the envelope, pruned fields) are
        // not part of the protobuf form.
        let Some(&i) = m.by_json.get(key) else { continue };
        field(s, &m.fields[i], v, buf).map_err(|e| e.at(key))?;
    }
    Ok(())
}

fn field(s: &Schema, f: &Field, v: &Value, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    match f.shape {
        Shape::Single => value(s, f.tag, f.scalar, v, buf),
        Shape::Repeated => {
            let Value::Array(items) = v else {
                return Err(CodecError::new(format!("expected an array, found {}", kind_of(v))));
            };
            for (i, item) in items.iter().enumerate() {
                value(s, f.tag, f.scalar, item, buf).map_err(|e| e.at(&format!("[{i}]")))?;
            }
            Ok(())
        }
        Shape::Map => {
            let Value::Object(entries) = v else {
                return Err(CodecError::new(format!("expected an object, found {}", kind_of(v))));
            };
            for (k, item) in entries {
                nested(f.tag, buf, |buf| {
                    value(s, 1, Scalar::String, &Value::String(k.clone()), buf)?;
                    if item.is_null() { Ok(()) } else { value(s, 2, f.scalar, item, buf) }
                })
                .map_err(|e| e.at(k))?;
            }
            Ok(())
        }
    }
}

/// Writes a length-delimited field whose content `write` appends. The length is written after
/// the content is known: one byte is reserved and the content moved only when it is longer.
pub fn nested(
    tag: u32,
    buf: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    encode_key(tag, WireType::LengthDelimited, buf);
    let len_at = buf.len();
    buf.push(0);
    let start = buf.len();
    write(buf)?;
    let len = buf.len() - start;
    let width = encoded_len_varint(len as u64);
    if width > 1 {
        buf.splice(len_at..len_at, std::iter::repeat_n(0, width - 1));
    }
    let mut prefix = Vec::with_capacity(width);
    encode_varint(len as u64, &mut prefix);
    buf[len_at..len_at + width].copy_from_slice(&prefix);
    Ok(())
}

fn value(s: &Schema, tag: u32, scalar: Scalar, v: &Value, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    match scalar {
        Scalar::String => {
            let Value::String(text) = v else {
                return Err(CodecError::new(format!("expected a string, found {}", kind_of(v))));
            };
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(text.len() as u64, buf);
            buf.extend_from_slice(text.as_bytes());
        }
        Scalar::Int32 | Scalar::Int64 => {
            encode_key(tag, WireType::Varint, buf);
            encode_varint(integer(v)? as u64, buf);
        }
        Scalar::Bool => {
            let Value::Bool(b) = v else {
                return Err(CodecError::new(format!("expected a boolean, found {}", kind_of(v))));
            };
            encode_key(tag, WireType::Varint, buf);
            encode_varint(u64::from(*b), buf);
        }
        Scalar::Double => {
            let Some(n) = v.as_f64() else {
                return Err(CodecError::new(format!("expected a number, found {}", kind_of(v))));
            };
            encode_key(tag, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        Scalar::Bytes => {
            let Value::String(text) = v else {
                return Err(CodecError::new(format!("expected a base64 string, found {}", kind_of(v))));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| CodecError::new(format!("invalid base64: {e}")))?;
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(bytes.len() as u64, buf);
            buf.extend_from_slice(&bytes);
        }
        Scalar::Message(id) => nested(tag, buf, |buf| message(s, id, v, buf))?,
    }
    Ok(())
}

fn integer(v: &Value) -> Result<i64, CodecError> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| CodecError::new(format!("expected an integer, found {}", kind_of(v))))
}

/// The message id of field `tag` of message `id` (the special messages' parts).
fn part(s: &Schema, id: MessageId, tag: u32) -> Result<&Field, CodecError> {
    let m = &s.messages[id];
    m.by_tag.get(&tag).map(|&i| &m.fields[i]).ok_or_else(|| CodecError::new(format!("{} has no field {tag}", m.name)))
}

fn special(s: &Schema, id: MessageId, v: &Value, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let m = &s.messages[id];
    let text = || v.as_str().ok_or_else(|| CodecError::new(format!("expected a string, found {}", kind_of(v))));
    match m.special {
        Special::None => unreachable!("ordinary messages are encoded field by field"),
        Special::Time | Special::MicroTime => {
            let (seconds, nanos) = time::parse_timestamp(text()?)?;
            value(s, 1, Scalar::Int64, &Value::from(seconds), buf)?;
            value(s, 2, Scalar::Int32, &Value::from(nanos), buf)?;
        }
        Special::Duration => {
            let nanos = time::parse_duration(text()?)?;
            value(s, 1, Scalar::Int64, &Value::from(nanos), buf)?;
        }
        Special::Quantity => {
            let q = match v {
                Value::Number(n) => n.to_string(),
                _ => text()?.to_string(),
            };
            value(s, 1, Scalar::String, &Value::String(q), buf)?;
        }
        Special::IntOrString => match v {
            Value::String(_) => {
                value(s, 1, Scalar::Int64, &Value::from(1), buf)?;
                value(s, 3, Scalar::String, v, buf)?;
            }
            _ => {
                value(s, 1, Scalar::Int64, &Value::from(0), buf)?;
                value(s, 2, Scalar::Int32, &Value::from(integer(v)?), buf)?;
            }
        },
        Special::RawJson => {
            let raw = serde_json::to_vec(v).map_err(|e| CodecError::new(format!("serialising JSON: {e}")))?;
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(raw.len() as u64, buf);
            buf.extend_from_slice(&raw);
        }
        Special::StringSlice => field(s, part(s, id, 1)?, v, buf)?,
        Special::SchemaOrArray => match v {
            Value::Array(_) => field(s, part(s, id, 2)?, v, buf)?,
            _ => field(s, part(s, id, 1)?, v, buf)?,
        },
        Special::SchemaOrBool => match v {
            Value::Bool(_) => field(s, part(s, id, 1)?, v, buf)?,
            _ => {
                field(s, part(s, id, 1)?, &Value::Bool(true), buf)?;
                field(s, part(s, id, 2)?, v, buf)?;
            }
        },
        Special::SchemaOrStringArray => match v {
            Value::Array(_) => field(s, part(s, id, 2)?, v, buf)?,
            _ => field(s, part(s, id, 1)?, v, buf)?,
        },
    }
    Ok(())
}

/// A JSON type name for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
