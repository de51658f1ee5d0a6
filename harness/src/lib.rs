//! hadrill: a chaos + BDD test harness for Kubernetes high-availability controllers.
//!
//! - [`chaos`]: Chaos Mesh resources (typed), their validation and CRDs.
//! - [`scenarios`]: the fault scenario library (`scenarios/*.yaml`), templates rendered to chaos objects.
//! - [`world`]: the cucumber World a scenario runs in.
//! - [`steps`]: the step library, one module per subject.
//! - [`cluster`]: getting a cluster and applying manifests to it.
//! - [`probes`]: observing the cluster (waits by watch, measured times).
//! - [`report`]: the feature runner and its reports (JUnit XML and a human-readable log).
//! - [`traces`]: the OTLP receiver, the Jaeger client and the trace continuity checker.
//! - [`traffic`]: the sample application with vehicle traffic, and the vehicles' results client.

pub mod chaos;
pub mod cluster;
pub mod probes;
pub mod report;
pub mod scenarios;
pub mod steps;
pub mod traces;
pub mod traffic;
pub mod world;

pub use world::HadrillWorld;
