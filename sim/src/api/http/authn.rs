//! Authentication middleware. A presented bearer token must be valid (401 otherwise). A
//! request without credentials is the admin when `ServerConfig::anonymous_is_admin` is set
//! (the default: the embedded cluster serves plain HTTP, over which kubectl/client-go never
//! sends bearer tokens), else it gets 401 except on the health and version endpoints. The
//! authenticated [`User`] — or the one it impersonates (`kubectl --as`) — is put into the
//! request's extensions.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ServerState;
use crate::api::auth::User;
use crate::api::status::ApiError;

const PUBLIC: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// Authenticates the request or answers 401.
pub async fn authenticate(State(state): State<Arc<ServerState>>, mut req: Request, next: Next) -> Response {
    if PUBLIC.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let user = match token {
        Some(t) => state.api.tokens.authenticate(t),
        None if state.config.anonymous_is_admin => Some(User::admin()),
        None => None,
    };
    let Some(user) = user else {
        return ApiError::unauthorized().into_response();
    };
    // A ServiceAccount token stops working when its ServiceAccount is deleted.
    if let Some((ns, name)) = user.service_account_ref() {
        let gr = crate::api::resources::GroupResource { group: String::new(), resource: "serviceaccounts".into() };
        if state.api.store.get(&gr, ns, name).is_none() {
            return ApiError::unauthorized().into_response();
        }
    }
    let user = match impersonate(req.headers(), user) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert::<User>(user);
    next.run(req).await
}

/// `Impersonate-User` / `Impersonate-Group` (`kubectl --as`, `--as-group`): the request acts as
/// that user. kube-apiserver authorizes the `impersonate` verb on users, groups and
/// serviceaccounts; the embedded cluster lets `system:masters` impersonate and refuses everyone
/// else, with kube-apiserver's wording. A ServiceAccount user gets its groups as a token would
/// (as `endpoints/filters/impersonation.go` does).
fn impersonate(headers: &axum::http::HeaderMap, user: User) -> Result<User, ApiError> {
    let Some(name) = headers.get("impersonate-user").and_then(|v| v.to_str().ok()) else {
        return Ok(user);
    };
    let sa = name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':'));
    if !user.is_master() {
        let (resource, target, scope) = match sa {
            Some((ns, n)) => ("serviceaccounts", n, format!("in the namespace \"{ns}\"")),
            None => ("users", name, "at the cluster scope".to_string()),
        };
        return Err(ApiError::forbidden(format!(
            "{resource} \"{target}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"\" {scope}",
            user.name
        )));
    }
    let mut impersonated = match sa {
        Some((ns, n)) => User::service_account(ns, n),
        None => User { name: name.to_string(), groups: vec!["system:authenticated".into()] },
    };
    for g in headers.get_all("impersonate-group").iter().filter_map(|v| v.to_str().ok()) {
        if !impersonated.groups.iter().any(|have| have == g) {
            impersonated.groups.push(g.to_string());
        }
    }
    Ok(impersonated)
}
