//! Admission on create, as kube-apiserver's built-in plugins and registries do it:
//! ClusterIP allocation for Services (from 127.96.0.0/16 on the embedded cluster, so that
//! the service proxy can listen on loopback), DefaultTolerationSeconds for Pods, and
//! validation of probes.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{Api, ListOptions};
use crate::api::status::{ApiError, ApiResult, Cause};

/// First ClusterIP handed out (127.96.0.1..9 are left for the cluster's own use).
pub const SERVICE_IP_START: Ipv4Addr = Ipv4Addr::new(127, 96, 0, 10);
/// Last ClusterIP.
pub const SERVICE_IP_END: Ipv4Addr = Ipv4Addr::new(127, 96, 255, 254);
/// tolerationSeconds added for not-ready / unreachable nodes (kube-apiserver's default).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// ClusterIPs per block: each embedded cluster starts its search in a block of its own.
const SERVICE_IP_BLOCK: u32 = 2048;

/// The first ClusterIP of a new API server's block. ClusterIPs are loopback addresses its
/// Service proxies listen on, so two embedded clusters (in one process: concurrent scenarios;
/// or two processes) handing out the same address would serve each other's Services. Blocks
/// are taken in turn within the process, starting from one derived from the process id.
pub fn service_ip_block() -> Ipv4Addr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let blocks = (u32::from(SERVICE_IP_END) - u32::from(SERVICE_IP_START)) / SERVICE_IP_BLOCK;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let block = (std::process::id().wrapping_mul(7).wrapping_add(n)) % blocks;
    Ipv4Addr::from(u32::from(SERVICE_IP_START) + block * SERVICE_IP_BLOCK)
}

impl Api {
    /// Allocates a free ClusterIP, or checks a requested one is in range and free.
    pub(crate) fn allocate_cluster_ip(&self, svc: &mut Value) -> ApiResult<()> {
        if !svc["spec"].is_object() {
            // Validation reports the malformed spec.
            return Ok(());
        }
        let spec_type = svc["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
        if spec_type == "ExternalName" {
            return Ok(());
        }
        let requested = svc["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
        if requested == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(());
        }
        let name = svc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let in_use = self.cluster_ips_in_use();
        let ip = if requested.is_empty() {
            let (start, end, first) =
                (u32::from(SERVICE_IP_START), u32::from(SERVICE_IP_END), u32::from(self.service_ip_first));
            (first..=end)
                .chain(start..first)
                .map(Ipv4Addr::from)
                .find(|ip| !in_use.contains(ip))
                .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?
        } else {
            let ip: Ipv4Addr = requested.parse().map_err(|_| {
                ApiError::invalid_field(
                    "Service",
                    &name,
                    "",
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    format!("Invalid value: \"{requested}\": must be a valid IP address"),
                )
            })?;
            if !(SERVICE_IP_START..=SERVICE_IP_END).contains(&ip) {
                return Err(ApiError::invalid_field(
                    "Service",
                    &name,
                    "",
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    format!(
                        "Invalid value: \"{requested}\": provided IP is not in the valid range. The range of valid IPs is 127.96.0.0/16"
                    ),
                ));
            }
            if in_use.contains(&ip) {
                return Err(ApiError::invalid_field(
                    "Service",
                    &name,
                    "",
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    format!(
                        "Invalid value: \"{requested}\": failed to allocate IP {requested}: provided IP is already allocated"
                    ),
                ));
            }
            ip
        };
        svc["spec"]["clusterIP"] = json!(ip.to_string());
        svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        svc["spec"]["ipFamilies"] = json!(["IPv4"]);
        svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        svc["spec"]["internalTrafficPolicy"] = json!("Cluster");
        Ok(())
    }

    fn cluster_ips_in_use(&self) -> BTreeSet<Ipv4Addr> {
        let Some(rt) = self.registry.get("", "v1", "services") else { return BTreeSet::new() };
        self.list(&rt, None, &ListOptions::default())
            .map(|l| {
                l.items.iter().filter_map(|s| s["spec"]["clusterIP"].as_str().and_then(|ip| ip.parse().ok())).collect()
            })
            .unwrap_or_default()
    }
}

/// DefaultTolerationSeconds: pods tolerate not-ready / unreachable nodes for 300 s unless they
/// say otherwise, which is what makes the node lifecycle controller evict them after that time.
pub fn default_tolerations(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else { return };
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let covered = list.iter().any(|t| {
            let effect_ok = t["effect"].is_null() || t["effect"] == "NoExecute" || t["effect"] == "";
            let key_ok = t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists");
            effect_ok && key_ok
        });
        if !covered {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}));
        }
    }
}

/// Probe rules: exactly one handler, positive periods and thresholds, liveness/startup
/// successThreshold of 1. `at` is the container path, e.g. `spec.containers[0]`.
pub fn validate_probes(container: &Value, at: &str) -> Result<(), Cause> {
    for kind in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let probe = &container[kind];
        if probe.is_null() {
            continue;
        }
        let field = format!("{at}.{kind}");
        let handlers: Vec<&str> =
            ["httpGet", "tcpSocket", "exec", "grpc"].into_iter().filter(|h| !probe[*h].is_null()).collect();
        if handlers.len() != 1 {
            let message = if handlers.is_empty() {
                "Required value: must specify a handler type".to_string()
            } else {
                format!("Forbidden: may not specify more than 1 handler type (got {})", handlers.join(", "))
            };
            let reason = if handlers.is_empty() { "FieldValueRequired" } else { "FieldValueForbidden" };
            return Err(Cause { reason: reason.into(), field, message });
        }
        for (f, min) in [
            ("periodSeconds", 1),
            ("timeoutSeconds", 1),
            ("failureThreshold", 1),
            ("successThreshold", 1),
            ("initialDelaySeconds", 0),
        ] {
            if let Some(v) = probe[f].as_i64()
                && v < min
            {
                return Err(Cause {
                    reason: "FieldValueInvalid".into(),
                    field: format!("{field}.{f}"),
                    message: format!("Invalid value: {v}: must be greater than or equal to {min}"),
                });
            }
        }
        if kind != "readinessProbe" && probe["successThreshold"].as_i64().is_some_and(|v| v != 1) {
            return Err(Cause {
                reason: "FieldValueInvalid".into(),
                field: format!("{field}.successThreshold"),
                message: "Invalid value: must be 1".into(),
            });
        }
        if let Some(port) = probe["httpGet"]["port"].as_i64().or(probe["tcpSocket"]["port"].as_i64())
            && !(1..=65535).contains(&port)
        {
            return Err(Cause {
                reason: "FieldValueInvalid".into(),
                field: format!("{field}.{}.port", handlers[0]),
                message: format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            });
        }
        if handlers[0] == "exec" && probe["exec"]["command"].as_array().is_none_or(Vec::is_empty) {
            return Err(Cause {
                reason: "FieldValueRequired".into(),
                field: format!("{field}.exec.command"),
                message: "Required value".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_need_one_handler_and_sane_numbers() {
        let ok = json!({"readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}});
        assert!(validate_probes(&ok, "spec.containers[0]").is_ok());
        let none = json!({"livenessProbe": {"periodSeconds": 1}});
        assert_eq!(validate_probes(&none, "spec.containers[0]").unwrap_err().field, "spec.containers[0].livenessProbe");
        let two = json!({"readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}}});
        assert!(validate_probes(&two, "c").unwrap_err().message.contains("more than 1"));
        let zero = json!({"readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 0}});
        assert_eq!(validate_probes(&zero, "c").unwrap_err().field, "c.readinessProbe.periodSeconds");
        let live = json!({"livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}});
        assert!(validate_probes(&live, "c").is_err());
    }

    #[test]
    fn pods_get_default_tolerations_once() {
        let mut pod = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
        default_tolerations(&mut pod);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(t[1]["tolerationSeconds"], 300);
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;

    #[test]
    fn api_servers_in_one_process_hand_out_clusterips_from_different_blocks() {
        let a = Api::new(10);
        let b = Api::new(10);
        let ip = |api: &Api| {
            let mut svc = json!({"metadata": {"name": "dispatch"}, "spec": {"ports": [{"port": 80}]}});
            api.allocate_cluster_ip(&mut svc).expect("allocated");
            svc["spec"]["clusterIP"].as_str().expect("an IP").parse::<Ipv4Addr>().expect("IPv4")
        };
        let (ia, ib) = (ip(&a), ip(&b));
        assert_ne!(ia, ib, "the same first Service in two clusters gets different ClusterIPs");
        for i in [ia, ib] {
            assert!((SERVICE_IP_START..=SERVICE_IP_END).contains(&i), "{i}");
        }
    }
}
