//! Selection: a Chaos Mesh `PodSelector` (selector + mode + value) → the target pods.
//!
//! The selector fields are combined as Chaos Mesh does (`pkg/selector`): `pods` (when non-empty)
//! overrides every other field; otherwise `namespaces` (the chaos object's own when empty),
//! `labelSelectors`, `expressionSelectors`, `annotationSelectors`, `fieldSelectors`,
//! `podPhaseSelectors` and the node set (`nodes` ∪ nodes matching `nodeSelectors`) are ANDed.
//! Pods being deleted are skipped. Candidates are sorted by namespace and name before the mode
//! picks, so a seeded generator makes the choice replayable.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::RngExt;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::api::ops::{Api, ListOptions};
use crate::api::selectors::{FieldSelector, LabelSelector};

/// The candidates of `selector` (a `spec.selector` or `spec.target.selector` object) before
/// the mode picks; `at` names the field in errors. `default_ns` is the chaos object's namespace.
pub fn candidates(api: &Api, selector: &Value, default_ns: &str, at: &str) -> Result<Vec<Arc<Value>>, String> {
    let pods_rt = api.resource("", "v1", "pods").map_err(|e| e.message)?;
    let mut out: Vec<Arc<Value>> = Vec::new();
    if let Some(named) = selector["pods"].as_object().filter(|m| !m.is_empty()) {
        for (ns, names) in named {
            for name in names.as_array().into_iter().flatten().filter_map(Value::as_str) {
                // Names that do not exist are skipped, as Chaos Mesh does.
                if let Ok(pod) = api.get(&pods_rt, ns, name)
                    && pod["metadata"]["deletionTimestamp"].is_null()
                {
                    out.push(pod);
                }
            }
        }
        sort(&mut out);
        return Ok(out);
    }
    let namespaces: Vec<String> = match strings(&selector["namespaces"]) {
        ns if ns.is_empty() => vec![default_ns.to_string()],
        ns => ns,
    };
    let labels = match selector["labelSelectors"].as_object() {
        Some(m) => LabelSelector::from_json(&serde_json::json!({"matchLabels": m}))
            .map_err(|e| format!("{at}.labelSelectors: {e}"))?,
        None => LabelSelector::everything(),
    };
    let expressions = match selector["expressionSelectors"].as_array() {
        Some(list) => LabelSelector::from_json(&serde_json::json!({"matchExpressions": list}))
            .map_err(|e| format!("{at}.expressionSelectors: {e}"))?,
        None => LabelSelector::everything(),
    };
    let fields = match selector["fieldSelectors"].as_object().filter(|m| !m.is_empty()) {
        Some(m) => {
            let text: Vec<String> =
                m.iter().map(|(k, v)| format!("{k}={}", escape_field_value(v.as_str().unwrap_or_default()))).collect();
            Some(FieldSelector::parse(&text.join(","), "Pod").map_err(|e| format!("{at}.fieldSelectors: {e}"))?)
        }
        None => None,
    };
    let annotations = selector["annotationSelectors"].as_object();
    let phases = strings(&selector["podPhaseSelectors"]);
    let nodes = node_set(api, selector, at)?;
    let opts = ListOptions::default();
    for ns in &namespaces {
        let list = api.list(&pods_rt, Some(ns), &opts).map_err(|e| format!("listing pods in {ns}: {}", e.message))?;
        for pod in list.items {
            let meta = &pod["metadata"];
            if !meta["deletionTimestamp"].is_null()
                || !labels.matches(meta["labels"].as_object())
                || !expressions.matches(meta["labels"].as_object())
                || fields.as_ref().is_some_and(|f| !f.matches(&pod))
            {
                continue;
            }
            if let Some(want) = annotations
                && !want.iter().all(|(k, v)| meta["annotations"][k] == *v)
            {
                continue;
            }
            if !phases.is_empty() && !phases.iter().any(|p| pod["status"]["phase"] == p.as_str()) {
                continue;
            }
            if let Some(nodes) = &nodes
                && !pod["spec"]["nodeName"].as_str().is_some_and(|n| nodes.contains(n))
            {
                continue;
            }
            out.push(pod);
        }
    }
    sort(&mut out);
    Ok(out)
}

/// The nodes named in `nodes` plus those matching `nodeSelectors`; `None` when neither is set.
/// A name in `nodes` that does not exist fails the selection, as in Chaos Mesh.
pub fn node_set(api: &Api, selector: &Value, at: &str) -> Result<Option<BTreeSet<String>>, String> {
    let named = strings(&selector["nodes"]);
    let labels = selector["nodeSelectors"].as_object().filter(|m| !m.is_empty());
    if named.is_empty() && labels.is_none() {
        return Ok(None);
    }
    let nodes_rt = api.resource("", "v1", "nodes").map_err(|e| e.message)?;
    let mut set = BTreeSet::new();
    for n in named {
        if api.get(&nodes_rt, "", &n).is_err() {
            return Err(format!("{at}.nodes: node {n:?} does not exist"));
        }
        set.insert(n);
    }
    if let Some(m) = labels {
        let sel = LabelSelector::from_json(&serde_json::json!({"matchLabels": m}))
            .map_err(|e| format!("{at}.nodeSelectors: {e}"))?;
        let list = api.list(&nodes_rt, None, &ListOptions::default()).map_err(|e| e.message)?;
        for node in list.items {
            if sel.matches(node["metadata"]["labels"].as_object())
                && let Some(name) = node["metadata"]["name"].as_str()
            {
                set.insert(name.to_string());
            }
        }
    }
    Ok(Some(set))
}

/// Picks among `candidates` by `mode` and `value` (Chaos Mesh `pkg/selector/generic/mode.go`):
/// `one`, `all`, `fixed` (count, capped), `fixed-percent` (ceil of the share, at least one),
/// `random-max-percent` (a random share in `[0, value]`, ceiled; may be zero). `at` names the
/// fields in errors (`spec` or `spec.target`).
pub fn pick(
    mut candidates: Vec<Arc<Value>>,
    mode: &str,
    value: Option<&str>,
    rng: &mut StdRng,
    at: &str,
) -> Result<Vec<Arc<Value>>, String> {
    let count = candidates.len();
    let int_value = || -> Result<i64, String> {
        let v = value.filter(|v| !v.is_empty()).ok_or_else(|| format!("{at}.value is required for mode {mode}"))?;
        v.trim().parse::<i64>().map_err(|_| format!("{at}.value {v:?} is not an integer (mode {mode})"))
    };
    let percent = || -> Result<u64, String> {
        let p = int_value()?;
        if !(1..=100).contains(&p) {
            return Err(format!("{at}.value {p} must be within 1..100 for mode {mode}"));
        }
        Ok(p.unsigned_abs())
    };
    let n = match mode {
        "all" => return Ok(candidates),
        "one" => count.min(1),
        "fixed" => {
            let n = int_value()?;
            if n <= 0 {
                return Err(format!("{at}.value {n} must be greater than 0 for mode fixed"));
            }
            usize::try_from(n).unwrap_or(usize::MAX).min(count)
        }
        "fixed-percent" => ceil_share(count, percent()?),
        "random-max-percent" => {
            let max = percent()?;
            ceil_share(count, rng.random_range(0..=max))
        }
        other => {
            return Err(format!(
                "{at}.mode {other:?} is not one of one, all, fixed, fixed-percent, random-max-percent"
            ));
        }
    };
    // A partial Fisher-Yates shuffle: the first `n` are a uniform sample.
    for i in 0..n {
        let j = rng.random_range(i..count);
        candidates.swap(i, j);
    }
    candidates.truncate(n);
    sort(&mut candidates);
    Ok(candidates)
}

fn ceil_share(count: usize, percent: u64) -> usize {
    let c = count as u64;
    usize::try_from((c * percent).div_ceil(100)).unwrap_or(count).min(count)
}

fn sort(pods: &mut [Arc<Value>]) {
    pods.sort_by(|a, b| {
        let key = |p: &Value| {
            (
                p["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
                p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

fn escape_field_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

/// `namespace/name` of a pod.
pub fn pod_id(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use serde_json::json;

    use super::*;

    fn pods(n: usize) -> Vec<Arc<Value>> {
        (0..n).map(|i| Arc::new(json!({"metadata": {"namespace": "d", "name": format!("p{i:02}")}}))).collect()
    }

    #[test]
    fn modes_pick_the_documented_counts() {
        let mut rng = StdRng::seed_from_u64(7);
        let count = |mode: &str, value: Option<&str>, n: usize, rng: &mut StdRng| {
            pick(pods(n), mode, value, rng, "spec").map(|v| v.len())
        };
        assert_eq!(count("all", None, 5, &mut rng), Ok(5));
        assert_eq!(count("one", None, 5, &mut rng), Ok(1));
        assert_eq!(count("one", None, 0, &mut rng), Ok(0));
        assert_eq!(count("fixed", Some("2"), 5, &mut rng), Ok(2));
        assert_eq!(count("fixed", Some("9"), 5, &mut rng), Ok(5));
        assert_eq!(count("fixed-percent", Some("50"), 5, &mut rng), Ok(3));
        assert_eq!(count("fixed-percent", Some("1"), 5, &mut rng), Ok(1));
        for _ in 0..50 {
            let n = count("random-max-percent", Some("40"), 10, &mut rng).unwrap();
            assert!(n <= 4, "{n}");
        }
        assert!(count("fixed", Some("0"), 5, &mut rng).unwrap_err().contains("spec.value"));
        assert!(count("fixed", None, 5, &mut rng).unwrap_err().contains("required"));
        assert!(count("fixed-percent", Some("50%"), 5, &mut rng).unwrap_err().contains("not an integer"));
        assert!(count("fixed-percent", Some("101"), 5, &mut rng).unwrap_err().contains("1..100"));
        assert!(count("some", None, 5, &mut rng).unwrap_err().contains("spec.mode"));
    }

    #[test]
    fn the_same_seed_picks_the_same_pods() {
        let names = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            pick(pods(20), "fixed", Some("5"), &mut rng, "spec").unwrap().iter().map(|p| pod_id(p)).collect::<Vec<_>>()
        };
        assert_eq!(names(42), names(42));
        assert_ne!(names(42), names(43));
    }
}
