//! The JSON forms of `metav1.Time`, `metav1.MicroTime` (RFC 3339) and `metav1.Duration`
//! (Go's `time.Duration` text).

use k8s_openapi::jiff::Timestamp;

use super::CodecError;

/// Seconds and nanoseconds of an RFC 3339 time.
pub fn parse_timestamp(text: &str) -> Result<(i64, i32), CodecError> {
    let t: Timestamp = text.parse().map_err(|e| CodecError::new(format!("invalid time {text:?}: {e}")))?;
    Ok((t.as_second(), t.subsec_nanosecond()))
}

/// RFC 3339 in UTC: whole seconds for `Time`, six fractional digits for `MicroTime`.
pub fn format_timestamp(seconds: i64, nanos: i32, micro: bool) -> Result<String, CodecError> {
    let t = Timestamp::new(seconds, if micro { nanos } else { 0 })
        .map_err(|e| CodecError::new(format!("time out of range: {e}")))?;
    Ok(if micro {
        t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    })
}

const UNITS: &[(&str, i64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Nanoseconds of a Go duration (`1h2m3.5s`, `300ms`, `-1.5h`).
pub fn parse_duration(text: &str) -> Result<i64, CodecError> {
    let bad = || CodecError::new(format!("invalid duration {text:?}"));
    let (neg, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s).ok_or_else(bad)?;
        total += n * scale as f64;
        rest = tail;
    }
    let nanos = total.round() as i64;
    Ok(if neg { -nanos } else { nanos })
}

/// Go's `time.Duration.String()`.
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, scale) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(n, scale));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

/// `n / scale` with the fraction's trailing zeros removed (`1.5`, `2`).
fn fraction(n: u64, scale: u64) -> String {
    let whole = n / scale;
    let frac = n % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_in_go_notation() {
        for (text, nanos) in
            [("1h0m0s", 3_600_000_000_000), ("1m30s", 90_000_000_000), ("1.5s", 1_500_000_000), ("300ms", 300_000_000)]
        {
            assert_eq!(parse_duration(text).unwrap(), nanos, "{text}");
            assert_eq!(format_duration(nanos), text);
        }
        assert_eq!(parse_duration("90m").unwrap(), 5_400_000_000_000);
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn times_keep_kubernetes_precision() {
        let (s, n) = parse_timestamp("2026-01-02T03:04:05.123456Z").unwrap();
        assert_eq!(format_timestamp(s, n, true).unwrap(), "2026-01-02T03:04:05.123456Z");
        assert_eq!(format_timestamp(s, n, false).unwrap(), "2026-01-02T03:04:05Z");
    }
}
