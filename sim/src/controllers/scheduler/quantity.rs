//! Kubernetes resource quantities (`500m`, `1`, `0.5`, `128Mi`, `1Gi`, `1e3`, `2k`), read as
//! exact integers of thousandths ("milli-units"), rounding up like `Quantity.MilliValue()`.

/// Parses a quantity into milli-units: `"500m"` → 500, `"1"` → 1000, `"1Ki"` → 1,024,000.
/// `None` for text that is not a quantity or does not fit.
pub fn parse_milli(s: &str) -> Option<i128> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if frac_part.contains('.') {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let frac_len = i32::try_from(frac_part.len()).ok()?;
    // value = mantissa * 10^(-frac_len) * multiplier; milli = value * 1000.
    let (base2_exp, base10_exp): (u32, i32) = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        exp if exp.starts_with(['e', 'E']) => (0, exp[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let numerator = mantissa.checked_mul(1i128.checked_shl(base2_exp)?)?;
    let exp10 = base10_exp + 3 - frac_len;
    let value = if exp10 >= 0 {
        numerator.checked_mul(10i128.checked_pow(u32::try_from(exp10).ok()?)?)?
    } else {
        let div = 10i128.checked_pow(u32::try_from(-exp10).ok()?)?;
        // Round up, as Kubernetes does for MilliValue.
        (numerator + div - 1) / div
    };
    Some(sign * value)
}

/// A quantity in whole units (bytes for memory), rounded up.
pub fn parse_value(s: &str) -> Option<i128> {
    let milli = parse_milli(s)?;
    Some(if milli >= 0 { (milli + 999) / 1000 } else { milli / 1000 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse_milli("2.25"), Some(2250));
        assert_eq!(parse_milli(".1"), Some(100));
        assert_eq!(parse_milli("100u"), Some(1), "rounded up");
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("1E-3"), Some(1));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(parse_value("128Mi"), Some(128 * 1024 * 1024));
        assert_eq!(parse_value("1Gi"), Some(1 << 30));
        assert_eq!(parse_value("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_value("1k"), Some(1000));
        assert_eq!(parse_value("1M"), Some(1_000_000));
        assert_eq!(parse_value("4G"), Some(4_000_000_000));
        assert_eq!(parse_value("1Ki"), Some(1024));
        assert_eq!(parse_value("123"), Some(123));
        assert_eq!(parse_value("1Ei"), Some(1 << 60));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "1.2.3", "1Qi", "abc", "1 Gi", "--1", "1e", "Gi"] {
            assert_eq!(parse_milli(bad), None, "{bad:?}");
        }
        assert_eq!(parse_milli("-1"), Some(-1000));
    }
}
