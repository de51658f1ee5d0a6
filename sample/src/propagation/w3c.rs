//! W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage (`baggage`).

use crate::ids::{SpanId, TraceId};

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// Trace flags (bit 0 = sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Whether the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The header value, version 00.
    pub fn format(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

/// Parses a `traceparent` value per the W3C rules: version `ff` is invalid; version 00 is
/// exactly 55 characters; a later version may append `-`-separated fields, which are ignored;
/// ids are lowercase hex and not all zero.
pub fn parse_traceparent(v: &str) -> Result<TraceParent, String> {
    let v = v.trim();
    if v.len() < 55 || !v.is_char_boundary(55) {
        return Err(format!("{} characters, expected 55", v.len()));
    }
    let (head, rest) = v.split_at(55);
    let version = &head[0..2];
    let version_n = u8::from_str_radix(version, 16).map_err(|_| format!("version {version:?} is not hex"))?;
    if version != version.to_lowercase() {
        return Err(format!("version {version:?} is not lowercase hex"));
    }
    if version_n == 0xff {
        return Err("version ff is invalid".into());
    }
    if version_n == 0 && !rest.is_empty() {
        return Err(format!("{} characters, version 00 has exactly 55", v.len()));
    }
    if !rest.is_empty() && !rest.starts_with('-') {
        return Err("fields after the flags must start with '-'".into());
    }
    let b = head.as_bytes();
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return Err("fields must be separated by '-' at 2, 35 and 52".into());
    }
    let trace_id = TraceId::from_hex(&head[3..35])
        .ok_or_else(|| format!("trace id {:?} is not 32 lowercase hex digits, not all zero", &head[3..35]))?;
    let parent_id = SpanId::from_hex(&head[36..52])
        .ok_or_else(|| format!("parent id {:?} is not 16 lowercase hex digits, not all zero", &head[36..52]))?;
    let flags_text = &head[53..55];
    let flags = u8::from_str_radix(flags_text, 16)
        .ok()
        .filter(|_| flags_text.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
        .ok_or_else(|| format!("flags {flags_text:?} are not two lowercase hex digits"))?;
    Ok(TraceParent { trace_id, parent_id, flags })
}

/// Checks a `tracestate` value (at most 32 `key=value` members; keys `[a-z0-9_\-*/@]`, values
/// printable ASCII without `,` and `=`). It is passed on unchanged when valid.
pub fn check_tracestate(v: &str) -> Result<(), String> {
    let members: Vec<&str> = v.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
    if members.len() > 32 {
        return Err(format!("{} members, at most 32", members.len()));
    }
    for m in members {
        let (key, value) = m.split_once('=').ok_or_else(|| format!("member {m:?} has no '='"))?;
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/@".contains(&c));
        if !key_ok {
            return Err(format!("member key {key:?} is invalid"));
        }
        let value_ok = !value.is_empty()
            && value.len() <= 256
            && value.bytes().all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
            && !value.ends_with(' ');
        if !value_ok {
            return Err(format!("member value {value:?} is invalid"));
        }
    }
    Ok(())
}

/// One baggage entry: key, decoded value and its properties as written (`;`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaggageEntry {
    /// Key (an HTTP token).
    pub key: String,
    /// Value, percent-decoded.
    pub value: String,
    /// Properties after the value, as received (without the leading `;`), or empty.
    pub properties: String,
}

/// Limits of the W3C Baggage spec.
const BAGGAGE_MAX_BYTES: usize = 8192;
const BAGGAGE_MAX_ENTRIES: usize = 180;

/// Parses a `baggage` value. Any malformed member rejects the whole header (partial baggage
/// would be silently wrong downstream).
pub fn parse_baggage(v: &str) -> Result<Vec<BaggageEntry>, String> {
    if v.len() > BAGGAGE_MAX_BYTES {
        return Err(format!("{} bytes, at most {BAGGAGE_MAX_BYTES}", v.len()));
    }
    let mut out = Vec::new();
    for member in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (kv, properties) = match member.split_once(';') {
            Some((kv, p)) => (kv, p.trim().to_string()),
            None => (member, String::new()),
        };
        let (key, value) = kv.split_once('=').ok_or_else(|| format!("member {member:?} has no '='"))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || !key.bytes().all(is_token_char) {
            return Err(format!("key {key:?} is not a token"));
        }
        let value =
            percent_decode(value).ok_or_else(|| format!("value of {key:?} is not valid percent-encoded UTF-8"))?;
        out.push(BaggageEntry { key: key.to_string(), value, properties });
    }
    if out.len() > BAGGAGE_MAX_ENTRIES {
        return Err(format!("{} entries, at most {BAGGAGE_MAX_ENTRIES}", out.len()));
    }
    Ok(out)
}

/// The `baggage` value for `entries`.
pub fn format_baggage(entries: &[BaggageEntry]) -> String {
    let mut out = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.key);
        out.push('=');
        percent_encode(&e.value, &mut out);
        if !e.properties.is_empty() {
            out.push(';');
            out.push_str(&e.properties);
        }
    }
    out
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Baggage-octets that may stay unencoded: printable ASCII except space, `"`, `,`, `;`, `\`
/// and `%` (the escape itself).
fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x24 | 0x26..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn percent_encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if is_baggage_octet(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b[i] == b' ' || b[i] == b'"' || b[i] == b'\\' || !(0x20..=0x7e).contains(&b[i]) {
            return None;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let tp = parse_traceparent(GOOD).expect("valid");
        assert!(tp.sampled());
        assert_eq!(tp.format(), GOOD);
        let later = format!("{}-what-the-future-adds", GOOD.replacen("00", "cc", 1));
        assert_eq!(parse_traceparent(&later).expect("future version").trace_id, tp.trace_id);
    }

    #[test]
    fn invalid_traceparents_say_why() {
        for (bad, why) in [
            ("", "characters"),
            (&GOOD.replacen("00", "ff", 1), "ff"),
            (&format!("{GOOD}-x"), "exactly 55"),
            (&GOOD.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)), "trace id"),
            (&GOOD.replace("00f067aa0ba902b7", &"0".repeat(16)), "parent id"),
            (&GOOD.replace("4bf92f", "4BF92F"), "trace id"),
            (&GOOD.replacen('-', "_", 1), "separated"),
            (&GOOD.replace("-01", "-0g"), "flags"),
        ] {
            let err = parse_traceparent(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn tracestate_rules() {
        check_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").expect("valid");
        check_tracestate("vendor@tenant=x").expect("multi-tenant key");
        assert!(check_tracestate("Rojo=1").is_err());
        assert!(check_tracestate("novalue").is_err());
        assert!(check_tracestate(&(0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",")).is_err());
    }

    #[test]
    fn baggage_round_trips_with_encoding_and_properties() {
        let entries = vec![
            BaggageEntry { key: "vehicle.id".into(), value: "v-7".into(), properties: String::new() },
            BaggageEntry { key: "note".into(), value: "a b,c;d%e\u{e9}".into(), properties: "ttl=3".into() },
        ];
        let text = format_baggage(&entries);
        assert!(!text.contains(' ') && text.contains(";ttl=3"), "{text}");
        assert_eq!(parse_baggage(&text).expect("parses"), entries);
        assert!(parse_baggage("novalue").is_err());
        assert!(parse_baggage("k=%zz").is_err());
        assert!(parse_baggage("k=%ff").is_err(), "not UTF-8");
        assert!(parse_baggage(&"k=v,".repeat(181)).is_err());
    }
}
