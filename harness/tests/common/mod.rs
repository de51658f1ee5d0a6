//! Shared fixtures of the chaos tests.
#![allow(dead_code)]

use serde_json::Value;

/// Chaos Mesh v2.8.3 objects as the Chaos Mesh docs write them (namespace `demo`, pods
/// labelled app=web): one per action family, each valid for Chaos Mesh's CRD and webhook.
pub const EXAMPLES: &str = r#"
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: kill-one-web, namespace: demo}
spec:
  action: pod-kill
  mode: one
  gracePeriod: 0
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
---
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: fail-web-30s, namespace: demo}
spec:
  action: pod-failure
  mode: fixed
  value: "2"
  duration: "30s"
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
---
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: kill-web-container, namespace: demo}
spec:
  action: container-kill
  mode: all
  containerNames: [web]
  selector:
    pods: {demo: [web-0]}
---
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: web-loss, namespace: demo}
spec:
  action: loss
  mode: all
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
  loss: {loss: "25", correlation: "0"}
  duration: "60s"
---
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: web-delay, namespace: demo}
spec:
  action: delay
  mode: one
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
  delay: {latency: "100ms", jitter: "10ms", correlation: "0"}
  direction: to
  duration: "2m"
---
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: web-db-partition, namespace: demo}
spec:
  action: partition
  mode: all
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
  direction: both
  target:
    mode: all
    selector:
      namespaces: [demo]
      labelSelectors: {app: db}
  duration: "60s"
---
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: web-external-delay, namespace: demo}
spec:
  action: delay
  mode: all
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
  direction: to
  externalTargets: ["10.96.0.10", "example.com"]
  delay: {latency: "200ms"}
---
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata: {name: web-cpu, namespace: demo}
spec:
  mode: one
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
  stressors:
    cpu: {workers: 1, load: 80}
  duration: "60s"
---
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata: {name: web-mem, namespace: demo}
spec:
  mode: one
  selector:
    namespaces: [demo]
    labelSelectors: {app: web}
  containerNames: [web]
  stressors:
    memory: {workers: 1, size: "256MB"}
  duration: "60s"
"#;

/// The examples as JSON values.
pub fn examples() -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(EXAMPLES)
        .expect("examples parse")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// The example named `name`.
pub fn example(name: &str) -> Value {
    examples().into_iter().find(|e| e["metadata"]["name"] == name).unwrap_or_else(|| panic!("no example {name}"))
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
