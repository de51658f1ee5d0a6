//! hadrill's sample services and vehicle traffic.
//!
//! - [`propagation`]: W3C and SkyWalking trace context over HTTP headers.
//! - [`ids`]: trace and span ids.

pub mod ids;
pub mod propagation;
