//! Trace and span ids: random ones for new traces and spans, hex text for W3C and OTLP, and the
//! deterministic mapping of SkyWalking's text ids onto them.

use std::fmt;

use rand::RngExt;

/// A 16-byte trace id (never all zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id (never all zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random, non-zero trace id.
    pub fn random() -> Self {
        loop {
            let id: u128 = rand::rng().random();
            if id != 0 {
                return TraceId(id.to_be_bytes());
            }
        }
    }

    /// Parses 32 lowercase hex digits (not all zero).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = decode_hex::<16>(s)?;
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }

    /// From OTLP bytes (16, not all zero).
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        let bytes: [u8; 16] = b.try_into().ok()?;
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }

    /// The trace id a SkyWalking trace id stands for: its 32 hex digits when it is one of ours,
    /// else a 128-bit hash of the text (so every service maps a foreign id the same way).
    pub fn from_sw8(text: &str) -> Self {
        if let Some(id) = TraceId::from_hex(text) {
            return id;
        }
        let hi = fnv1a(0xcbf2_9ce4_8422_2325, text.as_bytes());
        let lo = fnv1a(0x6c62_272e_07bb_0142, text.as_bytes());
        let id = (u128::from(hi) << 64) | u128::from(lo);
        TraceId(if id == 0 { 1u128 } else { id }.to_be_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(self) -> String {
        encode_hex(&self.0)
    }
}

impl SpanId {
    /// A random, non-zero span id.
    pub fn random() -> Self {
        loop {
            let id: u64 = rand::rng().random();
            if id != 0 {
                return SpanId(id.to_be_bytes());
            }
        }
    }

    /// Parses 16 lowercase hex digits (not all zero).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = decode_hex::<8>(s)?;
        (bytes != [0; 8]).then_some(SpanId(bytes))
    }

    /// From OTLP bytes (8, not all zero).
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        let bytes: [u8; 8] = b.try_into().ok()?;
        (bytes != [0; 8]).then_some(SpanId(bytes))
    }

    /// The span id of span `index` of SkyWalking segment `segment`. SkyWalking names a parent
    /// by (segment id, span index); both ends of a call derive the same span id from it.
    pub fn from_sw8(segment: &str, index: u32) -> Self {
        let mut h = fnv1a(0xcbf2_9ce4_8422_2325, segment.as_bytes());
        h = fnv1a(h, b"/");
        h = fnv1a(h, &index.to_be_bytes());
        SpanId(if h == 0 { 1 } else { h }.to_be_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(self) -> String {
        encode_hex(&self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.to_hex())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.to_hex())
    }
}

/// 64-bit FNV-1a, continuing from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Lowercase hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Exactly `2 * N` lowercase hex digits (W3C forbids uppercase).
fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_zero_and_uppercase() {
        let t = TraceId::random();
        assert_eq!(TraceId::from_hex(&t.to_hex()), Some(t));
        assert_eq!(TraceId::from_hex(&"0".repeat(32)), None);
        assert_eq!(TraceId::from_hex(&"A".repeat(32)), None);
        assert_eq!(SpanId::from_hex("00f067aa0ba902b7").map(|s| s.to_hex()), Some("00f067aa0ba902b7".into()));
        assert_eq!(SpanId::from_hex("00f067aa0ba902b"), None);
    }

    #[test]
    fn skywalking_ids_map_deterministically() {
        let t = TraceId::random();
        assert_eq!(TraceId::from_sw8(&t.to_hex()), t, "our own ids map to themselves");
        assert_eq!(TraceId::from_sw8("a.b.c"), TraceId::from_sw8("a.b.c"));
        assert_ne!(TraceId::from_sw8("a.b.c"), TraceId::from_sw8("a.b.d"));
        assert_eq!(SpanId::from_sw8("seg", 1), SpanId::from_sw8("seg", 1));
        assert_ne!(SpanId::from_sw8("seg", 1), SpanId::from_sw8("seg", 2));
    }
}
