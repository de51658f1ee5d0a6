//! Discovery: `/version`, `/api`, `/apis`, per-group-version resource lists, and the
//! aggregated discovery documents (`apidiscovery.k8s.io/v2`) kubectl asks for.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ServerState;
use super::handlers::json_response;
use crate::api::resources::ResourceType;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub async fn version(State(state): State<Arc<ServerState>>) -> Response {
    let (major, minor) = &state.config.version;
    let body = json!({
        "major": major, "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-hadrill"), "gitCommit": "hadrill", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "none (hadrill embedded cluster, Rust)",
        "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    });
    json_response(StatusCode::OK, &body, &[])
}

/// `/healthz`, `/livez`, `/readyz`.
pub async fn ok() -> &'static str {
    "ok"
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2"))
}

fn aggregated_response(body: &Value) -> Response {
    let mut resp = json_response(StatusCode::OK, body, &[]);
    resp.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(AGGREGATED));
    resp
}

/// `/api`.
pub async fn core_versions(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated_response(&aggregated(&state, true));
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
        &[],
    )
}

/// `/apis`.
pub async fn groups(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated_response(&aggregated(&state, false));
    }
    let groups: Vec<Value> = state
        .api
        .registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_object(&g, &versions))
        .collect();
    json_response(StatusCode::OK, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}), &[])
}

fn group_object(group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null)})
}

/// `/api/v1`, `/apis/{group}` and `/apis/{group}/{version}`; `None` for other paths.
pub fn group_discovery(state: &ServerState, path: &str, _headers: &HeaderMap) -> Option<Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", Some(*v)),
        ["apis", g] => (*g, None),
        ["apis", g, v] => (*g, Some(*v)),
        _ => return None,
    };
    let groups = state.api.registry.groups();
    let Some(versions) = groups.get(group) else {
        return Some(crate::api::status::ApiError::no_route(path).into_response());
    };
    let Some(version) = version else {
        return Some(json_response(StatusCode::OK, &group_object(group, versions), &[]));
    };
    if !versions.iter().any(|v| v == version) {
        return Some(crate::api::status::ApiError::no_route(path).into_response());
    }
    let types: Vec<Arc<ResourceType>> =
        state.api.registry.all().into_iter().filter(|t| t.group == group && t.version == version).collect();
    let mut resources = Vec::new();
    for t in &types {
        resources.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": t.verbs(), "shortNames": t.short_names, "categories": t.categories,
        }));
        for s in subresources(t) {
            let mut r = json!({"name": format!("{}/{}", t.plural, s.name), "singularName": "", "namespaced": t.namespaced, "kind": s.kind, "verbs": s.verbs});
            if let Some((g, v)) = s.group_version {
                r["group"] = json!(g);
                r["version"] = json!(v);
            }
            resources.push(r);
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        &[],
    ))
}

/// A subresource: name, response kind, response group/version (None = the parent's), verbs.
struct Sub {
    name: &'static str,
    kind: String,
    group_version: Option<(&'static str, &'static str)>,
    verbs: Vec<&'static str>,
}

fn subresources(t: &ResourceType) -> Vec<Sub> {
    let sub = |name, kind: &str, group_version, verbs| Sub { name, kind: kind.to_string(), group_version, verbs };
    let mut subs = Vec::new();
    if t.status {
        subs.push(sub("status", &t.kind, None, vec!["get", "patch", "update"]));
    }
    if t.scale.is_some() {
        subs.push(sub("scale", "Scale", Some(("autoscaling", "v1")), vec!["get", "patch", "update"]));
    }
    for s in &t.extra_subresources {
        match *s {
            "log" => subs.push(sub("log", "Pod", None, vec!["get"])),
            "binding" => subs.push(sub("binding", "Binding", None, vec!["create"])),
            "eviction" => subs.push(sub("eviction", "Eviction", Some(("policy", "v1")), vec!["create"])),
            "finalize" => subs.push(sub("finalize", "Namespace", None, vec!["update"])),
            "proxy" => subs.push(sub("proxy", &format!("{}ProxyOptions", t.kind), None, proxy_verbs())),
            "exec" => subs.push(sub("exec", "PodExecOptions", None, vec!["create", "get"])),
            "attach" => subs.push(sub("attach", "PodAttachOptions", None, vec!["create", "get"])),
            "portforward" => subs.push(sub("portforward", "PodPortForwardOptions", None, vec!["create", "get"])),
            _ => {}
        }
    }
    subs
}

fn proxy_verbs() -> Vec<&'static str> {
    vec!["create", "delete", "get", "patch", "update"]
}

/// The aggregated discovery document for the core group (`core = true`) or all named groups.
fn aggregated(state: &ServerState, core: bool) -> Value {
    let all = state.api.registry.all();
    let mut items = Vec::new();
    for (group, versions) in state.api.registry.groups() {
        if group.is_empty() != core {
            continue;
        }
        let versions: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = all
                    .iter()
                    .filter(|t| t.group == group && &t.version == v)
                    .map(|t| {
                        let subs: Vec<Value> = subresources(t)
                            .into_iter()
                            .map(|s| {
                                let (g, ver) = s.group_version.map(|(g, v)| (g.to_string(), v.to_string())).unwrap_or_else(|| (t.group.clone(), t.version.clone()));
                                json!({"subresource": s.name, "responseKind": {"group": g, "version": ver, "kind": s.kind}, "verbs": s.verbs})
                            })
                            .collect();
                        json!({
                            "resource": t.plural,
                            "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
                            "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": t.singular,
                            "verbs": t.verbs(),
                            "shortNames": t.short_names,
                            "categories": t.categories,
                            "subresources": subs,
                        })
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
