//! Apache SkyWalking cross-process propagation: `sw8` (eight `-`-separated fields) and
//! `sw8-correlation` (`base64(key):base64(value)` pairs).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A parsed `sw8` header: the caller's side of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sw8 {
    /// Sampling flag of the caller.
    pub sampled: bool,
    /// Trace id, as text.
    pub trace_id: String,
    /// The caller's segment.
    pub parent_segment: String,
    /// Index of the caller's exit span in its segment.
    pub parent_span: u32,
    /// Caller's service name.
    pub parent_service: String,
    /// Caller's service instance.
    pub parent_instance: String,
    /// Caller's endpoint (the operation it was serving).
    pub parent_endpoint: String,
    /// Address the caller used to reach us.
    pub target_address: String,
}

impl Sw8 {
    /// The header value.
    pub fn format(&self) -> String {
        [
            if self.sampled { "1".to_string() } else { "0".to_string() },
            STANDARD.encode(&self.trace_id),
            STANDARD.encode(&self.parent_segment),
            self.parent_span.to_string(),
            STANDARD.encode(&self.parent_service),
            STANDARD.encode(&self.parent_instance),
            STANDARD.encode(&self.parent_endpoint),
            STANDARD.encode(&self.target_address),
        ]
        .join("-")
    }
}

const FIELDS: [&str; 8] = [
    "sample flag",
    "trace id",
    "parent segment id",
    "parent span id",
    "parent service",
    "parent service instance",
    "parent endpoint",
    "target address",
];

/// Parses an `sw8` value: exactly eight fields, sample flag 0/1, text fields standard base64
/// (padded) of UTF-8, a non-negative integer span id, non-empty trace and segment ids.
pub fn parse(v: &str) -> Result<Sw8, String> {
    let parts: Vec<&str> = v.trim().split('-').collect();
    if parts.len() != 8 {
        return Err(format!("{} fields, expected 8", parts.len()));
    }
    let sampled = match parts[0] {
        "1" => true,
        "0" => false,
        other => return Err(format!("sample flag {other:?} is not 0 or 1")),
    };
    let text = |i: usize| -> Result<String, String> {
        let bytes = STANDARD.decode(parts[i]).map_err(|e| format!("{} {:?}: not base64: {e}", FIELDS[i], parts[i]))?;
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", FIELDS[i]))
    };
    let trace_id = text(1)?;
    let parent_segment = text(2)?;
    if trace_id.is_empty() || parent_segment.is_empty() {
        return Err("trace id and parent segment id must not be empty".into());
    }
    let parent_span =
        parts[3].parse::<u32>().map_err(|_| format!("parent span id {:?} is not a non-negative integer", parts[3]))?;
    Ok(Sw8 {
        sampled,
        trace_id,
        parent_segment,
        parent_span,
        parent_service: text(4)?,
        parent_instance: text(5)?,
        parent_endpoint: text(6)?,
        target_address: text(7)?,
    })
}

/// Parses `sw8-correlation`; any malformed pair rejects the header.
pub fn parse_correlation(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = pair.split_once(':').ok_or_else(|| format!("pair {pair:?} has no ':'"))?;
        let decode = |s: &str| -> Result<String, String> {
            let bytes = STANDARD.decode(s).map_err(|e| format!("{s:?} is not base64: {e}"))?;
            String::from_utf8(bytes).map_err(|_| format!("{s:?} is not UTF-8"))
        };
        let key = decode(k)?;
        if key.is_empty() {
            return Err(format!("pair {pair:?} has an empty key"));
        }
        out.push((key, decode(val)?));
    }
    Ok(out)
}

/// The `sw8-correlation` value for `pairs`.
pub fn format_correlation<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}:{}", STANDARD.encode(k), STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sw8 {
        Sw8 {
            sampled: true,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            parent_segment: "a2b1".into(),
            parent_span: 3,
            parent_service: "dispatch".into(),
            parent_instance: "dispatch-primary-0".into(),
            parent_endpoint: "POST /v1/heartbeat".into(),
            target_address: "127.96.0.3:80".into(),
        }
    }

    #[test]
    fn sw8_round_trips() {
        let s = sample();
        let text = s.format();
        assert_eq!(text.split('-').count(), 8, "base64 never contains '-': {text}");
        assert_eq!(parse(&text).expect("parses"), s);
        let unsampled = Sw8 { sampled: false, ..s };
        assert_eq!(parse(&unsampled.format()).expect("parses"), unsampled);
    }

    #[test]
    fn the_skywalking_docs_example_parses() {
        // A header as SkyWalking agents write it (trace and segment ids in their dotted form).
        let v = "1-MWYyZDRiZjQ3YmY3MTFlYWI3OTRhY2RlNDgwMDExMjI=-MWU3YzIwNGE3YmY3MTFlYWI4NThhY2RlNDgwMDExMjI=-0-c2VydmljZQ==-aW5zdGFuY2U=-L2FwcA==-MTI3LjAuMC4xOjgwODA=";
        let s = parse(v).expect("parses");
        assert_eq!(s.parent_service, "service");
        assert_eq!(s.parent_endpoint, "/app");
        assert_eq!(s.target_address, "127.0.0.1:8080");
    }

    #[test]
    fn invalid_sw8_says_why() {
        let good = sample().format();
        let mut parts: Vec<String> = good.split('-').map(String::from).collect();
        for (i, bad, why) in
            [(0, "2", "sample flag"), (1, "!!", "trace id"), (3, "-1", "fields"), (3, "x", "parent span id")]
        {
            let saved = parts[i].clone();
            parts[i] = bad.to_string();
            let err = parse(&parts.join("-")).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
            parts[i] = saved;
        }
        assert!(parse("1-abc").expect_err("short").contains("2 fields"));
        parts[1] = String::new();
        assert!(parse(&parts.join("-")).expect_err("empty").contains("empty"));
    }

    #[test]
    fn correlation_round_trips() {
        let text = format_correlation([("vehicle.id", "v-1"), ("region", "eu:west")]);
        assert_eq!(
            parse_correlation(&text).expect("parses"),
            vec![("vehicle.id".to_string(), "v-1".to_string()), ("region".to_string(), "eu:west".to_string())]
        );
        assert!(parse_correlation("nocolon").is_err());
        assert!(parse_correlation("!!:YQ==").is_err());
    }
}
