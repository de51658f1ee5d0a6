//! The cucumber World: what one scenario holds while it runs.

use std::fmt;

/// State of one scenario: its cluster and a client for it.
#[derive(Default, cucumber::World)]
pub struct HadrillWorld {
    /// The embedded cluster, when the scenario started one.
    pub sim: Option<sim::Sim>,
    /// A client for the scenario's cluster.
    pub client: Option<kube::Client>,
}

impl fmt::Debug for HadrillWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HadrillWorld").field("cluster", &self.sim.as_ref().map(|s| s.url())).finish_non_exhaustive()
    }
}

impl HadrillWorld {
    /// The scenario's client, or an error telling the author which step is missing.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        self.client.clone().ok_or_else(|| {
            anyhow::anyhow!("no cluster yet: start the scenario with `Given an embedded cluster with N nodes`")
        })
    }
}
