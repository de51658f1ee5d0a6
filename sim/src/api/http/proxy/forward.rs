//! Forwarding one HTTP request to a pod address: method, path, query, headers and body go
//! through; the answer's status, headers and body (streamed) come back. A backend that cannot
//! be reached is a 503 Status worded as kube-apiserver words it
//! (`error trying to reach service: dial tcp ...: connect: connection refused`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, Method, Request, header};
use axum::response::Response;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::api::status::{ApiError, ApiResult};

/// Time allowed to connect to the backend.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the backend's response headers (kube-apiserver's default request timeout).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers that belong to one connection (RFC 9110 §7.6.1) or to the API server itself
/// (its credentials are not the backend's business).
const NOT_FORWARDED: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::AUTHORIZATION,
    header::CONTENT_LENGTH,
];

fn forwarded(name: &HeaderName) -> bool {
    !NOT_FORWARDED.contains(name) && name.as_str() != "keep-alive"
}

/// Sends the request to `http://{addr}{path_and_query}` and returns the backend's answer.
pub async fn forward(
    addr: SocketAddr,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let unreachable = |e: String| ApiError::unavailable(format!("error trying to reach service: {e}"));
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(unreachable(format!("dial tcp {addr}: connect: {}", describe(&e)))),
        Err(_) => return Err(unreachable(format!("dial tcp {addr}: i/o timeout"))),
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unreachable(format!("{e}")))?;
    // Drives the connection until the response body has been read (or the client left).
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "proxied connection ended");
        }
    });
    let mut req = Request::builder().method(method.clone()).uri(path_and_query);
    for (name, value) in headers.iter().filter(|(n, _)| forwarded(n)) {
        req = req.header(name, value);
    }
    let req = req
        .header(header::HOST, addr.to_string())
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(format!("cannot forward the request: {e}")))?;
    let resp = match tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(unreachable(format!("{e}"))),
        Err(_) => return Err(unreachable("net/http: timeout awaiting response headers".into())),
    };
    let (parts, incoming) = resp.into_parts();
    let mut out = Response::new(Body::new(incoming));
    *out.status_mut() = parts.status;
    for (name, value) in parts.headers.iter().filter(|(n, _)| forwarded(n) || *n == header::CONTENT_LENGTH) {
        out.headers_mut().append(name, value.clone());
    }
    Ok(out)
}

/// An I/O error as Go's net package prints it (`connection refused`), which is what clients
/// of kube-apiserver see in the Status message.
fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}
