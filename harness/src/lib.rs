//! hadrill: a chaos + BDD test harness for Kubernetes high-availability controllers.
//!
//! # Layers
//!
//! Modules form layers; a module imports only from its own layer and the layers below it,
//! never from one above (`grep -rn 'crate::steps' harness/src/cluster harness/src/report`
//! finds nothing):
//!
//! 1. [`settings`] (every `HADRILL_*` variable, read once), [`signals`] (SIGINT and SIGTERM:
//!    the first stops the run, a second exits at once), [`probes`] (watches and waits) and
//!    [`report`] (renders what the runner collected; reads no cluster and no World): nothing
//!    from hadrill.
//! 2. [`chaos`] (Chaos Mesh resources, their lifecycle and run ledgers), then [`scenarios`]
//!    (the fault library, rendered to chaos objects).
//! 3. [`cluster`]: providers, a scenario's part of a cluster, manifests, the controller's
//!    deployment.
//! 4. [`traces`] and [`traffic`]: spans and vehicle traffic through the cluster.
//! 5. [`world`]: the state of one scenario, grouped by concern, and its teardown.
//! 6. [`steps`]: cucumber steps; they parse their text and call the library functions of
//!    the layers below (which tests call without cucumber).
//! 7. [`runner`]: the feature run (static checks of the features, what the scenarios need of
//!    the machine and which are skipped, the run's cluster, cucumber, the hooks that keep
//!    figures, write failure bundles and tear Worlds down); the only owner of run-wide state.
//!
//! The `hadrill` binary and the `features` test sit on top and call [`runner`].

pub mod chaos;
pub mod cluster;
pub mod probes;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod settings;
pub mod signals;
pub mod steps;
pub mod traces;
pub mod traffic;
pub mod world;

pub use world::HadrillWorld;

/// Field manager of everything hadrill applies or patches.
pub const FIELD_MANAGER: &str = "hadrill";
