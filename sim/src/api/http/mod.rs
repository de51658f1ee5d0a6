//! The HTTP front of the API server: kube-apiserver's URL layout, verbs, content types and
//! error objects, on axum.

mod authn;
mod discovery;
mod handlers;
mod negotiate;
mod openapi;
mod proxy;
mod request;
mod serialized;
pub mod stream;
mod table;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tokio::sync::watch as tokio_watch;

use super::ops::Api;
use super::status::ApiResult;

pub use request::Target;

/// Serves pod logs (`pods/{name}/log`); the kubelets of the embedded cluster provide it.
pub trait LogSource: Send + Sync {
    /// Returns the log text of a container, or an API error (e.g. 400 when not started).
    fn logs(&self, pod: &Value, query: &LogQuery) -> ApiResult<LogStream>;
}

/// Parameters of a log request.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// `container`.
    pub container: Option<String>,
    /// `follow`.
    pub follow: bool,
    /// `previous`.
    pub previous: bool,
    /// `tailLines`.
    pub tail_lines: Option<usize>,
}

/// Log output: what exists now, plus more lines when following.
pub struct LogStream {
    /// The log so far.
    pub text: String,
    /// Further output while following (ends when the container stops).
    pub follow: Option<tokio::sync::mpsc::Receiver<String>>,
}

/// Settings of the HTTP server.
#[derive(Clone)]
pub struct ServerConfig {
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// The `gitVersion` answered on `/version`.
    pub version: (String, String),
    /// Pod log provider.
    pub logs: Option<Arc<dyn LogSource>>,
    /// Requests without credentials act as the admin (see `authn`).
    pub anonymous_is_admin: bool,
    /// Runs `pods/exec` and `pods/attach` (see [`stream`]).
    pub streams: Option<Arc<dyn stream::ContainerStreams>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(10),
            version: ("1".into(), "35".into()),
            logs: None,
            anonymous_is_admin: true,
            streams: None,
        }
    }
}

/// Shared state of all handlers.
pub struct ServerState {
    /// The API semantics.
    pub api: Arc<Api>,
    /// Settings.
    pub config: ServerConfig,
    /// Bumped to end every open watch stream (as an apiserver restart would).
    pub close_watches: tokio_watch::Sender<u64>,
    /// Bumped once on shutdown.
    pub shutdown: tokio_watch::Sender<bool>,
    /// While set, new watch requests are answered 503 (as an apiserver that is not ready).
    pub watches_suspended: std::sync::atomic::AtomicBool,
    /// Serialised objects reused by list responses.
    pub serialized: serialized::Serialized,
}

/// Builds the router.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/version/", get(discovery::version))
        .route("/healthz", get(discovery::ok))
        .route("/livez", get(discovery::ok))
        .route("/readyz", get(discovery::ok))
        .route("/api", get(discovery::core_versions))
        .route("/api/", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/apis/", get(discovery::groups))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/{*rest}", get(openapi::document))
        .merge(stream::routes())
        .fallback(handlers::dispatch)
        .layer(axum::middleware::from_fn_with_state(state.clone(), authn::authenticate))
        .with_state(state)
}
