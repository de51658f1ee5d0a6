//! exec and attach over plain SPDY (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version:
//! v4.channel.k8s.io`), kubectl's fallback when the WebSocket upgrade is refused and what
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` asks for. The client opens one SPDY stream per
//! standard stream, named by its `streamType` header (`error`, `stdin`, `stdout`, `stderr`,
//! `resize`); the server replies to each, starts copying once all it expects are open, ends
//! stdout and stderr with FIN, and writes the outcome `Status` (the same as on the WebSocket
//! error channel) to the error stream before closing it (the kubelet's
//! `cri/streaming/remotecommand/httpstream.go`, client-go `tools/remotecommand/v4.go`).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::Value;

use super::channels::{outcome_status, recv};
use super::spdy::{Codec, FLAG_FIN, Frame};
use super::{ByteSink, ByteStream, Session, StreamOptions};
use crate::api::status::{ApiError, ApiResult};

/// The stream protocol served (v5 over SPDY is v4: SPDY closes streams itself).
pub const PROTOCOL: &str = "v4.channel.k8s.io";

#[derive(Debug, Default)]
struct Ids {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl Ids {
    fn all_open(&self, opts: StreamOptions) -> bool {
        self.error.is_some()
            && (!opts.stdin || self.stdin.is_some())
            && (!opts.stdout || self.stdout.is_some())
            && (!opts.stderr || self.stderr.is_some())
            && (!opts.tty || self.resize.is_some())
    }
}

async fn wait_exit(
    exit: &mut Option<tokio::sync::oneshot::Receiver<ApiResult<i32>>>,
) -> Result<ApiResult<i32>, tokio::sync::oneshot::error::RecvError> {
    match exit {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

/// Runs an exec/attach session over plain SPDY until the command ends or the client goes away.
pub async fn serve(
    mut incoming: ByteStream<'_>,
    mut sink: ByteSink<'_>,
    opts: StreamOptions,
    started: ApiResult<Session>,
) {
    let mut codec = Codec::new();
    let mut ids = Ids::default();
    let (mut stdin, mut stdout, mut stderr, resize, mut exit, _guard) = match started {
        Ok(s) => (s.stdin, s.stdout, s.stderr, s.resize, Some(s.exit), Some(s.guard)),
        Err(e) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(Err(e));
            (None, None, None, None, Some(rx), None)
        }
    };
    let mut outcome: Option<ApiResult<i32>> = None;
    loop {
        let mut out = Vec::new();
        let ready = ids.all_open(opts);
        let outputs_done = stdout.is_none() && stderr.is_none();
        tokio::select! {
            b = incoming.next() => {
                let Some(b) = b else { return };
                codec.feed(&b);
                loop {
                    let frame = match codec.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "exec SPDY session");
                            return;
                        }
                    };
                    match frame {
                        Frame::SynStream { stream_id, headers, .. } => {
                            out.push(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() });
                            let slot = match Frame::header(&headers, "streamtype").unwrap_or_default() {
                                "error" => &mut ids.error,
                                "stdin" => &mut ids.stdin,
                                "stdout" => &mut ids.stdout,
                                "stderr" => &mut ids.stderr,
                                "resize" => &mut ids.resize,
                                _ => {
                                    out.push(Frame::RstStream { stream_id, status: 1 });
                                    continue;
                                }
                            };
                            *slot = Some(stream_id);
                        }
                        Frame::Data { stream_id, flags, data } if Some(stream_id) == ids.stdin => {
                            if !data.is_empty()
                                && let Some(tx) = &stdin
                                && tx.send(data).await.is_err()
                            {
                                stdin = None;
                            }
                            if flags & FLAG_FIN != 0 {
                                stdin = None;
                            }
                        }
                        Frame::Data { stream_id, data, .. } if Some(stream_id) == ids.resize => {
                            for size in serde_json::Deserializer::from_slice(&data).into_iter::<Value>().flatten() {
                                let dim = |k: &str| size[k].as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
                                if let Some(tx) = &resize {
                                    let _ = tx.try_send((dim("Width"), dim("Height")));
                                }
                            }
                        }
                        Frame::Ping { id } => out.push(Frame::Ping { id }),
                        Frame::GoAway { .. } => return,
                        _ => {}
                    }
                }
            }
            b = recv(&mut stdout), if ready => match (b, ids.stdout) {
                (Some(data), Some(id)) => out.push(Frame::Data { stream_id: id, flags: 0, data }),
                (_, id) => {
                    stdout = None;
                    out.extend(id.map(|stream_id| Frame::Data { stream_id, flags: FLAG_FIN, data: Bytes::new() }));
                }
            },
            b = recv(&mut stderr), if ready => match (b, ids.stderr) {
                (Some(data), Some(id)) => out.push(Frame::Data { stream_id: id, flags: 0, data }),
                (_, id) => {
                    stderr = None;
                    out.extend(id.map(|stream_id| Frame::Data { stream_id, flags: FLAG_FIN, data: Bytes::new() }));
                }
            },
            r = wait_exit(&mut exit), if ready && outputs_done => {
                exit = None;
                outcome = Some(r.unwrap_or_else(|_| Err(ApiError::internal("Internal error occurred: the command's runner went away"))));
            }
        }
        if let (Some(o), Some(error)) = (&outcome, ids.error) {
            let status = Bytes::from(outcome_status(o).to_string());
            out.push(Frame::Data { stream_id: error, flags: 0, data: status });
            out.push(Frame::Data { stream_id: error, flags: FLAG_FIN, data: Bytes::new() });
        }
        for f in out {
            let Ok(bytes) = codec.encode(&f) else { return };
            if sink.send(Bytes::from(bytes)).await.is_err() {
                return;
            }
        }
        if outcome.is_some() {
            let _ = sink.close().await;
            return;
        }
    }
}
