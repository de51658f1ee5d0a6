//! The injection lifecycle of a chaos object, as Chaos Mesh's protocol wants it:
//!
//! 1. refuse unless every namespace the object touches is owned by the run (label
//!    [`RUN_LABEL`]`=<run id>` on the Namespace): faults stay inside the run's namespaces;
//! 2. wait until the selector's targets exist and are Running — Chaos Mesh selects once, on the
//!    first reconcile, and never retries, so creating early injects nothing;
//! 3. label the object with the run (and scenario), record it in the run's [`Ledger`] *before*
//!    creating it, create it (validated first);
//! 4. wait (watch) for the conditions `Selected=True` and `AllInjected=True`, looked up by type;
//! 5. recover by delete (the finalizer `chaos-mesh/records` keeps the object until every record
//!    is recovered, so 404 = recovered) or by duration (`AllRecovered=True`, then delete), and
//!    record the removal.
//!
//! A [`Run`] owns the ledger: [`Run::finish`] removes whatever is still recorded; dropping a
//! run inside a multi-threaded tokio runtime (a test that panics, `?` out of a step) does the
//! same synchronously; [`Run::cleanup_on_signal`] does it on SIGINT or SIGTERM and exits 130 or
//! 143 (a second signal exits at once). A panic that
//! aborts the process (or `kill -9`) leaves the ledger file behind: `hadrill clean` replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::Deserialize;
use serde_json::Value;

use super::ledger::{CleanupOptions, Ledger, ObjectRef, Removal};
pub use super::ledger::{RUN_LABEL, SCENARIO_LABEL};
use super::model::{
    ChaosCondition, ChaosStatus, ConditionType, ExperimentStatus, PodSelector, PodSelectorSpec, SelectorMode,
};
use super::{ChaosResource, Validate, ValidateOptions};

/// How [`Run::inject`] proceeds.
#[derive(Debug, Clone)]
pub struct InjectOptions {
    /// The scenario the object was rendered from (label [`SCENARIO_LABEL`], ledger).
    pub scenario: Option<String>,
    /// Time allowed for the targets to exist and run.
    pub targets_timeout: Duration,
    /// Time allowed from the create until `Selected` and `AllInjected` are `True`.
    pub injected_timeout: Duration,
    /// Accept selectors that pick every pod of a namespace.
    pub allow_namespace_wide_selector: bool,
}

impl Default for InjectOptions {
    fn default() -> Self {
        Self {
            scenario: None,
            targets_timeout: Duration::from_secs(60),
            injected_timeout: Duration::from_secs(60),
            allow_namespace_wide_selector: false,
        }
    }
}

/// How a fault ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Delete the object; recovered once it is gone (404).
    Delete,
    /// Wait for `AllRecovered=True` (the duration ran out), then delete the kept object.
    Duration,
}

/// When each step of an injection happened, for the harness's deadline reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The targets existed and were Running.
    pub targets_ready: SystemTime,
    /// The create request returned.
    pub created: SystemTime,
    /// `Selected` and `AllInjected` were seen `True`.
    pub injected: SystemTime,
    /// The fault was seen recovered (object gone, or `AllRecovered=True`).
    pub recovered: Option<SystemTime>,
}

impl Timeline {
    /// Time from create to injected.
    pub fn injection_latency(&self) -> Duration {
        self.injected.duration_since(self.created).unwrap_or_default()
    }
}

/// The status every chaos kind shares, read from any of them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AnyChaosStatus {
    /// Conditions.
    #[serde(default)]
    pub conditions: Option<Vec<ChaosCondition>>,
    /// Experiment state.
    #[serde(default)]
    pub experiment: Option<ExperimentStatus>,
}

impl ChaosStatus for AnyChaosStatus {
    fn conditions(&self) -> &[ChaosCondition] {
        self.conditions.as_deref().unwrap_or_default()
    }
    fn experiment(&self) -> Option<&ExperimentStatus> {
        self.experiment.as_ref()
    }
}

impl AnyChaosStatus {
    /// The status of a chaos object read as a [`DynamicObject`] (empty when absent or unreadable).
    pub fn of(obj: &DynamicObject) -> Self {
        obj.data.get("status").and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_default()
    }

    /// A one-line summary for error messages: every condition (sorted by type) and record.
    pub fn describe(&self) -> String {
        let mut conds: Vec<String> = self
            .conditions()
            .iter()
            .map(|c| match &c.reason {
                Some(r) if !r.is_empty() => format!("{}={} ({r})", c.r#type, c.status),
                _ => format!("{}={}", c.r#type, c.status),
            })
            .collect();
        conds.sort();
        let conds = if conds.is_empty() { "no conditions yet".to_string() } else { conds.join(", ") };
        let records: Vec<String> = self.records().iter().map(|r| format!("{}: {}", r.id, r.phase)).collect();
        if records.is_empty() { conds } else { format!("{conds}; records: {}", records.join(", ")) }
    }
}

/// One selector of a chaos object with its mode: the main one (`.`) or a NetworkChaos `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSelector {
    /// `.` or `.Target`, as Chaos Mesh's records name them.
    pub key: &'static str,
    /// The selector.
    pub spec: PodSelectorSpec,
    /// The mode.
    pub mode: SelectorMode,
    /// The mode's value.
    pub value: Option<String>,
}

impl TargetSelector {
    /// The selectors of a chaos object.
    pub fn of(resource: &ChaosResource) -> anyhow::Result<Vec<TargetSelector>> {
        let v = resource.to_value();
        let spec = &v["spec"];
        let main: PodSelector = serde_json::from_value(serde_json::json!({
            "selector": spec["selector"], "mode": spec["mode"], "value": spec["value"],
        }))
        .with_context(|| format!("{}: reading spec.selector and spec.mode", resource.subject()))?;
        let mut out = vec![TargetSelector { key: ".", spec: main.selector, mode: main.mode, value: main.value }];
        if !spec["target"].is_null() {
            let t: PodSelector = serde_json::from_value(spec["target"].clone())
                .with_context(|| format!("{}: reading spec.target", resource.subject()))?;
            out.push(TargetSelector { key: ".Target", spec: t.selector, mode: t.mode, value: t.value });
        }
        Ok(out)
    }

    fn named_pods(&self) -> Option<&BTreeMap<String, Vec<String>>> {
        self.spec.pods.as_ref().filter(|p| !p.is_empty())
    }

    /// The namespaces it looks in (`default_ns`, the chaos object's, when it names none).
    pub fn namespaces(&self, default_ns: &str) -> BTreeSet<String> {
        if let Some(pods) = self.named_pods() {
            return pods.keys().cloned().collect();
        }
        match self.spec.namespaces.as_ref().filter(|n| !n.is_empty()) {
            Some(ns) => ns.iter().cloned().collect(),
            None => BTreeSet::from([default_ns.to_string()]),
        }
    }

    /// Whether `pod` is a candidate (before the mode picks). `node_labels` maps node names to
    /// their labels (needed for `nodeSelectors` only).
    pub fn matches(
        &self,
        default_ns: &str,
        pod: &Pod,
        node_labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        if let Some(pods) = self.named_pods() {
            return pods.get(ns).is_some_and(|names| names.iter().any(|n| n == name));
        }
        let s = &self.spec;
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
        let contains_all = |want: &Option<BTreeMap<String, String>>, have: &BTreeMap<String, String>| {
            want.as_ref().is_none_or(|w| w.iter().all(|(k, v)| have.get(k) == Some(v)))
        };
        if !self.namespaces(default_ns).contains(ns)
            || !contains_all(&s.label_selectors, labels)
            || !contains_all(&s.annotation_selectors, annotations)
        {
            return false;
        }
        for e in s.expression_selectors.iter().flatten() {
            let values = e.values.as_deref().unwrap_or_default();
            let ok = match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        if let Some(fields) = &s.field_selectors {
            let json = serde_json::to_value(pod).unwrap_or(Value::Null);
            for (path, want) in fields {
                let pointer = format!("/{}", path.replace('.', "/"));
                let have = json.pointer(&pointer).and_then(Value::as_str).unwrap_or_default();
                if have != want {
                    return false;
                }
            }
        }
        let nodes = s.nodes.as_ref().filter(|n| !n.is_empty());
        let node_selectors = s.node_selectors.as_ref().filter(|n| !n.is_empty());
        if nodes.is_some() || node_selectors.is_some() {
            let named = nodes.is_some_and(|n| n.iter().any(|n| n == node));
            let labelled = node_selectors.is_some_and(|want| {
                node_labels.get(node).is_some_and(|have| want.iter().all(|(k, v)| have.get(k) == Some(v)))
            });
            if !named && !labelled {
                return false;
            }
        }
        if let Some(phases) = s.pod_phase_selectors.as_ref().filter(|p| !p.is_empty())
            && !phases.iter().any(|p| p == phase)
        {
            return false;
        }
        true
    }

    /// Why an injection is refused when this selector matches no pod: the selector itself.
    pub fn refusal(&self, default_ns: &str) -> String {
        let spec = serde_json::to_string(&self.spec).unwrap_or_else(|_| format!("{:?}", self.spec));
        let value = self.value.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
        let namespaces: Vec<String> = self.namespaces(default_ns).into_iter().collect();
        format!(
            "refusing to inject: selector `{}` matches no pod: {spec} (mode {}{value}) in namespace(s) {}",
            self.key,
            self.mode,
            namespaces.join(", ")
        )
    }

    /// `Ok` when the candidates are ready to be selected: every named pod exists, there are
    /// enough for the mode, and each is Running and not being deleted (unless
    /// `podPhaseSelectors` asks for other phases); else why not.
    pub fn ready(&self, candidates: &[&Pod]) -> Result<(), String> {
        let id = |p: &Pod| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            )
        };
        if let Some(named) = self.named_pods() {
            for (ns, names) in named {
                for name in names {
                    let want = format!("{ns}/{name}");
                    if !candidates.iter().any(|p| id(p) == want) {
                        return Err(format!("selector `{}`: pod {want} does not exist", self.key));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return Err(format!("selector `{}`: no pod matches", self.key));
        }
        if self.mode == SelectorMode::Fixed {
            let want: usize = self.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(1);
            if candidates.len() < want {
                return Err(format!(
                    "selector `{}`: mode fixed wants {want} pods, {} match",
                    self.key,
                    candidates.len()
                ));
            }
        }
        let any_phase = self.spec.pod_phase_selectors.as_ref().is_some_and(|p| !p.is_empty());
        for p in candidates {
            if p.metadata.deletion_timestamp.is_some() {
                return Err(format!("selector `{}`: pod {} is being deleted", self.key, id(p)));
            }
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
            if !any_phase && phase != "Running" {
                return Err(format!("selector `{}`: pod {} is {phase}, not Running", self.key, id(p)));
            }
        }
        Ok(())
    }
}

/// Watches the pods of every namespace the selectors look in until each selector is
/// [ready](TargetSelector::ready); returns the candidates of the main selector.
pub async fn await_targets(
    client: &kube::Client,
    selectors: &[TargetSelector],
    default_ns: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<Pod>> {
    let namespaces: BTreeSet<String> = selectors.iter().flat_map(|s| s.namespaces(default_ns)).collect();
    let mut node_labels = BTreeMap::new();
    if selectors.iter().any(|s| s.spec.node_selectors.as_ref().is_some_and(|n| !n.is_empty())) {
        let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.context("listing nodes")?;
        for n in nodes {
            node_labels.insert(n.metadata.name.unwrap_or_default(), n.metadata.labels.unwrap_or_default());
        }
    }
    let mut readers = Vec::new();
    let mut streams = Vec::new();
    for ns in &namespaces {
        let (reader, writer) = reflector::store::<Pod>();
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        streams.push(reflector(writer, watcher(api, watcher::Config::default()).default_backoff()).boxed());
        readers.push(reader);
    }
    let mut events = futures::stream::select_all(streams);
    let mut listed = 0usize;
    let mut why = "the pods were not listed yet".to_string();
    let deadline = tokio::time::Instant::now() + timeout;
    // Since when a selector has matched no pod at all, and the refusal that says so.
    let mut unmatched: Option<(tokio::time::Instant, String)> = None;
    loop {
        let wake = unmatched.as_ref().map_or(deadline, |(since, _)| (*since + NOTHING_MATCHES_GRACE).min(deadline));
        let event = match tokio::time::timeout_at(wake, events.next()).await {
            Ok(Some(e)) => e,
            Ok(None) => bail!("the pod watch ended"),
            Err(_) => match unmatched {
                Some((since, refusal)) if since + NOTHING_MATCHES_GRACE <= tokio::time::Instant::now() => {
                    bail!(refusal)
                }
                _ => bail!("the targets were not ready after {timeout:?}: {why}"),
            },
        };
        match event {
            Ok(watcher::Event::InitDone) => listed += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "pod watch error (retried)");
                continue;
            }
        }
        if listed < namespaces.len() {
            continue;
        }
        let pods: Vec<Arc<Pod>> = readers.iter().flat_map(|r| r.state()).collect();
        let mut verdict = Ok(Vec::new());
        let mut nothing = None;
        for sel in selectors {
            let candidates: Vec<&Pod> =
                pods.iter().map(|p| p.as_ref()).filter(|p| sel.matches(default_ns, p, &node_labels)).collect();
            if candidates.is_empty() && nothing.is_none() {
                nothing = Some(sel.refusal(default_ns));
            }
            if let Err(e) = sel.ready(&candidates) {
                verdict = Err(e);
                break;
            }
            if sel.key == "." {
                verdict = Ok(candidates.into_iter().cloned().collect());
            }
        }
        match verdict {
            Ok(targets) => return Ok(targets),
            Err(e) => why = e,
        }
        // A pod replaced right now leaves a moment with none: only a lasting nothing refuses.
        unmatched = match (nothing, unmatched) {
            (Some(_), Some(kept)) => Some(kept),
            (Some(refusal), None) => Some((tokio::time::Instant::now(), refusal)),
            (None, _) => None,
        };
    }
}

/// How long a selector may match no pod at all before the injection is refused (a pod being
/// replaced, killed with no grace period, leaves a short moment with none).
pub const NOTHING_MATCHES_GRACE: Duration = Duration::from_secs(1);

/// Checks that every namespace in `namespaces` exists and carries [`RUN_LABEL`]`=<run>`.
pub async fn check_owned(client: &kube::Client, run: &str, namespaces: &BTreeSet<String>) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        let Some(found) = api.get_opt(ns).await.with_context(|| format!("reading namespace {ns}"))? else {
            bail!("refusing to inject: namespace {ns} does not exist (faults go only into namespaces the run owns)");
        };
        let label = found.metadata.labels.as_ref().and_then(|l| l.get(RUN_LABEL));
        if label.map(String::as_str) != Some(run) {
            let has = match label {
                Some(other) => format!("it is labelled {RUN_LABEL}={other}"),
                None => format!("it has no {RUN_LABEL} label"),
            };
            bail!(
                "refusing to inject into namespace {ns}: it is not owned by run {run} ({has}; expected {RUN_LABEL}={run})"
            );
        }
    }
    Ok(())
}

/// One test run: its id, its ledger and the client it creates objects with.
pub struct Run {
    id: String,
    client: kube::Client,
    ledger: Arc<Ledger>,
    cleanup: CleanupOptions,
    finished: bool,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("id", &self.id).field("ledger", &self.ledger.path()).finish()
    }
}

impl Run {
    /// A run with id `id` (a fresh one when `None`) whose ledger lives in `ledger_dir`.
    pub fn new(client: kube::Client, ledger_dir: &Path, id: Option<&str>) -> anyhow::Result<Run> {
        let id = id.map(str::to_string).unwrap_or_else(super::ledger::new_run_id);
        let ledger = Arc::new(Ledger::open(ledger_dir, &id)?);
        Ok(Run { id, client, ledger, cleanup: CleanupOptions::default(), finished: false })
    }

    /// A run whose objects are on the embedded cluster this process runs: its ledger says so,
    /// and the host sweep removes it once this process is gone.
    pub fn new_embedded(client: kube::Client, ledger_dir: &Path, id: &str) -> anyhow::Result<Run> {
        let ledger = Arc::new(Ledger::open_embedded(ledger_dir, id)?);
        Ok(Run { id: id.to_string(), client, ledger, cleanup: CleanupOptions::default(), finished: false })
    }

    /// The same run with other cleanup timeouts.
    pub fn with_cleanup_options(mut self, options: CleanupOptions) -> Self {
        self.cleanup = options;
        self
    }

    /// The run id (the value of [`RUN_LABEL`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Creates namespace `name`, owned by the run (labelled and recorded in the ledger).
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let object = ObjectRef::namespace(name);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {RUN_LABEL: self.id}}
        }))?;
        self.ledger.record_creating(&object, None)?;
        match Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &ns).await {
            Ok(created) => {
                self.ledger.record_created(&object, created.metadata.uid.as_deref().unwrap_or_default(), None)
            }
            Err(e) => {
                self.ledger.record_removed(&object)?;
                Err(anyhow::anyhow!("creating namespace {name}: {e}"))
            }
        }
    }

    /// Injects `resource`: ownership check, targets, ledger, create, `Selected` + `AllInjected`.
    /// If injection does not finish, the object is removed again before the error returns.
    pub async fn inject(&self, resource: &ChaosResource, options: &InjectOptions) -> anyhow::Result<Injection> {
        // A ChaosBlade picks nodes, not pods, and reports no conditions: its own path.
        if let ChaosResource::Blade(blade) = resource {
            return super::blade::inject(self, blade, options).await;
        }
        let subject = resource.subject();
        let Some(ns) = resource.metadata().namespace.clone() else {
            bail!("{subject}: metadata.namespace is required to inject it");
        };
        let selectors = TargetSelector::of(resource)?;
        let mut namespaces: BTreeSet<String> = selectors.iter().flat_map(|s| s.namespaces(&ns)).collect();
        namespaces.insert(ns.clone());
        let validate = ValidateOptions::for_namespaces(namespaces.iter().cloned())
            .with_namespace_wide_selector(options.allow_namespace_wide_selector);
        resource.validate(&validate)?;
        check_owned(&self.client, &self.id, &namespaces).await?;

        let targets = await_targets(&self.client, &selectors, &ns, options.targets_timeout)
            .await
            .with_context(|| format!("{subject}: waiting for its targets"))?;
        let targets_ready = SystemTime::now();

        let mut labelled = resource.clone();
        let labels = labelled.metadata_mut().labels.get_or_insert_with(Default::default);
        labels.insert(RUN_LABEL.into(), self.id.clone());
        if let Some(s) = &options.scenario {
            labels.insert(SCENARIO_LABEL.into(), s.clone());
        }
        let object = ObjectRef {
            api_version: super::model::API_VERSION.into(),
            kind: resource.kind().as_str().into(),
            namespace: Some(ns.clone()),
            name: resource.metadata().name.clone().unwrap_or_default(),
        };
        let scenario = options.scenario.as_deref();
        self.ledger.record_creating(&object, scenario)?;
        let created = match labelled.create(&self.client, &validate).await {
            Ok((created, _warnings)) => created,
            Err(e) => {
                // Only forget it when it really is not ours (a timed-out create may have landed;
                // a 409 means the name belongs to another object).
                let ours = |o: &DynamicObject| {
                    o.metadata.labels.as_ref().and_then(|l| l.get(RUN_LABEL)).is_some_and(|r| *r == self.id)
                };
                if let Ok(found) = object.api(&self.client).get_opt(&object.name).await
                    && !found.as_ref().is_some_and(ours)
                {
                    self.ledger.record_removed(&object)?;
                }
                return Err(e);
            }
        };
        let created_at = SystemTime::now();
        let uid = created.metadata().uid.clone().unwrap_or_default();
        self.ledger.record_created(&object, &uid, scenario)?;

        match await_injected(&self.client, &object, &uid, options.injected_timeout).await {
            Ok(status) => Ok(Injection {
                object,
                uid,
                resource: created,
                targets,
                status,
                timeline: Timeline { targets_ready, created: created_at, injected: SystemTime::now(), recovered: None },
                client: self.client.clone(),
                ledger: self.ledger.clone(),
            }),
            Err(e) => {
                let outcome = super::ledger::remove(&self.client, &object, Some(&uid), None, &self.cleanup).await;
                if outcome.is_gone() {
                    self.ledger.record_removed(&object)?;
                }
                Err(e.context(format!("{subject}: injection failed; the object was removed ({outcome})")))
            }
        }
    }

    /// Removes everything still recorded in the ledger (newest first).
    pub async fn cleanup(&self) -> Vec<Removal> {
        self.ledger.cleanup(&self.client, &self.cleanup).await
    }

    /// Ends the run: removes everything still recorded, and the ledger file once empty. Errors
    /// when something could not be removed (it stays recorded for `hadrill clean`).
    pub async fn finish(mut self) -> anyhow::Result<Vec<Removal>> {
        self.finished = true;
        let removals = self.cleanup().await;
        let failed: Vec<String> = removals.iter().filter(|r| !r.outcome.is_gone()).map(ToString::to_string).collect();
        if !failed.is_empty() {
            bail!("run {}: left behind: {}", self.id, failed.join("; "));
        }
        self.ledger.remove_if_empty()?;
        Ok(removals)
    }

    /// Spawns a task that, on SIGINT or SIGTERM, removes everything still recorded and exits
    /// the process with the signal's status (130, 143); a second signal exits at once. Call
    /// once, early, from a binary's main task.
    pub fn cleanup_on_signal(&self) -> tokio::task::JoinHandle<()> {
        let ledger = self.ledger.clone();
        let client = self.client.clone();
        let options = self.cleanup.clone();
        if let Err(e) = crate::signals::listen() {
            tracing::error!("{e:#}; leftovers need `hadrill clean`");
        }
        tokio::spawn(async move {
            let signal = crate::signals::first().await;
            eprintln!("removing what run {} created", ledger.run());
            ledger.close();
            let mut removals = ledger.cleanup(&client, &options).await;
            // A create that was in flight when the ledger pass ran is caught by its run label.
            match super::ledger::sweep_labelled(&client, Some(ledger.run()), false, &options, Vec::new()).await {
                Ok(more) => removals.extend(more),
                Err(e) => eprintln!("  sweeping chaos objects labelled with the run: {e:#}"),
            }
            let mut clean = true;
            for r in removals {
                eprintln!("  {r}");
                clean &= r.outcome.is_gone();
            }
            if clean {
                let _ = ledger.remove_if_empty();
            }
            std::process::exit(i32::from(signal.exit_code()));
        })
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.finished || self.ledger.live().is_empty() {
            return;
        }
        let handle = tokio::runtime::Handle::try_current();
        match handle {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tracing::warn!(run = %self.id, "run dropped without finish(): removing what it created");
                let removals = tokio::task::block_in_place(|| h.block_on(self.cleanup()));
                for r in removals.iter().filter(|r| !r.outcome.is_gone()) {
                    tracing::error!(run = %self.id, "{r}");
                }
            }
            _ => tracing::error!(
                run = %self.id,
                ledger = %self.ledger.path().display(),
                "run dropped outside a multi-threaded tokio runtime with objects still recorded: \
                 `hadrill clean --run {}` removes them",
                self.id
            ),
        }
    }
}

/// Watches the object until `Selected` and `AllInjected` are `True`. A failure the chaos
/// engine reports meanwhile ends the wait at once, with the engine's words as the root cause:
/// a failed `Apply` in a record or `Selected` with no target ([`ChaosStatus::injection_failure`]),
/// or a `Warning` Event `Failed` on the object (how Chaos Mesh reports a selection that failed).
async fn await_injected(
    client: &kube::Client,
    object: &ObjectRef,
    uid: &str,
    timeout: Duration,
) -> anyhow::Result<AnyChaosStatus> {
    let seen = Arc::new(Mutex::new(AnyChaosStatus::default()));
    let last = seen.clone();
    let uid_owned = uid.to_string();
    let cond = move |obj: Option<&DynamicObject>| match obj {
        None => true,
        Some(o) if o.metadata.uid.as_deref() != Some(uid_owned.as_str()) => true,
        Some(o) => {
            let status = AnyChaosStatus::of(o);
            let done = status.injected() || status.injection_failure().is_some();
            if let Ok(mut l) = last.lock() {
                *l = status;
            }
            done
        }
    };
    let describe = || seen.lock().map(|s| s.describe()).unwrap_or_default();
    let status = tokio::time::timeout(timeout, await_condition(object.api(client), &object.name, cond));
    let failed_event = engine_failure_event(client, object, uid);
    let outcome = tokio::select! {
        outcome = status => outcome,
        words = failed_event => {
            return Err(anyhow::anyhow!(words).context(format!("{object}: the chaos engine reports a failure (Event Failed)")));
        }
    };
    match outcome {
        Err(_) => bail!(
            "{object}: not injected after {timeout:?} (waiting for {}=True and {}=True); last seen: {}",
            ConditionType::Selected,
            ConditionType::AllInjected,
            describe()
        ),
        Ok(Err(e)) => bail!("{object}: watching for injection: {e}"),
        Ok(Ok(Some(o))) if o.metadata.uid.as_deref() == Some(uid) => {
            let status = AnyChaosStatus::of(&o);
            match status.injection_failure() {
                Some(words) => Err(anyhow::anyhow!(words)
                    .context(format!("{object}: the chaos engine reports a failure in its status"))),
                None => Ok(status),
            }
        }
        Ok(Ok(_)) => bail!("{object}: deleted before it was injected; last seen: {}", describe()),
    }
}

/// The message of the first `Warning` Event `Failed` about the object (uid `uid`); pending
/// forever when there is none (or Events cannot be watched: the status still tells).
async fn engine_failure_event(client: &kube::Client, object: &ObjectRef, uid: &str) -> String {
    use k8s_openapi::api::core::v1::Event;
    let Some(ns) = object.namespace.as_deref() else { return std::future::pending().await };
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let config = watcher::Config::default().fields(&format!("involvedObject.uid={uid}"));
    let events = watcher(api, config).default_backoff().applied_objects();
    let mut events = std::pin::pin!(events);
    while let Some(next) = events.next().await {
        match next {
            Ok(e) if e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("Failed") => {
                return e.message.unwrap_or_else(|| "(the Event has no message)".into());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "chaos event watch error (retried)"),
        }
    }
    std::future::pending().await
}

/// A fault in place. Dropping it leaves the fault in place and recorded in the ledger: the
/// run's cleanup removes it.
pub struct Injection {
    object: ObjectRef,
    uid: String,
    resource: ChaosResource,
    targets: Vec<Pod>,
    status: AnyChaosStatus,
    timeline: Timeline,
    client: kube::Client,
    ledger: Arc<Ledger>,
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injection").field("object", &self.object).field("uid", &self.uid).finish()
    }
}

impl Injection {
    /// An injection made by another kind's path ([`super::blade`]: the pods on its nodes as
    /// targets, an empty Chaos Mesh status).
    pub(super) fn assembled(
        object: ObjectRef,
        uid: String,
        resource: ChaosResource,
        targets: Vec<Pod>,
        timeline: Timeline,
        client: kube::Client,
        ledger: Arc<Ledger>,
    ) -> Injection {
        let status = AnyChaosStatus::default();
        Injection { object, uid, resource, targets, status, timeline, client, ledger }
    }

    /// The object (as created).
    pub fn resource(&self) -> &ChaosResource {
        &self.resource
    }

    /// The object's reference.
    pub fn object(&self) -> &ObjectRef {
        &self.object
    }

    /// The object's uid.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The candidates of the main selector when the object was created (the mode picks among them).
    pub fn targets(&self) -> &[Pod] {
        &self.targets
    }

    /// The status that showed injection finished.
    pub fn status(&self) -> &AnyChaosStatus {
        &self.status
    }

    /// The timestamps so far.
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// Ends the fault and waits (up to `timeout`) until it is recovered; the object is gone
    /// afterwards and recorded removed.
    pub async fn recover(mut self, how: Recovery, timeout: Duration) -> anyhow::Result<Timeline> {
        let object = self.object.clone();
        let api = object.api(&self.client);
        if how == Recovery::Duration
            && let ChaosResource::Blade(blade) = &self.resource
        {
            let recovered = super::blade::await_timeout_recovery(&self.client, blade, self.timeline.created, timeout);
            self.timeline.recovered = Some(recovered.await?);
        } else if how == Recovery::Duration {
            if self.resource.one_shot() {
                bail!(
                    "{object}: {} is one-shot and never reports AllRecovered; recover it by delete",
                    self.resource.action()
                );
            }
            if self.resource.to_value()["spec"]["duration"].as_str().is_none_or(str::is_empty) {
                bail!("{object}: spec.duration is not set, so the fault lasts until deleted; recover it by delete");
            }
            let seen = Arc::new(Mutex::new(AnyChaosStatus::default()));
            let last = seen.clone();
            let uid = self.uid.clone();
            let cond = move |obj: Option<&DynamicObject>| match obj {
                Some(o) if o.metadata.uid.as_deref() == Some(uid.as_str()) => {
                    let status = AnyChaosStatus::of(o);
                    let done = status.recovered();
                    if let Ok(mut l) = last.lock() {
                        *l = status;
                    }
                    done
                }
                _ => true,
            };
            match tokio::time::timeout(timeout, await_condition(api.clone(), &object.name, cond)).await {
                Err(_) => bail!(
                    "{object}: not recovered after {timeout:?} (waiting for AllRecovered=True); last seen: {}",
                    seen.lock().map(|s| s.describe()).unwrap_or_default()
                ),
                Ok(Err(e)) => bail!("{object}: watching for recovery: {e}"),
                Ok(Ok(_)) => self.timeline.recovered = Some(SystemTime::now()),
            }
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(&object.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => bail!("{object}: deleting it: {e}"),
        }
        let gone = await_condition(api.clone(), &object.name, conditions::is_deleted(&self.uid));
        match tokio::time::timeout(timeout, gone).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("{object}: watching it go: {e}"),
            Err(_) => {
                let left = api.get_opt(&object.name).await.ok().flatten();
                let finalizers = left.as_ref().and_then(|o| o.metadata.finalizers.clone()).unwrap_or_default();
                let status = left.as_ref().map(AnyChaosStatus::of).unwrap_or_default();
                bail!(
                    "{object}: still there {timeout:?} after delete, so recovery is not confirmed \
                     (finalizers {finalizers:?}; {}); run cleanup strips the finalizer",
                    status.describe()
                );
            }
        }
        if how == Recovery::Delete {
            self.timeline.recovered = Some(SystemTime::now());
        }
        self.ledger.record_removed(&object)?;
        Ok(self.timeline)
    }
}
