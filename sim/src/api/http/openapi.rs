//! OpenAPI v3 documents, generated from the registry. They describe paths and operations
//! (with their `x-kubernetes-group-version-kind` and query parameters), which is what kubectl
//! reads to learn that the server validates fields itself (`fieldValidation`); schemas are not
//! published (validation happens server-side).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::ServerState;
use super::handlers::json_response;
use crate::api::resources::ResourceType;
use crate::api::status::ApiError;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn hash_of(types: &[Arc<ResourceType>]) -> String {
    // FNV-1a over the served names: changes when a CRD adds or removes a resource.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in types {
        for b in t.plural.bytes().chain(t.kind.bytes()).chain(t.version.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: the index of group-version documents.
pub async fn index(State(state): State<Arc<ServerState>>) -> Response {
    let mut paths = Map::new();
    let all = state.api.registry.all();
    for (group, versions) in state.api.registry.groups() {
        for v in versions {
            let types: Vec<_> = all.iter().filter(|t| t.group == group && t.version == v).cloned().collect();
            let p = gv_path(&group, &v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash_of(&types))}));
        }
    }
    json_response(StatusCode::OK, &json!({"paths": paths}), &[])
}

/// `/openapi/v3/api/{version}` and `/openapi/v3/apis/{group}/{version}`.
pub async fn document(State(state): State<Arc<ServerState>>, Path(rest): Path<String>) -> Response {
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
    let mut paths = Map::new();
    for t in &types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let prefix = format!("/{}", gv_path(&t.group, &t.version));
        let collection = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        let params = |names: &[&str]| -> Value {
            Value::Array(
                names
                    .iter()
                    .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
                    .collect(),
            )
        };
        let op = |verb: &str, query: &[&str]| {
            json!({"operationId": format!("{verb}{}", t.kind), "x-kubernetes-action": verb,
                   "x-kubernetes-group-version-kind": gvk, "parameters": params(query),
                   "responses": {"200": {"description": "OK"}}})
        };
        let write = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
        let patch = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"];
        let read = ["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch", "pretty"];
        paths.insert(
            collection.clone(),
            json!({"get": op("list", &read), "post": op("post", &write), "delete": op("deletecollection", &read)}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"get": op("get", &["pretty"]), "put": op("put", &write), "patch": op("patch", &patch), "delete": op("delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"])}),
        );
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (hadrill embedded cluster)", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": {}},
    });
    json_response(StatusCode::OK, &doc, &[])
}
