//! The run ledger: an append-only JSONL file (`reports/.ledger/<run-id>.jsonl` by default) with
//! one line per object a run creates — written *before* the create — and one per removal.
//!
//! The objects still recorded are what a crashed, interrupted or panicking run left behind:
//! [`Ledger::cleanup`] (and `hadrill clean`, which replays every ledger it finds) deletes them.
//! A chaos object whose finalizer outlives [`CleanupOptions::finalizer_grace`] has its finalizer
//! stripped, with a warning: that means Chaos Mesh did not confirm recovery, so the fault may still
//! be in place on its targets.
//!
//! A ledger of objects on an embedded cluster names the process that runs the cluster on every
//! line ([`Entry::embedded_in`]): those objects live and die with that process, so once it is
//! gone (a SIGKILLed run) the ledger records nothing that exists, and the host sweep
//! ([`super::host`]) removes it without any cluster to talk to.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::GroupVersionKind;
use kube::runtime::wait::{await_condition, conditions};
use serde::{Deserialize, Serialize};

use super::ChaosKind;

/// Where ledgers go unless configured otherwise (relative to the working directory).
pub const DEFAULT_DIR: &str = "reports/.ledger";
/// Label put on every object a run creates, valued with the run id.
pub const RUN_LABEL: &str = "hadrill.io/run";
/// Label of a namespace a run may inject faults into but must not delete (the controller's
/// `hadrill-system`, shared by every run on a real cluster).
pub const SHARED_LABEL: &str = "hadrill.io/shared";
/// Label naming the scenario a chaos object was rendered from.
pub const SCENARIO_LABEL: &str = "hadrill.io/scenario";
/// The annotation that makes Chaos Mesh drop its finalizer without recovering.
pub const CLEAN_FINALIZER_ANNOTATION: &str = "chaos-mesh.chaos-mesh.org/cleanFinalizer";

/// Which object a ledger line is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `chaos-mesh.org/v1alpha1` or `v1`.
    pub api_version: String,
    /// `kind`, e.g. `PodChaos` or `Namespace`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// A namespace.
    pub fn namespace(name: &str) -> Self {
        Self { api_version: "v1".into(), kind: "Namespace".into(), namespace: None, name: name.into() }
    }

    /// The API resource to reach it through (plural from the known kinds, else `kind` + `s`).
    pub fn api_resource(&self) -> ApiResource {
        let (group, version) = self.api_version.rsplit_once('/').unwrap_or(("", &self.api_version));
        let plural = match ChaosKind::from_kind(&self.kind) {
            Some(k) => k.plural().to_string(),
            None => format!("{}s", self.kind.to_lowercase()),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &self.kind), &plural)
    }

    /// An API handle for its resource, in its namespace.
    pub fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        let ar = self.api_resource();
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What a ledger line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// About to be created (written before the create request).
    Creating,
    /// Created, with its uid.
    Created,
    /// Gone from the cluster (or never created).
    Removed,
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// What happened.
    pub op: Op,
    /// The run.
    pub run: String,
    /// The object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Its uid, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The scenario it was rendered from, for chaos objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The process whose embedded cluster holds the object; `None` on a real cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded_in: Option<sim::owner::Owner>,
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// A fresh run id: `r` + UTC time to the second + the process id, a valid label value.
pub fn new_run_id() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    format!("r{}-{}", now.strftime("%Y%m%dt%H%M%S"), std::process::id())
}

/// An open ledger of one run.
#[derive(Debug)]
pub struct Ledger {
    run: String,
    path: PathBuf,
    file: Mutex<std::fs::File>,
    /// Objects still recorded, in creation order.
    live: Mutex<Vec<Entry>>,
    /// Set once cleanup of an interrupted run began: no more creates.
    closed: std::sync::atomic::AtomicBool,
    /// The process whose embedded cluster holds the run's objects, if they are on one.
    embedded_in: Option<sim::owner::Owner>,
}

impl Ledger {
    /// Opens (creating it and `dir` if needed) the ledger of `run` in `dir`; lines already in
    /// it are replayed, so a resumed run still removes what it created before.
    pub fn open(dir: &Path, run: &str) -> anyhow::Result<Ledger> {
        Self::open_in(dir, run, None)
    }

    /// Opens the ledger of `run` for objects on the embedded cluster this process runs.
    pub fn open_embedded(dir: &Path, run: &str) -> anyhow::Result<Ledger> {
        Self::open_in(dir, run, Some(sim::owner::Owner::current()))
    }

    fn open_in(dir: &Path, run: &str, embedded_in: Option<sim::owner::Owner>) -> anyhow::Result<Ledger> {
        super::validate::label_value(run).map_err(|e| anyhow::anyhow!("run id `{run}`: {e}"))?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating the ledger directory {}", dir.display()))?;
        let path = dir.join(format!("{run}.jsonl"));
        let entries = if path.exists() { read(&path)? } else { Vec::new() };
        let embedded_in = embedded_in.or_else(|| entries.iter().find_map(|e| e.embedded_in));
        let live = live_entries(entries);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the ledger {}", path.display()))?;
        Ok(Ledger {
            run: run.into(),
            path,
            file: Mutex::new(file),
            live: Mutex::new(live),
            closed: Default::default(),
            embedded_in,
        })
    }

    /// The process whose embedded cluster holds the run's objects; `None` on a real cluster.
    pub fn embedded_in(&self) -> Option<sim::owner::Owner> {
        self.embedded_in
    }

    /// Opens an existing ledger file (the run id is its file stem).
    pub fn open_file(path: &Path) -> anyhow::Result<Ledger> {
        let run = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("{}: not a ledger file name", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::open(dir, run)
    }

    /// The run id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Objects still recorded (created or about to be, not removed), in creation order.
    pub fn live(&self) -> Vec<Entry> {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Records that `object` is about to be created. Call before the create request. Fails
    /// once the ledger is [closed](Ledger::close).
    pub fn record_creating(&self, object: &ObjectRef, scenario: Option<&str>) -> anyhow::Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("run {} is being cleaned up: not creating {object}", self.run);
        }
        self.append(Op::Creating, object, None, scenario)
    }

    /// Refuses further creates (an interrupted run is being cleaned up).
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Records that `object` was created with `uid`.
    pub fn record_created(&self, object: &ObjectRef, uid: &str, scenario: Option<&str>) -> anyhow::Result<()> {
        self.append(Op::Created, object, Some(uid), scenario)
    }

    /// Records that `object` is gone.
    pub fn record_removed(&self, object: &ObjectRef) -> anyhow::Result<()> {
        self.append(Op::Removed, object, None, None)
    }

    fn append(&self, op: Op, object: &ObjectRef, uid: Option<&str>, scenario: Option<&str>) -> anyhow::Result<()> {
        let entry = Entry {
            op,
            run: self.run.clone(),
            object: object.clone(),
            uid: uid.map(str::to_string),
            scenario: scenario.map(str::to_string),
            time: now_rfc3339(),
            embedded_in: self.embedded_in,
        };
        let mut line = serde_json::to_string(&entry)?;
        line.push('\n');
        {
            let mut file = self.file.lock().map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?;
            file.write_all(line.as_bytes())
                .and_then(|()| file.sync_data())
                .with_context(|| format!("appending to the ledger {}", self.path.display()))?;
        }
        let mut live = self.live.lock().map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?;
        apply(&mut live, entry);
        Ok(())
    }

    /// Deletes every object still recorded, newest first, and records each removal. Objects
    /// that could not be removed stay recorded (and are reported as failed).
    pub async fn cleanup(&self, client: &kube::Client, options: &CleanupOptions) -> Vec<Removal> {
        let mut out = Vec::new();
        for entry in self.live().into_iter().rev() {
            let outcome = remove(client, &entry.object, entry.uid.as_deref(), Some(&self.run), options).await;
            if outcome.is_gone()
                && !options.dry_run
                && let Err(e) = self.record_removed(&entry.object)
            {
                tracing::error!(error = %e, object = %entry.object, "could not record a removal in the ledger");
            }
            out.push(Removal { object: entry.object, outcome });
        }
        out
    }

    /// Removes the ledger file when nothing is recorded any more; returns whether it did.
    pub fn remove_if_empty(&self) -> anyhow::Result<bool> {
        if !self.live().is_empty() {
            return Ok(false);
        }
        std::fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))?;
        Ok(true)
    }
}

/// Applies one line to the live set.
fn apply(live: &mut Vec<Entry>, entry: Entry) {
    match entry.op {
        Op::Creating => {
            if !live.iter().any(|e| e.object == entry.object) {
                live.push(entry);
            }
        }
        Op::Created => match live.iter_mut().find(|e| e.object == entry.object) {
            Some(e) => {
                e.uid = entry.uid;
                e.op = Op::Created;
            }
            None => live.push(entry),
        },
        Op::Removed => live.retain(|e| e.object != entry.object),
    }
}

/// Reads every line of a ledger file; a bad line is an error naming the file and line.
pub fn read(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading the ledger {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading the ledger {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry =
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not a ledger entry", path.display(), i + 1))?;
        out.push(entry);
    }
    Ok(out)
}

/// The objects still recorded after replaying `entries`, in creation order.
pub fn live_entries(entries: Vec<Entry>) -> Vec<Entry> {
    let mut live = Vec::new();
    for e in entries {
        apply(&mut live, e);
    }
    live
}

/// The ledger files (`*.jsonl`) in `dir`, sorted; none when `dir` does not exist.
pub fn ledger_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    out.sort();
    Ok(out)
}

/// How cleanup removes objects.
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    /// Time allowed per object, finalizer stripping included.
    pub timeout: Duration,
    /// How long an object may hang on its finalizer before the finalizer is stripped.
    pub finalizer_grace: Duration,
    /// Only report what would be removed.
    pub dry_run: bool,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(60), finalizer_grace: Duration::from_secs(30), dry_run: false }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Deleted, and gone.
    Deleted,
    /// Deletion requested and accepted (namespaces: their content is removed in the background).
    Deleting,
    /// Not there (any more), or the name now belongs to another object.
    AlreadyGone,
    /// Hung on its finalizer, which was stripped: recovery may not have happened.
    FinalizersStripped,
    /// Dry run: would be deleted.
    WouldDelete,
    /// Belongs to another run (label `hadrill.io/run` differs): left alone.
    NotOurs(String),
    /// Could not be removed.
    Failed(String),
}

impl Outcome {
    /// Whether the object no longer needs removing.
    pub fn is_gone(&self) -> bool {
        matches!(self, Outcome::Deleted | Outcome::Deleting | Outcome::AlreadyGone | Outcome::FinalizersStripped)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Deleted => f.write_str("deleted"),
            Outcome::Deleting => f.write_str("deletion requested"),
            Outcome::AlreadyGone => f.write_str("already gone"),
            Outcome::FinalizersStripped => {
                f.write_str("deleted after stripping its finalizers (recovery NOT confirmed)")
            }
            Outcome::WouldDelete => f.write_str("would delete (dry run)"),
            Outcome::NotOurs(run) => write!(f, "left alone: it belongs to run {run}"),
            Outcome::Failed(e) => write!(f, "NOT removed: {e}"),
        }
    }
}

/// One object cleanup dealt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The object.
    pub object: ObjectRef,
    /// What happened.
    pub outcome: Outcome,
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.outcome)
    }
}

/// Deletes `object` and waits until it is gone. With `uid`, only that incarnation is deleted;
/// with `run`, an object labelled for another run is left alone. Namespaces are not waited for.
pub async fn remove(
    client: &kube::Client,
    object: &ObjectRef,
    uid: Option<&str>,
    run: Option<&str>,
    options: &CleanupOptions,
) -> Outcome {
    match tokio::time::timeout(options.timeout, remove_inner(client, object, uid, run, options)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
        Err(_) => Outcome::Failed(format!("still there after {:?}", options.timeout)),
    }
}

async fn remove_inner(
    client: &kube::Client,
    object: &ObjectRef,
    uid: Option<&str>,
    run: Option<&str>,
    options: &CleanupOptions,
) -> anyhow::Result<Outcome> {
    let api = object.api(client);
    let Some(current) = api.get_opt(&object.name).await.with_context(|| format!("reading {object}"))? else {
        return Ok(Outcome::AlreadyGone);
    };
    let current_uid = current.metadata.uid.clone().unwrap_or_default();
    if uid.is_some_and(|u| u != current_uid) {
        return Ok(Outcome::AlreadyGone);
    }
    if let Some(run) = run {
        let label = current.metadata.labels.as_ref().and_then(|l| l.get(RUN_LABEL));
        match label {
            Some(other) if other != run => return Ok(Outcome::NotOurs(other.clone())),
            // Recorded before a create that never returned a uid, and not labelled by this run:
            // the create failed and the name belongs to someone else.
            None if uid.is_none() => return Ok(Outcome::AlreadyGone),
            _ => {}
        }
    }
    if options.dry_run {
        return Ok(Outcome::WouldDelete);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(current_uid.clone()), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(&object.name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(Outcome::AlreadyGone),
        Err(e) => return Err(anyhow::anyhow!("deleting {object}: {e}")),
    }
    if object.kind == "Namespace" {
        return Ok(Outcome::Deleting);
    }
    let gone = await_condition(api.clone(), &object.name, conditions::is_deleted(&current_uid));
    match tokio::time::timeout(options.finalizer_grace, gone).await {
        Ok(Ok(_)) => return Ok(Outcome::Deleted),
        Ok(Err(e)) => return Err(anyhow::anyhow!("watching {object} go: {e}")),
        Err(_) => {}
    }
    let finalizers =
        api.get_opt(&object.name).await.ok().flatten().and_then(|o| o.metadata.finalizers).unwrap_or_default();
    tracing::warn!(
        object = %object,
        finalizers = ?finalizers,
        grace = ?options.finalizer_grace,
        "STUCK ON ITS FINALIZER: stripping it. Recovery was NOT confirmed; the fault may still be in place on its targets"
    );
    let patch = serde_json::json!({
        "metadata": {"annotations": {CLEAN_FINALIZER_ANNOTATION: "forced"}, "finalizers": null}
    });
    match api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Outcome::FinalizersStripped),
        Err(e) => return Err(anyhow::anyhow!("stripping the finalizers of {object}: {e}")),
    }
    await_condition(api, &object.name, conditions::is_deleted(&current_uid))
        .await
        .with_context(|| format!("watching {object} go"))?;
    Ok(Outcome::FinalizersStripped)
}

/// Sweeps what earlier runs left behind: replays the ledgers in `ledger_dir` (only `run`'s when
/// given; not those of embedded clusters, which are not on `client`'s cluster and which the host
/// sweep handles), then deletes every chaos object of the four kinds and every namespace
/// labelled [`RUN_LABEL`] (`=run` when given). Ledger files that end up empty are removed.
pub async fn sweep(
    client: &kube::Client,
    run: Option<&str>,
    ledger_dir: Option<&Path>,
    options: &CleanupOptions,
) -> anyhow::Result<Vec<Removal>> {
    let mut out: Vec<Removal> = Vec::new();
    if let Some(dir) = ledger_dir {
        for path in ledger_files(dir)? {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if run.is_some_and(|r| r != stem) {
                continue;
            }
            let ledger = Ledger::open_file(&path)?;
            if ledger.embedded_in().is_some() {
                continue;
            }
            out.extend(ledger.cleanup(client, options).await);
            if !options.dry_run {
                ledger.remove_if_empty()?;
            }
        }
    }
    sweep_labelled(client, run, true, options, out).await
}

/// Deletes the chaos objects labelled [`RUN_LABEL`]`=run` (any run's when `None`) — and with
/// `namespaces`, the namespaces so labelled — skipping what `out` already lists; returns `out`
/// with one more line per object.
pub async fn sweep_labelled(
    client: &kube::Client,
    run: Option<&str>,
    namespaces: bool,
    options: &CleanupOptions,
    mut out: Vec<Removal>,
) -> anyhow::Result<Vec<Removal>> {
    use kube::api::ListParams;
    let selector = match run {
        Some(r) => format!("{RUN_LABEL}={r}"),
        None => RUN_LABEL.to_string(),
    };
    let params = ListParams::default().labels(&selector);
    let mut found = Vec::new();
    for kind in ChaosKind::ALL {
        let object = ObjectRef {
            api_version: kind.api_version().into(),
            kind: kind.as_str().into(),
            namespace: None,
            name: String::new(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &object.api_resource());
        match api.list(&params).await {
            Ok(list) => found.extend(list.items.into_iter().map(|o| (object.clone(), o))),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::info!("{kind} is not served (its CRD is not installed): nothing to sweep");
            }
            Err(e) => return Err(anyhow::anyhow!("listing {kind} labelled {selector}: {e}")),
        }
    }
    if namespaces {
        // A shared namespace (the controller's) is in a run's fault scope but not the run's to delete.
        let owned = ListParams::default().labels(&format!("{selector},!{SHARED_LABEL}"));
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ObjectRef::namespace("").api_resource());
        let list = api.list(&owned).await.with_context(|| format!("listing namespaces labelled {selector}"))?;
        found.extend(list.items.into_iter().map(|o| (ObjectRef::namespace(""), o)));
    }
    for (template, obj) in found {
        let object = ObjectRef {
            namespace: obj.metadata.namespace.clone(),
            name: obj.metadata.name.clone().unwrap_or_default(),
            ..template
        };
        if out.iter().any(|r| r.object == object) {
            continue;
        }
        if object.kind == "Namespace" && obj.metadata.deletion_timestamp.is_some() {
            out.push(Removal { object, outcome: Outcome::Deleting });
            continue;
        }
        let outcome = remove(client, &object, obj.metadata.uid.as_deref(), None, options).await;
        out.push(Removal { object, outcome });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "chaos-mesh.org/v1alpha1".into(),
            kind: "PodChaos".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    #[test]
    fn the_live_set_follows_the_lines_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("hadrill-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ledger = Ledger::open(&dir, "run-1").unwrap();
        ledger.record_creating(&ObjectRef::namespace("ns"), None).unwrap();
        ledger.record_created(&ObjectRef::namespace("ns"), "u0", None).unwrap();
        ledger.record_creating(&chaos("a"), Some("primary-pod-kill")).unwrap();
        ledger.record_created(&chaos("a"), "u1", Some("primary-pod-kill")).unwrap();
        ledger.record_creating(&chaos("b"), None).unwrap();
        ledger.record_removed(&chaos("a")).unwrap();
        let names: Vec<_> = ledger.live().iter().map(|e| e.object.name.clone()).collect();
        assert_eq!(names, ["ns", "b"]);
        drop(ledger);

        let reopened = Ledger::open_file(&dir.join("run-1.jsonl")).unwrap();
        assert_eq!(reopened.live().len(), 2);
        assert_eq!(reopened.live()[0].uid.as_deref(), Some("u0"));
        assert_eq!(read(reopened.path()).unwrap().len(), 6);
        assert!(!reopened.remove_if_empty().unwrap());
        reopened.close();
        assert!(reopened.record_creating(&chaos("c"), None).is_err(), "a closed ledger refuses creates");
        assert!(reopened.record_removed(&chaos("b")).is_ok());

        std::fs::write(dir.join("bad.jsonl"), "{\"op\":\"created\"}\n\nnot json\n").unwrap();
        let err = format!("{:#}", read(&dir.join("bad.jsonl")).unwrap_err());
        assert!(err.contains("bad.jsonl:1"), "{err}");
        assert_eq!(ledger_files(&dir).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn run_ids_are_label_values_and_bad_ones_are_refused() {
        let id = new_run_id();
        assert!(crate::chaos::validate::label_value(&id).is_ok(), "{id}");
        let dir = std::env::temp_dir().join(format!("hadrill-ledger-bad-{}", std::process::id()));
        assert!(Ledger::open(&dir, "no/slashes").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn api_resources_use_chaos_mesh_plurals() {
        assert_eq!(chaos("a").api_resource().plural, "podchaos");
        assert_eq!(chaos("a").api_resource().group, "chaos-mesh.org");
        assert_eq!(ObjectRef::namespace("x").api_resource().plural, "namespaces");
    }
}
