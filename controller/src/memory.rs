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
    /// The resourceVersion of the Service the write was decided from, when the write changed
    /// it (a new resourceVersion came back).
    pub decided_from: Option<String>,
}

impl Applied {
    /// Whether `store_version` (the resourceVersion in the reflector store) is still the one
    /// this write was decided from: the store has not seen the controller's own write yet.
    pub fn awaited_by(&self, store_version: Option<&str>) -> bool {
        self.decided_from.is_some() && self.decided_from.as_deref() == store_version
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(decided_from: Option<&str>) -> Applied {
        Applied {
            active: Some(Side::Standby),
            switched_at: None,
            switched_at_raw: None,
            selector: BTreeMap::new(),
            decided_from: decided_from.map(str::to_string),
        }
    }

    #[test]
    fn a_store_still_at_the_version_a_write_was_decided_from_lags() {
        assert!(applied(Some("41")).awaited_by(Some("41")), "the store has not seen the write");
        assert!(!applied(Some("41")).awaited_by(Some("42")), "the store caught up (or someone else wrote)");
        assert!(!applied(None).awaited_by(Some("41")), "a write that changed nothing is never awaited");
        assert!(!applied(None).awaited_by(None));
    }
}
