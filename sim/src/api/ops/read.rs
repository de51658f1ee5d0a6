//! Get and list with label/field selectors and `limit` + `continue` paging.

use std::sync::Arc;

use serde_json::Value;

use super::Api;
use crate::api::resources::ResourceType;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::status::{ApiError, ApiResult};
use crate::api::store::Page;

/// List parameters.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: Option<Arc<LabelSelector>>,
    /// `fieldSelector`.
    pub field_selector: Option<Arc<FieldSelector>>,
    /// `limit` (0 = no limit).
    pub limit: usize,
    /// `continue` token from a previous page.
    pub continue_token: Option<String>,
}

impl ListOptions {
    /// Parses selector strings for objects of `kind`.
    pub fn parse(label: Option<&str>, field: Option<&str>, kind: &str) -> ApiResult<Self> {
        let label_selector = match label.filter(|s| !s.is_empty()) {
            Some(s) => Some(Arc::new(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?)),
            None => None,
        };
        let field_selector = match field.filter(|s| !s.is_empty()) {
            Some(s) => Some(Arc::new(FieldSelector::parse(s, kind).map_err(|e| ApiError::bad_request(e.to_string()))?)),
            None => None,
        };
        Ok(Self { label_selector, field_selector, ..Default::default() })
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.label_selector.as_ref().is_none_or(|s| s.matches(obj["metadata"]["labels"].as_object()))
            && self.field_selector.as_ref().is_none_or(|s| s.matches(obj))
    }
}

/// A list result.
#[derive(Debug)]
pub struct ListResult {
    /// Matching objects.
    pub items: Vec<Arc<Value>>,
    /// resourceVersion of the list.
    pub resource_version: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
}

/// The continue token: hex of `rv/namespace/name`. Later pages read the current state (this
/// store keeps no snapshots), but carry the first page's resourceVersion so that a watch
/// started from it replays everything since.
fn encode_token(rv: u64, key: &(String, String)) -> String {
    let raw = format!("{rv}\n{}\n{}", key.0, key.1);
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> ApiResult<(u64, (String, String))> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16)).collect();
    let raw = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, '\n');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}

impl Api {
    /// Reads one object.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<Arc<Value>> {
        self.store
            .get(&rt.group_resource(), namespace, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Lists objects (all namespaces when `namespace` is `None`).
    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>, opts: &ListOptions) -> ApiResult<ListResult> {
        let (first_rv, after) = match opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => {
                let (rv, key) = decode_token(t)?;
                (Some(rv), Some(key))
            }
            None => (None, None),
        };
        let filter = |o: &Value| opts.matches(o);
        let Page { items, rv, next } =
            self.store.list(&rt.group_resource(), namespace, after.as_ref(), opts.limit, &filter);
        let resource_version = first_rv.unwrap_or(rv);
        let continue_token = next.map(|k| encode_token(resource_version, &k));
        Ok(ListResult { items, resource_version, continue_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trips_and_rejects_garbage() {
        let key = ("ns".to_string(), "a-b".to_string());
        let t = encode_token(42, &key);
        assert_eq!(decode_token(&t).unwrap(), (42, key));
        assert_eq!(decode_token("zz").unwrap_err().code, 400);
        assert_eq!(decode_token("abc").unwrap_err().code, 400);
    }
}
