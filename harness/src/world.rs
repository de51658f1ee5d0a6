//! The cucumber World: what one scenario holds while it runs.

use std::fmt;
use std::time::Instant;

/// A figure measured during a scenario (printed, and kept for the reports).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What was measured, e.g. `dispatch: fault to switch`.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
    /// The deadline it was held to, if any.
    pub deadline: Option<f64>,
}

/// State of one scenario: its cluster, its namespace and what it measured.
#[derive(Default, cucumber::World)]
pub struct HadrillWorld {
    /// The embedded cluster, when the scenario started one.
    pub sim: Option<sim::Sim>,
    /// A client for the scenario's cluster.
    pub client: Option<kube::Client>,
    /// The namespace the scenario owns (labelled `hadrill.io/run`); its workloads live there.
    pub namespace: String,
    /// When the last fault was injected (the start of the deadlines that follow).
    pub fault_at: Option<Instant>,
    /// Figures measured so far.
    pub figures: Vec<Figure>,
}

impl fmt::Debug for HadrillWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HadrillWorld")
            .field("cluster", &self.sim.as_ref().map(|s| s.url()))
            .field("namespace", &self.namespace)
            .field("figures", &self.figures)
            .finish_non_exhaustive()
    }
}

impl HadrillWorld {
    /// The scenario's client, or an error telling the author which step is missing.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        self.client.clone().ok_or_else(|| {
            anyhow::anyhow!("no cluster yet: start the scenario with `Given an embedded cluster with N nodes`")
        })
    }

    /// A namespaced API in the scenario's namespace.
    pub fn api<K>(&self) -> anyhow::Result<kube::Api<K>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Ok(kube::Api::namespaced(self.client()?, &self.namespace))
    }

    /// Records and prints a figure.
    pub fn figure(&mut self, name: impl Into<String>, seconds: f64, deadline: Option<f64>) {
        let figure = Figure { name: name.into(), seconds, deadline };
        match figure.deadline {
            Some(d) => println!("    ⏱ {}: {:.3} s (deadline {d} s)", figure.name, figure.seconds),
            None => println!("    ⏱ {}: {:.3} s", figure.name, figure.seconds),
        }
        self.figures.push(figure);
    }
}
