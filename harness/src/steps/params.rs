//! Cucumber parameter types of the step library: `{side}`, `{duration}` and `{percent}`. A
//! word that is not one of them leaves the step unmatched, so `hadrill check` reports it
//! before anything runs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cucumber::Parameter;

use crate::cluster::ha_pair::Side;

/// `{side}`: `primary` or `standby`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Parameter)]
#[param(name = "side", regex = "primary|standby")]
pub struct SideParam(pub Side);

impl FromStr for SideParam {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(SideParam(Side::Primary)),
            "standby" => Ok(SideParam(Side::Standby)),
            other => Err(format!("{other:?} is not a side: primary or standby")),
        }
    }
}

/// `{duration}`: a positive number and a unit, `90 s`, `1 min`, `2 h` (also `sec(s)`,
/// `second(s)`, `minute(s)`, `hour(s)`).
#[derive(Debug, Clone, Copy, PartialEq, Parameter)]
#[param(name = "duration", regex = r"\d+(?:\.\d+)? ?(?:seconds?|secs?|s|minutes?|min|hours?|h)")]
pub struct Span(pub Duration);

impl Span {
    /// Seconds.
    pub fn secs(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// As Chaos Mesh and the controller's annotations write a duration (`60s`).
    pub fn go_duration(self) -> String {
        format!("{}s", self.secs())
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (n, unit) = text.split_at(split);
        let n: f64 = n.parse().map_err(|_| format!("{text:?}: expected a number and a unit (s, min or h)"))?;
        let seconds = match unit.trim() {
            "s" | "sec" | "secs" | "second" | "seconds" => n,
            "min" | "minute" | "minutes" => n * 60.0,
            "h" | "hour" | "hours" => n * 3600.0,
            other => return Err(format!("{text:?}: unknown unit {other:?} (s, min or h)")),
        };
        if seconds <= 0.0 {
            return Err(format!("{text:?}: must be positive"));
        }
        Ok(Span(Duration::from_secs_f64(seconds)))
    }
}

impl fmt::Display for Span {
    /// In seconds, as the step texts mostly write it: `10 s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s", self.secs())
    }
}

/// `{percent}`: a whole percentage from 0 to 100, `80%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Parameter)]
#[param(name = "percent", regex = r"\d+%")]
pub struct Percent(pub u32);

impl FromStr for Percent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = s.strip_suffix('%').and_then(|n| n.parse::<u32>().ok()).filter(|n| *n <= 100);
        n.map(Percent).ok_or_else(|| format!("{s:?}: expected a percentage from 0% to 100%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!("1 min".parse::<Span>().unwrap().0, Duration::from_secs(60));
        assert_eq!("90 s".parse::<Span>().unwrap().0, Duration::from_secs(90));
        assert_eq!("2 h".parse::<Span>().unwrap().0, Duration::from_secs(7200));
        assert_eq!("1.5s".parse::<Span>().unwrap().0, Duration::from_millis(1500));
        assert_eq!("60 s".parse::<Span>().unwrap().go_duration(), "60s");
        assert_eq!("10 s".parse::<Span>().unwrap().to_string(), "10 s");
        for bad in ["5 parsecs", "five min", "10", "0 s"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sides_and_percentages_parse_and_say_what_they_expect() {
        assert_eq!("standby".parse::<SideParam>().unwrap(), SideParam(Side::Standby));
        assert!("backup".parse::<SideParam>().unwrap_err().contains("primary or standby"));
        assert_eq!("80%".parse::<Percent>().unwrap(), Percent(80));
        assert!("101%".parse::<Percent>().unwrap_err().contains("0% to 100%"));
    }
}
