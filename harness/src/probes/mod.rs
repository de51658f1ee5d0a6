//! Observing the cluster: waits on object conditions and measurements of what changed when.
//!
//! - [`conditions`]: predicates on objects' conditions (a node Ready).
//! - [`wait`]: waiting for a condition on one object, by watch, with a deadline.
//! - [`recorder`]: a namespace's Services, Endpoints and Events recorded in the background.
//! - [`progress`]: console progress while a long wait is pending.
//! - [`reaction`]: how the system under test reacts to a fault (its Events, its endpoints).

pub mod conditions;
pub mod progress;
pub mod reaction;
pub mod recorder;
pub mod wait;
