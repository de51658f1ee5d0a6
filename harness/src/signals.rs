//! SIGINT (Ctrl-C) and SIGTERM for a whole process: the first one asks what runs to stop and
//! clean up (every fault removed, pods stopped, reports written); a second one exits at once
//! with the signal's exit status, leaving what is not cleaned up yet to `hadrill clean`.
//!
//! [`listen`] installs the handlers once per process (from inside a tokio runtime). From then
//! on neither signal kills the process by itself: callers race their work against
//! [`until_signalled`] and end with [`Interrupted`], whose [`Signal::exit_code`] is what a shell
//! expects of a process the signal ended (130, 143).

use std::future::Future;
use std::sync::{Mutex, OnceLock};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM: `kill`, a CI job's timeout, a container runtime's stop.
    Terminate,
}

impl Signal {
    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number, the status a shell reports for a process it ended.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of work a signal stopped; the binary exits with [`Signal::exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {signal}")]
pub struct Interrupted {
    /// The first signal.
    pub signal: Signal,
}

/// The exit status for `error`: the signal's when a signal stopped the work, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error.chain().find_map(|e| e.downcast_ref::<Interrupted>()).map_or(1, |i| i.signal.exit_code())
}

/// The first signal received, once there is one.
static FIRST: OnceLock<watch::Sender<Option<Signal>>> = OnceLock::new();
/// The task that receives the signals; it ends with its runtime (tests run several).
static LISTENER: Mutex<Option<tokio::task::JoinHandle<()>>> = Mutex::new(None);

/// Installs the SIGINT and SIGTERM handlers (once per runtime; later calls do nothing). Must
/// be called inside a tokio runtime.
pub fn listen() -> anyhow::Result<()> {
    let mut listener = LISTENER.lock().unwrap_or_else(|p| p.into_inner());
    if listener.as_ref().is_some_and(|l| !l.is_finished()) {
        return Ok(());
    }
    let mut int = signal(SignalKind::interrupt()).map_err(|e| anyhow::anyhow!("listening for SIGINT: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| anyhow::anyhow!("listening for SIGTERM: {e}"))?;
    let first = FIRST.get_or_init(|| watch::channel(None).0);
    *listener = Some(tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                Some(()) = int.recv() => Signal::Interrupt,
                Some(()) = term.recv() => Signal::Terminate,
                else => return,
            };
            if first.borrow().is_some() {
                eprintln!("{got} again: exiting at once; `hadrill clean` removes what is left");
                std::process::exit(i32::from(got.exit_code()));
            }
            eprintln!("{got}: stopping and cleaning up (send it again to exit at once)");
            first.send_replace(Some(got));
        }
    }));
    Ok(())
}

/// The first signal, if one came.
pub fn received() -> Option<Signal> {
    FIRST.get().and_then(|f| *f.borrow())
}

/// Resolves with the first signal (at once when it already came); never without [`listen`].
pub async fn first() -> Signal {
    let Some(sender) = FIRST.get() else { return std::future::pending().await };
    let mut rx = sender.subscribe();
    let first = rx.wait_for(Option::is_some).await.ok().and_then(|s| *s);
    match first {
        Some(signal) => signal,
        // The sender is static: it is never dropped.
        None => std::future::pending().await,
    }
}

/// Runs `work` until it finishes or a signal comes (`work` is dropped then); a signal that came
/// before stops it at once.
pub async fn until_signalled<F: Future>(work: F) -> Result<F::Output, Interrupted> {
    if let Some(signal) = received() {
        return Err(Interrupted { signal });
    }
    tokio::select! {
        biased;
        signal = first() => Err(Interrupted { signal }),
        out = work => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_signals_and_found_through_context() {
        assert_eq!((Signal::Interrupt.exit_code(), Signal::Terminate.exit_code()), (130, 143));
        let e = anyhow::Error::from(Interrupted { signal: Signal::Terminate }).context("the run");
        assert_eq!(exit_code(&e), 143);
        assert_eq!(exit_code(&anyhow::anyhow!("a failure")), 1);
        assert_eq!(e.root_cause().to_string(), "interrupted by SIGTERM");
    }
}
