//! The filter plugins of kube-scheduler's default profile that matter on the embedded cluster,
//! in their order (a node is rejected by the first plugin that fails it), and the
//! `0/3 nodes are available: ...` message built from the rejections.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::model::{NodeInfo, PodInfo, Resources, TAINT_UNSCHEDULABLE, Taint, tolerated};

/// Bit of the NodeUnschedulable plugin in a failure set.
pub const NODE_UNSCHEDULABLE: u8 = 1;
/// Bit of the TaintToleration plugin (including the Ready condition's implied taints).
pub const TAINT_TOLERATION: u8 = 2;
/// Bit of the NodeAffinity plugin (nodeSelector + required node affinity).
pub const NODE_AFFINITY: u8 = 4;
/// Bit of the NodePorts plugin.
pub const NODE_PORTS: u8 = 8;
/// Bit of the NodeResourcesFit plugin.
pub const RESOURCES_FIT: u8 = 16;
/// Bit of the InterPodAffinity plugin.
pub const INTER_POD_AFFINITY: u8 = 32;
/// Every plugin.
pub const ALL: u8 = 63;

/// Why one node was rejected.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The plugin that rejected it.
    pub plugin: u8,
    /// The reasons (NodeResourcesFit can give several).
    pub reasons: Vec<&'static str>,
    /// `UnschedulableAndUnresolvable`: preempting pods would not help.
    pub unresolvable: bool,
}

impl Rejection {
    fn one(plugin: u8, reason: &'static str, unresolvable: bool) -> Rejection {
        Rejection { plugin, reasons: vec![reason], unresolvable }
    }
}

/// What a node already carries.
#[derive(Debug, Clone, Default)]
pub struct NodeUsage {
    /// Sum of requests of its pods.
    pub requested: Resources,
    /// Sum of requests with scoring defaults.
    pub non_zero: Resources,
    /// Number of pods.
    pub pods: usize,
    /// Host ports in use (protocol, hostIP, port).
    pub ports: Vec<(String, String, i64)>,
}

/// The scheduler's view of the cluster: nodes and the pods bound to them.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Bound, non-terminal pods by (namespace, name).
    pub pods: HashMap<(String, String), PodInfo>,
}

/// Namespace labels, for namespace selectors of affinity terms.
pub type NamespaceLabels<'a> = &'a dyn Fn(&str) -> Option<Map<String, Value>>;

impl Cluster {
    /// Usage per node.
    pub fn usage(&self) -> HashMap<&str, NodeUsage> {
        let mut usage: HashMap<&str, NodeUsage> = HashMap::new();
        for p in self.pods.values() {
            let Some(node) = p.node.as_deref() else { continue };
            let u = usage.entry(node).or_default();
            u.requested.cpu += p.requests.cpu;
            u.requested.memory += p.requests.memory;
            u.non_zero.cpu += p.non_zero.cpu;
            u.non_zero.memory += p.non_zero.memory;
            u.pods += 1;
            u.ports.extend(p.host_ports.iter().cloned());
        }
        usage
    }

    /// Runs the filters for `pod` on every node: the names of feasible nodes, and the
    /// rejection of every other node.
    pub fn filter(
        &self,
        pod: &PodInfo,
        usage: &HashMap<&str, NodeUsage>,
        ns_labels: NamespaceLabels<'_>,
    ) -> (Vec<String>, BTreeMap<String, Rejection>) {
        let affinity = AffinityState::new(self, pod, ns_labels);
        let empty = NodeUsage::default();
        let mut feasible = Vec::new();
        let mut rejected = BTreeMap::new();
        for node in self.nodes.values() {
            let u = usage.get(node.name.as_str()).unwrap_or(&empty);
            match filter_node(pod, node, u, &affinity) {
                None => feasible.push(node.name.clone()),
                Some(r) => {
                    rejected.insert(node.name.clone(), r);
                }
            }
        }
        (feasible, rejected)
    }
}

fn filter_node(pod: &PodInfo, node: &NodeInfo, usage: &NodeUsage, affinity: &AffinityState) -> Option<Rejection> {
    // NodeUnschedulable.
    let cordon = Taint { key: TAINT_UNSCHEDULABLE.into(), value: String::new(), effect: "NoSchedule".into() };
    if node.unschedulable && !tolerated(&pod.tolerations, &cordon) {
        return Some(Rejection::one(NODE_UNSCHEDULABLE, "node(s) were unschedulable", true));
    }
    // TaintToleration: NoSchedule and NoExecute taints must be tolerated.
    let untolerated = node
        .effective_taints()
        .iter()
        .any(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&pod.tolerations, t));
    if untolerated {
        return Some(Rejection::one(TAINT_TOLERATION, "node(s) had untolerated taint(s)", true));
    }
    // NodeAffinity.
    let selector_ok = pod.node_selector.iter().all(|(k, v)| node.labels.get(k).and_then(Value::as_str) == v.as_str());
    let affinity_ok =
        pod.required_node_terms.as_ref().is_none_or(|terms| terms.iter().any(|t| t.matches(&node.name, &node.labels)));
    if !selector_ok || !affinity_ok {
        return Some(Rejection::one(NODE_AFFINITY, "node(s) didn't match Pod's node affinity/selector", true));
    }
    // NodePorts.
    let conflict = pod.host_ports.iter().any(|(proto, ip, port)| {
        usage
            .ports
            .iter()
            .any(|(p2, ip2, port2)| proto == p2 && port == port2 && (ip == ip2 || ip == "0.0.0.0" || ip2 == "0.0.0.0"))
    });
    if conflict {
        return Some(Rejection::one(NODE_PORTS, "node(s) didn't have free ports for the requested pod ports", false));
    }
    // NodeResourcesFit.
    if let Some(r) = fit(pod, node, usage) {
        return Some(r);
    }
    // InterPodAffinity.
    affinity.check(pod, node)
}

fn fit(pod: &PodInfo, node: &NodeInfo, usage: &NodeUsage) -> Option<Rejection> {
    let mut reasons = Vec::new();
    let mut unresolvable = false;
    if let Some(max) = node.max_pods
        && usage.pods as i128 + 1 > max
    {
        reasons.push("Too many pods");
    }
    if let Some(alloc) = node.allocatable {
        let checks = [
            (pod.requests.cpu, alloc.cpu, usage.requested.cpu, "Insufficient cpu"),
            (pod.requests.memory, alloc.memory, usage.requested.memory, "Insufficient memory"),
        ];
        for (want, have, used, reason) in checks {
            if want > 0 && want > have - used {
                reasons.push(reason);
                unresolvable |= want > have;
            }
        }
    }
    (!reasons.is_empty()).then_some(Rejection { plugin: RESOURCES_FIT, reasons, unresolvable })
}

/// Topology domain → number of matching pods, per topology key.
type Counts = HashMap<(String, String), usize>;

/// InterPodAffinity's pre-computed state for one pod (PreFilter).
struct AffinityState {
    /// Domains where existing pods' anti-affinity forbids the incoming pod.
    existing_anti: Counts,
    /// Domains with pods matching all of the pod's affinity terms.
    affinity: Counts,
    /// Domains with pods matching each anti-affinity term.
    anti: Counts,
    /// Whether the pod matches all its own affinity terms (it may then be the first of its group).
    self_match: bool,
}

impl AffinityState {
    fn new(cluster: &Cluster, pod: &PodInfo, ns_labels: NamespaceLabels<'_>) -> AffinityState {
        let mut state = AffinityState {
            existing_anti: Counts::new(),
            affinity: Counts::new(),
            anti: Counts::new(),
            self_match: false,
        };
        let pod_ns_labels = ns_labels(&pod.namespace);
        let mut label_cache: HashMap<String, Option<Map<String, Value>>> = HashMap::new();
        let needs_ns = pod.affinity.iter().chain(&pod.anti_affinity).any(|t| t.namespace_selector.is_some());
        for existing in cluster.pods.values() {
            let Some(node) = existing.node.as_ref().and_then(|n| cluster.nodes.get(n)) else { continue };
            let domain =
                |key: &str| node.labels.get(key).and_then(Value::as_str).map(|v| (key.to_string(), v.to_string()));
            for term in &existing.anti_affinity {
                if term.matches(&existing.namespace, pod, pod_ns_labels.as_ref())
                    && let Some(d) = domain(&term.topology_key)
                {
                    *state.existing_anti.entry(d).or_default() += 1;
                }
            }
            if pod.affinity.is_empty() && pod.anti_affinity.is_empty() {
                continue;
            }
            let labels = if needs_ns {
                label_cache.entry(existing.namespace.clone()).or_insert_with(|| ns_labels(&existing.namespace)).as_ref()
            } else {
                None
            };
            if !pod.affinity.is_empty() && pod.affinity.iter().all(|t| t.matches(&pod.namespace, existing, labels)) {
                for t in &pod.affinity {
                    if let Some(d) = domain(&t.topology_key) {
                        *state.affinity.entry(d).or_default() += 1;
                    }
                }
            }
            for t in &pod.anti_affinity {
                if t.matches(&pod.namespace, existing, labels)
                    && let Some(d) = domain(&t.topology_key)
                {
                    *state.anti.entry(d).or_default() += 1;
                }
            }
        }
        state.self_match = pod.affinity.iter().all(|t| t.matches(&pod.namespace, pod, pod_ns_labels.as_ref()));
        state
    }

    fn check(&self, pod: &PodInfo, node: &NodeInfo) -> Option<Rejection> {
        let value = |key: &str| node.labels.get(key).and_then(Value::as_str);
        let hit = |counts: &Counts, key: &str| {
            value(key).is_some_and(|v| counts.get(&(key.to_string(), v.to_string())).is_some_and(|c| *c > 0))
        };
        if !pod.affinity.is_empty() {
            let satisfied = pod.affinity.iter().all(|t| hit(&self.affinity, &t.topology_key));
            // The first pod of a group that selects itself may go anywhere the keys exist.
            let first = self.affinity.is_empty()
                && self.self_match
                && pod.affinity.iter().all(|t| value(&t.topology_key).is_some());
            if !satisfied && !first {
                return Some(Rejection::one(INTER_POD_AFFINITY, "node(s) didn't match pod affinity rules", true));
            }
        }
        if pod.anti_affinity.iter().any(|t| hit(&self.anti, &t.topology_key)) {
            return Some(Rejection::one(INTER_POD_AFFINITY, "node(s) didn't match pod anti-affinity rules", false));
        }
        if self.existing_anti.iter().any(|((k, v), c)| *c > 0 && value(k) == Some(v.as_str())) {
            return Some(Rejection::one(
                INTER_POD_AFFINITY,
                "node(s) didn't satisfy existing pods anti-affinity rules",
                false,
            ));
        }
        None
    }
}

/// The FitError message of kube-scheduler v1.35, with what its PostFilter plugins
/// (DynamicResources, DefaultPreemption) add for a pod without resource claims whose
/// competitors all have its priority.
pub fn fit_error(total_nodes: usize, rejected: &BTreeMap<String, Rejection>) -> String {
    if total_nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut preemption: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rejected.values() {
        for reason in &r.reasons {
            *reasons.entry(reason).or_default() += 1;
        }
        let p = if r.unresolvable {
            "Preemption is not helpful for scheduling"
        } else {
            "No preemption victims found for incoming pod"
        };
        *preemption.entry(p).or_default() += 1;
    }
    let histogram = |h: BTreeMap<&str, usize>| {
        let mut items: Vec<String> = h.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
        items.sort();
        items.join(", ")
    };
    format!(
        "0/{total_nodes} nodes are available: {}. no new claims to deallocate, preemption: 0/{total_nodes} nodes are available: {}.",
        histogram(reasons),
        histogram(preemption)
    )
}

/// The union of plugins that rejected some node.
pub fn failed_plugins(rejected: &BTreeMap<String, Rejection>) -> u8 {
    rejected.values().fold(0, |acc, r| acc | r.plugin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, zone: &str, extra: Value) -> NodeInfo {
        let mut n = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}});
        json_patch::merge(&mut n, &extra);
        NodeInfo::parse(&n)
    }

    fn pod(name: &str, node: Option<&str>, spec: Value) -> PodInfo {
        let mut p = json!({"metadata": {"namespace": "default", "name": name, "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c"}]}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        json_patch::merge(&mut p, &spec);
        PodInfo::parse(&p)
    }

    fn cluster(nodes: Vec<NodeInfo>, pods: Vec<PodInfo>) -> Cluster {
        Cluster {
            nodes: nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
            pods: pods.into_iter().map(|p| ((p.namespace.clone(), p.name.clone()), p)).collect(),
        }
    }

    fn run(c: &Cluster, p: &PodInfo) -> (Vec<String>, String) {
        let usage = c.usage();
        let (ok, rejected) = c.filter(p, &usage, &|_| None);
        (ok, fit_error(c.nodes.len(), &rejected))
    }

    #[test]
    fn message_counts_reasons_like_kube_scheduler() {
        let anti = json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}}});
        let c = cluster(
            vec![
                node("n1", "a", json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}})),
                node("n2", "b", json!({})),
                node("n3", "c", json!({})),
            ],
            vec![pod("db-0", Some("n2"), anti.clone()), pod("db-1", Some("n3"), anti.clone())],
        );
        let (ok, msg) = run(&c, &pod("db-2", None, anti));
        assert!(ok.is_empty());
        assert_eq!(
            msg,
            "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) didn't match pod anti-affinity rules. \
             no new claims to deallocate, preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
             2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn existing_anti_affinity_and_zone_topology() {
        let anti_zone = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}});
        let c = cluster(
            vec![node("n1", "a", json!({})), node("n2", "a", json!({})), node("n3", "b", json!({}))],
            vec![pod("web-0", Some("n1"), anti_zone)],
        );
        let (ok, msg) = run(&c, &pod("db-0", None, json!({})));
        assert_eq!(ok, vec!["n3"], "the web pod keeps db pods out of its whole zone");
        assert!(msg.contains("2 node(s) didn't satisfy existing pods anti-affinity rules"), "{msg}");
    }

    #[test]
    fn pod_affinity_allows_the_first_pod_of_a_group() {
        let aff = json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}});
        let c = cluster(vec![node("n1", "a", json!({})), node("n2", "b", json!({}))], vec![]);
        assert_eq!(run(&c, &pod("db-0", None, aff.clone())).0.len(), 2);
        let c = cluster(
            vec![node("n1", "a", json!({})), node("n2", "b", json!({}))],
            vec![pod("db-0", Some("n2"), aff.clone())],
        );
        let (ok, msg) = run(&c, &pod("db-1", None, aff));
        assert_eq!(ok, vec!["n2"]);
        assert!(msg.contains("1 node(s) didn't match pod affinity rules"), "{msg}");
    }

    #[test]
    fn resources_ready_and_cordon() {
        let big = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]}});
        let c = cluster(
            vec![
                node("n1", "a", json!({})),
                node("n2", "a", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})),
                node("n3", "a", json!({"spec": {"unschedulable": true}})),
            ],
            vec![pod("p0", Some("n1"), big.clone())],
        );
        let (ok, msg) = run(&c, &pod("p1", None, big));
        assert!(ok.is_empty());
        assert!(msg.starts_with(
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable."
        ), "{msg}");
        let never_ready = NodeInfo::parse(&json!({"metadata": {"name": "n"}, "spec": {}}));
        let c = cluster(vec![never_ready], vec![]);
        assert!(run(&c, &pod("p", None, json!({}))).0.is_empty(), "no Ready condition = not ready");
    }

    #[test]
    fn node_affinity_and_tolerations() {
        let c = cluster(
            vec![
                node("n1", "a", json!({"metadata": {"labels": {"disk": "ssd"}}})),
                node(
                    "n2",
                    "b",
                    json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]},
                    "metadata": {"labels": {"disk": "ssd"}}}),
                ),
                node("n3", "c", json!({})),
            ],
            vec![],
        );
        assert_eq!(run(&c, &pod("p", None, json!({"spec": {"nodeSelector": {"disk": "ssd"}}}))).0, vec!["n1"]);
        let tolerant = json!({"spec": {"nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}]}});
        assert_eq!(run(&c, &pod("p", None, tolerant)).0, vec!["n1", "n2"]);
        let prefer = cluster(
            vec![node("n1", "a", json!({"spec": {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}}))],
            vec![],
        );
        assert_eq!(run(&prefer, &pod("p", None, json!({}))).0, vec!["n1"], "PreferNoSchedule does not filter");
    }
}
