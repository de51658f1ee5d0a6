//! API errors rendered as `kind: Status` objects, with the codes and reasons
//! kube-apiserver uses, so clients (kube-rs, kubectl) react to them as they would on a
//! real cluster.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One field-level cause of an `Invalid` (422) error.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Kubernetes cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: String,
    /// Field path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// Human-readable message.
    pub message: String,
}

/// An error answered by the API server.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Status reason, e.g. `NotFound`, `AlreadyExists`, `Conflict`.
    pub reason: &'static str,
    /// Message, worded as kube-apiserver words it.
    pub message: String,
    /// Kind/name/group the error is about, when known.
    pub details: Option<Box<Details>>,
    /// Field causes (for `Invalid`).
    pub causes: Vec<Cause>,
}

/// `details` of a Status.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// Object name.
    pub name: String,
    /// API group (empty for core).
    pub group: String,
    /// Plural resource name (Kubernetes puts the resource in `kind` here).
    pub kind: String,
    /// `retryAfterSeconds` (0: not sent), also answered as a `Retry-After` header.
    pub retry_after_seconds: u32,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None, causes: Vec::new() }
    }

    fn with_details(mut self, group: &str, resource: &str, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_string(),
            group: group.to_string(),
            kind: resource.to_string(),
            ..Default::default()
        }));
        self
    }

    /// 404 for a named object.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(group, resource)))
            .with_details(group, resource, name)
    }

    /// 404 for a path that is not served at all.
    pub fn no_route(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(group, resource)))
            .with_details(group, resource, name)
    }

    /// 409 Conflict for a stale resourceVersion / failed precondition.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 409 Conflict for a stale resourceVersion, with kube-apiserver's exact wording.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict from server-side apply field ownership.
    pub fn apply_conflict(group: &str, resource: &str, name: &str, message: String) -> Self {
        Self::new(409, "Conflict", message).with_details(group, resource, name)
    }

    /// 422 Invalid naming the offending fields.
    pub fn invalid(kind: &str, name: &str, group: &str, causes: Vec<Cause>) -> Self {
        let list = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>();
        let summary = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let display_name = if name.is_empty() { String::new() } else { format!(" \"{name}\"") };
        let mut e = Self::new(422, "Invalid", format!("{kind}{display_name} is invalid: {summary}"))
            .with_details(group, kind, name);
        e.causes = causes;
        e
    }

    /// 422 Invalid with a single field.
    pub fn invalid_field(
        kind: &str,
        name: &str,
        group: &str,
        reason: &str,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::invalid(
            kind,
            name,
            group,
            vec![Cause { reason: reason.to_string(), field: field.to_string(), message: message.into() }],
        )
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 403 Forbidden about one object (`apierrors.NewForbidden`): `gr "name" is forbidden: why`.
    pub fn forbidden_object(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let display = if name.is_empty() { String::new() } else { format!(" \"{name}\"") };
        Self::new(403, "Forbidden", format!("{}{display} is forbidden: {why}", qualified(group, resource)))
            .with_details(group, resource, name)
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 410 Gone (expired resourceVersion / continue token).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    /// 429 TooManyRequests (`errors.NewTooManyRequests`): `retry_after_seconds` 0 sends none.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u32, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.details = Some(Box::new(Details { retry_after_seconds, ..Default::default() }));
        e.causes = causes;
        e
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 406 NotAcceptable (no acceptable response media type).
    pub fn not_acceptable(offered: &str) -> Self {
        Self::new(406, "NotAcceptable", format!("only the following media types are accepted: {offered}"))
    }

    /// The `Status` body in kube-apiserver's field order (Go struct order: kind, apiVersion,
    /// metadata, status, message, reason, details, code; am `apis/meta/v1/types.go`).
    pub fn status_body(&self) -> StatusBody {
        let details = (self.details.is_some() || !self.causes.is_empty()).then(|| {
            let d = self.details.as_deref().cloned().unwrap_or_default();
            StatusDetails {
                name: d.name,
                group: d.group,
                kind: d.kind,
                uid: String::new(),
                retry_after_seconds: d.retry_after_seconds,
                causes: self
                    .causes
                    .iter()
                    .map(|c| StatusCause {
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        field: c.field.clone(),
                    })
                    .collect(),
            }
        });
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Failure",
            message: self.message.clone(),
            reason: self.reason.to_string(),
            details,
            code: self.code,
        }
    }

    /// The `Status` object as JSON.
    pub fn to_status(&self) -> Value {
        serde_json::to_value(self.status_body()).unwrap_or_default()
    }
}

/// `metav1.Status` with Go's field order and `omitempty` rules.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusBody {
    /// Always `Status`.
    pub kind: &'static str,
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Always `{}`.
    pub metadata: EmptyMeta,
    /// `Success` or `Failure`.
    pub status: &'static str,
    /// Human-readable description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What the status is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// HTTP code (0 = omitted, as on a delete's Success).
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// The always-present empty `metadata` of a Status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmptyMeta {}

/// `metav1.StatusDetails` (Go order: name, group, kind, uid, causes, retryAfterSeconds).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatusDetails {
    /// Object name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Resource (plural) or kind.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Object UID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Field causes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// Seconds a client should wait before retrying (0: not sent).
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "no_retry")]
    pub retry_after_seconds: u32,
}

fn no_retry(n: &u32) -> bool {
    *n == 0
}

/// `metav1.StatusCause` (Go order: reason, message, field).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusCause {
    /// Cause type.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Field path.
    pub field: String,
}

impl StatusBody {
    fn success_with(details: Option<StatusDetails>, code: u16) -> Self {
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Success",
            message: String::new(),
            reason: String::new(),
            details,
            code,
        }
    }

    /// The Success Status of a delete whose registry does not return the object (apiserver
    /// `registry/generic/registry/store.go` `finalizeDelete`): no message, reason or code.
    pub fn deleted(name: &str, group: &str, resource: &str, uid: &str) -> Self {
        let details = StatusDetails {
            name: name.to_string(),
            group: group.to_string(),
            kind: resource.to_string(),
            uid: uid.to_string(),
            causes: Vec::new(),
            retry_after_seconds: 0,
        };
        Self::success_with(Some(details), 0)
    }

    /// A Success Status with a code (`binding`, `eviction`: 201).
    pub fn success(code: u16) -> Self {
        Self::success_with(None, code)
    }

    /// JSON as `json.Encoder.Encode` writes it: Go field order and a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `deployments.apps` style resource naming used in kube-apiserver messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.status_body().to_json();
        let mut resp = (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(after) = self.details.as_ref().map(|d| d.retry_after_seconds).filter(|s| *s > 0) {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, after.into());
        }
        resp
    }
}

/// Result type of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
