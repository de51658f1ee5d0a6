//! One pod on one node: admits it (pod IP), starts its containers (processes or virtual; init
//! containers one by one first, sidecars staying up), restarts them per `restartPolicy` with crash-loop back-off, runs their probes, reports the
//! status, and carries out graceful deletion.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::NodeCtx;
use super::env::{self, EnvContext};
use super::events::EventType::{Normal, Warning};
use super::images::{self, ImageEntry};
use super::probes::{self, Probe, ProbeEvent, ProbeKind};
use super::runtime::{Exit, Proc, ProcSpec};
use super::status::{self, CState, ContainerView, Transitions};
use crate::api::ops::{DeleteOptions, now_rfc3339};

/// `kill_reason` of a container killed because its image changed.
const DEFINITION_CHANGED: &str = "definition changed";

/// Messages from a pod's helper tasks (and the chaos engine).
#[derive(Debug)]
pub(crate) enum Msg {
    Exited {
        idx: usize,
        instance: u64,
        exit: Exit,
    },
    Probe {
        idx: usize,
        instance: u64,
        kind: ProbeKind,
        event: ProbeEvent,
    },
    /// Kill a running container as a container runtime would (Chaos Mesh container-kill).
    Kill {
        container: String,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// Where a command run in a container runs (`kubectl exec`, `attach`).
    ExecTarget {
        container: String,
        reply: tokio::sync::oneshot::Sender<Result<super::exec::Target, super::exec::Refusal>>,
    },
}

/// Crash-loop back-off of one container (client-go flowcontrol semantics).
#[derive(Debug, Default, Clone, Copy)]
struct Backoff {
    current: Option<Duration>,
    updated: Option<Instant>,
}

impl Backoff {
    fn expired(&self, at: Instant, reset: Duration) -> bool {
        self.updated.is_none_or(|u| at.saturating_duration_since(u) > reset)
    }

    /// Whether a container that finished at `finished` must still wait; returns the wait end.
    fn until(&self, finished: Instant, reset: Duration) -> Option<Instant> {
        if self.expired(finished, reset) {
            return None;
        }
        let end = finished + self.current?;
        (Instant::now() < end).then_some(end)
    }

    /// Records a (re)start at `now`.
    fn next(&mut self, now: Instant, initial: Duration, max: Duration, reset: Duration) {
        self.current = match self.current {
            Some(d) if !self.expired(now, reset) => Some((d * 2).min(max)),
            _ => Some(initial),
        };
        self.updated = Some(now);
    }
}

#[derive(Debug)]
struct Container {
    spec: Value,
    name: String,
    /// An init container (runs to completion, in order, before the regular containers).
    init: bool,
    /// An init container with `restartPolicy: Always` (a sidecar: keeps running).
    sidecar: bool,
    image: String,
    image_id: String,
    state: CState,
    last_state: Option<CState>,
    restart_count: i64,
    ready: bool,
    started: bool,
    container_id: Option<String>,
    instance: u64,
    ran_before: bool,
    proc: Option<Proc>,
    probes: Vec<JoinHandle<()>>,
    env: Vec<(String, String)>,
    started_instant: Option<tokio::time::Instant>,
    backoff: Backoff,
    pull_backoff: Backoff,
    pull_failures: u32,
    next_start: Option<Instant>,
    kill_reason: Option<String>,
    finished_at: Option<Instant>,
    done: bool,
}

impl Container {
    fn new(spec: &Value, init: bool, has_init: bool) -> Self {
        Self {
            name: spec["name"].as_str().unwrap_or_default().to_string(),
            init,
            sidecar: init && spec["restartPolicy"] == "Always",
            image: spec["image"].as_str().unwrap_or_default().to_string(),
            spec: spec.clone(),
            image_id: String::new(),
            state: CState::waiting(if has_init { "PodInitializing" } else { "ContainerCreating" }, None),
            last_state: None,
            restart_count: 0,
            ready: false,
            started: false,
            container_id: None,
            instance: 0,
            ran_before: false,
            proc: None,
            probes: Vec::new(),
            env: Vec::new(),
            started_instant: None,
            backoff: Backoff::default(),
            pull_backoff: Backoff::default(),
            pull_failures: 0,
            next_start: Some(Instant::now()),
            kill_reason: None,
            finished_at: None,
            done: false,
        }
    }

    /// An init container that lets the next one start: completed, or (a sidecar) started.
    fn init_satisfied(&self) -> bool {
        if self.sidecar {
            self.started && matches!(self.state, CState::Running { .. })
        } else {
            matches!(self.state, CState::Terminated { exit_code: 0, .. })
        }
    }

    /// A regular init container that failed for good (`restartPolicy: Never`).
    fn init_failed(&self) -> bool {
        self.init && !self.sidecar && self.done && !matches!(self.state, CState::Terminated { exit_code: 0, .. })
    }

    fn field_path(&self) -> String {
        let list = if self.init { "initContainers" } else { "containers" };
        format!("spec.{list}{{{}}}", self.name)
    }

    fn stop_probes(&mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
    }

    fn status_json(&self) -> Value {
        let mut s = json!({
            "name": self.name, "image": self.image, "imageID": self.image_id,
            "ready": self.ready, "started": self.started, "restartCount": self.restart_count,
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map_or(json!({}), CState::to_json),
        });
        if let Some(id) = &self.container_id {
            s["containerID"] = json!(id);
        }
        s
    }
}

/// A pod worker.
pub(crate) struct Worker {
    ctx: Arc<NodeCtx>,
    pod: Arc<Value>,
    uid: String,
    ns: String,
    name: String,
    pod_ip: Option<Ipv4Addr>,
    host_network: bool,
    start_time: String,
    containers: Vec<Container>,
    transitions: Transitions,
    last_written: Option<Value>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    terminated: bool,
    work_dir: PathBuf,
}

fn short(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{}s", s as u64) } else { format!("{s}s") }
}

fn new_container_id() -> String {
    format!("hadrill://{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Worker {
    pub(crate) fn new(ctx: Arc<NodeCtx>, pod: Arc<Value>) -> Self {
        let meta = &pod["metadata"];
        let uid = meta["uid"].as_str().unwrap_or_default().to_string();
        let ns = meta["namespace"].as_str().unwrap_or("default").to_string();
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let inits = pod["spec"]["initContainers"].as_array().cloned().unwrap_or_default();
        let has_init = !inits.is_empty();
        let containers = inits
            .iter()
            .map(|c| Container::new(c, true, has_init))
            .chain(
                pod["spec"]["containers"].as_array().into_iter().flatten().map(|c| Container::new(c, false, has_init)),
            )
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut transitions = Transitions::default();
        for c in pod["status"]["conditions"].as_array().into_iter().flatten() {
            if c["type"] == "PodScheduled" {
                transitions.seed(
                    "PodScheduled",
                    c["status"].as_str().unwrap_or("True"),
                    c["lastTransitionTime"].as_str().unwrap_or_default(),
                );
            }
        }
        let work_dir = ctx.run_dir.join("pods").join(format!("{ns}_{name}_{uid}"));
        Self {
            host_network: pod["spec"]["hostNetwork"].as_bool() == Some(true),
            ctx,
            pod,
            uid,
            ns,
            name,
            pod_ip: None,
            start_time: now_rfc3339(),
            containers,
            transitions,
            last_written: None,
            tx,
            rx,
            terminated: false,
            work_dir,
        }
    }

    fn deleting(&self) -> bool {
        !self.pod["metadata"]["deletionTimestamp"].is_null()
    }

    fn restart_policy(&self) -> String {
        self.pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string()
    }

    fn event(&self, container: Option<&str>, kind: super::events::EventType, reason: &str, message: &str) {
        let path = container.and_then(|n| self.containers.iter().find(|c| c.name == n)).map(Container::field_path);
        self.ctx.events.pod(&self.pod, path.as_deref(), kind, reason, message);
    }

    /// Runs until the pod is gone from the API or the kubelet stops.
    pub(crate) async fn run(mut self, mut pod_rx: watch::Receiver<Option<Arc<Value>>>) {
        let mut stop = self.ctx.stop.subscribe();
        self.ctx.controls.lock().unwrap_or_else(|p| p.into_inner()).insert(self.uid.clone(), self.tx.clone());
        self.admit();
        loop {
            if self.deleting() && !self.terminated {
                match self.terminate(&mut pod_rx, &mut stop).await {
                    Flow::Continue => {}
                    Flow::Gone => break,
                    Flow::Stopped => return self.cleanup().await,
                }
                continue;
            }
            if !self.terminated {
                self.start_due().await;
            }
            self.sync_status();
            let wake = self.next_wake();
            tokio::select! {
                Some(msg) = self.rx.recv() => self.handle(msg),
                changed = pod_rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    match pod_rx.borrow_and_update().clone() {
                        Some(p) => {
                            self.pod = p;
                            self.apply_image_changes();
                        }
                        None => break,
                    }
                }
                () = sleep_until_opt(wake) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        self.cleanup().await;
    }

    fn admit(&mut self) {
        if self.host_network {
            self.pod_ip = Some(self.ctx.host_ip);
        } else {
            let ip = self.ctx.ipam.lock().unwrap_or_else(|p| p.into_inner()).allocate();
            if ip.is_none() {
                tracing::warn!(pod = %self.name, node = %self.ctx.node, "no pod IP left on the node");
            }
            self.pod_ip = ip;
        }
        if let Err(e) = std::fs::create_dir_all(&self.work_dir) {
            tracing::warn!(dir = %self.work_dir.display(), error = %e, "cannot create the pod directory");
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        if self.terminated {
            return None;
        }
        self.containers.iter().filter(|c| c.proc.is_none() && !c.done).filter_map(|c| c.next_start).min()
    }

    /// Starts what is due: init containers one by one (each waits for the previous to complete,
    /// or to start for a sidecar), then the regular containers.
    async fn start_due(&mut self) {
        let now = Instant::now();
        for idx in 0..self.containers.len() {
            let c = &self.containers[idx];
            let idle = c.proc.is_none() && !c.done && !matches!(c.state, CState::Running { .. });
            if idle && c.next_start.is_some_and(|t| t <= now) {
                self.start(idx).await;
            }
            let c = &self.containers[idx];
            if c.init && !c.init_satisfied() {
                return;
            }
        }
    }

    fn is_init(&self, name: &str) -> bool {
        self.containers.iter().any(|c| c.init && c.name == name)
    }

    fn init_done(&self) -> bool {
        self.containers.iter().filter(|c| c.init).all(Container::init_satisfied)
    }

    fn pod_ip_text(&self) -> String {
        self.pod_ip.map(|ip| ip.to_string()).unwrap_or_default()
    }

    /// Starts container `idx` (or records why it cannot start).
    async fn start(&mut self, idx: usize) {
        let cfg = self.ctx.config.clone();
        let now = Instant::now();
        let Some(pod_ip) = self.pod_ip else {
            self.containers[idx].next_start = Some(now + cfg.backoff_initial);
            return;
        };
        let image = self.containers[idx].image.clone();
        let name = self.containers[idx].name.clone();
        // A pod-failure pause container ignores the container's command, as the real image would.
        let pause = cfg.pause_image.as_deref() == Some(image.as_str());
        let entry = if pause { images::pause_entry() } else { cfg.images.lookup(&image) };
        if let Some(e) = &entry
            && !e.command.is_file()
        {
            return self.pull_failed(idx, e);
        }
        let env = match self.build_env(idx) {
            Ok(env) => env,
            Err(msg) => {
                let c = &mut self.containers[idx];
                c.state = CState::waiting("CreateContainerConfigError", Some(msg.clone()));
                c.next_start = Some(now + cfg.backoff_initial);
                self.event(Some(&name), Warning, "Failed", &format!("Error: {msg}"));
                return;
            }
        };
        {
            let c = &mut self.containers[idx];
            c.pull_failures = 0;
            c.pull_backoff = Backoff::default();
            c.image_id = images::image_id(&image, entry.as_ref());
            if c.ran_before {
                c.backoff.next(now, cfg.backoff_initial, cfg.backoff_max, cfg.backoff_reset);
                c.restart_count += 1;
            }
            c.ran_before = true;
            c.instance += 1;
            c.kill_reason = None;
            c.finished_at = None;
            c.next_start = None;
            c.container_id = Some(new_container_id());
        }
        self.event(Some(&name), Normal, "Pulled", &format!("Container image \"{image}\" already present on machine"));
        let Some(entry) = entry else {
            // A virtual container: running and ready at once, no process, an empty log.
            self.ctx.logs.start_instance(&self.uid, &name).close();
            let c = &mut self.containers[idx];
            c.state = CState::Running { started_at: now_rfc3339() };
            c.started = true;
            c.ready = true;
            self.event(Some(&name), Normal, "Created", &format!("Created container: {name}"));
            self.event(Some(&name), Normal, "Started", &format!("Started container {name}"));
            return;
        };
        let spec = if pause {
            let cwd = self.work_dir.join(&name);
            let _ = std::fs::create_dir_all(&cwd);
            ProcSpec { program: entry.command.clone(), args: entry.args.clone(), env: env.clone().into_vars(), cwd }
        } else {
            self.proc_spec(idx, &entry, env.clone())
        };
        let log = self.ctx.logs.start_instance(&self.uid, &name);
        let started_at = now_rfc3339();
        match self.ctx.runtime.start(spec, log.clone()).await {
            Ok(proc) => {
                self.event(Some(&name), Normal, "Created", &format!("Created container: {name}"));
                self.event(Some(&name), Normal, "Started", &format!("Started container {name}"));
                let c = &mut self.containers[idx];
                c.state = CState::Running { started_at };
                c.env = env.into_vars();
                c.started_instant = Some(tokio::time::Instant::now());
                let instance = c.instance;
                let tx = self.tx.clone();
                let p = proc.clone();
                tokio::spawn(async move {
                    let exit = p.wait().await;
                    let _ = tx.send(Msg::Exited { idx, instance, exit });
                });
                c.proc = Some(proc);
                self.start_probes(idx, pod_ip, true);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                log.push(format!("{msg}\n"));
                log.close();
                self.event(
                    Some(&name),
                    Warning,
                    "Failed",
                    &format!("Error: failed to start container \"{name}\": {msg}"),
                );
                let c = &mut self.containers[idx];
                let id = c.container_id.clone();
                let finished = now_rfc3339();
                self.finished(
                    idx,
                    CState::Terminated {
                        exit_code: 128,
                        signal: None,
                        reason: "StartError".into(),
                        message: Some(msg),
                        started_at: Some(finished.clone()),
                        finished_at: finished,
                        container_id: id,
                    },
                    false,
                );
            }
        }
    }

    fn pull_failed(&mut self, idx: usize, entry: &ImageEntry) {
        let cfg = self.ctx.config.clone();
        let now = Instant::now();
        let c = &mut self.containers[idx];
        let image = c.image.clone();
        let name = c.name.clone();
        let detail = format!(
            "image \"{image}\" maps to executable {} which does not exist (hadrill image map)",
            entry.command.display()
        );
        c.pull_failures += 1;
        c.pull_backoff.next(now, cfg.backoff_initial, cfg.backoff_max, cfg.backoff_reset);
        c.next_start = c.pull_backoff.current.map(|d| now + d);
        let first = c.pull_failures == 1;
        c.state = if first {
            CState::waiting("ErrImagePull", Some(detail.clone()))
        } else {
            CState::waiting("ImagePullBackOff", Some(format!("Back-off pulling image \"{image}\": {detail}")))
        };
        self.event(Some(&name), Warning, "Failed", &format!("Failed to pull image \"{image}\": {detail}"));
        if first {
            self.event(Some(&name), Warning, "Failed", "Error: ErrImagePull");
        } else {
            self.event(Some(&name), Normal, "BackOff", &format!("Back-off pulling image \"{image}\""));
            self.event(Some(&name), Warning, "Failed", "Error: ImagePullBackOff");
        }
    }

    fn build_env(&self, idx: usize) -> Result<env::Env, String> {
        let pod = &self.pod;
        let sa = pod["spec"]["serviceAccountName"].as_str().unwrap_or("default");
        let kubeconfig = match self.ctx.config.kubeconfig_for.as_ref().and_then(|hook| hook(&self.ns, sa)) {
            Some(path) => Some(path),
            None => self
                .ctx
                .service_account_kubeconfig(&self.ns, sa)
                .map_err(|e| format!("writing the kubeconfig of ServiceAccount {}/{sa}: {e:#}", self.ns))?,
        }
        .map(|p| p.display().to_string());
        let pod_ip = self.pod_ip_text();
        let host_ip = self.ctx.host_ip.to_string();
        let ctx = EnvContext {
            pod,
            pod_ip: &pod_ip,
            host_ip: &host_ip,
            api_server: self.ctx.config.api_server.map(|a| (a.ip().to_string(), a.port())),
            kubeconfig,
        };
        let mut env = env::build(&self.ctx.api, &ctx, &self.containers[idx].spec)?;
        if env.get("PATH").is_none() {
            env.set("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
        }
        if env.get("HOME").is_none() {
            env.set("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()));
        }
        if env.get("HOSTNAME").is_none() {
            env.set("HOSTNAME", self.name.clone());
        }
        Ok(env)
    }

    fn proc_spec(&self, idx: usize, entry: &ImageEntry, env: env::Env) -> ProcSpec {
        let spec = &self.containers[idx].spec;
        let strings = |v: &Value| -> Option<Vec<String>> {
            let a = v.as_array()?;
            (!a.is_empty()).then(|| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        };
        let command = strings(&spec["command"]);
        let args = strings(&spec["args"]);
        let (program, mut argv) = match command {
            Some(cmd) => {
                let cmd = env::expand_all(&cmd, &env);
                let (first, rest) = cmd.split_first().map(|(f, r)| (f.clone(), r.to_vec())).unwrap_or_default();
                (PathBuf::from(first), rest)
            }
            None => (entry.command.clone(), if args.is_some() { Vec::new() } else { entry.args.clone() }),
        };
        if let Some(a) = args {
            argv.extend(env::expand_all(&a, &env));
        }
        ProcSpec { program, args: argv, env: env.into_vars(), cwd: self.working_dir(idx) }
    }

    /// The container's `workingDir`, else its directory under the pod's (created on demand).
    fn working_dir(&self, idx: usize) -> PathBuf {
        match self.containers[idx].spec["workingDir"].as_str().filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                let dir = self.work_dir.join(&self.containers[idx].name);
                let _ = std::fs::create_dir_all(&dir);
                dir
            }
        }
    }

    /// What `kubectl exec` into container `name` needs: its environment and working directory
    /// while its process runs.
    fn exec_target(&self, name: &str) -> Result<super::exec::Target, super::exec::Refusal> {
        use super::exec::{Refusal, Target};
        let idx = self.containers.iter().position(|c| c.name == name).ok_or(Refusal::NotRunning)?;
        let c = &self.containers[idx];
        match (&c.proc, &c.state) {
            (Some(_), _) => Ok(Target { env: c.env.clone(), cwd: self.working_dir(idx) }),
            (None, CState::Running { .. }) => Err(Refusal::Virtual { image: c.image.clone() }),
            _ => Err(Refusal::NotRunning),
        }
    }

    /// Spawns the probe workers of a running container: the startup probe first (the others
    /// wait for it), else liveness and readiness.
    fn start_probes(&mut self, idx: usize, pod_ip: Ipv4Addr, fresh: bool) {
        let ip = pod_ip.to_string();
        let c = &mut self.containers[idx];
        let startup = Probe::parse(ProbeKind::Startup, &c.spec, &ip);
        let kinds: &[ProbeKind] = if fresh && startup.is_some() {
            c.started = false;
            &[ProbeKind::Startup]
        } else {
            c.started = true;
            &[ProbeKind::Liveness, ProbeKind::Readiness]
        };
        let has_readiness = c.spec["readinessProbe"].is_object();
        c.ready = c.started && !has_readiness;
        let started = c.started_instant.unwrap_or_else(tokio::time::Instant::now);
        for &kind in kinds {
            let Some(probe) = Probe::parse(kind, &c.spec, &ip) else { continue };
            let tx = self.tx.clone();
            let instance = c.instance;
            let report = move |event| {
                let _ = tx.send(Msg::Probe { idx, instance, kind, event });
            };
            c.probes.push(tokio::spawn(probes::worker(kind, probe, c.env.clone(), started, report)));
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Exited { idx, instance, exit } => {
                let Some(c) = self.containers.get_mut(idx) else { return };
                if c.instance != instance || c.proc.is_none() {
                    return;
                }
                c.proc = None;
                let started_at = match &c.state {
                    CState::Running { started_at } => Some(started_at.clone()),
                    _ => None,
                };
                let liveness_kill = c.kill_reason.is_some();
                let state = CState::Terminated {
                    exit_code: exit.code,
                    signal: exit.signal,
                    reason: if exit.code == 0 { "Completed" } else { "Error" }.into(),
                    message: None,
                    started_at,
                    finished_at: now_rfc3339(),
                    container_id: c.container_id.clone(),
                };
                self.finished(idx, state, liveness_kill);
            }
            Msg::Kill { container, reply } => {
                let _ = reply.send(self.kill(&container));
            }
            Msg::ExecTarget { container, reply } => {
                let _ = reply.send(self.exec_target(&container));
            }
            Msg::Probe { idx, instance, kind, event } => {
                let Some(c) = self.containers.get(idx) else { return };
                if c.instance != instance || c.proc.is_none() || c.kill_reason.is_some() {
                    return;
                }
                let name = c.name.clone();
                match event {
                    ProbeEvent::Failed(out) => {
                        self.event(Some(&name), Warning, "Unhealthy", &format!("{} probe failed: {out}", kind.label()))
                    }
                    ProbeEvent::Result(ok) => self.probe_result(idx, kind, ok),
                }
            }
        }
    }

    /// Kills regular container `name`: SIGKILL to its process group (the exit is then handled
    /// as any other, restart policy included); a virtual container ends at once with 137.
    fn kill(&mut self, name: &str) -> Result<(), String> {
        let Some(idx) = self.containers.iter().position(|c| !c.init && c.name == name) else {
            return Err(format!("pod {}/{} has no container {name:?}", self.ns, self.name));
        };
        let c = &mut self.containers[idx];
        if let Some(p) = &c.proc {
            p.signal(libc::SIGKILL);
            return Ok(());
        }
        let CState::Running { started_at } = &c.state else {
            return Err(format!("container {name:?} of pod {}/{} is not running", self.ns, self.name));
        };
        let state = CState::Terminated {
            exit_code: 137,
            signal: Some(libc::SIGKILL),
            reason: "Error".into(),
            message: None,
            started_at: Some(started_at.clone()),
            finished_at: now_rfc3339(),
            container_id: c.container_id.clone(),
        };
        self.finished(idx, state, false);
        Ok(())
    }

    fn probe_result(&mut self, idx: usize, kind: ProbeKind, ok: bool) {
        let pod_ip = self.pod_ip;
        let c = &mut self.containers[idx];
        match (kind, ok) {
            (ProbeKind::Readiness, ok) => c.ready = ok && c.started,
            (ProbeKind::Startup, true) => {
                if let Some(ip) = pod_ip {
                    self.start_probes(idx, ip, false);
                }
            }
            (ProbeKind::Startup | ProbeKind::Liveness, false) => {
                let what = if kind == ProbeKind::Startup { "startup" } else { "liveness" };
                let name = c.name.clone();
                c.kill_reason = Some(what.into());
                c.stop_probes();
                c.ready = false;
                let grace = Probe::parse(kind, &c.spec, "")
                    .and_then(|p| p.termination_grace)
                    .or_else(|| self.pod["spec"]["terminationGracePeriodSeconds"].as_i64())
                    .unwrap_or(30);
                if let Some(p) = c.proc.clone() {
                    tokio::spawn(async move {
                        p.stop(Duration::from_secs(u64::try_from(grace).unwrap_or(0))).await;
                    });
                }
                self.event(
                    Some(&name),
                    Normal,
                    "Killing",
                    &format!("Container {name} failed {what} probe, will be restarted"),
                );
            }
            (ProbeKind::Liveness, true) => {}
        }
    }

    /// A container whose image changed in the pod spec is killed and restarted with the new
    /// image, whatever the restart policy (the kubelet's "definition changed").
    fn apply_image_changes(&mut self) {
        if self.deleting() {
            return;
        }
        let grace = self.pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        for idx in 0..self.containers.len() {
            let c = &self.containers[idx];
            let list = if c.init { "initContainers" } else { "containers" };
            let Some(spec) = self.pod["spec"][list]
                .as_array()
                .and_then(|l| l.iter().find(|x| x["name"] == c.name.as_str()))
                .cloned()
            else {
                continue;
            };
            let image = spec["image"].as_str().unwrap_or_default().to_string();
            if image == c.image {
                continue;
            }
            let name = c.name.clone();
            let c = &mut self.containers[idx];
            c.image = image;
            c.spec = spec;
            let was_started = c.ran_before;
            c.done = false;
            if let Some(p) = c.proc.clone() {
                c.kill_reason = Some(DEFINITION_CHANGED.into());
                c.stop_probes();
                c.ready = false;
                tokio::spawn(async move {
                    p.stop(Duration::from_secs(grace)).await;
                });
            } else if matches!(c.state, CState::Running { .. }) {
                c.last_state = Some(CState::Terminated {
                    exit_code: 0,
                    signal: None,
                    reason: "Completed".into(),
                    message: None,
                    started_at: None,
                    finished_at: now_rfc3339(),
                    container_id: c.container_id.clone(),
                });
                c.state = CState::waiting("ContainerCreating", None);
                c.next_start = Some(Instant::now());
            } else {
                c.next_start = Some(Instant::now());
            }
            if was_started {
                self.event(
                    Some(&name),
                    Normal,
                    "Killing",
                    &format!("Container {name} definition changed, will be restarted"),
                );
            }
        }
    }

    /// Records a container's end and decides about its restart.
    fn finished(&mut self, idx: usize, state: CState, probe_kill: bool) {
        let cfg = self.ctx.config.clone();
        let policy = self.restart_policy();
        let pod_desc = format!("{}_{}({})", self.name, self.ns, self.uid);
        let terminating = self.deleting();
        let c = &mut self.containers[idx];
        c.stop_probes();
        c.ready = false;
        c.started = false;
        let now = Instant::now();
        c.finished_at = Some(now);
        let failed = match &state {
            CState::Terminated { exit_code, .. } => *exit_code != 0,
            _ => true,
        };
        let changed = c.kill_reason.as_deref() == Some(DEFINITION_CHANGED);
        let restart = !terminating
            && if c.sidecar || changed {
                true
            } else if c.init {
                failed && policy != "Never"
            } else {
                match policy.as_str() {
                    "Never" => false,
                    "OnFailure" => failed || probe_kill,
                    _ => true,
                }
            };
        if !restart {
            c.state = state;
            c.done = true;
            c.next_start = None;
            return;
        }
        match c.backoff.until(now, cfg.backoff_reset) {
            Some(until) => {
                let wait = c.backoff.current.unwrap_or(cfg.backoff_initial);
                let name = c.name.clone();
                c.last_state = Some(state);
                c.state = CState::waiting(
                    "CrashLoopBackOff",
                    Some(format!("back-off {} restarting failed container={name} pod={pod_desc}", short(wait))),
                );
                c.next_start = Some(until);
                self.event(
                    Some(&name),
                    Warning,
                    "BackOff",
                    &format!("Back-off restarting failed container {name} in pod {pod_desc}"),
                );
            }
            None => {
                c.last_state = Some(state);
                c.state = CState::waiting("ContainerCreating", None);
                c.next_start = Some(now);
            }
        }
    }

    /// Regular containers and sidecars (what pod readiness is made of).
    fn views(&self) -> Vec<ContainerView> {
        self.containers
            .iter()
            .filter(|c| !c.init || c.sidecar)
            .map(|c| ContainerView {
                name: c.name.clone(),
                state: c.state.clone(),
                last_terminated: c.last_state.is_some(),
                ready: c.ready,
            })
            .collect()
    }

    fn compute_status(&mut self) -> Value {
        let views = self.views();
        let regular: Vec<ContainerView> = views.iter().filter(|v| !self.is_init(&v.name)).cloned().collect();
        let init_done = self.init_done();
        let phase = if self.containers.iter().any(Container::init_failed) {
            "Failed"
        } else if !init_done && !self.terminated {
            "Pending"
        } else {
            status::phase(&self.restart_policy(), &regular, self.terminated)
        };
        let incomplete: Vec<&str> =
            self.containers.iter().filter(|c| c.init && !c.init_satisfied()).map(|c| c.name.as_str()).collect();
        let gates: Vec<(String, bool)> = self.pod["spec"]["readinessGates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["conditionType"].as_str())
            .map(|t| {
                let ok = self.pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == t && c["status"] == "True");
                (t.to_string(), ok)
            })
            .collect();
        let conditions =
            status::conditions(&mut self.transitions, phase, &views, &gates, &incomplete, self.pod_ip.is_some());
        let host_ip = self.ctx.host_ip.to_string();
        let mut s = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "startTime": self.start_time,
            "qosClass": status::qos_class(&self.pod["spec"]),
            "containerStatuses":
                self.containers.iter().filter(|c| !c.init).map(Container::status_json).collect::<Vec<_>>(),
        });
        if self.containers.iter().any(|c| c.init) {
            s["initContainerStatuses"] =
                json!(self.containers.iter().filter(|c| c.init).map(Container::status_json).collect::<Vec<_>>());
        }
        // PodObservedGenerationTracking (on by default since v1.34).
        if let Some(generation) = self.pod["metadata"]["generation"].as_i64() {
            s["observedGeneration"] = json!(generation);
            for c in s["conditions"].as_array_mut().into_iter().flatten() {
                c["observedGeneration"] = json!(generation);
            }
        }
        if let Some(ip) = self.pod_ip {
            s["podIP"] = json!(ip.to_string());
            s["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        s
    }

    /// Writes the status when it changed since the last write.
    fn sync_status(&mut self) {
        // A node cut off from the network cannot reach the API server: its pods' status stays
        // as last written (Ready) until the node lifecycle controller marks them, as on a real
        // cluster. The next sync after the heartbeat resumes writes the current status.
        if !*self.ctx.heartbeat.borrow() {
            return;
        }
        let status = self.compute_status();
        if self.last_written.as_ref() == Some(&status) {
            return;
        }
        let uid = self.uid.clone();
        let result = super::update_status(&self.ctx.api, "pods", &self.ns, &self.name, |pod| {
            if pod["metadata"]["uid"] != uid.as_str() {
                return false;
            }
            let mut next = status.clone();
            let foreign: Vec<Value> = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| !c["type"].as_str().is_some_and(|t| status::OWNED_CONDITIONS.contains(&t)))
                .cloned()
                .collect();
            if let Some(list) = next["conditions"].as_array_mut() {
                list.extend(foreign);
            }
            for keep in ["nominatedNodeName", "resize", "resourceClaimStatuses"] {
                if !pod["status"][keep].is_null() {
                    next[keep] = pod["status"][keep].clone();
                }
            }
            pod["status"] = next;
            true
        });
        match result {
            Ok(_) => self.last_written = Some(status),
            Err(e) => tracing::warn!(pod = %self.name, error = %e, "kubelet could not write the pod status"),
        }
    }

    /// Graceful deletion: stop every container (SIGTERM, grace, SIGKILL), report the terminal
    /// status, and remove the pod (grace 0, uid precondition).
    async fn terminate(
        &mut self,
        pod_rx: &mut watch::Receiver<Option<Arc<Value>>>,
        stop: &mut watch::Receiver<bool>,
    ) -> Flow {
        let grace_of =
            |pod: &Value| Duration::from_secs(pod["metadata"]["deletionGracePeriodSeconds"].as_u64().unwrap_or(0));
        let begun = tokio::time::Instant::now();
        let mut deadline = begun + grace_of(&self.pod);
        for c in &mut self.containers {
            c.stop_probes();
            c.next_start = None;
            if let Some(p) = &c.proc {
                p.signal(libc::SIGTERM);
            }
        }
        let names: Vec<String> = self.containers.iter().filter(|c| c.proc.is_some()).map(|c| c.name.clone()).collect();
        for n in &names {
            self.event(Some(n), Normal, "Killing", &format!("Stopping container {n}"));
        }
        let mut killed = false;
        while self.containers.iter().any(|c| c.proc.is_some()) {
            tokio::select! {
                Some(msg) = self.rx.recv() => {
                    if matches!(msg, Msg::Exited { .. }) {
                        self.handle(msg);
                    }
                }
                changed = pod_rx.changed() => {
                    let next = if changed.is_ok() { pod_rx.borrow_and_update().clone() } else { None };
                    match next {
                        Some(p) => {
                            deadline = deadline.min(begun + grace_of(&p));
                            self.pod = p;
                        }
                        None => return Flow::Gone,
                    }
                }
                () = tokio::time::sleep_until(deadline), if !killed => {
                    killed = true;
                    for c in &self.containers {
                        if let Some(p) = &c.proc {
                            p.signal(libc::SIGKILL);
                        }
                    }
                }
                _ = stop.wait_for(|s| *s) => return Flow::Stopped,
            }
        }
        for c in &mut self.containers {
            c.ready = false;
            c.started = false;
            if let CState::Waiting { .. } = c.state {
                c.state = match c.last_state.take() {
                    Some(last) => last,
                    None => CState::Terminated {
                        exit_code: 137,
                        signal: None,
                        reason: "ContainerStatusUnknown".into(),
                        message: Some("The container could not be located when the pod was terminated".into()),
                        started_at: None,
                        finished_at: now_rfc3339(),
                        container_id: None,
                    },
                };
            } else if let CState::Running { started_at } = &c.state {
                // A virtual container stops at once, successfully.
                c.state = CState::Terminated {
                    exit_code: 0,
                    signal: None,
                    reason: "Completed".into(),
                    message: None,
                    started_at: Some(started_at.clone()),
                    finished_at: now_rfc3339(),
                    container_id: c.container_id.clone(),
                };
            }
            c.done = true;
        }
        self.terminated = true;
        self.sync_status();
        if let Ok(rt) = self.ctx.api.resource("", "v1", "pods") {
            let opts =
                DeleteOptions { grace_period: Some(0), precondition_uid: Some(self.uid.clone()), ..Default::default() };
            match self.ctx.api.delete(&rt, &self.ns, &self.name, &opts) {
                Ok(_) => {}
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!(pod = %self.name, error = %e, "kubelet could not remove a terminated pod"),
            }
        }
        Flow::Continue
    }

    /// Kills what is left and frees the pod's resources.
    async fn cleanup(mut self) {
        self.ctx.controls.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.uid);
        let procs: Vec<Proc> = self.containers.iter_mut().filter_map(|c| c.proc.take()).collect();
        for c in &mut self.containers {
            c.stop_probes();
        }
        for p in &procs {
            p.signal(libc::SIGKILL);
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(procs.iter().map(|p| p.wait())))
            .await;
        if let Some(ip) = self.pod_ip.filter(|_| !self.host_network) {
            self.ctx.ipam.lock().unwrap_or_else(|p| p.into_inner()).release(ip);
        }
        self.ctx.logs.remove_pod(&self.uid);
        self.ctx.events.forget_pod(&self.uid);
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

/// What happened during termination.
enum Flow {
    /// Terminated; keep waiting for the pod's removal.
    Continue,
    /// The pod is gone from the API.
    Gone,
    /// The kubelet stops.
    Stopped,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
