//! The host sweep: what a run leaves on this machine outside any cluster, removed once the
//! process that made it is gone — without a kubeconfig or a cluster.
//!
//! - iptables chains of the embedded cluster's NetworkChaos (`HADRILL-<pid>-<start>-<n>`) whose
//!   owner process is gone ([`sim::chaos::iptables::sweep_dead_owners`]; a pid that runs again
//!   but started at another time is another process);
//! - run ledgers of embedded clusters whose process is gone: their objects died with it.
//!
//! Stress workers and pod processes need no sweep: they are forked with `PR_SET_PDEATHSIG`, so
//! the kernel kills them with their process, SIGKILL included. Every feature run starts with
//! this sweep; `hadrill clean` runs it with no flags.

use std::path::Path;

use super::ledger::{Ledger, ledger_files};

/// One leftover the sweep dealt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRemoval {
    /// What it was.
    pub what: String,
    /// What happened to it.
    pub outcome: HostOutcome,
}

/// What the sweep did with a leftover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// Removed.
    Removed,
    /// Dry run: would be removed.
    WouldRemove,
    /// Could not be removed, and why.
    Failed(String),
}

impl std::fmt::Display for HostRemoval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            HostOutcome::Removed => write!(f, "{}: removed", self.what),
            HostOutcome::WouldRemove => write!(f, "{}: would remove (dry run)", self.what),
            HostOutcome::Failed(e) => write!(f, "{}: NOT removed: {e}", self.what),
        }
    }
}

fn outcome(dry_run: bool, remove: impl FnOnce() -> Result<(), String>) -> HostOutcome {
    if dry_run {
        return HostOutcome::WouldRemove;
    }
    match remove() {
        Ok(()) => HostOutcome::Removed,
        Err(e) => HostOutcome::Failed(e),
    }
}

/// Removes (with `dry_run`, only lists) the host-level leftovers of processes that are gone
/// (see the module docs), with the ledgers in `ledger_dir`. Nothing of a live process is
/// touched.
pub fn sweep(ledger_dir: &Path, dry_run: bool) -> Vec<HostRemoval> {
    let mut out: Vec<HostRemoval> = sim::chaos::iptables::dead_owner_chains()
        .into_iter()
        .map(|chain| HostRemoval {
            what: format!("iptables chain {chain} (and its jump from OUTPUT) of a process that is gone"),
            outcome: outcome(dry_run, || sim::chaos::iptables::Iptables::new(true).remove(&chain)),
        })
        .collect();
    match ledger_files(ledger_dir) {
        Ok(files) => out.extend(files.iter().filter_map(|p| dead_embedded_ledger(p, dry_run))),
        Err(e) => out.push(HostRemoval {
            what: format!("the ledgers in {}", ledger_dir.display()),
            outcome: HostOutcome::Failed(format!("{e:#}")),
        }),
    }
    out
}

/// Removes `path` when it is the ledger of an embedded cluster whose process is gone.
fn dead_embedded_ledger(path: &Path, dry_run: bool) -> Option<HostRemoval> {
    let ledger = match Ledger::open_file(path) {
        Ok(l) => l,
        Err(e) => {
            let what = format!("ledger {}", path.display());
            return Some(HostRemoval { what, outcome: HostOutcome::Failed(format!("{e:#}")) });
        }
    };
    let owner = ledger.embedded_in().filter(|o| !o.is_alive())?;
    let what = format!(
        "ledger {} of run {}: {} object(s) on the embedded cluster of {owner}, which is gone with it",
        path.display(),
        ledger.run(),
        ledger.live().len()
    );
    drop(ledger);
    let outcome =
        outcome(dry_run, || std::fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display())));
    Some(HostRemoval { what, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ledger::{ObjectRef, Op, read};

    #[test]
    fn the_ledger_of_a_gone_processs_embedded_cluster_is_removed_and_others_stay() {
        let dir = std::env::temp_dir().join(format!("hadrill-host-sweep-{}", uuid::Uuid::new_v4().simple()));
        // This process's embedded cluster: alive, kept.
        let live = Ledger::open_embedded(&dir, "mine").unwrap();
        live.record_creating(&ObjectRef::namespace("hadrill-mine"), None).unwrap();
        // A real cluster's ledger: not the host's to judge, kept.
        let real = Ledger::open(&dir, "real").unwrap();
        real.record_creating(&ObjectRef::namespace("hadrill-real"), None).unwrap();
        // A process that reused this pid after the cluster's owner died: gone, removed.
        let mut gone = read(live.path()).unwrap().remove(0);
        gone.run = "gone".into();
        gone.embedded_in = gone.embedded_in.map(|o| sim::owner::Owner { start: o.start + 1, ..o });
        assert_eq!(gone.op, Op::Creating);
        std::fs::write(dir.join("gone.jsonl"), serde_json::to_string(&gone).unwrap() + "\n").unwrap();

        let ours = |r: &HostRemoval| r.what.contains(&dir.display().to_string());
        let listed: Vec<HostRemoval> = sweep(&dir, true).into_iter().filter(ours).collect();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].outcome, HostOutcome::WouldRemove);
        assert!(dir.join("gone.jsonl").exists(), "a dry run removes nothing");
        let swept: Vec<HostRemoval> = sweep(&dir, false).into_iter().filter(ours).collect();
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert!(
            swept[0].outcome == HostOutcome::Removed && swept[0].what.contains("run gone: 1 object(s)"),
            "{}",
            swept[0]
        );
        assert!(!dir.join("gone.jsonl").exists());
        assert!(live.path().exists() && real.path().exists());
        assert_eq!(Ledger::open_file(live.path()).unwrap().embedded_in(), Some(sim::owner::Owner::current()));
        assert_eq!(Ledger::open_file(real.path()).unwrap().embedded_in(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
