//! The loopback addresses of one embedded cluster: node InternalIPs, pod IPs and Service
//! ClusterIPs, all from a block of its own.
//!
//! All of 127.0.0.0/8 reaches the host on Linux, so every pod and ClusterIP gets its own
//! address. Each cluster claims one /16, `127.B.0.0/16` with B in 1..=254, that no other
//! cluster on the machine uses — in this process or in another one (several `cargo test`
//! processes, the feature suite's concurrent scenarios) — so that pods listening on the same
//! port never collide and an iptables fault of one cluster cannot hit another's pods.
//!
//! **Choosing B**: the first candidate is derived from the process id and a per-process counter
//! (concurrent processes start far apart, clusters of one process take consecutive blocks).
//! A block is taken by binding a UDP socket on `127.B.0.1:`[`CLAIM_PORT`] for the cluster's
//! lifetime: the kernel refuses a second bind, in any process, and releases it when the
//! cluster is dropped or its process dies. A block whose bind fails, or where something
//! (e.g. a leftover pod process) still listens on TCP, is skipped for the next one.
//!
//! **Inside the block**, with `n` nodes, the third octet is cut into `n + 1` slots of
//! `w` = 16 values (fewer when `n > 15`: the largest power of two with `(n + 1) * w <= 256`):
//! - slot 0, `127.B.0.0/20` for `w` = 16: ClusterIPs from `127.B.0.10` (`.1`–`.9` are the
//!   cluster's own: `.1` holds the claim);
//! - slot `i`, node *i* (1-based): InternalIP `127.B.(16i).1`, pods from `127.B.(16i).2` to
//!   `127.B.(16i+15).254` (4,093 pods per node for `w` = 16).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// UDP port of the claim socket; outside Linux's default ephemeral range (32768–60999), so
/// no outgoing connection takes it by chance.
pub const CLAIM_PORT: u16 = 61_999;
/// Most nodes a block can hold (one third-octet value each, plus the Services' slot).
pub const MAX_NODES: usize = 255;
/// Candidate second octets: 127.0.x.x (127.0.0.1, 127.0.0.53, 127.0.1.1 ...) belongs to the host.
const FIRST_BLOCK: u8 = 1;
const LAST_BLOCK: u8 = 254;
/// Third-octet values per slot when there are few nodes (a /20).
const MAX_SLOT_WIDTH: u8 = 16;

/// The addresses of one cluster (see the module documentation). Dropping it frees the block.
#[derive(Debug)]
pub struct AddressBlock {
    octet: u8,
    width: u8,
    nodes: usize,
    _claim: UdpSocket,
}

impl AddressBlock {
    /// Claims a free block for a cluster of `nodes` nodes.
    pub fn claim(nodes: usize) -> anyhow::Result<Self> {
        Self::claim_from(first_candidate(), nodes)
    }

    /// Claims the first free block at or after `start` (wrapping around).
    fn claim_from(start: u8, nodes: usize) -> anyhow::Result<Self> {
        if nodes > MAX_NODES {
            bail!("at most {MAX_NODES} nodes fit in a cluster's address block (asked for {nodes})");
        }
        let span = u16::from(LAST_BLOCK - FIRST_BLOCK) + 1;
        let start = start.clamp(FIRST_BLOCK, LAST_BLOCK);
        let busy = tcp_listener_blocks();
        let mut last_error = None;
        for step in 0..span {
            let offset = (u16::from(start - FIRST_BLOCK) + step) % span;
            let octet = FIRST_BLOCK + u8::try_from(offset).unwrap_or(0);
            if busy.contains(&octet) {
                continue;
            }
            match UdpSocket::bind((Ipv4Addr::new(127, octet, 0, 1), CLAIM_PORT)) {
                Ok(claim) => return Ok(Self { octet, width: slot_width(nodes), nodes, _claim: claim }),
                Err(e) => last_error = Some(e),
            }
        }
        let why = last_error.map(|e| e.to_string()).unwrap_or_else(|| "every block has listening sockets".into());
        Err(anyhow::anyhow!("{why}")).context("no free loopback address block (127.1.0.0/16 to 127.254.0.0/16)")
    }

    /// The block's second octet B (`127.B.0.0/16`).
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// The whole block, e.g. `127.37.0.0/16`.
    pub fn cidr(&self) -> String {
        format!("127.{}.0.0/16", self.octet)
    }

    /// The ClusterIP range in CIDR notation, e.g. `127.37.0.0/20`.
    pub fn service_cidr(&self) -> String {
        format!("127.{}.0.0/{}", self.octet, self.prefix_len())
    }

    /// The addresses ClusterIPs are allocated from.
    pub fn service_range(&self) -> RangeInclusive<Ipv4Addr> {
        let (first, last) = self.slot(0);
        Ipv4Addr::from(u32::from(first) + 10)..=last
    }

    /// The InternalIP of node `index` (1-based).
    pub fn node_ip(&self, index: usize) -> Ipv4Addr {
        let (first, _) = self.slot(index);
        Ipv4Addr::from(u32::from(first) + 1)
    }

    /// The pod addresses of node `index` (1-based).
    pub fn pod_range(&self, index: usize) -> RangeInclusive<Ipv4Addr> {
        let (first, last) = self.slot(index);
        Ipv4Addr::from(u32::from(first) + 2)..=last
    }

    /// The pod CIDR of node `index` (1-based), e.g. `127.37.16.0/20`; it holds the InternalIP too.
    pub fn pod_cidr(&self, index: usize) -> String {
        let (first, _) = self.slot(index);
        format!("{first}/{}", self.prefix_len())
    }

    /// The number of nodes the block was cut for.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    fn prefix_len(&self) -> u32 {
        16 + (8 - u32::from(self.width).trailing_zeros())
    }

    /// First and last address of slot `i` (0 = Services, i = node i). The last address skips
    /// `.255` of the slot's last /24.
    fn slot(&self, i: usize) -> (Ipv4Addr, Ipv4Addr) {
        let i = u8::try_from(i.min(self.nodes)).unwrap_or(0);
        let third = i.saturating_mul(self.width);
        let last_third = third.saturating_add(self.width - 1);
        (Ipv4Addr::new(127, self.octet, third, 0), Ipv4Addr::new(127, self.octet, last_third, 254))
    }
}

/// Third-octet values per slot for `nodes` nodes: a power of two, at most 16.
fn slot_width(nodes: usize) -> u8 {
    let fit = 256 / (nodes + 1);
    let mut w = MAX_SLOT_WIDTH as usize;
    while w > fit {
        w /= 2;
    }
    u8::try_from(w.max(1)).unwrap_or(1)
}

/// The first block to try: spread by process id, then one per cluster of this process.
fn first_candidate() -> u8 {
    static CLUSTERS: AtomicU32 = AtomicU32::new(0);
    let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    // Multiplicative hashing spreads neighbouring process ids (tests started one after another).
    let spread = std::process::id().wrapping_mul(2_654_435_761) >> 24;
    let span = u32::from(LAST_BLOCK - FIRST_BLOCK) + 1;
    FIRST_BLOCK + u8::try_from((spread + n) % span).unwrap_or(0)
}

/// Second octets of 127.x.y.z addresses that have a listening TCP socket (Linux; empty
/// elsewhere or when /proc cannot be read): a block with a listener left by someone else is
/// not free even though its claim socket is.
fn tcp_listener_blocks() -> BTreeSet<u8> {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else { return BTreeSet::new() };
    listening_blocks(&table)
}

fn listening_blocks(table: &str) -> BTreeSet<u8> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != LISTEN {
                return None;
            }
            let hex = local.split(':').next()?;
            // The kernel prints the address as the native-endian value of its network-order bytes.
            let ip = Ipv4Addr::from(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes());
            let [a, b, _, _] = ip.octets();
            (a == 127 && b != 0).then_some(b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_cut_into_a_service_slot_and_one_slot_per_node() {
        let b = AddressBlock::claim_from(200, 3).unwrap();
        let o = b.octet();
        assert_eq!(b.service_cidr(), format!("127.{o}.0.0/20"));
        assert_eq!(b.service_range(), Ipv4Addr::new(127, o, 0, 10)..=Ipv4Addr::new(127, o, 15, 254));
        assert_eq!(b.node_ip(1), Ipv4Addr::new(127, o, 16, 1));
        assert_eq!(b.pod_range(1), Ipv4Addr::new(127, o, 16, 2)..=Ipv4Addr::new(127, o, 31, 254));
        assert_eq!(b.node_ip(3), Ipv4Addr::new(127, o, 48, 1));
        assert_eq!(b.pod_cidr(3), format!("127.{o}.48.0/20"));
    }

    #[test]
    fn many_nodes_get_narrower_slots() {
        assert_eq!((slot_width(1), slot_width(15), slot_width(16), slot_width(255)), (16, 16, 8, 1));
        let b = AddressBlock::claim_from(150, 255).unwrap();
        let o = b.octet();
        assert_eq!(b.pod_range(255), Ipv4Addr::new(127, o, 255, 2)..=Ipv4Addr::new(127, o, 255, 254));
        assert_eq!(b.service_cidr(), format!("127.{o}.0.0/24"));
        assert!(AddressBlock::claim_from(150, 256).is_err());
    }

    #[test]
    fn a_claimed_block_is_skipped_until_released() {
        let first = AddressBlock::claim_from(100, 1).unwrap();
        let second = AddressBlock::claim_from(first.octet(), 1).unwrap();
        assert_ne!(first.octet(), second.octet(), "the claim socket makes the second cluster move on");
        let o = first.octet();
        drop(first);
        let again = AddressBlock::claim_from(o, 1).unwrap();
        assert_eq!(again.octet(), o, "a dropped block is free again");
    }

    #[test]
    fn blocks_with_tcp_listeners_are_busy() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0210257F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n   2: 0210267F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        if cfg!(target_endian = "little") {
            // 127.0.0.1 is the host's; 127.37.16.2 listens; 127.38.16.2 only has a connection.
            assert_eq!(listening_blocks(table), BTreeSet::from([37]));
        }
    }
}
