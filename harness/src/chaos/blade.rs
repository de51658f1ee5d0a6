//! ChaosBlade node network loss: the rules hadrill holds it to before it is created, and
//! its injection (the ledger, the create, the wait for the operator's `Running`).
//!
//! The one node fault hadrill runs is `scope: node`, `target: network`, `action: loss` with
//! the matchers `names` (the nodes), `percent` (integer 1–100), `interface` (one name, e.g.
//! `eth0`) and `timeout` (whole seconds, required: with the node cut off, the operator cannot
//! reach the node to destroy the experiment, so chaosblade's own timer on the node is what
//! restores it). Other matchers (ports, IPs, `exclude-*`) are refused, so a scenario means the
//! same on the embedded cluster, whose engine runs exactly these.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;

use super::ledger::{CleanupOptions, ObjectRef, RUN_LABEL, SCENARIO_LABEL};
use super::lifecycle::{InjectOptions, Injection, Run, Timeline};
use super::model::{BLADE_API_VERSION, ChaosBlade, ChaosBladeStatus};
use super::validate::{Report, Validate, ValidateOptions, dns_subdomain, subject_of};
use super::{ChaosKind, ChaosResource};

/// The matchers hadrill's node network loss uses.
pub const MATCHERS: [&str; 4] = ["names", "percent", "interface", "timeout"];

impl Validate for ChaosBlade {
    fn subject(&self) -> String {
        subject_of("ChaosBlade", &self.metadata)
    }

    fn report(&self, _options: &ValidateOptions) -> Report {
        let mut r = Report::default();
        match &self.metadata.name {
            Some(name) => r.check("metadata.name", dns_subdomain(name)),
            None => r.err("metadata.name", "required field is missing"),
        }
        if self.metadata.namespace.is_some() {
            r.err("metadata.namespace", "must not be set: ChaosBlade is cluster-scoped");
        }
        if self.status.is_some() {
            r.err("status", "must not be set: the operator writes status");
        }
        let [exp] = self.spec.experiments.as_slice() else {
            r.err(
                "spec.experiments",
                format!("expected exactly one experiment (the node network loss), got {}", self.spec.experiments.len()),
            );
            return r;
        };
        let at = "spec.experiments[0]";
        for (field, got, want) in
            [("scope", &exp.scope, "node"), ("target", &exp.target, "network"), ("action", &exp.action, "loss")]
        {
            if got != want {
                r.err(
                    format!("{at}.{field}"),
                    format!("expected `{want}` (hadrill runs node network loss), got `{got}`"),
                );
            }
        }
        for (i, m) in exp.matchers.iter().enumerate() {
            let path = format!("{at}.matchers[{i}]");
            let one = |r: &mut Report| -> Option<String> {
                match m.value.as_slice() {
                    [v] => Some(v.clone()),
                    vs => {
                        r.err(
                            format!("{path}.value"),
                            format!("expected one value for `{}`, got {}", m.name, vs.len()),
                        );
                        None
                    }
                }
            };
            match m.name.as_str() {
                "names" => {
                    if m.value.is_empty() {
                        r.err(format!("{path}.value"), "expected at least one node name");
                    }
                    for (j, n) in m.value.iter().enumerate() {
                        r.check(&format!("{path}.value[{j}]"), dns_subdomain(n));
                    }
                }
                "percent" => {
                    if let Some(v) = one(&mut r) {
                        match v.parse::<u8>() {
                            Ok(p) if (1..=100).contains(&p) => {}
                            _ => {
                                r.err(format!("{path}.value"), format!("expected an integer from 1 to 100, got `{v}`"))
                            }
                        }
                    }
                }
                "interface" => {
                    if let Some(v) = one(&mut r)
                        && (v.is_empty() || v.len() > 15 || v.contains(['/', ' ']))
                    {
                        r.err(
                            format!("{path}.value"),
                            format!("expected a network interface name such as eth0, got `{v}`"),
                        );
                    }
                }
                "timeout" => {
                    if let Some(v) = one(&mut r) {
                        match v.parse::<u32>() {
                            Ok(s) if s > 0 => {}
                            _ => r.err(
                                format!("{path}.value"),
                                format!("expected whole seconds greater than 0, got `{v}`"),
                            ),
                        }
                    }
                }
                other => r.err(
                    format!("{path}.name"),
                    format!("`{other}` is not supported by hadrill; expected one of {}", MATCHERS.join(", ")),
                ),
            }
        }
        for required in MATCHERS {
            if !exp.matchers.iter().any(|m| m.name == required) {
                let why = match required {
                    "timeout" => " (the node restores itself on this timer: the operator cannot reach a cut-off node)",
                    _ => "",
                };
                r.err(format!("{at}.matchers"), format!("a `{required}` matcher is required{why}"));
            }
        }
        r
    }
}

/// Injects `blade` for `run`: validate, check its nodes exist (their pods, every namespace, are
/// the injection's targets: all of them lose their network), record it in the ledger, create
/// it (labelled with the run and scenario) and wait until the operator reports it `Running`
/// with every experiment successful. When it does not get there, the object is removed again
/// before the error returns.
pub(super) async fn inject(run: &Run, blade: &ChaosBlade, options: &InjectOptions) -> anyhow::Result<Injection> {
    let subject = blade.subject();
    blade.validate(&ValidateOptions::default())?;
    let nodes: Api<Node> = Api::all(run.client().clone());
    let pods: Api<Pod> = Api::all(run.client().clone());
    let mut targets = Vec::new();
    for name in blade.nodes() {
        if nodes.get_opt(&name).await.with_context(|| format!("{subject}: reading node {name}"))?.is_none() {
            bail!("{subject}: node {name} does not exist");
        }
        let on_node = ListParams::default().fields(&format!("spec.nodeName={name}"));
        let listed = pods.list(&on_node).await.with_context(|| format!("{subject}: listing the pods on {name}"))?;
        targets.extend(listed.items);
    }
    let mut labelled = blade.clone();
    let labels = labelled.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(RUN_LABEL.into(), run.id().to_string());
    if let Some(s) = &options.scenario {
        labels.insert(SCENARIO_LABEL.into(), s.clone());
    }
    let object = ObjectRef {
        api_version: BLADE_API_VERSION.into(),
        kind: ChaosKind::ChaosBlade.as_str().into(),
        namespace: None,
        name: blade.metadata.name.clone().unwrap_or_default(),
    };
    let scenario = options.scenario.as_deref();
    let targets_ready = SystemTime::now();
    run.ledger().record_creating(&object, scenario)?;
    let api: Api<ChaosBlade> = Api::all(run.client().clone());
    let created = match api.create(&PostParams::default(), &labelled).await {
        Ok(c) => c,
        Err(e) => {
            // A 409 is another object's name; anything else may or may not have landed.
            let ours = |o: &ChaosBlade| {
                o.metadata.labels.as_ref().and_then(|l| l.get(RUN_LABEL)) == Some(&run.id().to_string())
            };
            if let Ok(found) = api.get_opt(&object.name).await
                && !found.as_ref().is_some_and(ours)
            {
                run.ledger().record_removed(&object)?;
            }
            bail!("creating {subject}: {e}");
        }
    };
    let created_at = SystemTime::now();
    let uid = created.metadata.uid.clone().unwrap_or_default();
    run.ledger().record_created(&object, &uid, scenario)?;
    match await_running(&api, &object.name, &uid, options.injected_timeout).await {
        Ok(()) => {
            let timeline =
                Timeline { targets_ready, created: created_at, injected: SystemTime::now(), recovered: None };
            let client = run.client().clone();
            let resource = ChaosResource::Blade(created);
            Ok(Injection::assembled(object, uid, resource, targets, timeline, client, run.ledger().clone()))
        }
        Err(e) => {
            let outcome =
                super::ledger::remove(run.client(), &object, Some(&uid), None, &CleanupOptions::default()).await;
            if outcome.is_gone() {
                run.ledger().record_removed(&object)?;
            }
            Err(e.context(format!("{subject}: injection failed; the object was removed ({outcome})")))
        }
    }
}

/// Watches the ChaosBlade until its status says every experiment is in place.
async fn await_running(api: &Api<ChaosBlade>, name: &str, uid: &str, timeout: Duration) -> anyhow::Result<()> {
    let last: Arc<Mutex<Option<ChaosBladeStatus>>> = Arc::default();
    let seen = last.clone();
    let uid_owned = uid.to_string();
    let cond = move |obj: Option<&ChaosBlade>| match obj {
        Some(o) if o.metadata.uid.as_deref() == Some(uid_owned.as_str()) => {
            if let Ok(mut l) = seen.lock() {
                l.clone_from(&o.status);
            }
            o.injected() != Ok(false)
        }
        _ => true,
    };
    let describe = || format!("{:?}", last.lock().ok().and_then(|l| l.clone()));
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Err(_) => bail!("ChaosBlade {name}: not Running after {timeout:?}; last status seen: {}", describe()),
        Ok(Err(e)) => bail!("ChaosBlade {name}: watching for injection: {e}"),
        Ok(Ok(Some(o))) if o.metadata.uid.as_deref() == Some(uid) => match o.injected() {
            Ok(true) => Ok(()),
            Ok(false) => bail!("ChaosBlade {name}: not Running; status {:?}", o.status),
            Err(why) => bail!("ChaosBlade {name}: the operator refused it: {why}"),
        },
        Ok(Ok(_)) => bail!("ChaosBlade {name}: deleted before it was injected; last status seen: {}", describe()),
    }
}

/// `Recovery::Duration` of a ChaosBlade node fault: chaosblade restores the nodes on its own
/// timer (the `timeout` matcher, counted from the create) and the operator's status never says
/// so (its phase stays `Running`), so recovery is what the cluster shows: the timer has run out
/// and every node of the fault is `Ready` again (by watch). Returns when that was seen; fails
/// naming the nodes still not Ready after `limit` (counted from now).
pub(super) async fn await_timeout_recovery(
    client: &kube::Client,
    blade: &ChaosBlade,
    created: SystemTime,
    limit: Duration,
) -> anyhow::Result<SystemTime> {
    let subject = blade.subject();
    let Some(lasts) = ChaosResource::Blade(blade.clone()).lasts() else {
        bail!("{subject}: no `timeout` matcher, so the fault lasts until deleted; recover it by delete");
    };
    let give_up = tokio::time::Instant::now() + limit;
    let ends = created + lasts;
    // Nothing in the cluster announces chaosblade's timer: its end is a point in time.
    if let Ok(left) = ends.duration_since(SystemTime::now()) {
        if tokio::time::Instant::now() + left > give_up {
            bail!("{subject}: its timeout ends {left:.0?} from now, after the {limit:?} allowed for recovery");
        }
        tokio::time::sleep(left).await;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for name in blade.nodes() {
        let ready = |o: Option<&Node>| o.is_some_and(crate::probes::conditions::node_ready);
        match tokio::time::timeout_at(give_up, await_condition(nodes.clone(), &name, ready)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("{subject}: watching node {name}: {e}"),
            Err(_) => bail!(
                "{subject}: node {name} is not Ready {limit:?} after recovery began (its {lasts:?} timeout \
                 passed at {}); chaosblade did not restore it",
                jiff_time(ends)
            ),
        }
    }
    Ok(SystemTime::now())
}

fn jiff_time(t: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(t).map(|t| t.to_string()).unwrap_or_else(|_| format!("{t:?}"))
}
