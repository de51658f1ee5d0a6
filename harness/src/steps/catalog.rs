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
];
