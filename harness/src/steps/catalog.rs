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
}

/// Every step, grouped by subject.
pub const CATALOG: &[StepDoc] = &[
    StepDoc {
        keyword: "Given",
        example: "an embedded cluster with 3 nodes",
        description: "Starts an embedded cluster for this scenario (a Kubernetes API server in the test process).",
        module: "cluster",
    },
    StepDoc {
        keyword: "When",
        example: "the manifest \"features/manifests/web.yaml\" is applied",
        description: "Server-side applies every document of a YAML file (path from the repository root); a file with a bad document changes nothing.",
        module: "cluster",
    },
    StepDoc {
        keyword: "Then",
        example: "the cluster lists 3 nodes",
        description: "Counts the Node objects.",
        module: "cluster",
    },
    StepDoc {
        keyword: "Then",
        example: "the deployment \"web\" wants 2 replicas",
        description: "Checks a Deployment's spec.replicas.",
        module: "cluster",
    },
    StepDoc {
        keyword: "Then",
        example: "the service \"web\" selects pods labelled \"app=web\"",
        description: "Checks one key=value of a Service's selector.",
        module: "cluster",
    },
    StepDoc {
        keyword: "When",
        example: "the deployment \"web\" is deleted",
        description: "Deletes a Deployment (background propagation).",
        module: "cluster",
    },
    StepDoc {
        keyword: "Then",
        example: "the deployment \"web\" is gone",
        description: "Checks that a Deployment no longer exists.",
        module: "cluster",
    },
    StepDoc {
        keyword: "Given",
        example: "the failover controller runs with 2 replicas",
        description: "Applies deploy/controller/ unchanged, scales it, waits for available replicas and a Lease holder.",
        module: "controller",
    },
    StepDoc {
        keyword: "Given",
        example: "an HA service \"dispatch\" with a primary and a standby deployment of 2 replicas",
        description: "Creates dispatch-primary, dispatch-standby and the annotated Service; waits until both are available (and adopted, with a controller).",
        module: "ha_service",
    },
    StepDoc {
        keyword: "When",
        example: "every pod of the primary of \"dispatch\" is killed",
        description: "Deletes every pod of the primary at once (grace period 0); deadlines count from here.",
        module: "ha_service",
    },
    StepDoc {
        keyword: "When",
        example: "1 pod of the primary of \"dispatch\" is killed",
        description: "Deletes that many pods of the primary (grace period 0); deadlines count from here.",
        module: "ha_service",
    },
    StepDoc {
        keyword: "Then",
        example: "\"dispatch\" fails over to the standby within 10 s",
        description: "Watches the Service until it selects the standby; the time from the fault is printed and held to the deadline.",
        module: "ha_service",
    },
    StepDoc {
        keyword: "Then",
        example: "\"dispatch\" stays on the primary for 10 s",
        description: "Watches the Service for the whole window; any switch away from the primary fails the step.",
        module: "ha_service",
    },
    StepDoc {
        keyword: "When",
        example: "the scenario \"primary-pod-kill\" is injected",
        description: "Renders a scenario of scenarios/ (parameters filled from the HA service, its node, the controller's leader) and injects it: targets first, then AllInjected; deadlines count from its creation. Removed when the scenario ends.",
        module: "faults",
    },
    StepDoc {
        keyword: "When",
        example: "the scenario \"primary-network-loss-50\" is injected with \"loss=30; duration=20s\"",
        description: "The same, with parameters set explicitly (name=value, separated by `;`).",
        module: "faults",
    },
    StepDoc {
        keyword: "When",
        example: "the node hosting the primary of \"dispatch\" loses its network for 60 s",
        description: "Injects primary-node-network-loss on the node of the primary's first pod: its pods unreachable and the node's heartbeat stopped.",
        module: "faults",
    },
    StepDoc {
        keyword: "When",
        example: "the primary of \"dispatch\" is CPU-stressed by 2 workers at 100% for 60 s",
        description: "Injects primary-cpu-stress (StressChaos) into the primary's container.",
        module: "faults",
    },
    StepDoc {
        keyword: "When",
        example: "the controller's leader is killed",
        description: "Injects controller-leader-kill on the pod holding the controller's Lease.",
        module: "faults",
    },
    StepDoc {
        keyword: "When",
        example: "the fault is removed",
        description: "Deletes every fault in place and waits until each is confirmed recovered (the object is gone).",
        module: "faults",
    },
    StepDoc {
        keyword: "Then",
        example: "the fault ends by itself within 90 s",
        description: "Waits for each fault's duration to run out (AllRecovered), then removes the object.",
        module: "faults",
    },
];
