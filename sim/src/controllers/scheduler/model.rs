//! What the scheduler (and the node lifecycle controller) read from Nodes and Pods: taints,
//! tolerations, node selectors, inter-pod affinity terms and resource requests, parsed once
//! from the stored JSON.

use serde_json::{Map, Value};

use super::quantity;
use crate::api::selectors::{LabelOperator, LabelRequirement, LabelSelector};

/// Taint key of nodes whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint key of nodes whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint key of cordoned nodes (`spec.unschedulable`).
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// `key`.
    pub key: String,
    /// `value` ("" when absent).
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Taint {
    /// Reads `spec.taints` of a node.
    pub fn list(node: &Value) -> Vec<Taint> {
        node["spec"]["taints"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| Taint { key: str_of(&t["key"]), value: str_of(&t["value"]), effect: str_of(&t["effect"]) })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// `key` ("" = every key, with operator Exists).
    pub key: String,
    /// `Exists`, or `Equal` (also for "").
    pub exists: bool,
    /// `value`.
    pub value: String,
    /// `effect` ("" = every effect).
    pub effect: String,
    /// `tolerationSeconds` (NoExecute only).
    pub seconds: Option<i64>,
}

impl Toleration {
    /// Reads `spec.tolerations` of a pod.
    pub fn list(pod: &Value) -> Vec<Toleration> {
        pod["spec"]["tolerations"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| Toleration {
                        key: str_of(&t["key"]),
                        exists: t["operator"] == "Exists",
                        value: str_of(&t["value"]),
                        effect: str_of(&t["effect"]),
                        seconds: t["tolerationSeconds"].as_i64(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether this toleration tolerates `taint` (`v1.Toleration.ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.exists || self.value == taint.value
    }
}

/// Whether some toleration tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// The string at `v`, or "".
pub fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// CPU (milli-cores), memory (bytes) and pod count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Milli-CPU.
    pub cpu: i128,
    /// Bytes of memory.
    pub memory: i128,
}

impl Resources {
    /// Reads `{"cpu": "500m", "memory": "128Mi"}` (absent = 0).
    pub fn from_list(list: &Value) -> Resources {
        let q = |k: &str, milli: bool| {
            list[k].as_str().and_then(|s| if milli { quantity::parse_milli(s) } else { quantity::parse_value(s) })
        };
        Resources { cpu: q("cpu", true).unwrap_or(0), memory: q("memory", false).unwrap_or(0) }
    }

    fn add(self, o: Resources) -> Resources {
        Resources { cpu: self.cpu + o.cpu, memory: self.memory + o.memory }
    }

    fn max(self, o: Resources) -> Resources {
        Resources { cpu: self.cpu.max(o.cpu), memory: self.memory.max(o.memory) }
    }
}

/// CPU assumed for a container without a CPU request when scoring (kube-scheduler's
/// `DefaultMilliCPURequest`, 100m).
pub const DEFAULT_MILLI_CPU: i128 = 100;
/// Memory assumed for a container without a memory request when scoring (kube-scheduler's
/// `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY: i128 = 200 * 1024 * 1024;

/// The effective requests of a pod (`resourcehelper.PodRequests`): the sum over app
/// containers and restartable (sidecar) init containers, or, if larger, what each regular
/// init container needs while the sidecars started before it run; plus `spec.overhead`.
/// With `non_zero`, containers without a request count the scoring defaults.
pub fn pod_requests(pod: &Value, non_zero: bool) -> Resources {
    let req = |c: &Value| {
        let mut r = Resources::from_list(&c["resources"]["requests"]);
        if non_zero {
            if c["resources"]["requests"]["cpu"].is_null() {
                r.cpu = DEFAULT_MILLI_CPU;
            }
            if c["resources"]["requests"]["memory"].is_null() {
                r.memory = DEFAULT_MEMORY;
            }
        }
        r
    };
    let containers = pod["spec"]["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut total = containers.iter().map(req).fold(Resources::default(), Resources::add);
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in pod["spec"]["initContainers"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let r = req(c);
        if c["restartPolicy"] == "Always" {
            sidecars = sidecars.add(r);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars.add(r));
        }
    }
    total = total.add(sidecars).max(init_peak);
    total.add(Resources::from_list(&pod["spec"]["overhead"]))
}

/// One `nodeSelectorTerm`: requirements on labels and on `metadata.name`, all of which must hold.
#[derive(Debug, Clone)]
pub struct NodeSelectorTerm {
    exprs: Vec<(String, String, Vec<String>)>,
    fields: Vec<(String, String, Vec<String>)>,
}

impl NodeSelectorTerm {
    fn parse(term: &Value) -> NodeSelectorTerm {
        let reqs = |k: &str| {
            term[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            let values =
                                e["values"].as_array().map(|v| v.iter().map(str_of).collect()).unwrap_or_default();
                            (str_of(&e["key"]), str_of(&e["operator"]), values)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        NodeSelectorTerm { exprs: reqs("matchExpressions"), fields: reqs("matchFields") }
    }

    /// Whether a node with this name and these labels matches (an empty term matches nothing).
    pub fn matches(&self, node_name: &str, labels: &Map<String, Value>) -> bool {
        if self.exprs.is_empty() && self.fields.is_empty() {
            return false;
        }
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let expr_ok = |(key, op, values): &(String, String, Vec<String>)| {
            let v = label(key);
            match op.as_str() {
                "In" => v.is_some_and(|v| values.iter().any(|x| x == v)),
                "NotIn" => v.is_none_or(|v| !values.iter().any(|x| x == v)),
                "Exists" => v.is_some(),
                "DoesNotExist" => v.is_none(),
                "Gt" | "Lt" => {
                    let (Some(have), Some(want)) =
                        (v.and_then(|v| v.parse::<i64>().ok()), values.first().and_then(|w| w.parse::<i64>().ok()))
                    else {
                        return false;
                    };
                    if op == "Gt" { have > want } else { have < want }
                }
                _ => false,
            }
        };
        let field_ok = |(key, op, values): &(String, String, Vec<String>)| {
            key == "metadata.name"
                && match op.as_str() {
                    "In" => values.iter().any(|x| x == node_name),
                    "NotIn" => !values.iter().any(|x| x == node_name),
                    _ => false,
                }
        };
        self.exprs.iter().all(expr_ok) && self.fields.iter().all(field_ok)
    }
}

/// A pod (anti-)affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// Which pods the term is about.
    pub selector: LabelSelector,
    /// Requirements from `matchLabelKeys` / `mismatchLabelKeys` (the owner's label values).
    pub label_keys: Vec<LabelRequirement>,
    /// Explicit namespaces (empty with no namespace selector = the owning pod's namespace).
    pub namespaces: Vec<String>,
    /// `namespaceSelector` (`{}` = all namespaces).
    pub namespace_selector: Option<LabelSelector>,
    /// Node label that defines the topology domain.
    pub topology_key: String,
}

impl AffinityTerm {
    fn parse(term: &Value, owner: &Value) -> Option<AffinityTerm> {
        let selector = LabelSelector::from_json(&term["labelSelector"]).ok()?;
        let owner_labels = owner["metadata"]["labels"].as_object();
        let mut extra = Vec::new();
        for (field, op) in [("matchLabelKeys", LabelOperator::In), ("mismatchLabelKeys", LabelOperator::NotIn)] {
            for key in term[field].as_array().map(Vec::as_slice).unwrap_or_default() {
                let key = key.as_str().unwrap_or_default();
                if let Some(v) = owner_labels.and_then(|l| l.get(key)).and_then(Value::as_str)
                    && let Ok(r) = LabelRequirement::new(key, op, vec![v.to_string()])
                {
                    extra.push(r);
                }
            }
        }
        let namespaces = term["namespaces"].as_array().map(|a| a.iter().map(str_of).collect()).unwrap_or_default();
        let namespace_selector = match &term["namespaceSelector"] {
            Value::Null => None,
            sel => Some(LabelSelector::from_json(sel).ok()?),
        };
        Some(AffinityTerm {
            selector,
            label_keys: extra,
            namespaces,
            namespace_selector,
            topology_key: str_of(&term["topologyKey"]),
        })
    }

    /// Whether `pod` (in a namespace with labels `ns_labels`) is one of the pods this term,
    /// written on a pod in `owner_ns`, is about.
    pub fn matches(&self, owner_ns: &str, pod: &PodInfo, ns_labels: Option<&Map<String, Value>>) -> bool {
        let ns_ok = if self.namespaces.is_empty() && self.namespace_selector.is_none() {
            pod.namespace == owner_ns
        } else {
            self.namespaces.contains(&pod.namespace)
                || self.namespace_selector.as_ref().is_some_and(|s| s.matches(ns_labels))
        };
        ns_ok
            && self.selector.matches(Some(&pod.labels))
            && self.label_keys.iter().all(|r| r.matches(Some(&pod.labels)))
    }
}

/// What the scheduler needs of a pod.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Map<String, Value>,
    /// Node the pod is bound to, if any.
    pub node: Option<String>,
    /// Requests for fitting.
    pub requests: Resources,
    /// Requests for scoring (defaults for unset container requests).
    pub non_zero: Resources,
    /// Host ports (protocol, hostIP, port).
    pub host_ports: Vec<(String, String, i64)>,
    /// `spec.nodeSelector`.
    pub node_selector: Map<String, Value>,
    /// Required node affinity terms (ORed); `None` = no requirement.
    pub required_node_terms: Option<Vec<NodeSelectorTerm>>,
    /// Preferred node affinity terms with weights.
    pub preferred_node_terms: Vec<(i64, NodeSelectorTerm)>,
    /// Required pod affinity terms.
    pub affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub anti_affinity: Vec<AffinityTerm>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// `spec.priority`.
    pub priority: i64,
}

impl PodInfo {
    /// Parses a stored pod.
    pub fn parse(pod: &Value) -> PodInfo {
        let spec = &pod["spec"];
        let affinity = &spec["affinity"];
        let required = &affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        let required_node_terms = (!required.is_null()).then(|| {
            required["nodeSelectorTerms"]
                .as_array()
                .map(|ts| ts.iter().map(NodeSelectorTerm::parse).collect())
                .unwrap_or_default()
        });
        let preferred_node_terms = affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| (t["weight"].as_i64().unwrap_or(0), NodeSelectorTerm::parse(&t["preference"])))
                    .collect()
            })
            .unwrap_or_default();
        let terms = |kind: &str| -> Vec<AffinityTerm> {
            affinity[kind]["requiredDuringSchedulingIgnoredDuringExecution"]
                .as_array()
                .map(|ts| ts.iter().filter_map(|t| AffinityTerm::parse(t, pod)).collect())
                .unwrap_or_default()
        };
        let mut host_ports = Vec::new();
        for list in ["containers", "initContainers"] {
            for c in spec[list].as_array().map(Vec::as_slice).unwrap_or_default() {
                for p in c["ports"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    if let Some(hp) = p["hostPort"].as_i64().filter(|hp| *hp > 0) {
                        let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
                        let ip = p["hostIP"].as_str().filter(|s| !s.is_empty()).unwrap_or("0.0.0.0").to_string();
                        host_ports.push((proto, ip, hp));
                    }
                }
            }
        }
        PodInfo {
            namespace: str_of(&pod["metadata"]["namespace"]),
            name: str_of(&pod["metadata"]["name"]),
            labels: pod["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
            node: spec["nodeName"].as_str().filter(|n| !n.is_empty()).map(str::to_string),
            requests: pod_requests(pod, false),
            non_zero: pod_requests(pod, true),
            host_ports,
            node_selector: spec["nodeSelector"].as_object().cloned().unwrap_or_default(),
            required_node_terms,
            preferred_node_terms,
            affinity: terms("podAffinity"),
            anti_affinity: terms("podAntiAffinity"),
            tolerations: Toleration::list(pod),
            priority: spec["priority"].as_i64().unwrap_or(0),
        }
    }
}

/// The state of a node's Ready condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Ready=True.
    Ready,
    /// Ready=False.
    NotReady,
    /// Ready=Unknown.
    Unknown,
    /// No Ready condition posted yet.
    Missing,
}

impl Readiness {
    /// Reads the Ready condition of a node.
    pub fn of(node: &Value) -> Readiness {
        let cond = node["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
        match cond.map(|c| c["status"].as_str().unwrap_or_default()) {
            None => Readiness::Missing,
            Some("True") => Readiness::Ready,
            Some("False") => Readiness::NotReady,
            Some(_) => Readiness::Unknown,
        }
    }
}

/// What the scheduler needs of a node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Map<String, Value>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// The Ready condition.
    pub readiness: Readiness,
    /// `status.allocatable` (falling back to `status.capacity`); `None` if the node reported
    /// neither yet.
    pub allocatable: Option<Resources>,
    /// Allocatable pod count, if reported.
    pub max_pods: Option<i128>,
}

impl NodeInfo {
    /// Parses a stored node.
    pub fn parse(node: &Value) -> NodeInfo {
        let status = &node["status"];
        let list = if status["allocatable"].is_object() { &status["allocatable"] } else { &status["capacity"] };
        NodeInfo {
            name: str_of(&node["metadata"]["name"]),
            labels: node["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
            taints: Taint::list(node),
            unschedulable: node["spec"]["unschedulable"].as_bool().unwrap_or(false),
            readiness: Readiness::of(node),
            allocatable: list.is_object().then(|| Resources::from_list(list)),
            max_pods: list["pods"].as_str().and_then(quantity::parse_value),
        }
    }

    /// The NoSchedule taints the node lifecycle controller keeps in step with the Ready
    /// condition (TaintNodesByCondition), implied here so that a node that is not Ready never
    /// gets pods even before that controller caught up; a node that never posted a Ready
    /// condition counts as not ready (as the NodeTaint admission plugin taints new nodes).
    pub fn effective_taints(&self) -> Vec<Taint> {
        let mut taints = self.taints.clone();
        let implied = match self.readiness {
            Readiness::Ready => None,
            Readiness::NotReady | Readiness::Missing => Some(TAINT_NOT_READY),
            Readiness::Unknown => Some(TAINT_UNREACHABLE),
        };
        if let Some(key) = implied
            && !taints.iter().any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint { key: key.into(), value: String::new(), effect: "NoSchedule".into() });
        }
        taints
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tolerations_match_like_kubernetes() {
        let taint = Taint { key: "k".into(), value: "v".into(), effect: "NoSchedule".into() };
        let tol = |t: Value| Toleration::list(&json!({"spec": {"tolerations": [t]}})).remove(0);
        assert!(tol(json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"})).tolerates(&taint));
        assert!(tol(json!({"key": "k", "value": "v"})).tolerates(&taint), "empty effect matches all effects");
        assert!(tol(json!({"operator": "Exists"})).tolerates(&taint), "empty key with Exists matches everything");
        assert!(tol(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})).tolerates(&taint));
        assert!(!tol(json!({"key": "k", "value": "w"})).tolerates(&taint));
        assert!(!tol(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})).tolerates(&taint));
        assert!(!tol(json!({"key": "other", "operator": "Exists"})).tolerates(&taint));
    }

    #[test]
    fn requests_take_init_containers_and_sidecars_into_account() {
        let pod = json!({"spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"resources": {"requests": {"cpu": "250m"}}}
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "16Mi"}}}]
        }});
        assert_eq!(pod_requests(&pod, false), Resources { cpu: 2000, memory: 64 << 20 });
        assert_eq!(pod_requests(&pod, true), Resources { cpu: 2000, memory: (64 << 20) + DEFAULT_MEMORY });
        let sidecar = json!({"spec": {
            "containers": [{"resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"resources": {"requests": {"cpu": "1200m"}}}
            ],
            "overhead": {"cpu": "100m"}
        }});
        assert_eq!(pod_requests(&sidecar, false).cpu, 1800, "max(1 + 0.5, 0.5 + 1.2) + 0.1");
    }

    #[test]
    fn node_selector_terms() {
        let labels = json!({"zone": "a", "size": "8"});
        let labels = labels.as_object().unwrap();
        let term = |t: Value| NodeSelectorTerm::parse(&t);
        assert!(
            term(json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}))
                .matches("n", labels)
        );
        assert!(
            !term(json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}))
                .matches("n", labels)
        );
        assert!(
            term(json!({"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["4"]}]}))
                .matches("n", labels)
        );
        assert!(term(json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})).matches("n", labels));
        assert!(
            term(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}))
                .matches("n", labels)
        );
        assert!(!term(json!({})).matches("n", labels), "an empty term matches nothing");
    }

    #[test]
    fn affinity_terms_resolve_namespaces_and_match_label_keys() {
        let owner = json!({"metadata": {"namespace": "a", "labels": {"app": "db", "rev": "2"}}});
        let t = AffinityTerm::parse(
            &json!({"labelSelector": {"matchLabels": {"app": "db"}}, "matchLabelKeys": ["rev"], "topologyKey": "zone"}),
            &owner,
        )
        .unwrap();
        let pod = |ns: &str, rev: &str| {
            PodInfo::parse(
                &json!({"metadata": {"namespace": ns, "name": "p", "labels": {"app": "db", "rev": rev}}, "spec": {}}),
            )
        };
        assert!(t.matches("a", &pod("a", "2"), None));
        assert!(!t.matches("a", &pod("a", "1"), None), "matchLabelKeys narrows to the same revision");
        assert!(!t.matches("a", &pod("b", "2"), None), "defaults to the owner's namespace");
        let all = AffinityTerm::parse(
            &json!({"labelSelector": {"matchLabels": {"app": "db"}}, "namespaceSelector": {}, "topologyKey": "zone"}),
            &owner,
        )
        .unwrap();
        assert!(all.matches("a", &pod("b", "1"), None), "{{}} namespace selector = every namespace");
    }
}
