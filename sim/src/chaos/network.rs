//! NetworkChaos on the embedded cluster.
//!
//! - `loss` and `partition`: DROP rules in an iptables chain of the fault's own ([`super::iptables`]).
//!   `direction: to` drops what the selected pods send (to the `target` pods and
//!   `externalTargets`, or to anyone when neither is given); `from` drops what the targets send
//!   to the selected pods (anyone, without targets); `both` is both. `loss` drops each packet
//!   with probability `loss.loss`/100, `partition` all of them. Chaos Mesh applies these on the
//!   pods' interfaces; here every pod shares `lo`, so the rules match pod addresses.
//! - `delay`: the service proxy delays what the affected pods send through Service ClusterIPs
//!   ([`crate::network::faults`]); direct pod-to-pod connections are not delayed.
//! - Node-level ([`inject_node_loss`], for ChaosBlade's node network loss, [`super::blade`]):
//!   what every pod on the nodes (any namespace) and the node address send is dropped, and at
//!   100 % the nodes stop heartbeating (Lease and status), so the node lifecycle controller
//!   marks them NotReady after its grace period. NetworkChaos stays pod-level, as in Chaos Mesh.
//! - `netem`, `duplicate`, `corrupt` and `bandwidth` need netem, which these machines lack:
//!   they fail with an event saying so.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Mutex;

use serde_json::Value;

use super::iptables::Iptables;
use super::status::Record;
use super::{InjectionInfo, Shared, spec};
use crate::api::ops::ListOptions;
use crate::kubelet::NodeHandle;
use crate::network::faults::{DelayRule, Faults};

/// What one fault holds.
#[derive(Debug, Clone)]
struct Live {
    object: String,
    chain: Option<String>,
    nodes: Vec<String>,
}

/// The engine's network side: iptables, the proxy's fault table and stopped heartbeats.
#[derive(Debug)]
pub struct Network {
    iptables: Iptables,
    faults: Faults,
    live: Mutex<HashMap<String, Live>>,
    /// Nodes whose heartbeat the engine ever stopped.
    stopped: Mutex<BTreeSet<String>>,
}

impl Network {
    /// The backend (`iptables` false turns iptables off) and the proxy's fault table.
    pub fn new(iptables: bool, faults: Faults) -> Self {
        Self { iptables: Iptables::new(iptables), faults, live: Mutex::default(), stopped: Mutex::default() }
    }

    /// The iptables backend.
    pub fn iptables(&self) -> &Iptables {
        &self.iptables
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The faults in place.
    pub fn injections(&self) -> Vec<InjectionInfo> {
        self.live()
            .values()
            .map(|l| InjectionInfo {
                object: l.object.clone(),
                chain: l.chain.clone(),
                workers: Vec::new(),
                nodes: l.nodes.clone(),
            })
            .collect()
    }

    /// Nodes whose heartbeat the engine stopped and that are still off, and the number of
    /// delay rules in place. `nodes` are the node handles.
    pub fn held_with(&self, nodes: &[NodeHandle]) -> (Vec<String>, usize) {
        let stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let off = nodes
            .iter()
            .filter(|n| stopped.contains(n.name()) && !n.heartbeat())
            .map(|n| n.name().to_string())
            .collect();
        (off, self.faults.len())
    }

    /// Undoes the fault of `uid`, if any (best effort).
    pub fn remove(&self, uid: &str, nodes: &[NodeHandle]) {
        let Some(live) = self.live().remove(uid) else {
            self.faults.remove(uid);
            return;
        };
        if let Some(chain) = &live.chain
            && let Err(e) = self.iptables.remove(chain)
        {
            tracing::warn!(chain, error = %e, "could not remove a chaos iptables chain");
        }
        self.faults.remove(uid);
        self.resume_heartbeats(&live.nodes, nodes);
    }

    /// Undoes every fault (shutdown).
    pub fn clear_all(&self, nodes: &[NodeHandle]) {
        let uids: Vec<String> = self.live().keys().cloned().collect();
        for uid in uids {
            self.remove(&uid, nodes);
        }
        self.iptables.remove_all();
    }

    /// Turns heartbeats back on for `released` nodes no other fault still holds.
    fn resume_heartbeats(&self, released: &[String], nodes: &[NodeHandle]) {
        let held: BTreeSet<String> = self.live().values().flat_map(|l| l.nodes.clone()).collect();
        for name in released.iter().filter(|n| !held.contains(*n)) {
            if let Some(n) = nodes.iter().find(|h| h.name() == name) {
                n.set_heartbeat(true);
            }
        }
    }
}

/// Puts the fault of `obj` in place (all of it or nothing).
pub(crate) async fn inject(
    shared: &Shared,
    object: &str,
    uid: &str,
    obj: &Value,
    records: &[Record],
) -> Result<(), String> {
    if shared.network.live().contains_key(uid) {
        return Ok(());
    }
    let plan = plan(shared, obj, records)?;
    put_in_place(shared, object, uid, plan)
}

/// Drops `percent` % of what the pods on `nodes` and the nodes themselves send; at 100 % the
/// nodes' heartbeats stop too (the kubelet cannot reach the API server). Removed with
/// [`recover`] under the same `uid`.
pub(crate) fn inject_node_loss(
    shared: &Shared,
    object: &str,
    uid: &str,
    nodes: &BTreeSet<String>,
    percent: f64,
) -> Result<(), String> {
    if shared.network.live().contains_key(uid) {
        return Ok(());
    }
    let mut sources = node_ips(shared, nodes)?;
    sources.sort();
    sources.dedup();
    let mut plan = Plan::default();
    if percent > 0.0 {
        plan.rules = drop_rules(&[(sources, None)], Some(percent / 100.0));
    }
    if percent >= 100.0 {
        plan.nodes = nodes.iter().cloned().collect();
    }
    put_in_place(shared, object, uid, plan)
}

/// Installs `plan` as the fault `uid` (all of it or nothing).
fn put_in_place(shared: &Shared, object: &str, uid: &str, plan: Plan) -> Result<(), String> {
    let net = &shared.network;
    let chain = if plan.rules.is_empty() {
        None
    } else {
        let chain = net.iptables.new_chain();
        net.iptables.install(&chain, &plan.rules).map_err(|e| format!("{e} (the fault is not in place)"))?;
        Some(chain)
    };
    if !plan.delays.is_empty() {
        net.faults.set(uid, plan.delays);
    }
    for name in &plan.nodes {
        match shared.nodes.iter().find(|n| n.name() == name) {
            Some(n) => n.set_heartbeat(false),
            None => tracing::warn!(node = %name, "node-level network chaos: the node has no embedded kubelet"),
        }
        net.stopped.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone());
    }
    net.live().insert(uid.to_string(), Live { object: object.to_string(), chain, nodes: plan.nodes });
    Ok(())
}

/// Removes the fault of `uid`.
pub(crate) async fn recover(shared: &Shared, uid: &str) -> Result<(), String> {
    let net = &shared.network;
    let Some(live) = net.live().get(uid).cloned() else {
        net.faults.remove(uid);
        return Ok(());
    };
    if let Some(chain) = &live.chain {
        net.iptables.remove(chain)?;
    }
    net.faults.remove(uid);
    net.live().remove(uid);
    net.resume_heartbeats(&live.nodes, &shared.nodes);
    Ok(())
}

/// What a fault puts in place.
#[derive(Debug, Default)]
struct Plan {
    rules: Vec<Vec<String>>,
    delays: Vec<DelayRule>,
    nodes: Vec<String>,
}

fn plan(shared: &Shared, obj: &Value, records: &[Record]) -> Result<Plan, String> {
    let spec = &obj["spec"];
    let action = spec["action"].as_str().unwrap_or_default();
    let direction = spec["direction"].as_str().unwrap_or("to");
    if !matches!(direction, "to" | "from" | "both") {
        return Err(format!("spec.direction {direction:?} is not one of to, from, both"));
    }
    let mut plan = Plan::default();
    let mut selected = pod_ips(shared, records, ".")?;
    let mut targets = pod_ips(shared, records, ".Target")?;
    for t in spec["externalTargets"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        targets.extend(resolve(t)?);
    }
    selected.sort();
    selected.dedup();
    if selected.is_empty() {
        return Err("no selected pod has an IP address".into());
    }
    let has_targets = !targets.is_empty();
    // (sources, destinations) of the affected traffic; no destinations = anyone.
    let mut flows: Vec<(Vec<String>, Option<Vec<String>>)> = Vec::new();
    if matches!(direction, "to" | "both") {
        flows.push((selected.clone(), has_targets.then(|| targets.clone())));
    }
    if matches!(direction, "from" | "both") {
        if has_targets {
            flows.push((targets.clone(), Some(selected.clone())));
        } else {
            // Everything toward the selected pods.
            flows.push((Vec::new(), Some(selected.clone())));
        }
    }
    match action {
        "partition" => plan.rules = drop_rules(&flows, None),
        "loss" => {
            let loss = percent(&spec["loss"]["loss"], "spec.loss.loss")?;
            if needs_iptables(obj) {
                plan.rules = drop_rules(&flows, Some(loss / 100.0));
            }
        }
        "delay" => {
            let latency = duration(&spec["delay"]["latency"], "spec.delay.latency")?
                .ok_or("spec.delay.latency is required for action delay")?;
            let jitter = duration(&spec["delay"]["jitter"], "spec.delay.jitter")?.unwrap_or_default();
            for (from, to) in &flows {
                let ips = |v: &[String]| -> Vec<IpAddr> {
                    v.iter().filter_map(|s| s.split('/').next()?.parse().ok()).collect()
                };
                if from.is_empty() {
                    return Err("direction from needs spec.target for delay".into());
                }
                plan.delays.push(DelayRule { from: ips(from), to: to.as_ref().map(|t| ips(t)), latency, jitter });
            }
        }
        "netem" | "duplicate" | "corrupt" | "bandwidth" => {
            return Err(format!(
                "action {action} needs the netem qdisc, which the embedded cluster's engine does not have; \
                 use loss, partition or delay"
            ));
        }
        other => return Err(format!("spec.action {other:?} is not a NetworkChaos action")),
    }
    Ok(plan)
}

/// Whether the NetworkChaos object `obj` needs iptables on the embedded cluster: `partition`
/// always, `loss` above 0 %; `delay` goes through the service proxy and needs nothing of the
/// host. Feature runs check this before any cluster starts, to skip what cannot run here.
pub fn needs_iptables(obj: &Value) -> bool {
    let spec = &obj["spec"];
    match spec["action"].as_str() {
        Some("partition") => true,
        Some("loss") => percent(&spec["loss"]["loss"], "spec.loss.loss").is_ok_and(|p| p > 0.0),
        _ => false,
    }
}

/// iptables rules dropping `flows`, each packet with `probability` (all when `None`).
fn drop_rules(flows: &[(Vec<String>, Option<Vec<String>>)], probability: Option<f64>) -> Vec<Vec<String>> {
    let tail: Vec<String> = match probability {
        Some(p) if p < 1.0 => ["-m", "statistic", "--mode", "random", "--probability"]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("{p:.6}"), "-j".into(), "DROP".into()])
            .collect(),
        _ => vec!["-j".into(), "DROP".into()],
    };
    let mut rules = Vec::new();
    for (sources, dests) in flows {
        let sources: Vec<Option<&String>> =
            if sources.is_empty() { vec![None] } else { sources.iter().map(Some).collect() };
        let dests: Vec<Option<&String>> = match dests {
            Some(d) => d.iter().map(Some).collect(),
            None => vec![None],
        };
        for s in &sources {
            for d in &dests {
                let mut rule = Vec::new();
                if let Some(s) = s {
                    rule.extend(["-s".to_string(), (*s).clone()]);
                }
                if let Some(d) = d {
                    rule.extend(["-d".to_string(), (*d).clone()]);
                }
                rule.extend(tail.iter().cloned());
                rules.push(rule);
            }
        }
    }
    rules
}

/// The addresses (as `/32` CIDRs) of the pods of the records with `selector_key`.
fn pod_ips(shared: &Shared, records: &[Record], selector_key: &str) -> Result<Vec<String>, String> {
    let rt = shared.api.resource("", "v1", "pods").map_err(|e| e.message)?;
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.selector_key == selector_key) {
        let (ns, name) = r.id.split_once('/').unwrap_or(("", &r.id));
        let name = name.split('/').next().unwrap_or(name);
        match shared.api.get(&rt, ns, name) {
            Ok(pod) => match pod["status"]["podIP"].as_str().filter(|s| !s.is_empty()) {
                Some(ip) => out.push(format!("{ip}/32")),
                None => return Err(format!("pod {ns}/{name} has no IP address yet")),
            },
            // A pod gone since selection has no traffic to cut.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(format!("reading pod {ns}/{name}: {}", e.message)),
        }
    }
    Ok(out)
}

/// The addresses of every pod on `nodes` (all namespaces) and of the nodes themselves.
fn node_ips(shared: &Shared, nodes: &BTreeSet<String>) -> Result<Vec<String>, String> {
    let rt = shared.api.resource("", "v1", "pods").map_err(|e| e.message)?;
    let list = shared.api.list(&rt, None, &ListOptions::default()).map_err(|e| e.message)?;
    let mut out: Vec<String> = list
        .items
        .iter()
        .filter(|p| p["spec"]["nodeName"].as_str().is_some_and(|n| nodes.contains(n)))
        .filter_map(|p| p["status"]["podIP"].as_str().filter(|s| !s.is_empty()).map(|ip| format!("{ip}/32")))
        .collect();
    out.extend(shared.nodes.iter().filter(|n| nodes.contains(n.name())).map(|n| format!("{}/32", n.ip())));
    Ok(out)
}

/// An external target: an IP, a CIDR or a host name (resolved now, IPv4 only).
fn resolve(target: &str) -> Result<Vec<String>, String> {
    if target.contains('/') {
        let (ip, bits) = target.split_once('/').unwrap_or((target, "32"));
        if ip.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32) {
            return Ok(vec![target.to_string()]);
        }
        return Err(format!("spec.externalTargets: {target:?} is not an IPv4 CIDR"));
    }
    if let Ok(ip) = target.parse::<std::net::Ipv4Addr>() {
        return Ok(vec![format!("{ip}/32")]);
    }
    let addrs =
        (target, 0u16).to_socket_addrs().map_err(|e| format!("spec.externalTargets: resolving {target:?}: {e}"))?;
    let v4: Vec<String> = addrs.filter(|a| a.is_ipv4()).map(|a| format!("{}/32", a.ip())).collect();
    if v4.is_empty() {
        return Err(format!("spec.externalTargets: {target:?} has no IPv4 address"));
    }
    Ok(v4)
}

fn percent(v: &Value, at: &str) -> Result<f64, String> {
    let s = v.as_str().ok_or_else(|| format!("{at} is required (a percentage string such as \"50\")"))?;
    let p: f64 = s.trim().parse().map_err(|_| format!("{at} {s:?} is not a number"))?;
    if !(0.0..=100.0).contains(&p) {
        return Err(format!("{at} {s:?} must be within 0..100"));
    }
    Ok(p)
}

fn duration(v: &Value, at: &str) -> Result<Option<std::time::Duration>, String> {
    match v.as_str().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => spec::parse_go_duration(s).map(Some).map_err(|e| format!("{at} {s:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_above_zero_and_partition_need_iptables_delay_does_not() {
        let obj = |spec: Value| serde_json::json!({"kind": "NetworkChaos", "spec": spec});
        assert!(needs_iptables(&obj(serde_json::json!({"action": "partition"}))));
        assert!(needs_iptables(&obj(serde_json::json!({"action": "loss", "loss": {"loss": "50"}}))));
        assert!(!needs_iptables(&obj(serde_json::json!({"action": "loss", "loss": {"loss": "0"}}))));
        assert!(!needs_iptables(&obj(serde_json::json!({"action": "delay", "delay": {"latency": "10ms"}}))));
    }

    #[test]
    fn rules_per_direction() {
        let sel = vec!["127.11.0.2/32".to_string()];
        let tgt = vec!["127.11.0.3/32".to_string()];
        let to = drop_rules(&[(sel.clone(), None)], None);
        assert_eq!(to, vec![vec!["-s", "127.11.0.2/32", "-j", "DROP"]]);
        let both = drop_rules(&[(sel.clone(), Some(tgt.clone())), (tgt.clone(), Some(sel.clone()))], Some(0.5));
        assert_eq!(both.len(), 2);
        assert_eq!(
            both[1],
            vec![
                "-s",
                "127.11.0.3/32",
                "-d",
                "127.11.0.2/32",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.500000",
                "-j",
                "DROP"
            ]
        );
        let from_anyone = drop_rules(&[(Vec::new(), Some(sel))], Some(1.0));
        assert_eq!(from_anyone, vec![vec!["-d", "127.11.0.2/32", "-j", "DROP"]]);
    }

    #[test]
    fn external_targets() {
        assert_eq!(resolve("10.0.0.0/8").unwrap(), vec!["10.0.0.0/8"]);
        assert_eq!(resolve("1.2.3.4").unwrap(), vec!["1.2.3.4/32"]);
        assert!(resolve("10.0.0.0/40").is_err());
        assert!(resolve("localhost").unwrap().contains(&"127.0.0.1/32".to_string()));
    }
}
