//! Authentication middleware. A presented bearer token must be valid (401 otherwise). A
//! request without credentials is the admin when `ServerConfig::anonymous_is_admin` is set
//! (the default: the embedded cluster serves plain HTTP, over which kubectl/client-go never
//! sends bearer tokens), else it gets 401 except on the health and version endpoints. The
//! authenticated [`User`] is put into the request's extensions.

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
    req.extensions_mut().insert::<User>(user);
    next.run(req).await
}
