//! Zero-copy relaying on Linux: bytes move socket → pipe → socket with `splice(2)`, so the
//! proxy never copies payload through user space (kube-proxy forwards in the kernel; this keeps
//! the userspace hop cheap). Each direction has its own pipe.
//!
//! Readiness: a `splice` into an empty pipe that returns EAGAIN means the socket has nothing to
//! read, so only then is the socket's read readiness cleared (a pipe that is merely full must
//! not clear it, or data already queued would never be announced again). Out of the pipe, EAGAIN
//! always means the destination socket's send buffer is full.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes asked for per splice call.
const CHUNK: usize = 1 << 20;
/// Pipe capacity asked for (the kernel may grant less).
const PIPE_SIZE: libc::c_int = 1 << 20;

/// A non-blocking pipe.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let pipe = unsafe { Pipe { read: OwnedFd::from_raw_fd(fds[0]), write: OwnedFd::from_raw_fd(fds[1]) } };
        // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; failure only leaves the default size.
        unsafe { libc::fcntl(pipe.write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        Ok(pipe)
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open for the duration of the call; null offsets are allowed
    // for pipes and sockets.
    let n = unsafe { libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, flags) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

fn shutdown_write(s: &TcpStream) {
    // SAFETY: shutdown(2) on a socket descriptor that `s` keeps open.
    unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_WR) };
}

/// Moves bytes from `from` to `to` until `from` reaches end of stream, then shuts down the
/// write side of `to`.
async fn one_way(from: &TcpStream, to: &TcpStream, pipe: Pipe) -> io::Result<u64> {
    let (from_fd, to_fd) = (from.as_raw_fd(), to.as_raw_fd());
    let (pipe_r, pipe_w) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
    let mut in_pipe = 0usize;
    let mut total = 0u64;
    let mut eof = false;
    loop {
        if !eof {
            let filled = if in_pipe == 0 {
                from.try_io(Interest::READABLE, || splice(from_fd, pipe_w, CHUNK))
            } else {
                splice(from_fd, pipe_w, CHUNK)
            };
            match filled {
                Ok(0) => eof = true,
                Ok(n) => in_pipe += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if in_pipe == 0 {
                        from.readable().await?;
                        continue;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if in_pipe > 0 {
            match to.try_io(Interest::WRITABLE, || splice(pipe_r, to_fd, in_pipe)) {
                Ok(n) => {
                    in_pipe -= n;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => to.writable().await?,
                Err(e) => return Err(e),
            }
        } else if eof {
            shutdown_write(to);
            return Ok(total);
        }
    }
}

/// A pipe for each direction, or an error (e.g. out of descriptors) to fall back to copying.
pub fn pipes() -> io::Result<(Pipe, Pipe)> {
    Ok((Pipe::new()?, Pipe::new()?))
}

/// Relays both directions until both ended (or either failed).
pub async fn relay(a: &TcpStream, b: &TcpStream, pipes: (Pipe, Pipe)) -> io::Result<(u64, u64)> {
    tokio::try_join!(one_way(a, b, pipes.0), one_way(b, a, pipes.1))
}
