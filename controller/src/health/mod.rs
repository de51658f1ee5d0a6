//! Health of a workload, white box and black box, as a pure function of what the controller
//! observed: the workload (desired vs available replicas), its pods, the readiness of their
//! nodes, recent container restarts ([`restarts::RestartTracker`]) and failing black-box probes
//! ([`crate::probe`]).
//!
//! A pod is unhealthy when (white box) it is not Ready, a container is waiting
//! (CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerError, …) or terminated, its
//! restart count rose within the restart window, it is terminating, it failed or completed, or
//! its node is NotReady/Unknown/gone; or when (black box) the controller's own HTTP probe of it
//! failed `threshold` times in a row. A workload is unhealthy when it wants no replicas, has no
//! pods, or all of its pods are unhealthy.

pub mod restarts;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use kube::ResourceExt;

use crate::workload::Workload;

/// Readiness of a node, from its `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeReadiness {
    /// `Ready=True`.
    Ready,
    /// `Ready=False`.
    NotReady,
    /// `Ready=Unknown` (the node stopped reporting).
    Unknown,
    /// No `Ready` condition yet (a node whose kubelet has not reported): not held against pods.
    NotReported,
    /// The node object does not exist.
    Missing,
}

impl NodeReadiness {
    /// Reads a node's `Ready` condition.
    pub fn of(node: &Node) -> NodeReadiness {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        match ready.map(|c| c.status.as_str()) {
            Some("True") => NodeReadiness::Ready,
            Some("False") => NodeReadiness::NotReady,
            Some(_) => NodeReadiness::Unknown,
            None => NodeReadiness::NotReported,
        }
    }

    fn problem(self) -> Option<&'static str> {
        match self {
            NodeReadiness::Ready | NodeReadiness::NotReported => None,
            NodeReadiness::NotReady => Some("NotReady"),
            NodeReadiness::Unknown => Some("Unknown"),
            NodeReadiness::Missing => Some("not found"),
        }
    }
}

/// What, besides the pods themselves, the analysis takes into account.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Node name → readiness (nodes absent from the map count as [`NodeReadiness::Missing`]).
    pub nodes: HashMap<String, NodeReadiness>,
    /// Pod UID → container restarts observed within the restart window.
    pub recent_restarts: HashMap<String, u32>,
    /// Pod name → black-box probe failure (only pods at or past the failure threshold).
    pub probe_failures: HashMap<String, String>,
}

/// Which checks are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// Pod/node status analysis.
    pub white_box: bool,
    /// The controller's own probes.
    pub black_box: bool,
    /// Restarts within the window that make a pod unhealthy (≥ 1).
    pub restart_threshold: u32,
    /// The restart window (for messages; the counting is done by the restart tracker).
    pub restart_window: Duration,
}

impl Default for Checks {
    fn default() -> Self {
        Checks { white_box: true, black_box: true, restart_threshold: 1, restart_window: Duration::from_secs(120) }
    }
}

/// An unhealthy pod and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    /// Pod name.
    pub pod: String,
    /// Reasons, e.g. `["CrashLoopBackOff", "restarts 4"]`.
    pub reasons: Vec<String>,
    /// Whether a white-box check found it.
    pub white_box: bool,
    /// Whether the black-box probe found it.
    pub black_box: bool,
}

/// The health of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Whether the workload can serve.
    pub healthy: bool,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Pods selected by the workload.
    pub pods: usize,
    /// Unhealthy pods, in name order.
    pub problems: Vec<PodProblem>,
    /// A workload-level problem (no pods, scaled to zero).
    pub workload_problem: Option<String>,
    /// Its pods deleted recently (`name: deleted N s ago`): named in messages only, since a
    /// pod that is gone no longer counts for or against the workload.
    pub departed: Vec<String>,
}

impl Health {
    /// Healthy pods.
    pub fn healthy_pods(&self) -> usize {
        self.pods - self.problems.len()
    }

    /// The problems as one line: `a-1: CrashLoopBackOff, restarts 4; a-2: node w2 NotReady`,
    /// then the pods deleted recently (only when something is wrong).
    pub fn describe(&self) -> String {
        let pods = self.problems.iter().map(|p| format!("{}: {}", p.pod, p.reasons.join(", ")));
        let mut parts: Vec<String> = self.workload_problem.iter().cloned().chain(pods).collect();
        if !parts.is_empty() {
            parts.extend(self.departed.iter().cloned());
        }
        parts.join("; ")
    }

    /// Which detectors found the problems: `white-box`, `black-box` or `white-box+black-box`.
    pub fn detectors(&self) -> &'static str {
        let white = self.workload_problem.is_some() || self.problems.iter().any(|p| p.white_box);
        let black = self.problems.iter().any(|p| p.black_box);
        match (white, black) {
            (true, true) => "white-box+black-box",
            (false, true) => "black-box",
            _ => "white-box",
        }
    }
}

/// Assesses a workload from its pods (those its selector selects) and the observations.
pub fn assess(workload: &Workload, pods: &[&Pod], obs: &Observations, checks: Checks) -> Health {
    let mut problems: Vec<PodProblem> = pods.iter().filter_map(|p| pod_problem(p, obs, checks)).collect();
    problems.sort_by(|a, b| a.pod.cmp(&b.pod));
    let workload_problem = if workload.desired <= 0 {
        Some(format!("scaled to {} replicas", workload.desired.max(0)))
    } else if pods.is_empty() {
        Some(format!("no pods ({}/{} available)", workload.available, workload.desired))
    } else {
        None
    };
    let healthy = workload_problem.is_none() && problems.len() < pods.len();
    Health {
        healthy,
        desired: workload.desired,
        available: workload.available,
        pods: pods.len(),
        problems,
        workload_problem,
        departed: Vec::new(),
    }
}

/// Why a pod is unhealthy, or `None` when it is healthy.
pub fn pod_problem(pod: &Pod, obs: &Observations, checks: Checks) -> Option<PodProblem> {
    let mut reasons = Vec::new();
    let mut white = false;
    if checks.white_box {
        reasons = white_box_reasons(pod, obs, checks);
        white = !reasons.is_empty();
    }
    let mut black = false;
    if checks.black_box
        && let Some(failure) = obs.probe_failures.get(&pod.name_any())
    {
        reasons.push(failure.clone());
        black = true;
    }
    (white || black).then(|| PodProblem { pod: pod.name_any(), reasons, white_box: white, black_box: black })
}

fn white_box_reasons(pod: &Pod, obs: &Observations, checks: Checks) -> Vec<String> {
    let mut reasons = Vec::new();
    let status = pod.status.as_ref();
    if pod.metadata.deletion_timestamp.is_some() {
        reasons.push("terminating".to_string());
    }
    if let Some(phase @ ("Failed" | "Succeeded")) = status.and_then(|s| s.phase.as_deref()) {
        reasons.push(format!("phase {phase}"));
    }
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        None => reasons.push("not scheduled".to_string()),
        Some(node) => {
            let readiness = obs.nodes.get(node).copied().unwrap_or(NodeReadiness::Missing);
            if let Some(problem) = readiness.problem() {
                reasons.push(format!("node {node} {problem}"));
            }
        }
    }
    let (init, main): (&[ContainerStatus], &[ContainerStatus]) = status.map_or((&[], &[]), |s| {
        (s.init_container_statuses.as_deref().unwrap_or(&[]), s.container_statuses.as_deref().unwrap_or(&[]))
    });
    for (c, is_init) in init.iter().map(|c| (c, true)).chain(main.iter().map(|c| (c, false))) {
        let label = |what: String| if main.len() > 1 || is_init { format!("{what} ({})", c.name) } else { what };
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            reasons.push(label(w.reason.clone().unwrap_or_else(|| "Waiting".into())));
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref())
            && !(is_init && t.exit_code == 0)
        {
            let why = t.reason.clone().unwrap_or_else(|| "Terminated".into());
            reasons.push(label(format!("terminated: {why} (exit {})", t.exit_code)));
        }
    }
    let restarts: i32 = init.iter().chain(main).map(|c| c.restart_count).sum();
    let recent = pod.uid().and_then(|u| obs.recent_restarts.get(&u).copied()).unwrap_or(0);
    let restarting = recent >= checks.restart_threshold.max(1);
    if reasons.is_empty() && !restarting && !is_ready(pod) {
        reasons.push("not Ready".to_string());
    }
    if restarting && reasons.is_empty() {
        let window = humantime::format_duration(checks.restart_window);
        reasons.push(format!("restarts {restarts} (+{recent} within {window})"));
    } else if !reasons.is_empty() && restarts > 0 {
        reasons.push(format!("restarts {restarts}"));
    }
    reasons
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The node names of these pods mapped to their readiness, from a node lookup.
pub fn node_readiness<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    lookup: impl Fn(&str) -> Option<NodeReadiness>,
) -> HashMap<String, NodeReadiness> {
    let names: BTreeMap<&str, ()> =
        pods.into_iter().filter_map(|p| p.spec.as_ref()?.node_name.as_deref()).map(|n| (n, ())).collect();
    names.into_keys().map(|n| (n.to_string(), lookup(n).unwrap_or(NodeReadiness::Missing))).collect()
}
