//! The Deployment controller: one ReplicaSet per pod template, rolled out with the
//! `RollingUpdate` (maxSurge / maxUnavailable) or `Recreate` strategy, as kube-controller-manager's
//! `pkg/controller/deployment`.
//!
//! - The ReplicaSet of a template is `<deployment>-<pod-template-hash>`; the hash label is added
//!   to its selector, labels and template; it carries a controller owner reference and the
//!   `deployment.kubernetes.io/{revision,desired-replicas,max-replicas}` annotations (plus the
//!   Deployment's own annotations); the Deployment carries the revision annotation too.
//! - Scaling events (the `desired-replicas` annotation of an active ReplicaSet differs from
//!   `spec.replicas`) and paused Deployments scale proportionally; otherwise the strategy runs.
//! - Status: observedGeneration, replicas, updatedReplicas, readyReplicas, availableReplicas,
//!   unavailableReplicas, terminatingReplicas, collisionCount and the `Available` and
//!   `Progressing` conditions with Kubernetes' reasons; the progress deadline is checked by a
//!   timed re-queue.
//! - Old ReplicaSets beyond `revisionHistoryLimit` are deleted once the rollout is complete.
//!
//! Simplified: rollbacks through the deprecated `rollbackTo` field are not supported and no
//! Events are recorded. Stricter than Kubernetes, so that maxSurge / maxUnavailable hold for the
//! pods themselves at every instant and not only for the ReplicaSets' `spec.replicas`: when
//! sizing the new ReplicaSet, an old one counts the pods it still has (`status.replicas`) until it
//! has removed them, and when scaling old ReplicaSets down, a ReplicaSet never counts more
//! available pods than its `spec.replicas` (its status may predate a scale-down). Kubernetes
//! accepts both races between its controllers; the decisions are otherwise the same.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::podutil::{self, Key, int};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, Subresource, WriteCtx, meta_str, now_rfc3339};
use crate::api::resources::{GroupResource, ResourceType};
use crate::api::selectors::LabelSelector;
use crate::api::status::{ApiError, ApiResult};
use crate::api::store::{Event, EventType, key_of};

const MANAGER: &str = "deployment-controller";
/// Label that tells the ReplicaSets (and pods) of different templates apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Revision of a ReplicaSet / Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const SKIPPED_ANNOTATIONS: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
const REVISION_HISTORY_LIMIT_CHARS: usize = 2000;

const AVAILABLE: &str = "Available";
const PROGRESSING: &str = "Progressing";
const REPLICA_FAILURE: &str = "ReplicaFailure";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

/// The Deployment reconciler.
#[derive(Debug, Default)]
pub struct DeploymentController;

/// Runs the Deployment controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, DeploymentController).await
}

fn controller_key(obj: &Value, kind: &str) -> Option<Key> {
    let r = podutil::controller_ref(obj)?;
    (r["kind"] == kind && r["apiVersion"] == "apps/v1")
        .then(|| (meta_str(obj, "namespace").to_string(), r["name"].as_str().unwrap_or_default().to_string()))
}

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        MANAGER
    }

    fn keys(&mut self, api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("apps", "deployments") => out.push(key_of(&event.object)),
            ("apps", "replicasets") => {
                let rs = &event.object;
                let before = out.len();
                for obj in [Some(&**rs), event.old.as_deref()].into_iter().flatten() {
                    out.extend(controller_key(obj, "Deployment"));
                }
                if out.len() == before && podutil::controller_ref(rs).is_none() && event.kind != EventType::Deleted {
                    // An orphan: the Deployments that could adopt it.
                    let Ok(rt) = podutil::builtin(api, "apps", "deployments") else { return };
                    for d in podutil::list_in(api, &rt, meta_str(rs, "namespace"), None).unwrap_or_default() {
                        if LabelSelector::from_json(&d["spec"]["selector"])
                            .is_ok_and(|s| !s.is_empty() && s.matches(rs["metadata"]["labels"].as_object()))
                        {
                            out.push(key_of(&d));
                        }
                    }
                }
            }
            ("", "pods") => {
                // Recreate waits for old pods to be gone: follow pod -> ReplicaSet -> Deployment.
                let changed = event.kind == EventType::Deleted
                    || event.old.as_ref().is_none_or(|o| {
                        o["status"]["phase"] != event.object["status"]["phase"]
                            || o["metadata"]["deletionTimestamp"] != event.object["metadata"]["deletionTimestamp"]
                    });
                if !changed {
                    return;
                }
                let Some(r) = podutil::controller_ref(&event.object).filter(|r| r["kind"] == "ReplicaSet") else {
                    return;
                };
                let Some(oref) = r["uid"].as_str().and_then(|u| api.store.by_uid(u)) else { return };
                if let Some(rs) = api.store.get(&oref.gr, &oref.namespace, &oref.name) {
                    out.extend(controller_key(&rs, "Deployment"));
                }
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let d_rt = podutil::builtin(api, "apps", "deployments")?;
        let rs_rt = podutil::builtin(api, "apps", "replicasets")?;
        let d = match api.get(&d_rt, &key.0, &key.1) {
            Ok(d) => (*d).clone(),
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(selector) = LabelSelector::from_json(&d["spec"]["selector"]) else {
            tracing::warn!(deployment = %key.1, "invalid selector");
            return Ok(None);
        };
        let mut sync = Sync { api, d_rt, rs_rt, d };
        if selector.is_empty() {
            // Selects everything: Kubernetes refuses to act and only records the generation.
            let mut next = sync.d.clone();
            next["status"]["observedGeneration"] = next["metadata"]["generation"].clone();
            sync.persist(next)?;
            return Ok(None);
        }
        sync.run(&selector)
    }
}

/// One sync of one Deployment.
struct Sync<'a> {
    api: &'a Api,
    d_rt: Arc<ResourceType>,
    rs_rt: Arc<ResourceType>,
    d: Value,
}

fn replicas(obj: &Value) -> i64 {
    int(&obj["spec"]["replicas"], 1)
}

fn status_count(obj: &Value, field: &str) -> i64 {
    int(&obj["status"][field], 0)
}

fn revision(rs: &Value) -> i64 {
    rs["metadata"]["annotations"][REVISION].as_str().and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

fn annotations_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj.get_mut("metadata")?.as_object_mut()?;
    let a = meta.entry("annotations").or_insert_with(|| json!({}));
    if !a.is_object() {
        *a = json!({});
    }
    a.as_object_mut()
}

fn created_order(a: &Value, b: &Value) -> Ordering {
    let ts = |o: &Value| podutil::parse_ms(&o["metadata"]["creationTimestamp"]).unwrap_or(0);
    ts(a).cmp(&ts(b)).then_with(|| meta_str(a, "name").cmp(meta_str(b, "name")))
}

fn is_active(rs: &Value) -> bool {
    replicas(rs) > 0
}

/// Removes nulls and empty maps/lists, as `apiequality.Semantic.DeepEqual` treats them alike.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| {
                    !(v.is_null()
                        || v.as_object().is_some_and(Map::is_empty)
                        || v.as_array().is_some_and(Vec::is_empty))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// `EqualIgnoreHash`: pod templates equal but for the `pod-template-hash` label.
fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(l) = t["metadata"]["labels"].as_object_mut() {
            l.remove(POD_TEMPLATE_HASH);
        }
        normalized(&t)
    };
    strip(a) == strip(b)
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

fn new_condition(kind: &str, status: &str, reason: &str, message: String) -> Value {
    let now = now_rfc3339();
    json!({"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message})
}

fn remove_condition(status: &mut Value, kind: &str) {
    if let Some(list) = status["conditions"].as_array_mut() {
        list.retain(|c| c["type"] != kind);
    }
}

/// `SetDeploymentCondition`: no change when status and reason are the same; the transition time is
/// kept while the status is.
fn set_condition(status: &mut Value, mut cond: Value) {
    if let Some(cur) = condition(status, cond["type"].as_str().unwrap_or_default()) {
        if cur["status"] == cond["status"] && cur["reason"] == cond["reason"] {
            return;
        }
        if cur["status"] == cond["status"] {
            cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    remove_condition(status, cond["type"].as_str().unwrap_or_default());
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(list) = status["conditions"].as_array_mut() {
        list.push(cond);
    }
}

fn put_nonzero(status: &mut Value, key: &str, n: i64) {
    if n != 0 {
        status[key] = json!(n);
    }
}

impl Sync<'_> {
    fn ctx(&self) -> WriteCtx {
        WriteCtx::controller(MANAGER)
    }

    fn name(&self) -> &str {
        meta_str(&self.d, "name")
    }

    fn namespace(&self) -> &str {
        meta_str(&self.d, "namespace")
    }

    fn is_rolling(&self) -> bool {
        self.d["spec"]["strategy"]["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate"
    }

    fn has_progress_deadline(&self) -> bool {
        self.d["spec"]["progressDeadlineSeconds"].as_i64().is_some_and(|s| s != i64::from(i32::MAX))
    }

    /// `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down; not both zero).
    fn fenceposts(&self) -> ApiResult<(i64, i64)> {
        let ru = &self.d["spec"]["strategy"]["rollingUpdate"];
        let desired = replicas(&self.d);
        let surge = podutil::scaled_value(&ru["maxSurge"], "25%", desired, true)?;
        let unavailable = podutil::scaled_value(&ru["maxUnavailable"], "25%", desired, false)?;
        Ok(if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) })
    }

    fn max_surge(&self) -> i64 {
        if !self.is_rolling() {
            return 0;
        }
        self.fenceposts().map(|(s, _)| s).unwrap_or(0)
    }

    fn max_unavailable(&self) -> i64 {
        let desired = replicas(&self.d);
        if !self.is_rolling() || desired == 0 {
            return 0;
        }
        self.fenceposts().map(|(_, u)| u.min(desired)).unwrap_or(0)
    }

    /// Writes annotation changes (main resource) and status changes (status subresource).
    fn persist(&mut self, desired: Value) -> ApiResult<()> {
        let (ns, name) = key_of(&self.d);
        if normalized(&desired["metadata"]["annotations"]) != normalized(&self.d["metadata"]["annotations"]) {
            let mut next = self.d.clone();
            next["metadata"]["annotations"] = desired["metadata"]["annotations"].clone();
            let w = self.api.update(&self.d_rt, &ns, &name, next, Subresource::Main, &self.ctx())?;
            self.d = (*w.object).clone();
        }
        if desired["status"] != self.d["status"] {
            let mut next = self.d.clone();
            next["status"] = desired["status"].clone();
            let w = self.api.update(&self.d_rt, &ns, &name, next, Subresource::Status, &self.ctx())?;
            self.d = (*w.object).clone();
        }
        Ok(())
    }

    fn run(&mut self, selector: &LabelSelector) -> ApiResult<Option<Duration>> {
        let deleting = podutil::is_terminating(&self.d);
        let owner_ref = podutil::controller_owner_ref(&self.d, "apps/v1", "Deployment");
        let candidates = podutil::list_in(self.api, &self.rs_rt, self.namespace(), None)?;
        let rs_list: Vec<Value> = podutil::claim(
            self.api,
            &self.rs_rt,
            &self.d,
            &owner_ref,
            selector,
            candidates,
            !deleting,
            MANAGER,
            &|_| true,
        )
        .into_iter()
        .map(|rs| (*rs).clone())
        .collect();
        if deleting {
            let (new, old) = self.all_replica_sets(&rs_list, false)?;
            return self.sync_status(new.as_ref(), &old);
        }
        self.check_paused_conditions()?;
        if self.d["spec"]["paused"] == true {
            return self.sync(&rs_list);
        }
        if self.is_scaling_event(&rs_list)? {
            return self.sync(&rs_list);
        }
        if self.is_rolling() { self.rollout_rolling(&rs_list) } else { self.rollout_recreate(&rs_list, selector) }
    }

    /// `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when asked) and the old ones.
    fn all_replica_sets(&mut self, rs_list: &[Value], create: bool) -> ApiResult<(Option<Value>, Vec<Value>)> {
        let new_name = self.find_new(rs_list).map(|rs| meta_str(rs, "name").to_string());
        let old: Vec<Value> =
            rs_list.iter().filter(|rs| Some(meta_str(rs, "name")) != new_name.as_deref()).cloned().collect();
        let new = self.new_replica_set(rs_list, &old, create)?;
        Ok((new, old))
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.
    fn find_new<'b>(&self, rs_list: &'b [Value]) -> Option<&'b Value> {
        let mut sorted: Vec<&Value> = rs_list.iter().collect();
        sorted.sort_by(|a, b| created_order(a, b));
        sorted.into_iter().find(|rs| equal_ignore_hash(&rs["spec"]["template"], &self.d["spec"]["template"]))
    }

    /// `getNewReplicaSet`.
    fn new_replica_set(&mut self, rs_list: &[Value], old: &[Value], create: bool) -> ApiResult<Option<Value>> {
        let new_revision = old.iter().map(revision).max().unwrap_or(0) + 1;
        if let Some(existing) = self.find_new(rs_list) {
            let mut rs = existing.clone();
            let annotations_updated = self.set_new_rs_annotations(&mut rs, new_revision, true);
            let min_ready = int(&self.d["spec"]["minReadySeconds"], 0);
            if annotations_updated || int(&rs["spec"]["minReadySeconds"], 0) != min_ready {
                rs["spec"]["minReadySeconds"] = json!(min_ready);
                let (ns, name) = key_of(&rs);
                let w = self.api.update(&self.rs_rt, &ns, &name, rs, Subresource::Main, &self.ctx())?;
                return Ok(Some((*w.object).clone()));
            }
            let mut next = self.d.clone();
            let mut needs_update = set_revision_annotation(&mut next, annotation(&rs, REVISION).unwrap_or_default());
            if self.has_progress_deadline() && condition(&next["status"], PROGRESSING).is_none() {
                let msg = format!("Found new replica set \"{}\"", meta_str(&rs, "name"));
                set_condition(&mut next["status"], new_condition(PROGRESSING, "True", "FoundNewReplicaSet", msg));
                needs_update = true;
            }
            if needs_update {
                self.persist(next)?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let collision = self.d["status"]["collisionCount"].as_i64();
        let hash = podutil::template_hash(&self.d["spec"]["template"], collision);
        let mut template = self.d["spec"]["template"].clone();
        template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
        let mut selector = self.d["spec"]["selector"].clone();
        selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
        let rs_name = format!("{}-{hash}", self.name());
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": self.namespace(),
                "labels": template["metadata"]["labels"],
                "ownerReferences": [podutil::controller_owner_ref(&self.d, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(&self.d["spec"]["minReadySeconds"], 0),
                "selector": selector,
                "template": template,
            },
        });
        let mut all: Vec<&Value> = old.iter().collect();
        all.push(&rs);
        let count = self.new_rs_new_replicas(&all, &rs)?;
        rs["spec"]["replicas"] = json!(count);
        self.set_new_rs_annotations(&mut rs, new_revision, false);
        let mut already_exists = false;
        let created = match self.api.create(&self.rs_rt, self.namespace(), rs, &self.ctx()) {
            Ok(w) => (*w.object).clone(),
            Err(e) if e.reason == "AlreadyExists" => {
                let existing = self.api.get(&self.rs_rt, self.namespace(), &rs_name)?;
                let uid = self.d["metadata"]["uid"].as_str().unwrap_or_default();
                if podutil::controlled_by(&existing, uid)
                    && equal_ignore_hash(&existing["spec"]["template"], &self.d["spec"]["template"])
                {
                    already_exists = true;
                    (*existing).clone()
                } else {
                    // A hash collision: a different template produced the same name.
                    let mut next = self.d.clone();
                    next["status"]["collisionCount"] = json!(collision.unwrap_or(0) + 1);
                    self.persist(next)?;
                    return Err(ApiError::conflict("apps", "deployments", self.name(), "hash collision"));
                }
            }
            Err(e) => {
                if self.has_progress_deadline() {
                    let mut next = self.d.clone();
                    let msg = format!("Failed to create new replica set \"{rs_name}\": {}", e.message);
                    set_condition(
                        &mut next["status"],
                        new_condition(PROGRESSING, "False", "ReplicaSetCreateError", msg),
                    );
                    self.persist(next)?;
                }
                return Err(e);
            }
        };
        let mut next = self.d.clone();
        let mut needs_update = set_revision_annotation(&mut next, &new_revision.to_string());
        if !already_exists && self.has_progress_deadline() {
            let msg = format!("Created new replica set \"{rs_name}\"");
            set_condition(&mut next["status"], new_condition(PROGRESSING, "True", "NewReplicaSetCreated", msg));
            needs_update = true;
        }
        if needs_update {
            self.persist(next)?;
        }
        Ok(Some(created))
    }

    /// `SetNewReplicaSetAnnotations`.
    fn set_new_rs_annotations(&self, rs: &mut Value, new_revision: i64, exists: bool) -> bool {
        let mut changed = false;
        if let Some(own) = self.d["metadata"]["annotations"].as_object()
            && let Some(target) = annotations_mut(rs)
        {
            for (k, v) in own {
                if SKIPPED_ANNOTATIONS.contains(&k.as_str()) || target.get(k) == Some(v) {
                    continue;
                }
                target.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        let old = annotation(rs, REVISION).map(str::to_string);
        let old_int = match old.as_deref().map(str::parse::<i64>) {
            Some(Ok(n)) => n,
            Some(Err(_)) if old.as_deref() != Some("") => return false,
            _ => 0,
        };
        if old_int < new_revision
            && let Some(target) = annotations_mut(rs)
        {
            target.insert(REVISION.into(), json!(new_revision.to_string()));
            changed = true;
            if let Some(old) = old.filter(|o| !o.is_empty()) {
                // Rolling back to this template: keep the revisions it had.
                let history = target.get(REVISION_HISTORY).and_then(Value::as_str).unwrap_or_default().to_string();
                let mut revisions: Vec<&str> = history.split(',').filter(|s| !s.is_empty()).collect();
                revisions.push(&old);
                while revisions.join(",").len() > REVISION_HISTORY_LIMIT_CHARS && revisions.len() > 1 {
                    revisions.remove(0);
                }
                target.insert(REVISION_HISTORY.into(), json!(revisions.join(",")));
            }
        }
        if !exists {
            let (desired, max) = (replicas(&self.d), replicas(&self.d) + self.max_surge());
            changed |= set_replicas_annotations(rs, desired, max);
        }
        changed
    }

    /// `NewRSNewReplicas`.
    fn new_rs_new_replicas(&self, all: &[&Value], new: &Value) -> ApiResult<i64> {
        let desired = replicas(&self.d);
        if !self.is_rolling() {
            return Ok(desired);
        }
        let surge =
            podutil::scaled_value(&self.d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%", desired, true)?;
        // Pods a ReplicaSet still has count until it has removed them (its status says so).
        let current: i64 = all.iter().map(|rs| replicas(rs).max(status_count(rs, "replicas"))).sum();
        let max_total = desired + surge;
        if current >= max_total {
            return Ok(replicas(new));
        }
        let up = (max_total - current).min(desired - replicas(new));
        Ok(replicas(new) + up)
    }

    /// `scaleReplicaSet`: sets `spec.replicas` and the replicas annotations; true when resized.
    fn scale(&self, rs: &mut Value, new_scale: i64) -> ApiResult<bool> {
        let (desired, max) = (replicas(&self.d), replicas(&self.d) + self.max_surge());
        let resize = replicas(rs) != new_scale;
        let mut next = rs.clone();
        let annotate = set_replicas_annotations(&mut next, desired, max);
        if !resize && !annotate {
            return Ok(false);
        }
        next["spec"]["replicas"] = json!(new_scale);
        let (ns, name) = key_of(rs);
        let w = self.api.update(&self.rs_rt, &ns, &name, next, Subresource::Main, &self.ctx())?;
        *rs = (*w.object).clone();
        Ok(resize)
    }

    fn check_paused_conditions(&mut self) -> ApiResult<()> {
        if !self.has_progress_deadline() {
            return Ok(());
        }
        let cond = condition(&self.d["status"], PROGRESSING);
        if cond.is_some_and(|c| c["reason"] == TIMED_OUT) {
            return Ok(());
        }
        let paused_cond = cond.is_some_and(|c| c["reason"] == PAUSED);
        let paused = self.d["spec"]["paused"] == true;
        let mut next = self.d.clone();
        if paused && !paused_cond {
            set_condition(
                &mut next["status"],
                new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused".into()),
            );
        } else if !paused && paused_cond {
            set_condition(
                &mut next["status"],
                new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed".into()),
            );
        } else {
            return Ok(());
        }
        self.persist(next)
    }

    /// `isScalingEvent`.
    fn is_scaling_event(&mut self, rs_list: &[Value]) -> ApiResult<bool> {
        let (new, old) = self.all_replica_sets(rs_list, false)?;
        let want = replicas(&self.d);
        Ok(old
            .iter()
            .chain(new.iter())
            .filter(|rs| is_active(rs))
            .any(|rs| annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i64>().ok()).is_some_and(|d| d != want)))
    }

    /// `sync`: scaling (proportional for RollingUpdate) and, when paused, history cleanup.
    fn sync(&mut self, rs_list: &[Value]) -> ApiResult<Option<Duration>> {
        let (mut new, mut old) = self.all_replica_sets(rs_list, false)?;
        self.scale_all(&mut new, &mut old)?;
        if self.d["spec"]["paused"] == true {
            self.cleanup(&old)?;
        }
        self.sync_status(new.as_ref(), &old)
    }

    /// `scale`.
    fn scale_all(&self, new: &mut Option<Value>, old: &mut [Value]) -> ApiResult<()> {
        let desired = replicas(&self.d);
        // One active (or no active: the newest) ReplicaSet takes the whole size.
        let active_count = old.iter().chain(new.iter()).filter(|rs| is_active(rs)).count();
        if active_count <= 1 {
            let target: Option<&mut Value> = if active_count == 1 {
                new.iter_mut().chain(old.iter_mut()).find(|rs| is_active(rs))
            } else if new.is_some() {
                new.as_mut()
            } else {
                old.iter_mut().max_by(|a, b| created_order(a, b))
            };
            if let Some(rs) = target
                && replicas(rs) != desired
            {
                self.scale(rs, desired)?;
            }
            return Ok(());
        }
        if let Some(n) = new.as_ref()
            && is_saturated(n, desired)
        {
            for rs in old.iter_mut().filter(|rs| is_active(rs)) {
                self.scale(rs, 0)?;
            }
            return Ok(());
        }
        if !self.is_rolling() {
            return Ok(());
        }
        let mut all: Vec<&mut Value> = old.iter_mut().chain(new.iter_mut()).filter(|rs| is_active(rs)).collect();
        let total: i64 = all.iter().map(|rs| replicas(rs)).sum();
        let allowed = if desired > 0 { desired + self.max_surge() } else { 0 };
        let to_add = allowed - total;
        match to_add.cmp(&0) {
            // Larger first; equal sizes: newer first when growing, older first when shrinking.
            Ordering::Greater => {
                all.sort_by(|a, b| replicas(b).cmp(&replicas(a)).then_with(|| created_order(b, a)));
            }
            Ordering::Less => {
                all.sort_by(|a, b| replicas(b).cmp(&replicas(a)).then_with(|| created_order(a, b)));
            }
            Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let p = self.proportion(rs, to_add, added);
                sizes.push(replicas(rs) + p);
                added += p;
            } else {
                sizes.push(replicas(rs));
            }
        }
        if let Some(first) = sizes.first_mut()
            && to_add != 0
        {
            *first = (*first + to_add - added).max(0);
        }
        for (rs, size) in all.into_iter().zip(sizes) {
            self.scale(rs, size)?;
        }
        Ok(())
    }

    /// `GetProportion`.
    fn proportion(&self, rs: &Value, to_add: i64, added: i64) -> i64 {
        if replicas(rs) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(rs);
        let allowed = to_add - added;
        if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
    }

    /// `getReplicaSetFraction`.
    fn fraction(&self, rs: &Value) -> i64 {
        let desired = replicas(&self.d);
        if desired == 0 {
            return -replicas(rs);
        }
        let max_now = desired + self.max_surge();
        let max_before = annotation(rs, MAX_REPLICAS)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| status_count(&self.d, "replicas"));
        if max_before == 0 {
            return 0;
        }
        let size = (replicas(rs) * max_now) as f64 / max_before as f64;
        (size + 0.5).floor() as i64 - replicas(rs)
    }

    /// `rolloutRolling`.
    fn rollout_rolling(&mut self, rs_list: &[Value]) -> ApiResult<Option<Duration>> {
        let (new, mut old) = self.all_replica_sets(rs_list, true)?;
        let Some(mut new) = new else { return self.sync_status(None, &old) };
        // Scale up the new ReplicaSet if possible.
        let desired = replicas(&self.d);
        let target = if replicas(&new) > desired {
            Some(desired)
        } else if replicas(&new) < desired {
            let all: Vec<&Value> = old.iter().chain(std::iter::once(&new)).collect();
            Some(self.new_rs_new_replicas(&all, &new)?)
        } else {
            None
        };
        if let Some(t) = target
            && self.scale(&mut new, t)?
        {
            return self.sync_rollout_status(Some(&new), &old);
        }
        if self.reconcile_old(&mut old, &new)? {
            return self.sync_rollout_status(Some(&new), &old);
        }
        if deployment_complete(&self.d, &self.d["status"]) {
            self.cleanup(&old)?;
        }
        self.sync_rollout_status(Some(&new), &old)
    }

    /// `reconcileOldReplicaSets`: true when something was scaled down.
    fn reconcile_old(&self, old: &mut [Value], new: &Value) -> ApiResult<bool> {
        let old_pods: i64 = old.iter().map(replicas).sum();
        if old_pods == 0 {
            return Ok(false);
        }
        let all_pods = old_pods + replicas(new);
        let min_available = replicas(&self.d) - self.max_unavailable();
        let new_unavailable = replicas(new) - available(new);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let mut order: Vec<usize> = (0..old.len()).collect();
        order.sort_by(|a, b| created_order(&old[*a], &old[*b]));
        // Unhealthy replicas first: they do not count against availability.
        let mut cleaned = 0;
        for &i in &order {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &mut old[i];
            if replicas(rs) == 0 || replicas(rs) == available(rs) {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(replicas(rs) - available(rs));
            let to = replicas(rs) - down;
            self.scale(rs, to)?;
            cleaned += down;
        }
        // Then healthy ones, as far as maxUnavailable allows.
        let available_pods: i64 = old.iter().map(available).sum::<i64>() + available(new);
        let mut scaled = 0;
        if available_pods > min_available {
            let total = available_pods - min_available;
            for &i in &order {
                if scaled >= total {
                    break;
                }
                let rs = &mut old[i];
                if replicas(rs) == 0 {
                    continue;
                }
                let down = replicas(rs).min(total - scaled);
                let to = replicas(rs) - down;
                self.scale(rs, to)?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    /// `rolloutRecreate`.
    fn rollout_recreate(&mut self, rs_list: &[Value], selector: &LabelSelector) -> ApiResult<Option<Duration>> {
        let (mut new, mut old) = self.all_replica_sets(rs_list, false)?;
        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| is_active(rs)) {
            scaled_down |= self.scale(rs, 0)?;
        }
        if scaled_down || self.old_pods_running(new.as_ref(), &old, selector)? {
            return self.sync_rollout_status(new.as_ref(), &old);
        }
        if new.is_none() {
            new = self.all_replica_sets(rs_list, true)?.0;
        }
        if let Some(rs) = new.as_mut() {
            let desired = replicas(&self.d);
            self.scale(rs, desired)?;
        }
        if deployment_complete(&self.d, &self.d["status"]) {
            self.cleanup(&old)?;
        }
        self.sync_rollout_status(new.as_ref(), &old)
    }

    /// `oldPodsRunning`: any pod of an old ReplicaSet that is not terminal (terminating counts).
    fn old_pods_running(&self, new: Option<&Value>, old: &[Value], selector: &LabelSelector) -> ApiResult<bool> {
        if old.iter().map(|rs| status_count(rs, "replicas")).sum::<i64>() > 0 {
            return Ok(true);
        }
        let pod_rt = podutil::builtin(self.api, "", "pods")?;
        let old_uids: Vec<&str> = old.iter().filter_map(|rs| rs["metadata"]["uid"].as_str()).collect();
        let new_uid = new.and_then(|rs| rs["metadata"]["uid"].as_str());
        let pods = podutil::list_in(self.api, &pod_rt, self.namespace(), Some(selector.clone()))?;
        Ok(pods.iter().any(|p| {
            let owner = podutil::controller_ref(p).and_then(|r| r["uid"].as_str());
            owner.is_some_and(|u| old_uids.contains(&u) && Some(u) != new_uid) && !podutil::is_terminal(p)
        }))
    }

    /// `cleanupDeployment`: deletes the oldest fully scaled-down ReplicaSets beyond the limit.
    fn cleanup(&self, old: &[Value]) -> ApiResult<()> {
        let Some(limit) = self.d["spec"]["revisionHistoryLimit"].as_i64() else { return Ok(()) };
        let mut cleanable: Vec<&Value> = old.iter().filter(|rs| !podutil::is_terminating(rs)).collect();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| revision(a).cmp(&revision(b)).then_with(|| created_order(a, b)));
        for rs in cleanable.into_iter().take(diff as usize) {
            let generation = int(&rs["metadata"]["generation"], 0);
            if status_count(rs, "replicas") != 0
                || replicas(rs) != 0
                || generation > status_count(rs, "observedGeneration")
                || podutil::is_terminating(rs)
            {
                continue;
            }
            match self.api.delete(&self.rs_rt, self.namespace(), meta_str(rs, "name"), &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `calculateStatus`.
    fn calculate_status(&self, new: Option<&Value>, old: &[Value]) -> Value {
        let all: Vec<&Value> = old.iter().chain(new).collect();
        let sum = |f: &str| all.iter().map(|rs| status_count(rs, f)).sum::<i64>();
        let available_replicas = sum("availableReplicas");
        let total: i64 = all.iter().map(|rs| replicas(rs)).sum();
        let mut status = json!({});
        put_nonzero(&mut status, "observedGeneration", int(&self.d["metadata"]["generation"], 0));
        put_nonzero(&mut status, "replicas", sum("replicas"));
        put_nonzero(&mut status, "updatedReplicas", new.map(|rs| status_count(rs, "replicas")).unwrap_or(0));
        put_nonzero(&mut status, "readyReplicas", sum("readyReplicas"));
        put_nonzero(&mut status, "availableReplicas", available_replicas);
        put_nonzero(&mut status, "unavailableReplicas", (total - available_replicas).max(0));
        status["terminatingReplicas"] = json!(sum("terminatingReplicas"));
        if !self.d["status"]["collisionCount"].is_null() {
            status["collisionCount"] = self.d["status"]["collisionCount"].clone();
        }
        if let Some(conds) = self.d["status"]["conditions"].as_array() {
            status["conditions"] = Value::Array(conds.clone());
        }
        let cond = if available_replicas >= replicas(&self.d) - self.max_unavailable() {
            new_condition(AVAILABLE, "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
        } else {
            new_condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            )
        };
        set_condition(&mut status, cond);
        status
    }

    /// `syncDeploymentStatus`: counts and the Available condition.
    fn sync_status(&mut self, new: Option<&Value>, old: &[Value]) -> ApiResult<Option<Duration>> {
        let status = self.calculate_status(new, old);
        let mut next = self.d.clone();
        next["status"] = status;
        self.persist(next)?;
        Ok(None)
    }

    /// `syncRolloutStatus`: counts, Available, Progressing (with the progress deadline).
    fn sync_rollout_status(&mut self, new: Option<&Value>, old: &[Value]) -> ApiResult<Option<Duration>> {
        let mut status = self.calculate_status(new, old);
        if !self.has_progress_deadline() {
            remove_condition(&mut status, PROGRESSING);
        }
        let current = condition(&self.d["status"], PROGRESSING).cloned();
        let complete_before = int(&status["replicas"], 0) == int(&status["updatedReplicas"], 0)
            && current.as_ref().is_some_and(|c| c["reason"] == NEW_RS_AVAILABLE);
        let subject = match new {
            Some(rs) => format!("ReplicaSet \"{}\"", meta_str(rs, "name")),
            None => format!("Deployment \"{}\"", self.name()),
        };
        if self.has_progress_deadline() && !complete_before {
            if deployment_complete(&self.d, &status) {
                let msg = format!("{subject} has successfully progressed.");
                set_condition(&mut status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg));
            } else if deployment_progressing(&self.d, &status) {
                let mut cond =
                    new_condition(PROGRESSING, "True", "ReplicaSetUpdated", format!("{subject} is progressing."));
                if let Some(cur) = current.as_ref() {
                    if cur["status"] == "True" {
                        cond["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, cond);
            } else if self.timed_out(&status) {
                let msg = format!("{subject} has timed out progressing.");
                set_condition(&mut status, new_condition(PROGRESSING, "False", TIMED_OUT, msg));
            }
        }
        let failure = new
            .into_iter()
            .chain(old.iter())
            .find_map(|rs| condition(&rs["status"], REPLICA_FAILURE).filter(|c| c["status"] == "True"));
        match failure {
            Some(f) => {
                let msg = f["message"].as_str().unwrap_or_default().to_string();
                let mut cond = new_condition(REPLICA_FAILURE, "True", f["reason"].as_str().unwrap_or_default(), msg);
                cond["lastTransitionTime"] = f["lastTransitionTime"].clone();
                set_condition(&mut status, cond);
            }
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        let mut next = self.d.clone();
        next["status"] = status;
        self.persist(next)?;
        Ok(self.requeue_stuck())
    }

    /// `DeploymentTimedOut`.
    fn timed_out(&self, status: &Value) -> bool {
        let Some(cond) = condition(status, PROGRESSING) else { return false };
        if cond["reason"] == NEW_RS_AVAILABLE {
            return false;
        }
        if cond["reason"] == TIMED_OUT {
            return true;
        }
        let deadline = int(&self.d["spec"]["progressDeadlineSeconds"], 600);
        podutil::parse_ms(&cond["lastUpdateTime"]).is_some_and(|from| podutil::now_ms() > from + deadline * 1000)
    }

    /// `requeueStuckDeployment`: when to check the progress deadline again.
    fn requeue_stuck(&self) -> Option<Duration> {
        let status = &self.d["status"];
        let cond = condition(status, PROGRESSING)?;
        if !self.has_progress_deadline() || deployment_complete(&self.d, status) || cond["reason"] == TIMED_OUT {
            return None;
        }
        if cond["reason"] == NEW_RS_AVAILABLE || cond["status"] == "Unknown" {
            return None;
        }
        let from = podutil::parse_ms(&cond["lastUpdateTime"])?;
        let deadline = int(&self.d["spec"]["progressDeadlineSeconds"], 600);
        let after = (from + deadline * 1000 - podutil::now_ms()).max(0) + 5;
        Some(Duration::from_millis(after as u64))
    }
}

/// A ReplicaSet's available pods, never more than it keeps (its status may predate a scale-down).
fn available(rs: &Value) -> i64 {
    status_count(rs, "availableReplicas").min(replicas(rs))
}

fn set_revision_annotation(d: &mut Value, revision: &str) -> bool {
    if annotation(d, REVISION) == Some(revision) {
        return false;
    }
    annotations_mut(d).map(|a| a.insert(REVISION.into(), json!(revision))).is_some()
}

fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let (d, m) = (desired.to_string(), max.to_string());
    if annotation(rs, DESIRED_REPLICAS) == Some(d.as_str()) && annotation(rs, MAX_REPLICAS) == Some(m.as_str()) {
        return false;
    }
    let Some(a) = annotations_mut(rs) else { return false };
    a.insert(DESIRED_REPLICAS.into(), json!(d));
    a.insert(MAX_REPLICAS.into(), json!(m));
    true
}

/// `IsSaturated`.
fn is_saturated(rs: &Value, desired: i64) -> bool {
    let annotated = annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i64>().ok());
    replicas(rs) == desired && annotated == Some(desired) && status_count(rs, "availableReplicas") == desired
}

/// `DeploymentComplete`.
fn deployment_complete(d: &Value, status: &Value) -> bool {
    let want = replicas(d);
    int(&status["updatedReplicas"], 0) == want
        && int(&status["replicas"], 0) == want
        && int(&status["availableReplicas"], 0) == want
        && int(&status["observedGeneration"], 0) >= int(&d["metadata"]["generation"], 0)
}

/// `DeploymentProgressing`.
fn deployment_progressing(d: &Value, new: &Value) -> bool {
    let old = &d["status"];
    let f = |s: &Value, k: &str| int(&s[k], 0);
    let old_old = f(old, "replicas") - f(old, "updatedReplicas");
    let new_old = f(new, "replicas") - f(new, "updatedReplicas");
    f(new, "updatedReplicas") > f(old, "updatedReplicas")
        || new_old < old_old
        || f(new, "readyReplicas") > f(old, "readyReplicas")
        || f(new, "availableReplicas") > f(old, "availableReplicas")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compare_without_the_hash_label() {
        let a = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c"}], "volumes": []}});
        let b = json!({"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}}, "spec": {"containers": [{"name": "c"}]}});
        assert!(equal_ignore_hash(&a, &b));
        let c = json!({"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c"}]}});
        assert!(!equal_ignore_hash(&a, &c));
    }

    #[test]
    fn conditions_keep_transition_time_while_status_holds() {
        let mut status = json!({"conditions": [{"type": "Progressing", "status": "True", "reason": "A", "lastTransitionTime": "t0", "lastUpdateTime": "t0"}]});
        set_condition(
            &mut status,
            json!({"type": "Progressing", "status": "True", "reason": "B", "lastTransitionTime": "t1", "lastUpdateTime": "t1"}),
        );
        assert_eq!(status["conditions"][0]["lastTransitionTime"], "t0");
        assert_eq!(status["conditions"][0]["reason"], "B");
        set_condition(
            &mut status,
            json!({"type": "Progressing", "status": "True", "reason": "B", "lastTransitionTime": "t2", "lastUpdateTime": "t2"}),
        );
        assert_eq!(status["conditions"][0]["lastUpdateTime"], "t1");
    }
}
