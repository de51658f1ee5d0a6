//! A live HA service in one namespace (the objects of [`super::ha_pair`], created): setting it
//! up, the pods of a side, killing and scaling them, and watching which side the Service
//! selects. The steps about an HA service call these; so can a test without cucumber.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use hadrill_controller::annotations::{ACTIVE, DWELL, FAILBACK, FAILBACK_AFTER, Failback};

use super::ha_pair::{self, Side};
use crate::probes::wait::until;

/// One HA service `name` in the namespace of its APIs.
#[derive(Clone)]
pub struct HaService {
    name: String,
    deployments: Api<Deployment>,
    services: Api<Service>,
    pods: Api<Pod>,
    budgets: Api<PodDisruptionBudget>,
}

impl HaService {
    /// The HA service `name` in namespace `ns` (nothing is read or created).
    pub fn new(client: &kube::Client, ns: &str, name: &str) -> Self {
        HaService {
            name: name.to_string(),
            deployments: Api::namespaced(client.clone(), ns),
            services: Api::namespaced(client.clone(), ns),
            pods: Api::namespaced(client.clone(), ns),
            budgets: Api::namespaced(client.clone(), ns),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates both Deployments (with `replicas` each, exporting spans to `otlp` if given) and
    /// their disruption budgets, waits until both sides are available, then creates the
    /// annotated Service, so a controller never sees a side still starting.
    pub async fn create(&self, replicas: i32, otlp: Option<&str>) -> anyhow::Result<()> {
        let name = &self.name;
        for side in [Side::Primary, Side::Standby] {
            let workload = ha_pair::workload(name, side);
            let d = ha_pair::deployment(name, side, replicas, otlp)?;
            self.deployments
                .create(&PostParams::default(), &d)
                .await
                .with_context(|| format!("creating deployment {workload}"))?;
            self.budgets
                .create(&PostParams::default(), &ha_pair::budget(name, side)?)
                .await
                .with_context(|| format!("creating the disruption budget {workload}"))?;
        }
        for side in [Side::Primary, Side::Standby] {
            let workload = ha_pair::workload(name, side);
            let what = format!("{workload} {replicas} available replica(s)");
            until(&self.deployments, &workload, &what, move |d: &Deployment| {
                d.status.as_ref().is_some_and(|s| s.available_replicas == Some(replicas))
            })
            .await?;
        }
        self.services
            .create(&PostParams::default(), &ha_pair::service(name)?)
            .await
            .with_context(|| format!("creating service {name}"))?;
        Ok(())
    }

    /// Waits until a failover controller has adopted the Service (annotated it active on the
    /// primary).
    pub async fn adopted(&self) -> anyhow::Result<()> {
        until(&self.services, &self.name, "the controller to adopt the Service", |s: &Service| {
            s.metadata.annotations.as_ref().and_then(|a| a.get(ACTIVE)).map(String::as_str)
                == Some(Side::Primary.as_str())
        })
        .await?;
        Ok(())
    }

    /// The live (not terminating) pods of `side`.
    pub async fn pods(&self, side: Side) -> anyhow::Result<Vec<Pod>> {
        let lp = ListParams::default().labels(&ha_pair::selector(&self.name, side));
        let mut pods = self.pods.list(&lp).await.context("listing pods")?.items;
        pods.retain(|p| p.metadata.deletion_timestamp.is_none());
        Ok(pods)
    }

    /// The node of the primary's first live pod.
    pub async fn primary_node(&self) -> anyhow::Result<String> {
        let pods = self.pods(Side::Primary).await?;
        pods.iter()
            .find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .with_context(|| format!("no pod of the primary of {} is on a node", self.name))
    }

    /// Kills `count` (all when `None`) live pods of `side` with no grace period, all at once, as
    /// a PodChaos pod-kill does (one by one, the Deployment's replacement for the first could
    /// be Ready before the last is killed, and the side would never be all down). Returns the
    /// names of the pods killed.
    pub async fn kill(&self, side: Side, count: Option<usize>) -> anyhow::Result<Vec<String>> {
        let (name, which) = (&self.name, side.as_str());
        let pods = self.pods(side).await?;
        ensure!(!pods.is_empty(), "the {which} of {name} has no pods to kill");
        let n = count.unwrap_or(pods.len());
        ensure!(n <= pods.len(), "asked to kill {n} pods of the {which} of {name}, it has {}", pods.len());
        let names: Vec<String> = pods
            .iter()
            .take(n)
            .map(|p| p.metadata.name.clone().context("pod without a name"))
            .collect::<Result<_, _>>()?;
        let kills = names.iter().map(|pod| async move {
            self.pods
                .delete(pod, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                .await
                .with_context(|| format!("killing pod {pod}"))
        });
        futures::future::try_join_all(kills).await?;
        Ok(names)
    }

    /// Scales `side` to `replicas` and waits until its Deployment has exactly that many ready
    /// replicas for its latest spec (a side with no pods is unhealthy).
    pub async fn scale(&self, side: Side, replicas: i32) -> anyhow::Result<()> {
        let workload = ha_pair::workload(&self.name, side);
        let scale = serde_json::json!({"spec": {"replicas": replicas}});
        self.deployments
            .patch(&workload, &PatchParams::default(), &Patch::Merge(&scale))
            .await
            .with_context(|| format!("scaling {workload}"))?;
        let what = format!("{workload} at {replicas} ready replica(s)");
        until(&self.deployments, &workload, &what, move |d: &Deployment| {
            d.status.as_ref().is_some_and(|s| {
                s.observed_generation == d.metadata.generation
                    && s.replicas.unwrap_or(0) == replicas
                    && s.ready_replicas.unwrap_or(0) == replicas
            })
        })
        .await?;
        Ok(())
    }

    /// Annotates the Service for automatic failback once the primary has been healthy for
    /// `after` (a Go duration, `5s`), with the same minimum dwell between switches.
    pub async fn fail_back_after(&self, after: &str) -> anyhow::Result<()> {
        let patch = serde_json::json!({"metadata": {"annotations": {
            FAILBACK: Failback::Auto.as_str(),
            FAILBACK_AFTER: after,
            DWELL: after,
        }}});
        self.services
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("annotating service {} for automatic failback", self.name))?;
        Ok(())
    }

    /// The side the Service selects now, if either.
    pub async fn selected(&self) -> anyhow::Result<Option<Side>> {
        let svc = self.services.get(&self.name).await.with_context(|| format!("reading service {}", self.name))?;
        Ok(ha_pair::selected_side(&self.name, &svc))
    }

    /// Waits by watch (printing progress as `progress`) until the Service selects `side`, at
    /// most `limit`; returns the time since `from`, or `None` when the limit ran out (so a
    /// late switch past a deadline is still measured by a caller that waits longer).
    pub async fn await_side(
        &self,
        side: Side,
        from: Instant,
        limit: Duration,
        progress: &str,
    ) -> anyhow::Result<Option<Duration>> {
        let n = self.name.clone();
        let what = format!("the switch to the {}", side.as_str());
        let wait =
            until(&self.services, &self.name, &what, move |s: &Service| ha_pair::selected_side(&n, s) == Some(side));
        match tokio::time::timeout(limit, crate::probes::progress::waiting(progress, wait)).await {
            Ok(Ok(_)) => Ok(Some(from.elapsed())),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Watches the Service for all of `window` and fails at once if its selector moves away
    /// from `side` (a window is the only way to observe that nothing happens).
    pub async fn stays_on(&self, side: Side, window: Duration) -> anyhow::Result<()> {
        let name = &self.name;
        ensure!(self.selected().await? == Some(side), "{name} does not select the {} now", side.as_str());
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(self.services.clone(), config).applied_objects();
        let mut stream = std::pin::pin!(stream);
        let held = tokio::time::sleep(window);
        tokio::pin!(held);
        loop {
            tokio::select! {
                _ = &mut held => return Ok(()),
                next = stream.try_next() => {
                    let svc = next.context("watching the service")?.context("the service watch ended")?;
                    if ha_pair::selected_side(name, &svc) != Some(side) {
                        bail!(
                            "{name} switched away from the {}: selector {:?}",
                            side.as_str(),
                            svc.spec.and_then(|s| s.selector)
                        );
                    }
                }
            }
        }
    }
}
