//! What the controller remembers about each HA Service between reconciles (not persisted: a
//! new leader rebuilds it from its own observations, which followers keep making).

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use crate::workload::Side;

/// The status the controller last wrote, to see through a reflector store that has not caught
/// up with the write yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// `active` as written.
    pub active: Option<Side>,
    /// `switched-at` as written.
    pub switched_at: Option<Timestamp>,
    /// `switched-at` verbatim.
    pub switched_at_raw: Option<String>,
    /// `spec.selector` as written.
    pub selector: BTreeMap<String, String>,
}

/// Per-Service memory.
#[derive(Debug, Clone, Default)]
pub struct ServiceMemory {
    /// The side seen unhealthy while active, and when that was first seen (detection time).
    pub active_unhealthy_since: Option<(Side, Timestamp)>,
    /// Since when the primary has been continuously healthy.
    pub primary_healthy_since: Option<Timestamp>,
    /// The last event published (reason, note), to publish each decision once.
    pub last_notice: Option<(String, String)>,
    /// The last status written.
    pub applied: Option<Applied>,
}
