//! The Job controller, as kube-controller-manager runs it (k/k `pkg/controller/job/job_controller.go`,
//! `indexed_job_utils.go`).
//!
//! Pods are created from the template (`generateName: <job>-`, controller owner reference,
//! finalizer `batch.kubernetes.io/job-tracking`) until `parallelism` run, at most the
//! completions still missing. In `Indexed` mode each pod gets a completion index (annotation
//! and label `batch.kubernetes.io/job-completion-index`, `JOB_COMPLETION_INDEX`, hostname
//! `<job>-<index>`), the lowest missing indexes first, and the Job completes when every index
//! in `[0, completions)` has succeeded (`status.completedIndexes`, e.g. `0-2,4`). A finished pod is counted through
//! `status.uncountedTerminatedPods` before its finalizer is removed, so that no pod is counted
//! twice or lost; a pod deleted before it succeeded counts as failed (`podReplacementPolicy:
//! TerminatingOrFailed`). After failures new pods wait out the pod failure back-off (10 s,
//! doubling, at most 6 min).
//!
//! The Job ends with a first condition, then, once its pods are gone, the final one with the
//! same reason: `SuccessCriteriaMet` then `Complete` (`CompletionsReached`), or
//! `FailureTarget` then `Failed` (`BackoffLimitExceeded` when more pods failed than
//! `backoffLimit`, or with `restartPolicy: OnFailure` when the pods' restarts reach it;
//! `DeadlineExceeded` after `activeDeadlineSeconds` from `status.startTime`). Remaining pods are
//! deleted. `suspend` deletes the active pods (`Suspended` condition) and resuming restarts the
//! clock.
//!
//! Not modelled: `podFailurePolicy`, `successPolicy`, `backoffLimitPerIndex`, `managedBy`,
//! Events.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::podutil::{self, Key, int};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, WriteCtx, meta_str, now_rfc3339};
use crate::api::resources::{GroupResource, ResourceType};
use crate::api::selectors::LabelSelector;
use crate::api::status::ApiResult;
use crate::api::store::{Event, key_of};

const MANAGER: &str = "job-controller";
/// Annotation and label of an `Indexed` Job's pod: its completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// `DefaultJobPodFailureBackOff`.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// `MaxJobPodFailureBackOff`.
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// Failures since the last success, for the pod failure back-off (kept in memory, as
/// kube-controller-manager's `backoffRecordStore`).
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    last_failure: Instant,
}

impl Backoff {
    fn remaining(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let delay = BACKOFF_BASE.saturating_mul(1 << (self.failures - 1).min(10)).min(BACKOFF_MAX);
        delay.saturating_sub(self.last_failure.elapsed())
    }
}

/// The Job reconciler.
#[derive(Debug, Default)]
pub struct JobController {
    backoff: HashMap<Key, Backoff>,
}

/// Runs the Job controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, JobController::default()).await
}

/// `(namespace, name)` of the Job controlling `obj`, if any.
fn job_of(obj: &Value) -> Option<Key> {
    podutil::controller_key(obj, "batch/v1", "Job")
}

/// The Job's condition of `kind` when it is `True`.
pub fn condition<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind && c["status"] == "True")
}

/// Whether the Job has its final `Complete` or `Failed` condition.
pub fn is_finished(job: &Value) -> bool {
    condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
}

fn has_tracking_finalizer(pod: &Value) -> bool {
    pod["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

fn is_indexed(job: &Value) -> bool {
    job["spec"]["completionMode"] == "Indexed"
}

/// The completion index of an `Indexed` Job's pod.
fn index_of(pod: &Value) -> Option<i64> {
    pod["metadata"]["annotations"][COMPLETION_INDEX].as_str()?.parse().ok()
}

/// Parses `status.completedIndexes` (`1,3-5,7`).
fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<i64>().ok()),
        }
    }
    out
}

/// Renders indexes as `status.completedIndexes` does: ascending, runs of 3 or more as ranges.
fn render_indexes(set: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    let flush = |run: (i64, i64), parts: &mut Vec<String>| match run.1 - run.0 {
        0 => parts.push(run.0.to_string()),
        1 => parts.extend([run.0.to_string(), run.1.to_string()]),
        _ => parts.push(format!("{}-{}", run.0, run.1)),
    };
    for &i in set {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                flush(r, &mut parts);
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        flush(r, &mut parts);
    }
    parts.join(",")
}

/// Sets condition `kind` in a status' `conditions`, keeping the transition time when its
/// status does not change.
fn set_condition(status: &mut Value, kind: &str, value: bool, reason: &str, message: &str) {
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let value = if value { "True" } else { "False" };
    let now = now_rfc3339();
    let since = conditions
        .iter()
        .find(|c| c["type"] == kind && c["status"] == value)
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or_else(|| json!(now));
    let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != kind).collect();
    conditions.push(json!({"type": kind, "status": value, "lastProbeTime": now, "lastTransitionTime": since,
        "reason": reason, "message": message}));
    status["conditions"] = Value::Array(conditions);
}

/// The uids listed under `uncountedTerminatedPods.<which>`.
fn uncounted(job: &Value, which: &str) -> BTreeSet<String> {
    job["status"]["uncountedTerminatedPods"][which]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Restarts of the containers of `pods` (`pastBackoffLimitOnFailure`).
fn restarts(pods: &[Arc<Value>]) -> i64 {
    pods.iter()
        .flat_map(|p| {
            ["containerStatuses", "initContainerStatuses"]
                .into_iter()
                .flat_map(move |k| p["status"][k].as_array().cloned().unwrap_or_default())
        })
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum()
}

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        MANAGER
    }

    fn keys(&mut self, _api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("batch", "jobs") => out.push(key_of(&event.object)),
            ("", "pods") => {
                out.extend([Some(&*event.object), event.old.as_deref()].into_iter().flatten().filter_map(job_of))
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let job_rt = podutil::builtin(api, "batch", "jobs")?;
        let pod_rt = podutil::builtin(api, "", "pods")?;
        let job = match api.get(&job_rt, &key.0, &key.1) {
            Ok(j) => j,
            Err(e) if e.code == 404 => {
                self.backoff.remove(key);
                release_orphans(api, &pod_rt, key)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let Ok(selector) = LabelSelector::from_json(&job["spec"]["selector"]) else {
            tracing::warn!(job = %key.1, "invalid selector");
            return Ok(None);
        };
        let deleting = podutil::is_terminating(&job);
        let owner_ref = podutil::controller_owner_ref(&job, "batch/v1", "Job");
        let pods = podutil::list_in(api, &pod_rt, &key.0, None)?;
        let pods = podutil::claim(api, &pod_rt, &job, &owner_ref, &selector, pods, !deleting, MANAGER, &|_| true);
        if deleting || is_finished(&job) {
            // Nothing more will be counted: let every pod go.
            for pod in pods.iter().filter(|p| has_tracking_finalizer(p)) {
                remove_finalizer(api, &pod_rt, pod)?;
            }
            self.backoff.remove(key);
            return Ok(None);
        }
        // Both passes work on one snapshot of the pods, as on one informer cache: a pod that
        // finished since it was taken is counted next time, not taken for a missing one now.
        let job = self.count_finished(api, &job_rt, &pod_rt, key, &job, &pods)?;
        self.sync(api, &job_rt, &pod_rt, key, &job, &pods)
    }
}

impl JobController {
    /// Counts pods that finished since the last pass: listed as uncounted, finalizer removed,
    /// then added to `succeeded`/`failed`. Returns the Job as stored afterwards.
    fn count_finished(
        &mut self,
        api: &Api,
        job_rt: &ResourceType,
        pod_rt: &ResourceType,
        key: &Key,
        job: &Arc<Value>,
        pods: &[Arc<Value>],
    ) -> ApiResult<Arc<Value>> {
        let (mut succeeded, mut failed) = (uncounted(job, "succeeded"), uncounted(job, "failed"));
        let indexed = is_indexed(job);
        let mut new_indexes = BTreeSet::new();
        let mut finished = Vec::new();
        let mut new_failures = 0;
        for pod in pods.iter().filter(|p| has_tracking_finalizer(p)) {
            let uid = meta_str(pod, "uid").to_string();
            match pod["status"]["phase"].as_str() {
                // The completion index is what counts an Indexed Job's success (no uid kept).
                Some("Succeeded") if indexed => {
                    let completions = int(&job["spec"]["completions"], 0);
                    new_indexes.extend(index_of(pod).filter(|i| (0..completions).contains(i)));
                }
                Some("Succeeded") => {
                    succeeded.insert(uid);
                }
                // A pod deleted before it succeeded will not: it failed (`isPodFailed`).
                Some("Failed") => new_failures += u32::from(failed.insert(uid)),
                _ if podutil::is_terminating(pod) => new_failures += u32::from(failed.insert(uid)),
                _ => continue,
            }
            finished.push(pod.clone());
        }
        if finished.is_empty() && succeeded.is_empty() && failed.is_empty() {
            return Ok(job.clone());
        }
        if new_failures > 0 {
            let b = self.backoff.entry(key.clone()).or_insert(Backoff { failures: 0, last_failure: Instant::now() });
            b.failures += new_failures;
            b.last_failure = Instant::now();
        } else if !succeeded.is_empty() || !new_indexes.is_empty() {
            self.backoff.remove(key);
        }
        // 1. Record the uids, so that a crash between here and 3. cannot lose them.
        let mut status = job["status"].clone();
        status["uncountedTerminatedPods"] = json!({"succeeded": succeeded, "failed": failed});
        let job = podutil::write_status(api, job_rt, job, status, MANAGER)?;
        // 2. Let the pods go.
        for pod in &finished {
            remove_finalizer(api, pod_rt, pod)?;
        }
        // 3. Move them to the counters.
        let mut status = job["status"].clone();
        let (s, f) = (int(&status["succeeded"], 0) as usize, int(&status["failed"], 0) as usize);
        if indexed {
            let mut done = parse_indexes(status["completedIndexes"].as_str().unwrap_or_default());
            done.extend(new_indexes);
            status["completedIndexes"] = json!(render_indexes(&done));
            set_count(&mut status, "succeeded", done.len());
        } else {
            set_count(&mut status, "succeeded", s + succeeded.len());
        }
        set_count(&mut status, "failed", f + failed.len());
        status["uncountedTerminatedPods"] = json!({});
        podutil::write_status(api, job_rt, &job, status, MANAGER)
    }

    /// Decides the Job's end, creates or deletes pods, and writes the status.
    fn sync(
        &mut self,
        api: &Api,
        job_rt: &ResourceType,
        pod_rt: &ResourceType,
        key: &Key,
        job: &Arc<Value>,
        pods: &[Arc<Value>],
    ) -> ApiResult<Option<Duration>> {
        let spec = &job["spec"];
        let mut status = job["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let active: Vec<Arc<Value>> = pods.iter().filter(|p| podutil::is_active(p)).cloned().collect();
        let succeeded = int(&status["succeeded"], 0);
        let failed = int(&status["failed"], 0);
        let suspended = spec["suspend"] == true;
        let now = podutil::now_ms();
        let mut again = None;

        if suspended {
            if condition(job, "Suspended").is_none() {
                set_condition(&mut status, "Suspended", true, "JobSuspended", "Job suspended");
            }
            delete_pods(api, pod_rt, &active)?;
        } else {
            if condition(job, "Suspended").is_some() {
                set_condition(&mut status, "Suspended", false, "JobResumed", "Job resumed");
                // Resuming restarts the activeDeadlineSeconds clock.
                status["startTime"] = json!(now_rfc3339());
            }
            if status["startTime"].is_null() {
                status["startTime"] = json!(now_rfc3339());
            }
            let target = |s: &Value| {
                ["SuccessCriteriaMet", "FailureTarget"].into_iter().find_map(|t| {
                    s["conditions"].as_array()?.iter().find(|c| c["type"] == t && c["status"] == "True").cloned()
                })
            };
            if target(&status).is_none() {
                let backoff_limit = int(&spec["backoffLimit"], 6);
                let on_failure = spec["template"]["spec"]["restartPolicy"] == "OnFailure";
                let restarts = restarts(&active);
                let restarts_exceeded =
                    on_failure && if backoff_limit == 0 { restarts > 0 } else { restarts >= backoff_limit };
                let started = podutil::parse_ms(&status["startTime"]).unwrap_or(now);
                let deadline = spec["activeDeadlineSeconds"].as_i64().map(|s| started + s * 1000);
                let completions = spec["completions"].as_i64();
                if failed > backoff_limit || restarts_exceeded {
                    set_condition(
                        &mut status,
                        "FailureTarget",
                        true,
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    );
                } else if deadline.is_some_and(|d| now >= d) {
                    set_condition(
                        &mut status,
                        "FailureTarget",
                        true,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    );
                } else if completions.map_or(succeeded > 0 && active.is_empty(), |c| succeeded >= c) {
                    set_condition(
                        &mut status,
                        "SuccessCriteriaMet",
                        true,
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    );
                } else if let Some(d) = deadline {
                    again = Some(Duration::from_millis((d - now).max(1) as u64));
                }
            }
            match target(&status) {
                Some(end) => {
                    delete_pods(api, pod_rt, &active)?;
                    // The final condition waits until every pod is gone or counted.
                    // (count_finished has counted every terminal pod of the snapshot.)
                    let settled = pods.iter().all(|p| podutil::is_terminal(p));
                    if settled && active.is_empty() {
                        let (reason, message) =
                            (end["reason"].as_str().unwrap_or_default(), end["message"].as_str().unwrap_or_default());
                        if end["type"] == "SuccessCriteriaMet" {
                            set_condition(&mut status, "Complete", true, reason, message);
                            status["completionTime"] = json!(now_rfc3339());
                        } else {
                            set_condition(&mut status, "Failed", true, reason, message);
                        }
                        again = None;
                    }
                }
                None => {
                    let parallelism = int(&spec["parallelism"], 1);
                    let want = match spec["completions"].as_i64() {
                        Some(c) => (c - succeeded).min(parallelism).max(0),
                        None => parallelism,
                    } as usize;
                    // Indexed: the lowest indexes neither completed nor running.
                    let completed = parse_indexes(status["completedIndexes"].as_str().unwrap_or_default());
                    let running: BTreeSet<i64> = active.iter().filter_map(|p| index_of(p)).collect();
                    let missing: Vec<i64> = (0..int(&spec["completions"], 0))
                        .filter(|i| !completed.contains(i) && !running.contains(i))
                        .collect();
                    if active.len() > want {
                        let mut extra = active.clone();
                        extra
                            .sort_by_key(|p| std::cmp::Reverse(podutil::parse_ms(&p["metadata"]["creationTimestamp"])));
                        delete_pods(api, pod_rt, &extra[..active.len() - want])?;
                    } else if active.len() < want {
                        let wait = self.backoff.get(key).map(Backoff::remaining).unwrap_or_default();
                        if wait.is_zero() {
                            let n = want - active.len();
                            if is_indexed(job) {
                                for &i in missing.iter().take(n) {
                                    create_pod(api, pod_rt, job, Some(i))?;
                                }
                            } else {
                                for _ in 0..n {
                                    create_pod(api, pod_rt, job, None)?;
                                }
                            }
                        } else {
                            again = Some(again.map_or(wait, |a: Duration| a.min(wait)));
                        }
                    }
                }
            }
        }
        let pods_now = podutil::list_in(api, pod_rt, &key.0, None)?;
        let mine: Vec<&Arc<Value>> =
            pods_now.iter().filter(|p| podutil::controlled_by(p, meta_str(job, "uid"))).collect();
        let active_now = mine.iter().filter(|p| podutil::is_active(p)).count();
        let ready_now = mine.iter().filter(|p| podutil::is_active(p) && podutil::is_ready(p)).count();
        let terminating_now = mine.iter().filter(|p| podutil::is_terminating_not_terminal(p)).count();
        set_count(&mut status, "active", active_now);
        status["ready"] = json!(ready_now);
        status["terminating"] = json!(terminating_now);
        if status["uncountedTerminatedPods"].is_null() {
            status["uncountedTerminatedPods"] = json!({});
        }
        podutil::write_status(api, job_rt, job, status, MANAGER)?;
        Ok(again)
    }
}

/// `active`, `succeeded` and `failed` are omitempty.
fn set_count(status: &mut Value, key: &str, n: usize) {
    if let Some(m) = status.as_object_mut() {
        if n == 0 {
            m.remove(key);
        } else {
            m.insert(key.into(), json!(n));
        }
    }
}

/// Creates one pod of the Job (with its completion index in `Indexed` mode).
fn create_pod(api: &Api, pod_rt: &ResourceType, job: &Value, index: Option<i64>) -> ApiResult<()> {
    let mut pod = super::replicaset::pod_from_template(job, &job["spec"]["template"], "batch/v1", "Job");
    let mut finalizers = pod["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    finalizers.push(json!(TRACKING_FINALIZER));
    pod["metadata"]["finalizers"] = Value::Array(finalizers);
    if let Some(i) = index {
        let name = meta_str(job, "name");
        pod["metadata"]["generateName"] = json!(format!("{name}-{i}-"));
        for key in ["annotations", "labels"] {
            if !pod["metadata"][key].is_object() {
                pod["metadata"][key] = json!({});
            }
            pod["metadata"][key][COMPLETION_INDEX] = json!(i.to_string());
        }
        if pod["spec"]["hostname"].is_null() {
            pod["spec"]["hostname"] = json!(format!("{name}-{i}"));
        }
        let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath":
            format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
        for list in ["initContainers", "containers"] {
            for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
                if !c["env"].is_array() {
                    c["env"] = json!([]);
                }
                if let Some(vars) = c["env"].as_array_mut()
                    && !vars.iter().any(|v| v["name"] == "JOB_COMPLETION_INDEX")
                {
                    vars.push(env.clone());
                }
            }
        }
    }
    api.create(pod_rt, meta_str(job, "namespace"), pod, &WriteCtx::controller(MANAGER))?;
    Ok(())
}

fn delete_pods(api: &Api, pod_rt: &ResourceType, pods: &[Arc<Value>]) -> ApiResult<()> {
    for pod in pods {
        match api.delete(pod_rt, meta_str(pod, "namespace"), meta_str(pod, "name"), &DeleteOptions::default()) {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn remove_finalizer(api: &Api, pod_rt: &ResourceType, pod: &Value) -> ApiResult<()> {
    super::modify(api, pod_rt, meta_str(pod, "namespace"), meta_str(pod, "name"), MANAGER, |p| {
        let Some(list) = p["metadata"]["finalizers"].as_array_mut() else { return false };
        let before = list.len();
        list.retain(|f| f != TRACKING_FINALIZER);
        before != list.len()
    })
}

/// Pods whose Job is gone keep no tracking finalizer (`cleanupPodFinalizers` of orphans).
fn release_orphans(api: &Api, pod_rt: &ResourceType, key: &Key) -> ApiResult<()> {
    for pod in podutil::list_in(api, pod_rt, &key.0, None)? {
        if has_tracking_finalizer(&pod) && job_of(&pod).as_ref() == Some(key) {
            remove_finalizer(api, pod_rt, &pod)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_six_minutes() {
        let at = |failures| Backoff { failures, last_failure: Instant::now() }.remaining();
        assert_eq!(at(0), Duration::ZERO);
        assert!(at(1) > Duration::from_secs(9) && at(1) <= Duration::from_secs(10));
        assert!(at(2) > Duration::from_secs(19) && at(2) <= Duration::from_secs(20));
        assert!(at(12) > Duration::from_secs(359) && at(12) <= BACKOFF_MAX);
    }

    #[test]
    fn completed_indexes_render_as_kube_controller_manager_does() {
        let set: BTreeSet<i64> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(render_indexes(&set), "0-2,4,6,7");
        assert_eq!(parse_indexes("0-2,4,6,7"), set);
        assert_eq!(render_indexes(&BTreeSet::new()), "");
        assert!(parse_indexes("").is_empty());
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut status = json!({"conditions": [{"type": "Suspended", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]});
        set_condition(&mut status, "Suspended", true, "JobSuspended", "Job suspended");
        assert_eq!(status["conditions"][0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        set_condition(&mut status, "Suspended", false, "JobResumed", "Job resumed");
        assert_ne!(status["conditions"][0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(status["conditions"].as_array().map(Vec::len), Some(1));
    }
}
