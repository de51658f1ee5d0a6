//! The cucumber World: what one scenario holds while it runs.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::chaos::lifecycle::{Injection, Run};

/// The wall-clock time of `at`, an instant of this process (for comparing with times other
/// processes wrote: Events, the vehicles' records).
pub fn wall_clock(at: Instant) -> SystemTime {
    SystemTime::now() - at.elapsed()
}

/// `t` in milliseconds since the Unix epoch (the vehicles' time unit).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

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

/// What a timeline mark stands for (the lanes of the report's timeline picture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    /// A fault was injected.
    Fault,
    /// The fault was removed (deleted or its duration ended).
    FaultRemoved,
    /// The system under test noticed (e.g. the controller's first event).
    Detected,
    /// The Service switched sides.
    Switched,
    /// Traffic is served again.
    Recovered,
    /// Anything else worth seeing on the timeline.
    Note,
}

/// A point on the scenario's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mark {
    /// Seconds since the scenario started.
    pub at: f64,
    /// Its lane.
    pub kind: MarkKind,
    /// What happened, e.g. `scenario primary-pod-kill injected`.
    pub label: String,
}

/// A stretch of time in which one vehicle had no working link (from the vehicles' results).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinkGap {
    /// Vehicle id.
    pub vehicle: String,
    /// Seconds since the scenario started.
    pub from: f64,
    /// Seconds since the scenario started.
    pub to: f64,
}

/// State of one scenario: its cluster, its namespace and what it measured.
#[derive(cucumber::World)]
#[world(init = Self::new)]
pub struct HadrillWorld {
    /// The chaos run: its ledger and the faults to remove when the scenario ends. Declared
    /// (and dropped) before the cluster, so cleanup still reaches it.
    pub chaos_run: Option<Run>,
    /// Faults in place, in injection order.
    pub injections: Vec<Injection>,
    /// The run id: the value of the `hadrill.io/run` label on what the scenario owns.
    pub run_id: String,
    /// The pods the last fault hit (killed by a step, or recorded by its chaos object).
    pub fault_pods: Vec<String>,
    /// The HA services the scenario set up, by name.
    pub ha_services: Vec<String>,
    /// Background history of the namespace's Services, Endpoints and Events (for the failure
    /// bundle). Declared before the cluster, so its watches stop before the cluster does.
    pub recorder: Option<crate::probes::recorder::Recorder>,
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
    /// When the scenario started (the zero of the timeline).
    pub started: Instant,
    /// The timeline: faults, detection, switch, recovery.
    pub marks: Vec<Mark>,
    /// The vehicles' link gaps, when vehicles ran.
    pub link_gaps: Vec<LinkGap>,
    /// Where the pods of the scenario's HA services send their spans.
    pub traces: Option<crate::traces::sink::Sink>,
    /// The vehicles sending heartbeats, when a step started them.
    pub fleet: Option<crate::traffic::fleet::Fleet>,
    /// The trace continuity report, once a step checked the traces (kept for the bundle).
    pub trace_report: Option<String>,
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

impl Default for HadrillWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl HadrillWorld {
    /// A fresh scenario.
    pub fn new() -> Self {
        Self {
            chaos_run: None,
            injections: Vec::new(),
            run_id: String::new(),
            fault_pods: Vec::new(),
            ha_services: Vec::new(),
            sim: None,
            client: None,
            namespace: String::new(),
            fault_at: None,
            figures: Vec::new(),
            started: Instant::now(),
            marks: Vec::new(),
            link_gaps: Vec::new(),
            recorder: None,
            traces: None,
            fleet: None,
            trace_report: None,
        }
    }

    /// The one HA service the scenario set up (steps that take no name act on it).
    pub fn ha_service(&self) -> anyhow::Result<&str> {
        match self.ha_services.as_slice() {
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
        let start = wall_clock(self.started).duration_since(UNIX_EPOCH).unwrap_or_default();
        unix_ms as f64 / 1000.0 - start.as_secs_f64()
    }

    /// Seconds from the scenario's start to `at`.
    pub fn offset(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// Puts a mark on the timeline at `at`.
    pub fn mark(&mut self, at: Instant, kind: MarkKind, label: impl Into<String>) {
        let mark = Mark { at: self.offset(at), kind, label: label.into() };
        self.marks.push(mark);
    }

    /// Records that a fault starts now: the start of the deadlines that follow.
    pub fn fault(&mut self, label: impl Into<String>) -> Instant {
        let now = Instant::now();
        self.fault_at = Some(now);
        self.mark(now, MarkKind::Fault, label);
        now
    }

    /// The scenario's client, or an error telling the author which step is missing.
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        self.client
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no cluster yet: start the scenario with `Given a cluster with N nodes`"))
    }

    /// A namespaced API in the scenario's namespace.
    pub fn api<K>(&self) -> anyhow::Result<kube::Api<K>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Ok(kube::Api::namespaced(self.client()?, &self.namespace))
    }

    /// Records a figure and prints it into the scenario's log (console, features.log, JUnit).
    pub fn figure(&mut self, name: impl Into<String>, seconds: f64, deadline: Option<f64>) {
        let figure = Figure { name: name.into(), seconds, deadline };
        let deadline = figure.deadline.map(|d| format!(" (deadline {d} s)")).unwrap_or_default();
        crate::report::scenario_log::line(format_args!("⏱ {}: {:.3} s{deadline}", figure.name, figure.seconds));
        self.figures.push(figure);
    }

    /// Records a one-line fact worth keeping with the scenario (a drill's seed, a chaos object's
    /// name): printed under the step and kept in the reports like a figure.
    pub fn note(&self, text: impl fmt::Display) {
        crate::report::scenario_log::line(text);
    }
}
