//! Observing the cluster: waits on object conditions and measurements of what changed when.

pub mod wait;
