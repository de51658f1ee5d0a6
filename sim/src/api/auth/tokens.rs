//! Bearer tokens: one admin token per cluster, and ServiceAccount tokens handed to pods. A
//! ServiceAccount token stops authenticating when its ServiceAccount is deleted.

use std::collections::HashMap;
use std::sync::RwLock;

use super::User;

/// The token table.
#[derive(Debug)]
pub struct Tokens {
    admin: String,
    issued: RwLock<HashMap<String, (String, String)>>,
}

impl Default for Tokens {
    fn default() -> Self {
        Self { admin: format!("hadrill-admin-{}", uuid::Uuid::new_v4().simple()), issued: RwLock::default() }
    }
}

impl Tokens {
    /// The admin's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// A token for `namespace/name` (the same one each time).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        if let Some(t) =
            self.issued.read().ok().and_then(|issued| {
                issued.iter().find(|(_, (ns, n))| ns == namespace && n == name).map(|(t, _)| t.clone())
            })
        {
            return t;
        }
        let token = format!("hadrill-sa-{}", uuid::Uuid::new_v4().simple());
        if let Ok(mut issued) = self.issued.write() {
            issued.insert(token.clone(), (namespace.to_string(), name.to_string()));
        }
        token
    }

    /// The user a token belongs to (ServiceAccount existence is checked by the caller).
    pub fn authenticate(&self, token: &str) -> Option<User> {
        if token == self.admin {
            return Some(User::admin());
        }
        let issued = self.issued.read().ok()?;
        issued.get(token).map(|(ns, name)| User::service_account(ns, name))
    }
}
