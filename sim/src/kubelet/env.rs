//! The environment of a container process, as the kubelet builds it: Service variables of the
//! pod's namespace, `KUBERNETES_SERVICE_*` (the embedded API server), the embedded cluster's
//! fixed variables (`POD_NAME`, `POD_NAMESPACE`, `POD_IP`, `NODE_NAME`, `KUBECONFIG`), then
//! `envFrom` and `env` of the container spec (`value` with `$(VAR)` expansion, `fieldRef`,
//! `configMapKeyRef`, `secretKeyRef`), later entries winning.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::ops::{Api, ListOptions};

/// What the environment depends on besides the pod.
#[derive(Debug, Clone)]
pub struct EnvContext<'a> {
    /// The pod.
    pub pod: &'a Value,
    /// Its IP.
    pub pod_ip: &'a str,
    /// Its node's IP.
    pub host_ip: &'a str,
    /// `host:port` of the API server (for `KUBERNETES_SERVICE_*`), if known.
    pub api_server: Option<(String, u16)>,
    /// Path of the kubeconfig the container should use, if any.
    pub kubeconfig: Option<String>,
}

/// An ordered environment; setting a variable again replaces its value in place.
#[derive(Debug, Default, Clone)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// Sets `name` (replacing an earlier value).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    /// Value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The variables in order.
    pub fn into_vars(self) -> Vec<(String, String)> {
        self.vars
    }

    /// The variables in order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    fn as_map(&self) -> BTreeMap<&str, &str> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
}

/// Builds the environment of `container`; `Err` is the `CreateContainerConfigError` message.
pub fn build(api: &Api, ctx: &EnvContext<'_>, container: &Value) -> Result<Env, String> {
    let pod = ctx.pod;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut env = Env::default();
    if pod["spec"]["enableServiceLinks"].as_bool() != Some(false) {
        service_links(api, ns, &mut env);
    }
    if let Some((host, port)) = &ctx.api_server {
        env.set("KUBERNETES_SERVICE_HOST", host.clone());
        env.set("KUBERNETES_SERVICE_PORT", port.to_string());
        env.set("KUBERNETES_PORT", format!("tcp://{host}:{port}"));
    }
    env.set("POD_NAME", pod["metadata"]["name"].as_str().unwrap_or_default());
    env.set("POD_NAMESPACE", ns);
    env.set("POD_IP", ctx.pod_ip);
    env.set("NODE_NAME", pod["spec"]["nodeName"].as_str().unwrap_or_default());
    if let Some(k) = &ctx.kubeconfig {
        env.set("KUBECONFIG", k.clone());
    }
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        let (kind, src) = if from["configMapRef"].is_object() {
            ("configmaps", &from["configMapRef"])
        } else if from["secretRef"].is_object() {
            ("secrets", &from["secretRef"])
        } else {
            continue;
        };
        let name = src["name"].as_str().unwrap_or_default();
        let optional = src["optional"].as_bool() == Some(true);
        match read_object(api, kind, ns, name) {
            Some(obj) => {
                for (k, v) in data_of(&obj, kind) {
                    env.set(format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => return Err(format!("{} \"{name}\" not found", singular(kind))),
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let Some(name) = var["name"].as_str() else { continue };
        let value = if let Some(v) = var["value"].as_str() {
            Some(expand(v, &env.as_map()))
        } else if var["valueFrom"].is_object() {
            value_from(api, ctx, &var["valueFrom"])?
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            env.set(name, v);
        }
    }
    Ok(env)
}

/// Expands `$(VAR)` references with earlier variables; `$$` is a literal `$`; unknown
/// references stay as written (Kubernetes' rules).
pub fn expand(s: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Expands `$(VAR)` in command and args with the container's environment.
pub fn expand_all(items: &[String], env: &Env) -> Vec<String> {
    let map = env.as_map();
    items.iter().map(|s| expand(s, &map)).collect()
}

fn value_from(api: &Api, ctx: &EnvContext<'_>, from: &Value) -> Result<Option<String>, String> {
    let pod = ctx.pod;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        let v = match path {
            "metadata.name" => pod["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            "metadata.namespace" => ns.to_string(),
            "metadata.uid" => pod["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            "spec.nodeName" => pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
            "spec.serviceAccountName" => pod["spec"]["serviceAccountName"].as_str().unwrap_or("default").to_string(),
            "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
            "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
            p => {
                if let Some(key) = label_key(p, "metadata.labels") {
                    pod["metadata"]["labels"][key].as_str().unwrap_or_default().to_string()
                } else if let Some(key) = label_key(p, "metadata.annotations") {
                    pod["metadata"]["annotations"][key].as_str().unwrap_or_default().to_string()
                } else {
                    return Err(format!("unsupported fieldRef fieldPath {p:?}"));
                }
            }
        };
        return Ok(Some(v));
    }
    if let Some(res) = from["resourceFieldRef"]["resource"].as_str() {
        return Ok(Some(
            if res.starts_with("limits.cpu") || res.starts_with("requests.cpu") { "1" } else { "0" }.into(),
        ));
    }
    for (field, kind) in [("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")] {
        let r = &from[field];
        if !r.is_object() {
            continue;
        }
        let name = r["name"].as_str().unwrap_or_default();
        let key = r["key"].as_str().unwrap_or_default();
        let optional = r["optional"].as_bool() == Some(true);
        let Some(obj) = read_object(api, kind, ns, name) else {
            return if optional { Ok(None) } else { Err(format!("{} \"{name}\" not found", singular(kind))) };
        };
        return match data_of(&obj, kind).remove(key) {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in {} {ns}/{name}", singular(kind).to_lowercase())),
        };
    }
    Ok(None)
}

fn label_key<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")
}

fn singular(kind: &str) -> &'static str {
    if kind == "secrets" { "secret" } else { "configmap" }
}

fn read_object(api: &Api, plural: &str, ns: &str, name: &str) -> Option<std::sync::Arc<Value>> {
    let rt = api.resource("", "v1", plural).ok()?;
    api.get(&rt, ns, name).ok()
}

/// Key/value data of a ConfigMap (`data`, `binaryData`) or Secret (`data` decoded, `stringData`).
fn data_of(obj: &Value, kind: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let decode = |v: &Value| -> Option<String> {
        let bytes: k8s_openapi::ByteString = serde_json::from_value(v.clone()).ok()?;
        Some(String::from_utf8_lossy(&bytes.0).into_owned())
    };
    if kind == "secrets" {
        for (k, v) in obj["data"].as_object().into_iter().flatten() {
            if let Some(s) = decode(v) {
                out.insert(k.clone(), s);
            }
        }
        for (k, v) in obj["stringData"].as_object().into_iter().flatten() {
            out.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    } else {
        for (k, v) in obj["binaryData"].as_object().into_iter().flatten() {
            if let Some(s) = decode(v) {
                out.insert(k.clone(), s);
            }
        }
        for (k, v) in obj["data"].as_object().into_iter().flatten() {
            out.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    out
}

/// `{NAME}_SERVICE_HOST`, `{NAME}_SERVICE_PORT`, `{NAME}_SERVICE_PORT_{PORT}` and the Docker
/// link variables (`{NAME}_PORT`, `{NAME}_PORT_{port}_{PROTO}[_PROTO|_PORT|_ADDR]`) of every
/// Service with a cluster IP in `ns`, as they exist now.
fn service_links(api: &Api, ns: &str, env: &mut Env) {
    let Ok(rt) = api.resource("", "v1", "services") else { return };
    let Ok(list) = api.list(&rt, Some(ns), &ListOptions::default()) else { return };
    for svc in &list.items {
        let ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = svc["metadata"]["name"].as_str().unwrap_or_default().to_uppercase().replace('-', "_");
        let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        env.set(format!("{name}_SERVICE_HOST"), ip);
        env.set(format!("{name}_SERVICE_PORT"), first["port"].to_string());
        for p in &ports {
            if let Some(pn) = p["name"].as_str().filter(|n| !n.is_empty()) {
                env.set(format!("{name}_SERVICE_PORT_{}", pn.to_uppercase().replace('-', "_")), p["port"].to_string());
            }
        }
        let proto = first["protocol"].as_str().unwrap_or("TCP").to_lowercase();
        env.set(format!("{name}_PORT"), format!("{proto}://{ip}:{}", first["port"]));
        for p in &ports {
            let port = p["port"].to_string();
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            let base = format!("{name}_PORT_{port}_{}", proto.to_uppercase());
            env.set(base.clone(), format!("{}://{ip}:{port}", proto.to_lowercase()));
            env.set(format!("{base}_PROTO"), proto.to_lowercase());
            env.set(format!("{base}_PORT"), port.clone());
            env.set(format!("{base}_ADDR"), ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars: BTreeMap<&str, &str> = [("A", "1"), ("B", "x")].into_iter().collect();
        assert_eq!(expand("$(A)-$(B)", &vars), "1-x");
        assert_eq!(expand("$$(A) $(C) $", &vars), "$(A) $(C) $");
    }

    #[test]
    fn set_replaces_in_place() {
        let mut e = Env::default();
        e.set("A", "1");
        e.set("B", "2");
        e.set("A", "3");
        assert_eq!(e.vars(), &[("A".to_string(), "3".to_string()), ("B".to_string(), "2".to_string())]);
    }
}
