//! Pod status as the kubelet reports it: container states, phase (the kubelet's `getPhase`),
//! conditions with transition times, QoS class.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::api::ops::now_rfc3339;

/// State of one container, as in `containerStatuses[].state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CState {
    /// `waiting`.
    Waiting {
        /// e.g. `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// `running`.
    Running {
        /// RFC 3339.
        started_at: String,
    },
    /// `terminated`.
    Terminated {
        /// Exit code (128 + signal when killed).
        exit_code: i32,
        /// Signal, if killed by one.
        signal: Option<i32>,
        /// `Completed`, `Error`, `StartError`, `ContainerStatusUnknown`.
        reason: String,
        /// Details.
        message: Option<String>,
        /// RFC 3339.
        started_at: Option<String>,
        /// RFC 3339.
        finished_at: String,
        /// ID of the instance that ended.
        container_id: Option<String>,
    },
}

impl CState {
    /// `waiting` with a reason.
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        Self::Waiting { reason: reason.to_string(), message }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            Self::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            Self::Terminated { exit_code, signal, reason, message, started_at, finished_at, container_id } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "finishedAt": finished_at,
                    "startedAt": started_at});
                if let Some(s) = signal {
                    t["signal"] = json!(s);
                }
                if let Some(m) = message {
                    t["message"] = json!(m);
                }
                if let Some(c) = container_id {
                    t["containerID"] = json!(c);
                }
                json!({"terminated": t})
            }
        }
    }
}

/// What the phase and conditions are computed from, per container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Current state.
    pub state: CState,
    /// Last termination, if any.
    pub last_terminated: bool,
    /// `ready`.
    pub ready: bool,
}

/// The kubelet's `getPhase` for regular containers. `terminal` = the pod is being deleted and
/// its containers have stopped.
pub fn phase(restart_policy: &str, containers: &[ContainerView], terminal: bool) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            CState::Running { .. } => running += 1,
            CState::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            CState::Waiting { .. } => {
                if c.last_terminated {
                    stopped += 1
                } else {
                    waiting += 1
                }
            }
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    if terminal {
        return if stopped == succeeded { "Succeeded" } else { "Failed" };
    }
    if restart_policy == "Always" {
        return "Running";
    }
    if stopped == succeeded {
        return "Succeeded";
    }
    if restart_policy == "Never" {
        return "Failed";
    }
    "Running"
}

/// `qosClass` from the containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> =
        ["containers", "initContainers"].iter().flat_map(|l| spec[*l].as_array().into_iter().flatten()).collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            if !req[r].is_null() || !lim[r].is_null() {
                any = true;
            }
            let request = if req[r].is_null() { &lim[r] } else { &req[r] };
            if lim[r].is_null() || request != &lim[r] {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Condition types the kubelet owns; others on the pod are kept as they are.
pub const OWNED_CONDITIONS: [&str; 5] =
    ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"];

/// Remembers when each condition last changed.
#[derive(Debug, Default)]
pub struct Transitions {
    last: HashMap<String, (String, String)>,
}

impl Transitions {
    /// A condition object; its `lastTransitionTime` changes only when `status` does.
    pub fn condition(&mut self, kind: &str, status: bool, reason: Option<&str>, message: Option<String>) -> Value {
        let s = if status { "True" } else { "False" };
        let entry = self.last.entry(kind.to_string()).or_insert_with(|| (s.to_string(), now_rfc3339()));
        if entry.0 != s {
            *entry = (s.to_string(), now_rfc3339());
        }
        let mut c = json!({"type": kind, "status": s, "lastProbeTime": null, "lastTransitionTime": entry.1});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    }

    /// Seeds a condition's transition time from the stored pod (e.g. `PodScheduled`).
    pub fn seed(&mut self, kind: &str, status: &str, time: &str) {
        self.last.entry(kind.to_string()).or_insert_with(|| (status.to_string(), time.to_string()));
    }
}

/// The pod's conditions. `containers` are the regular containers and sidecars;
/// `readiness_gates` are `(conditionType, satisfied)`; `init_incomplete` names the init
/// containers that have not completed (or, sidecars, started).
pub fn conditions(
    t: &mut Transitions,
    phase: &str,
    containers: &[ContainerView],
    readiness_gates: &[(String, bool)],
    init_incomplete: &[&str],
    sandbox_ready: bool,
) -> Vec<Value> {
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = containers.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    let containers_ready = unready.is_empty() && !terminal;
    let (cr_reason, cr_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if !unready.is_empty() {
        (Some("ContainersNotReady"), Some(format!("containers with unready status: [{}]", unready.join(" "))))
    } else {
        (None, None)
    };
    let gates_missing: Vec<&str> = readiness_gates.iter().filter(|(_, ok)| !ok).map(|(n, _)| n.as_str()).collect();
    let (ready, ready_reason, ready_message) = if !containers_ready {
        (false, cr_reason, cr_message.clone())
    } else if !gates_missing.is_empty() {
        (
            false,
            Some("ReadinessGatesNotReady"),
            Some(format!("corresponding condition of pod readiness gate \"{}\" does not exist.", gates_missing[0])),
        )
    } else {
        (true, None, None)
    };
    vec![
        t.condition("PodReadyToStartContainers", sandbox_ready && !terminal, None, None),
        if init_incomplete.is_empty() {
            t.condition("Initialized", true, None, None)
        } else {
            t.condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!("containers with incomplete status: [{}]", init_incomplete.join(" "))),
            )
        },
        t.condition("Ready", ready, ready_reason, ready_message),
        t.condition("ContainersReady", containers_ready, cr_reason, cr_message),
        t.condition("PodScheduled", true, None, None),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: CState, last: bool) -> ContainerView {
        ContainerView { name: "c".into(), state, last_terminated: last, ready: false }
    }

    fn term(code: i32) -> CState {
        CState::Terminated {
            exit_code: code,
            signal: None,
            reason: "x".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
            container_id: None,
        }
    }

    #[test]
    fn phase_follows_the_kubelet() {
        let creating = CState::waiting("ContainerCreating", None);
        let backoff = CState::waiting("CrashLoopBackOff", None);
        assert_eq!(phase("Always", &[view(creating, false)], false), "Pending");
        assert_eq!(phase("Always", &[view(backoff.clone(), true)], false), "Running");
        assert_eq!(phase("Never", &[view(term(0), false)], false), "Succeeded");
        assert_eq!(phase("Never", &[view(term(1), false)], false), "Failed");
        assert_eq!(phase("OnFailure", &[view(backoff, true)], false), "Running");
        assert_eq!(phase("Always", &[view(term(0), false)], true), "Succeeded");
        assert_eq!(phase("Always", &[view(term(143), false)], true), "Failed");
    }

    #[test]
    fn qos() {
        assert_eq!(qos_class(&json!({"containers": [{"name": "a"}]})), "BestEffort");
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
