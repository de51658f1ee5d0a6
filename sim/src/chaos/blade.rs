//! ChaosBlade on the embedded cluster: the chaosblade-operator and its chaosblade-tool
//! DaemonSet in one, for the experiment hadrill uses, node network loss.
//!
//! A `ChaosBlade` (`chaosblade.io/v1alpha1`, cluster-scoped) with one experiment `scope: node`,
//! `target: network`, `action: loss` and the matchers `names` (the nodes), `percent`,
//! `interface` and `timeout` (seconds) drops `percent` % of what the nodes send, as `blade
//! create network loss` does with netem on the node's interface; at 100 % the node's kubelet
//! can no longer reach the API server, so its heartbeat stops and the node goes NotReady after
//! the node-monitor grace period. The fault is removed when `timeout` has passed (chaosblade
//! restores on the node on its own timer, with no word from the operator, so the status is
//! left as it was) and when the object is deleted (the `finalizer.chaosblade.io` finalizer is
//! held until then). Any other experiment is refused with phase `Error` and a message saying
//! what is supported: nothing is half-applied.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Shared, engine, network, status};
use crate::api::resources::GroupResource;
use crate::api::store::Event;

/// API group of ChaosBlade.
pub const GROUP: &str = "chaosblade.io";
/// Its resource name.
pub const PLURAL: &str = "chaosblades";
/// The operator's finalizer.
pub const FINALIZER: &str = "finalizer.chaosblade.io";

/// A node network loss, read from a ChaosBlade's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLoss {
    /// Nodes (`names` matcher).
    pub nodes: BTreeSet<String>,
    /// Share of packets dropped (`percent`, 0–100).
    pub percent: f64,
    /// How long until chaosblade restores the node on its own (`timeout`).
    pub timeout: Option<Duration>,
}

/// Reads the one experiment of `spec`; the error names the field.
pub fn node_loss(spec: &Value) -> Result<NodeLoss, String> {
    let exps = spec["experiments"].as_array().ok_or("spec.experiments: expected a list")?;
    let [exp] = exps.as_slice() else {
        return Err(format!("spec.experiments: expected one experiment, found {}", exps.len()));
    };
    let what = (exp["scope"].as_str(), exp["target"].as_str(), exp["action"].as_str());
    if what != (Some("node"), Some("network"), Some("loss")) {
        return Err(format!(
            "spec.experiments[0]: the embedded cluster runs scope node, target network, action loss; found {:?}/{:?}/{:?}",
            exp["scope"], exp["target"], exp["action"]
        ));
    }
    let mut nodes = BTreeSet::new();
    let mut percent = None;
    let mut timeout = None;
    for (i, m) in exp["matchers"].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.experiments[0].matchers[{i}]");
        let values: Vec<&str> = m["value"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let one = || -> Result<&str, String> {
            match values.as_slice() {
                [v] => Ok(*v),
                _ => Err(format!("{at}.value: expected one value, found {}", values.len())),
            }
        };
        match m["name"].as_str().unwrap_or_default() {
            "names" => nodes.extend(values.iter().map(|s| s.to_string())),
            "percent" => {
                let v = one()?;
                let p: f64 = v.parse().map_err(|_| format!("{at}.value: {v:?} is not a number"))?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(format!("{at}.value: {v} is not within 0..100"));
                }
                percent = Some(p);
            }
            "timeout" => {
                let v = one()?;
                let s: u64 = v.parse().map_err(|_| format!("{at}.value: {v:?} is not a whole number of seconds"))?;
                timeout = Some(Duration::from_secs(s));
            }
            // The node's one interface carries everything here.
            "interface" => {
                one()?;
            }
            other => return Err(format!("{at}.name: {other:?} is not supported by the embedded cluster")),
        }
    }
    if nodes.is_empty() {
        return Err("spec.experiments[0].matchers: a names matcher with the nodes is required".into());
    }
    let percent = percent.ok_or("spec.experiments[0].matchers: a percent matcher is required")?;
    Ok(NodeLoss { nodes, percent, timeout })
}

/// What the engine remembers about an object (by uid).
#[derive(Debug, Default)]
struct Memory {
    name: String,
    injected: bool,
    /// Applied once (or refused): never again for the same uid.
    done: bool,
    /// When chaosblade's timer restores the node: `timeout` after the apply, as `blade create
    /// --timeout` counts on the node.
    ends: Option<SystemTime>,
}

/// Runs until the event channel closes.
pub(crate) async fn run(shared: Arc<Shared>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    let mut memory: HashMap<String, Memory> = HashMap::new();
    let mut queue: BTreeSet<String> = BTreeSet::new();
    if let Ok(rt) = shared.api.resource(GROUP, "v1alpha1", PLURAL)
        && let Ok(list) = shared.api.list(&rt, None, &Default::default())
    {
        queue.extend(list.items.iter().filter_map(|o| o["metadata"]["name"].as_str().map(String::from)));
    }
    let mut wakeups: HashMap<String, Instant> = HashMap::new();
    loop {
        for name in std::mem::take(&mut queue) {
            match reconcile(&shared, &mut memory, &name).await {
                Some(at) => wakeups.insert(name, at),
                None => wakeups.remove(&name),
            };
        }
        let next = wakeups.values().min().copied();
        let wait = async {
            match next {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.recv() => {
                let Some((gr, ev)) = ev else { return };
                let mut take = |gr: &GroupResource, ev: &Event| {
                    if gr.group == GROUP && gr.resource == PLURAL
                        && let Some(n) = ev.object["metadata"]["name"].as_str()
                    {
                        queue.insert(n.to_string());
                    }
                };
                take(&gr, &ev);
                while let Ok((gr, ev)) = events.try_recv() {
                    take(&gr, &ev);
                }
            }
            () = wait => {
                let now = Instant::now();
                let due: Vec<String> = wakeups.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
                for k in due {
                    wakeups.remove(&k);
                    queue.insert(k);
                }
            }
        }
    }
}

/// One pass over the ChaosBlade `name`; answers when to look again.
async fn reconcile(shared: &Shared, memory: &mut HashMap<String, Memory>, name: &str) -> Option<Instant> {
    let api = &shared.api;
    let rt = api.resource(GROUP, "v1alpha1", PLURAL).ok()?;
    let obj = match api.get(&rt, "", name) {
        Ok(o) => o,
        Err(e) if e.code == 404 => {
            // Gone without the finalizer pass (forced removal): undo what is still in place.
            let gone: Vec<String> = memory.iter().filter(|(_, m)| m.name == name).map(|(u, _)| u.clone()).collect();
            for uid in gone {
                release(shared, memory, &uid).await;
            }
            return None;
        }
        Err(e) => {
            tracing::warn!(chaosblade = name, error = %e, "chaosblade engine cannot read the object");
            return Some(Instant::now() + Duration::from_secs(1));
        }
    };
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let object = format!("ChaosBlade/{name}");
    let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
    if deleting {
        release(shared, memory, &uid).await;
        let _ = status::write_subresource(api, &rt, name, &uid, &phase(&obj, "Destroyed", None));
        if let Err(e) = status::set_named_finalizer(api, &rt, "", name, &uid, FINALIZER, false) {
            tracing::warn!(chaosblade = name, error = %e, "chaosblade engine cannot drop its finalizer");
            return Some(Instant::now() + Duration::from_secs(1));
        }
        return None;
    }
    let has_finalizer = obj["metadata"]["finalizers"].as_array().is_some_and(|l| l.iter().any(|f| f == FINALIZER));
    if !has_finalizer && let Err(e) = status::set_named_finalizer(api, &rt, "", name, &uid, FINALIZER, true) {
        tracing::warn!(chaosblade = name, error = %e, "chaosblade engine cannot add its finalizer");
        return Some(Instant::now() + Duration::from_secs(1));
    }
    let spec = node_loss(&obj["spec"]);
    let mem = memory.entry(uid.clone()).or_insert_with(|| Memory {
        name: name.to_string(),
        // Seen first after an engine restart: count from the creation, the earliest apply.
        ends: spec.as_ref().ok().and_then(|s| s.timeout).map(|t| engine::creation(&obj) + t),
        ..Memory::default()
    });
    if mem.ends.is_some_and(|end| SystemTime::now() >= end) {
        // chaosblade's own timer on the node: restore, whatever the operator knows.
        if mem.injected {
            network::recover(shared, &uid).await.ok();
            mem.injected = false;
            tracing::info!(chaosblade = name, "chaosblade timeout: node network restored");
        }
        mem.done = true;
        return None;
    }
    if !mem.done {
        mem.done = true;
        let timeout = spec.as_ref().ok().and_then(|s| s.timeout);
        let result = spec.and_then(|s| network::inject_node_loss(shared, &object, &uid, &s.nodes, s.percent));
        let st = match &result {
            Ok(()) => {
                mem.injected = true;
                mem.ends = timeout.map(|t| SystemTime::now() + t);
                phase(&obj, "Running", None)
            }
            Err(e) => phase(&obj, "Error", Some(e)),
        };
        if let Err(e) = status::write_subresource(api, &rt, name, &uid, &st) {
            tracing::warn!(chaosblade = name, error = %e, "chaosblade engine cannot write the status");
        }
    }
    mem.ends.map(|end| {
        Instant::now() + end.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(5)
    })
}

/// Removes the fault of `uid` (if any) and forgets it.
async fn release(shared: &Shared, memory: &mut HashMap<String, Memory>, uid: &str) {
    if memory.remove(uid).is_some_and(|m| m.injected)
        && let Err(e) = network::recover(shared, uid).await
    {
        tracing::warn!(uid, error = %e, "chaosblade engine cannot restore the node network");
    }
}

/// The operator's status for `obj` in `phase`, one expStatus per experiment.
fn phase(obj: &Value, phase: &str, error: Option<&str>) -> Value {
    let ok = error.is_none();
    let state = if ok { "Success" } else { "Error" };
    let exps: Vec<Value> = obj["spec"]["experiments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut st = json!({
                "scope": e["scope"], "target": e["target"], "action": e["action"],
                "state": state, "success": ok,
            });
            if let Some(err) = error {
                st["error"] = json!(err);
            }
            st
        })
        .collect();
    json!({"phase": phase, "expStatuses": exps})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_node_network_loss_and_names_the_bad_field() {
        let spec = json!({"experiments": [{"scope": "node", "target": "network", "action": "loss", "matchers": [
            {"name": "names", "value": ["n1"]}, {"name": "percent", "value": ["100"]},
            {"name": "interface", "value": ["eth0"]}, {"name": "timeout", "value": ["60"]}]}]});
        let l = node_loss(&spec).unwrap();
        assert_eq!(l.nodes.into_iter().collect::<Vec<_>>(), vec!["n1".to_string()]);
        assert_eq!((l.percent, l.timeout), (100.0, Some(Duration::from_secs(60))));

        let mut bad = spec.clone();
        bad["experiments"][0]["matchers"][1]["value"] = json!(["150"]);
        assert_eq!(node_loss(&bad).unwrap_err(), "spec.experiments[0].matchers[1].value: 150 is not within 0..100");
        let mut cpu = spec;
        cpu["experiments"][0]["target"] = json!("cpu");
        assert!(node_loss(&cpu).unwrap_err().contains("scope node, target network, action loss"));
    }
}
