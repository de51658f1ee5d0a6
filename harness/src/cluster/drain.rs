//! Draining a node as `kubectl drain --ignore-daemonsets --delete-emptydir-data --force` does
//! (k/k `staging/src/k8s.io/kubectl/pkg/drain/drain.go`): cordon the node, then evict each of its
//! pods through the eviction subresource — so PodDisruptionBudgets are honoured by the API
//! server — retrying an eviction the server refuses with 429 until a deadline, then wait until
//! every evicted pod is gone.
//!
//! DaemonSet pods and mirror pods are left, as kubectl leaves them. A drain leaves the node
//! cordoned, noted with the run that did it: [`uncordon`] undoes it, [`uncordon_leftovers`]
//! undoes what crashed runs left.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

/// How a drain is carried out.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Time for the whole drain, evictions and deletions (`kubectl drain --timeout`).
    pub deadline: Duration,
    /// Wait before asking again after a refused eviction (kubectl: 5 s).
    pub retry: Duration,
    /// The run that cordons the node, written on it ([`CORDONED_BY`]) so that `hadrill clean`
    /// can undo a cordon a crashed run left.
    pub run: Option<String>,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self { deadline: Duration::from_secs(60), retry: Duration::from_secs(5), run: None }
    }
}

/// Annotation on a node cordoned by a run: the run id.
pub const CORDONED_BY: &str = "hadrill.io/cordoned-by";

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// The node.
    pub node: String,
    /// `namespace/name` of every pod evicted, in the order the evictions were accepted.
    pub evicted: Vec<String>,
    /// Eviction attempts refused (a disruption budget forbade them: 429, retried) before they
    /// were accepted.
    pub refused: usize,
    /// Time from the cordon until the last evicted pod was gone.
    pub took: Duration,
}

/// Marks the node unschedulable (`kubectl cordon`), noting `run` on it.
pub async fn cordon(client: &kube::Client, node: &str, run: Option<&str>) -> anyhow::Result<()> {
    let patch = serde_json::json!({"metadata": {"annotations": {CORDONED_BY: run}}, "spec": {"unschedulable": true}});
    patch_node(client, node, &patch).await.with_context(|| format!("cordoning node {node}"))
}

/// Makes the node schedulable again (`kubectl uncordon`) and drops the run's note.
pub async fn uncordon(client: &kube::Client, node: &str) -> anyhow::Result<()> {
    let patch = serde_json::json!({"metadata": {"annotations": {CORDONED_BY: null}}, "spec": {"unschedulable": null}});
    patch_node(client, node, &patch).await.with_context(|| format!("uncordoning node {node}"))
}

async fn patch_node(client: &kube::Client, node: &str, patch: &serde_json::Value) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.patch(node, &PatchParams::default(), &Patch::Merge(patch)).await?;
    Ok(())
}

/// Uncordons the nodes a run cordoned (`run`: that run's; `None`: any run's) and returns their
/// names; with `dry_run` only names them.
pub async fn uncordon_leftovers(
    client: &kube::Client,
    run: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut undone = Vec::new();
    for node in nodes.list(&ListParams::default()).await.context("listing nodes")?.items {
        let by = node.metadata.annotations.as_ref().and_then(|a| a.get(CORDONED_BY));
        let Some(name) = node.metadata.name.as_deref().filter(|_| by.is_some_and(|b| run.is_none_or(|r| r == b)))
        else {
            continue;
        };
        if !dry_run {
            uncordon(client, name).await?;
        }
        undone.push(name.to_string());
    }
    Ok(undone)
}

/// Whether kubectl's drain leaves this pod alone: DaemonSet pods (`--ignore-daemonsets`) and
/// mirror pods of static manifests.
fn left_alone(pod: &Pod) -> bool {
    let daemon =
        pod.metadata.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.kind == "DaemonSet");
    let mirror = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    daemon || mirror
}

/// Cordons `node` and evicts its pods, retrying refused evictions every `opts.retry`, until they
/// are all gone or `opts.deadline` passes (an error naming the pods left and why).
pub async fn drain(client: &kube::Client, node: &str, opts: &DrainOptions) -> anyhow::Result<Drained> {
    let start = Instant::now();
    let until = start + opts.deadline;
    cordon(client, node, opts.run.as_deref()).await?;
    let all: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let pods: Vec<Pod> = all
        .list(&lp)
        .await
        .with_context(|| format!("listing the pods of node {node}"))?
        .items
        .into_iter()
        .filter(|p| !left_alone(p))
        .collect();
    let evictions = pods.iter().map(|pod| evict_until_gone(client, pod, until, opts.retry));
    let results = futures::future::join_all(evictions).await;
    let mut drained = Drained { node: node.to_string(), ..Default::default() };
    let mut left = Vec::new();
    let mut order: Vec<(Instant, String)> = Vec::new();
    for (pod, result) in pods.iter().zip(results) {
        let id = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        match result {
            Ok(e) => {
                drained.refused += e.refused;
                if let Some(at) = e.accepted {
                    order.push((at, id));
                }
            }
            Err(e) => left.push(format!("{id} ({e:#})")),
        }
    }
    if !left.is_empty() {
        bail!(
            "draining node {node}: {} pod(s) not evicted within {:?}: {}",
            left.len(),
            opts.deadline,
            left.join("; ")
        );
    }
    order.sort();
    drained.evicted = order.into_iter().map(|(_, id)| id).collect();
    drained.took = start.elapsed();
    Ok(drained)
}

/// One pod's eviction: when it was accepted (`None`: the pod was gone already) and how many
/// attempts were refused first.
struct Eviction {
    accepted: Option<Instant>,
    refused: usize,
}

/// Evicts one pod, each attempt given `retry` before the next. kube-rs clients retry a 429 by
/// themselves (exponential back-off over minutes), so a refused eviction shows here as an
/// attempt that has not succeeded when its time is up.
async fn evict_until_gone(
    client: &kube::Client,
    pod: &Pod,
    until: Instant,
    retry: Duration,
) -> anyhow::Result<Eviction> {
    let name = pod.metadata.name.clone().context("a pod without a name")?;
    let ns = pod.metadata.namespace.clone().context("a pod without a namespace")?;
    let uid = pod.metadata.uid.clone().context("a pod without a uid")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut refused = 0;
    let accepted = loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{}", refusal(client, pod).await);
        }
        let attempt = tokio::time::timeout(retry.min(left), pods.evict(&name, &EvictParams::default())).await;
        match attempt {
            Ok(Ok(_)) => break Some(Instant::now()),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => break None,
            Ok(Err(kube::Error::Api(s))) if s.code == 429 => {
                refused += 1;
                tracing::info!(pod = %name, "eviction refused, retrying: {}", s.message);
                tokio::time::sleep(retry.min(until.saturating_duration_since(Instant::now()))).await;
            }
            Ok(Err(e)) => return Err(anyhow::Error::new(e).context(format!("evicting pod {ns}/{name}"))),
            Err(_) => refused += 1,
        }
    };
    let left = until.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, await_condition(pods, &name, conditions::is_deleted(&uid)))
        .await
        .map_err(|_| anyhow::anyhow!("evicted but still not deleted"))?
        .with_context(|| format!("watching pod {ns}/{name} go"))?;
    Ok(Eviction { accepted, refused })
}

/// Why a pod's eviction is still refused: the disruption budgets that select it, with their
/// counts.
async fn refusal(client: &kube::Client, pod: &Pod) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let labels = serde_json::to_value(&pod.metadata.labels).unwrap_or_default();
    let budgets: Vec<String> = match pdbs.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .filter(|b| {
                let selector =
                    b.spec.as_ref().map(|s| serde_json::to_value(&s.selector).unwrap_or_default()).unwrap_or_default();
                sim::api::selectors::LabelSelector::from_json(&selector).is_ok_and(|s| s.matches(labels.as_object()))
            })
            .map(|b| {
                let s = b.status.clone().unwrap_or_default();
                format!(
                    "disruption budget {ns}/{} allows {} disruption(s): {} healthy, {} needed",
                    b.metadata.name.as_deref().unwrap_or_default(),
                    s.disruptions_allowed,
                    s.current_healthy,
                    s.desired_healthy
                )
            })
            .collect(),
        Err(e) => vec![format!("its disruption budgets could not be read: {e}")],
    };
    if budgets.is_empty() {
        "its eviction was still refused or unanswered at the deadline (no disruption budget selects it)".into()
    } else {
        format!("its eviction was still refused at the deadline; {}", budgets.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::PostParams;
    use serde_json::json;

    async fn budget_allows(pdbs: &Api<PodDisruptionBudget>, healthy: i32, allowed: i32) {
        let cond = move |p: Option<&PodDisruptionBudget>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.current_healthy == healthy && s.disruptions_allowed == allowed)
        };
        tokio::time::timeout(Duration::from_secs(10), await_condition(pdbs.clone(), "web", cond))
            .await
            .expect("the budget's status in time")
            .expect("watching the budget");
    }

    /// The drain asks, is refused while the budget needs the node's only pod, and gets through
    /// once a second replica runs elsewhere; the node stays cordoned until uncordoned.
    #[tokio::test(flavor = "multi_thread")]
    async fn drain_waits_for_the_budget_and_gives_up_at_its_deadline() {
        let sim = sim::Sim::start(sim::SimConfig { nodes: 2, ..Default::default() }).await.unwrap();
        let client = sim.client().unwrap();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let labels = json!({"app": "web"});
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "virtual/web"}]}}}});
        deployments.create(&PostParams::default(), &serde_json::from_value(d).unwrap()).await.unwrap();
        let b = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}});
        pdbs.create(&PostParams::default(), &serde_json::from_value(b).unwrap()).await.unwrap();
        budget_allows(&pdbs, 1, 0).await;
        let pod = pods.list(&ListParams::default()).await.unwrap().items.remove(0);
        let node = pod.spec.and_then(|s| s.node_name).unwrap();
        let name = pod.metadata.name.unwrap();

        let quick = DrainOptions {
            deadline: Duration::from_secs(2),
            retry: Duration::from_millis(300),
            run: Some("r1".into()),
        };
        let err = drain(&client, &node, &quick).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "default/{name} (its eviction was still refused at the deadline; disruption budget default/web allows 0 disruption(s): 1 healthy, 1 needed)"
            )),
            "{err}"
        );
        let nodes: Api<Node> = Api::all(client.clone());
        let cordoned = nodes.get(&node).await.unwrap();
        assert_eq!(cordoned.spec.and_then(|s| s.unschedulable), Some(true));
        assert_eq!(cordoned.metadata.annotations.unwrap_or_default().get(CORDONED_BY).map(String::as_str), Some("r1"));
        assert!(pods.get(&name).await.unwrap().metadata.deletion_timestamp.is_none(), "the budget kept the pod");

        deployments
            .patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}})))
            .await
            .unwrap();
        budget_allows(&pdbs, 2, 1).await;
        let drained = drain(&client, &node, &quick).await.unwrap();
        assert_eq!(drained.evicted, [format!("default/{name}")]);
        assert_eq!(drained.refused, 0);
        assert!(pods.get_opt(&name).await.unwrap().is_none(), "the evicted pod is gone when the drain returns");
        assert!(uncordon_leftovers(&client, Some("other-run"), false).await.unwrap().is_empty());
        assert_eq!(
            uncordon_leftovers(&client, None, true).await.unwrap(),
            vec![node.clone()],
            "a dry run only names it"
        );
        assert_eq!(uncordon_leftovers(&client, Some("r1"), false).await.unwrap(), vec![node.clone()]);
        let after = nodes.get(&node).await.unwrap();
        assert_ne!(after.spec.and_then(|s| s.unschedulable), Some(true));
        assert!(!after.metadata.annotations.unwrap_or_default().contains_key(CORDONED_BY));
    }
}
