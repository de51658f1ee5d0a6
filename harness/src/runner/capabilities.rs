//! What the selected scenarios need of this machine, worked out from their faults before any
//! of them runs. On the embedded cluster, NetworkChaos `loss` and `partition` are iptables
//! rules in the test process's network namespace: they need the iptables binary and
//! CAP_NET_ADMIN (root). On kind or an existing cluster, Chaos Mesh injects them and the
//! machine running hadrill needs neither.

use super::plan::ScenarioPlan;
use crate::cluster::provider::ProviderKind;
use crate::settings::REQUIRE_IPTABLES_ENV;

/// A scenario that cannot run here, and why.
#[derive(Debug, Clone)]
pub struct Skip {
    /// The scenario.
    pub plan: ScenarioPlan,
    /// Why, and how to fix it.
    pub reason: String,
}

/// The scenarios of `plans` that need what this machine lacks, on a run whose `--cluster` is
/// `provider`. `iptables` says whether iptables can be used (the error says why not); it is
/// asked only when a scenario needs it.
pub fn unmet<'a>(
    plans: impl IntoIterator<Item = &'a ScenarioPlan>,
    provider: ProviderKind,
    iptables: impl FnOnce() -> Result<(), String>,
) -> Vec<Skip> {
    let needing: Vec<&ScenarioPlan> = plans
        .into_iter()
        .filter(|p| !p.network_faults.is_empty())
        .filter(|p| p.embedded == Some(true) || (p.embedded == Some(false) && provider == ProviderKind::Sim))
        .collect();
    if needing.is_empty() {
        return Vec::new();
    }
    let Err(why) = iptables() else { return Vec::new() };
    needing
        .into_iter()
        .map(|p| Skip {
            reason: format!(
                "needs iptables for {} on the embedded cluster, and {why}. Fix: install iptables and run as root \
                 (or with CAP_NET_ADMIN), or run on kind (--cluster kind); {REQUIRE_IPTABLES_ENV}=1 makes this an error",
                p.network_faults.join(", ")
            ),
            plan: p.clone(),
        })
        .collect()
}

/// Whether iptables can be used by the embedded cluster's chaos engine, as that engine checks it.
pub fn probe_iptables() -> Result<(), String> {
    sim::chaos::iptables::Iptables::new(true).available()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, embedded: Option<bool>, faults: &[&str]) -> ScenarioPlan {
        ScenarioPlan {
            file: "x.feature".into(),
            line: 1,
            feature: "f".into(),
            scenario: name.into(),
            embedded,
            network_faults: faults.iter().map(|s| s.to_string()).collect(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn only_scenarios_with_network_faults_on_the_embedded_cluster_are_skipped() {
        let plans = [
            plan("loss on sim", Some(false), &["primary-network-loss-50"]),
            plan("loss on the embedded one", Some(true), &["standby-partition"]),
            plan("pod kill", Some(false), &[]),
        ];
        let missing = || Err("iptables is not installed".to_string());
        let names = |skips: Vec<Skip>| skips.into_iter().map(|s| s.plan.scenario).collect::<Vec<_>>();
        assert_eq!(names(unmet(&plans, ProviderKind::Sim, missing)), ["loss on sim", "loss on the embedded one"]);
        assert_eq!(names(unmet(&plans, ProviderKind::Kind, missing)), ["loss on the embedded one"]);
        assert!(unmet(&plans, ProviderKind::Sim, || Ok(())).is_empty());
        let skip = unmet(&plans[..1], ProviderKind::Sim, missing).remove(0);
        assert!(
            skip.reason.contains("primary-network-loss-50") && skip.reason.contains("install iptables"),
            "{}",
            skip.reason
        );
    }

    #[test]
    fn iptables_is_not_asked_when_nothing_needs_it() {
        let plans = [plan("pod kill", Some(false), &[])];
        assert!(unmet(&plans, ProviderKind::Sim, || panic!("asked")).is_empty());
    }
}
