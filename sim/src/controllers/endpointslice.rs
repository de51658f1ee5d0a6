//! The EndpointSlice controller (`pkg/controller/endpointslice`): for every Service with a
//! selector, `discovery.k8s.io/v1` EndpointSlices (`addressType: IPv4`) listing the selected pods
//! that have an IP and are not terminal — terminating pods included, with the conditions
//! `serving` (pod Ready), `terminating` (being deleted) and `ready` (serving and not terminating,
//! or always with `publishNotReadyAddresses`), `targetRef`, `nodeName`, `zone` (the node's
//! `topology.kubernetes.io/zone`) and `hostname`.
//!
//! Pods whose ports resolve alike share slices of at most 100 endpoints; a Service without
//! endpoints gets one empty placeholder slice. Slices are named `<service>-<random>`, owned by the
//! Service (controller reference, so the garbage collector removes them with it) and labelled
//! with the Service's labels, `kubernetes.io/service-name`,
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` and
//! `service.kubernetes.io/headless` for headless Services. Services without a selector are left
//! alone.
//!
//! Simplified: IPv4 only, no topology hints, no trigger-time annotation, and the packing of
//! endpoints into slices is simpler than Kubernetes' churn-minimising reconciler (same-port
//! slices are refilled in name order).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::endpoints::{
    HEADLESS_LABEL, endpoint_ports, hostname_for, is_headless, pod_ip, selected_pods, service_selector,
};
use super::podutil::{self, Key};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, Subresource, WriteCtx, meta_str};
use crate::api::resources::GroupResource;
use crate::api::selectors::LabelSelector;
use crate::api::status::ApiResult;
use crate::api::store::{Event, key_of};

/// Value of the managed-by label on the slices this controller owns.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Label naming the Service of a slice.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Most endpoints in one slice (`--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The EndpointSlice reconciler.
#[derive(Debug, Default)]
pub struct EndpointSliceController;

/// Runs the EndpointSlice controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, EndpointSliceController).await
}

impl Reconciler for EndpointSliceController {
    fn name(&self) -> &'static str {
        CONTROLLER_NAME
    }

    fn keys(&mut self, api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        if gr.group == "discovery.k8s.io" && gr.resource == "endpointslices" {
            let labels = &event.object["metadata"]["labels"];
            if labels[MANAGED_BY_LABEL] == CONTROLLER_NAME
                && let Some(svc) = labels[SERVICE_NAME_LABEL].as_str()
            {
                out.push((meta_str(&event.object, "namespace").to_string(), svc.to_string()));
            }
            return;
        }
        super::endpoints::service_keys(api, gr, event, out);
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let svc_rt = podutil::builtin(api, "", "services")?;
        let slice_rt = podutil::builtin(api, "discovery.k8s.io", "endpointslices")?;
        let ctx = WriteCtx::controller(CONTROLLER_NAME);
        let svc = match api.get(&svc_rt, &key.0, &key.1) {
            Ok(s) => s,
            // The garbage collector removes the slices of a deleted Service.
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        if podutil::is_terminating(&svc) {
            return Ok(None);
        }
        let Some(selector) = service_selector(&svc) else { return Ok(None) };
        let (ns, name) = key_of(&svc);
        let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == true;
        let node_rt = podutil::builtin(api, "", "nodes")?;
        let mut zones: HashMap<String, Option<String>> = HashMap::new();
        // ports (JSON text) -> endpoints
        let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
        for pod in selected_pods(api, &svc, selector)? {
            if !super::endpoints::should_be_in_endpoints(&pod, true) {
                continue;
            }
            let Some(ip) = pod_ip(&pod) else { continue };
            let serving = podutil::is_ready(&pod);
            let terminating = podutil::is_terminating(&pod);
            let ready = publish_not_ready || (serving && !terminating);
            let mut ep = json!({
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "targetRef": super::endpoints::target_ref(&pod),
            });
            if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                ep["nodeName"] = json!(node);
                let zone = zones.entry(node.to_string()).or_insert_with(|| {
                    api.get(&node_rt, "", node)
                        .ok()
                        .and_then(|n| n["metadata"]["labels"][ZONE_LABEL].as_str().map(str::to_string))
                });
                if let Some(z) = zone {
                    ep["zone"] = json!(z);
                }
            }
            if let Some(h) = hostname_for(&pod, &svc) {
                ep["hostname"] = json!(h);
            }
            let ports = Value::Array(endpoint_ports(&svc, &pod));
            groups.entry(ports.to_string()).or_insert_with(|| (ports, Vec::new())).1.push(ep);
        }

        // The desired slices: (ports, endpoints) chunks; a placeholder when there is nothing.
        let mut desired: Vec<(Value, Vec<Value>)> = Vec::new();
        for (_, (ports, mut eps)) in groups {
            eps.sort_by(|a, b| {
                let ip = |e: &Value| e["addresses"][0].as_str().and_then(|s| s.parse::<std::net::IpAddr>().ok());
                ip(a).cmp(&ip(b)).then_with(|| a["targetRef"]["name"].as_str().cmp(&b["targetRef"]["name"].as_str()))
            });
            for chunk in eps.chunks(MAX_ENDPOINTS_PER_SLICE) {
                desired.push((ports.clone(), chunk.to_vec()));
            }
        }
        if desired.is_empty() {
            desired.push((Value::Array(vec![]), Vec::new()));
        }

        let mut labels = svc["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        for reserved in [SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL] {
            labels.remove(reserved);
        }
        labels.insert(SERVICE_NAME_LABEL.into(), json!(name));
        labels.insert(MANAGED_BY_LABEL.into(), json!(CONTROLLER_NAME));
        if is_headless(&svc) {
            labels.insert(HEADLESS_LABEL.into(), json!(""));
        }
        let owner = json!({"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc["metadata"]["uid"],
            "controller": true, "blockOwnerDeletion": true});

        let sel = LabelSelector::parse(&format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={CONTROLLER_NAME}"))
            .map_err(|e| crate::api::status::ApiError::bad_request(e.to_string()))?;
        let mut existing: Vec<Arc<Value>> = podutil::list_in(api, &slice_rt, &ns, Some(sel))?
            .into_iter()
            .filter(|s| s["addressType"] == "IPv4" && !podutil::is_terminating(s))
            .collect();
        existing.sort_by(|a, b| meta_str(a, "name").cmp(meta_str(b, "name")));

        let mut to_create = Vec::new();
        for (ports, eps) in desired {
            let pos = existing.iter().position(|s| slice_ports(s) == ports);
            let Some(pos) = pos else {
                to_create.push((ports, eps));
                continue;
            };
            let cur = existing.remove(pos);
            let mut next = (*cur).clone();
            next["metadata"]["labels"] = Value::Object(labels.clone());
            next["metadata"]["ownerReferences"] = json!([owner]);
            set_content(&mut next, ports, eps);
            if next != *cur {
                api.update(&slice_rt, &ns, meta_str(&cur, "name"), next, Subresource::Main, &ctx)?;
            }
        }
        // Unused slices are reused for new port sets before new ones are made, as Kubernetes does.
        for (ports, eps) in to_create {
            if let Some(cur) = existing.pop() {
                let mut next = (*cur).clone();
                next["metadata"]["labels"] = Value::Object(labels.clone());
                next["metadata"]["ownerReferences"] = json!([owner]);
                set_content(&mut next, ports, eps);
                api.update(&slice_rt, &ns, meta_str(&cur, "name"), next, Subresource::Main, &ctx)?;
                continue;
            }
            let mut slice = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "generateName": slice_prefix(&name),
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [owner],
                },
                "addressType": "IPv4",
            });
            set_content(&mut slice, ports, eps);
            api.create(&slice_rt, &ns, slice, &ctx)?;
        }
        for stale in existing {
            match api.delete(&slice_rt, &ns, meta_str(&stale, "name"), &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

fn slice_ports(slice: &Value) -> Value {
    match &slice["ports"] {
        Value::Array(a) => Value::Array(a.clone()),
        _ => Value::Array(vec![]),
    }
}

fn set_content(slice: &mut Value, ports: Value, endpoints: Vec<Value>) {
    if let Some(m) = slice.as_object_mut() {
        m.insert("endpoints".into(), Value::Array(endpoints));
        if ports.as_array().is_some_and(|p| !p.is_empty()) {
            m.insert("ports".into(), ports);
        } else {
            m.remove("ports");
        }
    }
}

/// `getEndpointSlicePrefix`: `<service>-`, shortened to leave room for the random suffix.
fn slice_prefix(service: &str) -> String {
    let mut prefix = format!("{service}-");
    if prefix.len() > 58 {
        prefix.truncate(58);
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_leave_room_for_the_suffix() {
        assert_eq!(slice_prefix("web"), "web-");
        assert_eq!(slice_prefix(&"x".repeat(70)).len(), 58);
    }

    #[test]
    fn content_omits_empty_ports() {
        let mut s = json!({"ports": [{"port": 1}]});
        set_content(&mut s, json!([]), vec![]);
        assert!(s.get("ports").is_none());
        assert_eq!(s["endpoints"], json!([]));
    }
}
