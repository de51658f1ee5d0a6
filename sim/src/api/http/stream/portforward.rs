//! Port-forward sessions: TCP connections to the pod's address (`status.podIP`), carried
//!
//! - as kubectl does it (`SPDY/3.1+portforward.k8s.io`): a SPDY/3.1 session inside WebSocket
//!   binary messages; per connection the client opens an error stream, then a data stream, both
//!   with the headers `streamType`, `port` and `requestID` (client-go `tools/portforward/`). The
//!   server replies to each stream, connects, copies data both ways, and on the pod's end of the
//!   connection closes the data stream, then the error stream — after writing the failure to it,
//!   if connecting failed (the kubelet's `portforward/httpstream.go`);
//! - the same as plain SPDY on the upgraded connection (`Upgrade: SPDY/3.1`,
//!   `X-Stream-Protocol-Version: portforward.k8s.io`), kubectl's fallback;
//! - as the kubelet serves WebSocket clients (`v4.channel.k8s.io`, kube-rs): one connection per
//!   `ports=` entry, port *i* on channels 2*i* (data) and 2*i*+1 (error), each channel's first
//!   message the port number, little-endian (`portforward/websocket.go`).

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::Socket;
use super::channels::{frame, normal_close};
use super::spdy::{Codec, FLAG_FIN, Frame};

/// The subprotocol of SPDY tunnelled over WebSocket.
pub const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

const CHUNK: usize = 32 * 1024;

/// Where and for whom connections are made.
#[derive(Debug, Clone)]
struct Target {
    ip: Option<IpAddr>,
    pod: String,
    uid: String,
}

impl Target {
    fn of(pod: &Value) -> Self {
        Self {
            ip: pod["status"]["podIP"].as_str().and_then(|s| s.parse().ok()),
            pod: pod["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            uid: pod["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Connects to `port` of the pod, or the kubelet's error text.
    async fn connect(&self, port: u16) -> Result<TcpStream, String> {
        let fail = |why: String| format!("error forwarding port {port} to pod {}, uid {}: {why}", self.pod, self.uid);
        let ip = self.ip.ok_or_else(|| fail("the pod has no IP address".into()))?;
        TcpStream::connect((ip, port)).await.map_err(|e| {
            // Worded as Go's net package words it, as the kubelet's message carries it.
            let why = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                _ => e.to_string(),
            };
            fail(format!("dial tcp {ip}:{port}: {why}"))
        })
    }
}

/// Serves a port-forward connection until the client or every forwarded connection ends.
pub async fn serve(socket: Socket, pod: &Value, spdy: bool, ports: &[String]) {
    let target = Target::of(pod);
    if spdy {
        if let Err(e) = spdy_over_websocket(socket, target).await {
            tracing::debug!(error = %e, "port-forward SPDY session ended");
        }
    } else {
        channel_session(socket, target, ports).await;
    }
}

/// Copies one connection: client bytes from `from_client` (`None` = the client's FIN) to the
/// pod, pod bytes to `to_client` (`None` once the pod's side ended).
async fn pump(
    tcp: TcpStream,
    mut from_client: mpsc::Receiver<Option<Bytes>>,
    to_client: impl Fn(Option<Bytes>) -> futures::future::BoxFuture<'static, bool>,
) {
    let (mut r, mut w) = tcp.into_split();
    let up = async move {
        while let Some(Some(b)) = from_client.recv().await {
            if w.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !to_client(Some(Bytes::copy_from_slice(&buf[..n]))).await {
                        return;
                    }
                }
            }
        }
        to_client(None).await;
    };
    tokio::join!(up, down);
}

#[derive(Debug, Default)]
struct Pair {
    port: Option<u16>,
    error: Option<u32>,
    data: Option<u32>,
}

/// The SPDY byte stream inside WebSocket binary messages.
async fn spdy_over_websocket(socket: Socket, target: Target) -> Result<(), String> {
    let (sink, stream) = socket.split();
    let incoming = stream.take_while(|m| futures::future::ready(matches!(m, Ok(m) if !m.is_close()))).filter_map(|m| {
        futures::future::ready(match m {
            Ok(Message::Binary(b)) => Some(b),
            _ => None,
        })
    });
    let outgoing = sink
        .with(|b: Bytes| futures::future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(Message::Binary(b))));
    spdy_session(Box::pin(incoming), Box::pin(outgoing.sink_map_err(|e| e.to_string())), target).await
}

/// Plain SPDY on the upgraded connection (`Upgrade: SPDY/3.1`, kubectl's fallback).
pub async fn serve_plain_spdy(io: TokioIo<hyper::upgrade::Upgraded>, pod: &Value) {
    let (incoming, outgoing) = super::raw_transport(io);
    if let Err(e) = spdy_session(incoming, outgoing, Target::of(pod)).await {
        tracing::debug!(error = %e, "port-forward SPDY session ended");
    }
}

async fn spdy_session(
    mut incoming: super::ByteStream<'_>,
    mut sink: super::ByteSink<'_>,
    target: Target,
) -> Result<(), String> {
    let mut codec = Codec::new();
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut to_pod: HashMap<u32, mpsc::Sender<Option<Bytes>>> = HashMap::new();
    let mut conns = JoinSet::new();
    loop {
        let mut replies = Vec::new();
        tokio::select! {
            msg = incoming.next() => match msg {
                Some(b) => {
                    codec.feed(&b);
                    while let Some(f) = codec.next_frame().map_err(|e| e.to_string())? {
                        match f {
                            Frame::SynStream { stream_id, headers, .. } => {
                                replies.push(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() });
                                let kind = Frame::header(&headers, "streamtype").unwrap_or_default().to_string();
                                let port = Frame::header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                                // Clients before requestID paired the error stream with the data
                                // stream two ids later (the kubelet's httpstream.go).
                                let request = match Frame::header(&headers, "requestid") {
                                    Some(r) => r.to_string(),
                                    None if kind == "error" => (stream_id + 2).to_string(),
                                    None => stream_id.to_string(),
                                };
                                let pair = pairs.entry(request.clone()).or_default();
                                pair.port = pair.port.or(port);
                                match kind.as_str() {
                                    "error" => pair.error = Some(stream_id),
                                    "data" => pair.data = Some(stream_id),
                                    _ => {
                                        replies.push(Frame::RstStream { stream_id, status: 1 });
                                        continue;
                                    }
                                }
                                if let Pair { port, error: Some(error), data: Some(data) } = *pair {
                                    pairs.remove(&request);
                                    let (tx, rx) = mpsc::channel(64);
                                    to_pod.insert(data, tx);
                                    conns.spawn(spdy_connection(target.clone(), port, error, data, rx, out_tx.clone()));
                                }
                            }
                            Frame::Data { stream_id, flags, data } => {
                                if let Some(tx) = to_pod.get(&stream_id) {
                                    if !data.is_empty() && tx.send(Some(data)).await.is_err() {
                                        to_pod.remove(&stream_id);
                                    }
                                    if flags & FLAG_FIN != 0
                                        && let Some(tx) = to_pod.remove(&stream_id)
                                    {
                                        let _ = tx.send(None).await;
                                    }
                                }
                            }
                            Frame::RstStream { stream_id, .. } => {
                                to_pod.remove(&stream_id);
                            }
                            Frame::Ping { id } => replies.push(Frame::Ping { id }),
                            Frame::GoAway { .. } => return Ok(()),
                            _ => {}
                        }
                    }
                }
                None => return Ok(()),
            },
            Some(f) = out_rx.recv() => replies.push(f),
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
        for f in replies {
            let bytes = codec.encode(&f).map_err(|e| e.to_string())?;
            sink.send(Bytes::from(bytes)).await?;
        }
    }
}

async fn spdy_connection(
    target: Target,
    port: Option<u16>,
    error: u32,
    data: u32,
    from_client: mpsc::Receiver<Option<Bytes>>,
    out: mpsc::Sender<Frame>,
) {
    let fin = |stream_id| Frame::Data { stream_id, flags: FLAG_FIN, data: Bytes::new() };
    let tcp = match port {
        None => Err("unable to parse the port header: a port is required".to_string()),
        Some(p) => target.connect(p).await,
    };
    match tcp {
        Err(msg) => {
            let _ = out.send(Frame::Data { stream_id: error, flags: 0, data: Bytes::from(msg) }).await;
            let _ = out.send(fin(data)).await;
            let _ = out.send(fin(error)).await;
        }
        Ok(tcp) => {
            let to_client = move |b: Option<Bytes>| -> futures::future::BoxFuture<'static, bool> {
                let out = out.clone();
                Box::pin(async move {
                    match b {
                        Some(b) => out.send(Frame::Data { stream_id: data, flags: 0, data: b }).await.is_ok(),
                        None => out.send(fin(data)).await.is_ok() && out.send(fin(error)).await.is_ok(),
                    }
                })
            };
            pump(tcp, from_client, to_client).await;
        }
    }
}

async fn channel_session(socket: Socket, target: Target, ports: &[String]) {
    let ports: Vec<u16> = ports.iter().filter_map(|p| p.parse().ok()).collect();
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut to_pod = Vec::new();
    let mut conns = JoinSet::new();
    // v4 cannot close one channel: the connection closes once every pod side has ended, as
    // the kubelet closes it when all its port forwards are done.
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(ports.len()));
    for (i, port) in ports.iter().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        for ch in [data_ch, error_ch] {
            if sink.send(frame(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
        let (tx, rx) = mpsc::channel(64);
        to_pod.push(Some(tx));
        let (target, out, port, open) = (target.clone(), out_tx.clone(), *port, open.clone());
        conns.spawn(async move {
            let ended = move |out: mpsc::Sender<Message>| async move {
                if open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    let _ = out.send(Message::Close(Some(normal_close()))).await;
                }
            };
            match target.connect(port).await {
                Err(msg) => {
                    let _ = out.send(frame(error_ch, msg.as_bytes())).await;
                    ended(out).await;
                }
                Ok(tcp) => {
                    let to_client = move |b: Option<Bytes>| -> futures::future::BoxFuture<'static, bool> {
                        let (out, ended) = (out.clone(), ended.clone());
                        Box::pin(async move {
                            match b {
                                Some(b) => out.send(frame(data_ch, &b)).await.is_ok(),
                                None => {
                                    ended(out).await;
                                    true
                                }
                            }
                        })
                    };
                    pump(tcp, rx, to_client).await;
                }
            }
        });
    }
    drop(out_tx);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) if b.len() > 1 && b[0] % 2 == 0 => {
                    let i = usize::from(b[0] / 2);
                    if let Some(Some(tx)) = to_pod.get(i)
                        && tx.send(Some(b.slice(1..))).await.is_err()
                    {
                        to_pod[i] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            m = out_rx.recv() => match m {
                Some(m) => { if sink.send(m).await.is_err() { return; } }
                None => break,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let _ = sink.send(Message::Close(Some(normal_close()))).await;
}
