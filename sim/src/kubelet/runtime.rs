//! The container runtime: containers are host processes.
//!
//! Every container process is the leader of its own process group (signals go to the whole
//! group, as a container runtime signals a whole cgroup) and is spawned with
//! `prctl(PR_SET_PDEATHSIG, SIGKILL)`. That signal fires when the *thread* that forked the
//! process ends, so all processes are forked by one dedicated spawner thread that lives as long
//! as the [`Runtime`]: when the test process dies (even by SIGKILL) or the runtime is dropped,
//! the kernel kills every container. Processes a container forks itself are not covered by
//! that signal; they are killed with their group when the container's main process exits.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{oneshot, watch};

use super::logs::ContainerLog;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// Executable (a bare name is looked up in the `PATH` of `env`).
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code as a container runtime reports it: the code, or 128 + signal.
    pub code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
}

/// A running (or finished) container process.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Process id (= process group id).
    pub pid: u32,
    /// `Some` once the process has exited and its output is drained.
    pub exit: watch::Receiver<Option<Exit>>,
}

impl Proc {
    /// Sends `signal` to the process group (no-op once it exited).
    pub fn signal(&self, signal: i32) {
        if self.exit.borrow().is_none() {
            signal_group(self.pid, signal);
        }
    }

    /// Waits for the exit.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or(Exit { code: 137, signal: Some(libc::SIGKILL) }),
            // The waiter thread is gone without a verdict: only on runtime teardown.
            Err(_) => Exit { code: 137, signal: Some(libc::SIGKILL) },
        }
    }

    /// SIGTERM, up to `grace` for the exit, then SIGKILL; returns the exit.
    pub async fn stop(&self, grace: Duration) -> Exit {
        if grace.is_zero() {
            self.signal(libc::SIGKILL);
        } else {
            self.signal(libc::SIGTERM);
            if let Ok(exit) = tokio::time::timeout(grace, self.wait()).await {
                return exit;
            }
            self.signal(libc::SIGKILL);
        }
        self.wait().await
    }
}

fn signal_group(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses a group.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Processes not yet reaped, by pid.
type LiveMap = Arc<Mutex<HashMap<u32, watch::Receiver<Option<Exit>>>>>;

struct SpawnRequest {
    spec: ProcSpec,
    log: Arc<ContainerLog>,
    reply: oneshot::Sender<anyhow::Result<Proc>>,
}

/// Spawns and tracks container processes.
pub struct Runtime {
    requests: Mutex<Option<std_mpsc::Sender<SpawnRequest>>>,
    live: LiveMap,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("live", &self.live_pids()).finish()
    }
}

impl Runtime {
    /// Starts the spawner thread.
    pub fn new() -> anyhow::Result<Self> {
        let (tx, rx) = std_mpsc::channel::<SpawnRequest>();
        let live: LiveMap = Arc::default();
        let live2 = live.clone();
        std::thread::Builder::new()
            .name("hadrill-kubelet-spawner".into())
            .spawn(move || {
                while let Ok(req) = rx.recv() {
                    let result = spawn(&req.spec, req.log, &live2);
                    let _ = req.reply.send(result);
                }
            })
            .context("starting the container spawner thread")?;
        Ok(Self { requests: Mutex::new(Some(tx)), live })
    }

    fn live(&self) -> MutexGuard<'_, HashMap<u32, watch::Receiver<Option<Exit>>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a process whose stdout and stderr lines go to `log`.
    pub async fn start(&self, spec: ProcSpec, log: Arc<ContainerLog>) -> anyhow::Result<Proc> {
        let (reply, rx) = oneshot::channel();
        {
            let guard = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.as_ref().context("the container runtime is shut down")?;
            tx.send(SpawnRequest { spec, log, reply }).ok().context("the container spawner thread is gone")?;
        }
        rx.await.context("the container spawner thread dropped the request")?
    }

    /// Pids of processes that have not exited yet.
    pub fn live_pids(&self) -> Vec<u32> {
        self.live().keys().copied().collect()
    }

    /// SIGKILLs every process group and stops spawning (synchronous; for `Drop`).
    pub fn kill_all(&self) {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).take();
        for pid in self.live_pids() {
            signal_group(pid, libc::SIGKILL);
        }
    }

    /// [`Runtime::kill_all`], then waits up to `timeout` until every process was reaped.
    pub async fn shutdown(&self, timeout: Duration) {
        self.kill_all();
        let waits: Vec<_> = self.live().values().cloned().collect();
        let all = futures::future::join_all(waits.into_iter().map(|mut rx| async move {
            let _ = rx.wait_for(Option::is_some).await;
        }));
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(pids = ?self.live_pids(), "container processes still running after shutdown");
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn spawn(spec: &ProcSpec, log: Arc<ContainerLog>, live: &LiveMap) -> anyhow::Result<Proc> {
    let parent = std::process::id();
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {}", spec.program.display()))?;
    let pid = child.id();
    let (tx, rx) = watch::channel(None);
    live.lock().unwrap_or_else(|p| p.into_inner()).insert(pid, rx.clone());
    let (done_tx, done_rx) = std_mpsc::channel::<()>();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        readers += 1;
        read_lines(out, log.clone(), done_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        readers += 1;
        read_lines(err, log.clone(), done_tx.clone());
    }
    drop(done_tx);
    let live = live.clone();
    let waiter = std::thread::Builder::new().name(format!("hadrill-wait-{pid}")).spawn(move || {
        let status = child.wait();
        // The container is gone: so is everything it left in its group.
        signal_group(pid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..readers {
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        log.close();
        let exit = match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => Exit { code, signal: None },
                (None, Some(sig)) => Exit { code: 128 + sig, signal: Some(sig) },
                (None, None) => Exit { code: 255, signal: None },
            },
            Err(e) => {
                tracing::warn!(pid, error = %e, "waiting for a container process failed");
                Exit { code: 255, signal: None }
            }
        };
        live.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
        let _ = tx.send(Some(exit));
    });
    if let Err(e) = waiter {
        signal_group(pid, libc::SIGKILL);
        return Err(anyhow::Error::from(e).context("starting the process waiter thread"));
    }
    Ok(Proc { pid, exit: rx })
}

fn read_lines(stream: impl Read + Send + 'static, log: Arc<ContainerLog>, done: std_mpsc::Sender<()>) {
    let spawned = std::thread::Builder::new().name("hadrill-log".into()).spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => log.push(String::from_utf8_lossy(&buf).into_owned()),
            }
        }
        let _ = done.send(());
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start a log reader thread; output is lost");
    }
}

/// Whether process `pid` still exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}
