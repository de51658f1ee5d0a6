//! The run's settings: every `HADRILL_*` environment variable, read once when a run starts and
//! passed down from there (nothing below reads the environment itself).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;

/// Environment variable naming the reports directory (default: the repository's `reports/`).
pub const REPORTS_ENV: &str = "HADRILL_REPORTS";
/// Environment variable setting how many scenarios run at once.
pub const CONCURRENCY_ENV: &str = "HADRILL_CONCURRENCY";

/// Environment variable that turns a capability the selected scenarios need and this machine
/// lacks (iptables, CAP_NET_ADMIN) into an immediate failure instead of skipped scenarios.
pub const REQUIRE_IPTABLES_ENV: &str = "HADRILL_REQUIRE_IPTABLES";

/// What a run reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where reports go (`HADRILL_REPORTS`, default the repository's `reports/`).
    pub reports_dir: PathBuf,
    /// Scenarios run at once (`HADRILL_CONCURRENCY`); `None` leaves the choice to the runner.
    pub concurrency: Option<usize>,
    /// A missing capability fails the run at once (`HADRILL_REQUIRE_IPTABLES=1`) instead of
    /// skipping the scenarios that need it.
    pub require_iptables: bool,
    /// Every `HADRILL_*` variable as read (the cluster options take theirs from here).
    vars: BTreeMap<String, String>,
}

impl Default for Settings {
    /// The settings of an empty environment.
    fn default() -> Self {
        Self { reports_dir: default_reports_dir(), concurrency: None, require_iptables: false, vars: BTreeMap::new() }
    }
}

/// The repository's `reports/`.
fn default_reports_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reports")
}

impl Settings {
    /// The settings of this process's environment.
    pub fn from_env() -> anyhow::Result<Settings> {
        Self::from_vars(std::env::vars().filter(|(k, _)| k.starts_with("HADRILL_")))
    }

    /// The settings of `vars` (name, value); blank values count as unset. A value that cannot
    /// be used is an error naming the variable and what it expects.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Settings> {
        let vars: BTreeMap<String, String> = vars.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        let reports_dir = vars.get(REPORTS_ENV).map(PathBuf::from).unwrap_or_else(default_reports_dir);
        let concurrency = match vars.get(CONCURRENCY_ENV) {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{CONCURRENCY_ENV}={v:?}: expected a whole number of 1 or more"))?,
            ),
        };
        let require_iptables = match vars.get(REQUIRE_IPTABLES_ENV).map(|v| v.trim()) {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(v) => anyhow::bail!(
                "{REQUIRE_IPTABLES_ENV}={v:?}: expected 1 (or true) to require iptables, 0 (or false) not to"
            ),
        };
        Ok(Settings { reports_dir, concurrency, require_iptables, vars })
    }

    /// The same settings with reports in `dir`.
    pub fn with_reports_dir(mut self, dir: impl Into<PathBuf>) -> Settings {
        self.reports_dir = dir.into();
        self
    }

    /// The value of the `HADRILL_*` variable `name`, as read.
    pub fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    /// Where feature runs keep their run ledgers (`hadrill clean` replays them after a crash).
    pub fn ledger_dir(&self) -> PathBuf {
        self.reports_dir.join(".ledger")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn an_empty_environment_gives_the_repository_reports_and_no_concurrency() {
        let s = settings(&[]).unwrap();
        assert!(s.reports_dir.ends_with("../reports"), "{s:?}");
        assert_eq!(s.ledger_dir(), s.reports_dir.join(".ledger"));
        assert_eq!(s.concurrency, None);
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn variables_are_read_once_into_the_settings() {
        let s = settings(&[(REPORTS_ENV, "/tmp/r"), (CONCURRENCY_ENV, " 2 "), ("HADRILL_CLUSTER", "kind")]).unwrap();
        assert_eq!(s.reports_dir, PathBuf::from("/tmp/r"));
        assert_eq!(s.ledger_dir(), PathBuf::from("/tmp/r/.ledger"));
        assert_eq!(s.concurrency, Some(2));
        assert_eq!(s.var("HADRILL_CLUSTER").as_deref(), Some("kind"));
        assert_eq!(settings(&[(REPORTS_ENV, " ")]).unwrap().reports_dir, Settings::default().reports_dir);
    }

    #[test]
    fn require_iptables_is_one_or_true_and_refuses_other_words() {
        assert!(!settings(&[]).unwrap().require_iptables);
        assert!(settings(&[(REQUIRE_IPTABLES_ENV, "1")]).unwrap().require_iptables);
        assert!(!settings(&[(REQUIRE_IPTABLES_ENV, "0")]).unwrap().require_iptables);
        let err = settings(&[(REQUIRE_IPTABLES_ENV, "yes")]).unwrap_err().to_string();
        assert!(err.starts_with("HADRILL_REQUIRE_IPTABLES=\"yes\""), "{err}");
    }

    #[test]
    fn a_bad_concurrency_names_the_variable() {
        for bad in ["0", "three", "-1"] {
            let err = settings(&[(CONCURRENCY_ENV, bad)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("HADRILL_CONCURRENCY={bad:?}")), "{err}");
        }
    }
}
