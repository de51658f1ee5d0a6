//! The StatefulSet controller, as kube-controller-manager's `pkg/controller/statefulset`.
//!
//! - Pods are `<set>-<ordinal>` for ordinals `[start, start + replicas)` (`spec.ordinals.start`),
//!   labelled `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
//!   `controller-revision-hash`, with `spec.hostname` = pod name and `spec.subdomain` =
//!   `spec.serviceName`, and a controller owner reference.
//! - `OrderedReady` (monotonic): ordinal N is created only once every lower ordinal is Running,
//!   Ready and available (`minReadySeconds`); scale-down removes the highest ordinal first, one at
//!   a time, each after the previous one is gone. `Parallel` creates and deletes without waiting.
//! - A pod that is deleted, or reaches `Failed`/`Succeeded` (it is deleted first), is recreated
//!   with the same name.
//! - Each template is a ControllerRevision `<set>-<hash>` (labels of the template plus
//!   `controller.kubernetes.io/hash`, `data` = the template patch, increasing `revision`);
//!   `RollingUpdate` replaces pods from the highest ordinal down to `partition`, one at a time,
//!   waiting for each to be available; pods below the partition are (re)created at the current
//!   revision. `OnDelete` only uses the update revision for pods it recreates. Old revisions
//!   beyond `revisionHistoryLimit` that no pod uses are deleted.
//! - Status: observedGeneration, replicas, readyReplicas, currentReplicas, updatedReplicas,
//!   availableReplicas, currentRevision, updateRevision, collisionCount.
//!
//! Simplified: PersistentVolumeClaims of `volumeClaimTemplates` are not created (the embedded
//! API serves no PVCs; pods still get the claim volumes), `maxUnavailable` rolling updates and
//! PVC retention policies are not implemented, and an identity repair only restores the labels.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::podutil::{self, Key, int};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, Subresource, WriteCtx, meta_str};
use crate::api::resources::{GroupResource, ResourceType};
use crate::api::selectors::LabelSelector;
use crate::api::status::ApiResult;
use crate::api::store::{Event, key_of};

const MANAGER: &str = "statefulset-controller";
/// Pod label naming the pod (for per-pod Services).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Pod label holding the ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Pod label holding the name of the ControllerRevision it was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// ControllerRevision label holding the hash of its data.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The StatefulSet reconciler.
#[derive(Debug, Default)]
pub struct StatefulSetController;

/// Runs the StatefulSet controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, StatefulSetController).await
}

/// `getParentNameAndOrdinal`: `web-3` is ordinal 3 of `web`.
fn parent_and_ordinal(name: &str) -> Option<(&str, i64)> {
    let (parent, ord) = name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

fn ordinal_of(set: &Value, pod: &Value) -> Option<i64> {
    parent_and_ordinal(meta_str(pod, "name")).filter(|(p, _)| *p == meta_str(set, "name")).map(|(_, o)| o)
}

fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL].as_str().unwrap_or_default()
}

fn running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && podutil::is_ready(pod)
}

fn running_and_available(pod: &Value, min_ready: i64, now: i64) -> bool {
    running_and_ready(pod) && podutil::is_available(pod, min_ready, now)
}

fn unavailable(pod: Option<&Value>, min_ready: i64, now: i64) -> bool {
    pod.is_none_or(|p| !running_and_available(p, min_ready, now) || podutil::is_terminating(p))
}

impl Reconciler for StatefulSetController {
    fn name(&self) -> &'static str {
        MANAGER
    }

    fn keys(&mut self, api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("apps", "statefulsets") => out.push(key_of(&event.object)),
            ("", "pods") => {
                let pod = &event.object;
                for p in [Some(&**pod), event.old.as_deref()].into_iter().flatten() {
                    if let Some(r) = podutil::controller_ref(p).filter(|r| r["kind"] == "StatefulSet") {
                        let name = r["name"].as_str().unwrap_or_default().to_string();
                        out.push((meta_str(p, "namespace").to_string(), name));
                    }
                }
                if podutil::controller_ref(pod).is_none() && !podutil::is_terminating(pod) {
                    let Ok(rt) = podutil::builtin(api, "apps", "statefulsets") else { return };
                    let Some((parent, _)) = parent_and_ordinal(meta_str(pod, "name")) else { return };
                    if let Ok(set) = api.get(&rt, meta_str(pod, "namespace"), parent) {
                        out.push(key_of(&set));
                    }
                }
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let set_rt = podutil::builtin(api, "apps", "statefulsets")?;
        let set = match api.get(&set_rt, &key.0, &key.1) {
            Ok(s) => (*s).clone(),
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(selector) = LabelSelector::from_json(&set["spec"]["selector"]) else {
            tracing::warn!(statefulset = %key.1, "invalid selector");
            return Ok(None);
        };
        let mut sync = Sync {
            api,
            set_rt,
            pod_rt: podutil::builtin(api, "", "pods")?,
            cr_rt: podutil::builtin(api, "apps", "controllerrevisions")?,
            collisions: int(&set["status"]["collisionCount"], 0),
            set,
            selector,
        };
        sync.run()
    }
}

/// A ControllerRevision reduced to what the controller uses.
#[derive(Debug, Clone)]
struct Revision {
    name: String,
    number: i64,
    template: Value,
}

struct Sync<'a> {
    api: &'a Api,
    set_rt: Arc<ResourceType>,
    pod_rt: Arc<ResourceType>,
    cr_rt: Arc<ResourceType>,
    set: Value,
    selector: LabelSelector,
    /// `status.collisionCount` as this sync leaves it.
    collisions: i64,
}

impl Sync<'_> {
    fn ctx(&self) -> WriteCtx {
        WriteCtx::controller(MANAGER)
    }

    fn namespace(&self) -> String {
        meta_str(&self.set, "namespace").to_string()
    }

    fn start(&self) -> i64 {
        int(&self.set["spec"]["ordinals"]["start"], 0)
    }

    fn min_ready(&self) -> i64 {
        int(&self.set["spec"]["minReadySeconds"], 0)
    }

    fn claim_pods(&self) -> ApiResult<Vec<Arc<Value>>> {
        let ns = self.namespace();
        let pods = podutil::list_in(self.api, &self.pod_rt, &ns, None)?;
        let owner_ref = podutil::controller_owner_ref(&self.set, "apps/v1", "StatefulSet");
        let name = meta_str(&self.set, "name").to_string();
        let member = move |p: &Value| parent_and_ordinal(meta_str(p, "name")).is_some_and(|(parent, _)| parent == name);
        let can_adopt = !podutil::is_terminating(&self.set);
        Ok(podutil::claim(
            self.api,
            &self.pod_rt,
            &self.set,
            &owner_ref,
            &self.selector,
            pods,
            can_adopt,
            MANAGER,
            &member,
        ))
    }

    fn run(&mut self) -> ApiResult<Option<Duration>> {
        let pods = self.claim_pods()?;
        let mut revisions = self.revisions()?;
        let update = self.update_revision(&mut revisions)?;
        let current_name = self.set["status"]["currentRevision"].as_str().unwrap_or_default().to_string();
        let current = revisions.iter().find(|r| r.name == current_name).cloned().unwrap_or_else(|| update.clone());
        let result =
            if podutil::is_terminating(&self.set) { Ok(()) } else { self.update_pods(&pods, &current, &update) };
        let pods = self.claim_pods()?;
        let status = self.status(&pods, &current, &update);
        let ready = int(&status["readyReplicas"], 0);
        let available = int(&status["availableReplicas"], 0);
        podutil::write_status(self.api, &self.set_rt, &self.set, status.clone(), MANAGER)?;
        result?;
        let live: Vec<&str> = pods
            .iter()
            .map(|p| revision_of(p))
            .chain([status["currentRevision"].as_str().unwrap_or_default(), update.name.as_str()])
            .collect();
        self.truncate_history(&revisions, &live)?;
        let min_ready = self.min_ready();
        if min_ready > 0 && ready != available {
            let active: Vec<Arc<Value>> = pods.into_iter().filter(|p| podutil::is_active(p)).collect();
            return Ok(podutil::next_availability(&active, min_ready, podutil::now_ms())
                .or(Some(Duration::from_secs(min_ready as u64))));
        }
        Ok(None)
    }

    /// The set's ControllerRevisions, oldest revision first.
    fn revisions(&self) -> ApiResult<Vec<Revision>> {
        let uid = self.set["metadata"]["uid"].as_str().unwrap_or_default();
        let mut list: Vec<Revision> = podutil::list_in(self.api, &self.cr_rt, &self.namespace(), None)?
            .into_iter()
            .filter(|cr| podutil::controlled_by(cr, uid))
            .map(|cr| Revision {
                name: meta_str(&cr, "name").to_string(),
                number: int(&cr["revision"], 0),
                template: template_of_data(&cr["data"]),
            })
            .collect();
        list.sort_by(|a, b| a.number.cmp(&b.number).then_with(|| a.name.cmp(&b.name)));
        Ok(list)
    }

    /// `getStatefulSetRevisions`: the revision of the current template, created if new, renumbered
    /// to the latest when an older revision is rolled back to.
    fn update_revision(&mut self, revisions: &mut Vec<Revision>) -> ApiResult<Revision> {
        let data = revision_data(&self.set["spec"]["template"]);
        let template = template_of_data(&data);
        let next_number = revisions.last().map(|r| r.number).unwrap_or(0) + 1;
        if let Some(pos) = revisions.iter().rposition(|r| r.template == template) {
            if pos + 1 == revisions.len() {
                return Ok(revisions[pos].clone());
            }
            let name = revisions[pos].name.clone();
            let ns = self.namespace();
            let cr = self.api.get(&self.cr_rt, &ns, &name)?;
            let mut next = (*cr).clone();
            next["revision"] = json!(next_number);
            self.api.update(&self.cr_rt, &ns, &name, next, Subresource::Main, &self.ctx())?;
            let mut rev = revisions.remove(pos);
            rev.number = next_number;
            revisions.push(rev.clone());
            return Ok(rev);
        }
        let mut collisions = self.collisions;
        for _ in 0..16 {
            let raw = serde_json::to_vec(&data).unwrap_or_default();
            let mut hashed = raw.clone();
            hashed.extend_from_slice(collisions.to_string().as_bytes());
            let hash = podutil::safe_encode(&podutil::fnv32(&hashed).to_string());
            let name = format!("{}-{hash}", meta_str(&self.set, "name"));
            let mut labels = self.set["spec"]["template"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels[HASH_LABEL] = json!(hash);
            let cr = json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace(),
                    "labels": labels,
                    "ownerReferences": [podutil::controller_owner_ref(&self.set, "apps/v1", "StatefulSet")],
                },
                "data": data,
                "revision": next_number,
            });
            match self.api.create(&self.cr_rt, &self.namespace(), cr, &self.ctx()) {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {
                    let existing = self.api.get(&self.cr_rt, &self.namespace(), &name)?;
                    if template_of_data(&existing["data"]) != template {
                        collisions += 1;
                        continue;
                    }
                }
                Err(e) => return Err(e),
            }
            self.collisions = collisions;
            let rev = Revision { name, number: next_number, template };
            revisions.push(rev.clone());
            return Ok(rev);
        }
        Err(crate::api::status::ApiError::internal("too many ControllerRevision hash collisions"))
    }

    /// `updateStatefulSet`: creates, repairs and deletes pods towards the desired state.
    fn update_pods(&mut self, pods: &[Arc<Value>], current: &Revision, update: &Revision) -> ApiResult<()> {
        let now = podutil::now_ms();
        let min_ready = self.min_ready();
        let start = self.start();
        let count = int(&self.set["spec"]["replicas"], 1).max(0);
        let mut replicas: Vec<Option<Arc<Value>>> = vec![None; count as usize];
        let mut condemned: Vec<(i64, Arc<Value>)> = Vec::new();
        for p in pods {
            let Some(ord) = ordinal_of(&self.set, p) else { continue };
            if (start..start + count).contains(&ord) {
                replicas[(ord - start) as usize] = Some(p.clone());
            } else {
                condemned.push((ord, p.clone()));
            }
        }
        condemned.sort_by_key(|(ord, _)| std::cmp::Reverse(*ord));
        // The first unavailable pod: lowest replica, else lowest condemned ordinal.
        let first_unavailable =
            replicas.iter().position(|p| unavailable(p.as_deref(), min_ready, now)).map(|i| start + i as i64).or_else(
                || condemned.iter().rev().find(|(_, p)| unavailable(Some(p), min_ready, now)).map(|(o, _)| *o),
            );
        let monotonic = self.set["spec"]["podManagementPolicy"] != "Parallel";
        let ns = self.namespace();

        for (i, slot) in replicas.iter_mut().enumerate() {
            let ord = start + i as i64;
            match slot.clone() {
                Some(p) if podutil::is_terminal(&p) => {
                    if !podutil::is_terminating(&p) {
                        self.delete_pod(&p)?;
                    }
                    if monotonic {
                        return Ok(());
                    }
                }
                None => {
                    let pod = self.new_pod(ord, current, update);
                    let created = self.api.create(&self.pod_rt, &ns, pod, &self.ctx())?;
                    *slot = Some(created.object);
                    if monotonic {
                        return Ok(());
                    }
                }
                Some(p) => {
                    if monotonic
                        && (podutil::is_terminating(&p)
                            || !running_and_ready(&p)
                            || !running_and_available(&p, min_ready, now))
                    {
                        return Ok(());
                    }
                    self.repair_identity(&p, ord)?;
                }
            }
        }

        for (ord, p) in &condemned {
            if podutil::is_terminating(p) {
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            let first = first_unavailable == Some(*ord);
            if monotonic && !first && (!running_and_ready(p) || !running_and_available(p, min_ready, now)) {
                return Ok(());
            }
            self.delete_pod(p)?;
            if monotonic {
                return Ok(());
            }
        }

        let strategy = &self.set["spec"]["updateStrategy"];
        if strategy["type"] == "OnDelete" {
            return Ok(());
        }
        let partition = int(&strategy["rollingUpdate"]["partition"], 0).max(0);
        for target in (0..replicas.len()).rev() {
            if (target as i64) < partition {
                break;
            }
            let Some(p) = replicas[target].as_deref() else { continue };
            if revision_of(p) != update.name && !podutil::is_terminating(p) {
                return self.delete_pod(p);
            }
            if unavailable(Some(p), min_ready, now) {
                return Ok(());
            }
        }
        Ok(())
    }

    fn delete_pod(&self, pod: &Value) -> ApiResult<()> {
        match self.api.delete(&self.pod_rt, &self.namespace(), meta_str(pod, "name"), &DeleteOptions::default()) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `newVersionedStatefulSetPod`: below the partition (RollingUpdate), the current revision.
    fn new_pod(&self, ordinal: i64, current: &Revision, update: &Revision) -> Value {
        let strategy = &self.set["spec"]["updateStrategy"];
        let rolling = strategy["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate";
        let partition = int(&strategy["rollingUpdate"]["partition"], 0);
        let rev = if rolling && ordinal < self.start() + partition { current } else { update };
        let mut pod = super::replicaset::pod_from_template(&self.set, &rev.template, "apps/v1", "StatefulSet");
        let name = format!("{}-{ordinal}", meta_str(&self.set, "name"));
        pod["metadata"]["name"] = json!(name);
        if !pod["metadata"]["labels"].is_object() {
            pod["metadata"]["labels"] = json!({});
        }
        pod["metadata"]["labels"][POD_NAME_LABEL] = json!(name);
        pod["metadata"]["labels"][POD_INDEX_LABEL] = json!(ordinal.to_string());
        pod["metadata"]["labels"][REVISION_LABEL] = json!(rev.name);
        pod["spec"]["hostname"] = json!(name);
        if let Some(svc) = self.set["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
            pod["spec"]["subdomain"] = json!(svc);
        }
        if let Some(claims) = self.set["spec"]["volumeClaimTemplates"].as_array() {
            let mut volumes: Vec<Value> = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
            for claim in claims {
                let claim_name = meta_str(claim, "name");
                volumes.retain(|v| v["name"] != claim_name);
                volumes.push(json!({"name": claim_name, "persistentVolumeClaim": {
                    "claimName": format!("{claim_name}-{}-{ordinal}", meta_str(&self.set, "name"))}}));
            }
            pod["spec"]["volumes"] = Value::Array(volumes);
        }
        pod
    }

    /// `identityMatches` / `updateIdentity`, for the labels.
    fn repair_identity(&self, pod: &Value, ordinal: i64) -> ApiResult<()> {
        let name = meta_str(pod, "name");
        let labels = &pod["metadata"]["labels"];
        if labels[POD_NAME_LABEL] == name && labels[POD_INDEX_LABEL] == ordinal.to_string().as_str() {
            return Ok(());
        }
        let mut next = pod.clone();
        if !next["metadata"]["labels"].is_object() {
            next["metadata"]["labels"] = json!({});
        }
        next["metadata"]["labels"][POD_NAME_LABEL] = json!(name);
        next["metadata"]["labels"][POD_INDEX_LABEL] = json!(ordinal.to_string());
        match self.api.update(&self.pod_rt, &self.namespace(), name, next, Subresource::Main, &self.ctx()) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `computeReplicaStatus` + `completeRollingUpdate`.
    fn status(&self, pods: &[Arc<Value>], current: &Revision, update: &Revision) -> Value {
        let now = podutil::now_ms();
        let min_ready = self.min_ready();
        let members: Vec<&Arc<Value>> = pods.iter().filter(|p| ordinal_of(&self.set, p).is_some()).collect();
        let replicas = members.len() as i64;
        let ready = members.iter().filter(|p| running_and_ready(p)).count() as i64;
        let available = members.iter().filter(|p| running_and_available(p, min_ready, now)).count() as i64;
        let live: Vec<&&Arc<Value>> = members.iter().filter(|p| !podutil::is_terminating(p)).collect();
        let mut current_count = live.iter().filter(|p| revision_of(p) == current.name).count() as i64;
        let updated = live.iter().filter(|p| revision_of(p) == update.name).count() as i64;
        let mut current_name = current.name.clone();
        let rolling = self.set["spec"]["updateStrategy"]["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate";
        if rolling && updated == replicas && ready == replicas {
            current_count = updated;
            current_name = update.name.clone();
        }
        let mut status = json!({
            "observedGeneration": self.set["metadata"]["generation"],
            "replicas": replicas,
            "availableReplicas": available,
            "currentRevision": current_name,
            "updateRevision": update.name,
            "collisionCount": self.collisions,
        });
        for (k, v) in [("readyReplicas", ready), ("currentReplicas", current_count), ("updatedReplicas", updated)] {
            if v != 0 {
                status[k] = json!(v);
            }
        }
        if let Some(conds) = self.set["status"]["conditions"].as_array().filter(|c| !c.is_empty()) {
            status["conditions"] = Value::Array(conds.clone());
        }
        status
    }

    /// `truncateHistory`: deletes the oldest revisions no pod uses, beyond the history limit.
    fn truncate_history(&self, revisions: &[Revision], live: &[&str]) -> ApiResult<()> {
        let limit = int(&self.set["spec"]["revisionHistoryLimit"], 10).max(0) as usize;
        let history: Vec<&Revision> = revisions.iter().filter(|r| !live.contains(&r.name.as_str())).collect();
        if history.len() <= limit {
            return Ok(());
        }
        for r in &history[..history.len() - limit] {
            match self.api.delete(&self.cr_rt, &self.namespace(), &r.name, &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// `getPatch`: the ControllerRevision data of a template.
fn revision_data(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template stored in a ControllerRevision's data.
fn template_of_data(data: &Value) -> Value {
    let mut t = data["spec"]["template"].clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_from_names() {
        assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(parent_and_ordinal("my-db-12"), Some(("my-db", 12)));
        assert_eq!(parent_and_ordinal("web-x"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
    }

    #[test]
    fn revision_data_round_trips_the_template() {
        let t = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}});
        let data = revision_data(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(template_of_data(&data), t);
    }
}
