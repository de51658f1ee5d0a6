//! What a failed step reports: its error with the whole cause chain, the root cause first.
//!
//! Cucumber turns a step's `Err` into the text of its `Display` and nothing else, so an
//! `anyhow::Error` returned as is would show only its outermost context ("injecting
//! primary-network-loss-50") and lose the reason underneath ("iptables is not installed").
//! Steps return [`StepResult`]; its error displays every cause, the deepest first, so the
//! console, `junit.xml`, the HTML card and the failure bundle all start with the root cause.

use std::fmt;

/// A step's result.
pub type StepResult = Result<(), StepError>;

/// A step's failure: an error and its causes.
pub struct StepError(anyhow::Error);

/// Prefix of each outer context under the root cause.
pub const CONTEXT_PREFIX: &str = "← ";

impl<E: Into<anyhow::Error>> From<E> for StepError {
    fn from(e: E) -> Self {
        StepError(e.into())
    }
}

impl StepError {
    /// The causes, root cause first, then each context outwards.
    pub fn causes(&self) -> Vec<String> {
        let mut causes: Vec<String> = self.0.chain().map(ToString::to_string).collect();
        causes.reverse();
        causes
    }
}

/// One cause a line: the root cause, then `← context` for each context outwards.
impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cause) in self.causes().iter().enumerate() {
            if i == 0 {
                write!(f, "{cause}")?;
            } else {
                write!(f, "\n{CONTEXT_PREFIX}{cause}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `anyhow::bail!` for steps and their helpers: returns the error as the function's error type
/// (a [`StepError`] in a step, an `anyhow::Error` in a helper).
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err(anyhow::anyhow!($($arg)+).into())
    };
}

/// `anyhow::ensure!` for steps and their helpers (see [`bail!`]).
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        // `match` rather than `if !cond`: clippy reads `!(a <= b)` on floats as a trap.
        match $cond {
            true => {}
            false => $crate::steps::error::bail!($($arg)+),
        }
    };
}

pub(crate) use {bail, ensure};

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn the_root_cause_comes_first_then_each_context_outwards() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "iptables is not installed");
        let err: anyhow::Result<()> =
            Err(io).context("NetworkChaos ns/loss: the chaos engine reports a failure").context("injecting loss");
        let step = StepError::from(err.unwrap_err());
        assert_eq!(
            step.to_string(),
            "iptables is not installed\n← NetworkChaos ns/loss: the chaos engine reports a failure\n← injecting loss"
        );
        // What cucumber makes of a step's Err (`panic!("{}", e)`) keeps the chain.
        assert!(format!("{step}").starts_with("iptables is not installed"));
        let plain = StepError::from(anyhow::anyhow!("web failed over after 2.4 s, deadline 1 s"));
        assert_eq!(plain.to_string(), "web failed over after 2.4 s, deadline 1 s");
    }
}
