//! The step library. Each module holds the steps of one subject:
//!
//! - [`cluster`]: starting the embedded cluster, applying manifests, what the cluster lists.
//! - [`controller`]: deploying the failover controller under test.
//! - [`faults`]: faults from the scenario library (Chaos Mesh objects), and their removal.
//! - [`ha_service`]: an HA service (primary, standby, Service), faults on it, failover deadlines.

pub mod catalog;
pub mod cluster;
pub mod controller;
pub mod faults;
pub mod ha_service;
