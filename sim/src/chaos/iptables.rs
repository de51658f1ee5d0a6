//! The iptables backend of NetworkChaos loss and partition.
//!
//! Every pod of the embedded cluster has a loopback address, so all pod traffic leaves through
//! `lo` and passes the filter table's OUTPUT chain once. A fault is one chain of its own,
//! `HADRILL-<pid>-<8 hex>` (the pid of the process running the cluster), holding DROP rules by
//! source and destination address (with `-m statistic --mode random --probability P` for a
//! loss below 100%), and a jump to it from OUTPUT for `-o lo`. Removing the fault removes the
//! jump and the chain. Chains of processes that no longer exist (a test killed hard) are
//! removed when the next engine first uses iptables.
//!
//! The rules match addresses, and every hadrill process on a host uses the same address plan:
//! a fault injected by one process also hits pods of another process that hold the same
//! address at the same time. Run network-chaos tests of several processes one after another.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Prefix of every chain hadrill creates.
pub const CHAIN_PREFIX: &str = "HADRILL-";

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
                    sweep_dead_processes();
                }
                result
            })
            .clone()
    }

    /// A new chain name for this process.
    pub fn new_chain(&self) -> String {
        format!("{CHAIN_PREFIX}{}-{:08x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates `chain` with `rules` (each the arguments after `-A <chain>`) and jumps to it from
    /// OUTPUT for loopback traffic. On any failure what was created is removed again.
    pub fn install(&self, chain: &str, rules: &[Vec<String>]) -> Result<(), String> {
        self.available()?;
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

/// Removes the chains of hadrill processes that are gone.
fn sweep_dead_processes() {
    for chain in existing_chains() {
        let pid =
            chain.strip_prefix(CHAIN_PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            tracing::info!(chain, "removing the chaos iptables chain of a process that is gone");
            let _ = remove_chain(&chain);
        }
    }
}
