//! The CronJob controller, as kube-controller-manager runs it (k/k
//! `pkg/controller/cronjob/cronjob_controllerv2.go`, `utils.go`).
//!
//! At each schedule time (UTC) a Job is created from `jobTemplate`, named
//! `<cronjob>-<scheduled time in minutes since the epoch>`, owned by the CronJob and annotated
//! `batch.kubernetes.io/cronjob-scheduled-timestamp`. Only the most recent missed time runs
//! (counted from `status.lastScheduleTime`, else the creation time, and no further back than
//! `startingDeadlineSeconds`); a time older than `startingDeadlineSeconds` is skipped.
//! `concurrencyPolicy`: `Allow` runs Jobs side by side, `Forbid` skips a time while one is
//! active, `Replace` deletes the active ones first. `suspend` stops new runs. Finished Jobs beyond
//! `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are deleted, oldest first.
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime` are kept.
//!
//! Not modelled: time zones other than UTC (refused at validation), Events.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use serde_json::{Value, json};

use super::job::{condition, is_finished};
use super::podutil::{self, Key};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, Propagation, WriteCtx, meta_str};
use crate::api::resources::{GroupResource, ResourceType};
use crate::api::status::ApiResult;
use crate::api::store::{Event, key_of};

const MANAGER: &str = "cronjob-controller";
/// Annotation of a created Job: the schedule time it runs for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// `nextScheduleDelta`: wake a little after the schedule time, never before it.
const NEXT_DELTA: Duration = Duration::from_millis(100);

/// The CronJob reconciler.
#[derive(Debug, Default)]
pub struct CronJobController;

/// Runs the CronJob controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, CronJobController).await
}

fn cronjob_of(obj: &Value) -> Option<Key> {
    podutil::controller_key(obj, "batch/v1", "CronJob")
}

fn rfc3339(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second()).unwrap_or(t).to_string()
}

fn parse_ts(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// The most recent schedule time in `(earliest, now]` and how many there were, and the next
/// one after `now` (`mostRecentScheduleTime`, `nextScheduleTime`).
fn schedule_times(
    cron: &croner::Cron,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize, Option<Timestamp>) {
    let utc = |t: Timestamp| t.to_zoned(TimeZone::UTC);
    let mut last = None;
    let mut missed = 0;
    let mut next = None;
    for t in cron.iter_after(utc(earliest)) {
        let t = t.timestamp();
        if t > now {
            next = Some(t);
            break;
        }
        last = Some(t);
        missed += 1;
        if missed > 100 {
            // kube-controller-manager only warns past 100 missed times; the latest still runs.
            last = cron.find_previous_occurrence(&utc(now), true).ok().map(|z| z.timestamp());
            next = cron.find_next_occurrence(&utc(now), false).ok().map(|z| z.timestamp());
            break;
        }
    }
    (last, missed, next)
}

impl Reconciler for CronJobController {
    fn name(&self) -> &'static str {
        MANAGER
    }

    fn keys(&mut self, _api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        match (gr.group.as_str(), gr.resource.as_str()) {
            ("batch", "cronjobs") => out.push(key_of(&event.object)),
            ("batch", "jobs") => {
                out.extend([Some(&*event.object), event.old.as_deref()].into_iter().flatten().filter_map(cronjob_of))
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let cj_rt = podutil::builtin(api, "batch", "cronjobs")?;
        let job_rt = podutil::builtin(api, "batch", "jobs")?;
        let cj = match api.get(&cj_rt, &key.0, &key.1) {
            Ok(c) => c,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        if podutil::is_terminating(&cj) {
            return Ok(None);
        }
        let uid = meta_str(&cj, "uid").to_string();
        let jobs: Vec<Arc<Value>> = podutil::list_in(api, &job_rt, &key.0, None)?
            .into_iter()
            .filter(|j| podutil::controlled_by(j, &uid))
            .collect();
        let mut status = cj["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let mut active: Vec<Arc<Value>> =
            jobs.iter().filter(|j| !is_finished(j) && !podutil::is_terminating(j)).cloned().collect();
        let last_success = jobs
            .iter()
            .filter(|j| condition(j, "Complete").is_some())
            .filter_map(|j| parse_ts(&j["status"]["completionTime"]))
            .chain(parse_ts(&status["lastSuccessfulTime"]))
            .max();
        if let Some(t) = last_success {
            status["lastSuccessfulTime"] = json!(rfc3339(t));
        }
        prune_history(api, &job_rt, &cj, &jobs)?;

        let now = Timestamp::now();
        let Ok(cron) = crate::api::ops::batch::parse_schedule(cj["spec"]["schedule"].as_str().unwrap_or_default())
        else {
            tracing::warn!(cronjob = %key.1, "unparseable schedule");
            write(api, &cj_rt, &cj, status, &active)?;
            return Ok(None);
        };
        let created = parse_ts(&cj["metadata"]["creationTimestamp"]).unwrap_or(now);
        let mut earliest = parse_ts(&status["lastScheduleTime"]).unwrap_or(created);
        let deadline = cj["spec"]["startingDeadlineSeconds"].as_i64();
        if let Some(d) = deadline
            && let Ok(bound) = now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(d))
            && bound > earliest
        {
            earliest = bound;
        }
        let (scheduled, missed, next) = schedule_times(&cron, earliest, now);
        if missed > 100 {
            tracing::warn!(cronjob = %key.1, missed, "too many missed start times; check clock skew");
        }
        let again = next.map(|n| Duration::from_millis(n.duration_since(now).as_millis().max(0) as u64) + NEXT_DELTA);
        let Some(scheduled) = scheduled.filter(|_| cj["spec"]["suspend"] != true) else {
            write(api, &cj_rt, &cj, status, &active)?;
            return Ok(again);
        };
        let too_late = deadline.is_some_and(|d| scheduled.as_second() + d < now.as_second());
        let policy = cj["spec"]["concurrencyPolicy"].as_str().unwrap_or("Allow");
        if too_late || (policy == "Forbid" && !active.is_empty()) {
            if too_late {
                tracing::info!(cronjob = %key.1, %scheduled, "missed starting window");
                status["lastScheduleTime"] = json!(rfc3339(scheduled));
            }
            write(api, &cj_rt, &cj, status, &active)?;
            return Ok(again);
        }
        if policy == "Replace" {
            for job in active.drain(..) {
                let opts = DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() };
                match api.delete(&job_rt, &key.0, meta_str(&job, "name"), &opts) {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let job = job_from_template(&cj, scheduled);
        let name = meta_str(&job, "name").to_string();
        let job = match api.create(&job_rt, &key.0, job, &WriteCtx::controller(MANAGER)) {
            Ok(w) => w.object,
            // Created in an earlier pass whose status write was lost.
            Err(e) if e.code == 409 => api.get(&job_rt, &key.0, &name)?,
            Err(e) => return Err(e),
        };
        if podutil::controlled_by(&job, &uid) && !active.iter().any(|j| meta_str(j, "uid") == meta_str(&job, "uid")) {
            active.push(job);
        }
        status["lastScheduleTime"] = json!(rfc3339(scheduled));
        write(api, &cj_rt, &cj, status, &active)?;
        Ok(again)
    }
}

/// `getJobFromTemplate2`.
fn job_from_template(cj: &Value, scheduled: Timestamp) -> Value {
    let template = &cj["spec"]["jobTemplate"];
    let mut annotations = template["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), json!(rfc3339(scheduled)));
    let mut meta = json!({
        "name": format!("{}-{}", meta_str(cj, "name"), scheduled.as_second() / 60),
        "namespace": cj["metadata"]["namespace"],
        "annotations": annotations,
        "ownerReferences": [podutil::controller_owner_ref(cj, "batch/v1", "CronJob")],
    });
    if let Some(labels) = template["metadata"]["labels"].as_object().filter(|l| !l.is_empty()) {
        meta["labels"] = json!(labels);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template["spec"]})
}

/// Writes `status` with `active` as its object references.
fn write(api: &Api, cj_rt: &ResourceType, cj: &Value, mut status: Value, active: &[Arc<Value>]) -> ApiResult<()> {
    let refs: Vec<Value> = active
        .iter()
        .map(|j| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "namespace": j["metadata"]["namespace"],
                "name": j["metadata"]["name"], "uid": j["metadata"]["uid"], "resourceVersion": j["metadata"]["resourceVersion"]})
        })
        .collect();
    if let Some(m) = status.as_object_mut() {
        if refs.is_empty() {
            m.remove("active");
        } else {
            // The Jobs' resourceVersions change with every status write of theirs; keep the
            // stored reference while the Job is the same, so that those writes are no-ops here.
            let old = cj["status"]["active"].as_array().cloned().unwrap_or_default();
            let refs: Vec<Value> =
                refs.into_iter().map(|r| old.iter().find(|o| o["uid"] == r["uid"]).cloned().unwrap_or(r)).collect();
            m.insert("active".into(), Value::Array(refs));
        }
    }
    podutil::write_status(api, cj_rt, cj, status, MANAGER)?;
    Ok(())
}

/// `cleanupFinishedJobs`: deletes the oldest finished Jobs beyond the history limits.
fn prune_history(api: &Api, job_rt: &ResourceType, cj: &Value, jobs: &[Arc<Value>]) -> ApiResult<()> {
    for (kind, limit) in [("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")] {
        let Some(limit) = cj["spec"][limit].as_i64() else { continue };
        let mut done: Vec<&Arc<Value>> =
            jobs.iter().filter(|j| condition(j, kind).is_some() && !podutil::is_terminating(j)).collect();
        if done.len() as i64 <= limit {
            continue;
        }
        done.sort_by_key(|j| {
            podutil::parse_ms(&j["status"]["startTime"])
                .or_else(|| podutil::parse_ms(&j["metadata"]["creationTimestamp"]))
        });
        let extra = done.len() - limit.max(0) as usize;
        for job in &done[..extra] {
            let opts = DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() };
            match api.delete(job_rt, meta_str(job, "namespace"), meta_str(job, "name"), &opts) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_latest_missed_time_runs() {
        let cron = crate::api::ops::batch::parse_schedule("*/5 * * * *").unwrap();
        let (last, missed, next) = schedule_times(&cron, ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:17:00Z"));
        assert_eq!(last, Some(ts("2026-01-01T00:15:00Z")));
        assert_eq!(missed, 3);
        assert_eq!(next, Some(ts("2026-01-01T00:20:00Z")));
        let (last, missed, _) = schedule_times(&cron, ts("2026-01-01T00:15:00Z"), ts("2026-01-01T00:17:00Z"));
        assert_eq!((last, missed), (None, 0));
    }

    #[test]
    fn day_of_month_and_week_are_or_ed() {
        // robfig/cron: both restricted means either matches (2026-01-05 is a Monday).
        let cron = crate::api::ops::batch::parse_schedule("0 0 1 * MON").unwrap();
        let (_, _, next) = schedule_times(&cron, ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:00Z"));
        assert_eq!(next, Some(ts("2026-01-05T00:00:00Z")));
    }

    #[test]
    fn jobs_are_named_by_the_schedule_minute() {
        let cj = json!({"metadata": {"name": "tick", "namespace": "d", "uid": "u"},
            "spec": {"jobTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {"template": {}}}}});
        let job = job_from_template(&cj, ts("2026-01-01T00:05:00Z"));
        assert_eq!(job["metadata"]["name"], format!("tick-{}", ts("2026-01-01T00:05:00Z").as_second() / 60));
        assert_eq!(job["metadata"]["annotations"][SCHEDULED_TIMESTAMP], "2026-01-01T00:05:00Z");
        assert_eq!(job["metadata"]["labels"]["a"], "b");
        assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    }
}
