//! StressChaos: real worker processes.
//!
//! - `cpu`: `workers` processes, each busy for `load` % of every 100 ms and asleep for the
//!   rest (a duty cycle, as stress-ng's `--cpu-load`). Their CPU time shows in
//!   `/proc/<pid>/stat`.
//! - `memory`: `workers` processes sharing `size` (bytes with a unit, or a percentage of the
//!   host's memory): each maps its share, touches every page, and sleeps. `oomScoreAdj` is
//!   written to `/proc/self/oom_score_adj`.
//!
//! Chaos Mesh runs the stressors inside the container's cgroup; here they are host processes
//! (no cgroup limits apply) attributed to the record `ns/pod/container`.
//!
//! Workers are forked (not executed) by one spawner thread that lives as long as the engine,
//! with `PR_SET_PDEATHSIG`: when the engine is dropped, or the process dies even by SIGKILL,
//! the kernel kills them. The child only makes async-signal-safe system calls and closes every
//! inherited descriptor first, so it holds none of the parent's sockets or pipes.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};

use serde_json::Value;

use super::{Shared, spec};

/// What a worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Burn CPU `load` % of the time.
    Cpu {
        /// Percent busy, 0..=100.
        load: u32,
    },
    /// Hold `bytes` of touched memory.
    Memory {
        /// Bytes.
        bytes: u64,
        /// Value for `/proc/self/oom_score_adj`.
        oom_score_adj: i32,
    },
}

struct Request {
    job: Job,
    reply: mpsc::Sender<Result<u32, String>>,
}

/// Workers of one record.
#[derive(Debug, Clone)]
struct Group {
    object: String,
    pids: Vec<u32>,
}

/// The engine's stress side: the spawner thread and the workers by chaos uid and record.
#[derive(Debug)]
pub struct Stress {
    spawner: Mutex<Option<mpsc::Sender<Request>>>,
    groups: Mutex<HashMap<String, HashMap<String, Group>>>,
    /// Every pid spawned (for leftovers).
    spawned: Mutex<Vec<u32>>,
}

impl Stress {
    /// Starts the spawner thread.
    pub fn new() -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new().name("hadrill-stress-spawner".into()).spawn(move || {
            while let Ok(req) = rx.recv() {
                let _ = req.reply.send(fork_worker(req.job));
            }
        })?;
        Ok(Self { spawner: Mutex::new(Some(tx)), groups: Mutex::default(), spawned: Mutex::default() })
    }

    fn spawn(&self, job: Job) -> Result<u32, String> {
        let (reply, rx) = mpsc::channel();
        {
            let guard = self.spawner.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.as_ref().ok_or("the stress engine is shut down")?;
            tx.send(Request { job, reply }).map_err(|_| "the stress spawner thread is gone".to_string())?;
        }
        let pid = rx.recv().map_err(|_| "the stress spawner thread dropped the request".to_string())??;
        self.spawned.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
        Ok(pid)
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Group>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `(object, pids)` of every record with workers.
    pub fn injections(&self) -> Vec<(String, Vec<u32>)> {
        let mut by_object: HashMap<String, Vec<u32>> = HashMap::new();
        for g in self.groups().values().flat_map(|m| m.values()) {
            by_object.entry(g.object.clone()).or_default().extend(&g.pids);
        }
        by_object.into_iter().collect()
    }

    /// Spawned workers still alive.
    pub fn live_pids(&self) -> Vec<u32> {
        let spawned = self.spawned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        spawned.into_iter().filter(|p| crate::kubelet::runtime::pid_alive(*p)).collect()
    }

    /// Kills the workers of record `id` of `uid`.
    fn remove(&self, uid: &str, id: &str) {
        let group = self.groups().get_mut(uid).and_then(|m| m.remove(id));
        if let Some(g) = group {
            kill(&g.pids);
        }
    }

    /// Kills every worker of `uid`.
    pub fn remove_all(&self, uid: &str) {
        let groups = self.groups().remove(uid);
        for g in groups.into_iter().flat_map(|m| m.into_values()) {
            kill(&g.pids);
        }
    }

    /// Kills every worker and stops spawning (shutdown).
    pub fn kill_all(&self) {
        self.spawner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let all: Vec<Group> = self.groups().drain().flat_map(|(_, m)| m.into_values()).collect();
        for g in all {
            kill(&g.pids);
        }
    }
}

/// Starts the stressors of `obj` for record `id` (`ns/pod/container`).
pub(crate) fn inject(shared: &Shared, object: &str, uid: &str, obj: &Value, id: &str) -> Result<(), String> {
    let stress = &shared.stress;
    if stress.groups().get(uid).is_some_and(|m| m.contains_key(id)) {
        return Ok(());
    }
    let jobs = jobs(obj)?;
    let mut pids = Vec::new();
    for job in jobs {
        match stress.spawn(job) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                kill(&pids);
                return Err(format!("starting a stress worker: {e}"));
            }
        }
    }
    tracing::info!(object, record = id, ?pids, "stress workers started");
    stress
        .groups()
        .entry(uid.to_string())
        .or_default()
        .insert(id.to_string(), Group { object: object.to_string(), pids });
    Ok(())
}

/// Stops the stressors of record `id`.
pub(crate) fn recover(shared: &Shared, uid: &str, id: &str) -> Result<(), String> {
    shared.stress.remove(uid, id);
    Ok(())
}

/// The workers `spec.stressors` asks for. `stressngStressors` is not supported.
pub fn jobs(obj: &Value) -> Result<Vec<Job>, String> {
    let spec = &obj["spec"];
    if spec["stressngStressors"].as_str().is_some_and(|s| !s.is_empty()) {
        return Err("spec.stressngStressors is not supported by the embedded cluster's engine (no stress-ng); use spec.stressors".into());
    }
    let s = &spec["stressors"];
    if s["cpu"].is_null() && s["memory"].is_null() {
        return Err("spec.stressors needs cpu and/or memory".into());
    }
    let mut jobs = Vec::new();
    if let Some(cpu) = s["cpu"].as_object() {
        let workers = workers(&cpu["workers"], "spec.stressors.cpu.workers")?;
        let load = cpu.get("load").and_then(Value::as_i64).unwrap_or(100);
        if !(0..=100).contains(&load) {
            return Err(format!("spec.stressors.cpu.load {load} must be within 0..100"));
        }
        jobs.extend(std::iter::repeat_n(Job::Cpu { load: u32::try_from(load).unwrap_or(100) }, workers));
    }
    if let Some(mem) = s["memory"].as_object() {
        let workers = workers(&mem["workers"], "spec.stressors.memory.workers")?;
        let size = mem.get("size").and_then(Value::as_str).ok_or("spec.stressors.memory.size is required")?;
        let total = spec::parse_size(size, host_memory()).map_err(|e| format!("spec.stressors.memory.size {e}"))?;
        let oom_score_adj = mem.get("oomScoreAdj").and_then(Value::as_i64).unwrap_or(0);
        let oom_score_adj = i32::try_from(oom_score_adj.clamp(-1000, 1000)).unwrap_or(0);
        let each = total / workers as u64;
        jobs.extend(std::iter::repeat_n(Job::Memory { bytes: each, oom_score_adj }, workers));
    }
    Ok(jobs)
}

fn workers(v: &Value, at: &str) -> Result<usize, String> {
    let n = v.as_i64().ok_or_else(|| format!("{at} is required"))?;
    if !(1..=8192).contains(&n) {
        return Err(format!("{at} {n} must be within 1..8192"));
    }
    usize::try_from(n).map_err(|e| e.to_string())
}

/// `MemTotal` of `/proc/meminfo` in bytes (0 when unreadable).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// SIGKILLs `pids` that are still our children (a pid reused by another process is left
/// alone) and waits (up to 2 s) until they are gone, so a recovered stress has no worker left;
/// each is reaped by its waiter thread.
fn kill(pids: &[u32]) {
    let mut signalled = Vec::new();
    for &pid in pids {
        if !is_our_child(pid) {
            continue;
        }
        if let Ok(p) = i32::try_from(pid)
            && p > 0
        {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
            signalled.push(pid);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while signalled.iter().any(|p| crate::kubelet::runtime::pid_alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let ppid = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
    ppid == Some(std::process::id())
}

/// Forks a worker running `job`; a thread reaps it when it ends.
fn fork_worker(job: Job) -> Result<u32, String> {
    let parent = std::process::id();
    // SAFETY: fork(2) in a multi-threaded process: the child only calls async-signal-safe
    // functions (prctl, getppid, close_range/close, clock_gettime, nanosleep, mmap, open,
    // write, pause, _exit) and never returns into Rust code of the parent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; this never returns.
        unsafe { child(parent, job) }
    }
    let pid_u = u32::try_from(pid).map_err(|e| e.to_string())?;
    let reaper = std::thread::Builder::new().name(format!("hadrill-stress-wait-{pid}")).spawn(move || {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
        }
    });
    if let Err(e) = reaper {
        kill(&[pid_u]);
        return Err(format!("starting the reaper thread: {e}"));
    }
    Ok(pid_u)
}

/// The worker's body, after fork.
///
/// # Safety
/// Must only run in a freshly forked child.
unsafe fn child(parent: u32, job: Job) -> ! {
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        if u32::try_from(libc::getppid()).ok() != Some(parent) {
            libc::_exit(0);
        }
        // Hold none of the parent's sockets, pipes or files.
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..4096 {
                libc::close(fd);
            }
        }
        match job {
            Job::Cpu { load } => burn(load),
            Job::Memory { bytes, oom_score_adj } => hold(bytes, oom_score_adj),
        }
    }
}

unsafe fn now_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

unsafe fn sleep_ns(ns: i64) {
    let ts = libc::timespec { tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000 };
    unsafe {
        libc::nanosleep(&ts, std::ptr::null_mut());
    }
}

/// Busy `load` % of every 100 ms period.
unsafe fn burn(load: u32) -> ! {
    const PERIOD: i64 = 100_000_000;
    let busy = PERIOD * i64::from(load.min(100)) / 100;
    let mut x: u64 = 1;
    loop {
        unsafe {
            let start = now_ns();
            while now_ns() - start < busy {
                for _ in 0..1000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            if busy < PERIOD {
                sleep_ns(PERIOD - busy);
            }
        }
    }
}

/// Maps `bytes`, touches every page, then sleeps forever.
unsafe fn hold(bytes: u64, oom_score_adj: i32) -> ! {
    unsafe {
        if oom_score_adj != 0 {
            write_oom_score_adj(oom_score_adj);
        }
        let len = usize::try_from(bytes).unwrap_or(usize::MAX).max(1);
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            libc::_exit(1);
        }
        let base = p.cast::<u8>();
        let mut off = 0usize;
        while off < len {
            std::ptr::write_volatile(base.add(off), 1);
            off += 4096;
        }
        loop {
            libc::pause();
        }
    }
}

/// Writes `value` to `/proc/self/oom_score_adj` without allocating.
unsafe fn write_oom_score_adj(value: i32) {
    let mut buf = [0u8; 12];
    let mut n = value.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    unsafe {
        let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(fd, buf[i..].as_ptr().cast(), buf.len() - i);
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jobs_from_the_spec() {
        let obj = json!({"spec": {"stressors": {"cpu": {"workers": 2, "load": 40}, "memory": {"workers": 2, "size": "10MB"}}}});
        assert_eq!(
            jobs(&obj).unwrap(),
            vec![
                Job::Cpu { load: 40 },
                Job::Cpu { load: 40 },
                Job::Memory { bytes: 5_000_000, oom_score_adj: 0 },
                Job::Memory { bytes: 5_000_000, oom_score_adj: 0 },
            ]
        );
        let bad = json!({"spec": {"stressors": {"cpu": {"workers": 0}}}});
        assert!(jobs(&bad).unwrap_err().contains("spec.stressors.cpu.workers"));
        let ng = json!({"spec": {"stressngStressors": "--cpu 1"}});
        assert!(jobs(&ng).unwrap_err().contains("stressngStressors"));
    }

    #[test]
    fn a_worker_burns_cpu_and_dies_with_kill() {
        let s = Stress::new().unwrap();
        let pid = s.spawn(Job::Cpu { load: 100 }).unwrap();
        let ticks = |pid: u32| -> u64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ticks(pid) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(ticks(pid) > 0, "the worker used no CPU");
        assert_eq!(s.live_pids(), vec![pid]);
        s.kill_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !s.live_pids().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(s.live_pids().is_empty());
    }
}
