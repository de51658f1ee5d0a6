//! Reading the parts of a chaos object's spec the engine acts on: the kind, Go durations and
//! memory sizes. Errors name the field, so they can go into the object's events as they are.

use std::time::Duration;

use serde_json::Value;

/// The three Chaos Mesh kinds the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `PodChaos`.
    Pod,
    /// `NetworkChaos`.
    Network,
    /// `StressChaos`.
    Stress,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Pod, Kind::Network, Kind::Stress];

    /// The resource (plural == singular in Chaos Mesh).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "podchaos",
            Kind::Network => "networkchaos",
            Kind::Stress => "stresschaos",
        }
    }

    /// The `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pod => "PodChaos",
            Kind::Network => "NetworkChaos",
            Kind::Stress => "StressChaos",
        }
    }

    /// The kind served as `resource`, if it is one of the three.
    pub fn from_plural(resource: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.plural() == resource)
    }
}

/// Whether the object's action is one-shot (PodChaos pod-kill and container-kill): always
/// `Run`, duration and pause ignored, never recovered while the object exists.
pub fn one_shot(kind: Kind, obj: &Value) -> bool {
    kind == Kind::Pod && matches!(obj["spec"]["action"].as_str(), Some("pod-kill" | "container-kill"))
}

/// `spec.duration`, if set: a Go duration (`30s`, `1m30s`, `1.5h`, `300ms`).
pub fn duration(obj: &Value) -> Result<Option<Duration>, String> {
    match obj["spec"]["duration"].as_str().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_go_duration(s).map(Some).map_err(|e| format!("spec.duration {s:?}: {e}")),
    }
}

/// Parses a Go `time.Duration` string (non-negative; units ns, us, µs, ms, s, m, h).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("expected a number at {rest:?} (a Go duration such as 30s or 1m30s)"));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| format!("bad number {:?}", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err("missing unit (ns, us, ms, s, m or h)".into()),
            other => return Err(format!("unknown unit {other:?} (ns, us, ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).map_err(|e| e.to_string())
}

/// Parses a StressChaos memory `size`: bytes with an optional unit (`KB`, `MB`, `GB` decimal,
/// `KiB`, `MiB`, `GiB` binary, `B`), or a percentage of `total` bytes (`25%`).
pub fn parse_size(s: &str, total: u64) -> Result<u64, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| format!("{s:?}: bad percentage"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{s:?}: the percentage must be within 0..100"));
        }
        return Ok((total as f64 * p / 100.0) as u64);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let number: f64 = t[..split].parse().map_err(|_| format!("{s:?}: expected a number and a unit, e.g. 256MB"))?;
    let factor: f64 = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (B, KB, MB, GB, KiB, MiB, GiB or %)")),
    };
    Ok((number * factor) as u64)
}

/// The containers an action addresses in `pod`: `spec.containerNames`, else the first
/// container. An unknown name is an error naming the field.
pub fn containers(obj: &Value, pod: &Value) -> Result<Vec<String>, String> {
    let present: Vec<&str> =
        pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    let wanted: Vec<String> = obj["spec"]["containerNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    if wanted.is_empty() {
        return present.first().map(|c| vec![c.to_string()]).ok_or_else(|| "the pod has no container".to_string());
    }
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    for w in &wanted {
        if !present.contains(&w.as_str()) {
            return Err(format!("spec.containerNames: pod {pod_name} has no container {w:?} (it has {present:?})"));
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("1d").unwrap_err().contains("unknown unit"));
        assert!(parse_go_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_go_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MB", 0), Ok(256_000_000));
        assert_eq!(parse_size("1GiB", 0), Ok(1 << 30));
        assert_eq!(parse_size("25%", 400), Ok(100));
        assert_eq!(parse_size("512", 0), Ok(512));
        assert!(parse_size("1XB", 0).is_err());
        assert!(parse_size("120%", 10).is_err());
    }
}
