//! Pod IP allocation on loopback.
//!
//! Address plan shared with the scheduler and service-proxy engineers: node *i* (1-based, in
//! bootstrap order) has InternalIP `127.(10+i).0.1`; its pods get `127.(10+i).x.y` starting at
//! `127.(10+i).0.2`, handed out in turn like the host-local IPAM plugin: the next free address
//! after the last one handed out, wrapping at the end. A freed address is therefore not reused
//! at once, so a Service proxy still holding a dead pod's address (another embedded cluster's,
//! during its teardown) cannot reach a new pod through it. All of 127.0.0.0/8
//! reaches the host on Linux, so every pod has its own address and many pods can listen on the
//! same port — provided containers bind their `POD_IP`, not `0.0.0.0`.
//!
//! Addresses are unique within the process: several embedded clusters running at once (tests,
//! concurrent feature scenarios) draw from one pool per node range, so their pods never share
//! an address even when their manifests use the same port. An [`Ipam`] returns what it still
//! holds when dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, OnceLock};

/// One node range of the process: the host numbers in use and where the next search starts.
#[derive(Debug, Default)]
struct Range {
    taken: BTreeSet<u16>,
    next: u16,
}

/// The ranges per second octet.
type Pool = Arc<Mutex<BTreeMap<u8, Range>>>;

fn process_pool() -> Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default).clone()
}

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
    /// What this allocator holds.
    used: BTreeSet<u16>,
    pool: Pool,
}

/// First host number handed to pods (`x.y` = 0.2).
const FIRST: u16 = 2;
/// Last host number handed to pods (`x.y` = 255.254).
const LAST: u16 = 0xfffe;

impl Ipam {
    /// The range of node `index` (1-based), drawing from the process-wide pool.
    pub fn new(index: usize) -> Self {
        Self::with_pool(index, process_pool())
    }

    fn with_pool(index: usize, pool: Pool) -> Self {
        Self { octet: second_octet(index), used: BTreeSet::new(), pool }
    }

    /// The next address free in the process after the last one handed out (wrapping), or
    /// `None` when all 65 533 are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let range = pool.entry(self.octet).or_default();
        let start = range.next.clamp(FIRST, LAST);
        let candidate = (start..=LAST).chain(FIRST..start).find(|n| !range.taken.contains(n))?;
        range.taken.insert(candidate);
        range.next = if candidate == LAST { FIRST } else { candidate + 1 };
        self.used.insert(candidate);
        Some(self.addr(candidate))
    }

    /// Returns an address to the pool (addresses this allocator does not hold are ignored).
    pub fn release(&mut self, ip: Ipv4Addr) {
        let o = ip.octets();
        let n = u16::from_be_bytes([o[2], o[3]]);
        if o[0] == 127 && o[1] == self.octet && self.used.remove(&n) {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(range) = pool.get_mut(&self.octet) {
                range.taken.remove(&n);
            }
        }
    }

    /// Addresses in use by this allocator.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    fn addr(&self, n: u16) -> Ipv4Addr {
        let [x, y] = n.to_be_bytes();
        Ipv4Addr::new(127, self.octet, x, y)
    }
}

impl Drop for Ipam {
    fn drop(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(range) = pool.get_mut(&self.octet) {
            for n in &self.used {
                range.taken.remove(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_turn_and_reuses_only_after_wrapping() {
        assert_eq!(node_ip(1), Ipv4Addr::new(127, 11, 0, 1));
        let mut ipam = Ipam::with_pool(2, Pool::default());
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 12, 0, 2));
        assert_eq!(b, Ipv4Addr::new(127, 12, 0, 3));
        ipam.release(a);
        // Not reused at once: the next address after the last one handed out.
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 12, 0, 4));
        for _ in 0..300 {
            ipam.allocate().unwrap();
        }
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(127, 12, 1, 49));
        assert_eq!(ipam.in_use(), 303);
        // At the end of the range the search wraps, and the freed address comes back.
        while ipam.allocate().is_some_and(|ip| ip != a) {}
        assert_eq!(ipam.in_use(), usize::from(LAST - FIRST) + 1, "every address taken, the freed one last");
        assert_eq!(ipam.allocate(), None);
    }

    #[test]
    fn allocators_sharing_a_pool_never_hand_out_the_same_address() {
        let pool = Pool::default();
        let mut one = Ipam::with_pool(1, pool.clone());
        let mut two = Ipam::with_pool(1, pool.clone());
        let a = one.allocate().unwrap();
        let b = two.allocate().unwrap();
        assert_eq!((a, b), (Ipv4Addr::new(127, 11, 0, 2), Ipv4Addr::new(127, 11, 0, 3)));
        two.release(a); // not two's to give back
        assert_eq!(two.allocate().unwrap(), Ipv4Addr::new(127, 11, 0, 4));
        drop(one);
        let free = |n: u16| !pool.lock().unwrap().get(&11).unwrap().taken.contains(&n);
        assert!(free(2), "a dropped allocator returns its addresses");
        assert!(!free(3) && !free(4));
    }
}
