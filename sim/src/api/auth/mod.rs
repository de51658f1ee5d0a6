//! Authentication (bearer tokens: the admin's, and ServiceAccount tokens issued for pods) and
//! authorization (RBAC from the stored Roles, ClusterRoles and bindings). The admin is in
//! `system:masters` and unrestricted, as on kind.

mod rbac;
mod tokens;

pub use rbac::{Attributes, authorize};
pub use tokens::Tokens;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// e.g. `kubernetes-admin` or `system:serviceaccount:ns:name`.
    pub name: String,
    /// Groups, e.g. `system:masters`, `system:serviceaccounts:ns`.
    pub groups: Vec<String>,
}

impl User {
    /// The cluster admin.
    pub fn admin() -> Self {
        Self { name: "kubernetes-admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] }
    }

    /// A ServiceAccount's user.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// `system:masters` bypasses authorization.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// (namespace, name) when this is a ServiceAccount.
    pub fn service_account_ref(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix("system:serviceaccount:")?;
        rest.split_once(':')
    }
}
