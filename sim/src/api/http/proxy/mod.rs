//! The `proxy` subresource of pods and Services, as `kubectl get --raw` uses it:
//! `/api/v1/namespaces/{ns}/pods/[{scheme}:]{name}[:{port}]/proxy/{path}` and the same under
//! `services/`. The request (method, path, query, headers, body) goes to the pod's address or
//! to a ready endpoint of the Service; the answer comes back unchanged.
//!
//! Authorization is RBAC on `pods/proxy` (`services/proxy`) with the verb of the HTTP method
//! (GET and HEAD `get`, POST `create`, PUT `update`, PATCH `patch`, DELETE `delete`), and the
//! URL's `name:port` segment as the object name, as kube-apiserver's request info has it.
//!
//! Unlike kube-apiserver, it proxies plain HTTP only (pods of the embedded cluster serve no
//! TLS) and does not rewrite links in HTML answers.

mod forward;
mod target;

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use super::ServerState;
use super::request::Target;
use crate::api::auth::{Attributes, User};
use crate::api::status::{ApiError, ApiResult};
use target::Id;

/// Whether `t` addresses a proxy subresource this module serves.
pub fn is_proxy(t: &Target) -> bool {
    t.sub.as_deref() == Some("proxy") && t.group.is_empty() && matches!(t.plural.as_str(), "pods" | "services")
}

/// Serves a proxy request (`is_proxy(t)` holds).
pub async fn serve(
    state: &Arc<ServerState>,
    user: &User,
    method: &Method,
    t: &Target,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let api = &state.api;
    let rt = api.resource(&t.group, &t.version, &t.plural)?;
    let (Some(ns), Some(segment)) = (t.namespace.as_deref(), t.name.as_deref()) else {
        return Err(ApiError::no_route(uri.path()));
    };
    authorize(state, user, method, t, ns, segment)?;
    let kind = if t.plural == "pods" { "pod" } else { "service" };
    let id = Id::parse(segment).ok_or_else(|| ApiError::bad_request(format!("invalid {kind} request {segment:?}")))?;
    if id.scheme == "https" {
        return Err(ApiError::bad_request(format!(
            "the embedded cluster proxies plain HTTP only ({kind} request {segment:?})"
        )));
    }
    let obj = api.get(&rt, ns, &id.name)?;
    let addr = if t.plural == "pods" {
        target::pod_address(&obj, &id.port)?
    } else {
        let port = target::service_port(&obj, &id.port)?;
        target::service_endpoint(api, ns, &obj, &port)?
    };
    let path = path_after(uri.path(), &t.plural, segment)
        .ok_or_else(|| ApiError::no_route(&format!("{}: no proxy path", uri.path())))?;
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    forward::forward(addr, method, &path_and_query, headers, body).await
}

fn authorize(state: &ServerState, user: &User, method: &Method, t: &Target, ns: &str, segment: &str) -> ApiResult<()> {
    let verb = match *method {
        Method::GET | Method::HEAD => "get".to_string(),
        Method::POST => "create".to_string(),
        Method::PUT => "update".to_string(),
        Method::PATCH => "patch".to_string(),
        Method::DELETE => "delete".to_string(),
        ref other => other.as_str().to_ascii_lowercase(),
    };
    let attrs = Attributes {
        verb: &verb,
        group: "",
        resource: &t.plural,
        subresource: Some("proxy"),
        namespace: ns,
        name: Some(segment),
    };
    if crate::api::auth::authorize(&state.api, user, &attrs) {
        Ok(())
    } else {
        Err(ApiError::forbidden(attrs.forbidden_message(user)))
    }
}

/// The backend path: what follows `/{plural}/{segment}/proxy` in the raw request path, "/" when
/// nothing does (a trailing slash is kept).
fn path_after(raw: &str, plural: &str, segment: &str) -> Option<String> {
    let marker = format!("/{plural}/{segment}/proxy");
    let at = raw.find(&marker)?;
    let rest = &raw[at + marker.len()..];
    match rest {
        "" => Some("/".into()),
        r if r.starts_with('/') => Some(r.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_paths_keep_what_follows_proxy() {
        let p = |raw: &str| path_after(raw, "pods", "web:8081");
        assert_eq!(p("/api/v1/namespaces/d/pods/web:8081/proxy").as_deref(), Some("/"));
        assert_eq!(p("/api/v1/namespaces/d/pods/web:8081/proxy/").as_deref(), Some("/"));
        assert_eq!(p("/api/v1/namespaces/d/pods/web:8081/proxy/results/a%20b/").as_deref(), Some("/results/a%20b/"));
        assert_eq!(p("/api/v1/namespaces/d/pods/web:8081/proxyx"), None);
    }
}
