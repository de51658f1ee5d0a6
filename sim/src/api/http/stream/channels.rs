//! The channel protocol of exec and attach (`v4.channel.k8s.io`, `v5.channel.k8s.io`): every
//! binary message starts with its channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error,
//! 4 resize (`{"Width":w,"Height":h}`) — and in v5 a message `[255, ch]` closes channel `ch`
//! (the client's end of stdin). The outcome is one `Status` on the error channel, without kind
//! and apiVersion, after which the server closes the connection. am
//! `util/remotecommand/constants.go`, as `util/proxy/streamtranslator.go`.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Session, Socket, StreamOptions};
use crate::api::status::{ApiError, ApiResult};

/// The channel protocol with close signals.
pub const V5: &str = "v5.channel.k8s.io";
/// The channel protocol without close signals.
pub const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// A message on channel `ch`.
pub fn frame(ch: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(ch);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// The error-channel Status of an outcome (streamtranslator.go: `Success`, a
/// `NonZeroExitCode` failure with the code as an `ExitCode` cause, or the error's Status).
pub fn outcome_status(outcome: &ApiResult<i32>) -> Value {
    match outcome {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: command terminated with exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => {
            let mut s = e.to_status();
            if let Some(o) = s.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            s
        }
    }
}

/// Runs an exec/attach session until the command ends or the client goes away.
pub async fn serve(mut socket: Socket, v5: bool, opts: StreamOptions, started: ApiResult<Session>) {
    let mut session = match started {
        Ok(s) => s,
        Err(e) => return finish(&mut socket, &Err(e)).await,
    };
    // wsstream announces the connection with an empty frame on stdout.
    if opts.stdout && socket.send(frame(STDOUT, &[])).await.is_err() {
        return;
    }
    let mut stdout = session.stdout.take();
    let mut stderr = session.stderr.take();
    let mut stdin = session.stdin.take();
    let resize = session.resize.take();
    let outcome = loop {
        let outputs_done = stdout.is_none() && stderr.is_none();
        tokio::select! {
            msg = socket.next() => match msg {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    STDIN => {
                        if let Some(tx) = &stdin
                            && tx.send(data.slice(1..)).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    RESIZE => {
                        if let (Some(tx), Ok(size)) = (&resize, serde_json::from_slice::<Value>(&data[1..])) {
                            let dim = |k: &str| size[k].as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
                            let _ = tx.try_send((dim("Width"), dim("Height")));
                        }
                    }
                    CLOSE if v5 && data.get(1) == Some(&STDIN) => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            out = recv(&mut stdout) => match out {
                Some(b) => { if socket.send(frame(STDOUT, &b)).await.is_err() { return; } }
                None => stdout = None,
            },
            out = recv(&mut stderr) => match out {
                Some(b) => { if socket.send(frame(STDERR, &b)).await.is_err() { return; } }
                None => stderr = None,
            },
            exit = &mut session.exit, if outputs_done => {
                break exit.unwrap_or_else(|_| Err(ApiError::internal("Internal error occurred: the command's runner went away")));
            }
        }
    };
    finish(&mut socket, &outcome).await;
}

/// A close with status 1000: client-go (gorilla) reads only that as the end of the streams;
/// a close without a status is an error to it.
pub fn normal_close() -> CloseFrame {
    CloseFrame { code: CloseCode::Normal, reason: "".into() }
}

/// The next chunk of an output; pending forever once the output is gone (`None`).
pub(super) async fn recv(rx: &mut Option<tokio::sync::mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn finish(socket: &mut Socket, outcome: &ApiResult<i32>) {
    let status = outcome_status(outcome).to_string();
    let _ = socket.send(frame(ERROR, status.as_bytes())).await;
    let _ = socket.close(Some(normal_close())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_the_statuses_kubectl_decodes() {
        // as util/proxy/streamtranslator.go writes them; client-go turns NonZeroExitCode into
        // an exit error with the ExitCode cause.
        assert_eq!(outcome_status(&Ok(0)).to_string(), r#"{"metadata":{},"status":"Success"}"#);
        let s = outcome_status(&Ok(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["message"], "command terminated with non-zero exit code: command terminated with exit code 3");
        assert_eq!(s["details"]["causes"], json!([{"reason": "ExitCode", "message": "3"}]));
        let e = outcome_status(&Err(ApiError::internal("Internal error occurred: x")));
        assert_eq!((e["code"].as_u64(), e["reason"].as_str(), e.get("kind")), (Some(500), Some("InternalError"), None));
    }

    #[test]
    fn frames_carry_the_channel_first() {
        assert_eq!(frame(STDERR, b"x"), Message::Binary(Bytes::from_static(&[2, b'x'])));
    }
}
