//! Test environment: an embedded cluster with the deploy/controller manifests applied, the
//! controller running in-process as its ServiceAccount, and fixtures driven by status patches
//! (the embedded cluster here runs no kubelet, scheduler or workload controllers).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use hadrill_controller::annotations;
use hadrill_controller::{Handle, Instance, Settings};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sim::{Sim, SimConfig};
use tokio::task::JoinHandle;

/// Namespace of the test workloads.
pub const NS: &str = "default";
/// Namespace and ServiceAccount of the controller (deploy/controller).
pub const CONTROLLER_NS: &str = "hadrill-system";
/// ServiceAccount of the controller.
pub const CONTROLLER_SA: &str = "hadrill-controller";
/// The nodes of the embedded cluster.
pub const NODE1: &str = "hadrill-worker";
/// Second node.
pub const NODE2: &str = "hadrill-worker2";
/// Upper bound for anything the controller should do promptly (a safety net, not a sleep).
pub const PROMPTLY: Duration = Duration::from_secs(15);

/// An embedded cluster prepared for the controller.
pub struct Env {
    /// The cluster.
    pub sim: Sim,
    /// Admin client (the test acts as the workload controllers and kubelets).
    pub admin: Client,
}

impl Env {
    /// Starts a 2-node cluster, marks the nodes Ready and applies deploy/controller.
    pub async fn start() -> Env {
        sim::install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // No kubelets, scheduler or workload controllers: the tests create pods and write their
        // status themselves to stage exact health states.
        let mut config = SimConfig { nodes: 2, workload_controllers: false, ..Default::default() };
        config.kubelet.enabled = false;
        config.scheduler.enabled = false;
        let sim = Sim::start(config).await.expect("embedded cluster starts");
        let admin = sim.client().expect("admin client");
        let env = Env { sim, admin };
        for node in [NODE1, NODE2] {
            env.set_node_ready(node, "True").await;
        }
        apply_manifests(&env.admin).await;
        env
    }

    /// A client acting as the controller's ServiceAccount (authorized by deploy/ RBAC only).
    pub fn controller_client(&self) -> Client {
        self.sim.service_account_client(CONTROLLER_NS, CONTROLLER_SA).expect("service account client")
    }

    /// Starts a controller instance as the ServiceAccount.
    pub fn start_controller(&self, settings: Settings) -> Running {
        let instance = Instance::new(self.controller_client(), settings);
        let handle = instance.handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(instance.run(async move {
            let _ = stopped.await;
        }));
        Running { handle, task, stop: Some(stop) }
    }

    /// Services API.
    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.admin.clone(), NS)
    }

    /// Pods API.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), NS)
    }

    /// Sets a node's Ready condition (`True`, `False`, `Unknown`).
    pub async fn set_node_ready(&self, node: &str, status: &str) {
        let nodes: Api<Node> = Api::all(self.admin.clone());
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": "Test",
            "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
        nodes.patch_status(node, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("node status patch");
    }

    /// Creates the Deployment `name` (selector `app: NAME`) with `replicas` Ready pods.
    pub async fn deployment(&self, name: &str, replicas: usize) -> Vec<String> {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "dispatch:1"}]}}},
        }))
        .expect("deployment");
        Api::<Deployment>::namespaced(self.admin.clone(), NS)
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
        self.pods_for(name, replicas).await
    }

    /// Creates the StatefulSet `name` (selector `app: NAME`) with `replicas` Ready pods.
    pub async fn statefulset(&self, name: &str, replicas: usize) -> Vec<String> {
        let s: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "dispatch:1"}]}}},
        }))
        .expect("statefulset");
        Api::<StatefulSet>::namespaced(self.admin.clone(), NS)
            .create(&PostParams::default(), &s)
            .await
            .expect("create statefulset");
        self.pods_for(name, replicas).await
    }

    async fn pods_for(&self, workload: &str, replicas: usize) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..replicas {
            let name = format!("{workload}-{i}");
            let node = if i % 2 == 0 { NODE1 } else { NODE2 };
            self.pod(&name, workload, node, None).await;
            names.push(name);
        }
        names
    }

    /// Creates a Ready pod labelled `app: APP` on `node`, with an optional IP and HTTP readiness
    /// probe (`ip`, `port`).
    pub async fn pod(&self, name: &str, app: &str, node: &str, probe: Option<(&str, u16)>) {
        let mut container = json!({"name": "app", "image": "dispatch:1"});
        if let Some((_, port)) = probe {
            container["ports"] = json!([{"name": "http", "containerPort": port}]);
            container["readinessProbe"] = json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1});
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [container]},
        }))
        .expect("pod");
        self.pods().create(&PostParams::default(), &pod).await.expect("create pod");
        let mut status = ready_status(true, None, 0);
        if let Some((ip, _)) = probe {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        self.pod_status(name, status).await;
    }

    /// Replaces a pod's status.
    pub async fn pod_status(&self, name: &str, status: Value) {
        let patch = json!({"status": status});
        self.pods().patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("pod status patch");
    }

    /// Marks a pod Ready or not Ready (running container).
    pub async fn set_ready(&self, name: &str, ready: bool) {
        self.pod_status(name, ready_status(ready, None, 0)).await;
    }

    /// Puts a pod's container in CrashLoopBackOff with `restarts` restarts.
    pub async fn crash_loop(&self, name: &str, restarts: i32) {
        self.pod_status(name, ready_status(false, Some("CrashLoopBackOff"), restarts)).await;
    }

    /// Creates the HA Service `name` selecting `selects` with the given annotations.
    pub async fn service(&self, name: &str, selects: &str, annotations: &[(&str, &str)]) {
        let ann: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": ann},
            "spec": {"selector": {"app": selects}, "ports": [{"port": 80, "targetPort": 8080}]},
        }))
        .expect("service");
        self.services().create(&PostParams::default(), &svc).await.expect("create service");
    }

    /// The usual pair: Deployment `NAME-a` (primary, 2 pods), StatefulSet `NAME-b` (standby,
    /// 2 pods) and Service `NAME` with extra annotations; waits until the controller adopted it.
    pub async fn pair(&self, name: &str, extra: &[(&str, &str)]) -> Pair {
        let (a, b) = (format!("{name}-a"), format!("{name}-b"));
        let primary_pods = self.deployment(&a, 2).await;
        let standby_pods = self.statefulset(&b, 2).await;
        let (p, s) = (format!("deployment/{a}"), format!("statefulset/{b}"));
        let mut ann = vec![(annotations::PRIMARY, p.as_str()), (annotations::STANDBY, s.as_str())];
        ann.extend_from_slice(extra);
        self.service(name, &a, &ann).await;
        let pair = Pair { primary_pods, standby_pods };
        self.await_service(name, "adoption with every pod seen healthy", |s| {
            active(s) == Some("primary")
                && condition(s).is_some_and(|c| {
                    c.message.starts_with(&format!("primary deployment/{a} selected: 2/2 pods healthy; standby"))
                        && c.message.ends_with(&format!("statefulset/{b} healthy"))
                })
        })
        .await;
        pair
    }

    /// Waits (by watch) until the Service satisfies `cond`.
    pub async fn await_service(&self, name: &str, what: &str, cond: impl Fn(&Service) -> bool) -> Service {
        let wait = kube::runtime::wait::await_condition(self.services(), name, move |s: Option<&Service>| {
            s.is_some_and(&cond)
        });
        match tokio::time::timeout(PROMPTLY, wait).await {
            Ok(found) => found.expect("service watch").expect("service exists"),
            Err(_) => {
                let last = self.services().get(name).await.map(|s| s.metadata.annotations);
                panic!("timed out after {PROMPTLY:?} waiting for {what}; the Service's annotations: {last:?}")
            }
        }
    }

    /// Waits (by watch) for an event on Service `service` satisfying `cond`.
    pub async fn await_event(&self, service: &str, what: &str, cond: impl Fn(&Event) -> bool) -> Event {
        let events: Api<Event> = Api::namespaced(self.admin.clone(), NS);
        let stream = watcher(events, watcher::Config::default()).applied_objects();
        let matching = stream.try_filter(|e| {
            let ok = e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service) && cond(e);
            futures::future::ready(ok)
        });
        let mut matching = std::pin::pin!(matching);
        within(PROMPTLY, what, matching.next()).await.expect("event stream ended").expect("event watch")
    }
}

/// A pair of workloads behind an HA Service.
pub struct Pair {
    /// Primary pod names.
    pub primary_pods: Vec<String>,
    /// Standby pod names.
    pub standby_pods: Vec<String>,
}

/// A running controller instance.
pub struct Running {
    /// Observation handle.
    pub handle: Handle,
    task: JoinHandle<anyhow::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// Graceful stop (as on SIGTERM): the lease is released.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let r = within(PROMPTLY, "controller stop", &mut self.task).await;
        r.expect("controller task").expect("controller ran cleanly");
    }

    /// Abrupt stop (a crash): the task is aborted, the lease is not released.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fast settings for tests: white box only, no dwell, no leader election.
pub fn settings(identity: &str) -> Settings {
    let mut s = Settings { identity: identity.into(), ..Settings::default() };
    s.checks.black_box = false;
    s.policy.dwell = Duration::ZERO;
    s.resync = Duration::from_secs(60);
    s
}

/// Awaits `f`, panicking after `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// A pod status: Running, Ready or not, optionally with a waiting container.
pub fn ready_status(ready: bool, waiting: Option<&str>, restarts: i32) -> Value {
    let r = if ready { "True" } else { "False" };
    let state = match waiting {
        Some(reason) => json!({"waiting": {"reason": reason, "message": "back-off restarting failed container"}}),
        None => json!({"running": {"startedAt": now()}}),
    };
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": r}, {"type": "ContainersReady", "status": r}],
        "containerStatuses": [{"name": "app", "image": "dispatch:1", "imageID": "", "ready": ready,
            "restartCount": restarts, "started": ready, "state": state}],
    })
}

/// Now, RFC 3339.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `active` annotation.
pub fn active(s: &Service) -> Option<&str> {
    s.annotations().get(annotations::ACTIVE).map(String::as_str)
}

/// The Service's `app` selector value.
pub fn selects(s: &Service) -> Option<&str> {
    s.spec.as_ref()?.selector.as_ref()?.get("app").map(String::as_str)
}

/// The recorded condition.
pub fn condition(s: &Service) -> Option<annotations::Condition> {
    annotations::recorded(s.annotations()).condition
}

/// Applies every manifest of deploy/controller as the admin.
pub async fn apply_manifests(admin: &Client) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/controller");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("deploy/controller").flatten().map(|e| e.path()).collect();
    files.sort();
    // The kustomization lists the manifests; it is not one itself.
    let manifest = |f: &&std::path::PathBuf| {
        f.extension().is_some_and(|e| e == "yaml") && f.file_name().is_none_or(|n| n != "kustomization.yaml")
    };
    for file in files.iter().filter(manifest) {
        let text = std::fs::read_to_string(file).expect("manifest");
        for doc in text.split("\n---").filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#'))) {
            let obj: DynamicObject = serde_saphyr::from_str(doc).expect("manifest parses");
            let kind = obj.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
            let ar = match kind.as_str() {
                "Namespace" => ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
                "ServiceAccount" => ApiResource::erase::<k8s_openapi::api::core::v1::ServiceAccount>(&()),
                "ClusterRole" => ApiResource::erase::<ClusterRole>(&()),
                "ClusterRoleBinding" => ApiResource::erase::<ClusterRoleBinding>(&()),
                "Role" => ApiResource::erase::<Role>(&()),
                "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
                "Deployment" => ApiResource::erase::<Deployment>(&()),
                other => panic!("unexpected kind {other} in {}", file.display()),
            };
            let api: Api<DynamicObject> = match obj.namespace() {
                Some(ns) => Api::namespaced_with(admin.clone(), &ns, &ar),
                None => Api::all_with(admin.clone(), &ar),
            };
            api.create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("applying {} {}: {e}", kind, obj.name_any()));
        }
    }
}
