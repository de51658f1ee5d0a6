//! The TTL-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is deleted
//! that long after its `Complete` or `Failed` condition, in the foreground and only if it is
//! still the same Job (k/k `pkg/controller/ttlafterfinished/ttlafterfinished_controller.go`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::job::condition;
use super::podutil::{self, Key};
use super::queue::Reconciler;
use crate::api::ops::{Api, DeleteOptions, Propagation, meta_str};
use crate::api::resources::GroupResource;
use crate::api::status::ApiResult;
use crate::api::store::{Event, key_of};

/// The TTL-after-finished reconciler.
#[derive(Debug, Default)]
pub struct TtlAfterFinishedController;

/// Runs the controller until the event channel closes.
pub async fn run(api: Arc<Api>, events: tokio::sync::mpsc::UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    super::queue::run(api, events, TtlAfterFinishedController).await
}

/// When (ms since the epoch) a finished Job with a TTL expires.
fn expires_at(job: &Value) -> Option<i64> {
    let ttl = job["spec"]["ttlSecondsAfterFinished"].as_i64()?;
    let finished = condition(job, "Complete").or_else(|| condition(job, "Failed"))?;
    Some(podutil::parse_ms(&finished["lastTransitionTime"])? + ttl * 1000)
}

impl Reconciler for TtlAfterFinishedController {
    fn name(&self) -> &'static str {
        "ttl-after-finished-controller"
    }

    fn keys(&mut self, _api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>) {
        if gr.group == "batch" && gr.resource == "jobs" && expires_at(&event.object).is_some() {
            out.push(key_of(&event.object));
        }
    }

    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>> {
        let rt = podutil::builtin(api, "batch", "jobs")?;
        let job = match api.get(&rt, &key.0, &key.1) {
            Ok(j) => j,
            Err(e) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(at) = expires_at(&job).filter(|_| !podutil::is_terminating(&job)) else { return Ok(None) };
        let now = podutil::now_ms();
        if at > now {
            return Ok(Some(Duration::from_millis((at - now) as u64)));
        }
        let opts = DeleteOptions {
            propagation: Some(Propagation::Foreground),
            precondition_uid: Some(meta_str(&job, "uid").to_string()),
            ..Default::default()
        };
        match api.delete(&rt, &key.0, &key.1, &opts) {
            Ok(_) => Ok(None),
            Err(e) if e.code == 404 || e.code == 409 => Ok(None),
            Err(e) => Err(e),
        }
    }
}
