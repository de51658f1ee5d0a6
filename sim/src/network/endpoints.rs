//! Which backends a Service port sends new connections to, as kube-proxy computes them:
//! from the EndpointSlices labelled `kubernetes.io/service-name`, matching the slice port by the
//! Service port's name; ready endpoints, or — when there are none — endpoints that are
//! serving and terminating (KEP-1669). Without any EndpointSlice for the Service, the core/v1
//! Endpoints object is read instead (ready `addresses` only).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One port of a Service the proxy serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `name` ("" when unnamed).
    pub name: String,
    /// `port`.
    pub port: u16,
}

/// The ClusterIPs and TCP ports of a Service that the proxy listens for; empty for headless,
/// ExternalName and IP-less Services.
pub fn frontends(svc: &Value) -> (Vec<IpAddr>, Vec<ServicePort>) {
    let spec = &svc["spec"];
    if spec["type"] == "ExternalName" {
        return (Vec::new(), Vec::new());
    }
    let mut ips: Vec<IpAddr> = spec["clusterIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if ips.is_empty()
        && let Some(ip) = spec["clusterIP"].as_str().and_then(|s| s.parse().ok())
    {
        ips.push(ip);
    }
    let ports = spec["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
                .filter_map(|p| {
                    let port = u16::try_from(p["port"].as_u64()?).ok()?;
                    Some(ServicePort { name: p["name"].as_str().unwrap_or_default().to_string(), port })
                })
                .collect()
        })
        .unwrap_or_default();
    (ips, ports)
}

/// Backends for `port` from EndpointSlices; `None` when `slices` is empty.
pub fn from_slices(slices: &[&Value], port: &ServicePort, family_v4: bool) -> Option<Vec<SocketAddr>> {
    if slices.is_empty() {
        return None;
    }
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        let family = slice["addressType"].as_str().unwrap_or("IPv4");
        if (family == "IPv4") != family_v4 || family == "FQDN" {
            continue;
        }
        let Some(target) = slice["ports"].as_array().and_then(|ps| {
            ps.iter().find(|p| {
                p["name"].as_str().unwrap_or_default() == port.name && p["protocol"].as_str().unwrap_or("TCP") == "TCP"
            })
        }) else {
            continue;
        };
        let Some(target) = target["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else { continue };
        for ep in slice["endpoints"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(ip) = ep["addresses"].as_array().and_then(|a| a.first()).and_then(|a| a.as_str()?.parse().ok())
            else {
                continue;
            };
            let cond = &ep["conditions"];
            let is_ready = cond["ready"].as_bool().unwrap_or(true);
            let serving = cond["serving"].as_bool().unwrap_or(is_ready);
            let is_terminating = cond["terminating"].as_bool().unwrap_or(false);
            let addr = SocketAddr::new(ip, target);
            if is_ready {
                ready.insert(addr);
            } else if serving && is_terminating {
                terminating.insert(addr);
            }
        }
    }
    Some(if ready.is_empty() { terminating.into_iter().collect() } else { ready.into_iter().collect() })
}

/// Backends for `port` from a core/v1 Endpoints object.
pub fn from_endpoints(endpoints: &Value, port: &ServicePort) -> Vec<SocketAddr> {
    let mut out = BTreeSet::new();
    for subset in endpoints["subsets"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(target) = subset["ports"]
            .as_array()
            .and_then(|ps| {
                ps.iter().find(|p| {
                    p["name"].as_str().unwrap_or_default() == port.name
                        && p["protocol"].as_str().unwrap_or("TCP") == "TCP"
                })
            })
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for a in subset["addresses"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if let Some(ip) = a["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                out.insert(SocketAddr::new(ip, target));
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn port(name: &str) -> ServicePort {
        ServicePort { name: name.into(), port: 80 }
    }

    #[test]
    fn frontends_skip_headless_external_and_udp() {
        let svc = json!({"spec": {"clusterIP": "127.96.0.10", "clusterIPs": ["127.96.0.10"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}});
        let (ips, ports) = frontends(&svc);
        assert_eq!(ips, vec!["127.96.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(ports, vec![ServicePort { name: "http".into(), port: 80 }]);
        assert!(
            frontends(&json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}}))
                .0
                .is_empty()
        );
        assert!(frontends(&json!({"spec": {"type": "ExternalName", "externalName": "x"}})).0.is_empty());
    }

    #[test]
    fn slices_give_ready_endpoints_by_port_name() {
        let a = json!({"addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "admin", "port": 9000}],
        "endpoints": [
            {"addresses": ["127.11.0.5"], "conditions": {"ready": true}},
            {"addresses": ["127.12.0.5"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["127.13.0.5"]}
        ]});
        let got = from_slices(&[&a], &port("http"), true).unwrap();
        let want: Vec<SocketAddr> = vec!["127.11.0.5:8080".parse().unwrap(), "127.13.0.5:8080".parse().unwrap()];
        assert_eq!(got, want);
        let admin = from_slices(&[&a], &port("admin"), true).unwrap();
        assert_eq!(admin.len(), 2);
        assert!(from_slices(&[&a], &port("other"), true).unwrap().is_empty());
        assert!(from_slices(&[], &port("http"), true).is_none());
    }

    #[test]
    fn terminating_serving_endpoints_are_the_fallback() {
        let s = json!({"addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": [
            {"addresses": ["127.11.0.5"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["127.12.0.5"], "conditions": {"ready": false, "serving": false, "terminating": true}}
        ]});
        assert_eq!(
            from_slices(&[&s], &port(""), true).unwrap(),
            vec!["127.11.0.5:8080".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn endpoints_fallback_reads_ready_addresses() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "127.11.0.7"}], "notReadyAddresses": [{"ip": "127.12.0.7"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]});
        assert_eq!(from_endpoints(&ep, &port("http")), vec!["127.11.0.7:8080".parse::<SocketAddr>().unwrap()]);
        assert!(from_endpoints(&ep, &port("grpc")).is_empty());
    }
}
