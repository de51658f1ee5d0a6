//! RBAC authorization as kube-apiserver's RBAC authorizer evaluates it: the user's
//! RoleBindings in the request namespace and ClusterRoleBindings grant the rules of their
//! Role / ClusterRole; a rule matches on API group, resource (with `resource/subresource`),
//! verb, and resourceNames. `*` wildcards are honoured. ClusterRole aggregation is not
//! evaluated (aggregated roles must list their rules).

use serde_json::Value;

use super::User;
use crate::api::ops::{Api, ListOptions};

/// What a request wants to do.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    /// API group ("" = core).
    pub group: &'a str,
    /// Plural resource.
    pub resource: &'a str,
    /// Subresource, if any.
    pub subresource: Option<&'a str>,
    /// Namespace ("" = cluster scope).
    pub namespace: &'a str,
    /// Object name, if any.
    pub name: Option<&'a str>,
}

impl Attributes<'_> {
    /// The kube-apiserver message for a denied request.
    pub fn forbidden_message(&self, user: &User) -> String {
        let resource = match self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_string(),
        };
        let target = match self.name {
            Some(n) => format!("{} \"{n}\"", crate::api::status::qualified(self.group, self.resource)),
            None => crate::api::status::qualified(self.group, self.resource),
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", self.namespace)
        };
        format!(
            "{target} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.name, self.verb, self.group
        )
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn subject_matches(subject: &Value, user: &User, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str() {
        Some("User") => name == user.name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.service_account_ref() == Some((ns, name))
        }
        _ => false,
    }
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let groups = strings(&rule["apiGroups"]);
    let resources = strings(&rule["resources"]);
    let verbs = strings(&rule["verbs"]);
    let names = strings(&rule["resourceNames"]);
    let resource = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let group_ok = groups.iter().any(|g| *g == "*" || *g == a.group);
    let resource_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == resource
            || (a.subresource.is_some() && r.strip_prefix("*/").is_some_and(|s| Some(s) == a.subresource))
    });
    let verb_ok = verbs.iter().any(|v| *v == "*" || *v == a.verb);
    let names_ok = names.is_empty() || a.name.is_some_and(|n| names.contains(&n));
    group_ok && resource_ok && verb_ok && names_ok
}

fn role_rules(api: &Api, kind: &str, namespace: &str, name: &str) -> Vec<Value> {
    let (plural, ns) = if kind == "ClusterRole" { ("clusterroles", "") } else { ("roles", namespace) };
    let Some(rt) = api.registry.get("rbac.authorization.k8s.io", "v1", plural) else { return Vec::new() };
    api.get(&rt, ns, name).ok().and_then(|r| r["rules"].as_array().cloned()).unwrap_or_default()
}

/// Whether `user` may do `a`.
pub fn authorize(api: &Api, user: &User, a: &Attributes) -> bool {
    if user.is_master() {
        return true;
    }
    let list = |plural: &str, ns: Option<&str>| -> Vec<std::sync::Arc<Value>> {
        api.registry
            .get("rbac.authorization.k8s.io", "v1", plural)
            .and_then(|rt| api.list(&rt, ns, &ListOptions::default()).ok())
            .map(|l| l.items)
            .unwrap_or_default()
    };
    let mut grants: Vec<(String, String, String)> = Vec::new();
    for b in list("clusterrolebindings", None) {
        if strings_subjects(&b).iter().any(|s| subject_matches(s, user, "")) {
            grants.push((
                "ClusterRole".into(),
                String::new(),
                b["roleRef"]["name"].as_str().unwrap_or_default().into(),
            ));
        }
    }
    if !a.namespace.is_empty() {
        for b in list("rolebindings", Some(a.namespace)) {
            if strings_subjects(&b).iter().any(|s| subject_matches(s, user, a.namespace)) {
                let kind = b["roleRef"]["kind"].as_str().unwrap_or("Role").to_string();
                grants.push((kind, a.namespace.to_string(), b["roleRef"]["name"].as_str().unwrap_or_default().into()));
            }
        }
    }
    grants.iter().any(|(kind, ns, name)| role_rules(api, kind, ns, name).iter().any(|r| rule_allows(r, a)))
}

fn strings_subjects(binding: &Value) -> Vec<Value> {
    binding["subjects"].as_array().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs<'a>(verb: &'a str, resource: &'a str, sub: Option<&'a str>, name: Option<&'a str>) -> Attributes<'a> {
        Attributes { verb, group: "", resource, subresource: sub, namespace: "ns", name }
    }

    #[test]
    fn rules_match_group_resource_verb_and_names() {
        let rule = json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]});
        assert!(rule_allows(&rule, &attrs("list", "pods", None, None)));
        assert!(rule_allows(&rule, &attrs("get", "pods", Some("log"), Some("p"))));
        assert!(!rule_allows(&rule, &attrs("delete", "pods", None, Some("p"))));
        assert!(!rule_allows(&rule, &attrs("get", "pods", Some("status"), Some("p"))));
        let named =
            json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["leader"]});
        assert!(rule_allows(&named, &attrs("update", "configmaps", None, Some("leader"))));
        assert!(!rule_allows(&named, &attrs("update", "configmaps", None, Some("other"))));
        assert!(!rule_allows(&named, &attrs("list", "configmaps", None, None)));
        let wild = json!({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["patch"]});
        assert!(rule_allows(&wild, &attrs("patch", "deployments", Some("scale"), Some("d"))));
    }

    #[test]
    fn forbidden_messages_read_like_kube_apiserver() {
        let u = User::service_account("ns", "ctl");
        let m = attrs("list", "pods", None, None).forbidden_message(&u);
        assert_eq!(
            m,
            "pods is forbidden: User \"system:serviceaccount:ns:ctl\" cannot list resource \"pods\" in API group \"\" in the namespace \"ns\""
        );
    }
}
