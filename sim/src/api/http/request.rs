//! Request parsing: the resource path, query parameters, bodies and content negotiation.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::api::status::{ApiError, ApiResult};

/// What a resource URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// API group ("" = core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Plural resource.
    pub plural: String,
    /// Object name.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `log`, ...).
    pub sub: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...`; `None` for other paths or a bare
/// group-version (discovery).
pub fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    let namespace_sub = |s: &str| group.is_empty() && matches!(s, "status" | "finalize");
    let t = match rest {
        ["namespaces", ns, plural, tail @ ..] if !namespace_sub(plural) => Target {
            group: group.clone(),
            version,
            namespace: Some(ns.to_string()),
            plural: plural.to_string(),
            name: tail.first().map(|s| s.to_string()),
            sub: tail.get(1).map(|s| s.to_string()),
        },
        [plural, tail @ ..] => Target {
            group: group.clone(),
            version,
            namespace: None,
            plural: plural.to_string(),
            name: tail.first().map(|s| s.to_string()),
            sub: tail.get(1).map(|s| s.to_string()),
        },
        [] => return None,
    };
    Some(t)
}

/// Query parameters (last value wins).
#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), decode(v));
        }
        Self(map)
    }

    /// A parameter's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// An integer parameter, 400 when malformed.
    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid {k} {v:?}: must be an integer")))
            }
        }
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request's Content-Type.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

/// Parses a JSON, YAML or Kubernetes protobuf body (by content type) into a JSON value.
pub fn parse_body(body: &[u8], content_type: &str) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if crate::api::protobuf::is_protobuf(content_type) {
        return crate::api::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("the protobuf body could not be decoded: {e}")));
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if content_type.contains("yaml") {
        let text =
            std::str::from_utf8(body).map_err(|e| ApiError::bad_request(format!("the YAML body is not UTF-8: {e}")))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Whether the client asked for a `meta.k8s.io` Table (kubectl get).
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

/// The field manager: `fieldManager` or the user agent up to the first `/`.
pub fn manager(query: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/api/v1/namespaces/default/pods/web-1/log").unwrap();
        assert_eq!(
            (t.namespace.as_deref(), t.plural.as_str(), t.name.as_deref(), t.sub.as_deref()),
            (Some("default"), "pods", Some("web-1"), Some("log"))
        );
        let t = parse_path("/api/v1/namespaces/demo/status").unwrap();
        assert_eq!(
            (t.namespace, t.plural.as_str(), t.name.as_deref(), t.sub.as_deref()),
            (None, "namespaces", Some("demo"), Some("status"))
        );
        let t = parse_path("/apis/apps/v1/deployments").unwrap();
        assert_eq!((t.group.as_str(), t.plural.as_str(), t.name), ("apps", "deployments", None));
        assert!(parse_path("/apis/apps/v1").is_none());
        assert!(parse_path("/healthz").is_none());
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1&x=%zz"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some("%zz"));
    }
}
