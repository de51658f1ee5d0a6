//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`) for every built-in kind:
//! request bodies, objects, lists, watch frames and `Status` errors, converted to and from
//! the JSON the store keeps.
//!
//! Wire format (apimachinery `runtime/serializer/protobuf/protobuf.go`): the bytes `k8s\0`,
//! then a `runtime.Unknown` whose `typeMeta` carries apiVersion/kind and whose `raw` is the
//! object's message. Watch streams (`;stream=watch`, apiserver `handlers/watch.go`) are
//! frames of a 4-byte big-endian length and a `metav1.WatchEvent` whose `object.raw` is a
//! full envelope. The envelope and event messages are `k8s-pb`'s prost types; the objects are
//! converted field by field with the table in `fields.txt`, generated from `k8s-pb` (field
//! numbers, types) and `k8s-openapi` (JSON names) because `k8s-pb` offers no reflection.
//! Custom resources have no protobuf form (as on kube-apiserver).

mod decode;
mod encode;
pub mod schema;
mod time;

use k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use prost::Message as _;
use serde_json::Value;

use schema::Schema;

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The media type of a protobuf watch stream.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";
/// The prefix of every protobuf-encoded object (`protoEncodingPrefix`).
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// A body that cannot be converted, with the field path where it failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{}: ", path.join(".").replace(".[", "[")) })]
pub struct CodecError {
    path: Vec<String>,
    message: String,
}

impl CodecError {
    fn new(message: impl Into<String>) -> Self {
        Self { path: Vec::new(), message: message.into() }
    }

    /// Prepends a path segment (errors are built from the innermost field outwards).
    fn at(mut self, segment: &str) -> Self {
        self.path.insert(0, segment.to_string());
        self
    }
}

/// Whether a media type (Content-Type or an Accept clause) is Kubernetes protobuf.
pub fn is_protobuf(media_type: &str) -> bool {
    media_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Whether objects of this kind have a protobuf form.
pub fn supports(api_version: &str, kind: &str) -> bool {
    Schema::get().message_of(api_version, kind).is_some()
}

/// Decodes a protobuf request body into the JSON object (with apiVersion and kind).
pub fn decode(body: &[u8]) -> Result<Value, CodecError> {
    let Some(rest) = body.strip_prefix(MAGIC) else {
        return Err(CodecError::new(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
        ));
    };
    let unknown = Unknown::decode(rest).map_err(|e| CodecError::new(format!("malformed runtime.Unknown: {e}")))?;
    if unknown.content_encoding.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(CodecError::new("contentEncoding is not supported"));
    }
    let tm = unknown.type_meta.unwrap_or_default();
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    if kind.is_empty() {
        return Err(CodecError::new("Object 'Kind' is missing in the protobuf envelope"));
    }
    let s = Schema::get();
    let id = s
        .message_of(&api_version, &kind)
        .ok_or_else(|| CodecError::new(format!("no kind {kind:?} is registered for version {api_version:?}")))?;
    let mut obj = decode::message(s, id, unknown.raw.as_deref().unwrap_or_default())?
        .unwrap_or_else(|| Value::Object(Default::default()));
    if let Value::Object(map) = &mut obj {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

/// Encodes an object (its `apiVersion`/`kind` choose the message) as `k8s\0` + Unknown.
pub fn encode(obj: &Value) -> Result<Vec<u8>, CodecError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    Ok(envelope(api_version, kind, encode_item(api_version, kind, obj)?))
}

/// The message bytes of an object without the envelope (a list item).
pub fn encode_item(api_version: &str, kind: &str, obj: &Value) -> Result<Vec<u8>, CodecError> {
    let s = Schema::get();
    let id = s
        .message_of(api_version, kind)
        .ok_or_else(|| CodecError::new(format!("{api_version} {kind} has no protobuf form")))?;
    let mut raw = Vec::with_capacity(1024);
    encode::message(s, id, obj, &mut raw)?;
    Ok(raw)
}

/// Encodes a list (`PodList`...) with list metadata `metadata` and items already encoded by
/// [`encode_item`].
pub fn encode_list<B: AsRef<[u8]>>(
    api_version: &str,
    list_kind: &str,
    metadata: &Value,
    items: impl IntoIterator<Item = Result<B, CodecError>>,
) -> Result<Vec<u8>, CodecError> {
    let s = Schema::get();
    let id = s
        .message_of(api_version, list_kind)
        .ok_or_else(|| CodecError::new(format!("{api_version} {list_kind} has no protobuf form")))?;
    let m = &s.messages[id];
    let field = |name: &str| {
        m.by_json.get(name).map(|&i| &m.fields[i]).ok_or_else(|| CodecError::new(format!("{} has no {name}", m.name)))
    };
    let (meta, items_field) = (field("metadata")?, field("items")?);
    let schema::Scalar::Message(meta_id) = meta.scalar else {
        return Err(CodecError::new(format!("{} is not a list message", m.name)));
    };
    let mut raw = Vec::with_capacity(64 * 1024);
    encode::nested(meta.tag, &mut raw, |buf| encode::message(s, meta_id, metadata, buf))?;
    for (i, item) in items.into_iter().enumerate() {
        let item = item.map_err(|e| e.at(&format!("items[{i}]")))?;
        let item = item.as_ref();
        prost::encoding::encode_key(items_field.tag, prost::encoding::WireType::LengthDelimited, &mut raw);
        prost::encoding::encode_varint(item.len() as u64, &mut raw);
        raw.extend_from_slice(item);
    }
    Ok(envelope(api_version, list_kind, raw))
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.to_string()), kind: Some(kind.to_string()) }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + unknown.encoded_len());
    out.extend_from_slice(MAGIC);
    unknown.encode_raw(&mut out);
    out
}

/// One frame of a protobuf watch stream: length, then `WatchEvent{type, object.raw}`.
pub fn watch_frame(event_type: &str, obj: &Value) -> Result<Vec<u8>, CodecError> {
    let event =
        WatchEvent { r#type: Some(event_type.to_string()), object: Some(RawExtension { raw: Some(encode(obj)?) }) };
    let len = u32::try_from(event.encoded_len()).map_err(|_| CodecError::new("watch event over 4 GiB"))?;
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    event.encode_raw(&mut out);
    Ok(out)
}

/// The JSON of embedded raw bytes (`RawExtension`, `FieldsV1`): JSON text, or a nested
/// protobuf envelope.
fn raw_object(bytes: &[u8]) -> Result<Value, CodecError> {
    if bytes.starts_with(MAGIC) {
        return decode(bytes);
    }
    serde_json::from_slice(bytes).map_err(|e| CodecError::new(format!("embedded object is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Our encoding is read back by k8s-pb's prost types (the independent decoder), and the
    /// bytes prost writes decode to the same JSON.
    #[test]
    fn objects_round_trip_through_the_k8s_pb_types() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                "creationTimestamp": "2026-01-02T03:04:05Z", "generation": 3,
                "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
                    "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "500m"}}}]}}},
            "status": {}
        });
        let bytes = encode(&deployment).unwrap();
        assert_eq!(&bytes[..4], MAGIC);
        let unknown = Unknown::decode(&bytes[4..]).unwrap();
        assert_eq!(unknown.type_meta.as_ref().and_then(|t| t.kind.as_deref()), Some("Deployment"));
        let typed = k8s_pb::api::apps::v1::Deployment::decode(unknown.raw.as_deref().unwrap()).unwrap();
        let spec = typed.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(0));
        let strategy = spec.strategy.as_ref().unwrap().rolling_update.as_ref().unwrap();
        assert_eq!(strategy.max_surge.as_ref().unwrap().str_val.as_deref(), Some("25%"));
        assert_eq!(strategy.max_unavailable.as_ref().unwrap().int_val, Some(1));
        let container = &spec.template.as_ref().unwrap().spec.as_ref().unwrap().containers[0];
        assert_eq!(container.ports[0].container_port, Some(80));
        let cpu = &container.resources.as_ref().unwrap().limits["cpu"];
        assert_eq!(cpu.string.as_deref(), Some("500m"));
        let meta = typed.metadata.as_ref().unwrap();
        assert_eq!(meta.creation_timestamp.as_ref().unwrap().seconds, Some(1_767_323_045));
        let fields = meta.managed_fields[0].fields_v1.as_ref().unwrap();
        assert_eq!(fields.raw.as_deref(), Some(&br#"{"f:spec":{}}"#[..]));

        // Back from prost's bytes: the same JSON (the zero `replicas` kept, `status: {}` kept).
        let again = decode(&envelope("apps/v1", "Deployment", typed.encode_to_vec())).unwrap();
        assert_eq!(again, deployment);
    }

    #[test]
    fn go_zero_values_are_unset_fields_except_meaningful_pointers() {
        let pod = k8s_pb::api::core::v1::Pod {
            spec: Some(k8s_pb::api::core::v1::PodSpec {
                containers: vec![k8s_pb::api::core::v1::Container {
                    name: Some("app".into()),
                    image: Some("busybox".into()),
                    // Go writes non-pointer scalars even when zero.
                    stdin: Some(false),
                    termination_message_path: Some(String::new()),
                    ..Default::default()
                }],
                termination_grace_period_seconds: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = decode(&envelope("v1", "Pod", pod.encode_to_vec())).unwrap();
        assert_eq!(json["spec"]["containers"][0], json!({"name": "app", "image": "busybox"}));
        assert_eq!(json["spec"]["terminationGracePeriodSeconds"], 0);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let err =
            encode(&json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": 5}]}})).unwrap_err();
        assert_eq!(err.to_string(), "spec.containers[0].name: expected a string, found a number");
        assert!(decode(b"{\"kind\":\"Pod\"}").is_err());
        let truncated = &encode(&json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}})).unwrap();
        assert!(decode(&truncated[..truncated.len() - 6]).is_err());
    }

    #[test]
    fn watch_frames_are_length_prefixed_events() {
        let frame = watch_frame(
            "ADDED",
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x"}}),
        )
        .unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let event = WatchEvent::decode(&frame[4..]).unwrap();
        assert_eq!(event.r#type.as_deref(), Some("ADDED"));
        let obj = decode(event.object.unwrap().raw.as_deref().unwrap()).unwrap();
        assert_eq!(obj["metadata"]["name"], "x");
    }
}
