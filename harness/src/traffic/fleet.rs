//! The vehicles of one scenario: starting them (one pod of the sample `vehicles` program
//! calling a Service), where their results API is and what they were asked to do.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};

use super::vehicles::{Results, VehiclesClient};
use super::{RESULTS_PORT, SampleApp, VEHICLES};
use crate::cluster::endpoint::Endpoint;
use crate::probes::wait::{SETTLE, until};

/// Successful heartbeats every vehicle must have before a fleet counts as started (traffic
/// flows through the Service).
pub const WARM_UP: u64 = 3;

/// How the harness reaches the vehicles pod's results API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// At the pod's IP (the embedded cluster's pod addresses are local to this machine).
    PodIp,
    /// Through the API server's pod proxy (a real cluster).
    ApiProxy,
}

/// Vehicles sending heartbeats during a scenario.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Their results API.
    pub client: VehiclesClient,
    /// The Service they call.
    pub target: String,
    /// How many.
    pub count: usize,
    /// Heartbeat interval.
    pub interval: Duration,
    /// The vehicles pod.
    pub pod: String,
    /// The final results, once a step stopped them.
    pub stopped: Option<Results>,
}

impl Fleet {
    /// Starts `app`'s vehicles calling Service `target` in namespace `ns` (one Deployment,
    /// [`VEHICLES`]), waits until its pod is available, then until every vehicle has been
    /// served [`WARM_UP`] times.
    pub async fn start(
        client: &kube::Client,
        ns: &str,
        target: &str,
        app: &SampleApp,
        reach: Reach,
    ) -> anyhow::Result<Fleet> {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        deployments
            .create(&PostParams::default(), &app.vehicles_deployment(target)?)
            .await
            .context("creating the vehicles deployment")?;
        until(&deployments, VEHICLES, "the vehicles pod available", |d: &Deployment| {
            d.status.as_ref().is_some_and(|s| s.available_replicas == Some(1))
        })
        .await?;
        let lp = ListParams::default().labels(&format!("app={VEHICLES}"));
        let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&lp).await.context("listing the vehicles pod")?;
        let pod = pods
            .items
            .into_iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
            .context("the vehicles deployment is available but has no pod")?;
        let name = pod.metadata.name.clone().context("vehicles pod without a name")?;
        let endpoint = match (reach, pod.status.and_then(|s| s.pod_ip)) {
            (Reach::PodIp, Some(ip)) => Endpoint::direct(&SampleApp::results_url(&ip))?,
            _ => Endpoint::pod(client.clone(), ns, &name, &RESULTS_PORT.to_string()),
        };
        let vehicles = VehiclesClient::at(endpoint);
        let count = app.vehicles;
        let what = format!("every vehicle served {WARM_UP} times");
        let wait = vehicles
            .wait_until(&what, SETTLE, |r| r.vehicles.len() == count && r.vehicles.iter().all(|v| v.ok >= WARM_UP));
        crate::probes::progress::waiting("the vehicles' first heartbeats", wait).await?;
        Ok(Fleet {
            client: vehicles,
            target: target.to_string(),
            count,
            interval: app.interval,
            pod: name,
            stopped: None,
        })
    }

    /// The final results if stopped, else the results so far.
    pub async fn results(&self) -> anyhow::Result<Results> {
        match &self.stopped {
            Some(r) => Ok(r.clone()),
            None => self.client.results().await,
        }
    }

    /// Stops the vehicles (spans flushed) once; the final results.
    pub async fn stop(&mut self) -> anyhow::Result<Results> {
        if let Some(r) = &self.stopped {
            return Ok(r.clone());
        }
        let r = self.client.stop().await?;
        self.stopped = Some(r.clone());
        Ok(r)
    }
}
