//! The failover controller on the embedded cluster as a real process: deploy/controller/*.yaml
//! applied (two replicas, leader election on a Lease, RBAC), the controller binary running as
//! their pods through the image map, HA pairs of `hadrill-test-server` process pods, and
//! faults done to those processes and nodes. Every outcome is observed by watching the
//! Service; each test prints its figures.
//!
//! `cargo test -p hadrill-controller --test in_cluster -- --nocapture` shows the figures.

mod failover;
mod flapping;
mod leader;
mod network;
mod support;
