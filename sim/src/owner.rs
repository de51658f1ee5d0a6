//! The process that owns a host-level effect (an iptables chain, a run ledger of an embedded
//! cluster), told apart from a later process that reuses its pid.
//!
//! A pid alone does not name a process: once the owner is gone the kernel hands the number to
//! the next process, and a sweep that only checked `/proc/<pid>` would take that stranger for
//! the owner and leave the leftover in place. The start time (field 22 of `/proc/<pid>/stat`,
//! clock ticks since boot) differs between the two, so an owner is the pair.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A process: its pid and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks after boot (`/proc/<pid>/stat` field 22); 0 when unknown,
    /// and then only the pid is compared.
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let pid = std::process::id();
            Owner { pid, start: stat(pid).map_or(0, |s| s.start) }
        })
    }

    /// The process `pid` is now, if one runs (a zombie does not count).
    pub fn of(pid: u32) -> Option<Owner> {
        stat(pid).filter(|s| s.running).map(|s| Owner { pid, start: s.start })
    }

    /// Whether this process still runs: a process with its pid runs and started when it did.
    pub fn is_alive(&self) -> bool {
        Owner::of(self.pid).is_some_and(|now| self.start == 0 || now.start == self.start)
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} (started at tick {})", self.pid, self.start)
    }
}

struct Stat {
    start: u64,
    /// Not a zombie (`Z`) or dead (`X`): a killed owner its parent has not reaped yet is gone.
    running: bool,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The fields after the command name (which may hold spaces and parentheses) start with the
/// state (field 3); the start time is field 22.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat { start, running: state != "Z" && state != "X" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_even_with_spaces_in_the_command() {
        // proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime ...
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.start, s.running), (987_654, true));
        let zombie = line.replace(") S ", ") Z ");
        assert!(!parse_stat(&zombie).unwrap().running);
        assert!(parse_stat("4242 (x) S 1").is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_its_owner() {
        let me = Owner::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start > 0, "{me}");
        assert!(me.is_alive());
        // The same pid with another start time: a later process that got the number.
        assert!(!Owner { start: me.start + 1, ..me }.is_alive());
        // A pid above the kernel's maximum never runs.
        assert!(!Owner { pid: u32::MAX, start: 0 }.is_alive());
    }

    #[test]
    fn a_child_that_exited_is_gone_before_and_after_it_is_reaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let owner = Owner::of(child.id());
        // It may already be a zombie when read; either way it is gone once it exited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Owner::of(child.id()).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(Owner::of(child.id()).is_none(), "an exited, unreaped child counts as gone");
        child.wait().unwrap();
        assert!(owner.is_none_or(|o| !o.is_alive()));
    }
}
