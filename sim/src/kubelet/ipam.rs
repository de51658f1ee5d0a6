//! Pod IP allocation on loopback, from the node's range of the cluster's
//! [`AddressBlock`](crate::addresses::AddressBlock), handed out in turn like the host-local
//! IPAM plugin: the next free address after the last one handed out, wrapping at the end, so
//! a freed address is not reused at once (a proxy still holding a dead pod's address cannot
//! reach a new pod through it). Clusters own disjoint blocks, so no two pods on the machine
//! share an address even when their manifests use the same port.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

/// The pod address range of one node.
#[derive(Debug)]
pub struct Ipam {
    first: u32,
    last: u32,
    /// Addresses handed out and not yet released.
    used: BTreeSet<u32>,
    /// Where the next search starts.
    next: u32,
}

impl Ipam {
    /// Allocates from `range` (a node's [`pod_range`](crate::addresses::AddressBlock::pod_range)).
    pub fn new(range: RangeInclusive<Ipv4Addr>) -> Self {
        let first = u32::from(*range.start());
        Self { first, last: u32::from(*range.end()), used: BTreeSet::new(), next: first }
    }

    /// The next free address after the last one handed out (wrapping), or `None` when the
    /// range is exhausted.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let start = self.next.clamp(self.first, self.last);
        let candidate = (start..=self.last).chain(self.first..start).find(|n| !self.used.contains(n))?;
        self.used.insert(candidate);
        self.next = if candidate == self.last { self.first } else { candidate + 1 };
        Some(Ipv4Addr::from(candidate))
    }

    /// Returns an address (addresses this allocator did not hand out are ignored).
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// Addresses in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_turn_and_reuses_only_after_wrapping() {
        let mut ipam = Ipam::new(Ipv4Addr::new(127, 40, 16, 2)..=Ipv4Addr::new(127, 40, 31, 254));
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!((a, b), (Ipv4Addr::new(127, 40, 16, 2), Ipv4Addr::new(127, 40, 16, 3)));
        ipam.release(a);
        ipam.release(Ipv4Addr::new(127, 41, 16, 3)); // not this allocator's
        // Not reused at once: the next address after the last one handed out.
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 40, 16, 4));
        for _ in 0..300 {
            ipam.allocate().unwrap();
        }
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 40, 17, 49));
        assert_eq!(ipam.in_use(), 303);
        // The search wraps at the end of the range; the freed address comes back last.
        let mut last = None;
        while let Some(ip) = ipam.allocate() {
            last = Some(ip);
        }
        assert_eq!(last, Some(a));
    }

    #[test]
    fn an_exhausted_range_allocates_nothing() {
        let mut ipam = Ipam::new(Ipv4Addr::new(127, 40, 16, 2)..=Ipv4Addr::new(127, 40, 16, 3));
        assert!(ipam.allocate().is_some() && ipam.allocate().is_some());
        assert_eq!(ipam.allocate(), None);
    }
}
