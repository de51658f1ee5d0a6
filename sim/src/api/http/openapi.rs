//! OpenAPI documents generated from the registry, as kube-openapi serves them
//! (`pkg/handler` for v2, `pkg/handler3` for v3): paths and operations with their
//! `x-kubernetes-group-version-kind`, `x-kubernetes-action` and query parameters (kubectl
//! learns from `fieldValidation` that the server validates fields), the request content types
//! (kubectl's client-side apply uses strategic merge patch only where the PATCH operation lists
//! it), and the schemas of the kinds ([`crate::api::definitions`]; custom resources from their
//! `openAPIV3Schema`).
//!
//! Not served: the gnostic protobuf form of `/openapi/v2`
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) is answered 406.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::ServerState;
use super::handlers::json_response;
use crate::api::definitions::{self, Flavour};
use crate::api::resources::{ResourceType, Validation};
use crate::api::status::ApiError;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// FNV-1a of a document: its ETag and the `hash` of the v3 index.
fn hash_of(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// The definition name of a served type.
fn schema_name(t: &ResourceType) -> Option<String> {
    if t.crd.is_some() {
        // kube-apiserver names CR schemas by reversed group: `org.chaos-mesh.v1alpha1.PodChaos`.
        let reversed: Vec<&str> = t.group.split('.').rev().collect();
        return Some(format!("{}.{}.{}", reversed.join("."), t.version, t.kind));
    }
    definitions::name_of(&t.group, &t.version, &t.kind).map(str::to_string)
}

/// The schemas the operations of `types` refer to, with everything they reference.
fn schemas(types: &[Arc<ResourceType>], flavour: Flavour) -> Map<String, Value> {
    let builtin: Vec<String> = types.iter().filter(|t| t.crd.is_none()).filter_map(|t| schema_name(t)).collect();
    let mut roots: Vec<&str> = builtin.iter().map(String::as_str).collect();
    let has_crs = types.iter().any(|t| t.crd.is_some());
    if has_crs {
        roots.push(OBJECT_META);
    }
    let mut out = definitions::closure(&roots, flavour);
    for t in types.iter().filter(|t| t.crd.is_some()) {
        let (Some(name), Validation::Schema(schema)) = (schema_name(t), &t.validation) else { continue };
        let mut s = (**schema).clone();
        if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("metadata".into(), json!({"$ref": format!("{}{OBJECT_META}", flavour.ref_prefix())}));
        }
        s["x-kubernetes-group-version-kind"] = json!([{"group": t.group, "version": t.version, "kind": t.kind}]);
        out.insert(name, s);
    }
    out
}

fn patch_types(t: &ResourceType) -> Vec<&'static str> {
    let mut types = vec!["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"];
    // Custom resources have no strategic merge patch (apiextensions-apiserver refuses it).
    if t.crd.is_none() {
        types.push("application/strategic-merge-patch+json");
    }
    types
}

const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "pretty"];
const PATCH: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"];
const READ: &[&str] = &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch", "pretty"];
const DELETE: &[&str] = &["dryRun", "gracePeriodSeconds", "propagationPolicy"];

/// One operation: (action, query parameters, request content types, schema of body and reply).
struct Op<'a> {
    action: &'static str,
    query: &'a [&'a str],
    consumes: Vec<&'static str>,
    body: bool,
}

/// The operations of `t` by path and HTTP method.
fn operations(t: &ResourceType) -> Vec<(String, &'static str, Op<'static>)> {
    let prefix = format!("/{}", gv_path(&t.group, &t.version));
    let collection = if t.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
    } else {
        format!("{prefix}/{}", t.plural)
    };
    let item = format!("{collection}/{{name}}");
    let json = vec!["application/json", "application/yaml"];
    let op = |action, query, consumes: Vec<&'static str>, body| Op { action, query, consumes, body };
    vec![
        (collection.clone(), "get", op("list", READ, vec![], false)),
        (collection.clone(), "post", op("post", WRITE, json.clone(), true)),
        (collection, "delete", op("deletecollection", READ, vec![], false)),
        (item.clone(), "get", op("get", &["pretty"], vec![], false)),
        (item.clone(), "put", op("put", WRITE, json, true)),
        (item.clone(), "patch", op("patch", PATCH, patch_types(t), true)),
        (item, "delete", op("delete", DELETE, vec![], false)),
    ]
}

fn paths(types: &[Arc<ResourceType>], flavour: Flavour) -> Map<String, Value> {
    let mut paths = Map::new();
    for t in types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let schema = schema_name(t).map(|n| json!({"$ref": format!("{}{n}", flavour.ref_prefix())}));
        for (path, method, op) in operations(t) {
            let mut o = json!({
                "operationId": format!("{}{}", op.action, t.kind),
                "x-kubernetes-action": op.action,
                "x-kubernetes-group-version-kind": gvk,
            });
            let mut params: Vec<Value> = op
                .query
                .iter()
                .map(|n| match flavour {
                    Flavour::V2 => json!({"name": n, "in": "query", "type": "string", "uniqueItems": true}),
                    Flavour::V3 => json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
                })
                .collect();
            let reply = schema.clone().unwrap_or_else(|| json!({"type": "object"}));
            match flavour {
                Flavour::V2 => {
                    if op.body {
                        params.push(json!({"name": "body", "in": "body", "required": true, "schema": reply}));
                        o["consumes"] = json!(op.consumes);
                    }
                    o["produces"] =
                        json!(["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]);
                    o["responses"] = json!({"200": {"description": "OK", "schema": reply}});
                }
                Flavour::V3 => {
                    if op.body {
                        let content: Map<String, Value> =
                            op.consumes.iter().map(|c| (c.to_string(), json!({"schema": reply}))).collect();
                        o["requestBody"] = json!({"content": content, "required": true});
                    }
                    o["responses"] =
                        json!({"200": {"description": "OK", "content": {"application/json": {"schema": reply}}}});
                }
            }
            o["parameters"] = Value::Array(params);
            let entry = paths.entry(path).or_insert_with(|| json!({}));
            entry[method] = o;
        }
    }
    paths
}

/// A JSON document with its ETag; 304 when the client has it.
fn document_response(doc: &Value, headers: &HeaderMap, immutable: bool) -> Response {
    let text = doc.to_string();
    let etag = format!("\"{}\"", hash_of(&text));
    if headers.get(axum::http::header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut resp = json_response(StatusCode::OK, doc, &[]);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(axum::http::header::ETAG, v);
    }
    if immutable {
        resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
    }
    resp
}

/// The v3 document of one group-version.
fn v3_document(types: &[Arc<ResourceType>]) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths(types, Flavour::V3),
        "components": {"schemas": schemas(types, Flavour::V3)},
    })
}

fn group_versions(state: &ServerState) -> Vec<(String, String, Vec<Arc<ResourceType>>)> {
    let all = state.api.registry.all();
    let mut out = Vec::new();
    for (group, versions) in state.api.registry.groups() {
        for v in versions {
            let types: Vec<_> = all.iter().filter(|t| t.group == group && t.version == v).cloned().collect();
            out.push((group.clone(), v, types));
        }
    }
    out
}

/// `/openapi/v3`: the index of group-version documents, each URL carrying its hash.
pub async fn index(State(state): State<Arc<ServerState>>) -> Response {
    let mut paths = Map::new();
    for (group, version, types) in group_versions(&state) {
        let p = gv_path(&group, &version);
        let hash = hash_of(&v3_document(&types).to_string());
        paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}));
    }
    json_response(StatusCode::OK, &json!({"paths": paths}), &[])
}

/// `/openapi/v3/api/{version}` and `/openapi/v3/apis/{group}/{version}`; a stale `hash`
/// redirects (301) to the current one.
pub async fn document(
    State(state): State<Arc<ServerState>>,
    Path(rest): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return ApiError::no_route(&format!("/openapi/v3/{rest}")).into_response(),
    };
    let types: Vec<_> =
        state.api.registry.all().into_iter().filter(|t| t.group == group && t.version == version).collect();
    if types.is_empty() {
        return ApiError::no_route(&format!("/openapi/v3/{rest}")).into_response();
    }
    let doc = v3_document(&types);
    let hash = hash_of(&doc.to_string());
    match query.get("hash") {
        Some(h) if *h != hash => {
            let location = format!("/openapi/v3/{}?hash={hash}", gv_path(group, version));
            let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(axum::http::header::LOCATION, v);
            }
            resp
        }
        Some(_) => document_response(&doc, &headers, true),
        None => document_response(&doc, &headers, false),
    }
}

/// `/openapi/v2`: the Swagger 2.0 document of everything served.
pub async fn v2(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*");
    let json_ok = accept.split(',').any(|c| {
        let media = c.split(';').next().unwrap_or_default().trim();
        matches!(media, "application/json" | "*/*" | "application/*" | "")
    });
    if !json_ok {
        return ApiError::not_acceptable("application/json").into_response();
    }
    let types: Vec<Arc<ResourceType>> = state.api.registry.all();
    let doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths(&types, Flavour::V2),
        "definitions": schemas(&types, Flavour::V2),
    });
    document_response(&doc, &headers, false)
}
