//! The step library. Each module holds the steps of one subject:
//!
//! - [`cluster`]: starting the embedded cluster, applying manifests, what the cluster lists.
//! - [`controller`]: deploying the failover controller under test.
//! - [`error`]: what a failed step reports (its cause chain, root cause first).
//! - [`faults`]: faults from the scenario library (Chaos Mesh objects), and their removal.
//! - [`ha_service`]: an HA service (primary, standby, Service), faults on it, failover deadlines.
//! - [`recovery`]: what the controller reports (detection, cause, alerts) and the 1-5-10 deadlines.
//! - [`params`]: the parameter types `{side}`, `{duration}` and `{percent}`.
//! - [`vehicles`]: vehicles sending heartbeats through an HA service, their link gaps, and the
//!   continuity of their session traces.

pub mod catalog;
pub mod cluster;
pub mod controller;
pub mod error;
pub mod faults;
pub mod ha_service;
pub mod params;
pub mod recovery;
pub mod vehicles;
