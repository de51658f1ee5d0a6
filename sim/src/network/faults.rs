//! Network faults the service proxy applies (NetworkChaos `delay` on the embedded cluster).
//!
//! The kernel here has no netem, so latency cannot be added to packets. The proxy relays every
//! connection to a Service ClusterIP, so it can add it there: a rule says whose traffic (by
//! source address) toward whom (by destination address, or anyone) is late by `latency` ±
//! `jitter`. Delay therefore applies to Service traffic only, on connections opened while the
//! fault is in place (the handshake is delayed once each way, then every chunk relayed in an
//! affected direction); direct pod-to-pod connections are not delayed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Traffic from `from` to `to` (anyone when `None`) is late by `latency` ± `jitter`.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayRule {
    /// Sources whose traffic is delayed.
    pub from: Vec<IpAddr>,
    /// Destinations; `None` = every destination.
    pub to: Option<Vec<IpAddr>>,
    /// Added latency.
    pub latency: Duration,
    /// Uniform variation around the latency.
    pub jitter: Duration,
}

impl DelayRule {
    fn applies(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.from.contains(&src) && self.to.as_ref().is_none_or(|t| t.contains(&dst))
    }
}

/// The faults in place, shared by the engine (writer) and the proxy (reader). Clones share.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<RwLock<HashMap<String, Vec<DelayRule>>>>,
}

impl Faults {
    /// Sets the rules of `owner` (e.g. a chaos object's uid), replacing earlier ones.
    pub fn set(&self, owner: &str, rules: Vec<DelayRule>) {
        self.rules.write().unwrap_or_else(|p| p.into_inner()).insert(owner.to_string(), rules);
    }

    /// Removes the rules of `owner`; true when it had some.
    pub fn remove(&self, owner: &str) -> bool {
        self.rules.write().unwrap_or_else(|p| p.into_inner()).remove(owner).is_some()
    }

    /// Number of owners with rules in place.
    pub fn len(&self) -> usize {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no rule is in place.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The delay of traffic from `src` to `dst` now (the largest of the matching rules, with
    /// its jitter drawn), or `None`.
    pub fn delay(&self, src: IpAddr, dst: IpAddr) -> Option<Duration> {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner());
        rules.values().flatten().filter(|r| r.applies(src, dst)).map(sample).max()
    }
}

fn sample(rule: &DelayRule) -> Duration {
    if rule.jitter.is_zero() {
        return rule.latency;
    }
    let j = rule.jitter.as_secs_f64();
    let offset = rand::random_range(-j..=j);
    Duration::from_secs_f64((rule.latency.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_source_and_destination() {
        let f = Faults::default();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("127.11.0.2".parse().unwrap(), "127.11.0.3".parse().unwrap(), "127.0.0.1".parse().unwrap());
        assert_eq!(f.delay(a, b), None);
        f.set(
            "x",
            vec![DelayRule { from: vec![a], to: None, latency: Duration::from_millis(100), jitter: Duration::ZERO }],
        );
        assert_eq!(f.delay(a, c), Some(Duration::from_millis(100)));
        assert_eq!(f.delay(b, a), None);
        f.set(
            "y",
            vec![DelayRule {
                from: vec![b],
                to: Some(vec![a]),
                latency: Duration::from_millis(50),
                jitter: Duration::from_millis(10),
            }],
        );
        let d = f.delay(b, a).unwrap();
        assert!(d >= Duration::from_millis(40) && d <= Duration::from_millis(60), "{d:?}");
        assert_eq!(f.delay(b, c), None);
        assert_eq!(f.len(), 2);
        assert!(f.remove("x") && f.remove("y") && f.is_empty());
    }
}
