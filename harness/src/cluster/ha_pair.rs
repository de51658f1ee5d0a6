//! An HA service as the failover controller expects it: a primary and a standby Deployment of
//! the same program, each with a disruption budget, and a Service annotated with both that
//! selects the primary.
//!
//! The program is the sample service (`hadrill-sample serve`): it answers the vehicles'
//! heartbeats, says which side served them, and exports its spans when given an OTLP endpoint,
//! so one pair serves both the failover features and the traffic and trace features.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use hadrill_controller::annotations::{PRIMARY, STANDBY};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;

/// Image the pair runs (`hadrill-sample`: `/readyz`, `/healthz`, heartbeats, port 8080).
pub const IMAGE: &str = "hadrill/sample:dev";
/// Name of the pods' one container.
pub const CONTAINER: &str = "server";
/// Port the pods serve on.
pub const PORT: u16 = 8080;

/// Which side of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The workload the Service selects while it is healthy.
    Primary,
    /// The hot standby.
    Standby,
}

impl Side {
    /// `primary` / `standby`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Standby => "standby",
        }
    }
}

/// Name of the Deployment of `side` of service `name`.
pub fn workload(name: &str, side: Side) -> String {
    format!("{name}-{}", side.as_str())
}

/// The labels selecting the pods of `side` (what the Service selects while that side is active).
pub fn labels(name: &str, side: Side) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), name.to_string()), ("side".to_string(), side.as_str().to_string())])
}

/// The label selector text of `side`, for listing its pods.
pub fn selector(name: &str, side: Side) -> String {
    labels(name, side).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The Deployment of one side: `replicas` sample services with real readiness and liveness
/// probes, never on a node of the other side, spread over nodes where possible. With
/// `otlp_endpoint`, the pods export their spans there.
pub fn deployment(name: &str, side: Side, replicas: i32, otlp_endpoint: Option<&str>) -> anyhow::Result<Deployment> {
    let labels = labels(name, side);
    let env = sample_env(otlp_endpoint, Duration::from_millis(200));
    let other = match side {
        Side::Primary => Side::Standby,
        Side::Standby => Side::Primary,
    };
    serde_json::from_value(json!({
        "metadata": {"name": workload(name, side), "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    // Never on a node of the other side (a node fault must leave one side up);
                    // spread over nodes within a side where possible.
                    "affinity": {"podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [{
                            "labelSelector": {"matchExpressions": [
                                {"key": "app", "operator": "In", "values": [name]},
                                {"key": "side", "operator": "In", "values": [other.as_str()]},
                            ]},
                            "topologyKey": "kubernetes.io/hostname"
                        }],
                        "preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
                        }]
                    }},
                    "containers": [{
                        "name": CONTAINER,
                        "image": IMAGE,
                        // A short drain: a scaled-down side stops taking heartbeats quickly.
                        "args": ["serve", "--name", name, "--role", side.as_str(), "--listen", format!(":{PORT}"), "--drain", "300ms"],
                        "env": env,
                        "ports": [{"name": "http", "containerPort": PORT}],
                        // A service warms up before it takes traffic: a replacement pod is not
                        // Ready at once, so killing every pod is an outage, as on a real cluster.
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "initialDelaySeconds": 2, "periodSeconds": 1, "failureThreshold": 2},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2, "failureThreshold": 3},
                    }],
                },
            },
        },
    }))
    .with_context(|| format!("building deployment {}", workload(name, side)))
}

/// The disruption budget of one side, `<name>-<side>`: planned disruptions (a node drain) take
/// at most one of its pods at a time.
pub fn budget(name: &str, side: Side) -> anyhow::Result<PodDisruptionBudget> {
    serde_json::from_value(json!({
        "metadata": {"name": workload(name, side), "labels": labels(name, side)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name, side)}},
    }))
    .with_context(|| format!("building the disruption budget of {}", workload(name, side)))
}

/// The environment of a sample program (`hadrill-sample`): `POD_NAME` and `POD_IP` from the
/// downward API (it listens on `$POD_IP` and names its pod in spans; the embedded kubelet sets
/// both anyway, a real one does not), its span export interval, and with `otlp_endpoint` where
/// it exports spans.
pub fn sample_env(otlp_endpoint: Option<&str>, export_delay: Duration) -> Vec<serde_json::Value> {
    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
        json!({"name": "OTEL_BSP_SCHEDULE_DELAY", "value": export_delay.as_millis().to_string()}),
    ];
    if let Some(e) = otlp_endpoint {
        env.push(json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": e}));
    }
    env
}

/// The Service `name`, selecting the primary, annotated for the failover controller.
pub fn service(name: &str) -> anyhow::Result<Service> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {
            PRIMARY: format!("deployment/{}", workload(name, Side::Primary)),
            STANDBY: format!("deployment/{}", workload(name, Side::Standby)),
        }},
        "spec": {"selector": labels(name, Side::Primary), "ports": [{"name": "http", "port": 80, "targetPort": PORT}]},
    }))
    .with_context(|| format!("building service {name}"))
}

/// Which side a Service's selector points at, if either.
pub fn selected_side(name: &str, svc: &Service) -> Option<Side> {
    let selector = svc.spec.as_ref()?.selector.as_ref()?;
    [Side::Primary, Side::Standby].into_iter().find(|side| *selector == labels(name, *side))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_selects_the_primary_and_names_both_workloads() {
        let svc = service("dispatch").expect("service");
        assert_eq!(selected_side("dispatch", &svc), Some(Side::Primary));
        let ann = svc.metadata.annotations.expect("annotations");
        assert_eq!(ann[STANDBY], "deployment/dispatch-standby");
        let d = deployment("dispatch", Side::Standby, 2, Some("http://127.0.0.1:4318")).expect("deployment");
        let json = serde_json::to_value(&d).expect("json");
        let container = &json["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"][4], "standby", "{container}");
        assert!(container["env"].to_string().contains("http://127.0.0.1:4318"), "{container}");
        let template_labels = d.spec.expect("spec").template.metadata.expect("meta").labels.expect("labels");
        assert_eq!(template_labels, labels("dispatch", Side::Standby));
        assert_eq!(selector("dispatch", Side::Standby), "app=dispatch,side=standby");
    }
}
