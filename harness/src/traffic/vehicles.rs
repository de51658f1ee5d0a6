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
pub use hadrill_sample::vehicles::results::{
    Gap, Heartbeat, Latency, Outcome, Results, ServedRun, SpanCounters, VehicleResult,
};
use serde::de::DeserializeOwned;

/// The results API of one vehicles pod.
#[derive(Debug, Clone)]
pub struct VehiclesClient {
    base: String,
    http: reqwest::Client,
}

impl VehiclesClient {
    /// A client of the API at `base` (`http://POD_IP:8081`).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the vehicles results client")?;
        Ok(VehiclesClient { base: base.trim_end_matches('/').to_string(), http })
    }

    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<T> {
        let resp = req.send().await.with_context(|| format!("{what} ({})", self.base))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading {what} ({})", self.base))?;
        if !status.is_success() {
            bail!("{what} ({}): HTTP {status}: {}", self.base, String::from_utf8_lossy(&body).trim());
        }
        serde_json::from_slice(&body).with_context(|| format!("{what} ({}): unexpected answer", self.base))
    }

    /// The results so far.
    pub async fn results(&self) -> anyhow::Result<Results> {
        self.call(self.http.get(format!("{}/results", self.base)), "GET /results").await
    }

    /// The recorded heartbeats, of one vehicle or all.
    pub async fn heartbeats(&self, vehicle: Option<&str>) -> anyhow::Result<Vec<Heartbeat>> {
        let mut req = self.http.get(format!("{}/heartbeats", self.base));
        if let Some(v) = vehicle {
            req = req.query(&[("vehicle", v)]);
        }
        self.call(req, "GET /heartbeats").await
    }

    /// Stops the vehicles (heartbeats in flight finish, spans are flushed); the final results.
    pub async fn stop(&self) -> anyhow::Result<Results> {
        self.call(self.http.post(format!("{}/stop", self.base)), "POST /stop").await
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
