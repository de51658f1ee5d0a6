//! Pod IP allocation on loopback.
//!
//! Address plan shared with the scheduler and service-proxy engineers: node *i* (1-based, in
//! bootstrap order) has InternalIP `127.(10+i).0.1`; its pods get `127.(10+i).x.y` starting at
//! `127.(10+i).0.2`, lowest free address first (freed addresses are reused). All of 127.0.0.0/8
//! reaches the host on Linux, so every pod has its own address and many pods can listen on the
//! same port — provided containers bind their `POD_IP`, not `0.0.0.0`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The InternalIP of node `index` (1-based).
pub fn node_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, second_octet(index), 0, 1)
}

fn second_octet(index: usize) -> u8 {
    u8::try_from(10 + index.min(245)).unwrap_or(255)
}

/// The pod address range of one node.
#[derive(Debug)]
pub struct Ipam {
    octet: u8,
    used: BTreeSet<u16>,
}

/// First host number handed to pods (`x.y` = 0.2).
const FIRST: u16 = 2;
/// Last host number handed to pods (`x.y` = 255.254).
const LAST: u16 = 0xfffe;

impl Ipam {
    /// The range of node `index` (1-based).
    pub fn new(index: usize) -> Self {
        Self { octet: second_octet(index), used: BTreeSet::new() }
    }

    /// The lowest free address, or `None` when all 65 533 are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let mut candidate = FIRST;
        for &u in self.used.range(FIRST..) {
            if u != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        if candidate > LAST {
            return None;
        }
        self.used.insert(candidate);
        Some(self.addr(candidate))
    }

    /// Returns an address to the pool (addresses of other ranges are ignored).
    pub fn release(&mut self, ip: Ipv4Addr) {
        let o = ip.octets();
        if o[0] == 127 && o[1] == self.octet {
            self.used.remove(&u16::from_be_bytes([o[2], o[3]]));
        }
    }

    /// Addresses in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    fn addr(&self, n: u16) -> Ipv4Addr {
        let [x, y] = n.to_be_bytes();
        Ipv4Addr::new(127, self.octet, x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_reuses() {
        assert_eq!(node_ip(1), Ipv4Addr::new(127, 11, 0, 1));
        let mut ipam = Ipam::new(2);
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 12, 0, 2));
        assert_eq!(b, Ipv4Addr::new(127, 12, 0, 3));
        ipam.release(a);
        assert_eq!(ipam.allocate().unwrap(), a);
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 12, 0, 4));
        for _ in 0..300 {
            ipam.allocate().unwrap();
        }
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 12, 1, 49));
        assert_eq!(ipam.in_use(), 304);
    }
}
