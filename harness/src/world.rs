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
use crate::cluster::ha_pair::{Side, workload};
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
    /// Every fault the scenario started, in order (also those removed since).
    pub history: Vec<Fault>,
    /// Nodes a step cordoned (drained), made schedulable again when the scenario ends.
    pub cordoned: Vec<String>,
}

/// One fault the scenario started: what, when, and the pods it hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it was, as on the timeline: `scenario primary-pod-kill injected`.
    pub label: String,
    /// When it started (a kill's first delete, a chaos object's create).
    pub at: Instant,
    /// The pods it hit, `namespace/name` (killed by a step, or recorded by its chaos object).
    pub pods: Vec<String>,
    /// Whether any of them is a pod of one of the scenario's HA services (primary or standby).
    pub on_service: bool,
}

impl Fault {
    /// The names of the pods it hit.
    pub fn pod_names(&self) -> impl Iterator<Item = &str> {
        self.pods.iter().map(|p| p.rsplit('/').next().unwrap_or(p))
    }
}

impl FaultState {
    /// The incident: the earliest fault that hit an HA service's own pods. Deadlines, "fault
    /// to switch" and the 1-5-10 figures count from it: a fault on the controller alone does
    /// not start the clock, and a second fault on the service does not restart it.
    pub fn incident(&self) -> Option<&Fault> {
        self.history.iter().find(|f| f.on_service)
    }

    /// The pods of the HA services that faults hit (the cause the controller should name),
    /// in the order hit.
    pub fn service_pods(&self) -> Vec<String> {
        let mut pods: Vec<String> = Vec::new();
        for f in self.history.iter().filter(|f| f.on_service) {
            for p in f.pod_names() {
                if !pods.iter().any(|q| q == p) {
                    pods.push(p.to_string());
                }
            }
        }
        pods
    }

    /// Every pod any fault hit (names).
    pub fn all_pods(&self) -> Vec<String> {
        self.history.iter().flat_map(|f| f.pod_names().map(str::to_string)).collect()
    }

    /// One line per fault: its label and the pods it hit (for a missed deadline's message).
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self
            .history
            .iter()
            .map(|f| {
                let pods = if f.pods.is_empty() { "no pod recorded".to_string() } else { f.pods.join(", ") };
                let on = if f.on_service { "" } else { " (not the HA service's pods)" };
                format!("fault \"{}\" hit {pods}{on}", f.label)
            })
            .collect();
        if lines.is_empty() { "no fault was started".to_string() } else { lines.join("\n") }
    }
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

    /// Ends the scenario: removes its faults (nodes it cordoned are uncordoned) and what its
    /// chaos run created (the namespace on a run-wide cluster) and waits until they are gone, then stops its traffic, its recorder
    /// and its embedded cluster. Called by the after-scenario hook; what it could not remove
    /// is the error (its ledger then stays for `hadrill clean`).
    pub async fn teardown(&mut self) -> anyhow::Result<()> {
        self.faults.injections.clear();
        let mut uncordoned = Ok(());
        for node in std::mem::take(&mut self.faults.cordoned) {
            if let Some(client) = self.cluster.client.clone()
                && let Err(e) = crate::cluster::drain::uncordon(&client, &node).await
            {
                uncordoned = Err(e);
            }
        }
        let removed = match self.faults.run.take() {
            Some(run) => run.finish().await.map(drop),
            None => Ok(()),
        };
        let removed = removed.and(uncordoned);
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

    /// Records a fault that started at `at` and hit `pods` (`namespace/name`) and puts it on
    /// the timeline. Whether it hit an HA service is decided here: a pod of the scenario's
    /// namespace belonging to one of its services' sides.
    pub fn fault(&mut self, label: impl Into<String>, at: Instant, pods: Vec<String>) {
        let label = label.into();
        let on_service = pods.iter().any(|p| self.is_service_pod(p));
        self.mark(at, MarkKind::Fault, label.clone());
        self.faults.history.push(Fault { label, at, pods, on_service });
    }

    /// Whether `pod` (`namespace/name`) belongs to a side of one of the scenario's HA services.
    fn is_service_pod(&self, pod: &str) -> bool {
        let Some((ns, name)) = pod.split_once('/') else { return false };
        ns == self.cluster.namespace
            && self.service.names.iter().any(|svc| {
                [Side::Primary, Side::Standby]
                    .iter()
                    .any(|side| name.starts_with(&format!("{}-", workload(svc, *side))))
            })
    }

    /// The incident (see [`FaultState::incident`]), or an error saying which faults there were.
    pub fn incident(&self) -> anyhow::Result<Fault> {
        self.faults.incident().cloned().ok_or_else(|| match self.faults.history.is_empty() {
            true => anyhow::anyhow!("no fault was injected before this step"),
            false => anyhow::anyhow!(
                "no fault has hit the pods of an HA service yet, so nothing starts the incident's clock:\n{}",
                self.faults.describe()
            ),
        })
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
        self.record_figure(Figure { name: name.into(), seconds, deadline, from: None });
    }

    /// Records a figure counted from `fault` (the incident), which it names.
    pub fn figure_from(&mut self, fault: &Fault, name: impl Into<String>, seconds: f64, deadline: Option<f64>) {
        self.record_figure(Figure { name: name.into(), seconds, deadline, from: Some(fault.label.clone()) });
    }

    fn record_figure(&mut self, figure: Figure) {
        crate::report::scenario_log::line(format_args!("⏱ {figure}"));
        self.timeline.figures.push(figure);
    }

    /// Records a one-line fact worth keeping with the scenario (a drill's seed, a chaos object's
    /// name): printed under the step and kept in the reports like a figure.
    pub fn note(&self, text: impl fmt::Display) {
        crate::report::scenario_log::line(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn world() -> HadrillWorld {
        let mut w = HadrillWorld::new();
        w.cluster.namespace = "hadrill-1".into();
        w.service.names.push("dispatch".into());
        w
    }

    #[test]
    fn the_incident_starts_at_the_first_fault_on_the_services_pods() {
        let mut w = world();
        let t0 = Instant::now();
        // The controller alone: no incident yet, and the error lists what was hit.
        w.fault("scenario controller-leader-kill injected", t0, vec!["hadrill-system/hadrill-controller-7f-x".into()]);
        assert!(w.faults.incident().is_none());
        let err = w.incident().unwrap_err().to_string();
        assert!(err.contains("hadrill-system/hadrill-controller-7f-x (not the HA service's pods)"), "{err}");
        // A pod of another namespace with a matching name is not the service's either.
        w.fault("elsewhere", t0, vec!["other/dispatch-primary-5c-a".into()]);
        assert!(w.faults.incident().is_none());

        let t1 = t0 + Duration::from_millis(100);
        w.fault("1 pod(s) of the primary of dispatch killed", t1, vec!["hadrill-1/dispatch-primary-5c-a".into()]);
        // A later fault on the service (the standby) does not restart the clock.
        let t2 = t1 + Duration::from_millis(100);
        w.fault("scenario standby-partition injected", t2, vec!["hadrill-1/dispatch-standby-9d-b".into()]);
        let incident = w.incident().unwrap();
        assert_eq!((incident.label.as_str(), incident.at), ("1 pod(s) of the primary of dispatch killed", t1));
        assert_eq!(w.faults.service_pods(), ["dispatch-primary-5c-a", "dispatch-standby-9d-b"]);
        assert_eq!(w.faults.all_pods().len(), 4);
        assert_eq!(w.timeline.marks.iter().filter(|m| m.kind == MarkKind::Fault).count(), 4);

        w.figure_from(&incident, "dispatch: fault to switch", 0.53, Some(10.0));
        let shown = w.timeline.figures[0].to_string();
        assert_eq!(
            shown,
            "dispatch: fault to switch: 0.530 s (deadline 10 s) from \"1 pod(s) of the primary of dispatch killed\""
        );
    }

    #[test]
    fn without_any_fault_the_clock_has_nothing_to_count_from() {
        assert_eq!(world().incident().unwrap_err().to_string(), "no fault was injected before this step");
    }
}
