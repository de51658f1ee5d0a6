//! The failure bundle: what a failed scenario's cluster looked like when it ended, written to
//! `reports/<scenario-slug>/` so a failure can be diagnosed after the cluster is gone.
//!
//! Each part is collected on its own, with a time limit: a part that cannot be read is named
//! in the bundle's README.txt and the rest is still written.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ContainerState, Endpoints, Event, Pod, Service};
use kube::api::{Api, DynamicObject, ListParams, LogParams};
use kube::discovery::ApiResource;

use crate::HadrillWorld;
use crate::chaos::ChaosKind;
use crate::cluster::controller::CONTROLLER_NS;
use crate::report::metrics::FigureRecord;

/// First line of every bundle's README.txt (how a stale bundle is recognised).
pub const README_HEADER: &str = "hadrill failure bundle";

/// Longest a single part may take (a wedged cluster must not hold the run).
const PART_LIMIT: Duration = Duration::from_secs(20);

/// What the scenario was, for the README.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// Feature name.
    pub feature: &'a str,
    /// Scenario name.
    pub scenario: &'a str,
    /// Why it failed.
    pub failure: Option<&'a str>,
}

/// A directory name for `name`: lowercase letters, digits and single dashes, at most 60 bytes.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(60);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "scenario".to_string() } else { out }
}

/// Whether `dir` holds a bundle written by [`collect`] (so it may be replaced).
pub fn is_bundle(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("README.txt")).is_ok_and(|t| t.starts_with(README_HEADER))
}

/// The bundle directory names handed out in one run (scenarios of the same name get `-2`,
/// `-3`, ...); the runner owns one per run.
#[derive(Debug, Default)]
pub struct Claims(Mutex<BTreeSet<String>>);

impl Claims {
    /// Starts a run: removes the bundles of earlier runs from `reports` (only directories
    /// [`is_bundle`] recognises), so what is there belongs to this run.
    pub fn begin_run(reports: &Path) -> Claims {
        remove_old(reports);
        Claims::default()
    }

    /// A directory name for the bundle of scenario `name`, unique in this run.
    pub fn claim(&self, name: &str) -> String {
        let base = slug(name);
        let mut claimed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut candidate = base.clone();
        let mut n = 1;
        while !claimed.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        candidate
    }
}

/// Removes the bundles in `reports` (and nothing else).
fn remove_old(reports: &Path) {
    let Ok(entries) = std::fs::read_dir(reports) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir()
            && is_bundle(&path)
            && let Err(e) = std::fs::remove_dir_all(&path)
        {
            tracing::warn!(dir = %path.display(), error = %e, "could not remove an old failure bundle");
        }
    }
}

/// Writes the bundle of `world` into `dir` (created; existing files replaced) and returns it.
///
/// Errors only when `dir` cannot be written; a part the cluster cannot give is noted in the
/// README instead.
pub async fn collect(world: &HadrillWorld, dir: &Path, about: About<'_>) -> anyhow::Result<PathBuf> {
    let log_dir = dir.join("logs");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let mut bundle = Bundle { dir: dir.to_path_buf(), files: Vec::new(), problems: Vec::new() };

    let timeline = serde_json::json!({
        "figures": world.timeline.figures.iter().map(FigureRecord::from).collect::<Vec<_>>(),
        "timeline": world.timeline.marks,
        "link_gaps": world.timeline.link_gaps,
        "failure": about.failure,
    });
    let text = serde_json::to_string_pretty(&timeline).context("serialising the timeline")?;
    bundle.write(
        "timeline.json",
        "figures, timeline marks and link gaps (seconds since the scenario started)",
        text,
    )?;

    traffic(world, &mut bundle).await?;

    let history = match &world.cluster.recorder {
        Some(rec) if rec.lines().is_empty() => "(the recorder saw nothing)\n".to_string(),
        Some(rec) => rec.lines().join("\n") + "\n",
        None => "(no recorder ran in this scenario)\n".to_string(),
    };
    bundle.write("endpoint-history.txt", "the namespace's Services, Endpoints and Events over time", history)?;

    match world.cluster.client.clone() {
        None => bundle.problems.push("no cluster: the scenario failed before it had one".into()),
        Some(client) => {
            let mut namespaces = Vec::new();
            if !world.cluster.namespace.is_empty() {
                namespaces.push(world.cluster.namespace.clone());
            }
            namespaces.push(CONTROLLER_NS.to_string());
            let ns = &namespaces;
            let pods = bundle.part("pods", pods(&client, ns)).await;
            if let Some((text, pods)) = pods {
                bundle.write("pods.txt", "every pod: node, phase, conditions, container states", text)?;
                if let Some((n, problems)) = bundle.part("logs", logs(&client, &pods, &log_dir)).await {
                    bundle.files.push((
                        "logs/".into(),
                        format!("{n} container log(s): <pod>_<container>.log, .previous.log for a restarted one"),
                    ));
                    bundle.problems.extend(problems.into_iter().map(|p| format!("log {p}")));
                }
            }
            if let Some(text) = bundle.part("events", events(&client, ns)).await {
                bundle.write("events.txt", "events of the scenario's and the controller's namespace, by time", text)?;
            }
            if let Some(text) = bundle.part("chaos objects", chaos(&client, ns)).await {
                bundle.write("chaos.yaml", "every Chaos Mesh object, with its status", text)?;
            }
            if let Some(text) = bundle.part("services", services(&client, ns)).await {
                bundle.write("services.yaml", "Services and Endpoints as they ended", text)?;
            }
        }
    }
    bundle.readme(world, about)?;
    Ok(dir.to_path_buf())
}

/// The vehicles' results and the trace diagnosis, when vehicles ran.
async fn traffic(world: &HadrillWorld, bundle: &mut Bundle) -> anyhow::Result<()> {
    let Some(fleet) = &world.traffic.fleet else { return Ok(()) };
    if let Some(results) = bundle.part("vehicles' results", fleet.results()).await {
        let text = serde_json::to_string_pretty(&results).context("serialising the vehicles' results")?;
        bundle.write(
            "vehicles.json",
            "the vehicles' results: per vehicle heartbeats, failures, longest link gap, who served them",
            text,
        )?;
    }
    let diagnosis = match (&world.traffic.trace_report, &world.traffic.traces) {
        (Some(report), _) => Some(report.clone()),
        (None, Some(sink)) => {
            let lookback = world.timeline.started.elapsed() + std::time::Duration::from_secs(60);
            let spans = bundle.part("spans", sink.spans_now(crate::traffic::VEHICLES, lookback)).await;
            spans.map(|spans| {
                let report = crate::traces::checker::check(&spans, Default::default());
                format!("(checked when the scenario failed, vehicles still running: structure only)\n{report}")
            })
        }
        (None, None) => None,
    };
    if let Some(text) = diagnosis {
        bundle.write(
            "trace-diagnosis.txt",
            "the trace continuity check: per vehicle session, who served it, its largest gap, every broken chain",
            text,
        )?;
    }
    Ok(())
}

/// The bundle being written: its files (for the README) and what could not be collected.
struct Bundle {
    dir: PathBuf,
    files: Vec<(String, String)>,
    problems: Vec<String>,
}

impl Bundle {
    fn write(&mut self, name: &str, what: &str, text: String) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        self.files.push((name.to_string(), what.to_string()));
        Ok(())
    }

    /// Runs one part; a failure or time-out becomes a problem line.
    async fn part<T>(&mut self, what: &str, fut: impl Future<Output = anyhow::Result<T>>) -> Option<T> {
        match tokio::time::timeout(PART_LIMIT, fut).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.problems.push(format!("{what}: {e:#}"));
                None
            }
            Err(_) => {
                self.problems.push(format!("{what}: not collected within {PART_LIMIT:?}"));
                None
            }
        }
    }

    fn readme(&mut self, world: &HadrillWorld, about: About<'_>) -> anyhow::Result<()> {
        // The failure first, root cause first: it is what the reader opened the bundle for.
        let mut t = format!("{README_HEADER}\n\n");
        if let Some(f) = about.failure {
            let _ = writeln!(t, "failure: {}\n", f.replace('\n', "\n         "));
        }
        let _ = writeln!(t, "feature:  {}\nscenario: {}", about.feature, about.scenario);
        if !world.cluster.namespace.is_empty() {
            let _ = writeln!(t, "namespace: {} (controller: {CONTROLLER_NS})", world.cluster.namespace);
        }
        if !world.timeline.figures.is_empty() {
            t.push_str("\nfigures:\n");
            for f in &world.timeline.figures {
                let _ = writeln!(t, "  {f}");
            }
        }
        t.push_str("\nfiles:\n");
        for (name, what) in &self.files {
            let _ = writeln!(t, "  {name:<22} {what}");
        }
        if !self.problems.is_empty() {
            t.push_str("\nnot collected:\n");
            for p in &self.problems {
                let _ = writeln!(t, "  {p}");
            }
        }
        let path = self.dir.join("README.txt");
        std::fs::write(&path, t).with_context(|| format!("writing {}", path.display()))
    }
}

async fn pods(client: &kube::Client, namespaces: &[String]) -> anyhow::Result<(String, Vec<Pod>)> {
    let mut text = String::new();
    let mut all = Vec::new();
    for ns in namespaces {
        let mut pods = Api::<Pod>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .with_context(|| format!("listing pods in {ns}"))?
            .items;
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let _ = writeln!(text, "== namespace {ns}: {} pod(s)", pods.len());
        for pod in &pods {
            describe_pod(&mut text, pod);
        }
        text.push('\n');
        all.extend(pods);
    }
    Ok((text, all))
}

fn describe_pod(t: &mut String, pod: &Pod) {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("(unscheduled)");
    let status = pod.status.clone().unwrap_or_default();
    let _ = writeln!(
        t,
        "pod {name}  node {node}  phase {}  ip {}",
        status.phase.as_deref().unwrap_or("?"),
        status.pod_ip.as_deref().unwrap_or("-")
    );
    if let Some(ts) = &pod.metadata.deletion_timestamp {
        let _ = writeln!(t, "  deleting since {}", ts.0);
    }
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| match (&c.reason, &c.message) {
            (Some(r), Some(m)) => format!("{}={} ({r}: {m})", c.type_, c.status),
            (Some(r), None) => format!("{}={} ({r})", c.type_, c.status),
            _ => format!("{}={}", c.type_, c.status),
        })
        .collect();
    let _ = writeln!(t, "  conditions: {}", conditions.join(", "));
    let statuses = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for c in statuses {
        let _ = writeln!(
            t,
            "  container {}: ready={} restarts={} state={} last={}",
            c.name,
            c.ready,
            c.restart_count,
            state(c.state.as_ref()),
            state(c.last_state.as_ref())
        );
    }
}

fn state(s: Option<&ContainerState>) -> String {
    let Some(s) = s else { return "-".into() };
    if let Some(r) = &s.running {
        return format!("running(since {})", r.started_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default());
    }
    if let Some(w) = &s.waiting {
        let why = [w.reason.as_deref(), w.message.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ");
        return format!("waiting({why})");
    }
    if let Some(x) = &s.terminated {
        return format!(
            "terminated(exit {} {} at {})",
            x.exit_code,
            x.reason.as_deref().unwrap_or(""),
            x.finished_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default()
        );
    }
    "-".into()
}

/// Writes the current and previous log of every container; returns how many files, and the
/// logs that could not be read.
async fn logs(client: &kube::Client, pods: &[Pod], dir: &Path) -> anyhow::Result<(usize, Vec<String>)> {
    let mut written = 0;
    let mut problems = Vec::new();
    for pod in pods {
        let (Some(name), Some(ns)) = (pod.metadata.name.as_deref(), pod.metadata.namespace.as_deref()) else {
            continue;
        };
        if pod.spec.as_ref().is_none_or(|s| s.node_name.is_none()) {
            continue; // never ran: no logs
        }
        let api = Api::<Pod>::namespaced(client.clone(), ns);
        let spec = pod.spec.clone().unwrap_or_default();
        let containers = spec.init_containers.iter().flatten().chain(spec.containers.iter()).map(|c| c.name.clone());
        for container in containers {
            for previous in [false, true] {
                let lp = LogParams { container: Some(container.clone()), previous, ..Default::default() };
                match api.logs(name, &lp).await {
                    Ok(text) => {
                        let suffix = if previous { "previous.log" } else { "log" };
                        let path = dir.join(format!("{}_{}.{suffix}", file_safe(name), file_safe(&container)));
                        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                        written += 1;
                    }
                    // 400: no previous instance (or not started yet): nothing to keep.
                    Err(kube::Error::Api(e)) if previous && e.code == 400 => {}
                    Err(e) => {
                        problems.push(format!("{name}/{container}{}: {e}", if previous { " (previous)" } else { "" }))
                    }
                }
            }
        }
    }
    Ok((written, problems))
}

/// A name usable as a file name (pod and container names already are; this is a safety net).
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '_' }).collect()
}

async fn events(client: &kube::Client, namespaces: &[String]) -> anyhow::Result<String> {
    let mut all = Vec::new();
    for ns in namespaces {
        let events = Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .with_context(|| format!("listing events in {ns}"))?;
        all.extend(events.items);
    }
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.first_timestamp.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    all.sort_by_key(|e| when(e));
    let mut text = String::new();
    for e in &all {
        let _ = writeln!(
            text,
            "{}  {:<7}  {:<20}  {}/{}/{}  {}{}",
            when(e).map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            e.type_.as_deref().unwrap_or("Normal"),
            e.reason.as_deref().unwrap_or(""),
            e.metadata.namespace.as_deref().unwrap_or(""),
            e.involved_object.kind.as_deref().unwrap_or("?").to_lowercase(),
            e.involved_object.name.as_deref().unwrap_or("?"),
            e.message.as_deref().unwrap_or(""),
            e.count.filter(|c| *c > 1).map(|c| format!(" (x{c})")).unwrap_or_default()
        );
    }
    if all.is_empty() {
        text.push_str("(no events)\n");
    }
    Ok(text)
}

async fn chaos(client: &kube::Client, namespaces: &[String]) -> anyhow::Result<String> {
    let mut docs = Vec::new();
    let mut uninstalled = 0;
    for kind in ChaosKind::ALL {
        let (group, version) = kind.api_version().split_once('/').unwrap_or(("", kind.api_version()));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind.as_str());
        let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural());
        // ChaosBlade is cluster-scoped: list it once, cluster-wide.
        let scopes: Vec<Option<&String>> =
            if kind.namespaced() { namespaces.iter().map(Some).collect() } else { vec![None] };
        for scope in scopes {
            let api = match scope {
                Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource),
                None => Api::<DynamicObject>::all_with(client.clone(), &resource),
            };
            let ns = scope.map_or("the cluster", |s| s.as_str());
            match api.list(&ListParams::default()).await {
                Ok(list) => docs.extend(list.items.into_iter().map(|mut o| {
                    o.metadata.managed_fields = None;
                    // A list's items carry no apiVersion/kind: put them back for a readable file.
                    o.types =
                        Some(kube::api::TypeMeta { api_version: resource.api_version.clone(), kind: kind.to_string() });
                    o
                })),
                Err(kube::Error::Api(e)) if e.code == 404 => uninstalled += 1,
                Err(e) => return Err(e).with_context(|| format!("listing {} in {ns}", kind.plural())),
            }
        }
    }
    if docs.is_empty() {
        let why = if uninstalled > 0 { " (the Chaos Mesh or ChaosBlade CRDs are not all installed)" } else { "" };
        return Ok(format!("# no chaos objects{why}\n"));
    }
    yaml_docs(&docs)
}

async fn services(client: &kube::Client, namespaces: &[String]) -> anyhow::Result<String> {
    let mut docs: Vec<serde_json::Value> = Vec::new();
    for ns in namespaces {
        let lp = ListParams::default();
        let services = Api::<Service>::namespaced(client.clone(), ns).list(&lp).await.context("listing services")?;
        let endpoints =
            Api::<Endpoints>::namespaced(client.clone(), ns).list(&lp).await.context("listing endpoints")?;
        for mut s in services.items {
            s.metadata.managed_fields = None;
            docs.push(with_type(serde_json::to_value(s)?, "v1", "Service"));
        }
        for mut e in endpoints.items {
            e.metadata.managed_fields = None;
            docs.push(with_type(serde_json::to_value(e)?, "v1", "Endpoints"));
        }
    }
    if docs.is_empty() {
        return Ok("# no services\n".into());
    }
    yaml_docs(&docs)
}

fn with_type(mut v: serde_json::Value, api_version: &str, kind: &str) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), api_version.into());
        o.insert("kind".into(), kind.into());
    }
    v
}

fn yaml_docs<T: serde::Serialize>(docs: &[T]) -> anyhow::Result<String> {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(d).context("writing YAML")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_safe_directory_names() {
        assert_eq!(slug("Every primary pod is killed"), "every-primary-pod-is-killed");
        assert_eq!(slug("  ../<script>  x!! "), "script-x");
        assert_eq!(slug("???"), "scenario");
        assert!(slug(&"a b ".repeat(50)).len() <= 60);
        assert!(!slug(&"ab ".repeat(30)).ends_with('-'));
    }

    #[test]
    fn old_bundles_are_removed_and_nothing_else() {
        let reports = std::env::temp_dir().join(format!("hadrill-old-{}", uuid::Uuid::new_v4().simple()));
        let (old, other) = (reports.join("old-scenario"), reports.join("keep"));
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(old.join("README.txt"), format!("{README_HEADER}\n")).unwrap();
        std::fs::write(other.join("README.txt"), "someone else's\n").unwrap();
        std::fs::write(reports.join("junit.xml"), "<testsuites/>").unwrap();
        remove_old(&reports);
        assert!(!old.exists() && other.exists() && reports.join("junit.xml").exists());
        std::fs::remove_dir_all(&reports).unwrap();
    }

    #[test]
    fn claimed_names_are_unique_in_a_run() {
        let claims = Claims::default();
        let name = "claim test";
        let first = claims.claim(name);
        assert_eq!(first, "claim-test");
        assert_eq!(claims.claim(name), format!("{first}-2"));
        assert_eq!(claims.claim(name), format!("{first}-3"));
        assert_eq!(Claims::default().claim(name), first, "another run starts afresh");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bundle_holds_pods_logs_events_services_and_the_timeline() {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::PostParams;
        use sim::kubelet::KubeletConfig;
        use sim::kubelet::images::{ImageEntry, ImageMap};

        sim::install_crypto_provider();
        let images = ImageMap::new();
        images.insert("hadrill/crasher", ImageEntry::new("/bin/sh").with_args(["-c", "echo crashing; exit 3"]));
        let config = sim::SimConfig {
            nodes: 1,
            kubelet: KubeletConfig { images, ..KubeletConfig::fast() },
            ..Default::default()
        };
        let sim = sim::Sim::start(config).await.unwrap();
        let client = sim.client().unwrap();
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "bundle"}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
        let mut world = HadrillWorld::new();
        world.cluster.client = Some(client.clone());
        world.cluster.namespace = "bundle".into();
        world.cluster.recorder = Some(crate::probes::recorder::Recorder::start(client.clone(), "bundle"));

        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "crasher", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "hadrill/crasher"}]},
        }))
        .unwrap();
        let pods = Api::<Pod>::namespaced(client.clone(), "bundle");
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }))
        .unwrap();
        Api::<Service>::namespaced(client.clone(), "bundle").create(&PostParams::default(), &svc).await.unwrap();
        crate::probes::wait::until(&pods, "crasher", "a restart", |p: &Pod| {
            p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| c[0].restart_count >= 1)
        })
        .await
        .unwrap();
        // The recorder watches in the background: wait until it has seen the Service (its
        // first list can come after a fast crash loop).
        let seen = async {
            while !world.cluster.recorder.as_ref().is_some_and(|r| r.lines().iter().any(|l| l.contains("service web:")))
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), seen).await.expect("the recorder sees the Service");
        world.fault("the crasher crashed", std::time::Instant::now(), Vec::new());
        world.figure("web: fault to switch", 2.5, Some(1.0));

        let dir = std::env::temp_dir().join(format!("hadrill-bundle-{}", uuid::Uuid::new_v4().simple()));
        let about = About { feature: "F", scenario: "S", failure: Some("web failed over after 2.5 s, deadline 1 s") };
        let got = collect(&world, &dir, about).await.unwrap();
        assert_eq!(got, dir);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));

        let pods_txt = read("pods.txt");
        assert!(pods_txt.contains("== namespace bundle: 1 pod(s)"), "{pods_txt}");
        assert!(pods_txt.contains("pod crasher  node "), "{pods_txt}");
        assert!(pods_txt.contains("container c: ready=") && pods_txt.contains("last=terminated(exit 3"), "{pods_txt}");
        assert!(pods_txt.contains("== namespace hadrill-system: 0 pod(s)"), "{pods_txt}");
        assert!(read("logs/crasher_c.previous.log").contains("crashing"));
        let events = read("events.txt");
        assert!(events.contains("bundle/pod/crasher"), "{events}");
        let services = read("services.yaml");
        assert!(services.contains("kind: Service") && services.contains("name: web"), "{services}");
        assert!(!services.contains("managedFields"), "{services}");
        assert!(read("chaos.yaml").starts_with("# no chaos objects"));
        assert!(read("endpoint-history.txt").contains("service web: selector {app=web}"));
        let timeline: serde_json::Value = serde_json::from_str(&read("timeline.json")).unwrap();
        assert_eq!(timeline["figures"][0]["deadline"], 1.0);
        assert_eq!(timeline["timeline"][0]["kind"], "fault");
        let readme = read("README.txt");
        assert!(readme.starts_with(README_HEADER) && is_bundle(&dir));
        let first = readme.lines().find(|l| !l.is_empty() && *l != README_HEADER).unwrap_or_default();
        assert_eq!(first, "failure: web failed over after 2.5 s, deadline 1 s", "the failure comes first: {readme}");
        assert!(readme.contains("web failed over after 2.5 s") && readme.contains("web: fault to switch: 2.500 s"));
        assert!(readme.contains("pods.txt") && readme.contains("logs/"), "{readme}");
        assert!(!readme.contains("not collected"), "{readme}");

        drop(world);
        sim.stop().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn without_a_cluster_the_bundle_says_so() {
        let dir = std::env::temp_dir().join(format!("hadrill-bundle-{}", uuid::Uuid::new_v4().simple()));
        let about = About { feature: "F", scenario: "S", failure: Some("the cluster did not start") };
        collect(&HadrillWorld::new(), &dir, about).await.unwrap();
        let readme = std::fs::read_to_string(dir.join("README.txt")).unwrap();
        assert!(readme.contains("not collected:\n  no cluster"), "{readme}");
        assert!(dir.join("timeline.json").exists() && !dir.join("pods.txt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
