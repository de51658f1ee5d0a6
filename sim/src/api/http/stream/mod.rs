//! The streaming subresources of pods: `exec`, `attach` and `portforward`, over WebSocket as
//! kubectl ≥ 1.30 (exec, attach) and ≥ 1.31 (port-forward) speaks them first.
//!
//! - exec and attach: subprotocols `v5.channel.k8s.io` (preferred) and `v4.channel.k8s.io`;
//!   binary messages whose first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 error,
//!   4 resize), the outcome as a `Status` on the error channel ([`channels`]).
//! - port-forward: `SPDY/3.1+portforward.k8s.io`, a SPDY/3.1 session tunnelled in binary
//!   messages, one (error, data) stream pair per connection, as kubectl does it ([`portforward`],
//!   [`spdy`]); and `v4.channel.k8s.io` with a channel pair per `ports=` entry, as the kubelet
//!   serves WebSocket port-forward to clients such as kube-rs.
//!
//! Plain SPDY (`Upgrade: SPDY/3.1`, kubectl's fallback) is served too: port-forward as above
//! on the raw connection, exec and attach with one SPDY stream per standard stream
//! ([`remote_spdy`]).
//!
//! Authorization follows kube-apiserver 1.35: `create` on `pods/exec|attach|portforward`, and
//! for the WebSocket GET also `get` (its request verb) before it, as the
//! `AuthorizePodWebsocketUpgradeCreatePermission` gate (beta, on) adds the `create` check to it.
//! Before the upgrade the pod, the container and the node are checked as k/k
//! `registry/core/pod/strategy.go` does (400s); errors after it (no such running container, a
//! container without a process) go to the error channel as kube-apiserver's stream translator
//! writes them (`util/proxy/streamtranslator.go`).

mod channels;
mod portforward;
mod remote_spdy;
pub mod spdy;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::ServerState;
use crate::api::auth::{Attributes, User};
use crate::api::status::{ApiError, ApiResult};

/// The upgraded connection of a session.
pub(crate) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Bytes from the client, whatever carries them.
pub(crate) type ByteStream<'a> = std::pin::Pin<Box<dyn futures::Stream<Item = Bytes> + Send + 'a>>;
/// Bytes to the client.
pub(crate) type ByteSink<'a> = std::pin::Pin<Box<dyn futures::Sink<Bytes, Error = String> + Send + 'a>>;

/// The raw byte stream of an upgraded connection (plain SPDY).
pub(crate) fn raw_transport(io: TokioIo<hyper::upgrade::Upgraded>) -> (ByteStream<'static>, ByteSink<'static>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (r, w) = tokio::io::split(io);
    let incoming = futures::stream::unfold(r, |mut r| async move {
        let mut buf = vec![0u8; 32 * 1024];
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Bytes::from(buf), r))
            }
        }
    });
    let outgoing = futures::sink::unfold(w, |mut w, b: Bytes| async move {
        w.write_all(&b).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(w)
    });
    (Box::pin(incoming), Box::pin(outgoing))
}

/// Which standard streams a session carries (`stdin|stdout|stderr|tty=true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Input from the client.
    pub stdin: bool,
    /// Standard output.
    pub stdout: bool,
    /// Standard error (never with a TTY: it is merged into stdout).
    pub stderr: bool,
    /// Run under a terminal.
    pub tty: bool,
}

/// A running exec or attach on the kubelet side.
pub struct Session {
    /// Input; dropping it closes the input (EOF).
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// Output; ends when the output ends.
    pub stdout: Option<mpsc::Receiver<Bytes>>,
    /// Standard error; ends when it ends.
    pub stderr: Option<mpsc::Receiver<Bytes>>,
    /// Terminal size changes (width, height), with a TTY.
    pub resize: Option<mpsc::Sender<(u16, u16)>>,
    /// The outcome once the command ended: its exit code, or an error for the error channel.
    pub exit: oneshot::Receiver<ApiResult<i32>>,
    /// Dropped when the client goes away: stops what still runs.
    pub guard: Box<dyn Send + Sync>,
}

/// Runs commands in containers and attaches to them: the kubelets of the embedded cluster.
pub trait ContainerStreams: Send + Sync {
    /// Runs `command` in `container` of `pod` (which is bound to a node).
    fn exec(
        &self,
        pod: Arc<Value>,
        container: String,
        command: Vec<String>,
        opts: StreamOptions,
    ) -> BoxFuture<'static, ApiResult<Session>>;

    /// Attaches to the main process of `container`.
    fn attach(&self, pod: Arc<Value>, container: String, opts: StreamOptions)
    -> BoxFuture<'static, ApiResult<Session>>;
}

/// Which subresource a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
    PortForward,
}

impl Kind {
    fn subresource(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Attach => "attach",
            Kind::PortForward => "portforward",
        }
    }
}

/// The subprotocols served, in the server's order of preference.
const REMOTE_COMMAND_PROTOCOLS: &[&str] = &[channels::V5, channels::V4];
const PORT_FORWARD_PROTOCOLS: &[&str] = &[portforward::SPDY_TUNNEL, channels::V4];

/// The routes of `pods/{name}/exec`, `attach` and `portforward` (every method: the handler
/// answers 405 itself, as kube-apiserver words it).
pub fn routes() -> Router<Arc<ServerState>> {
    let mut router = Router::new();
    for kind in [Kind::Exec, Kind::Attach, Kind::PortForward] {
        let path = format!("/api/v1/namespaces/{{namespace}}/pods/{{name}}/{}", kind.subresource());
        router = router.route(
            &path,
            any(
                move |State(state): State<Arc<ServerState>>,
                      axum::Extension(user): axum::Extension<User>,
                      Path((ns, name)): Path<(String, String)>,
                      req: Request| async move {
                    connect(state, user, ns, name, kind, req).await.unwrap_or_else(IntoResponse::into_response)
                },
            ),
        );
    }
    router
}

/// Query parameters; `command` and `ports` repeat.
#[derive(Debug, Default)]
struct Params {
    container: Option<String>,
    command: Vec<String>,
    ports: Vec<String>,
    opts: StreamOptions,
}

impl Params {
    fn parse(raw: Option<&str>) -> Self {
        let mut p = Self::default();
        let flag = |v: &str| matches!(v, "true" | "1");
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "container" if !v.is_empty() => p.container = Some(v.into_owned()),
                "command" => p.command.push(v.into_owned()),
                "ports" => p.ports.extend(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty())),
                "stdin" => p.opts.stdin = flag(&v),
                "stdout" => p.opts.stdout = flag(&v),
                "stderr" => p.opts.stderr = flag(&v),
                "tty" => p.opts.tty = flag(&v),
                _ => {}
            }
        }
        if p.opts.tty {
            p.opts.stderr = false;
        }
        p
    }
}

async fn connect(
    state: Arc<ServerState>,
    user: User,
    ns: String,
    name: String,
    kind: Kind,
    mut req: Request,
) -> ApiResult<Response> {
    let method = req.method().clone();
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} pods/{})",
            kind.subresource()
        )));
    }
    authorize(&state, &user, &method, &ns, &name, kind)?;
    let rt = state.api.resource("", "v1", "pods")?;
    let pod = state.api.get(&rt, &ns, &name)?;
    let params = Params::parse(req.uri().query());
    let container = match kind {
        Kind::PortForward => String::new(),
        Kind::Exec | Kind::Attach => pick_container(&pod, &name, params.container.as_deref())?,
    };
    if pod["spec"]["nodeName"].as_str().unwrap_or_default().is_empty() {
        return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    if kind == Kind::Exec && params.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let transport = if let Some(protocol) = plain_spdy(req.headers(), kind)? {
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert(STREAM_PROTOCOL, HeaderValue::from_static(protocol));
        Transport::PlainSpdy
    } else {
        let offered = offered_protocols(req.headers());
        let key = websocket_key(req.headers()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to upgrade connection: pods/{} is served over WebSocket or SPDY/3.1",
                kind.subresource()
            ))
        })?;
        let served = if kind == Kind::PortForward { PORT_FORWARD_PROTOCOLS } else { REMOTE_COMMAND_PROTOCOLS };
        let protocol = offered.iter().find(|p| served.contains(&p.as_str())).cloned();
        if protocol.is_none() && kind != Kind::PortForward {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {served:?}"
            )));
        }
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        h.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).map_err(|e| ApiError::internal(format!("accept key: {e}")))?,
        );
        if let Some(p) = &protocol {
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(p).map_err(|e| ApiError::internal(format!("subprotocol: {e}")))?,
            );
        }
        Transport::WebSocket(protocol)
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut shutdown = state.shutdown.subscribe();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "pods/{} upgrade failed", kind.subresource());
                return;
            }
        };
        let session = async {
            let start = || start_session(&state, kind, &pod, container, &params);
            match (kind, transport) {
                (Kind::PortForward, Transport::PlainSpdy) => portforward::serve_plain_spdy(upgraded, &pod).await,
                (_, Transport::PlainSpdy) => {
                    let (incoming, sink) = raw_transport(upgraded);
                    remote_spdy::serve(incoming, sink, params.opts, start().await).await
                }
                (Kind::PortForward, Transport::WebSocket(protocol)) => {
                    let socket = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                    let spdy = protocol.as_deref() == Some(portforward::SPDY_TUNNEL);
                    portforward::serve(socket, &pod, spdy, &params.ports).await
                }
                (_, Transport::WebSocket(protocol)) => {
                    let socket = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                    let v5 = protocol.as_deref() == Some(channels::V5);
                    channels::serve(socket, v5, params.opts, start().await).await
                }
            }
        };
        tokio::select! {
            () = session => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
    });
    Ok(resp)
}

/// How the upgraded connection carries the session.
enum Transport {
    /// WebSocket, with the negotiated subprotocol.
    WebSocket(Option<String>),
    /// Plain SPDY/3.1.
    PlainSpdy,
}

/// Starts the exec or attach on the kubelet side.
async fn start_session(
    state: &ServerState,
    kind: Kind,
    pod: &Arc<Value>,
    container: String,
    params: &Params,
) -> ApiResult<Session> {
    let Some(streams) = state.config.streams.clone() else {
        return Err(ApiError::internal(format!(
            "Internal error occurred: no kubelet serves node {}",
            pod["spec"]["nodeName"].as_str().unwrap_or_default()
        )));
    };
    if kind == Kind::Exec {
        streams.exec(pod.clone(), container, params.command.clone(), params.opts).await
    } else {
        streams.attach(pod.clone(), container, params.opts).await
    }
}

/// RBAC as kube-apiserver 1.35 applies it to connect requests (see the module doc).
fn authorize(state: &ServerState, user: &User, method: &Method, ns: &str, name: &str, kind: Kind) -> ApiResult<()> {
    if user.is_master() {
        return Ok(());
    }
    let verbs: &[&str] = if *method == Method::GET { &["get", "create"] } else { &["create"] };
    for verb in verbs {
        let attrs = Attributes {
            verb,
            group: "",
            resource: "pods",
            subresource: Some(kind.subresource()),
            namespace: ns,
            name: Some(name),
        };
        if !crate::api::auth::authorize(&state.api, user, &attrs) {
            return Err(ApiError::forbidden(attrs.forbidden_message(user)));
        }
    }
    Ok(())
}

/// The container a request is for, as k/k `registry/core/pod/strategy.go` resolves it.
fn pick_container(pod: &Value, pod_name: &str, requested: Option<&str>) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let regular = names("containers");
    let all: Vec<String> = names("initContainers")
        .into_iter()
        .chain(regular.iter().cloned())
        .chain(names("ephemeralContainers"))
        .collect();
    match requested {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {pod_name}"))),
        None if regular.len() == 1 => Ok(regular[0].clone()),
        None if regular.is_empty() => {
            Err(ApiError::bad_request(format!("a container name must be specified for pod {pod_name}")))
        }
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            all.join(" ")
        ))),
    }
}

/// The header of SPDY stream protocol negotiation.
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// For a plain SPDY upgrade, the stream protocol chosen (`portforward.k8s.io`, or
/// `v4.channel.k8s.io` for exec and attach: kubectl offers v5 to v1); `None` when the request
/// is not SPDY; 400 when it offers nothing served.
fn plain_spdy(headers: &HeaderMap, kind: Kind) -> ApiResult<Option<&'static str>> {
    let spdy = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("spdy/3.1"));
    if !spdy {
        return Ok(None);
    }
    let served = if kind == Kind::PortForward { "portforward.k8s.io" } else { remote_spdy::PROTOCOL };
    let offered: Vec<&str> = headers
        .get_all(STREAM_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if offered.contains(&served) {
        Ok(Some(served))
    } else {
        Err(ApiError::bad_request(format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{served}\"]"
        )))
    }
}

/// `Sec-WebSocket-Protocol` values offered (comma-separated, possibly over several headers).
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The client's key when this is a WebSocket upgrade request.
fn websocket_key(headers: &HeaderMap) -> Option<String> {
    let upgrade = headers.get(header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    Some(headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_follows_the_pod_strategy() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(pick_container(&one, "p", None).unwrap(), "app");
        let two = json!({"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            pick_container(&two, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        assert_eq!(pick_container(&two, "p", Some("x")).unwrap_err().message, "container x is not valid for pod p");
        assert_eq!(pick_container(&two, "p", Some("init")).unwrap(), "init");
    }

    #[test]
    fn repeated_command_and_ports_parameters_are_kept_in_order() {
        let p = Params::parse(Some(
            "command=sh&command=-c&command=echo%20a%26b&container=c&stdin=true&tty=true&stderr=true",
        ));
        assert_eq!(p.command, ["sh", "-c", "echo a&b"]);
        assert_eq!(p.container.as_deref(), Some("c"));
        assert_eq!(p.opts, StreamOptions { stdin: true, stdout: false, stderr: false, tty: true });
        assert_eq!(Params::parse(Some("ports=80%2C1234&ports=9")).ports, ["80", "1234", "9"]);
    }
}
