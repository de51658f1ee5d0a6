//! Where a program sends its requests: a URL, or a Kubernetes Service name.
//!
//! The embedded cluster has no DNS, so a Service name is first resolved from the variables
//! the kubelet sets for every Service of the pod's namespace (`<NAME>_SERVICE_HOST` and
//! `<NAME>_SERVICE_PORT`, the name upper-cased with `-` as `_`). When they are absent (a
//! Service created after the pod, or in another namespace) the name is used as a DNS name,
//! which works on kind.

use std::fmt;

use anyhow::bail;

/// A resolved target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Base URL without a trailing `/` (e.g. `http://127.96.0.4:80`).
    pub base: String,
    /// `host:port` (SkyWalking's target address).
    pub address: String,
    /// The service name (`peer.service`): the Service name, or the URL's host.
    pub service: String,
}

impl Target {
    /// Resolves `spec` (a `http://` URL, or `name[:port]`), reading Service variables with
    /// `var`.
    pub fn resolve(spec: &str, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let spec = spec.trim();
        if spec.is_empty() {
            bail!("empty target (expected a URL or a Service name)");
        }
        if let Some(rest) = spec.strip_prefix("http://").or_else(|| spec.strip_prefix("https://")) {
            let base = spec.trim_end_matches('/').to_string();
            let hostport = rest.split('/').next().unwrap_or_default();
            if hostport.is_empty() {
                bail!("target URL {spec:?} has no host");
            }
            let address = if hostport.contains(':') {
                hostport.to_string()
            } else {
                format!("{hostport}:{}", default_port(spec))
            };
            let service = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h).to_string();
            return Ok(Target { base, address, service });
        }
        if spec.contains("://") {
            bail!("target {spec:?}: only http:// and https:// URLs are supported");
        }
        let (name, port) = match spec.rsplit_once(':') {
            Some((n, p)) => {
                let port: u16 =
                    p.parse().map_err(|_| anyhow::anyhow!("target {spec:?}: port {p:?} is not a number"))?;
                (n, Some(port))
            }
            None => (spec, None),
        };
        let valid = name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
        if name.is_empty() || !valid {
            bail!("target {spec:?} is neither a URL nor a Service name");
        }
        let short = name.split('.').next().unwrap_or(name);
        let prefix = short.to_uppercase().replace('-', "_");
        let env_host = var(&format!("{prefix}_SERVICE_HOST")).filter(|h| !h.is_empty());
        let (host, port) = match env_host {
            Some(h) => {
                let p = match port {
                    Some(p) => p,
                    None => {
                        let v = var(&format!("{prefix}_SERVICE_PORT")).unwrap_or_else(|| "80".into());
                        v.parse().map_err(|_| anyhow::anyhow!("{prefix}_SERVICE_PORT={v:?} is not a port"))?
                    }
                };
                (h, p)
            }
            None => (name.to_string(), port.unwrap_or(80)),
        };
        let address = format!("{host}:{port}");
        Ok(Target { base: format!("http://{address}"), address, service: short.to_string() })
    }

    /// Resolves `spec` with the process environment.
    pub fn from_env(spec: &str) -> anyhow::Result<Self> {
        Self::resolve(spec, |n| std::env::var(n).ok())
    }
}

fn default_port(url: &str) -> u16 {
    if url.starts_with("https://") { 443 } else { 80 }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.service, self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PLANNER_SERVICE_HOST" => Some("127.96.0.7".into()),
            "PLANNER_SERVICE_PORT" => Some("8080".into()),
            "MAP_SERVER_SERVICE_HOST" => Some("127.96.0.9".into()),
            _ => None,
        }
    }

    #[test]
    fn service_names_resolve_from_service_variables_else_dns() {
        let t = Target::resolve("planner", env).expect("resolves");
        assert_eq!(
            (t.base.as_str(), t.address.as_str(), t.service.as_str()),
            ("http://127.96.0.7:8080", "127.96.0.7:8080", "planner")
        );
        assert_eq!(Target::resolve("planner:9000", env).expect("port").base, "http://127.96.0.7:9000");
        assert_eq!(Target::resolve("map-server", env).expect("dashes").base, "http://127.96.0.9:80");
        let dns = Target::resolve("planner.demo.svc", |_| None).expect("dns");
        assert_eq!((dns.base.as_str(), dns.service.as_str()), ("http://planner.demo.svc:80", "planner"));
    }

    #[test]
    fn urls_are_taken_as_given_and_bad_targets_named() {
        let t = Target::resolve("http://127.0.0.1:9/", env).expect("url");
        assert_eq!(
            (t.base.as_str(), t.address.as_str(), t.service.as_str()),
            ("http://127.0.0.1:9", "127.0.0.1:9", "127.0.0.1")
        );
        assert_eq!(Target::resolve("http://planner", env).expect("url").address, "planner:80");
        for bad in ["", "ftp://x", "a b", "planner:http", "http://"] {
            let err = Target::resolve(bad, env).expect_err(bad).to_string();
            assert!(err.contains("target") || err.contains("empty"), "{bad}: {err}");
        }
    }
}
