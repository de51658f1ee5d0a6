//! The documented step library: one example per step definition, printed by `hadrill steps`
//! and used to suggest the closest matches for a step that matches nothing. Tests check that
//! every example resolves to exactly one definition and that every definition is listed.

/// One documented step.
#[derive(Debug, Clone, Copy)]
pub struct StepDoc {
    /// `Given`, `When` or `Then`.
    pub keyword: &'static str,
    /// A working example (without the keyword).
    pub example: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The module it lives in, under `harness/src/steps/`.
    pub module: &'static str,
    /// What it needs from earlier steps and gives later ones (for the static check).
    pub role: Role,
}

/// What a step needs from the steps before it and gives the steps after it. `hadrill check`
/// holds every scenario's steps to these, so a missing set-up step is named before any
/// cluster starts. "Its service" is the step's first quoted argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Starts the scenario's cluster; `embedded`: the embedded one whatever the provider.
    Cluster {
        /// Always the embedded cluster.
        embedded: bool,
    },
    /// Reads or changes the cluster.
    OnCluster,
    /// Applies the manifest file its first quoted argument names (needs a cluster).
    Manifest,
    /// Deploys the failover controller (needs a cluster).
    Controller,
    /// Creates its HA service (needs a cluster).
    HaService,
    /// Works on its HA service; `fault`: kills pods of it (later steps may measure from it).
    OnService {
        /// The step kills pods.
        fault: bool,
    },
    /// Starts vehicles against its HA service.
    Vehicles,
    /// Follows the vehicles started earlier.
    OnVehicles,
    /// Injects a fault of the scenario library.
    Fault(FaultStep),
    /// Measures or removes a fault injected earlier.
    AfterFault,
}

/// Which fault step, each naming its scenario of the library in its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultStep {
    /// `the scenario "NAME" is injected`.
    Scenario,
    /// `the scenario "NAME" is injected with "SETTINGS"`.
    ScenarioWith,
    /// `the node hosting the primary of "SERVICE" loses its network for DURATION`.
    NodeNetwork,
    /// `the primary of "SERVICE" is CPU-stressed by N workers at P% for DURATION`.
    CpuStress,
    /// `the controller's leader is killed`.
    LeaderKill,
    /// `a random fault from "NAMES" is injected with seed N`.
    Drill,
}

/// The first documented step with `role`, as written in a feature (`Given a cluster with 3 nodes`).
pub fn example_of(role: Role) -> Option<String> {
    CATALOG.iter().find(|d| d.role == role).map(|d| format!("{} {}", d.keyword, d.example))
}

/// Every step, grouped by subject.
pub const CATALOG: &[StepDoc] = &[
    StepDoc {
        keyword: "Given",
        example: "a cluster with 3 nodes",
        description: "The run's cluster (--cluster): on sim an embedded cluster of its own; on kind/existing a check for N Ready schedulable nodes and a namespace of its own, removed when the scenario ends.",
        module: "cluster",
        role: Role::Cluster { embedded: false },
    },
    StepDoc {
        keyword: "Given",
        example: "an embedded cluster with 3 nodes",
        description: "Starts an embedded cluster for this scenario (a Kubernetes API server in the test process), whatever the run's provider.",
        module: "cluster",
        role: Role::Cluster { embedded: true },
    },
    StepDoc {
        keyword: "When",
        example: "the manifest \"features/manifests/web.yaml\" is applied",
        description: "Server-side applies every document of a YAML file (path from the repository root); a file with a bad document changes nothing.",
        module: "cluster",
        role: Role::Manifest,
    },
    StepDoc {
        keyword: "Then",
        example: "the cluster lists 3 nodes",
        description: "Counts the Node objects.",
        module: "cluster",
        role: Role::OnCluster,
    },
    StepDoc {
        keyword: "Then",
        example: "the deployment \"web\" wants 2 replicas",
        description: "Checks a Deployment's spec.replicas.",
        module: "cluster",
        role: Role::OnCluster,
    },
    StepDoc {
        keyword: "Then",
        example: "the service \"web\" selects pods labelled \"app=web\"",
        description: "Checks one key=value of a Service's selector.",
        module: "cluster",
        role: Role::OnCluster,
    },
    StepDoc {
        keyword: "When",
        example: "the deployment \"web\" is deleted",
        description: "Deletes a Deployment (background propagation).",
        module: "cluster",
        role: Role::OnCluster,
    },
    StepDoc {
        keyword: "Then",
        example: "the deployment \"web\" is gone",
        description: "Checks that a Deployment no longer exists.",
        module: "cluster",
        role: Role::OnCluster,
    },
    StepDoc {
        keyword: "Given",
        example: "the failover controller runs with 2 replicas",
        description: "Applies deploy/controller/ unchanged, scales it, waits for available replicas and a Lease holder.",
        module: "controller",
        role: Role::Controller,
    },
    StepDoc {
        keyword: "Given",
        example: "an HA service \"dispatch\" with a primary and a standby deployment of 2 replicas",
        description: "Creates dispatch-primary, dispatch-standby (each with a disruption budget of `maxUnavailable: 1`) and the annotated Service; waits until both are available (and adopted, with a controller).",
        module: "ha_service",
        role: Role::HaService,
    },
    StepDoc {
        keyword: "When",
        example: "every pod of the primary of \"dispatch\" is killed",
        description: "Deletes every pod of one side (primary or standby) at once (grace period 0); deadlines count from here.",
        module: "ha_service",
        role: Role::OnService { fault: true },
    },
    StepDoc {
        keyword: "When",
        example: "1 pod of the primary of \"dispatch\" is killed",
        description: "Deletes that many pods of one side (grace period 0); deadlines count from here.",
        module: "ha_service",
        role: Role::OnService { fault: true },
    },
    StepDoc {
        keyword: "When",
        example: "the node hosting the primary of \"dispatch\" is drained",
        description: "Drains the node of the primary's first pod as kubectl drain does: cordon, then evictions that honour the disruption budgets (refused ones asked again every 5 s, 60 s in all), until its pods are gone. Uncordoned when the scenario ends.",
        module: "ha_service",
        role: Role::OnService { fault: true },
    },
    StepDoc {
        keyword: "When",
        example: "the standby of \"dispatch\" is scaled to 0",
        description: "Scales one side's Deployment and waits until it has exactly that many ready replicas (a side without pods is unhealthy).",
        module: "ha_service",
        role: Role::OnService { fault: false },
    },
    StepDoc {
        keyword: "Then",
        example: "\"dispatch\" fails over to the standby within 10 s",
        description: "Watches the Service until it selects the standby; the time from the fault is printed and held to the deadline.",
        module: "ha_service",
        role: Role::OnService { fault: false },
    },
    StepDoc {
        keyword: "Then",
        example: "\"dispatch\" stays on the primary for 10 s",
        description: "Watches the Service for the whole window; any switch away from the primary fails the step.",
        module: "ha_service",
        role: Role::OnService { fault: false },
    },
    StepDoc {
        keyword: "When",
        example: "the scenario \"primary-pod-kill\" is injected",
        description: "Renders a scenario of scenarios/ (parameters filled from the HA service, its node, the controller's leader) and injects it: targets first, then AllInjected; deadlines count from its creation. Removed when the scenario ends.",
        module: "faults",
        role: Role::Fault(FaultStep::Scenario),
    },
    StepDoc {
        keyword: "When",
        example: "the scenario \"primary-network-loss-50\" is injected with \"loss=30; duration=20s\"",
        description: "The same, with parameters set explicitly (name=value, separated by `;`).",
        module: "faults",
        role: Role::Fault(FaultStep::ScenarioWith),
    },
    StepDoc {
        keyword: "When",
        example: "the node hosting the primary of \"dispatch\" loses its network for 60 s",
        description: "Injects primary-node-network-loss on the node of the primary's first pod: its pods unreachable and the node's heartbeat stopped.",
        module: "faults",
        role: Role::Fault(FaultStep::NodeNetwork),
    },
    StepDoc {
        keyword: "When",
        example: "the primary of \"dispatch\" is CPU-stressed by 2 workers at 100% for 60 s",
        description: "Injects primary-cpu-stress (StressChaos) into the primary's container.",
        module: "faults",
        role: Role::Fault(FaultStep::CpuStress),
    },
    StepDoc {
        keyword: "When",
        example: "the controller's leader is killed",
        description: "Injects controller-leader-kill on the pod holding the controller's Lease.",
        module: "faults",
        role: Role::Fault(FaultStep::LeaderKill),
    },
    StepDoc {
        keyword: "When",
        example: "the fault is removed",
        description: "Deletes every fault in place and waits until each is confirmed recovered (the object is gone).",
        module: "faults",
        role: Role::AfterFault,
    },
    StepDoc {
        keyword: "Then",
        example: "the fault ends by itself within 90 s",
        description: "Waits for each fault's duration to run out (Chaos Mesh: AllRecovered; a ChaosBlade: its timeout passed and its nodes Ready again), then removes the object.",
        module: "faults",
        role: Role::AfterFault,
    },
    StepDoc {
        keyword: "Then",
        example: "the fault is detected within 1 min, located within 5 min and recovered within 10 min",
        description: "The 1-5-10 requirement, from the fault: detected = first Event on the Service; located = first Event naming every faulty pod; recovered = a ready standby endpoint. Units: s, min, h.",
        module: "recovery",
        role: Role::AfterFault,
    },
    StepDoc {
        keyword: "Then",
        example: "the controller reports the cause naming the dead pods",
        description: "Waits for an Event on the Service whose note names every pod the last fault hit.",
        module: "recovery",
        role: Role::AfterFault,
    },
    StepDoc {
        keyword: "Then",
        example: "the controller warns that both sides of \"dispatch\" are down",
        description: "Waits for a Warning Event BothUnhealthy on the Service.",
        module: "recovery",
        role: Role::OnService { fault: false },
    },
    StepDoc {
        keyword: "Given",
        example: "the failover controller runs with 2 replicas and black-box probing off",
        description: "The same controller with its own pod probes off (HADRILL_BLACK_BOX=false): it relies on pod and node status only.",
        module: "controller",
        role: Role::Controller,
    },
    StepDoc {
        keyword: "Given",
        example: "\"dispatch\" fails back automatically after 5 s",
        description: "Annotates the Service: failback auto once the primary is healthy that long, and the same dwell between switches.",
        module: "ha_service",
        role: Role::OnService { fault: false },
    },
    StepDoc {
        keyword: "Then",
        example: "\"dispatch\" fails back to the primary within 30 s",
        description: "Watches the Service until it selects the primary again; measured from the switch to the standby.",
        module: "ha_service",
        role: Role::OnService { fault: false },
    },
    StepDoc {
        keyword: "Given",
        example: "20 vehicles send heartbeats to \"dispatch\" every 200 ms",
        description: "Starts a vehicles pod calling the Service, one session trace per vehicle (W3C and sw8 alternating); waits until every vehicle is served.",
        module: "vehicles",
        role: Role::Vehicles,
    },
    StepDoc {
        keyword: "Then",
        example: "no vehicle loses its link for more than 3 s",
        description: "Follows the vehicles until all are served again after the last fault or switch; every vehicle's longest link gap must be within the limit.",
        module: "vehicles",
        role: Role::OnVehicles,
    },
    StepDoc {
        keyword: "Then",
        example: "every vehicle's session trace is continuous",
        description: "Stops the vehicles and checks their spans: no orphan or broken chain, one trace per session, across the failover when there was one.",
        module: "vehicles",
        role: Role::OnVehicles,
    },
    StepDoc {
        keyword: "When",
        example: "a random fault from \"primary-pod-kill, primary-pod-failure\" is injected with seed 42",
        description: "A fault drill: a seeded random pick among the scenarios (seed and pick printed and on the timeline), injected.",
        module: "faults",
        role: Role::Fault(FaultStep::Drill),
    },
];

#[cfg(test)]
mod tests {
    use super::CATALOG;

    #[test]
    fn the_readme_lists_every_step() {
        let readme = include_str!("../../../README.md");
        let missing: Vec<String> = CATALOG
            .iter()
            .map(|d| format!("`{} {}`", d.keyword, d.example.replace('|', "\\|")))
            .filter(|row| !readme.contains(row.as_str()))
            .collect();
        assert!(missing.is_empty(), "README.md's step library lacks {missing:?}");
    }
}
