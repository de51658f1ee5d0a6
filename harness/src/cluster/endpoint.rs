//! An HTTP server inside the cluster (the vehicles' results API, Jaeger's query API), reached
//! either directly (the embedded cluster's pod and Service addresses are local) or through the
//! API server's proxy subresource (`pods/NAME:PORT/proxy`, `services/NAME:PORT/proxy`), which
//! works on every cluster the harness can reach, kind included, with the client's credentials.

use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::BodyExt;

/// How long one direct request may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request through the API server's proxy may take. The API server answers 503
/// for a pod it cannot reach (killed, not running, no endpoint), and kube's client retries 503s
/// with backoff for minutes, so a call to a dead pod would only end at the deadline: it must be
/// short. What the harness reads through the proxy (the vehicles' results, Jaeger queries of
/// one scenario) is answered in milliseconds.
pub const PROXY_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where requests go.
#[derive(Clone)]
pub enum Endpoint {
    /// A base URL reachable from this process (`http://127.10.0.5:8081`).
    Direct {
        /// Base URL without a trailing `/`.
        base: String,
        /// The HTTP client.
        http: reqwest::Client,
    },
    /// Through the API server: `prefix` is the proxy path
    /// (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy`).
    Proxy {
        /// The cluster's client.
        client: kube::Client,
        /// The proxy path, without a trailing `/`.
        prefix: String,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: http::StatusCode,
    /// Body.
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body, or an error naming `what` with the status and the body's text.
    pub fn success(self, what: &str) -> anyhow::Result<bytes::Bytes> {
        if !self.status.is_success() {
            bail!("{what}: HTTP {}: {}", self.status, String::from_utf8_lossy(&self.body).trim());
        }
        Ok(self.body)
    }
}

impl Endpoint {
    /// A base URL reachable from this process.
    pub fn direct(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().no_proxy().timeout(TIMEOUT).build().context("building an HTTP client")?;
        Ok(Endpoint::Direct { base: base.trim_end_matches('/').to_string(), http })
    }

    /// Port `port` (a number or a container port's name) of pod `ns/name`, through the API
    /// server.
    pub fn pod(client: kube::Client, ns: &str, name: &str, port: &str) -> Self {
        Endpoint::Proxy { client, prefix: format!("/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy") }
    }

    /// Port `port` (a number or a port's name) of Service `ns/name`, through the API server.
    pub fn service(client: kube::Client, ns: &str, name: &str, port: &str) -> Self {
        Endpoint::Proxy { client, prefix: format!("/api/v1/namespaces/{ns}/services/{name}:{port}/proxy") }
    }

    /// Where requests go, for messages.
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Direct { base, .. } => base.clone(),
            Endpoint::Proxy { prefix, .. } => format!("API server {prefix}"),
        }
    }

    /// `GET path` with `query` pairs.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Answer> {
        self.call(http::Method::GET, path, query).await
    }

    /// `POST path` with an empty body.
    pub async fn post(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(http::Method::POST, path, &[]).await
    }

    async fn call(&self, method: http::Method, path: &str, query: &[(&str, String)]) -> anyhow::Result<Answer> {
        let what = format!("{method} {path} ({})", self.describe());
        match self {
            Endpoint::Direct { base, http } => {
                let resp = http
                    .request(method, format!("{base}{path}"))
                    .query(query)
                    .send()
                    .await
                    .with_context(|| what.clone())?;
                let status = resp.status();
                let body = resp.bytes().await.with_context(|| format!("reading {what}"))?;
                Ok(Answer { status: http::StatusCode::from_u16(status.as_u16())?, body })
            }
            Endpoint::Proxy { client, prefix } => {
                let mut uri = format!("{prefix}{path}");
                if !query.is_empty() {
                    let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
                    uri = format!("{uri}?{}", pairs.join("&"));
                }
                let req = http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(kube::client::Body::empty())
                    .with_context(|| format!("building {what}"))?;
                let resp = tokio::time::timeout(PROXY_TIMEOUT, client.send(req))
                    .await
                    .with_context(|| {
                        format!(
                            "{what}: no answer within {PROXY_TIMEOUT:?} (the API server answers 503 while it cannot \
                             reach the pod, and those are retried: is the pod running?)"
                        )
                    })?
                    .with_context(|| what.clone())?;
                let status = resp.status();
                let body = resp.into_body().collect().await.with_context(|| format!("reading {what}"))?.to_bytes();
                Ok(Answer { status, body })
            }
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("v-1"), "v-1");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
