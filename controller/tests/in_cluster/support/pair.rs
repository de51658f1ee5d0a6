//! An HA pair on the cluster: Deployments `NAME-primary` and `NAME-standby` of 2 test servers
//! each, pinned to nodes, and the Service `NAME` annotated for the controller.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hadrill_controller::annotations::{self, ACTIVE, PRIMARY, PROBE_PATH, PROBE_PORT, STANDBY};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::cluster::Cluster;
use super::wait::{ServiceLog, until, until_all};

/// Namespace of the pairs.
pub const NS: &str = "default";
/// Port the test servers listen on (an unusual one: other test processes on the same host may
/// run pods on the same loopback addresses).
pub const PORT: u16 = 18470;
/// Replicas of each side.
pub const REPLICAS: usize = 2;

/// Which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Selected while healthy.
    Primary,
    /// The hot standby.
    Standby,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Standby => "standby",
        }
    }
}

/// How a pair is laid out.
#[derive(Debug, Clone)]
pub struct PairSpec {
    /// Service name.
    pub name: String,
    /// Node of the primary's pods.
    pub primary_node: String,
    /// Node of the standby's pods.
    pub standby_node: String,
    /// Kubelet readiness probes on `/readyz`. Without them the pods are Ready as soon as they
    /// run and only the black box (`probe-path`/`probe-port` annotations) looks at them: on the
    /// embedded cluster the kubelet of a node that "lost its network" still reaches its pods
    /// and the API server, where a real one could not report a failed probe.
    pub kubelet_probes: bool,
}

/// A created pair; its Service is watched from before its creation.
pub struct Pair {
    /// Layout.
    pub spec: PairSpec,
    /// Every version of the Service.
    pub log: ServiceLog,
    client: Client,
}

impl Pair {
    /// Creates the pair on `cluster` and waits until both sides are available and the
    /// controller adopted the Service with every pod healthy.
    pub async fn create(cluster: &Cluster, spec: PairSpec) -> Pair {
        let client = cluster.client.clone();
        let log = ServiceLog::start(&client, NS, &spec.name);
        let pair = Pair { spec, log, client };
        let deployments: Api<Deployment> = Api::namespaced(pair.client.clone(), NS);
        for side in [Side::Primary, Side::Standby] {
            deployments.create(&PostParams::default(), &pair.deployment(side)).await.expect("create deployment");
        }
        // The Service comes once both sides are available, as for a service going live: before
        // that, whichever side is Ready first would be selected.
        for side in [Side::Primary, Side::Standby] {
            let what = format!("{REPLICAS} available replicas");
            until(&deployments, &pair.workload(side), &what, |d: Option<&Deployment>| {
                d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.available_replicas == Some(REPLICAS as i32))
            })
            .await;
        }
        let services: Api<Service> = Api::namespaced(pair.client.clone(), NS);
        services.create(&PostParams::default(), &pair.service()).await.expect("create service");
        let want = format!(
            "{} selected: {REPLICAS}/{REPLICAS} pods healthy; {} healthy",
            pair.reference(Side::Primary),
            pair.reference(Side::Standby)
        );
        pair.log
            .wait(0, "adoption with every pod healthy", |s| {
                active(s) == Some("primary") && condition(s).is_some_and(|c| c.message == want)
            })
            .await;
        pair
    }

    /// The Deployment name of a side.
    pub fn workload(&self, side: Side) -> String {
        format!("{}-{}", self.spec.name, side.as_str())
    }

    /// `primary deployment/NAME-primary`, as the controller names a side.
    pub fn reference(&self, side: Side) -> String {
        format!("{} deployment/{}", side.as_str(), self.workload(side))
    }

    fn labels(&self, side: Side) -> BTreeMap<String, String> {
        BTreeMap::from([("app".into(), self.spec.name.clone()), ("side".into(), side.as_str().into())])
    }

    fn deployment(&self, side: Side) -> Deployment {
        let labels = self.labels(side);
        let node = match side {
            Side::Primary => &self.spec.primary_node,
            Side::Standby => &self.spec.standby_node,
        };
        let mut container = json!({
            "name": "server",
            "image": "hadrill/test-server:dev",
            "env": [{"name": "PORT", "value": PORT.to_string()}],
            "ports": [{"name": "http", "containerPort": PORT}],
        });
        if self.spec.kubelet_probes {
            // Lenient enough that a stalled (slow) process on a loaded machine stays Ready. The
            // warm-up, as a real service has one: without it a killed pod's replacement was
            // Ready within ~100 ms, before the last of its siblings died, so "every primary pod
            // killed" was no outage (the Service's condition went 2/2 -> 1/2 -> 2/2).
            container["readinessProbe"] = json!({"httpGet": {"path": "/readyz", "port": "http"},
                "initialDelaySeconds": 2, "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 2});
        }
        serde_json::from_value(json!({
            "metadata": {"name": self.workload(side), "labels": labels},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "nodeSelector": {"kubernetes.io/hostname": node},
                        "containers": [container],
                    },
                },
            },
        }))
        .expect("deployment")
    }

    fn service(&self) -> Service {
        let mut ann = BTreeMap::from([
            (PRIMARY.to_string(), format!("deployment/{}", self.workload(Side::Primary))),
            (STANDBY.to_string(), format!("deployment/{}", self.workload(Side::Standby))),
        ]);
        if !self.spec.kubelet_probes {
            ann.insert(PROBE_PATH.into(), "/healthz".into());
            ann.insert(PROBE_PORT.into(), PORT.to_string());
        }
        serde_json::from_value(json!({
            "metadata": {"name": self.spec.name, "annotations": ann},
            "spec": {"selector": self.labels(Side::Primary), "ports": [{"name": "http", "port": 80, "targetPort": PORT}]},
        }))
        .expect("service")
    }

    /// The live (not terminating) pods of a side, once it has all its replicas running.
    pub async fn pods(&self, side: Side) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let selector = self.labels(side).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let what = format!("{REPLICAS} running pods of {}", self.workload(side));
        let mut live = until_all(&pods, &selector, &what, |m| {
            m.values().filter(|p| p.metadata.deletion_timestamp.is_none() && super::cluster::is_running(p)).count()
                == REPLICAS
        })
        .await;
        live.retain(|p| p.metadata.deletion_timestamp.is_none());
        live.sort_by_key(|p| p.name_any());
        live
    }

    /// Which side a Service version selects.
    pub fn selects(&self, svc: &Service) -> Option<Side> {
        let selector = svc.spec.as_ref()?.selector.as_ref()?;
        [Side::Primary, Side::Standby].into_iter().find(|s| *selector == self.labels(*s))
    }

    /// Whether a Service version selects `side` and says so in `active`.
    pub fn on(&self, svc: &Service, side: Side) -> bool {
        self.selects(svc) == Some(side) && active(svc) == Some(side.as_str())
    }
}

impl Pair {
    /// Polls the Service's ClusterIP (there is nothing to watch for "the proxy now routes
    /// there") until a new connection is answered by a pod of `side`; returns how long it took.
    pub async fn until_served_by(&self, side: Side) -> std::time::Duration {
        let services: Api<Service> = Api::namespaced(self.client.clone(), NS);
        let svc = services.get(&self.spec.name).await.expect("read the service");
        let ip = svc.spec.and_then(|s| s.cluster_ip).expect("cluster IP");
        let vip = SocketAddr::new(ip.parse().expect("cluster IP parses"), 80);
        let prefix = format!("{}-", self.workload(side));
        let t0 = std::time::Instant::now();
        let mut last = String::new();
        while t0.elapsed() < super::wait::PROMPTLY {
            match super::http::get(vip, "/").await {
                Ok((200, body)) if body.trim().starts_with(&prefix) => return t0.elapsed(),
                Ok((code, body)) => last = format!("{code} {}", body.trim()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("{vip} was not served by {prefix}* within {:?}; last answer: {last}", super::wait::PROMPTLY);
    }
}

/// The `active` annotation.
pub fn active(s: &Service) -> Option<&str> {
    s.annotations().get(ACTIVE).map(String::as_str)
}

/// The controller's condition on the Service.
pub fn condition(s: &Service) -> Option<annotations::Condition> {
    annotations::recorded(s.annotations()).condition
}

/// The pod's address on the test servers' port.
pub fn addr(p: &Pod) -> SocketAddr {
    let ip = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).expect("pod IP");
    SocketAddr::new(ip.parse().expect("pod IP parses"), PORT)
}
