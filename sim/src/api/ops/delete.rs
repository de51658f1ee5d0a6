//! Delete and deletecollection: preconditions, graceful pod deletion, finalizers, namespace
//! termination, and the propagation policy that the garbage collector then carries out.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Api, ListOptions, meta_str, now_rfc3339};
use crate::api::resources::ResourceType;
use crate::api::status::{ApiError, ApiResult};
use crate::api::store::Mutation;

/// Finalizer the garbage collector honours for foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer the garbage collector honours for orphaning dependents.
pub const ORPHAN: &str = "orphan";

/// Namespaces kube-apiserver refuses to delete.
pub const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are removed after the owner, by the garbage collector.
    Background,
    /// The owner waits (finalizer `foregroundDeletion`) until its dependents are gone.
    Foreground,
    /// Dependents lose their owner reference and stay.
    Orphan,
}

impl Propagation {
    /// Parses the wire value.
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiError::invalid_field(
                "DeleteOptions",
                "",
                "meta.k8s.io",
                "FieldValueNotSupported",
                "propagationPolicy",
                format!("Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""),
            )),
        }
    }
}

/// `DeleteOptions`.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Propagation policy; `None` = the object's finalizers or Background.
    pub propagation: Option<Propagation>,
    /// Grace period override (pods).
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` body (fields absent stay `None`).
    pub fn from_json(v: &Value) -> ApiResult<Self> {
        let mut o = Self::default();
        if let Some(p) = v["propagationPolicy"].as_str() {
            o.propagation = Some(Propagation::parse(p)?);
        } else if v["orphanDependents"].as_bool() == Some(true) {
            o.propagation = Some(Propagation::Orphan);
        }
        o.grace_period = v["gracePeriodSeconds"].as_i64();
        o.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        o.precondition_rv = v["preconditions"]["resourceVersion"].as_str().map(str::to_string);
        o.dry_run = v["dryRun"].as_array().is_some_and(|a| a.iter().any(|d| d == "All"));
        Ok(o)
    }
}

/// Whether a deleting object with no metadata finalizers must still stay: a namespace whose
/// content is being removed (`spec.finalizers`), or a pod its kubelet still has to stop.
pub fn blocks_removal(obj: &Value) -> bool {
    awaits_kubelet(obj)
        || (obj["kind"] == "Namespace" && obj["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()))
}

/// A pod bound to a node is removed by its kubelet once its containers stopped, unless its
/// grace period is 0.
pub fn awaits_kubelet(obj: &Value) -> bool {
    obj["kind"] == "Pod"
        && obj["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty())
        && obj["metadata"]["deletionGracePeriodSeconds"].as_i64().is_some_and(|g| g > 0)
        && !matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

impl Api {
    /// Deletes (or starts deleting) one object; answers its last or current state.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Arc<Value>> {
        if rt.group.is_empty() && rt.plural == "namespaces" && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let gr = rt.group_resource();
        let has_dependents = self
            .store
            .get(&gr, namespace, name)
            .and_then(|o| o["metadata"]["uid"].as_str().map(|u| !self.store.dependents(u).is_empty()))
            .unwrap_or(false);
        let committed = self.store.mutate(&gr, namespace, name, |cur, _| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            if let Some(uid) = &opts.precondition_uid {
                let actual = meta_str(cur, "uid");
                if uid != actual {
                    return Err(ApiError::conflict(
                        &rt.group,
                        &rt.plural,
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                let actual = meta_str(cur, "resourceVersion");
                if rv != actual {
                    return Err(ApiError::conflict(
                        &rt.group,
                        &rt.plural,
                        name,
                        &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"),
                    ));
                }
            }
            let decision = plan_delete(rt, cur, opts, has_dependents);
            Ok(match decision {
                Mutation::Update(v) | Mutation::Delete(v) if opts.dry_run => Mutation::Unchanged(Arc::new(v)),
                other => other,
            })
        })?;
        self.after_commit(rt, &committed);
        Ok(committed.object)
    }

    /// Deletes every object of a collection that matches the list options.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let mut list = list.clone();
        list.limit = 0;
        list.continue_token = None;
        let page = self.list(rt, namespace, &list)?;
        let mut deleted = Vec::new();
        for obj in page.items {
            let (ns, name) = crate::api::store::key_of(&obj);
            match self.delete(rt, &ns, &name, opts) {
                Ok(o) => deleted.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

/// What deleting `cur` does right now.
fn plan_delete(rt: &ResourceType, cur: &Arc<Value>, opts: &DeleteOptions, has_dependents: bool) -> Mutation {
    let mut obj = (**cur).clone();
    let deleting = !cur["metadata"]["deletionTimestamp"].is_null();
    let mut fins = finalizers(&obj);
    let policy = opts.propagation.unwrap_or(if fins.iter().any(|f| f == ORPHAN) {
        Propagation::Orphan
    } else if fins.iter().any(|f| f == FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    });
    if has_dependents {
        let want = match policy {
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
            Propagation::Background => None,
        };
        fins.retain(|f| f != FOREGROUND && f != ORPHAN);
        if let Some(f) = want {
            fins.push(f.to_string());
        }
    }
    let is_pod = rt.group.is_empty() && rt.plural == "pods";
    let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
    let now = now_rfc3339();
    let meta_changed = fins != finalizers(&obj);
    {
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Mutation::Delete(obj);
        };
        if meta_changed {
            meta.insert("finalizers".into(), json!(fins));
        }
    }
    if is_namespace && obj["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
        if deleting && !meta_changed {
            return Mutation::Unchanged(cur.clone());
        }
        mark_deleting(&mut obj, &now, 0);
        obj["status"]["phase"] = json!("Terminating");
        return Mutation::Update(obj);
    }
    if is_pod {
        let grace =
            opts.grace_period.or_else(|| cur["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30).max(0);
        let current_grace = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
        let mut candidate = obj.clone();
        mark_deleting(&mut candidate, &now, grace);
        if deleting {
            // A shorter grace period may replace a longer one (e.g. `--force --grace-period=0`).
            if current_grace.is_some_and(|g| grace < g) {
                if let Some(meta) = candidate["metadata"].as_object_mut() {
                    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                return finish_or_update(candidate);
            }
            return if meta_changed { Mutation::Update(obj) } else { Mutation::Unchanged(cur.clone()) };
        }
        return finish_or_update(candidate);
    }
    if !fins.is_empty() {
        if deleting {
            return if meta_changed { Mutation::Update(obj) } else { Mutation::Unchanged(cur.clone()) };
        }
        mark_deleting(&mut obj, &now, 0);
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            // The CRD registry sets Terminating as it marks the CRD deleted
            // (apiextensions-apiserver `registry/customresourcedefinition/etcd.go`).
            crate::api::crd::mark_deletion_pending(&mut obj);
        }
        return Mutation::Update(obj);
    }
    if !deleting {
        mark_deleting(&mut obj, &now, 0);
    }
    Mutation::Delete(obj)
}

fn finish_or_update(obj: Value) -> Mutation {
    if awaits_kubelet(&obj) || !finalizers(&obj).is_empty() { Mutation::Update(obj) } else { Mutation::Delete(obj) }
}

fn mark_deleting(obj: &mut Value, now: &str, grace: i64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta.get("deletionTimestamp").is_none_or(Value::is_null) {
            let ts = k8s_openapi::jiff::Timestamp::now()
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(grace))
                .ok()
                .and_then(|t| k8s_openapi::jiff::Timestamp::from_second(t.as_second()).ok())
                .map(|t| t.to_string())
                .unwrap_or_else(|| now.to_string());
            meta.insert("deletionTimestamp".into(), json!(ts));
        }
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
}
