//! Where a proxy request goes: the `[scheme:]name[:port]` segment of the URL, and the pod
//! address or Service endpoint it resolves to, with kube-apiserver's errors.

use std::net::{IpAddr, SocketAddr};

use rand::RngExt;
use serde_json::Value;

use crate::api::ops::{Api, ListOptions};
use crate::api::status::{ApiError, ApiResult};
use crate::network::endpoints::{self, SERVICE_NAME_LABEL, ServicePort};

/// The `[scheme:]name[:port]` segment of a proxy URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    /// `http`, `https` or "" (= http).
    pub scheme: String,
    /// Pod or Service name.
    pub name: String,
    /// Port number or name; "" when not given.
    pub port: String,
}

impl Id {
    /// Splits the segment as kube-apiserver does: `name`, `name:port` or `scheme:name:port`;
    /// `None` when malformed (empty name, unknown scheme, more parts).
    pub fn parse(segment: &str) -> Option<Self> {
        let segment = segment.replace("%3A", ":").replace("%3a", ":");
        let parts: Vec<&str> = segment.split(':').collect();
        let (scheme, name, port) = match parts.as_slice() {
            [name] => ("", *name, ""),
            [name, port] => ("", *name, *port),
            [scheme, name, port] => (*scheme, *name, *port),
            _ => return None,
        };
        if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
            return None;
        }
        Some(Self { scheme: scheme.into(), name: name.into(), port: port.into() })
    }
}

/// The address of `pod` for a request to `port` (number, container port name, or "" for the
/// first declared container port, else 80).
///
/// kube-apiserver answers 400 "address not allowed" for a pod without an IP; the embedded
/// cluster answers 503, like the other "not reachable (yet)" cases, so that callers can treat
/// every one of them as "retry later".
pub fn pod_address(pod: &Value, port: &str) -> ApiResult<SocketAddr> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    if matches!(phase, "Succeeded" | "Failed") {
        // Its address may already belong to another pod.
        return Err(ApiError::unavailable(format!("pod {name:?} is not running (phase {phase})")));
    }
    let ip = pod["status"]["podIP"]
        .as_str()
        .or_else(|| pod["status"]["podIPs"][0]["ip"].as_str())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| ApiError::unavailable(format!("pod {name:?} has no IP (phase {phase})")))?;
    let ip: IpAddr =
        ip.parse().map_err(|_| ApiError::unavailable(format!("pod {name:?} has no valid IP (status.podIP {ip:?})")))?;
    Ok(SocketAddr::new(ip, container_port(pod, port)?))
}

fn container_port(pod: &Value, port: &str) -> ApiResult<u16> {
    let declared = || {
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
    };
    let number = |p: &Value| p["containerPort"].as_u64().and_then(|n| u16::try_from(n).ok());
    if port.is_empty() {
        return Ok(declared().next().and_then(number).unwrap_or(80));
    }
    if let Ok(n) = port.parse::<u16>() {
        return if n == 0 { Err(ApiError::bad_request(format!("invalid port {port:?}"))) } else { Ok(n) };
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    declared()
        .find(|p| p["name"].as_str() == Some(port))
        .and_then(number)
        .ok_or_else(|| ApiError::bad_request(format!("pod {name:?} has no container port named {port:?}")))
}

/// The Service port that `port` (name, number, or "" for the first) designates.
pub fn service_port(svc: &Value, port: &str) -> ApiResult<ServicePort> {
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let ports = svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let found = ports.iter().find(|p| {
        port.is_empty() || p["name"].as_str() == Some(port) || p["port"].as_u64().is_some_and(|n| n.to_string() == port)
    });
    let p =
        found.ok_or_else(|| ApiError::unavailable(format!("no service port {port:?} found for service {name:?}")))?;
    Ok(ServicePort {
        name: p["name"].as_str().unwrap_or_default().to_string(),
        port: p["port"].as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or_default(),
    })
}

/// A ready endpoint of Service `svc` for `port`, picked at random as kube-apiserver does: from
/// the Endpoints object, else (none written) from the Service's EndpointSlices.
pub fn service_endpoint(api: &Api, namespace: &str, svc: &Value, port: &ServicePort) -> ApiResult<SocketAddr> {
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let spec_type = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(spec_type, "ClusterIP" | "NodePort" | "LoadBalancer") {
        return Err(ApiError::bad_request(format!("unsupported service type {spec_type:?}")));
    }
    let mut ready = ready_from_endpoints(api, namespace, name, port)?;
    if ready.is_empty() {
        ready = ready_from_slices(api, namespace, name, port)?;
    }
    if ready.is_empty() {
        return Err(ApiError::unavailable(format!("no endpoints available for service {name:?}")));
    }
    Ok(ready[rand::rng().random_range(0..ready.len())])
}

fn ready_from_endpoints(api: &Api, namespace: &str, name: &str, port: &ServicePort) -> ApiResult<Vec<SocketAddr>> {
    let rt = api.resource("", "v1", "endpoints")?;
    match api.get(&rt, namespace, name) {
        Ok(ep) => Ok(endpoints::from_endpoints(&ep, port)),
        Err(e) if e.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn ready_from_slices(api: &Api, namespace: &str, name: &str, port: &ServicePort) -> ApiResult<Vec<SocketAddr>> {
    let rt = api.resource("discovery.k8s.io", "v1", "endpointslices")?;
    let selector = format!("{SERVICE_NAME_LABEL}={name}");
    let opts = ListOptions::parse(Some(&selector), None, &rt.kind)?;
    let list = api.list(&rt, Some(namespace), &opts)?;
    let slices: Vec<&Value> = list.items.iter().map(|s| &**s).collect();
    // Only ready endpoints: kube-apiserver reads Endpoints `addresses`, never terminating ones.
    let ready_only: Vec<Value> = slices
        .iter()
        .map(|s| {
            let mut s = (*s).clone();
            if let Some(eps) = s["endpoints"].as_array_mut() {
                eps.retain(|e| e["conditions"]["ready"].as_bool().unwrap_or(true));
            }
            s
        })
        .collect();
    let refs: Vec<&Value> = ready_only.iter().collect();
    Ok(endpoints::from_slices(&refs, port, true).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_split_like_kube_apiserver() {
        let id = |s: &str| Id::parse(s).map(|i| (i.scheme, i.name, i.port));
        assert_eq!(id("web"), Some(("".into(), "web".into(), "".into())));
        assert_eq!(id("web:8081"), Some(("".into(), "web".into(), "8081".into())));
        assert_eq!(id("http:web:results"), Some(("http".into(), "web".into(), "results".into())));
        assert_eq!(id("web%3A8081"), Some(("".into(), "web".into(), "8081".into())));
        assert_eq!(id(":8081"), None);
        assert_eq!(id("ftp:web:21"), None);
        assert_eq!(id("a:b:c:d"), None);
    }

    fn pod(phase: &str, ip: Option<&str>) -> Value {
        json!({"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "sidecar"}, {"name": "app", "ports": [
                {"name": "results", "containerPort": 8081}, {"name": "metrics", "containerPort": 9090}]}]},
            "status": {"phase": phase, "podIP": ip}})
    }

    #[test]
    fn pod_ports_resolve_by_number_name_or_first_declared() {
        let p = pod("Running", Some("127.40.16.2"));
        let addr = |port: &str| pod_address(&p, port).map(|a| a.to_string()).map_err(|e| (e.code, e.message));
        assert_eq!(addr("").unwrap(), "127.40.16.2:8081");
        assert_eq!(addr("9090").unwrap(), "127.40.16.2:9090");
        assert_eq!(addr("metrics").unwrap(), "127.40.16.2:9090");
        assert_eq!(addr("grpc").unwrap_err().0, 400);
        assert_eq!(addr("0").unwrap_err().0, 400);
    }

    #[test]
    fn pods_without_ip_or_finished_are_unavailable() {
        let e = pod_address(&pod("Pending", None), "").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (503, "pod \"web\" has no IP (phase Pending)"));
        let e = pod_address(&pod("Failed", Some("127.40.16.2")), "").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (503, "pod \"web\" is not running (phase Failed)"));
    }

    #[test]
    fn service_ports_resolve_by_name_or_number() {
        let svc = json!({"metadata": {"name": "api"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080}, {"name": "results", "port": 8081}]}});
        assert_eq!(service_port(&svc, "").unwrap(), ServicePort { name: "http".into(), port: 80 });
        assert_eq!(service_port(&svc, "results").unwrap(), ServicePort { name: "results".into(), port: 8081 });
        assert_eq!(service_port(&svc, "8081").unwrap().name, "results");
        let e = service_port(&svc, "8080").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (503, "no service port \"8080\" found for service \"api\""));
    }
}
