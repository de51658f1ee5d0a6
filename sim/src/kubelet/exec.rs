//! `kubectl exec` and `kubectl attach` on the embedded kubelets ([`ContainerStreams`]).
//!
//! exec runs the command as a host process in the container's environment: the variables the
//! container's process got (its `env`, `POD_IP`, Service links, ...), its working directory,
//! its own process group (killed when the session ends), optionally under a pseudo-terminal
//! (`-t`, resized on the client's resize messages). A container that is not a running process
//! cannot exec: a virtual container (its image is not in the image map) or one that is not
//! running gets an InternalError, as kube-apiserver relays the kubelet's failure.
//!
//! attach streams the output of the container's main process from the moment of attaching
//! (stdout and stderr as its log has them, merged); container processes run with stdin closed,
//! so attach carries no input.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::NodeHandle;
use super::logs::LogStore;
use super::worker::Msg;
use crate::api::http::stream::{ContainerStreams, Session, StreamOptions};
use crate::api::http::{LogQuery, LogSource};
use crate::api::status::{ApiError, ApiResult};

/// Where a command run in a running container runs.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The container process's environment.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub cwd: PathBuf,
}

/// Why a container cannot run commands.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// Not running (waiting, terminated) or no such container.
    NotRunning,
    /// Running, but virtual: no process.
    Virtual { image: String },
}

/// The error kube-apiserver writes to the error channel when the kubelet could not start the
/// stream (`apierrors.NewInternalError`, as `util/proxy/streamtranslator.go`).
fn internal(message: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("Internal error occurred: {message}"))
}

/// exec and attach for every node of the cluster.
#[derive(Clone)]
pub(crate) struct Streams {
    pub nodes: Vec<NodeHandle>,
    pub logs: Arc<LogStore>,
}

impl Streams {
    async fn target(&self, pod: &Value, container: &str) -> ApiResult<Target> {
        let not_found = || internal(format!("unable to upgrade connection: container not found (\"{container}\")"));
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let handle = self
            .nodes
            .iter()
            .find(|n| n.name() == node)
            .ok_or_else(|| internal(format!("unable to upgrade connection: no kubelet runs on node {node:?}")))?;
        let tx = handle.ctx.controls.lock().unwrap_or_else(|p| p.into_inner()).get(uid).cloned();
        let tx = tx.ok_or_else(not_found)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::ExecTarget { container: container.to_string(), reply }).map_err(|_| not_found())?;
        match rx.await.map_err(|_| not_found())? {
            Ok(t) => Ok(t),
            Err(Refusal::NotRunning) => Err(not_found()),
            Err(Refusal::Virtual { image }) => Err(internal(format!(
                "error executing command in container: container \"{container}\" is virtual (image \"{image}\" \
                 is not in the image map): it has no process to run commands in or attach to"
            ))),
        }
    }
}

impl ContainerStreams for Streams {
    fn exec(
        &self,
        pod: Arc<Value>,
        container: String,
        command: Vec<String>,
        opts: StreamOptions,
    ) -> BoxFuture<'static, ApiResult<Session>> {
        let this = self.clone();
        Box::pin(async move {
            let target = this.target(&pod, &container).await?;
            spawn(&target, &command, opts)
        })
    }

    fn attach(
        &self,
        pod: Arc<Value>,
        container: String,
        opts: StreamOptions,
    ) -> BoxFuture<'static, ApiResult<Session>> {
        let this = self.clone();
        Box::pin(async move {
            this.target(&pod, &container).await?;
            let query = LogQuery { container: Some(container), follow: true, previous: false, tail_lines: Some(0) };
            let log = this.logs.logs(&pod, &query)?;
            let (tx, rx) = mpsc::channel(64);
            let (exit_tx, exit) = oneshot::channel();
            let forward = tokio::spawn(async move {
                if let Some(mut lines) = log.follow {
                    while let Some(line) = lines.recv().await {
                        if tx.send(Bytes::from(line)).await.is_err() {
                            break;
                        }
                    }
                }
                drop(tx);
                let _ = exit_tx.send(Ok(0));
            });
            let (stdout, stderr) = if opts.stdout || !opts.stderr { (Some(rx), None) } else { (None, Some(rx)) };
            Ok(Session { stdin: None, stdout, stderr, resize: None, exit, guard: Box::new(AbortOnDrop(forward)) })
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// SIGKILLs the command's process group when the session ends before the command did.
struct KillGroup {
    pid: i32,
    done: Arc<AtomicBool>,
}

impl Drop for KillGroup {
    fn drop(&mut self) {
        if !self.done.load(Ordering::SeqCst) {
            kill_group(self.pid);
        }
    }
}

fn kill_group(pid: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses a group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Reads `r` into a channel of chunks until EOF (or an error: a pty master reports the end of
/// its terminal as EIO).
fn pump_output(mut r: impl AsyncRead + Unpin + Send + 'static) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Writes a channel of chunks to `w`; dropping the sender closes `w` (EOF for the command).
fn pump_input(mut w: impl AsyncWrite + Unpin + Send + 'static) -> mpsc::Sender<Bytes> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
    });
    tx
}

fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the given ints; name, termios and winsize
    // may be null.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded, so both are open descriptors this function now owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) })
}

fn set_window_size(master: &OwnedFd, width: u16, height: u16) {
    let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call.
    unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

fn async_file(fd: OwnedFd) -> tokio::fs::File {
    tokio::fs::File::from_std(std::fs::File::from(fd))
}

/// Starts `command` in the container's environment.
fn spawn(target: &Target, command: &[String], opts: StreamOptions) -> ApiResult<Session> {
    let Some((program, args)) = command.split_first() else {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env_clear().envs(target.env.iter().map(|(k, v)| (k, v))).current_dir(&target.cwd);
    let pty = if opts.tty { Some(open_pty().map_err(|e| internal(format!("opening a terminal: {e}")))?) } else { None };
    let io = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    match &pty {
        Some((_, slave)) => {
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| internal(format!("opening a terminal: {e}")));
            cmd.stdin(Stdio::from(dup(slave)?)).stdout(Stdio::from(dup(slave)?)).stderr(Stdio::from(dup(slave)?));
        }
        None => {
            cmd.stdin(io(opts.stdin)).stdout(io(opts.stdout)).stderr(io(opts.stderr)).process_group(0);
        }
    }
    let tty = opts.tty;
    // SAFETY: only async-signal-safe calls (setsid, ioctl, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if tty {
                // A session of its own whose controlling terminal is the pty (its stdin).
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "executable file not found in $PATH".to_string()
        } else {
            e.to_string()
        };
        internal(format!("error executing command in container: failed to exec in container: exec: {program:?}: {why}"))
    })?;
    drop(cmd);
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let (stdin, stdout, stderr, resize) = match pty {
        Some((master, slave)) => {
            drop(slave);
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| internal(format!("opening a terminal: {e}")));
            let reader = async_file(dup(&master)?);
            let mut writer = async_file(dup(&master)?);
            let (resize_tx, mut resize_rx) = mpsc::channel::<(u16, u16)>(8);
            let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(64);
            // One task for both, resizes first: a resize sent before some input takes effect
            // before the command reads that input.
            tokio::spawn(async move {
                let (mut input_open, mut resize_open) = (true, true);
                while input_open || resize_open {
                    tokio::select! {
                        biased;
                        size = resize_rx.recv(), if resize_open => match size {
                            Some((w, h)) => set_window_size(&master, w, h),
                            None => resize_open = false,
                        },
                        b = stdin_rx.recv(), if input_open => match b {
                            Some(b) => {
                                if writer.write_all(&b).await.is_err() || writer.flush().await.is_err() {
                                    input_open = false;
                                }
                            }
                            None => input_open = false,
                        },
                    }
                }
            });
            (opts.stdin.then_some(stdin_tx), Some(pump_output(reader)), None, Some(resize_tx))
        }
        None => (
            child.stdin.take().map(pump_input),
            child.stdout.take().map(pump_output),
            child.stderr.take().map(pump_output),
            None,
        ),
    };
    let done = Arc::new(AtomicBool::new(false));
    let (exit_tx, exit) = oneshot::channel();
    let finished = done.clone();
    tokio::spawn(async move {
        let outcome = match child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9)))
            }
            Err(e) => Err(internal(format!("waiting for the command: {e}"))),
        };
        finished.store(true, Ordering::SeqCst);
        // Whatever it left running would hold its output open.
        kill_group(pid);
        let _ = exit_tx.send(outcome);
    });
    Ok(Session { stdin, stdout, stderr, resize, exit, guard: Box::new(KillGroup { pid, done }) })
}
