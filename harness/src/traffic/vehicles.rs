//! A typed client for the vehicles' results API (`hadrill-sample vehicles`, see
//! `hadrill_sample::vehicles`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use hadrill::traffic::vehicles::VehiclesClient;
//! let v = VehiclesClient::new("http://127.10.0.5:8081")?;
//! v.wait_until("every vehicle served", Duration::from_secs(30), |r| r.vehicles.iter().all(|v| v.ok > 0)).await?;
//! let results = v.stop().await?; // final figures, spans flushed
//! if let Some((vehicle, gap)) = results.longest_gap() {
//!     println!("{vehicle}: longest link gap {} ms ({} heartbeats failed)", gap.ms, gap.failed);
//! }
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cluster::endpoint::{Answer, Endpoint};
pub use hadrill_sample::vehicles::results::{
    Gap, Heartbeat, Latency, Outcome, Results, ServedRun, SpanCounters, VehicleResult,
};
use serde::de::DeserializeOwned;

/// The results API of one vehicles pod.
#[derive(Debug, Clone)]
pub struct VehiclesClient {
    endpoint: Endpoint,
}

impl VehiclesClient {
    /// A client of the API at `base` (`http://POD_IP:8081`), reachable from this process.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(VehiclesClient { endpoint: Endpoint::direct(base)? })
    }

    /// A client of the API at `endpoint` (e.g. the pod through the API server's proxy).
    pub fn at(endpoint: Endpoint) -> Self {
        VehiclesClient { endpoint }
    }

    async fn call<T: DeserializeOwned>(&self, answer: anyhow::Result<Answer>, what: &str) -> anyhow::Result<T> {
        let body = answer?.success(what)?;
        serde_json::from_slice(&body)
            .with_context(|| format!("{what} ({}): unexpected answer", self.endpoint.describe()))
    }

    /// The results so far.
    pub async fn results(&self) -> anyhow::Result<Results> {
        self.call(self.endpoint.get("/results", &[]).await, "GET /results").await
    }

    /// The recorded heartbeats, of one vehicle or all.
    pub async fn heartbeats(&self, vehicle: Option<&str>) -> anyhow::Result<Vec<Heartbeat>> {
        let query: Vec<(&str, String)> = vehicle.map(|v| ("vehicle", v.to_string())).into_iter().collect();
        self.call(self.endpoint.get("/heartbeats", &query).await, "GET /heartbeats").await
    }

    /// Stops the vehicles (heartbeats in flight finish, spans are flushed); the final results.
    pub async fn stop(&self) -> anyhow::Result<Results> {
        self.call(self.endpoint.post("/stop").await, "POST /stop").await
    }

    /// Polls the results (every 100 ms) until `cond` holds, at most `limit`.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&Results) -> bool,
    ) -> anyhow::Result<Results> {
        let deadline = Instant::now() + limit;
        loop {
            let last_err = match self.results().await {
                Ok(r) if cond(&r) => return Ok(r),
                Ok(_) => None,
                Err(e) => Some(e),
            };
            if Instant::now() >= deadline {
                match last_err {
                    Some(e) => return Err(e.context(format!("{what}: not within {limit:?}"))),
                    None => bail!("{what}: not within {limit:?}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
