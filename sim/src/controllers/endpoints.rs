//! The Endpoints controller (`pkg/controller/endpoint`), and what it shares with the
//! EndpointSlice controller ([`super::endpointslice`]): which pods back a Service and on which
//! ports.
//!
//! For every Service with a selector, the Endpoints object of the same name lists the selected
//! pods that have an IP and are neither terminal nor (unless `publishNotReadyAddresses`)
//! terminating: Ready pods under `addresses`, others under `notReadyAddresses`, each with `ip`,
//! `nodeName`, `targetRef` and `hostname` (when the pod's subdomain is the Service). Ports come
//! from the Service ports, a named `targetPort` resolved against each pod's container ports; a
//! pod that has none of the ports is left out. Addresses with the same ports share a subset
//! (`RepackSubsets`). Labels: the Service's, `endpoints.kubernetes.io/managed-by:
//! endpoint-controller`, and `service.kubernetes.io/headless` for headless Services. Services
//! without a selector are left alone (their Endpoints are the user's); the Endpoints of a
//! deleted Service are deleted.
//!
//! Simplified: no `endpoints.kubernetes.io/last-change-trigger-time` annotation and no
//! truncation at 1000 addresses (`over-capacity`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::podutil::{self, Key};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, Subresource, WriteCtx, meta_str};
use crate::api::resources::GroupResource;
use crate::api::selectors::LabelSelector;
use crate::api::status::ApiResult;
use crate::api::store::{Event, EventType, key_of};

const MANAGER: &str = "endpoint-controller";
/// Label the Endpoints controller puts on the Endpoints it manages.
pub const ENDPOINTS_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
/// Label marking the endpoints of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The selector of a Service, `None` when it has none (its endpoints are managed by hand).
pub fn service_selector(svc: &Value) -> Option<LabelSelector> {
    let sel = svc["spec"]["selector"].as_object().filter(|m| !m.is_empty())?;
    Some(LabelSelector::from_labels(sel))
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Value) -> bool {
    svc["spec"]["clusterIP"] == "None"
}

/// The pods in the Service's namespace that its selector selects.
pub fn selected_pods(api: &Api, svc: &Value, selector: LabelSelector) -> ApiResult<Vec<Arc<Value>>> {
    let rt = podutil::builtin(api, "", "pods")?;
    podutil::list_in(api, &rt, meta_str(svc, "namespace"), Some(selector))
}

/// `ShouldPodBeInEndpoints`: not terminal, has an IP, not terminating unless asked.
pub fn should_be_in_endpoints(pod: &Value, include_terminating: bool) -> bool {
    !podutil::is_terminal(pod) && pod_ip(pod).is_some() && (include_terminating || !podutil::is_terminating(pod))
}

/// The pod's (IPv4) address.
pub fn pod_ip(pod: &Value) -> Option<&str> {
    pod["status"]["podIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .or_else(|| pod["status"]["podIPs"].as_array()?.iter().find_map(|i| i["ip"].as_str()))
}

/// `FindPort`: the pod port a Service port targets (a number as is, a name looked up among the
/// container ports with the same protocol).
pub fn find_port(pod: &Value, svc_port: &Value) -> Option<i64> {
    let protocol = svc_port["protocol"].as_str().unwrap_or("TCP");
    match &svc_port["targetPort"] {
        Value::String(name) => pod["spec"]["containers"].as_array()?.iter().find_map(|c| {
            c["ports"].as_array()?.iter().find_map(|p| {
                (p["name"] == name.as_str() && p["protocol"].as_str().unwrap_or("TCP") == protocol)
                    .then(|| p["containerPort"].as_i64())
                    .flatten()
            })
        }),
        Value::Number(n) => n.as_i64(),
        _ => svc_port["port"].as_i64(),
    }
}

/// The endpoint ports of a pod for the Service: name, port, protocol, appProtocol.
pub fn endpoint_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            let mut ep = json!({
                "name": sp["name"].as_str().unwrap_or_default(),
                "port": port,
                "protocol": sp["protocol"].as_str().unwrap_or("TCP"),
            });
            if let Some(ap) = sp["appProtocol"].as_str() {
                ep["appProtocol"] = json!(ap);
            }
            Some(ep)
        })
        .collect()
}

/// `ShouldSetHostname`: the pod's hostname, when its subdomain is this Service.
pub fn hostname_for(pod: &Value, svc: &Value) -> Option<String> {
    let host = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    (pod["spec"]["subdomain"] == svc["metadata"]["name"]
        && pod["metadata"]["namespace"] == svc["metadata"]["namespace"])
        .then(|| host.to_string())
}

/// The `targetRef` of a pod.
pub fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]})
}

/// Whether a pod change can change endpoints (`podEndpointsChanged`, plus ports and node).
fn pod_changed(old: &Value, new: &Value) -> bool {
    let fields = |p: &Value| {
        (
            p["metadata"]["labels"].clone(),
            p["metadata"]["deletionTimestamp"].clone(),
            podutil::is_ready(p),
            p["status"]["podIP"].clone(),
            p["status"]["podIPs"].clone(),
            p["status"]["phase"].clone(),
            p["spec"]["nodeName"].clone(),
            p["spec"]["hostname"].clone(),
            p["spec"]["subdomain"].clone(),
        )
    };
    fields(old) != fields(new)
}

/// Keys of the Services an event about a pod or Service concerns (both endpoint controllers).
pub fn service_keys(api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
    match (gr.group.as_str(), gr.resource.as_str()) {
        ("", "services") => out.push(key_of(&event.object)),
        ("", "pods") => {
            if let Some(old) = event.old.as_deref()
                && event.kind != EventType::Deleted
                && !pod_changed(old, &event.object)
            {
                return;
            }
            let ns = meta_str(&event.object, "namespace");
            let Ok(rt) = podutil::builtin(api, "", "services") else { return };
            let labels: Vec<Option<&Map<String, Value>>> = [Some(&*event.object), event.old.as_deref()]
                .into_iter()
                .flatten()
                .map(|p| p["metadata"]["labels"].as_object())
                .collect();
            for svc in podutil::list_in(api, &rt, ns, None).unwrap_or_default() {
                if let Some(sel) = service_selector(&svc)
                    && labels.iter().any(|l| sel.matches(*l))
                {
                    out.push(key_of(&svc));
                }
            }
        }
        _ => {}
    }
}

/// The Endpoints reconciler.
#[derive(Debug, Default)]
pub struct EndpointsController;

/// Runs the Endpoints controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, EndpointsController).await
}

impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        MANAGER
    }

    fn keys(&mut self, api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        if gr.group.is_empty() && gr.resource == "endpoints" {
            // Somebody else deleted or rewrote the Endpoints of a Service: look again (a no-op
            // when they are as they should be). Endpoints without a Service are not ours.
            let (ns, name) = key_of(&event.object);
            let svc = GroupResource { group: String::new(), resource: "services".into() };
            if event.kind == EventType::Deleted || api.store.get(&svc, &ns, &name).is_some() {
                out.push((ns, name));
            }
            return;
        }
        service_keys(api, gr, event, out);
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let svc_rt = podutil::builtin(api, "", "services")?;
        let ep_rt = podutil::builtin(api, "", "endpoints")?;
        let ctx = WriteCtx::controller(MANAGER);
        let svc = match api.get(&svc_rt, &key.0, &key.1) {
            Ok(s) => s,
            Err(e) if e.code == 404 => {
                return match api.delete(&ep_rt, &key.0, &key.1, &DeleteOptions::default()) {
                    Ok(_) => Ok(None),
                    Err(e) if e.code == 404 => Ok(None),
                    Err(e) => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let Some(selector) = service_selector(&svc) else { return Ok(None) };
        let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == true;
        let pods = selected_pods(api, &svc, selector)?;
        // port (as JSON text, "" for none) -> address key -> (address, ready)
        let mut by_port: BTreeMap<String, BTreeMap<String, (Value, bool)>> = BTreeMap::new();
        let no_ports = svc["spec"]["ports"].as_array().is_none_or(Vec::is_empty);
        for pod in &pods {
            if !should_be_in_endpoints(pod, publish_not_ready) {
                continue;
            }
            let Some(ip) = pod_ip(pod) else { continue };
            let mut addr = json!({"ip": ip, "targetRef": target_ref(pod)});
            if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                addr["nodeName"] = json!(node);
            }
            if let Some(h) = hostname_for(pod, &svc) {
                addr["hostname"] = json!(h);
            }
            let ready = publish_not_ready || podutil::is_ready(pod);
            let addr_key = format!("{ip}/{}", meta_str(pod, "uid"));
            let ports: Vec<String> = if no_ports {
                if !is_headless(&svc) {
                    continue;
                }
                vec![String::new()]
            } else {
                endpoint_ports(&svc, pod).iter().map(Value::to_string).collect()
            };
            for port in ports {
                let entry = by_port.entry(port).or_default().entry(addr_key.clone()).or_insert((addr.clone(), ready));
                entry.1 |= ready;
            }
        }
        let subsets = repack(by_port);
        let mut labels = svc["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        labels.insert(ENDPOINTS_MANAGED_BY.into(), json!(MANAGER));
        if is_headless(&svc) {
            labels.insert(HEADLESS_LABEL.into(), json!(""));
        }
        let ns = meta_str(&svc, "namespace");
        let name = meta_str(&svc, "name");
        match api.get(&ep_rt, ns, name) {
            Ok(cur) => {
                let cur_subsets = cur["subsets"].as_array().cloned().unwrap_or_default();
                if cur_subsets == subsets && cur["metadata"]["labels"].as_object() == Some(&labels) {
                    return Ok(None);
                }
                let mut next = (*cur).clone();
                next["metadata"]["labels"] = Value::Object(labels);
                set_subsets(&mut next, subsets);
                api.update(&ep_rt, ns, name, next, Subresource::Main, &ctx)?;
            }
            Err(e) if e.code == 404 => {
                let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}});
                set_subsets(&mut ep, subsets);
                api.create(&ep_rt, ns, ep, &ctx)?;
            }
            Err(e) => return Err(e),
        }
        Ok(None)
    }
}

fn set_subsets(ep: &mut Value, subsets: Vec<Value>) {
    if let Some(m) = ep.as_object_mut() {
        if subsets.is_empty() {
            m.remove("subsets");
        } else {
            m.insert("subsets".into(), Value::Array(subsets));
        }
    }
}

/// `RepackSubsets`: ports whose (address, readiness) sets are equal share a subset; addresses
/// sorted by IP, ports by name and number.
fn repack(by_port: BTreeMap<String, BTreeMap<String, (Value, bool)>>) -> Vec<Value> {
    /// Addresses (as `[address, ready]` pairs) and the ports they share.
    type Group = (Vec<Value>, BTreeSet<String>);
    let mut groups: BTreeMap<Vec<(String, bool)>, Group> = BTreeMap::new();
    for (port, addrs) in by_port {
        let id: Vec<(String, bool)> = addrs.iter().map(|(k, (_, r))| (k.clone(), *r)).collect();
        let group =
            groups.entry(id).or_insert_with(|| (addrs.values().map(|(a, r)| json!([a, r])).collect(), BTreeSet::new()));
        group.1.insert(port);
    }
    let mut subsets: Vec<Value> = groups
        .into_values()
        .map(|(addrs, ports)| {
            let mut ready: Vec<Value> = Vec::new();
            let mut not_ready: Vec<Value> = Vec::new();
            for pair in addrs {
                let is_ready = pair[1] == true;
                let addr = pair[0].clone();
                if is_ready { ready.push(addr) } else { not_ready.push(addr) }
            }
            let by_ip = |a: &Value, b: &Value| {
                let ip = |v: &Value| v["ip"].as_str().and_then(|s| s.parse::<std::net::IpAddr>().ok());
                ip(a).cmp(&ip(b)).then_with(|| a["ip"].as_str().cmp(&b["ip"].as_str()))
            };
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut ports: Vec<Value> =
                ports.iter().filter(|p| !p.is_empty()).filter_map(|p| serde_json::from_str(p).ok()).collect();
            ports.sort_by(|a, b| {
                a["name"].as_str().cmp(&b["name"].as_str()).then_with(|| a["port"].as_i64().cmp(&b["port"].as_i64()))
            });
            let mut subset = json!({});
            if !ready.is_empty() {
                subset["addresses"] = Value::Array(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = Value::Array(not_ready);
            }
            if !ports.is_empty() {
                subset["ports"] = Value::Array(ports);
            }
            subset
        })
        .collect();
    subsets.sort_by_key(|s| s.to_string());
    subsets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ports: Value) -> Value {
        json!({"spec": {"containers": [{"name": "c", "ports": ports}]}, "status": {"podIP": "10.0.0.1"}})
    }

    #[test]
    fn named_target_ports_resolve_against_container_ports() {
        let p = pod(json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]));
        assert_eq!(find_port(&p, &json!({"port": 80, "targetPort": "http", "protocol": "TCP"})), Some(8080));
        assert_eq!(find_port(&p, &json!({"port": 80, "targetPort": "http", "protocol": "UDP"})), None);
        assert_eq!(find_port(&p, &json!({"port": 80, "targetPort": "grpc"})), None);
        assert_eq!(find_port(&p, &json!({"port": 80, "targetPort": 9090})), Some(9090));
    }

    #[test]
    fn terminal_terminating_and_ipless_pods_are_left_out() {
        let p = pod(json!([]));
        assert!(should_be_in_endpoints(&p, false));
        let mut t = p.clone();
        t["metadata"] = json!({"deletionTimestamp": "2024-01-01T00:00:00Z"});
        assert!(!should_be_in_endpoints(&t, false) && should_be_in_endpoints(&t, true));
        let mut f = p.clone();
        f["status"]["phase"] = json!("Failed");
        assert!(!should_be_in_endpoints(&f, true));
        assert!(!should_be_in_endpoints(&json!({"status": {}}), true));
    }

    #[test]
    fn subsets_group_ports_with_the_same_addresses() {
        let a = json!({"ip": "10.0.0.2"});
        let b = json!({"ip": "10.0.0.10"});
        let p80 = json!({"name": "a", "port": 80, "protocol": "TCP"}).to_string();
        let p81 = json!({"name": "b", "port": 81, "protocol": "TCP"}).to_string();
        let both = BTreeMap::from([("a".to_string(), (a.clone(), true)), ("b".to_string(), (b.clone(), false))]);
        let only_a = BTreeMap::from([("a".to_string(), (a.clone(), true))]);
        let subsets = repack(BTreeMap::from([(p80, both), (p81, only_a)]));
        assert_eq!(subsets.len(), 2);
        let with_b = subsets.iter().find(|s| s["notReadyAddresses"].is_array()).unwrap();
        assert_eq!(with_b["addresses"], json!([a]));
        assert_eq!(with_b["notReadyAddresses"], json!([b]));
        assert_eq!(with_b["ports"][0]["port"], 80);
    }
}
