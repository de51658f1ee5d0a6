//! Watch streams: newline-delimited JSON events read from the store's history by cursor, so
//! none is lost or reordered; selector transitions become ADDED/DELETED as kube-apiserver sends
//! them; BOOKMARKs when allowed; an expired resourceVersion ends the stream with an in-stream
//! 410 `ERROR` event, which makes clients relist.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::ServerState;
use super::handlers::present;
use super::negotiate::Format;
use super::request::Query;
use crate::api::ops::ListOptions;
use crate::api::protobuf;
use crate::api::resources::ResourceType;
use crate::api::status::ApiError;
use crate::api::store::{Event, EventType};

/// Default server-side watch timeout (kube-apiserver's min-request-timeout is 1800 s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct WatchParams {
    namespace: Option<String>,
    opts: ListOptions,
    start: Start,
    bookmarks: bool,
    timeout: Duration,
    format: Format,
}

enum Start {
    /// Synthetic ADDED for the current state, then changes.
    Initial { end_bookmark: bool },
    /// Changes after this resourceVersion.
    From(u64),
}

/// Starts a watch response; it ends when `closing` changes ([`crate::Sim::close_watches`]).
pub fn serve(
    state: Arc<ServerState>,
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    opts: ListOptions,
    q: &Query,
    format: Format,
    closing: tokio::sync::watch::Receiver<u64>,
) -> Response {
    let send_initial = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    let start = match q.get("resourceVersion").unwrap_or_default() {
        "" | "0" => Start::Initial { end_bookmark: send_initial && bookmarks },
        _ if send_initial => Start::Initial { end_bookmark: bookmarks },
        rv => match rv.parse::<u64>() {
            Ok(n) => Start::From(n),
            Err(_) => {
                return ApiError::bad_request(format!("invalid resourceVersion {rv:?}: must be an integer"))
                    .into_response();
            }
        },
    };
    let timeout = match q.int("timeoutSeconds") {
        Ok(Some(s)) if s > 0 => Duration::from_secs((s as u64).min(DEFAULT_TIMEOUT.as_secs() * 48)),
        Ok(_) => DEFAULT_TIMEOUT,
        Err(e) => return e.into_response(),
    };
    let params = WatchParams { namespace, opts, start, bookmarks, timeout, format };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(state, rt, params, tx, closing));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = Body::from_stream(futures::StreamExt::map(stream, Ok::<_, std::convert::Infallible>));
    let content_type = match format {
        Format::Json => "application/json",
        Format::Protobuf => protobuf::WATCH_MEDIA_TYPE,
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

/// One event: a JSON line, or a length-prefixed protobuf `WatchEvent`.
fn line(format: Format, kind: &str, object: &Value) -> Bytes {
    match format {
        Format::Json => Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n")),
        Format::Protobuf => match protobuf::watch_frame(kind, object) {
            Ok(frame) => Bytes::from(frame),
            Err(e) => {
                // Stored objects are valid built-ins; an object that cannot be encoded ends the
                // stream with an ERROR event instead of being silently skipped.
                tracing::error!(error = %e, "encoding a watch event as protobuf");
                error_line(format, &ApiError::internal(format!("encoding a watch event as protobuf: {e}")))
            }
        },
    }
}

/// An `ERROR` event carrying a Status.
fn error_line(format: Format, e: &ApiError) -> Bytes {
    match format {
        Format::Json => {
            let status = serde_json::to_string(&e.status_body()).unwrap_or_default();
            Bytes::from(format!("{{\"type\":\"ERROR\",\"object\":{status}}}\n"))
        }
        Format::Protobuf => protobuf::watch_frame("ERROR", &e.to_status()).map(Bytes::from).unwrap_or_default(),
    }
}

fn bookmark(format: Format, rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(format, "BOOKMARK", &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}))
}

fn in_scope(p: &WatchParams, obj: &Value) -> bool {
    p.namespace.as_deref().is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns)) && p.opts.matches(obj)
}

/// The event a watcher with these filters sees, if any.
fn visible(p: &WatchParams, e: &Event) -> Option<&'static str> {
    let now = in_scope(p, &e.object);
    let before = e.old.as_deref().is_some_and(|o| in_scope(p, o));
    match e.kind {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (before || now).then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

async fn run(
    state: Arc<ServerState>,
    rt: Arc<ResourceType>,
    p: WatchParams,
    tx: mpsc::Sender<Bytes>,
    mut closing: tokio::sync::watch::Receiver<u64>,
) {
    let store = &state.api.store;
    let gr = rt.group_resource();
    let mut notify = store.notifier(&gr);
    let mut shutdown = state.shutdown.subscribe();
    let same_version = |o: &Value| o["apiVersion"].as_str() == Some(rt.api_version().as_str());
    let mut cursor = match p.start {
        Start::From(rv) => rv,
        Start::Initial { end_bookmark } => {
            let list = match state.api.list(&rt, p.namespace.as_deref(), &p.opts) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(error_line(p.format, &e)).await;
                    return;
                }
            };
            for obj in &list.items {
                let text = if same_version(obj) {
                    line(p.format, "ADDED", obj)
                } else {
                    line(p.format, "ADDED", &present(&rt, obj))
                };
                if tx.send(text).await.is_err() {
                    return;
                }
            }
            if end_bookmark && tx.send(bookmark(p.format, &rt, list.resource_version, true)).await.is_err() {
                return;
            }
            list.resource_version
        }
    };
    let deadline = tokio::time::Instant::now() + p.timeout;
    let mut ticker = tokio::time::interval(state.config.bookmark_interval);
    ticker.tick().await;
    loop {
        let events = match store.events_after(&gr, cursor, 512) {
            Ok(ev) => ev,
            Err(expired) => {
                let gone = ApiError::gone(format!("too old resource version: {cursor} ({})", expired.oldest));
                let _ = tx.send(error_line(p.format, &gone)).await;
                return;
            }
        };
        // A close or shutdown that came before these events were read ends the watch before
        // them: a client must not see a write made after its watch was closed.
        if closing.has_changed().unwrap_or(true) || shutdown.has_changed().unwrap_or(true) {
            return;
        }
        let drained = events.len() < 512;
        for e in events {
            cursor = e.rv;
            if let Some(kind) = visible(&p, &e) {
                let text = if same_version(&e.object) {
                    line(p.format, kind, &e.object)
                } else {
                    line(p.format, kind, &present(&rt, &e.object))
                };
                if tx.send(text).await.is_err() {
                    return;
                }
            }
        }
        if !drained {
            continue;
        }
        tokio::select! {
            // Ending wins over a new event that is ready at the same time.
            biased;
            _ = closing.changed() => return,
            _ = shutdown.changed() => return,
            changed = notify.changed() => if changed.is_err() { return },
            _ = ticker.tick() => {
                if p.bookmarks {
                    let rv = cursor;
                    if tx.send(bookmark(p.format, &rt, rv, false)).await.is_err() { return; }
                }
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
        }
    }
}
