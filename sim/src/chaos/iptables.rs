//! The iptables backend of NetworkChaos loss and partition.
//!
//! Every pod of the embedded cluster has a loopback address, so all pod traffic leaves through
//! `lo` and passes the filter table's OUTPUT chain once. A fault is one chain of its own,
//! `HADRILL-<pid>-<8 hex>` (the pid of the process running the cluster), holding DROP rules by
//! source and destination address (with `-m statistic --mode random --probability P` for a
//! loss below 100%), and a jump to it from OUTPUT for `-o lo`. Removing the fault removes the
//! jump and the chain.
//!
//! A chain is named `HADRILL-<pid>-<start>-<n>`: the pid and start time (base 36, clock ticks
//! after boot) of the process running the cluster, its [`Owner`], and a number unique within
//! that process. A process killed hard (SIGKILL) cannot remove its chains; [`sweep_dead_owners`]
//! removes every chain whose owner is gone — a pid that runs again but started at another time
//! is another process. It runs when an engine first uses iptables, when a feature run starts and
//! in `hadrill clean`. Chains of older builds (`HADRILL-<pid>-<8 hex>`) are judged by pid alone.
//!
//! The rules match addresses, and every hadrill process on a host uses the same address plan:
//! a fault injected by one process also hits pods of another process that hold the same
//! address at the same time. Run network-chaos tests of several processes one after another.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::owner::Owner;

/// Prefix of every chain hadrill creates.
pub const CHAIN_PREFIX: &str = "HADRILL-";
/// The longest chain name iptables accepts.
const MAX_CHAIN_NAME: usize = 28;

/// Chain numbers, unique within the process (several clusters may run in one test binary).
static NEXT: AtomicU32 = AtomicU32::new(1);

/// One engine's use of iptables.
#[derive(Debug)]
pub struct Iptables {
    enabled: bool,
    capability: OnceLock<Result<(), String>>,
    /// Every chain this engine created (removed or not), to check for leftovers.
    created: Mutex<BTreeSet<String>>,
}

impl Iptables {
    /// `enabled` false reports the backend as turned off.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, capability: OnceLock::new(), created: Mutex::default() }
    }

    /// Whether iptables can be used; the error says why not (turned off, not installed, not
    /// permitted). Checked once.
    pub fn available(&self) -> Result<(), String> {
        if !self.enabled {
            return Err("iptables is turned off (SimConfig.chaos.iptables = false)".into());
        }
        self.capability
            .get_or_init(|| {
                let result = probe();
                if result.is_ok() {
                    for (chain, removed) in sweep_dead_owners() {
                        match removed {
                            Ok(()) => {
                                tracing::info!(chain, "removed the chaos iptables chain of a process that is gone")
                            }
                            Err(error) => tracing::warn!(chain, error, "could not remove a dead process's chain"),
                        }
                    }
                }
                result
            })
            .clone()
    }

    /// A new chain name for this process.
    pub fn new_chain(&self) -> String {
        chain_name(Owner::current(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates `chain` with `rules` (each the arguments after `-A <chain>`) and jumps to it from
    /// OUTPUT for loopback traffic. On any failure what was created is removed again.
    pub fn install(&self, chain: &str, rules: &[Vec<String>]) -> Result<(), String> {
        self.available()?;
        if chain.len() > MAX_CHAIN_NAME {
            return Err(format!("chain name {chain} is longer than iptables' {MAX_CHAIN_NAME} characters"));
        }
        self.created.lock().unwrap_or_else(|p| p.into_inner()).insert(chain.to_string());
        let result = (|| {
            run(&["-N", chain])?;
            for rule in rules {
                let mut args: Vec<&str> = vec!["-A", chain];
                args.extend(rule.iter().map(String::as_str));
                run(&args)?;
            }
            run(&["-I", "OUTPUT", "-o", "lo", "-j", chain])
        })();
        if let Err(e) = result {
            let _ = self.remove(chain);
            return Err(e);
        }
        Ok(())
    }

    /// Removes the jump to `chain` and the chain; succeeds when it is gone.
    pub fn remove(&self, chain: &str) -> Result<(), String> {
        remove_chain(chain)
    }

    /// Chains this engine created that still exist.
    pub fn present_chains(&self) -> Vec<String> {
        let created = self.created.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if created.is_empty() || self.available().is_err() {
            return Vec::new();
        }
        existing_chains().into_iter().filter(|c| created.contains(c)).collect()
    }

    /// Removes every chain this engine created (best effort; for shutdown).
    pub fn remove_all(&self) {
        let created = self.created.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if created.is_empty() {
            return;
        }
        for chain in existing_chains().into_iter().filter(|c| created.contains(c)) {
            if let Err(e) = remove_chain(&chain) {
                tracing::warn!(chain, error = %e, "could not remove a chaos iptables chain");
            }
        }
    }
}

fn probe() -> Result<(), String> {
    match Command::new("iptables").args(["-w", "5", "-S", "OUTPUT"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`iptables -S OUTPUT` failed ({}): {} — NetworkChaos loss and partition need root (CAP_NET_ADMIN)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("iptables is not installed (NetworkChaos loss and partition need it: install the iptables package)"
                .into())
        }
        Err(e) => Err(format!("cannot run iptables: {e}")),
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new("iptables")
        .args(["-w", "5"])
        .args(args)
        .output()
        .map_err(|e| format!("running iptables {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("iptables {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn remove_chain(chain: &str) -> Result<(), String> {
    // Every jump to it first (there is one unless something went wrong), then the chain.
    while run(&["-D", "OUTPUT", "-o", "lo", "-j", chain]).is_ok() {}
    if !existing_chains().iter().any(|c| c == chain) {
        return Ok(());
    }
    run(&["-F", chain])?;
    run(&["-X", chain])
}

/// User chains of the filter table whose name starts with [`CHAIN_PREFIX`].
pub fn existing_chains() -> Vec<String> {
    let Ok(out) = Command::new("iptables").args(["-w", "5", "-S"]).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| c.starts_with(CHAIN_PREFIX))
        .map(str::to_string)
        .collect()
}

/// `HADRILL-<pid>-<start base 36>-<n base 36>`: at most 8 + 7 + 1 + 7 + 1 + 4 characters for
/// pids up to 2^22 (the kernel's limit), 24 years of uptime and 1.6 million chains.
pub fn chain_name(owner: Owner, n: u32) -> String {
    format!("{CHAIN_PREFIX}{}-{}-{}", owner.pid, base36(owner.start), base36(u64::from(n)))
}

fn base36(mut v: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The owner a chain name records: pid and start time, or (a chain of an older build,
/// `HADRILL-<pid>-<8 hex>`) the pid with start 0, which [`Owner::is_alive`] judges by pid.
/// `None` for a name hadrill did not make.
pub fn chain_owner(chain: &str) -> Option<Owner> {
    let parts: Vec<&str> = chain.strip_prefix(CHAIN_PREFIX)?.split('-').collect();
    match parts.as_slice() {
        [pid, start, n] if !n.is_empty() => {
            Some(Owner { pid: pid.parse().ok()?, start: u64::from_str_radix(start, 36).ok()? })
        }
        [pid, hex] if hex.len() == 8 => Some(Owner { pid: pid.parse().ok()?, start: 0 }),
        _ => None,
    }
}

/// The hadrill chains whose owner process is gone. None when iptables cannot be used.
pub fn dead_owner_chains() -> Vec<String> {
    existing_chains().into_iter().filter(|c| chain_owner(c).is_some_and(|o| !o.is_alive())).collect()
}

/// Removes every hadrill chain (and its jump) whose owner process is gone; returns each chain
/// it tried with the outcome. Nothing when iptables cannot be used.
pub fn sweep_dead_owners() -> Vec<(String, Result<(), String>)> {
    dead_owner_chains()
        .into_iter()
        .map(|chain| {
            let removed = remove_chain(&chain);
            (chain, removed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_name_holds_its_owner_and_fits_iptables() {
        let me = Owner::current();
        let name = chain_name(me, 7);
        assert_eq!(chain_owner(&name), Some(me), "{name}");
        let widest = chain_name(Owner { pid: 4_194_304, start: 36u64.pow(7) - 1 }, 36u32.pow(4) - 1);
        assert_eq!(widest, "HADRILL-4194304-zzzzzzz-zzzz");
        assert!(widest.len() <= MAX_CHAIN_NAME);
        assert_eq!(chain_owner(&widest), Some(Owner { pid: 4_194_304, start: 36u64.pow(7) - 1 }));
        // An older build's name: the pid alone.
        assert_eq!(chain_owner("HADRILL-812-0000002a"), Some(Owner { pid: 812, start: 0 }));
        assert_eq!(chain_owner("HADRILL-x-1-2"), None);
        assert_eq!(chain_owner("DOCKER-USER"), None);
    }
}
