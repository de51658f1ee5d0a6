//! Response content negotiation: JSON or Kubernetes protobuf, chosen from `Accept` as
//! kube-apiserver does (apiserver `handlers/negotiation/negotiate.go`): the client's
//! clauses in order of preference, the first one the resource can be served in wins; none →
//! 406. Built-in kinds speak both, custom resources and Tables only JSON.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::protobuf;
use crate::api::resources::ResourceType;
use crate::api::status::{ApiError, ApiResult, StatusBody};

/// Whether objects of this resource have a protobuf form: built-in kinds do, custom
/// resources do not.
pub fn serves_protobuf(rt: &ResourceType) -> bool {
    rt.crd.is_none() && protobuf::supports(&rt.api_version(), &rt.kind)
}

/// The encoding of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
}

/// Picks the response format from `Accept`; `protobuf` tells whether the resource has a
/// protobuf form.
pub fn response_format(headers: &HeaderMap, protobuf: bool) -> ApiResult<Format> {
    let Some(accept) = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::Json);
    };
    let mut clauses: Vec<(f32, &str)> = accept
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let q = c
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, c)
        })
        .collect();
    if clauses.is_empty() {
        return Ok(Format::Json);
    }
    // Stable: equal weights keep the client's order.
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (q, clause) in clauses {
        if q <= 0.0 {
            continue;
        }
        let media = clause.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "application/*" | "*/*" | "application/yaml" => return Ok(Format::Json),
            _ if protobuf::is_protobuf(&media) && protobuf => return Ok(Format::Protobuf),
            _ => {}
        }
    }
    let offered = if protobuf {
        "application/json, application/yaml, application/vnd.kubernetes.protobuf"
    } else {
        "application/json, application/yaml"
    };
    Err(ApiError::not_acceptable(offered))
}

/// An object (or list) response in `format`, with `Warning` headers.
pub fn respond(format: Format, code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = match format {
        Format::Json => super::handlers::json_response(code, body, &[]),
        Format::Protobuf => match protobuf::encode(body) {
            Ok(bytes) => (code, [(axum::http::header::CONTENT_TYPE, protobuf::MEDIA_TYPE)], bytes).into_response(),
            Err(e) => return ApiError::internal(format!("encoding the response as protobuf: {e}")).into_response(),
        },
    };
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

/// An error as a `Status` in `format`.
pub fn error(format: Format, e: ApiError) -> Response {
    match format {
        Format::Json => e.into_response(),
        Format::Protobuf => {
            let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            respond(Format::Protobuf, code, &e.to_status(), &[])
        }
    }
}

/// A Success `Status` (delete) in `format`.
pub fn status(format: Format, code: StatusCode, body: &StatusBody) -> Response {
    match format {
        Format::Json => {
            (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_json()).into_response()
        }
        Format::Protobuf => respond(format, code, &serde_json::to_value(body).unwrap_or_default(), &[]),
    }
}
