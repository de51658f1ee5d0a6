//! The switching decision, as a pure function of the Service's recorded state, both sides'
//! health and the policy.
//!
//! Rules, in order:
//! 1. A manual request (the `active` annotation names a side the selector does not select) is
//!    carried out when that side is healthy (`Switched`), refused otherwise (`SwitchRefused`).
//! 2. Active side unhealthy, other side healthy: switch (`FailedOver`) unless the last switch is
//!    less than the dwell time ago (`FailoverDelayed`, retried when the dwell time is over).
//! 3. Both unhealthy: no change (`BothUnhealthy`).
//! 4. Standby active and healthy, failback `auto`, primary healthy for `failback-after` and the
//!    dwell time over: switch back (`FailedBack`). With `manual`, stay.
//! 5. Otherwise keep the active side (bringing the selector in line with it if needed).
//!
//! A side is never switched to while it is unhealthy.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::annotations::{self, Condition, Failback, HaSpec};
use crate::health::Health;
use crate::health::restarts::later;
use crate::workload::Side;

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    /// Now.
    pub now: Timestamp,
    /// The Service's HA configuration.
    pub spec: &'a HaSpec,
    /// The side named by the `active` annotation (`None` before the controller adopted the Service).
    pub requested: Option<Side>,
    /// The side whose pod selector the Service's selector equals (`None`: neither).
    pub selected: Option<Side>,
    /// The `switched-at` annotation.
    pub switched_at: Option<Timestamp>,
    /// Health of the primary.
    pub primary: &'a Health,
    /// Health of the standby.
    pub standby: &'a Health,
    /// Since when the primary has been continuously healthy (controller memory).
    pub primary_healthy_since: Option<Timestamp>,
}

impl Situation<'_> {
    fn health(&self, side: Side) -> &Health {
        match side {
            Side::Primary => self.primary,
            Side::Standby => self.standby,
        }
    }

    /// `primary deployment/dispatch-a`.
    fn name(&self, side: Side) -> String {
        format!("{side} {}", self.spec.workload(side))
    }

    /// `primary deployment/dispatch-a unhealthy (a-1: not Ready)`.
    fn unhealthy(&self, side: Side) -> String {
        format!("{} unhealthy ({})", self.name(side), self.health(side).describe())
    }

    fn dwell_over_at(&self) -> Option<Timestamp> {
        self.switched_at.map(|t| later(t, self.spec.policy.dwell))
    }
}

/// What kind of switch a decision makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchKind {
    /// Away from an unhealthy side.
    FailedOver,
    /// Back to the primary (automatic failback).
    FailedBack,
    /// To the side the `active` annotation names (manual request).
    Switched,
    /// First selection when the controller adopts a Service.
    Configured,
}

impl SwitchKind {
    /// The event reason.
    pub fn reason(self) -> &'static str {
        match self {
            SwitchKind::FailedOver => "FailedOver",
            SwitchKind::FailedBack => "FailedBack",
            SwitchKind::Switched => "Switched",
            SwitchKind::Configured => "Configured",
        }
    }
}

/// An event to publish on the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning (else Normal).
    pub warning: bool,
    /// Event reason.
    pub reason: &'static str,
    /// Event note.
    pub note: String,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The side to record as active.
    pub target: Side,
    /// Set when the Service's selector is to be changed to the target's.
    pub switch: Option<SwitchKind>,
    /// The condition to record (transition time not yet set).
    pub condition: Condition,
    /// The event to publish.
    pub notice: Option<Notice>,
    /// When to look again at the latest, if a timer is pending.
    pub requeue_after: Option<Duration>,
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Decides what to do with an HA Service.
pub fn decide(s: &Situation) -> Decision {
    // 1. Manual request.
    if let Some(requested) = s.requested
        && s.selected != Some(requested)
    {
        if s.health(requested).healthy {
            let note = format!("{} selected as requested by {}", s.name(requested), annotations::ACTIVE);
            return switch(s, requested, SwitchKind::Switched, note);
        }
        if let Some(current) = s.selected {
            let mut d = steady(s, current);
            d.notice = Some(Notice {
                warning: true,
                reason: "SwitchRefused",
                note: format!("{}; keeping {}", s.unhealthy(requested), s.name(current)),
            });
            return d;
        }
    }
    let active = s.requested.or(s.selected).unwrap_or(Side::Primary);
    let other = active.other();
    let (active_ok, other_ok) = (s.health(active).healthy, s.health(other).healthy);
    // 2. Failover, or 3. both unhealthy.
    if !active_ok {
        if !other_ok {
            let note = format!("{}; {}; no switch", s.unhealthy(Side::Primary), s.unhealthy(Side::Standby));
            return Decision {
                target: active,
                switch: None,
                condition: Condition::available(false, "BothUnhealthy", note.clone()),
                notice: Some(Notice { warning: true, reason: "BothUnhealthy", note }),
                requeue_after: None,
            };
        }
        match s.dwell_over_at() {
            Some(at) if at > s.now => {
                let note = format!(
                    "{}; {} healthy; switching at {} (dwell time {} since the last switch)",
                    s.unhealthy(active),
                    s.name(other),
                    annotations::format_time(at),
                    humantime::format_duration(s.spec.policy.dwell),
                );
                return Decision {
                    target: active,
                    switch: None,
                    condition: Condition::available(false, "FailoverDelayed", note.clone()),
                    notice: Some(Notice { warning: true, reason: "FailoverDelayed", note }),
                    requeue_after: Some(until(s.now, at)),
                };
            }
            _ => {
                let note = format!("{}; switched to {}", s.unhealthy(active), s.name(other));
                return switch(s, other, SwitchKind::FailedOver, note);
            }
        }
    }
    // 4. Failback.
    if active == Side::Standby && s.spec.policy.failback == Failback::Auto && s.primary.healthy {
        let healthy_since = s.primary_healthy_since.unwrap_or(s.now);
        let at = later(healthy_since, s.spec.policy.failback_after).max(s.dwell_over_at().unwrap_or(s.now));
        if at <= s.now {
            let note = format!(
                "{} healthy for {}; switched back from {}",
                s.name(Side::Primary),
                humantime::format_duration(Duration::try_from(s.now.duration_since(healthy_since)).unwrap_or_default()),
                s.name(Side::Standby),
            );
            return switch(s, Side::Primary, SwitchKind::FailedBack, note);
        }
        let mut d = steady(s, active);
        d.requeue_after = Some(until(s.now, at));
        return d;
    }
    // 5. Keep, selecting the active side if the selector does not yet.
    if s.selected != Some(active) {
        let kind = if s.requested.is_none() { SwitchKind::Configured } else { SwitchKind::Switched };
        let note = format!(
            "failover between {} and {}; {} selected",
            s.name(Side::Primary),
            s.name(Side::Standby),
            s.name(active)
        );
        return switch(s, active, kind, note);
    }
    let mut d = steady(s, active);
    if s.requested.is_none() {
        d.notice = Some(Notice {
            warning: false,
            reason: SwitchKind::Configured.reason(),
            note: format!(
                "failover between {} and {}; {} active",
                s.name(Side::Primary),
                s.name(Side::Standby),
                s.name(active)
            ),
        });
    }
    d
}

fn switch(s: &Situation, to: Side, kind: SwitchKind, note: String) -> Decision {
    let mut d = steady(s, to);
    d.switch = Some(kind);
    d.notice = Some(Notice { warning: kind == SwitchKind::FailedOver, reason: kind.reason(), note });
    d
}

/// No switch: the condition describes both sides.
fn steady(s: &Situation, active: Side) -> Decision {
    let h = s.health(active);
    let mut message = format!("{} selected: {}/{} pods healthy", s.name(active), h.healthy_pods(), h.pods);
    if !h.problems.is_empty() {
        message.push_str(&format!(" ({})", h.describe()));
    }
    let other = active.other();
    if s.health(other).healthy {
        message.push_str(&format!("; {} healthy", s.name(other)));
    } else {
        message.push_str(&format!("; {}", s.unhealthy(other)));
    }
    if active == Side::Standby && s.primary.healthy && s.spec.policy.failback == Failback::Manual {
        message.push_str(&format!("; failback is manual: set {}=primary", annotations::ACTIVE));
    }
    Decision {
        target: active,
        switch: None,
        condition: Condition::available(
            h.healthy,
            if h.healthy { "ActiveHealthy" } else { "ActiveUnhealthy" },
            message,
        ),
        notice: None,
        requeue_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::{Policy, ProbeOverride};
    use crate::health::PodProblem;
    use crate::workload::{WorkloadKind, WorkloadRef};

    fn spec(failback: Failback) -> HaSpec {
        HaSpec {
            primary: WorkloadRef { kind: WorkloadKind::Deployment, name: "a".into() },
            standby: WorkloadRef { kind: WorkloadKind::StatefulSet, name: "b".into() },
            policy: Policy { dwell: Duration::from_secs(30), failback, failback_after: Duration::from_secs(60) },
            probe: ProbeOverride::default(),
        }
    }

    fn health(ok: bool) -> Health {
        Health {
            healthy: ok,
            desired: 1,
            available: i32::from(ok),
            pods: 1,
            problems: if ok {
                vec![]
            } else {
                vec![PodProblem {
                    pod: "p".into(),
                    reasons: vec!["not Ready".into()],
                    white_box: true,
                    black_box: false,
                }]
            },
            workload_problem: None,
            departed: Vec::new(),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid")
    }

    struct Case {
        what: &'static str,
        failback: Failback,
        requested: Option<Side>,
        selected: Option<Side>,
        switched_at: Option<i64>,
        primary: bool,
        standby: bool,
        primary_healthy_since: Option<i64>,
        want: (Side, Option<SwitchKind>, Option<&'static str>, Option<u64>),
    }

    #[test]
    fn decision_table() {
        use Side::{Primary as P, Standby as S};
        use SwitchKind::*;
        let m = Failback::Manual;
        let a = Failback::Auto;
        let now = 1000;
        #[rustfmt::skip]
        let cases = [
            Case { what: "steady", failback: m, requested: Some(P), selected: Some(P), switched_at: None, primary: true, standby: true, primary_healthy_since: Some(0), want: (P, None, None, None) },
            Case { what: "standby down only", failback: m, requested: Some(P), selected: Some(P), switched_at: None, primary: true, standby: false, primary_healthy_since: Some(0), want: (P, None, None, None) },
            Case { what: "primary down: failover", failback: m, requested: Some(P), selected: Some(P), switched_at: None, primary: false, standby: true, primary_healthy_since: None, want: (S, Some(FailedOver), Some("FailedOver"), None) },
            Case { what: "primary down within dwell", failback: m, requested: Some(P), selected: Some(P), switched_at: Some(now - 10), primary: false, standby: true, primary_healthy_since: None, want: (P, None, Some("FailoverDelayed"), Some(20)) },
            Case { what: "primary down after dwell", failback: m, requested: Some(P), selected: Some(P), switched_at: Some(now - 30), primary: false, standby: true, primary_healthy_since: None, want: (S, Some(FailedOver), Some("FailedOver"), None) },
            Case { what: "both down", failback: m, requested: Some(P), selected: Some(P), switched_at: None, primary: false, standby: false, primary_healthy_since: None, want: (P, None, Some("BothUnhealthy"), None) },
            Case { what: "standby down while active", failback: m, requested: Some(S), selected: Some(S), switched_at: Some(now - 100), primary: true, standby: false, primary_healthy_since: Some(now - 1), want: (P, Some(FailedOver), Some("FailedOver"), None) },
            Case { what: "manual failback stays", failback: m, requested: Some(S), selected: Some(S), switched_at: Some(now - 500), primary: true, standby: true, primary_healthy_since: Some(0), want: (S, None, None, None) },
            Case { what: "auto failback waits for the healthy period", failback: a, requested: Some(S), selected: Some(S), switched_at: Some(now - 500), primary: true, standby: true, primary_healthy_since: Some(now - 20), want: (S, None, None, Some(40)) },
            Case { what: "auto failback waits for the dwell", failback: a, requested: Some(S), selected: Some(S), switched_at: Some(now - 5), primary: true, standby: true, primary_healthy_since: Some(now - 100), want: (S, None, None, Some(25)) },
            Case { what: "auto failback", failback: a, requested: Some(S), selected: Some(S), switched_at: Some(now - 500), primary: true, standby: true, primary_healthy_since: Some(now - 60), want: (P, Some(FailedBack), Some("FailedBack"), None) },
            Case { what: "auto failback never to an unhealthy primary", failback: a, requested: Some(S), selected: Some(S), switched_at: Some(now - 500), primary: false, standby: true, primary_healthy_since: None, want: (S, None, None, None) },
            Case { what: "manual request honoured", failback: m, requested: Some(P), selected: Some(S), switched_at: Some(now - 1), primary: true, standby: true, primary_healthy_since: Some(now - 1), want: (P, Some(Switched), Some("Switched"), None) },
            Case { what: "manual request to an unhealthy side refused", failback: m, requested: Some(S), selected: Some(P), switched_at: None, primary: true, standby: false, primary_healthy_since: Some(0), want: (P, None, Some("SwitchRefused"), None) },
            Case { what: "adoption in place", failback: m, requested: None, selected: Some(P), switched_at: None, primary: true, standby: true, primary_healthy_since: Some(now), want: (P, None, Some("Configured"), None) },
            Case { what: "adoption sets the selector", failback: m, requested: None, selected: None, switched_at: None, primary: true, standby: true, primary_healthy_since: Some(now), want: (P, Some(Configured), Some("Configured"), None) },
            Case { what: "adoption with the primary down", failback: m, requested: None, selected: None, switched_at: None, primary: false, standby: true, primary_healthy_since: None, want: (S, Some(FailedOver), Some("FailedOver"), None) },
            Case { what: "adoption with both down changes nothing", failback: m, requested: None, selected: None, switched_at: None, primary: false, standby: false, primary_healthy_since: None, want: (P, None, Some("BothUnhealthy"), None) },
        ];
        for c in cases {
            let sp = spec(c.failback);
            let (ph, sh) = (health(c.primary), health(c.standby));
            let s = Situation {
                now: at(now),
                spec: &sp,
                requested: c.requested,
                selected: c.selected,
                switched_at: c.switched_at.map(at),
                primary: &ph,
                standby: &sh,
                primary_healthy_since: c.primary_healthy_since.map(at),
            };
            let d = decide(&s);
            let got = (d.target, d.switch, d.notice.as_ref().map(|n| n.reason), d.requeue_after.map(|d| d.as_secs()));
            assert_eq!(got, c.want, "{}", c.what);
        }
    }

    #[test]
    fn notes_name_the_workloads_and_pods() {
        let sp = spec(Failback::Manual);
        let (ph, sh) = (health(false), health(true));
        let s = Situation {
            now: at(0),
            spec: &sp,
            requested: Some(Side::Primary),
            selected: Some(Side::Primary),
            switched_at: None,
            primary: &ph,
            standby: &sh,
            primary_healthy_since: None,
        };
        let d = decide(&s);
        let n = d.notice.expect("notice");
        assert_eq!(n.note, "primary deployment/a unhealthy (p: not Ready); switched to standby statefulset/b");
        assert!(n.warning);
        assert_eq!(d.condition.reason, "ActiveHealthy");
        assert_eq!(
            d.condition.message,
            "standby statefulset/b selected: 1/1 pods healthy; primary deployment/a unhealthy (p: not Ready)"
        );
    }
}
