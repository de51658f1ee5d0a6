//! What a scenario records on its timeline: figures, marks and the vehicles' link gaps.

/// A figure measured during a scenario (printed, and kept for the reports).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What was measured, e.g. `dispatch: fault to switch`.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
    /// The deadline it was held to, if any.
    pub deadline: Option<f64>,
    /// The fault it counts from, when it counts from one (the incident's first fault).
    pub from: Option<String>,
}

/// `dispatch: fault to switch: 0.530 s (deadline 10 s) from "scenario primary-pod-kill injected"`
impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:.3} s", self.name, self.seconds)?;
        if let Some(d) = self.deadline {
            write!(f, " (deadline {d} s)")?;
        }
        if let Some(from) = &self.from {
            write!(f, " from \"{from}\"")?;
        }
        Ok(())
    }
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
