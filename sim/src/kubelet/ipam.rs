//! Pod IP allocation on loopback, from the node's range of the cluster's
//! [`AddressBlock`](crate::addresses::AddressBlock): lowest free address first, freed
//! addresses reused. Clusters own disjoint blocks, so no two pods on the machine share an
//! address even when their manifests use the same port.

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
}

impl Ipam {
    /// Allocates from `range` (a node's [`pod_range`](crate::addresses::AddressBlock::pod_range)).
    pub fn new(range: RangeInclusive<Ipv4Addr>) -> Self {
        Self { first: u32::from(*range.start()), last: u32::from(*range.end()), used: BTreeSet::new() }
    }

    /// The lowest free address, or `None` when the range is exhausted.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let mut candidate = self.first;
        for &u in self.used.range(self.first..) {
            if u != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        if candidate > self.last {
            return None;
        }
        self.used.insert(candidate);
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
    fn allocates_lowest_free_and_reuses() {
        let mut ipam = Ipam::new(Ipv4Addr::new(127, 40, 16, 2)..=Ipv4Addr::new(127, 40, 31, 254));
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!((a, b), (Ipv4Addr::new(127, 40, 16, 2), Ipv4Addr::new(127, 40, 16, 3)));
        ipam.release(a);
        ipam.release(Ipv4Addr::new(127, 41, 16, 3)); // not this allocator's
        assert_eq!(ipam.allocate().unwrap(), a);
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 40, 16, 4));
        for _ in 0..300 {
            ipam.allocate().unwrap();
        }
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 40, 17, 49));
        assert_eq!(ipam.in_use(), 304);
    }

    #[test]
    fn an_exhausted_range_allocates_nothing() {
        let mut ipam = Ipam::new(Ipv4Addr::new(127, 40, 16, 2)..=Ipv4Addr::new(127, 40, 16, 3));
        assert!(ipam.allocate().is_some() && ipam.allocate().is_some());
        assert_eq!(ipam.allocate(), None);
    }
}
