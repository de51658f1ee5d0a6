//! Defaulting of built-in kinds on write, for the fields clients and controllers rely on
//! (a subset of kube-apiserver's defaulters; fields left out keep their zero value).

use serde_json::{Value, json};

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut()
        && map.get(key).is_none_or(Value::is_null)
    {
        map.insert(key.to_string(), value);
    }
}

fn child<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    obj.as_object_mut()?.get_mut(key)
}

/// Applies defaults for `group`/`resource` to `obj`.
pub fn apply(group: &str, resource: &str, obj: &mut Value) {
    match (group, resource) {
        ("", "namespaces") => {
            // k/k `pkg/registry/core/namespace/strategy.go`: the name label is always set.
            let name = obj["metadata"]["name"].clone();
            if let Some(meta) = ensure_object(obj, "metadata")
                && let Some(labels) = ensure_object(meta, "labels")
                && let Some(labels) = labels.as_object_mut()
            {
                labels.insert("kubernetes.io/metadata.name".into(), name);
            }
            if let Some(spec) = ensure_object(obj, "spec") {
                set_default(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(status) = ensure_object(obj, "status") {
                set_default(status, "phase", json!("Active"));
            }
        }
        ("", "pods") => {
            if let Some(spec) = child(obj, "spec") {
                pod_spec(spec);
            }
        }
        ("", "services") => {
            if let Some(spec) = child(obj, "spec") {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                        // k/k `pkg/apis/core/v1/defaults.go`: a zero targetPort (0 or "") is
                        // unset too; protobuf clients always send one.
                        let port = p.get("port").cloned().unwrap_or(Value::Null);
                        if p.get("targetPort").is_none_or(|t| t.is_null() || *t == json!(0) || *t == json!(""))
                            && let Some(map) = p.as_object_mut()
                        {
                            map.insert("targetPort".into(), port);
                        }
                    }
                }
            }
            // Go encodes the non-pointer status struct even when empty.
            if let Some(status) = ensure_object(obj, "status") {
                set_default(status, "loadBalancer", json!({}));
            }
        }
        ("", "secrets") => {
            set_default(obj, "type", json!("Opaque"));
            // stringData is write-only: merged into data (base64) and dropped, as kube-apiserver does.
            if let Some(string_data) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
                && let Some(entries) = string_data.as_object()
            {
                let data = obj.as_object_mut().map(|m| m.entry("data").or_insert_with(|| json!({})));
                if let Some(Value::Object(data)) = data {
                    for (k, v) in entries {
                        let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or_default().as_bytes().to_vec());
                        if let Ok(encoded) = serde_json::to_value(bytes) {
                            data.insert(k.clone(), encoded);
                        }
                    }
                }
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = child(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                // k/k `pkg/apis/apps/v1/defaults.go`: an empty type is RollingUpdate, whose
                // parameters default to 25%/25% (protobuf clients send `strategy: {}`).
                if let Some(strategy) = ensure_object(spec, "strategy") {
                    set_default(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate"
                        && let Some(ru) = ensure_object(strategy, "rollingUpdate")
                    {
                        set_default(ru, "maxSurge", json!("25%"));
                        set_default(ru, "maxUnavailable", json!("25%"));
                    }
                }
                template(spec);
            }
            ensure_object(obj, "status");
        }
        ("", "replicationcontrollers") => {
            // An RC without selector or labels takes its template's labels (SetDefaults_ReplicationController).
            let template_labels = obj["spec"]["template"]["metadata"]["labels"].clone();
            if template_labels.as_object().is_some_and(|l| !l.is_empty()) {
                if obj["spec"]["selector"].as_object().is_none_or(|s| s.is_empty())
                    && let Some(spec) = child(obj, "spec")
                    && let Some(map) = spec.as_object_mut()
                {
                    map.insert("selector".into(), template_labels.clone());
                }
                if obj["metadata"]["labels"].as_object().is_none_or(|l| l.is_empty())
                    && let Some(meta) = child(obj, "metadata")
                    && let Some(map) = meta.as_object_mut()
                {
                    map.insert("labels".into(), template_labels);
                }
            }
            if let Some(spec) = child(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                template(spec);
            }
        }
        ("batch", "jobs") => {
            if let Some(spec) = child(obj, "spec") {
                // SetDefaults_Job: neither set means one pod; parallelism alone leaves a work queue.
                if spec["completions"].is_null() && spec["parallelism"].is_null() {
                    set_default(spec, "completions", json!(1));
                }
                set_default(spec, "parallelism", json!(1));
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completionMode", json!("NonIndexed"));
                set_default(spec, "suspend", json!(false));
                if spec["podFailurePolicy"].is_null() {
                    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
                }
                template(spec);
            }
        }
        ("batch", "cronjobs") => {
            if let Some(spec) = child(obj, "spec") {
                set_default(spec, "concurrencyPolicy", json!("Allow"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "successfulJobsHistoryLimit", json!(3));
                set_default(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(job_spec) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
                    template(job_spec);
                }
            }
        }
        ("apps", "replicasets") => {
            if let Some(spec) = child(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                template(spec);
            }
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = child(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(spec, "revisionHistoryLimit", json!(10));
                if let Some(strategy) = ensure_object(spec, "updateStrategy") {
                    set_default(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate"
                        && let Some(ru) = ensure_object(strategy, "rollingUpdate")
                    {
                        set_default(ru, "partition", json!(0));
                    }
                }
                template(spec);
            }
        }
        _ => {}
    }
}

fn ensure_object<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map = obj.as_object_mut()?;
    let entry = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if entry.is_null() {
        *entry = json!({});
    }
    Some(entry)
}

fn template(spec: &mut Value) {
    if let Some(pod_spec_value) = child(spec, "template").and_then(|t| child(t, "spec")) {
        pod_spec(pod_spec_value);
    }
}

fn pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                let latest = c["image"].as_str().is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
                set_default(c, "imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" }));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}
