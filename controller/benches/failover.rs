//! Failover controller benchmark on the embedded cluster: prints figures, asserts nothing about
//! speed. Workloads are virtual (Deployments/StatefulSets with one pod each, driven by status
//! patches), the controller runs in-process (white box, no dwell).
//!
//! - detection-to-switch latency, p50/p99 over 100 sequential failovers: from the status patch
//!   that makes a primary unhealthy to the Service's selector switch seen by a watch; plus the
//!   controller's own figure (first unhealthy observation to the switch write);
//! - 100 of 1,000 HA Services failing at once: time until all 100 have switched.
//!
//! Run: `cargo bench -p hadrill-controller --bench failover` (add `--profile dev` to skip the
//! optimised build).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hadrill_controller::annotations::{ACTIVE, PRIMARY, STANDBY};
use hadrill_controller::{Instance, Settings};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sim::{Sim, SimConfig};
use tokio::sync::mpsc;

const SEQUENTIAL: usize = 100;
const FLEET: usize = 1_000;
const AT_ONCE: usize = 100;
const CONCURRENCY: usize = 32;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len().saturating_sub(1))]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn status(ready: bool) -> Value {
    let r = if ready { "True" } else { "False" };
    json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": r}],
        "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": ready, "restartCount": 0,
            "state": {"running": {}}}]}})
}

/// What the Service watch reports: (name, the `app` its selector selects, `active`). The
/// watch stops with it (not when its cluster is gone, where it would retry forever).
struct Switches {
    rx: mpsc::UnboundedReceiver<(String, String, Option<String>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Switches {
    async fn recv(&mut self) -> Option<(String, String, Option<String>)> {
        self.rx.recv().await
    }
}

impl Drop for Switches {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Bench {
    sim: Sim,
    admin: Client,
}

impl Bench {
    async fn start() -> Bench {
        sim::install_crypto_provider();
        // No kubelets, scheduler, workload controllers or node lifecycle: the bench creates the
        // pods and writes pod and node status itself (as the e2e tests do), so only the
        // controller reacts to a fault. (With node lifecycle on, nodes without a kubelet go
        // Unknown after the startup grace, which building the fleet outlasts.)
        let mut config = SimConfig { nodes: 2, workload_controllers: false, ..Default::default() };
        config.kubelet.enabled = false;
        config.scheduler.enabled = false;
        config.node_lifecycle.enabled = false;
        let sim = Sim::start(config).await.expect("embedded cluster");
        let admin = sim.client().expect("admin client");
        let nodes: Api<Node> = Api::all(admin.clone());
        for n in ["hadrill-worker", "hadrill-worker2"] {
            let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            nodes.patch_status(n, &PatchParams::default(), &Patch::Merge(&p)).await.expect("node ready");
        }
        Bench { sim, admin }
    }

    /// Creates `count` HA Services `svc-N` (primary `deployment/svc-N-a`, standby
    /// `statefulset/svc-N-b`, one Ready pod each).
    async fn fleet(&self, count: usize) {
        let admin = self.admin.clone();
        futures::stream::iter(0..count)
            .map(|i| {
                let admin = admin.clone();
                async move { ha_service(&admin, i).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    /// A watch on Services reporting (name, selected app, active annotation).
    fn watch(&self) -> Switches {
        let (tx, rx) = mpsc::unbounded_channel();
        let services: Api<Service> = Api::namespaced(self.admin.clone(), "default");
        let task = tokio::spawn(async move {
            // A watch error (a relist, a closed connection) is reported and recovered from
            // with back-off; ending the loop on it would look like a stalled controller.
            let stream = watcher(services, watcher::Config::default()).default_backoff().applied_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(next) = stream.next().await {
                let s = match next {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("service watch error (recovering): {e}");
                        continue;
                    }
                };
                let app = s.spec.as_ref().and_then(|s| s.selector.as_ref()).and_then(|s| s.get("app").cloned());
                let active = s.annotations().get(ACTIVE).cloned();
                if tx.send((s.name_any(), app.unwrap_or_default(), active)).is_err() {
                    return;
                }
            }
        });
        Switches { rx, task }
    }

    async fn fail(&self, i: usize) {
        let pods: Api<Pod> = Api::namespaced(self.admin.clone(), "default");
        pods.patch_status(&format!("svc-{i}-a-0"), &PatchParams::default(), &Patch::Merge(&status(false)))
            .await
            .expect("fail pod");
    }
}

async fn ha_service(admin: &Client, i: usize) {
    let (a, b) = (format!("svc-{i}-a"), format!("svc-{i}-b"));
    let template = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "app", "image": "i"}]}});
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": a},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": a}}, "template": template(&a)}}))
    .expect("deployment");
    Api::<Deployment>::namespaced(admin.clone(), "default").create(&PostParams::default(), &d).await.expect("create");
    let s: StatefulSet = serde_json::from_value(json!({"metadata": {"name": b},
        "spec": {"replicas": 1, "serviceName": b, "selector": {"matchLabels": {"app": b}}, "template": template(&b)}}))
    .expect("statefulset");
    Api::<StatefulSet>::namespaced(admin.clone(), "default").create(&PostParams::default(), &s).await.expect("create");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    for (app, node) in [(&a, "hadrill-worker"), (&b, "hadrill-worker2")] {
        let name = format!("{app}-0");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "i"}]}}))
        .expect("pod");
        pods.create(&PostParams::default(), &pod).await.expect("create pod");
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status(true))).await.expect("ready");
    }
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": format!("svc-{i}"), "annotations": {
            PRIMARY: format!("deployment/{a}"), STANDBY: format!("statefulset/{b}")}},
        "spec": {"selector": {"app": a}, "ports": [{"port": 80}]}}))
    .expect("service");
    Api::<Service>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .expect("create svc");
}

/// Reads the watch until `done` holds for the state (name → (app, active)).
async fn until(
    rx: &mut Switches,
    state: &mut HashMap<String, (String, Option<String>)>,
    done: impl Fn(&HashMap<String, (String, Option<String>)>) -> bool,
) {
    while !done(state) {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some((name, app, active))) => {
                state.insert(name, (app, active));
            }
            _ => panic!("service watch stalled"),
        }
    }
}

/// A running controller: its handle, and a stop that waits for it to finish.
struct Running {
    handle: hadrill_controller::Handle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) -> hadrill_controller::Handle {
        let _ = self.stop.send(());
        if let Ok(Err(e)) = self.task.await {
            eprintln!("controller stopped with an error: {e:#}");
        }
        self.handle
    }
}

fn start_controller(bench: &Bench) -> Running {
    let mut settings = Settings { identity: "bench".into(), ..Settings::default() };
    settings.checks.black_box = false;
    settings.policy.dwell = Duration::ZERO;
    let instance = Instance::new(bench.sim.client().expect("client"), settings);
    let handle = instance.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(instance.run(async move {
        let _ = stopped.await;
    }));
    Running { handle, stop, task }
}

fn adopted(n: usize) -> impl Fn(&HashMap<String, (String, Option<String>)>) -> bool {
    move |s| s.values().filter(|(_, active)| active.as_deref() == Some("primary")).count() >= n
}

async fn sequential() {
    let bench = Bench::start().await;
    let mut rx = bench.watch();
    let controller = start_controller(&bench);
    bench.fleet(SEQUENTIAL).await;
    let mut state = HashMap::new();
    until(&mut rx, &mut state, adopted(SEQUENTIAL)).await;
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let name = format!("svc-{i}");
        let standby = format!("svc-{i}-b");
        let t0 = Instant::now();
        bench.fail(i).await;
        until(&mut rx, &mut state, |s| s.get(&name).is_some_and(|(app, _)| *app == standby)).await;
        latencies.push(t0.elapsed());
    }
    latencies.sort();
    println!(
        "detection-to-switch over {SEQUENTIAL} failovers (status patch -> selector switch seen by a watch): p50 {}, p99 {}, max {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
    );
    let handle = controller.stop().await;
    let (count, sum) = handle.metrics.detection_to_switch_totals();
    println!(
        "  controller's own hadrill_detection_to_switch_seconds (first unhealthy observation -> switch written): \
         {count} switches, mean {}",
        ms(Duration::from_secs_f64(sum / count.max(1) as f64))
    );
}

async fn burst() {
    let bench = Bench::start().await;
    let mut rx = bench.watch();
    let t_setup = Instant::now();
    bench.fleet(FLEET).await;
    let created = t_setup.elapsed();
    let t_adopt = Instant::now();
    let controller = start_controller(&bench);
    let mut state = HashMap::new();
    until(&mut rx, &mut state, adopted(FLEET)).await;
    println!(
        "{FLEET} HA Services created in {} ({} workloads, {} pods); controller start to all adopted: {}",
        ms(created),
        2 * FLEET,
        2 * FLEET,
        ms(t_adopt.elapsed())
    );
    // Every 10th Service fails, all at once.
    let failing: Vec<usize> = (0..FLEET).step_by(FLEET / AT_ONCE).take(AT_ONCE).collect();
    let t0 = Instant::now();
    let patches = futures::stream::iter(failing.clone())
        .map(|i| {
            let b = &bench;
            async move { b.fail(i).await }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>();
    let mut switched_at: HashMap<String, Duration> = HashMap::new();
    let targets: HashMap<String, String> = failing.iter().map(|i| (format!("svc-{i}"), format!("svc-{i}-b"))).collect();
    let observe = async {
        while switched_at.len() < AT_ONCE {
            match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
                Ok(Some((name, app, _))) => {
                    if targets.get(&name) == Some(&app) {
                        switched_at.entry(name).or_insert_with(|| t0.elapsed());
                    }
                }
                Ok(None) => panic!("the service watch ended"),
                Err(_) => panic!("{} of {AT_ONCE} Services switched, none more within 120 s", switched_at.len()),
            }
        }
    };
    let (_, patched) = tokio::join!(observe, async {
        patches.await;
        t0.elapsed()
    });
    let mut times: Vec<Duration> = switched_at.into_values().collect();
    times.sort();
    println!(
        "{AT_ONCE} of {FLEET} HA Services failed at once: all switched {} after the first fault (faults injected over {}); \
         first {}, p50 {}, p99 {}",
        ms(times[times.len() - 1]),
        ms(patched),
        ms(times[0]),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
    );
    let handle = controller.stop().await;
    let (count, sum) = handle.metrics.reconcile_totals();
    let text = handle.metrics.encode();
    let errors = text.lines().find_map(|l| l.strip_prefix("hadrill_reconcile_errors_total ")).unwrap_or("?");
    println!(
        "  reconciles: {count} ({errors} failed), mean duration {} (API calls included)",
        ms(Duration::from_secs_f64(sum / count.max(1) as f64))
    );
}

#[tokio::main]
async fn main() {
    sequential().await;
    burst().await;
}
