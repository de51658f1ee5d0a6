//! The cucumber World: what one scenario holds while it runs, grouped by concern: the run it
//! belongs to ([`RunScope`]), its cluster ([`ClusterState`]), its HA services
//! ([`ServiceState`]), its faults ([`FaultState`]), its traffic ([`TrafficState`]) and its
//! timeline ([`Timeline`]). The after-scenario hook ends it with [`HadrillWorld::teardown`];
//! dropping it without one (a run stopped by a signal drops the scenarios in progress, or a
//! hook panicked) runs the same teardown from its drop.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::chaos::lifecycle::{Injection, Run};
use crate::cluster::provider::SharedCluster;
pub use crate::report::timeline::{Figure, LinkGap, Mark, MarkKind};
use crate::settings::Settings;
/// The wall-clock time of `at`, an instant of this process (for comparing with times other
/// processes wrote: Events, the vehicles' records).
pub fn wall_clock(at: Instant) -> SystemTime {
    SystemTime::now() - at.elapsed()
}

/// `t` in milliseconds since the Unix epoch (the vehicles' time unit).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// What every scenario of a run shares, handed to each World by the runner's before-scenario
/// hook (a World made outside a run has the defaults: the embedded cluster, default settings).
#[derive(Debug, Clone, Default)]
pub struct RunScope {
    /// The run's settings (where the reports and run ledgers go).
    pub settings: Arc<Settings>,
    /// The run-wide cluster, or `None` when each scenario starts an embedded one.
    pub shared: Option<SharedCluster>,
}

/// The scenario's cluster and what it owns there.
#[derive(Default)]
pub struct ClusterState {
    /// The run id: the value of the `hadrill.io/run` label on what the scenario owns.
    pub run_id: String,
    /// The namespace the scenario owns (labelled `hadrill.io/run`); its workloads live there.
    pub namespace: String,
    /// A client for the scenario's cluster.
    pub client: Option<kube::Client>,
    /// The embedded cluster, when the scenario started one.
    pub sim: Option<sim::Sim>,
    /// Background history of the namespace's Services, Endpoints and Events (for the failure
    /// bundle).
    pub recorder: Option<crate::probes::recorder::Recorder>,
}

/// The HA services the scenario set up.
#[derive(Debug, Default)]
pub struct ServiceState {
    /// Their names, in set-up order.
    pub names: Vec<String>,
}

/// The scenario's faults.
#[derive(Debug, Default)]
pub struct FaultState {
    /// The chaos run: its ledger and the faults to remove when the scenario ends.
    pub run: Option<Run>,
    /// Faults in place, in injection order.
    pub injections: Vec<Injection>,
    /// The pods the last fault hit (killed by a step, or recorded by its chaos object).
    pub pods: Vec<String>,
    /// When the last fault was injected (the start of the deadlines that follow).
    pub at: Option<Instant>,
}

/// Traffic through the scenario's services and the traces it leaves.
#[derive(Default)]
pub struct TrafficState {
    /// Where the pods of the scenario's HA services send their spans.
    pub traces: Option<crate::traces::sink::Sink>,
    /// The vehicles sending heartbeats, when a step started them.
    pub fleet: Option<crate::traffic::fleet::Fleet>,
    /// The trace continuity report, once a step checked the traces (kept for the bundle).
    pub trace_report: Option<String>,
}

/// What the scenario measured, against its start.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// When the scenario started (the zero of the timeline).
    pub started: Instant,
    /// Figures measured so far.
    pub figures: Vec<Figure>,
    /// Faults, detection, switch, recovery.
    pub marks: Vec<Mark>,
    /// The vehicles' link gaps, when vehicles ran.
    pub link_gaps: Vec<LinkGap>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self { started: Instant::now(), figures: Vec::new(), marks: Vec::new(), link_gaps: Vec::new() }
    }
}

/// State of one scenario.
#[derive(cucumber::World, Default)]
#[world(init = Self::new)]
pub struct HadrillWorld {
    /// The run the scenario belongs to.
    pub run: RunScope,
    /// Its cluster.
    pub cluster: ClusterState,
    /// Its HA services.
    pub service: ServiceState,
    /// Its faults.
    pub faults: FaultState,
    /// Its traffic and traces.
    pub traffic: TrafficState,
    /// What it measured.
    pub timeline: Timeline,
}

impl fmt::Debug for HadrillWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HadrillWorld")
            .field("cluster", &self.cluster.sim.as_ref().map(|s| s.url()))
            .field("namespace", &self.cluster.namespace)
            .field("figures", &self.timeline.figures)
            .finish_non_exhaustive()
    }
}

impl Drop for HadrillWorld {
    /// A World dropped before its teardown (its scenario stopped by a signal) is torn down here,
    /// blocking this thread: faults removed and waited for, then its pods and cluster stopped.
    /// Outside a multi-threaded runtime the fields' own drops do what they can: the embedded
    /// cluster's removes its host faults and kills its pods.
    fn drop(&mut self) {
        if !self.needs_teardown() {
            return;
        }
        if let Ok(h) = tokio::runtime::Handle::try_current()
            && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            && let Err(e) = tokio::task::block_in_place(|| h.block_on(self.teardown()))
        {
            eprintln!("warning: tearing down a stopped scenario (namespace {}): {e:#}", self.cluster.namespace);
        }
    }
}

impl HadrillWorld {
    /// A fresh scenario.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the scenario: removes its faults and what its chaos run created (the namespace on
    /// a run-wide cluster) and waits until they are gone, then stops its traffic, its recorder
    /// and its embedded cluster. Called by the after-scenario hook; what it could not remove
    /// is the error (its ledger then stays for `hadrill clean`).
    pub async fn teardown(&mut self) -> anyhow::Result<()> {
        self.faults.injections.clear();
        let removed = match self.faults.run.take() {
            Some(run) => run.finish().await.map(drop),
            None => Ok(()),
        };
        self.cluster.recorder.take();
        self.traffic.fleet.take();
        if let Some(traces) = self.traffic.traces.take() {
            traces.stop().await;
        }
        if let Some(sim) = self.cluster.sim.take() {
            sim.stop().await;
        }
        removed
    }

    /// Whether anything is left for [`HadrillWorld::teardown`] to end.
    fn needs_teardown(&self) -> bool {
        self.faults.run.is_some()
            || self.cluster.sim.is_some()
            || self.cluster.recorder.is_some()
            || self.traffic.fleet.is_some()
            || self.traffic.traces.is_some()
    }

    /// The one HA service the scenario set up (steps that take no name act on it).
    pub fn ha_service(&self) -> anyhow::Result<&str> {
        match self.service.names.as_slice() {
            [one] => Ok(one.as_str()),
            [] => anyhow::bail!(
                "no HA service yet: add `Given an HA service \"NAME\" with a primary and a standby deployment of N replicas`"
            ),
            many => anyhow::bail!(
                "several HA services ({}): name the service, or set the scenario's parameters with `injected with \"name=value\"`",
                many.join(", ")
            ),
        }
    }

    /// Seconds from the scenario's start to the wall-clock time `unix_ms` (the vehicles'
    /// clock: the same machine's, or a cluster node's).
    pub fn offset_of_unix_ms(&self, unix_ms: u64) -> f64 {
        let start = wall_clock(self.timeline.started).duration_since(UNIX_EPOCH).unwrap_or_default();
        unix_ms as f64 / 1000.0 - start.as_secs_f64()
    }

    /// Seconds from the scenario's start to `at`.
    pub fn offset(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.timeline.started).as_secs_f64()
    }

    /// Puts a mark on the timeline at `at`.
    pub fn mark(&mut self, at: Instant, kind: MarkKind, label: impl Into<String>) {
        let mark = Mark { at: self.offset(at), kind, label: label.into() };
        self.timeline.marks.push(mark);
    }

    /// Records that a fault starts now: the start of the deadlines that follow.
    pub fn fault(&mut self, label: impl Into<String>) -> Instant {
        let now = Instant::now();
        self.faults.at = Some(now);
        self.mark(now, MarkKind::Fault, label);
        now
    }

    /// The scenario's client, or an error telling the author which step is missing.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        self.cluster
            .client
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no cluster yet: start the scenario with `Given a cluster with N nodes`"))
    }

    /// A namespaced API in the scenario's namespace.
    pub fn api<K>(&self) -> anyhow::Result<kube::Api<K>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Ok(kube::Api::namespaced(self.client()?, &self.cluster.namespace))
    }

    /// Records a figure and prints it into the scenario's log (console, features.log, JUnit).
    pub fn figure(&mut self, name: impl Into<String>, seconds: f64, deadline: Option<f64>) {
        let figure = Figure { name: name.into(), seconds, deadline };
        let deadline = figure.deadline.map(|d| format!(" (deadline {d} s)")).unwrap_or_default();
        crate::report::scenario_log::line(format_args!("⏱ {}: {:.3} s{deadline}", figure.name, figure.seconds));
        self.timeline.figures.push(figure);
    }

    /// Records a one-line fact worth keeping with the scenario (a drill's seed, a chaos object's
    /// name): printed under the step and kept in the reports like a figure.
    pub fn note(&self, text: impl fmt::Display) {
        crate::report::scenario_log::line(text);
    }
}
