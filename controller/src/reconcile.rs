//! One reconcile of an HA Service: resolve its workloads and pods from the caches, assess both
//! sides, decide, and — on the leader only — write the Service and publish the event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::act::{self, Desired};
use crate::annotations::{self, Condition, ConfigError, HaSpec};
use crate::controller::Scope;
use crate::decide::{self, Decision, Notice, Situation, SwitchKind};
use crate::health::{self, NodeReadiness, Observations};
use crate::memory::Applied;
use crate::probe::{self, Target};
use crate::workload::{Side, Workload};

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{context}: {source}")]
    Api {
        /// What was being done.
        context: String,
        /// The API error.
        source: kube::Error,
    },
}

/// Safety net for a reconcile skipped while the store lags behind the controller's own write
/// (the write's watch event normally reconciles sooner).
const STORE_LAG_RETRY: Duration = Duration::from_millis(200);

/// Reconciles one Service (the kube-runtime reconciler).
pub async fn reconcile(service: Arc<Service>, scope: Arc<Scope>) -> Result<Action, Error> {
    let started = Instant::now();
    let mut result = evaluate(&service, &scope).await;
    // A 409 means the cached Service is older than the stored one (the watch lags, e.g. behind
    // our own last write). Waiting for the cache could let a failover slip past while the
    // primary's replacement pods come up, so decide again at once from a fresh read.
    for _ in 0..3 {
        if !matches!(&result, Err(Error::Api { source: kube::Error::Api(s), .. }) if s.code == 409) {
            break;
        }
        let ns = service.namespace().unwrap_or_default();
        let api: kube::Api<Service> = kube::Api::namespaced(scope.shared.client.clone(), &ns);
        result = match api.get_opt(&service.name_any()).await {
            Ok(Some(fresh)) => evaluate(&fresh, &scope).await,
            Ok(None) => Ok(Action::await_change()),
            Err(source) => {
                Err(Error::Api { context: format!("re-reading Service {ns}/{}", service.name_any()), source })
            }
        };
    }
    scope.shared.metrics.reconciled(started.elapsed(), result.is_ok());
    result
}

/// Retries a failed reconcile after a second.
pub fn error_policy(service: Arc<Service>, error: &Error, _scope: Arc<Scope>) -> Action {
    tracing::warn!(service = %service.name_any(), namespace = ?service.namespace(), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(1))
}

/// The two sides, resolved.
struct Resolved {
    spec: HaSpec,
    workloads: [Workload; 2],
    selectors: [BTreeMap<String, String>; 2],
    pods: [Vec<Arc<Pod>>; 2],
}

fn idx(side: Side) -> usize {
    match side {
        Side::Primary => 0,
        Side::Standby => 1,
    }
}

fn resolve(service: &Service, scope: &Scope, ns: &str) -> Result<Resolved, ConfigError> {
    let spec = annotations::parse(service.annotations(), &scope.shared.settings.policy)?;
    let mut found = Vec::with_capacity(2);
    for side in [Side::Primary, Side::Standby] {
        let reference = spec.workload(side).clone();
        let workload = scope
            .workload(ns, &reference)
            .ok_or_else(|| ConfigError::WorkloadNotFound { side, workload: reference.clone() })?;
        let has_expressions = workload.selector.match_expressions.as_ref().is_some_and(|e| !e.is_empty());
        let selector = workload.service_selector().ok_or(ConfigError::UnusableSelector {
            side,
            workload: reference,
            why: if has_expressions {
                "it uses matchExpressions, which a Service selector cannot express"
            } else {
                "it has no matchLabels"
            },
        })?;
        found.push((workload, selector));
    }
    let [(primary, primary_sel), (standby, standby_sel)]: [(Workload, BTreeMap<String, String>); 2] =
        found.try_into().map_err(|_| ConfigError::Missing(annotations::PRIMARY))?;
    if primary_sel == standby_sel {
        return Err(ConfigError::UnusableSelector {
            side: Side::Standby,
            workload: standby.reference,
            why: "it has the same selector as the primary",
        });
    }
    let pods = [scope.pods_of(ns, &primary), scope.pods_of(ns, &standby)];
    Ok(Resolved { spec, workloads: [primary, standby], selectors: [primary_sel, standby_sel], pods })
}

/// The Service's status as the controller should see it: the store, unless the controller's
/// own last write is newer than what the store holds.
struct Live {
    requested: Option<Side>,
    selector: BTreeMap<String, String>,
    switched_at: Option<Timestamp>,
    switched_at_raw: Option<String>,
    condition: Option<Condition>,
}

fn live(service: &Service, applied: Option<&Applied>) -> Live {
    let rec = annotations::recorded(service.annotations());
    let selector = service.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let mut live = Live {
        requested: rec.active,
        selector,
        switched_at: rec.switched_at,
        switched_at_raw: rec.switched_at_raw,
        condition: rec.condition,
    };
    if let Some(a) = applied
        && a.switched_at.is_some()
        && a.switched_at > live.switched_at
    {
        live.requested = a.active;
        live.selector = a.selector.clone();
        live.switched_at = a.switched_at;
        live.switched_at_raw = a.switched_at_raw.clone();
    }
    live
}

async fn evaluate(service: &Service, scope: &Scope) -> Result<Action, Error> {
    let shared = &scope.shared;
    let key = ObjectRef::from_obj(service);
    let now = Timestamp::now();
    scope.gc(now);
    if !annotations::is_ha(service.annotations()) || service.metadata.deletion_timestamp.is_some() {
        shared.forget(&key);
        return Ok(Action::await_change());
    }
    let ns = service.namespace().unwrap_or_default();
    let applied = shared.with_memory(&key, |m| m.applied.clone());
    if applied.as_ref().is_some_and(|a| a.awaited_by(service.metadata.resource_version.as_deref())) {
        // The store has not seen this controller's own last write yet (a pod event came
        // first): deciding from it would redo or undo that write, and applying with its
        // resourceVersion would only get a 409. The write's watch event reconciles again.
        tracing::debug!(service = %key, "waiting for the store to see the last write");
        return Ok(Action::requeue(STORE_LAG_RETRY));
    }
    let live = live(service, applied.as_ref());
    let resolved = match resolve(service, scope, &ns) {
        Ok(r) => r,
        Err(e) => return invalid_config(service, scope, &key, &live, &e, now).await,
    };

    // Observations.
    let all_pods: Vec<&Pod> = resolved.pods.iter().flatten().map(|p| p.as_ref()).collect();
    let checks = shared.settings.checks;
    let mut recent_restarts = HashMap::new();
    let mut restart_expiry: Option<Timestamp> = None;
    if checks.white_box {
        let mut tracker = shared.restarts();
        for pod in &all_pods {
            let Some(uid) = pod.uid() else { continue };
            let total = pod
                .status
                .iter()
                .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()))
                .map(|c| i64::from(c.restart_count))
                .sum();
            let recent = tracker.observe(&uid, total, now);
            if recent > 0 {
                recent_restarts.insert(uid.clone(), recent);
                if let Some(t) = tracker.next_expiry(&uid) {
                    restart_expiry = Some(restart_expiry.map_or(t, |e| e.min(t)));
                }
            }
        }
    }
    let mut probe_failures = HashMap::new();
    if checks.black_box {
        let targets: Vec<Target> = all_pods
            .iter()
            .filter_map(|p| probe::target_for(p, &resolved.spec.probe, shared.prober.settings()))
            .collect();
        probe_failures = shared.prober.failures(&targets);
        shared.prober.set_targets(key.clone(), targets);
    } else {
        shared.prober.remove(&key);
    }
    let nodes = health::node_readiness(all_pods.iter().copied(), |n| {
        shared.nodes.get(&ObjectRef::new(n)).map(|node| NodeReadiness::of(&node))
    });
    let obs = Observations { nodes, recent_restarts, probe_failures };
    let assess = |side: Side| {
        let pods: Vec<&Pod> = resolved.pods[idx(side)].iter().map(|p| p.as_ref()).collect();
        let mut health = health::assess(&resolved.workloads[idx(side)], &pods, &obs, checks);
        health.departed = shared.departures.matching(&ns, &resolved.workloads[idx(side)].selector, now);
        health
    };
    let (primary, standby) = (assess(Side::Primary), assess(Side::Standby));

    // Decision.
    let selected = [Side::Primary, Side::Standby].into_iter().find(|s| resolved.selectors[idx(*s)] == live.selector);
    let active = live.requested.or(selected).unwrap_or(Side::Primary);
    let active_health = if active == Side::Primary { &primary } else { &standby };
    let (unhealthy_since, primary_healthy_since) = shared.with_memory(&key, |m| {
        m.active_unhealthy_since = match m.active_unhealthy_since {
            _ if active_health.healthy => None,
            Some((side, t)) if side == active => Some((side, t)),
            _ => Some((active, now)),
        };
        m.primary_healthy_since = if primary.healthy { m.primary_healthy_since.or(Some(now)) } else { None };
        (m.active_unhealthy_since, m.primary_healthy_since)
    });
    let situation = Situation {
        now,
        spec: &resolved.spec,
        requested: live.requested,
        selected,
        switched_at: live.switched_at,
        primary: &primary,
        standby: &standby,
        primary_healthy_since,
    };
    let decision = decide::decide(&situation);
    let leader = shared.is_leader();
    tracing::debug!(service = %key, leader, ?decision, "evaluated");

    if leader {
        let switched = decision.switch.is_some();
        let desired = Desired {
            selector: if switched { resolved.selectors[idx(decision.target)].clone() } else { live.selector.clone() },
            active: Some(decision.target),
            switched_at: if switched { Some(annotations::format_time(now)) } else { live.switched_at_raw.clone() },
            condition: decision.condition.clone().since(live.condition.as_ref(), now),
        };
        write(service, scope, &key, &live, desired).await?;
        if let Some(kind) = decision.switch {
            let detector = match kind {
                SwitchKind::FailedOver => active_health.detectors(),
                SwitchKind::FailedBack => "policy",
                SwitchKind::Switched => "manual",
                SwitchKind::Configured => "adoption",
            };
            shared.metrics.switched(kind.reason(), detector);
            if kind == SwitchKind::FailedOver
                && let Some((_, since)) = unhealthy_since
            {
                let latency = Duration::try_from(Timestamp::now().duration_since(since)).unwrap_or_default();
                shared.metrics.detection_to_switch(latency);
            }
            shared.with_memory(&key, |m| m.active_unhealthy_since = None);
            tracing::info!(service = %key, reason = kind.reason(), to = %decision.target, "switched");
        }
        notify(service, scope, &key, decision.notice.as_ref()).await;
    }
    Ok(requeue(scope, &decision, restart_expiry, now))
}

fn requeue(scope: &Scope, decision: &Decision, restart_expiry: Option<Timestamp>, now: Timestamp) -> Action {
    let mut after = scope.shared.settings.resync;
    if let Some(d) = decision.requeue_after {
        after = after.min(d);
    }
    if let Some(t) = restart_expiry {
        after = after.min(Duration::try_from(t.duration_since(now)).unwrap_or_default());
    }
    Action::requeue(after.max(Duration::from_millis(10)))
}

/// Writes `desired` unless the Service already says it.
async fn write(
    service: &Service,
    scope: &Scope,
    key: &ObjectRef<Service>,
    live: &Live,
    desired: Desired,
) -> Result<(), Error> {
    let unchanged = desired.selector == live.selector
        && (desired.active.is_none() || desired.active == live.requested)
        && desired.switched_at == live.switched_at_raw
        && Some(&desired.condition) == live.condition.as_ref();
    if unchanged {
        return Ok(());
    }
    let written = act::apply(&scope.shared.client, service, &desired)
        .await
        .map_err(|source| Error::Api { context: format!("updating Service {key}"), source })?;
    let changed = written.metadata.resource_version != service.metadata.resource_version;
    let applied = Applied {
        decided_from: if changed { service.metadata.resource_version.clone() } else { None },
        active: desired.active,
        switched_at: desired.switched_at.as_deref().and_then(|t| t.parse().ok()),
        switched_at_raw: desired.switched_at,
        selector: written.spec.and_then(|s| s.selector).unwrap_or_default(),
    };
    scope.shared.with_memory(key, |m| m.applied = Some(applied));
    Ok(())
}

/// Publishes the decision's event unless it is the one last published for the Service.
async fn notify(service: &Service, scope: &Scope, key: &ObjectRef<Service>, notice: Option<&Notice>) {
    let shared = &scope.shared;
    let Some(n) = notice else {
        shared.with_memory(key, |m| m.last_notice = None);
        return;
    };
    let this = Some((n.reason.to_string(), n.note.clone()));
    if shared.with_memory(key, |m| m.last_notice == this) {
        return;
    }
    match shared.events.publish(service, n.warning, n.reason, &n.note).await {
        Ok(()) => {
            shared.metrics.event(n.reason);
            shared.with_memory(key, |m| m.last_notice = this);
        }
        Err(e) => tracing::warn!(service = %key, reason = n.reason, error = %e, "publishing an event failed"),
    }
}

/// A configuration problem: Warning event and condition, no switch.
async fn invalid_config(
    service: &Service,
    scope: &Scope,
    key: &ObjectRef<Service>,
    live: &Live,
    error: &ConfigError,
    now: Timestamp,
) -> Result<Action, Error> {
    let shared = &scope.shared;
    shared.prober.remove(key);
    let message = format!("{error}; no switch");
    if shared.is_leader() {
        let desired = Desired {
            selector: live.selector.clone(),
            active: live.requested,
            switched_at: live.switched_at_raw.clone(),
            condition: Condition::available(false, "InvalidConfig", message.clone())
                .since(live.condition.as_ref(), now),
        };
        write(service, scope, key, live, desired).await?;
        let notice = Notice { warning: true, reason: "InvalidConfig", note: message };
        notify(service, scope, key, Some(&notice)).await;
    }
    Ok(Action::requeue(shared.settings.resync))
}
