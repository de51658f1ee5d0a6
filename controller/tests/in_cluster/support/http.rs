//! A minimal HTTP/1.1 client for talking to pods and the Service proxy (one request per
//! connection, the whole response read).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connect and answer limit of one request.
pub const TIMEOUT: Duration = Duration::from_secs(2);

async fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await??;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    // Read to the end: a server may drop a request whose client already went away.
    let mut buf = Vec::new();
    tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// `GET path`: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path).await
}

/// `POST path` (no body), reading whatever comes back until the connection closes.
pub async fn post(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "POST", path).await
}
