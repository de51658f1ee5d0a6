//! The reconcile loop: Chaos Mesh's desiredphase, records, finalizer and condition
//! controllers in one pass per object.
//!
//! Per object: add the `chaos-mesh/records` finalizer; decide the desired phase (deleted →
//! Stop; one-shot action → Run; `creationTimestamp + duration` passed → Stop; paused → Stop;
//! else Run); select the targets once (never again for the same uid, as in Chaos Mesh); apply
//! or recover every record whose phase differs (failures are retried with back-off); write the
//! status; and once a deleted object has nothing injected, drop the finalizer. Objects are
//! requeued for the end of their duration.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use super::spec::{self, Kind};
use super::status::{self, FINALIZER, Operation, Record};
use super::{Shared, network, pod, select, stress};
use crate::api::ops::ListOptions;
use crate::api::resources::GroupResource;
use crate::api::store::Event;

/// Longest retry delay after failures.
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    kind: Kind,
    ns: String,
    name: String,
}

impl Key {
    fn object(&self) -> String {
        format!("{}/{}/{}", self.kind.as_str(), self.ns, self.name)
    }
}

/// What the engine remembers about an object (by uid) between passes.
#[derive(Debug, Default)]
struct Memory {
    /// Why selection failed; selection is not tried again.
    select_error: Option<String>,
    time_up: bool,
    paused: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

struct Engine {
    shared: Arc<Shared>,
    memory: HashMap<String, Memory>,
    uids: HashMap<Key, String>,
}

/// Runs until the event channel closes (the engine task is aborted at shutdown).
pub(crate) async fn run(shared: Arc<Shared>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>) {
    let mut engine = Engine { shared, memory: HashMap::new(), uids: HashMap::new() };
    let mut queue: BTreeSet<Key> = BTreeSet::new();
    for kind in Kind::ALL {
        if let Ok(rt) = engine.shared.api.resource("chaos-mesh.org", "v1alpha1", kind.plural())
            && let Ok(list) = engine.shared.api.list(&rt, None, &ListOptions::default())
        {
            queue.extend(list.items.iter().map(|o| key_of(kind, o)));
        }
    }
    let mut wakeups: HashMap<Key, Instant> = HashMap::new();
    loop {
        for key in std::mem::take(&mut queue) {
            match engine.reconcile(&key).await {
                Some(at) => wakeups.insert(key, at),
                None => wakeups.remove(&key),
            };
        }
        let next = wakeups.values().min().copied();
        tokio::select! {
            ev = events.recv() => {
                let Some(first) = ev else { return };
                queue_event(&first.0, &first.1, &mut queue);
                while let Ok((gr, ev)) = events.try_recv() {
                    queue_event(&gr, &ev, &mut queue);
                }
            }
            () = sleep_until(next) => {
                let now = Instant::now();
                let due: Vec<Key> = wakeups.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
                for k in due {
                    wakeups.remove(&k);
                    queue.insert(k);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

fn queue_event(gr: &GroupResource, ev: &Event, queue: &mut BTreeSet<Key>) {
    if gr.group != "chaos-mesh.org" {
        return;
    }
    if let Some(kind) = Kind::from_plural(&gr.resource) {
        queue.insert(key_of(kind, &ev.object));
    }
}

fn key_of(kind: Kind, obj: &Value) -> Key {
    Key {
        kind,
        ns: obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
        name: obj["metadata"]["name"].as_str().unwrap_or_default().to_string(),
    }
}

/// `metadata.creationTimestamp` of `obj` (now when unreadable).
pub(super) fn creation(obj: &Value) -> SystemTime {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .and_then(|t| u64::try_from(t.as_millisecond()).ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .unwrap_or_else(SystemTime::now)
}

/// A generator for one selector of one object: the engine seed mixed with the object's
/// identity, so each object's pick replays whatever else ran before it.
fn rng_for(seed: u64, key: &Key, selector_key: &str) -> StdRng {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (key.kind.as_str(), &key.ns, &key.name, selector_key).hash(&mut h);
    StdRng::seed_from_u64(seed ^ h.finish())
}

impl Engine {
    /// One pass over `key`; answers when to look again.
    async fn reconcile(&mut self, key: &Key) -> Option<Instant> {
        let api = self.shared.api.clone();
        let rt = api.resource("chaos-mesh.org", "v1alpha1", key.kind.plural()).ok()?;
        let mut obj = match api.get(&rt, &key.ns, &key.name) {
            Ok(o) => o,
            Err(e) if e.code == 404 => {
                // Gone without our finalizer pass (forced removal): undo what is still in place.
                if let Some(uid) = self.uids.remove(key) {
                    self.forget(key.kind, &uid);
                }
                return None;
            }
            Err(e) => {
                tracing::warn!(object = %key.object(), error = %e, "chaos engine cannot read the object");
                return Some(Instant::now() + Duration::from_secs(1));
            }
        };
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        if let Some(old) = self.uids.insert(key.clone(), uid.clone())
            && old != uid
        {
            self.forget(key.kind, &old);
        }
        let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
        let has_finalizer = obj["metadata"]["finalizers"].as_array().is_some_and(|l| l.iter().any(|f| f == FINALIZER));
        if !deleting && !has_finalizer {
            match status::set_finalizer(&api, &rt, &key.ns, &key.name, &uid, true) {
                Ok(Some(o)) => {
                    status::event(&api, &o, false, "FinalizerInited", "Finalizer has been inited");
                    obj = o;
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(object = %key.object(), error = %e, "chaos engine cannot add its finalizer");
                    return Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }

        let one_shot = spec::one_shot(key.kind, &obj);
        let (duration, spec_error) = match spec::duration(&obj) {
            Ok(d) => (d, None),
            Err(e) => (None, Some(e)),
        };
        let ends = duration.map(|d| creation(&obj) + d);
        let time_up = !one_shot && ends.is_some_and(|end| SystemTime::now() >= end);
        let paused = status::paused(&obj);
        let run = !deleting && (one_shot || (!time_up && !paused));

        let mem = self.memory.entry(uid.clone()).or_default();
        let mut records = status::records(&obj);
        if records.is_none() && run && mem.select_error.is_none() {
            let selected = match spec_error {
                Some(e) => Err(e),
                None => select_records(&self.shared, key, &obj),
            };
            match selected {
                Ok(r) if !r.is_empty() => records = Some(r),
                Ok(_) => mem.select_error = Some("no pod matches the selector, or the mode picked none".into()),
                Err(e) => mem.select_error = Some(e),
            }
            if let Some(e) = &mem.select_error {
                status::event(&api, &obj, true, "Failed", &format!("Failed to select targets: {e}"));
            }
        }
        let select_error = if records.is_none() { mem.select_error.clone() } else { None };

        if time_up && !mem.time_up {
            mem.time_up = true;
            status::event(&api, &obj, false, "TimeUp", "Time up according to the duration");
        }
        if paused != mem.paused && !one_shot {
            mem.paused = paused;
            let (reason, msg) = if paused {
                ("Paused", "Experiment has been paused")
            } else {
                ("Started", "Experiment has been resumed")
            };
            status::event(&api, &obj, false, reason, msg);
        }

        let mut retry_at = None;
        if let Some(recs) = records.as_mut() {
            let todo: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].injected() != run).collect();
            let mem = self.memory.entry(uid.clone()).or_default();
            let waiting = mem.retry_at.is_some_and(|at| at > Instant::now());
            if !todo.is_empty() && waiting {
                retry_at = mem.retry_at;
            } else if !todo.is_empty() {
                let op = if run { Operation::Apply } else { Operation::Recover };
                let failed = self.act(key, &uid, &obj, recs, &todo, op, one_shot).await;
                let mem = self.memory.entry(uid.clone()).or_default();
                if failed {
                    mem.failures += 1;
                    let wait = self.shared.config.retry.saturating_mul(1 << mem.failures.min(6).saturating_sub(1));
                    let at = Instant::now() + wait.min(MAX_RETRY);
                    mem.retry_at = Some(at);
                    retry_at = Some(at);
                } else {
                    mem.failures = 0;
                    mem.retry_at = None;
                }
            }
        }

        let st = status::build(run, records.as_deref(), paused, select_error.as_deref());
        if let Err(e) = status::write(&api, &rt, &key.ns, &key.name, &uid, &st) {
            tracing::warn!(object = %key.object(), error = %e, "chaos engine cannot write the status");
            return Some(Instant::now() + Duration::from_secs(1));
        }

        let nothing_injected = records.as_ref().is_none_or(|r| r.iter().all(|x| !x.injected()));
        if deleting && nothing_injected {
            // The fault is recovered: let the delete finish.
            if let Ok(Some(o)) = status::set_finalizer(&api, &rt, &key.ns, &key.name, &uid, false) {
                status::event(&api, &o, false, "Deleted", "Experiment has been deleted");
            }
            self.forget(key.kind, &uid);
            return None;
        }
        let end_wake = if run && !one_shot { ends.map(wake_at) } else { None };
        [retry_at, end_wake].into_iter().flatten().min()
    }

    /// Applies or recovers the records at `todo`; true when any failed.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        key: &Key,
        uid: &str,
        obj: &Value,
        records: &mut [Record],
        todo: &[usize],
        op: Operation,
        one_shot: bool,
    ) -> bool {
        let api = &self.shared.api;
        let mut failed = false;
        if key.kind == Kind::Network {
            // Network faults are one rule set per object: all records move together.
            let result = match op {
                Operation::Apply => network::inject(&self.shared, &key.object(), uid, obj, records).await,
                Operation::Recover => network::recover(&self.shared, uid).await,
            };
            for &i in todo {
                match &result {
                    Ok(()) => records[i].succeeded(op),
                    Err(e) => records[i].failed(op, e),
                }
            }
            report(api, obj, op, todo.iter().map(|&i| &records[i]), result.as_ref().err());
            return result.is_err();
        }
        for &i in todo {
            let id = records[i].id.clone();
            let result = match (key.kind, op) {
                // A one-shot fault has nothing to undo.
                (Kind::Pod, Operation::Recover) if one_shot => Ok(()),
                (Kind::Pod, _) => pod::act(&self.shared, obj, &id, op).await,
                (Kind::Stress, Operation::Apply) => stress::inject(&self.shared, &key.object(), uid, obj, &id),
                (Kind::Stress, Operation::Recover) => stress::recover(&self.shared, uid, &id),
                (Kind::Network, _) => Ok(()),
            };
            match &result {
                Ok(()) => records[i].succeeded(op),
                Err(e) => {
                    failed = true;
                    records[i].failed(op, e);
                }
            }
            report(api, obj, op, std::iter::once(&records[i]), result.as_ref().err());
        }
        failed
    }

    /// Undoes whatever host-level state an object (by uid) still holds, and forgets it.
    fn forget(&mut self, kind: Kind, uid: &str) {
        self.memory.remove(uid);
        match kind {
            Kind::Network => self.shared.network.remove(uid, &self.shared.nodes),
            Kind::Stress => self.shared.stress.remove_all(uid),
            Kind::Pod => {}
        }
    }
}

fn wake_at(end: SystemTime) -> Instant {
    let left = end.duration_since(SystemTime::now()).unwrap_or_default();
    // A little after the end, so the pass sees it passed.
    Instant::now() + left + Duration::from_millis(5)
}

fn report<'a>(
    api: &crate::api::ops::Api,
    obj: &Value,
    op: Operation,
    records: impl Iterator<Item = &'a Record>,
    error: Option<&String>,
) {
    let ids: Vec<&str> = records.map(|r| r.id.as_str()).collect();
    let verb = match op {
        Operation::Apply => "apply",
        Operation::Recover => "recover",
    };
    match error {
        None => {
            let reason = if op == Operation::Apply { "Applied" } else { "Recovered" };
            status::event(api, obj, false, reason, &format!("Successfully {verb} chaos for {}", ids.join(", ")));
        }
        Some(e) => {
            status::event(api, obj, true, "Failed", &format!("Failed to {verb} chaos for {}: {e}", ids.join(", ")))
        }
    }
}

/// Selects the targets of `obj` and makes their records: `ns/pod` for pod-level actions,
/// `ns/pod/container` for container-kill and StressChaos; NetworkChaos targets get `.Target`
/// records. Errors name the field.
fn select_records(shared: &Shared, key: &Key, obj: &Value) -> Result<Vec<Record>, String> {
    let spec = &obj["spec"];
    let mut rng = rng_for(shared.seed, key, ".");
    let cands = select::candidates(&shared.api, &spec["selector"], &key.ns, "spec.selector")?;
    let picked =
        select::pick(cands, spec["mode"].as_str().unwrap_or_default(), spec["value"].as_str(), &mut rng, "spec")?;
    let per_container = key.kind == Kind::Stress || spec["action"] == "container-kill";
    let mut records = Vec::new();
    for pod in &picked {
        let id = select::pod_id(pod);
        if per_container {
            for c in spec::containers(obj, pod)? {
                records.push(Record::new(format!("{id}/{c}"), "."));
            }
        } else {
            records.push(Record::new(id, "."));
        }
    }
    if records.is_empty() {
        return Ok(records);
    }
    if key.kind == Kind::Network && !spec["target"].is_null() {
        let target = &spec["target"];
        let mut rng = rng_for(shared.seed, key, ".Target");
        let cands = select::candidates(&shared.api, &target["selector"], &key.ns, "spec.target.selector")?;
        let picked = select::pick(
            cands,
            target["mode"].as_str().unwrap_or_default(),
            target["value"].as_str(),
            &mut rng,
            "spec.target",
        )?;
        if picked.is_empty() {
            return Err("spec.target: no pod matches the target selector".into());
        }
        records.extend(picked.iter().map(|p| Record::new(select::pod_id(p), ".Target")));
    }
    tracing::info!(object = %key.object(), seed = shared.seed, targets = ?records.iter().map(|r| &r.id).collect::<Vec<_>>(), "chaos targets selected");
    Ok(records)
}
