//! Verb dispatch for resource URLs.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::negotiate::{self, Format};
use super::request::{self, Query, Target};
use super::{LogQuery, ServerState, table, watch};
use crate::api::auth::{Attributes, User};
use crate::api::ops::{
    DeleteOptions, FieldValidation, ListOptions, PatchKind, Propagation, Subresource, WriteCtx, Written,
};
use crate::api::resources::ResourceType;
use crate::api::status::{ApiError, ApiResult, StatusBody};

/// Entry point for every `/api/...` and `/apis/...` request that is not discovery.
pub async fn dispatch(
    State(state): State<Arc<ServerState>>,
    axum::Extension(user): axum::Extension<User>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = Query::parse(uri.query());
    if let Some(resp) = super::discovery::group_discovery(&state, &path, &headers) {
        return resp;
    }
    let Some(target) = request::parse_path(&path) else {
        return ApiError::no_route(&path).into_response();
    };
    if super::proxy::is_proxy(&target) {
        return super::proxy::serve(&state, &user, &method, &target, &uri, &headers, body)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    match handle(&state, &user, &method, &target, &query, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// Resolves the resource and the response format, then serves the request; errors after
/// negotiation are encoded in the negotiated format.
async fn handle(
    state: &Arc<ServerState>,
    user: &User,
    method: &Method,
    t: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let rt = state.api.resource(&t.group, &t.version, &t.plural)?;
    let fmt = negotiate::response_format(headers, negotiate::serves_protobuf(&rt))?;
    let req = Request { user, method, t, query, headers, body, fmt };
    Ok(serve(state, rt, &req).await.unwrap_or_else(|e| negotiate::error(fmt, e)))
}

/// One resource request, as parsed.
struct Request<'a> {
    user: &'a User,
    method: &'a Method,
    t: &'a Target,
    query: &'a Query,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    fmt: Format,
}

async fn serve(state: &Arc<ServerState>, rt: Arc<ResourceType>, req: &Request<'_>) -> ApiResult<Response> {
    let Request { user, method, t, query, headers, body, fmt } = *req;
    let api = &state.api;
    if !rt.namespaced && t.namespace.is_some() {
        return Err(ApiError::no_route(&format!("{} is not namespaced", rt.plural)));
    }
    let ns = t.namespace.clone().unwrap_or_default();
    authorize(api, user, method, t, query)?;
    if rt.namespaced && t.name.is_some() && t.namespace.is_none() {
        return Err(ApiError::no_route(&format!(
            "{}/{} requires a namespace",
            rt.plural,
            t.name.as_deref().unwrap_or("")
        )));
    }
    let sub = match t.sub.as_deref() {
        None => Subresource::Main,
        Some("status") if rt.status => Subresource::Status,
        Some("scale") if rt.scale.is_some() => Subresource::Scale,
        Some(s) if rt.extra_subresources.contains(&s) => {
            return extra_subresource(state, &rt, &ns, t, s, method, query, body).await;
        }
        Some(s) => return Err(ApiError::no_route(&format!("{}/{s}", rt.plural))),
    };
    let ctx = write_ctx(query, headers)?;
    match (method, t.name.as_deref()) {
        (&Method::GET, None) => {
            let opts = list_options(&rt, query)?;
            let all_ns = t.namespace.as_deref();
            if query.flag("watch") {
                // Subscribed before the suspension is read: a `Sim::close_watches` after this
                // line ends this watch too, and one before it came after a suspension that
                // refuses it (tests suspend, then close), so no watch slips between the two.
                let closing = state.close_watches.subscribe();
                if state.watches_suspended.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(ApiError::unavailable(
                        "the server is currently unable to handle the request (watches suspended)",
                    ));
                }
                let ns = all_ns.map(str::to_string);
                return Ok(watch::serve(state.clone(), rt, ns, opts, query, fmt, closing));
            }
            let result = api.list(&rt, all_ns, &opts)?;
            if request::wants_table(headers) {
                return Ok(json_response(StatusCode::OK, &table::list_table(&rt, &result, query), &[]));
            }
            Ok(list_response(&rt, &result, fmt, &state.serialized))
        }
        (&Method::GET, Some(name)) => {
            let obj = api.get(&rt, &ns, name)?;
            let obj = match sub {
                Subresource::Scale => crate::api::ops::scale_view(&rt, &obj),
                _ => present(&rt, &obj),
            };
            if request::wants_table(headers) && sub == Subresource::Main {
                return Ok(json_response(StatusCode::OK, &table::object_table(&rt, &obj, query), &[]));
            }
            Ok(negotiate::respond(fmt, StatusCode::OK, &obj, &[]))
        }
        (&Method::POST, None) => {
            let obj = body_object(&rt, headers, body)?;
            let w = api.create(&rt, &ns, obj, &ctx)?;
            Ok(written(&rt, w, StatusCode::CREATED, fmt))
        }
        (&Method::PUT, Some(name)) => {
            let obj = body_object(&rt, headers, body)?;
            let w = api.update(&rt, &ns, name, obj, sub, &ctx)?;
            Ok(written(&rt, w, StatusCode::OK, fmt))
        }
        (&Method::PATCH, Some(name)) => {
            let ct = request::content_type(headers);
            let kind = PatchKind::from_content_type(&ct)?;
            let patch = request::parse_body(body, &ct)?;
            let w = api.patch(&rt, &ns, name, kind, patch, sub, &ctx)?;
            let code = if w.created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(written(&rt, w, code, fmt))
        }
        (&Method::DELETE, Some(name)) if sub == Subresource::Main => {
            let opts = delete_options(query, headers, body)?;
            let obj = api.delete(&rt, &ns, name, &opts)?;
            let still_there = api
                .store
                .get(&rt.group_resource(), &ns, name)
                .is_some_and(|o| o["metadata"]["uid"] == obj["metadata"]["uid"]);
            // kube-apiserver answers the object while deletion is pending (finalizers, graceful
            // pods) and, once it is gone, the object for the kinds whose registry sets
            // `ReturnDeletedObject`, a Success Status for the others.
            if still_there || opts.dry_run || returns_deleted_object(&rt) {
                return Ok(negotiate::respond(fmt, StatusCode::OK, &present(&rt, &obj), &[]));
            }
            let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
            let status = StatusBody::deleted(name, &rt.group, &rt.plural, uid);
            Ok(negotiate::status(fmt, StatusCode::OK, &status))
        }
        (&Method::DELETE, None) => {
            let list = list_options(&rt, query)?;
            let opts = delete_options(query, headers, body)?;
            let deleted = api.delete_collection(&rt, t.namespace.as_deref(), &list, &opts)?;
            let items: Vec<Value> = deleted.iter().map(|o| present(&rt, o)).collect();
            let out = json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": api.store.resource_version().to_string()}, "items": items});
            Ok(negotiate::respond(fmt, StatusCode::OK, &out, &[]))
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m} {})",
            crate::api::status::qualified(&rt.group, &rt.plural)
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn extra_subresource(
    state: &Arc<ServerState>,
    rt: &ResourceType,
    ns: &str,
    t: &Target,
    sub: &str,
    method: &Method,
    query: &Query,
    body: &Bytes,
) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or_default();
    match (sub, method) {
        ("log", &Method::GET) => {
            let pod = state.api.get(rt, ns, name)?;
            let q = LogQuery {
                container: query.get("container").map(str::to_string),
                follow: query.flag("follow"),
                previous: query.flag("previous"),
                tail_lines: query.int("tailLines")?.map(|n| n.max(0) as usize),
            };
            let Some(source) = &state.config.logs else {
                let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
                return Err(if node.is_empty() {
                    ApiError::bad_request(format!("pod {name} does not have a host assigned"))
                } else {
                    ApiError::bad_request(format!("no kubelet serves logs for node {node}"))
                });
            };
            let stream = source.logs(&pod, &q)?;
            let first =
                futures::stream::once(async move { Ok::<_, std::convert::Infallible>(Bytes::from(stream.text)) });
            let body = match stream.follow {
                None => Body::from_stream(first),
                Some(rx) => {
                    use futures::StreamExt;
                    let rest = tokio_stream::wrappers::ReceiverStream::new(rx).map(|s| Ok(Bytes::from(s)));
                    Body::from_stream(first.chain(rest))
                }
            };
            Ok(([(axum::http::header::CONTENT_TYPE, "text/plain")], body).into_response())
        }
        ("binding", &Method::POST) => {
            let body = request::parse_body(body, "application/json")?;
            let target = body["target"]["name"].as_str().unwrap_or_default();
            state.api.bind(ns, name, target)?;
            Ok(negotiate::status(Format::Json, StatusCode::CREATED, &StatusBody::success(201)))
        }
        ("eviction", &Method::POST) => {
            let body = request::parse_body(body, "application/json")?;
            state.api.evict(ns, name, &body, query.get("dryRun") == Some("All"))?;
            let status =
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
            Ok(json_response(StatusCode::CREATED, &status, &[]))
        }
        ("finalize", &Method::PUT) => {
            Err(ApiError::method_not_allowed("namespaces/finalize is handled by the namespace controller"))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {}/{sub})",
            rt.plural
        ))),
    }
}

/// RBAC check of a resource request (403 with kube-apiserver's wording when denied).
fn authorize(api: &crate::api::ops::Api, user: &User, method: &Method, t: &Target, query: &Query) -> ApiResult<()> {
    if user.is_master() {
        return Ok(());
    }
    let verb = match (method, t.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if query.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return Ok(()),
    };
    // kube-apiserver treats a list/watch with `fieldSelector=metadata.name=X` as a request for
    // the object X, so resourceNames rules apply to it.
    let selected_name = match verb {
        "list" | "watch" => query
            .get("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name=").or_else(|| f.strip_prefix("metadata.name==")))
            .filter(|n| !n.contains(',')),
        _ => None,
    };
    let attrs = Attributes {
        verb,
        group: &t.group,
        resource: &t.plural,
        subresource: t.sub.as_deref(),
        namespace: t.namespace.as_deref().unwrap_or_default(),
        name: t.name.as_deref().or(selected_name),
    };
    if crate::api::auth::authorize(api, user, &attrs) {
        Ok(())
    } else {
        Err(ApiError::forbidden(attrs.forbidden_message(user)))
    }
}

fn write_ctx(query: &Query, headers: &HeaderMap) -> ApiResult<WriteCtx> {
    let dry_run = match query.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("dryRun {other:?} is invalid: only \"All\" is supported")));
        }
    };
    Ok(WriteCtx {
        manager: request::manager(query, headers),
        dry_run,
        field_validation: FieldValidation::parse(query.get("fieldValidation").unwrap_or_default())?,
        force: query.flag("force"),
    })
}

fn list_options(rt: &ResourceType, query: &Query) -> ApiResult<ListOptions> {
    let mut opts = ListOptions::parse(query.get("labelSelector"), query.get("fieldSelector"), &rt.kind)?;
    opts.limit = query.int("limit")?.unwrap_or(0).max(0) as usize;
    opts.continue_token = query.get("continue").filter(|c| !c.is_empty()).map(str::to_string);
    Ok(opts)
}

fn delete_options(query: &Query, headers: &HeaderMap, body: &Bytes) -> ApiResult<DeleteOptions> {
    let mut opts = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        // client-go's typed clients send DeleteOptions in their content type (protobuf).
        DeleteOptions::from_json(&request::parse_body(body, &request::content_type(headers))?)?
    };
    if let Some(p) = query.get("propagationPolicy").filter(|p| !p.is_empty()) {
        opts.propagation = Some(Propagation::parse(p)?);
    }
    if let Some(g) = query.int("gracePeriodSeconds")? {
        opts.grace_period = Some(g);
    }
    if query.get("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    Ok(opts)
}

/// The object of a create/update body: JSON, YAML or (built-in kinds only) protobuf.
fn body_object(rt: &ResourceType, headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let ct = request::content_type(headers);
    if crate::api::protobuf::is_protobuf(&ct) && !negotiate::serves_protobuf(rt) {
        // Custom resources have no protobuf form (apiextensions-apiserver's codecs).
        return Err(ApiError::unsupported_media_type(&ct));
    }
    request::parse_body(body, &ct)
}

/// Whether DELETE answers the deleted object rather than a Status once it is gone: the
/// registries that set `ReturnDeletedObject` (k/k `pkg/registry/core/{pod,service,
/// serviceaccount,namespace,persistentvolume,persistentvolumeclaim}/storage/storage.go`,
/// `pkg/registry/storage/storageclass/storage/storage.go`).
fn returns_deleted_object(rt: &ResourceType) -> bool {
    let core = ["pods", "services", "serviceaccounts", "namespaces", "persistentvolumes", "persistentvolumeclaims"];
    (rt.group.is_empty() && core.contains(&rt.plural.as_str()))
        || (rt.group == "storage.k8s.io" && rt.plural == "storageclasses")
}

/// A list response, serialised straight from the stored objects (no intermediate copies:
/// a list of 10,000 pods is several megabytes).
fn list_response(
    rt: &ResourceType,
    result: &crate::api::ops::ListResult,
    fmt: Format,
    cache: &super::serialized::Serialized,
) -> Response {
    use super::serialized::Encoding;
    let api_version = rt.api_version();
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(result.resource_version.to_string()));
    if let Some(c) = &result.continue_token {
        meta.insert("continue".into(), json!(c));
    }
    if fmt == Format::Protobuf {
        use crate::api::protobuf::{encode_item, encode_list};
        let items = result.items.iter().map(|o| {
            if o["apiVersion"].as_str() == Some(api_version.as_str()) {
                cache.get_or_make(Encoding::Protobuf, o, |o| encode_item(&api_version, &rt.kind, o))
            } else {
                encode_item(&api_version, &rt.kind, &present(rt, o)).map(Bytes::from)
            }
        });
        return match encode_list(&api_version, &rt.list_kind(), &Value::Object(meta), items) {
            Ok(bytes) => {
                (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, crate::api::protobuf::MEDIA_TYPE)], bytes)
                    .into_response()
            }
            Err(e) => ApiError::internal(format!("encoding the list as protobuf: {e}")).into_response(),
        };
    }
    // Every item's bytes first (cached per object version), so the body is allocated once.
    let mut parts = Vec::with_capacity(result.items.len());
    for obj in &result.items {
        let bytes = if obj["apiVersion"].as_str() == Some(api_version.as_str()) {
            cache.get_or_make(Encoding::Json, obj, serde_json::to_vec)
        } else {
            serde_json::to_vec(&present(rt, obj)).map(Bytes::from)
        };
        match bytes {
            Ok(b) => parts.push(b),
            Err(e) => return ApiError::internal(format!("serialising the list: {e}")).into_response(),
        }
    }
    let head = format!(
        r#"{{"kind":{},"apiVersion":{},"metadata":{},"items":["#,
        Value::from(rt.list_kind()),
        Value::from(rt.api_version()),
        Value::Object(meta)
    );
    let mut buf = Vec::with_capacity(head.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>() + 3);
    buf.extend_from_slice(head.as_bytes());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(part);
    }
    buf.extend_from_slice(b"]}\n");
    (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], buf).into_response()
}

/// An object as served at this version (multi-version CRDs share storage, no conversion).
pub fn present(rt: &ResourceType, obj: &Value) -> Value {
    if rt.conversion.is_some() {
        return rt.from_storage(obj);
    }
    let api_version = rt.api_version();
    if obj["apiVersion"].as_str() == Some(api_version.as_str()) || obj["kind"].as_str() != Some(rt.kind.as_str()) {
        return obj.clone();
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(api_version);
    o
}

fn written(rt: &ResourceType, w: Written, code: StatusCode, fmt: Format) -> Response {
    negotiate::respond(fmt, code, &present(rt, &w.object), &w.warnings)
}

/// A JSON response with optional `Warning` headers; a trailing newline as Go's
/// `json.Encoder` writes.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut text = body.to_string();
    text.push('\n');
    let mut resp = (code, [(axum::http::header::CONTENT_TYPE, "application/json")], text).into_response();
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}
