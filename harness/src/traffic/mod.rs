//! Vehicle traffic: the sample application (vehicles -> dispatch primary/standby -> planner)
//! as cluster objects, and a typed client for the vehicles' results API ([`vehicles`]).
//!
//! ```no_run
//! # async fn demo(client: kube::Client, ns: &str) -> anyhow::Result<()> {
//! use hadrill::traffic::{SampleApp, vehicles::VehiclesClient};
//! let receiver = hadrill::traces::receiver::Receiver::start().await?;
//! let app = SampleApp { otlp_endpoint: Some(receiver.endpoint()), ..SampleApp::default() };
//! app.create(&client, ns).await?;
//! // ... wait for the vehicles pod to be Ready, then, with its pod IP:
//! let vehicles = VehiclesClient::new(&SampleApp::results_url("127.10.0.5"))?;
//! let results = vehicles.stop().await?;
//! # Ok(()) }
//! ```
//!
//! The dispatch pair follows [`crate::cluster::ha_pair`]'s conventions (Deployments
//! `dispatch-primary` / `dispatch-standby`, labels `app`/`side`, a Service annotated for the
//! failover controller and selecting the primary), so the controller can switch it.

pub mod fleet;
pub mod links;
pub mod vehicles;

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::cluster::ha_pair::{self, Side};

/// Image of the sample programs (`hadrill-sample`): the HA pair's image.
pub const IMAGE: &str = ha_pair::IMAGE;
/// Port every service of the chain serves on.
pub const PORT: u16 = 8080;
/// Port of the vehicles' results API.
pub const RESULTS_PORT: u16 = 8081;
/// Name of the HA service the vehicles call.
pub const DISPATCH: &str = "dispatch";
/// Name of the service behind dispatch.
pub const PLANNER: &str = "planner";
/// Name of the vehicles Deployment (label `app=vehicles`).
pub const VEHICLES: &str = "vehicles";

/// The sample application's settings.
#[derive(Debug, Clone)]
pub struct SampleApp {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` of every pod (`None`: no spans exported).
    pub otlp_endpoint: Option<String>,
    /// How often pods export spans.
    pub export_delay: Duration,
    /// Pods per dispatch side.
    pub dispatch_replicas: i32,
    /// Vehicles simulated.
    pub vehicles: usize,
    /// Heartbeat interval.
    pub interval: Duration,
    /// Heartbeat timeout.
    pub timeout: Duration,
    /// `w3c`, `sw8` or `mixed`.
    pub format: &'static str,
    /// Drain time of the dispatch pods on SIGTERM.
    pub drain: Duration,
}

impl Default for SampleApp {
    fn default() -> Self {
        SampleApp {
            otlp_endpoint: None,
            export_delay: Duration::from_millis(100),
            dispatch_replicas: 2,
            vehicles: 10,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            format: "mixed",
            drain: Duration::from_millis(300),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl SampleApp {
    fn deployment(
        &self,
        name: &str,
        labels: Value,
        replicas: i32,
        args: Vec<String>,
        port: u16,
    ) -> anyhow::Result<Deployment> {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{
                            "name": "app",
                            "image": IMAGE,
                            "args": args,
                            "env": ha_pair::sample_env(self.otlp_endpoint.as_deref(), self.export_delay),
                            "ports": [{"name": "http", "containerPort": port}],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2, "failureThreshold": 3},
                        }],
                    },
                },
            },
        }))
        .with_context(|| format!("building deployment {name}"))
    }

    fn serve_args(&self, name: &str, role: Option<&str>, downstream: Option<&str>) -> Vec<String> {
        let mut a = vec!["serve".to_string(), "--name".into(), name.into(), "--listen".into(), format!(":{PORT}")];
        if let Some(r) = role {
            a.extend(["--role".into(), r.into()]);
        }
        if let Some(d) = downstream {
            a.extend(["--downstream".into(), d.into()]);
        }
        a.extend(["--drain".into(), ms(self.drain)]);
        a
    }

    /// The Services (dispatch, selecting the primary; planner). Create them before the
    /// Deployments: pods find Services through the variables set when they start.
    pub fn services(&self) -> anyhow::Result<Vec<Service>> {
        let planner: Service = serde_json::from_value(json!({
            "metadata": {"name": PLANNER},
            "spec": {"selector": {"app": PLANNER}, "ports": [{"name": "http", "port": 80, "targetPort": PORT}]},
        }))
        .context("building service planner")?;
        let mut dispatch = ha_pair::service(DISPATCH)?;
        if let Some(spec) = dispatch.spec.as_mut() {
            spec.ports = Some(serde_json::from_value(json!([{"name": "http", "port": 80, "targetPort": PORT}]))?);
        }
        Ok(vec![dispatch, planner])
    }

    /// The Deployments: dispatch primary and standby, planner, vehicles (one pod).
    pub fn deployments(&self) -> anyhow::Result<Vec<Deployment>> {
        let mut out = Vec::new();
        for side in [Side::Primary, Side::Standby] {
            let labels = serde_json::to_value(ha_pair::labels(DISPATCH, side))?;
            let args = self.serve_args(DISPATCH, Some(side.as_str()), Some(PLANNER));
            out.push(self.deployment(
                &ha_pair::workload(DISPATCH, side),
                labels,
                self.dispatch_replicas,
                args,
                PORT,
            )?);
        }
        out.push(self.deployment(PLANNER, json!({"app": PLANNER}), 1, self.serve_args(PLANNER, None, None), PORT)?);
        out.push(self.vehicles_deployment(DISPATCH)?);
        Ok(out)
    }

    /// The vehicles Deployment (one pod): [`SampleApp::vehicles`] vehicles sending heartbeats
    /// to the Service `target`, results API on [`RESULTS_PORT`].
    pub fn vehicles_deployment(&self, target: &str) -> anyhow::Result<Deployment> {
        let vehicles_args = vec![
            "vehicles".to_string(),
            "--target".into(),
            target.into(),
            "--count".into(),
            self.vehicles.to_string(),
            "--interval".into(),
            ms(self.interval),
            "--timeout".into(),
            ms(self.timeout),
            "--format".into(),
            self.format.into(),
            "--listen".into(),
            format!(":{RESULTS_PORT}"),
        ];
        self.deployment(VEHICLES, json!({"app": VEHICLES}), 1, vehicles_args, RESULTS_PORT)
    }

    /// Creates the Services, then the Deployments, in `ns`.
    pub async fn create(&self, client: &kube::Client, ns: &str) -> anyhow::Result<()> {
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        for s in self.services()? {
            let name = s.metadata.name.clone().unwrap_or_default();
            services
                .create(&PostParams::default(), &s)
                .await
                .with_context(|| format!("creating service {ns}/{name}"))?;
        }
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        for d in self.deployments()? {
            let name = d.metadata.name.clone().unwrap_or_default();
            deployments
                .create(&PostParams::default(), &d)
                .await
                .with_context(|| format!("creating deployment {ns}/{name}"))?;
        }
        Ok(())
    }

    /// The results API URL of a vehicles pod with IP `pod_ip`.
    pub fn results_url(pod_ip: &str) -> String {
        format!("http://{pod_ip}:{RESULTS_PORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_is_an_ha_pair_with_a_chain_behind_it() {
        let app = SampleApp { otlp_endpoint: Some("http://127.0.0.1:4318".into()), ..Default::default() };
        let services = app.services().expect("services");
        assert_eq!(ha_pair::selected_side(DISPATCH, &services[0]), Some(Side::Primary));
        let deployments = app.deployments().expect("deployments");
        let names: Vec<String> = deployments.iter().filter_map(|d| d.metadata.name.clone()).collect();
        assert_eq!(names, ["dispatch-primary", "dispatch-standby", "planner", "vehicles"]);
        let standby = serde_json::to_value(&deployments[1]).expect("json");
        let args = &standby["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args[2], "dispatch");
        assert!(args.as_array().expect("args").windows(2).any(|w| w[0] == "--role" && w[1] == "standby"), "{args}");
        let env = &standby["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(env.to_string().contains("http://127.0.0.1:4318"), "{env}");
    }
}
