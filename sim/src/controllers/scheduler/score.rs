//! Scoring of feasible nodes, after kube-scheduler's default score plugins and weights:
//! TaintToleration (3, fewer untolerated PreferNoSchedule taints), NodeAffinity (2, preferred
//! terms), PodTopologySpread (2, the system default constraints: spread over hostnames and
//! zones among pods of the same Service / ReplicaSet / StatefulSet), NodeResourcesFit (1,
//! LeastAllocated) and NodeResourcesBalancedAllocation (1). Ties go to the node with fewer
//! pods, then to the smaller name, so placement is deterministic.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::filter::{Cluster, NodeUsage};
use super::model::{NodeInfo, PodInfo, Resources, tolerated};
use crate::api::selectors::LabelSelector;

const MAX_SCORE: i64 = 100;
const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// Picks the best of `feasible` (non-empty) for `pod`. `spread` are the selectors of the
/// Services and workload controllers that select the pod.
pub fn select(
    cluster: &Cluster,
    pod: &PodInfo,
    feasible: &[String],
    usage: &HashMap<&str, NodeUsage>,
    spread: &[LabelSelector],
) -> Option<String> {
    let nodes: Vec<&NodeInfo> = feasible.iter().filter_map(|n| cluster.nodes.get(n)).collect();
    if nodes.len() <= 1 {
        return nodes.first().map(|n| n.name.clone());
    }
    let empty = NodeUsage::default();
    let usage_of = |n: &NodeInfo| usage.get(n.name.as_str()).unwrap_or(&empty);

    let taint_raw: Vec<i64> = nodes
        .iter()
        .map(|n| {
            n.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&pod.tolerations, t)).count() as i64
        })
        .collect();
    let taint = normalize(&taint_raw, true);

    let affinity_raw: Vec<i64> = nodes
        .iter()
        .map(|n| pod.preferred_node_terms.iter().filter(|(_, t)| t.matches(&n.name, &n.labels)).map(|(w, _)| *w).sum())
        .collect();
    let affinity = normalize(&affinity_raw, false);

    let spreading = topology_spread(cluster, pod, &nodes, spread);

    let mut best: Option<(i64, usize, &str)> = None;
    for (i, n) in nodes.iter().enumerate() {
        let u = usage_of(n);
        let fit = least_allocated(n.allocatable, u.non_zero, pod.non_zero);
        let balanced = balanced(n.allocatable, u.requested, pod.requests);
        let total = 3 * taint[i] + 2 * affinity[i] + 2 * spreading[i] + fit + balanced;
        let better = match best {
            None => true,
            Some((score, pods, name)) => {
                (total, std::cmp::Reverse(u.pods), std::cmp::Reverse(n.name.as_str()))
                    > (score, std::cmp::Reverse(pods), std::cmp::Reverse(name))
            }
        };
        if better {
            best = Some((total, u.pods, &n.name));
        }
    }
    best.map(|(_, _, name)| name.to_string())
}

/// Scales raw scores to 0..=100 by the largest; `reverse` makes smaller raw scores better.
fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|r| {
            if max == 0 {
                if reverse { MAX_SCORE } else { 0 }
            } else if reverse {
                MAX_SCORE - r * MAX_SCORE / max
            } else {
                r * MAX_SCORE / max
            }
        })
        .collect()
}

/// LeastAllocated: the mean free fraction of CPU and memory after placing the pod.
fn least_allocated(alloc: Option<Resources>, used: Resources, pod: Resources) -> i64 {
    let Some(alloc) = alloc else { return 0 };
    let one = |cap: i128, req: i128| {
        if cap <= 0 || req > cap { 0 } else { ((cap - req) * MAX_SCORE as i128 / cap) as i64 }
    };
    (one(alloc.cpu, used.cpu + pod.cpu) + one(alloc.memory, used.memory + pod.memory)) / 2
}

/// BalancedAllocation: how close the CPU and memory fractions are after placing the pod.
fn balanced(alloc: Option<Resources>, used: Resources, pod: Resources) -> i64 {
    let Some(alloc) = alloc else { return 0 };
    let frac = |cap: i128, req: i128| if cap <= 0 { 1.0 } else { (req as f64 / cap as f64).min(1.0) };
    let cpu = frac(alloc.cpu, used.cpu + pod.cpu);
    let mem = frac(alloc.memory, used.memory + pod.memory);
    ((1.0 - (cpu - mem).abs() / 2.0) * MAX_SCORE as f64) as i64
}

/// PodTopologySpread with the system default constraints (hostname maxSkew 3, zone maxSkew 5,
/// ScheduleAnyway): fewer matching pods in the node's domains scores higher.
fn topology_spread(cluster: &Cluster, pod: &PodInfo, nodes: &[&NodeInfo], spread: &[LabelSelector]) -> Vec<i64> {
    if spread.is_empty() {
        return vec![MAX_SCORE; nodes.len()];
    }
    let mut per_domain: HashMap<(&str, String), i64> = HashMap::new();
    for p in cluster.pods.values() {
        if p.namespace != pod.namespace || !spread.iter().all(|s| s.matches(Some(&p.labels))) {
            continue;
        }
        let Some(node) = p.node.as_ref().and_then(|n| cluster.nodes.get(n)) else { continue };
        for key in [HOSTNAME, ZONE] {
            if let Some(v) = node.labels.get(key).and_then(Value::as_str) {
                *per_domain.entry((key, v.to_string())).or_default() += 1;
            }
        }
    }
    let constraints = [(HOSTNAME, 3i64), (ZONE, 5i64)];
    let weights: Vec<f64> = constraints
        .iter()
        .map(|(key, _)| {
            let domains: BTreeSet<&str> =
                nodes.iter().filter_map(|n| n.labels.get(*key).and_then(Value::as_str)).collect();
            ((domains.len() + 2) as f64).ln()
        })
        .collect();
    let raw: Vec<i64> = nodes
        .iter()
        .map(|n| {
            let mut s = 0.0;
            for ((key, max_skew), w) in constraints.iter().zip(&weights) {
                if let Some(v) = n.labels.get(*key).and_then(Value::as_str) {
                    let cnt = per_domain.get(&(*key, v.to_string())).copied().unwrap_or(0);
                    s += cnt as f64 * w + (max_skew - 1) as f64;
                }
            }
            s.round() as i64
        })
        .collect();
    let (min, max) = (raw.iter().copied().min().unwrap_or(0), raw.iter().copied().max().unwrap_or(0));
    raw.iter().map(|s| if max == 0 { MAX_SCORE } else { MAX_SCORE * (max + min - s) / max }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> NodeInfo {
        NodeInfo::parse(&json!({"metadata": {"name": name, "labels": {HOSTNAME: name, ZONE: "a"}}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "4", "memory": "8Gi"}}}))
    }

    fn pod(name: &str, node: Option<&str>) -> PodInfo {
        PodInfo::parse(&json!({"metadata": {"namespace": "default", "name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]}}))
    }

    #[test]
    fn spreads_to_the_emptiest_node_and_breaks_ties_by_name() {
        let mut c = Cluster::default();
        for n in ["n1", "n2", "n3"] {
            c.nodes.insert(n.into(), node(n));
        }
        let feasible: Vec<String> = c.nodes.keys().cloned().collect();
        let usage = c.usage();
        assert_eq!(select(&c, &pod("p", None), &feasible, &usage, &[]).as_deref(), Some("n1"));
        for (i, n) in ["n1", "n1", "n2"].iter().enumerate() {
            let p = pod(&format!("w{i}"), Some(n));
            c.pods.insert(("default".into(), p.name.clone()), p);
        }
        let usage = c.usage();
        assert_eq!(select(&c, &pod("p", None), &feasible, &usage, &[]).as_deref(), Some("n3"));
        let sel = LabelSelector::from_json(&json!({"matchLabels": {"app": "web"}})).unwrap();
        assert_eq!(select(&c, &pod("p", None), &feasible, &usage, &[sel]).as_deref(), Some("n3"));
    }

    #[test]
    fn prefers_tolerated_and_preferred_nodes() {
        let mut c = Cluster::default();
        let mut tainted = node("n1");
        tainted.taints.push(super::super::model::Taint {
            key: "x".into(),
            value: String::new(),
            effect: "PreferNoSchedule".into(),
        });
        c.nodes.insert("n1".into(), tainted);
        c.nodes.insert("n2".into(), node("n2"));
        let feasible: Vec<String> = c.nodes.keys().cloned().collect();
        let usage = c.usage();
        assert_eq!(select(&c, &pod("p", None), &feasible, &usage, &[]).as_deref(), Some("n2"));
        c.nodes.insert("n1".into(), node("n1"));
        let usage = c.usage();
        let preferring = PodInfo::parse(
            &json!({"metadata": {"namespace": "default", "name": "p"}, "spec": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {"matchExpressions": [
                {"key": HOSTNAME, "operator": "In", "values": ["n2"]}]}}]}}}}),
        );
        assert_eq!(select(&c, &preferring, &feasible, &usage, &[]).as_deref(), Some("n2"));
    }
}
