//! Kill at random: `hadrill run` of a feature holding network, pod and stress faults at once
//! (tests/fixtures/kill/), stopped with SIGINT, SIGTERM or SIGKILL at a seeded random moment
//! while a fault is in place (an iptables chain or a stress worker of the run is seen first; for
//! SIGKILL a chain). After SIGKILL, `hadrill clean` runs with no kubeconfig and must name and
//! remove the chain the kill left. After each run: no HADRILL chain of
//! the run, no process of the run (its session), no open ledger entry, and a junit.xml that
//! parses and says the run was interrupted; after SIGINT or SIGTERM also the exit status
//! (130, 143) and an index.html that says INTERRUPTED.
//!
//! `HADRILL_KILL_RUNS` runs (3 by default, one per signal; `make soak` runs 30), seed from
//! `HADRILL_KILL_SEED` (else random); both are printed with every run's signal and moment.
//! Without iptables the test fails: it is what the test is about.

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt as _, SeedableRng as _};

/// How long a run may take to put its first fault in place: cluster and pods, and on the first
/// run after a source change the build of the project's images (`cargo build`, minutes on a
/// loaded machine).
const SETUP_LIMIT: Duration = Duration::from_secs(1200);
/// How long a signalled run may take to clean up and exit.
const EXIT_LIMIT: Duration = Duration::from_secs(180);

fn hadrill() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hadrill"))
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kill")
}

fn iptables_rules() -> String {
    let out = Command::new("iptables").args(["-w", "5", "-S"]).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            panic!("`iptables -S` failed: {} — this test needs root and iptables", String::from_utf8_lossy(&o.stderr))
        }
        Err(e) => panic!("iptables cannot run ({e}): this test needs it (install the iptables package, run as root)"),
    }
}

/// Chains of the run whose process is `pid`.
fn chains_of(pid: u32) -> Vec<String> {
    let prefix = format!("{}{pid}-", sim::chaos::iptables::CHAIN_PREFIX);
    iptables_rules()
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| c.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// `(pid, ppid, session, comm)` of every process.
fn processes() -> Vec<(u32, u32, u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let comm = head.split_once(" (").map(|(_, c)| c.to_string()).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        out.push((pid, num(1), num(3), comm));
    }
    out
}

/// Stress workers of the run: children of its process forked by the stress spawner thread.
fn workers_of(pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, ppid, _, comm)| *ppid == pid && comm.starts_with("hadrill-stress"))
        .map(|p| p.0)
        .collect()
}

/// Processes left in the run's session (everything it started, pods and workers included).
fn session_of(pid: u32) -> Vec<String> {
    processes()
        .into_iter()
        .filter(|(p, _, sid, _)| *sid == pid && *p != pid)
        .map(|(p, _, _, c)| format!("{p} {c}"))
        .collect()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Int,
    Term,
    Kill,
}

impl Sig {
    fn number(self) -> i32 {
        match self {
            Sig::Int => libc::SIGINT,
            Sig::Term => libc::SIGTERM,
            Sig::Kill => libc::SIGKILL,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Sig::Int => "SIGINT",
            Sig::Term => "SIGTERM",
            Sig::Kill => "SIGKILL",
        }
    }
}

/// A run that a failing assertion must not leave running: dropped while it runs, it gets
/// SIGTERM (and cleans up) and is waited for.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(self.0.id() as i32, libc::SIGTERM);
            }
            let _ = self.0.wait();
        }
    }
}

/// Starts `hadrill run` of the fixture as the leader of a session of its own.
fn start(reports: &Path, log: &Path) -> Running {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = hadrill();
    cmd.arg("run").arg(fixture()).env("HADRILL_REPORTS", reports).stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid(2) is async-signal-safe and has no memory-safety preconditions.
    unsafe {
        cmd.pre_exec(|| if libc::setsid() < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    Running(cmd.spawn().expect("starting hadrill run"))
}

/// What one run saw.
struct Moment {
    chains: usize,
    workers: usize,
    after_fault_ms: u64,
}

/// Waits for a fault of `pid` in place (with `chain`, an iptables chain: what `hadrill clean`
/// must remove after SIGKILL), then `delay` more, and returns once one still is.
fn fault_in_place(child: &mut Child, chain: bool, delay: Duration, log: &Path) -> Moment {
    let pid = child.id();
    let mut first = None;
    let deadline = Instant::now() + SETUP_LIMIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the run ended ({status}) before a fault was in place:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no fault in place after {SETUP_LIMIT:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        let (chains, workers) = (chains_of(pid).len(), workers_of(pid).len());
        if chains > 0 || (!chain && workers > 0) {
            let seen = *first.get_or_insert_with(Instant::now);
            if seen.elapsed() >= delay {
                return Moment { chains, workers, after_fault_ms: seen.elapsed().as_millis() as u64 };
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ledger entries of `reports` still recorded (created or about to be, not removed).
fn open_ledger_entries(reports: &Path) -> Vec<String> {
    let dir = reports.join(".ledger");
    let files = hadrill::chaos::ledger::ledger_files(&dir).unwrap();
    files
        .iter()
        .flat_map(|f| {
            let entries = hadrill::chaos::ledger::read(f).unwrap();
            hadrill::chaos::ledger::live_entries(entries)
                .into_iter()
                .map(move |e| format!("{}: {}", f.display(), e.object))
        })
        .collect()
}

#[test]
fn runs_stopped_at_random_moments_leave_nothing_behind() {
    iptables_rules();
    let runs: usize = std::env::var("HADRILL_KILL_RUNS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(3);
    let seed: u64 =
        std::env::var("HADRILL_KILL_SEED").ok().and_then(|v| v.trim().parse().ok()).unwrap_or_else(rand::random);
    println!("kill at random: {runs} run(s), seed {seed} (replay with HADRILL_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Every signal equally often: each three runs are a shuffle of the three.
    let mut signals = Vec::new();
    while signals.len() < runs {
        let mut three = vec![Sig::Int, Sig::Term, Sig::Kill];
        while !three.is_empty() {
            signals.push(three.remove(rng.random_range(0..three.len())));
        }
    }
    let base = std::env::temp_dir().join(format!("hadrill-kill-{}", uuid::Uuid::new_v4().simple()));
    let mut leftovers = Vec::new();
    for (i, sig) in signals.into_iter().take(runs).enumerate() {
        let reports = base.join(format!("run-{i}"));
        std::fs::create_dir_all(&reports).unwrap();
        let log = base.join(format!("run-{i}.log"));
        let delay = Duration::from_millis(rng.random_range(0..3000));
        let mut run = start(&reports, &log);
        let child = &mut run.0;
        let pid = child.id();
        let at = fault_in_place(child, sig == Sig::Kill, delay, &log);
        // SAFETY: kill(2) has no memory-safety preconditions; SIGINT goes to the process group
        // as Ctrl-C does, the others to the process as `kill` does.
        let target = if sig == Sig::Int { -(pid as i32) } else { pid as i32 };
        unsafe {
            libc::kill(target, sig.number());
        }
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(t0.elapsed() < EXIT_LIMIT, "run {i}: still running {EXIT_LIMIT:?} after {}", sig.name());
            std::thread::sleep(Duration::from_millis(50));
        };
        let exited = t0.elapsed();
        let text = || std::fs::read_to_string(&log).unwrap_or_default();
        let mut problems = Vec::new();
        match sig {
            Sig::Kill => {
                assert_eq!(status.signal(), Some(libc::SIGKILL), "run {i}");
                let left = chains_of(pid);
                if left.is_empty() {
                    problems.push("SIGKILL left no chain: the run removed it, so clean was not tested".into());
                }
                let clean = hadrill()
                    .arg("clean")
                    .arg("--ledger-dir")
                    .arg(reports.join(".ledger"))
                    .env_remove("KUBECONFIG")
                    .env("HOME", &base)
                    .output()
                    .unwrap();
                let said = String::from_utf8_lossy(&clean.stdout).into_owned();
                if !clean.status.success() {
                    problems.push(format!("hadrill clean failed: {said}{}", String::from_utf8_lossy(&clean.stderr)));
                }
                for chain in &left {
                    if !said.contains(chain.as_str()) {
                        problems.push(format!("hadrill clean did not name the chain {chain}: {said}"));
                    }
                }
                println!(
                    "    hadrill clean after SIGKILL: {} chain(s) of the run were left, clean said:\n{said}",
                    left.len()
                );
            }
            Sig::Int | Sig::Term => {
                let want = i32::from(if sig == Sig::Int { 130u8 } else { 143 });
                if status.code() != Some(want) {
                    problems.push(format!("exit status {status}, expected {want}"));
                }
                let index = std::fs::read_to_string(reports.join("index.html")).unwrap_or_default();
                if !index.contains(&format!("INTERRUPTED by {}", sig.name())) {
                    problems.push("index.html does not say INTERRUPTED".into());
                }
            }
        }
        let chains = chains_of(pid);
        if !chains.is_empty() {
            problems.push(format!("iptables chains left: {chains:?}"));
        }
        // Pods and workers die with their process (PR_SET_PDEATHSIG); give the kernel a moment.
        if !wait_until(Duration::from_secs(15), || session_of(pid).is_empty()) {
            problems.push(format!("processes of the run left: {:?}", session_of(pid)));
        }
        let open = open_ledger_entries(&reports);
        if !open.is_empty() {
            problems.push(format!("open ledger entries: {open:?}"));
        }
        let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap_or_default();
        match hadrill::report::junit::read(&junit) {
            Ok(_) if junit.contains("interrupted=\"true\"") => {}
            Ok(_) => problems.push("junit.xml does not say the run was interrupted".into()),
            Err(e) => problems.push(format!("junit.xml does not parse: {e:#}\n{junit}")),
        }
        println!(
            "run {i}: {} at {} ms after the first fault was seen (chains {}, stress workers {} in place), \
             exited after {exited:.1?}: {}",
            sig.name(),
            at.after_fault_ms,
            at.chains,
            at.workers,
            if problems.is_empty() { "nothing left".to_string() } else { problems.join("; ") }
        );
        if !problems.is_empty() {
            leftovers.push(format!("run {i} ({}): {}\n--- its output:\n{}", sig.name(), problems.join("; "), text()));
        }
    }
    println!("kill at random: {runs} run(s), seed {seed}: {} with leftovers", leftovers.len());
    assert!(leftovers.is_empty(), "seed {seed}:\n{}", leftovers.join("\n"));
    let _ = std::fs::remove_dir_all(&base);
}
