//! Observing the cluster: waits on object conditions and measurements of what changed when.
//!
//! - [`wait`]: waiting for a condition on one object, by watch, with a deadline.
//! - [`recorder`]: a namespace's Services, Endpoints and Events recorded in the background.
//! - [`progress`]: console progress while a long wait is pending.

pub mod progress;
pub mod recorder;
pub mod wait;
