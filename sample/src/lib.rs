//! hadrill's sample services and vehicle traffic.
//!
//! - [`propagation`]: W3C and SkyWalking trace context over HTTP headers.
//! - [`ids`]: trace and span ids.
//! - [`telemetry`]: spans and their OTLP/HTTP export.
//! - [`serve`]: the `serve` subcommand, one service of the call chain.
//! - [`vehicles`]: the `vehicles` subcommand, simulated vehicles and their results API.
//! - [`target`]: a URL or a Service name (resolved from Kubernetes service variables).

pub mod ids;
pub mod propagation;
pub mod serve;
pub mod target;
pub mod telemetry;
pub mod vehicles;
