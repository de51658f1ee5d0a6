//! End-to-end tests of the failover controller on the embedded cluster. The controller runs
//! in-process as the ServiceAccount of deploy/controller, authorized by its RBAC manifests.

mod blackbox;
mod failover;
mod leader;
mod rbac;
mod support;
