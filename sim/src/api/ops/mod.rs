//! API semantics shared by the HTTP handlers and the in-process controllers: reads, writes and
//! deletes with Kubernetes' metadata rules (uid, generation, resourceVersion preconditions,
//! status/scale subresource separation, finalizers, managedFields, validation).

pub mod admission;
pub mod batch;
mod binding;
mod delete;
mod events;
pub mod eviction;
mod read;
mod write;

use std::sync::Arc;

use serde_json::Value;

pub use delete::{DeleteOptions, FOREGROUND, ORPHAN, Propagation, blocks_removal};
pub use read::ListOptions;
pub use read::ListResult;
pub use write::{PatchKind, scale_view};

use super::resources::{Registry, ResourceType};
use super::status::{ApiError, ApiResult};
use super::store::Store;

/// Which part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself (status changes are ignored when a status subresource exists).
    Main,
    /// `/status`: only status changes are kept.
    Status,
    /// `/scale`: an `autoscaling/v1` Scale view of replicas.
    Scale,
}

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and answer a warning (kube-apiserver's default).
    #[default]
    Warn,
    /// Refuse the request (400).
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter.
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is invalid: must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Per-request write settings.
#[derive(Debug, Clone, Default)]
pub struct WriteCtx {
    /// Field manager name (from `fieldManager` or the client's user agent).
    pub manager: String,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// Unknown-field handling.
    pub field_validation: FieldValidation,
    /// Server-side apply `force`.
    pub force: bool,
}

impl WriteCtx {
    /// A context for in-process controllers.
    pub fn controller(manager: &str) -> Self {
        Self { manager: manager.to_string(), ..Default::default() }
    }
}

/// The outcome of a write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored.
    pub object: Arc<Value>,
    /// True when the write created the object.
    pub created: bool,
    /// Warnings for the client (`Warning:` headers).
    pub warnings: Vec<String>,
}

/// The API: registry + store.
#[derive(Debug)]
pub struct Api {
    /// Served types.
    pub registry: Arc<Registry>,
    /// Objects.
    pub store: Store,
    /// Bearer tokens.
    pub tokens: crate::api::auth::Tokens,
    /// Held while a Service is created (ClusterIP allocation).
    service_ips: std::sync::Mutex<()>,
    /// Where ClusterIPs come from.
    service_range: admission::ServiceRange,
}

impl Api {
    /// An API with the built-in kinds and `history` watch events kept per resource.
    pub fn new(history: usize) -> Self {
        let registry = Arc::new(Registry::with_builtins());
        let served = registry.clone();
        // CRD changes re-register their resources atomically with the commit, so a client that
        // sees the CRD event also sees its resources served (or gone).
        let hook: crate::api::store::CommitHook = Box::new(move |gr, event| {
            if gr.group == "apiextensions.k8s.io" && gr.resource == "customresourcedefinitions" {
                let name = meta_str(&event.object, "name");
                let types = match event.kind {
                    crate::api::store::EventType::Deleted => Vec::new(),
                    _ => crate::api::crd::served_types(&event.object),
                };
                served.replace_crd(name, types);
            }
        });
        Self {
            registry,
            store: Store::with_hook(history, hook),
            tokens: Default::default(),
            service_ips: Default::default(),
            service_range: admission::ServiceRange::default(),
        }
    }

    /// Allocates ClusterIPs from `range` (written `cidr` in error messages) instead of the
    /// default 127.96.0.10–127.96.255.254; [`crate::Sim`] passes its
    /// [address block](crate::addresses::AddressBlock)'s.
    pub fn with_service_range(mut self, range: std::ops::RangeInclusive<std::net::Ipv4Addr>, cidr: String) -> Self {
        let first = *range.start();
        self.service_range = admission::ServiceRange { range, cidr, first };
        self
    }

    /// Looks up a served type or answers 404 like kube-apiserver.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> ApiResult<Arc<ResourceType>> {
        self.registry.get(group, version, plural).ok_or_else(|| {
            let path = if group.is_empty() {
                format!("/api/{version}/{plural}")
            } else {
                format!("/apis/{group}/{version}/{plural}")
            };
            ApiError::no_route(&path)
        })
    }
}

/// Current time as Kubernetes `Time` (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// Current time as Kubernetes `MicroTime`.
pub fn now_micro() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `metadata` of an object, as a mutable map (created if missing).
pub fn meta_mut(obj: &mut Value) -> ApiResult<&mut serde_json::Map<String, Value>> {
    let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    if meta.is_null() {
        *meta = Value::Object(Default::default());
    }
    meta.as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"][key].as_str().unwrap_or_default()
}
