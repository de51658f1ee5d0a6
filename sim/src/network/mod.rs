//! The service proxy of the embedded cluster (kube-proxy's job): for every Service with a
//! ClusterIP (not headless, not ExternalName) and every TCP port with ready endpoints, a TCP
//! listener on `clusterIP:port` (ClusterIPs are on loopback, in the cluster's
//! [address block](crate::addresses::AddressBlock)) that relays each new
//! connection to the next ready endpoint, round-robin (or the client's endpoint under
//! `sessionAffinity: ClientIP`).
//!
//! Endpoints come from EndpointSlices ([`endpoints`]); the state is driven by the store's event
//! stream and swapped in place, so a change applies to the next connection. Established
//! connections are left alone, as kube-proxy leaves conntrack entries. A Service port without
//! ready endpoints has no listener, so connections are refused, like kube-proxy's REJECT rule;
//! a backend that cannot be reached resets the client connection.

pub mod endpoints;
pub mod faults;
pub mod proxy;
#[cfg(target_os = "linux")]
mod splice;

use std::sync::Arc;
use std::time::Duration;

use crate::api::ops::Api;

/// Settings of the service proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Whether the proxy runs (default true).
    pub enabled: bool,
    /// Time allowed to connect to a backend before the client connection is reset. kube-proxy
    /// has no such setting (its iptables/nftables modes leave the connect to the client's
    /// kernel); 5 s is this proxy's default.
    pub connect_timeout: Duration,
    /// Relay with `splice(2)` through pipes, without copying payload through user space
    /// (Linux; default true). Off, or elsewhere, bytes are copied through 64 KiB buffers.
    pub zero_copy: bool,
    /// How often a listener that could not be bound (address in use, e.g. by a process left
    /// over from an earlier cluster) is tried again: 1 s.
    pub bind_retry: Duration,
    /// Faults to apply to relayed connections (NetworkChaos delay); shared with the chaos
    /// engine, which [`crate::Sim::start`] hands the same table.
    pub faults: faults::Faults,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            connect_timeout: Duration::from_secs(5),
            zero_copy: true,
            bind_retry: Duration::from_secs(1),
            faults: faults::Faults::default(),
        }
    }
}

/// Starts the proxy (if enabled).
pub fn spawn(api: &Arc<Api>, config: &ProxyConfig) -> Option<tokio::task::JoinHandle<()>> {
    config.enabled.then(|| tokio::spawn(proxy::run(api.clone(), api.store.subscribe(), config.clone())))
}
