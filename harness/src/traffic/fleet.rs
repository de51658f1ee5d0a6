//! The vehicles of one scenario: where their results API is and what they were asked to do.

use std::time::Duration;

use super::vehicles::{Results, VehiclesClient};

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
