//! A scenario's own part of a cluster: on the embedded cluster, a cluster of its own; on the
//! run-wide cluster, a namespace of its own. Either way a namespace labelled with the
//! scenario's run id, a client, and a recorder of what happens in the namespace.

use super::provider::{SharedCluster, scenario_on};
use crate::chaos::lifecycle::Run;
use crate::probes::recorder::Recorder;

/// What a scenario set up.
pub struct ScenarioCluster {
    /// Its run id (the value of `hadrill.io/run` on what it owns).
    pub run_id: String,
    /// Its namespace `hadrill-RUN`.
    pub namespace: String,
    /// A client for its cluster.
    pub client: kube::Client,
    /// Its embedded cluster, when it started one.
    pub sim: Option<sim::Sim>,
    /// On the run-wide cluster, the chaos run whose ledger holds the namespace (finishing it
    /// removes the namespace).
    pub run: Option<Run>,
    /// The namespace's history of Services, Endpoints and Events.
    pub recorder: Recorder,
}

/// Sets up a scenario of at least `nodes` nodes: on `shared`, a namespace of its own (the
/// cluster must have that many Ready schedulable nodes); without, an embedded cluster of
/// `nodes` nodes.
pub async fn set_up(shared: Option<&SharedCluster>, nodes: usize) -> anyhow::Result<ScenarioCluster> {
    let (run_id, namespace, client, sim, run) = match shared {
        Some(shared) => {
            let setup = scenario_on(shared, nodes).await?;
            (setup.run_id, setup.namespace, shared.client.clone(), None, Some(setup.run))
        }
        None => {
            let sim = super::embedded::start(nodes).await?;
            let client = sim.client()?;
            let run_id = super::embedded::run_id();
            // The namespace dies with the embedded cluster: no ledger needed.
            let namespace = super::embedded::create_namespace(&client, &run_id).await?;
            (run_id, namespace, client, Some(sim), None)
        }
    };
    let recorder = Recorder::start(client.clone(), &namespace);
    Ok(ScenarioCluster { run_id, namespace, client, sim, run, recorder })
}
