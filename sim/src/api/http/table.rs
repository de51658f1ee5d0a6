//! `meta.k8s.io/v1` Table responses, the server-side printing `kubectl get` asks for, with the
//! columns kube-apiserver prints for the common kinds and CRD `additionalPrinterColumns`.

use serde_json::{Value, json};

use super::request::Query;
use crate::api::ops::ListResult;
use crate::api::resources::ResourceType;

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: i64,
}

const fn col(name: &'static str, ty: &'static str, priority: i64) -> Col {
    Col { name, ty, priority }
}

/// A Table for a list.
pub fn list_table(rt: &ResourceType, list: &ListResult, q: &Query) -> Value {
    let rows: Vec<Value> = list.items.iter().map(|o| row(rt, o, q)).collect();
    let mut meta = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(c) = &list.continue_token {
        meta["continue"] = json!(c);
    }
    table(rt, rows, meta)
}

/// A Table for one object.
pub fn object_table(rt: &ResourceType, obj: &Value, q: &Query) -> Value {
    let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
    table(rt, vec![row(rt, obj, q)], meta)
}

fn table(rt: &ResourceType, rows: Vec<Value>, meta: Value) -> Value {
    let defs: Vec<Value> = columns(rt)
        .into_iter()
        .map(|(name, ty, priority)| {
            json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": name, "priority": priority})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}

fn columns(rt: &ResourceType) -> Vec<(String, String, i64)> {
    let fixed: &[Col] = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => &[
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
            col("Nominated Node", "string", 1),
            col("Readiness Gates", "string", 1),
        ],
        ("apps", "deployments") => &[
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Up-to-date", "string", 0),
            col("Available", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("apps", "replicasets") | ("", "replicationcontrollers") => &[
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
        ],
        ("apps", "statefulsets") => &[col("Name", "string", 0), col("Ready", "string", 0), col("Age", "string", 0)],
        ("batch", "jobs") => &[
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Completions", "string", 0),
            col("Duration", "string", 0),
            col("Age", "string", 0),
        ],
        ("batch", "cronjobs") => &[
            col("Name", "string", 0),
            col("Schedule", "string", 0),
            col("Timezone", "string", 0),
            col("Suspend", "boolean", 0),
            col("Active", "integer", 0),
            col("Last Schedule", "string", 0),
            col("Age", "string", 0),
        ],
        ("policy", "poddisruptionbudgets") => &[
            col("Name", "string", 0),
            col("Min Available", "string", 0),
            col("Max Unavailable", "string", 0),
            col("Allowed Disruptions", "integer", 0),
            col("Age", "string", 0),
        ],
        ("", "services") => &[
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            col("Age", "string", 0),
            col("Selector", "string", 1),
        ],
        ("", "nodes") => &[
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
        ],
        ("", "namespaces") => &[col("Name", "string", 0), col("Status", "string", 0), col("Age", "string", 0)],
        ("", "endpoints") => &[col("Name", "string", 0), col("Endpoints", "string", 0), col("Age", "string", 0)],
        ("coordination.k8s.io", "leases") => {
            &[col("Name", "string", 0), col("Holder", "string", 0), col("Age", "string", 0)]
        }
        ("", "events") => &[
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Message", "string", 0),
        ],
        _ => &[],
    };
    if !fixed.is_empty() {
        return fixed.iter().map(|c| (c.name.to_string(), c.ty.to_string(), c.priority)).collect();
    }
    let mut cols = vec![("Name".to_string(), "string".to_string(), 0)];
    for c in &rt.printer_columns {
        cols.push((c.name.clone(), c.type_.clone(), c.priority));
    }
    if !rt.printer_columns.iter().any(|c| c.name == "Age") {
        cols.push(("Age".into(), "date".into(), 0));
    }
    cols
}

fn row(rt: &ResourceType, obj: &Value, q: &Query) -> Value {
    let m = &obj["metadata"];
    let name = m["name"].as_str().unwrap_or_default().to_string();
    let age = age(m["creationTimestamp"].as_str());
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let cells: Vec<Value> = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => {
            let statuses = obj["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| n(&c["restartCount"])).sum();
            let mut status = s(&obj["status"]["phase"]);
            for c in &statuses {
                if let Some(reason) = c["state"]["waiting"]["reason"].as_str() {
                    status = reason.to_string();
                } else if let Some(reason) = c["state"]["terminated"]["reason"].as_str() {
                    status = reason.to_string();
                }
            }
            if !m["deletionTimestamp"].is_null() {
                status = "Terminating".into();
            }
            let ip = obj["status"]["podIP"].as_str().unwrap_or("<none>").to_string();
            let node = obj["spec"]["nodeName"].as_str().filter(|s| !s.is_empty()).unwrap_or("<none>").to_string();
            vec![
                json!(name),
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                json!(age),
                json!(ip),
                json!(node),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        ("apps", "deployments") => {
            let st = &obj["status"];
            let containers = obj["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
            let names: Vec<String> = containers.iter().map(|c| s(&c["name"])).collect();
            let images: Vec<String> = containers.iter().map(|c| s(&c["image"])).collect();
            let selector = crate::api::selectors::LabelSelector::from_json(&obj["spec"]["selector"])
                .map(|l| l.to_string())
                .unwrap_or_default();
            vec![
                json!(name),
                json!(format!("{}/{}", n(&st["readyReplicas"]), n(&obj["spec"]["replicas"]))),
                json!(n(&st["updatedReplicas"]).to_string()),
                json!(n(&st["availableReplicas"]).to_string()),
                json!(age),
                json!(names.join(",")),
                json!(images.join(",")),
                json!(selector),
            ]
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => vec![
            json!(name),
            json!(n(&obj["spec"]["replicas"])),
            json!(n(&obj["status"]["replicas"])),
            json!(n(&obj["status"]["readyReplicas"])),
            json!(age),
        ],
        ("batch", "jobs") => {
            let st = &obj["status"];
            let condition = |t: &str| {
                st["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
            };
            let status = ["Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"]
                .into_iter()
                .find(|t| condition(t))
                .unwrap_or("Running");
            let completions = match obj["spec"]["completions"].as_i64() {
                Some(c) => format!("{}/{c}", n(&st["succeeded"])),
                None if n(&obj["spec"]["parallelism"]) > 1 => {
                    format!("{}/1 of {}", n(&st["succeeded"]), n(&obj["spec"]["parallelism"]))
                }
                None => format!("{}/1", n(&st["succeeded"])),
            };
            let ts = |v: &Value| v.as_str().and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
            let duration = match (ts(&st["startTime"]), ts(&st["completionTime"])) {
                (Some(a), Some(b)) => human((b.as_second() - a.as_second()).max(0)),
                (Some(_), None) => self::age(st["startTime"].as_str()),
                _ => String::new(),
            };
            vec![json!(name), json!(status), json!(completions), json!(duration), json!(age)]
        }
        ("batch", "cronjobs") => {
            let last = obj["status"]["lastScheduleTime"].as_str();
            vec![
                json!(name),
                json!(s(&obj["spec"]["schedule"])),
                json!(obj["spec"]["timeZone"].as_str().unwrap_or("<none>")),
                json!(obj["spec"]["suspend"] == true),
                json!(obj["status"]["active"].as_array().map_or(0, Vec::len)),
                json!(if last.is_some() { self::age(last) } else { "<none>".into() }),
                json!(age),
            ]
        }
        ("policy", "poddisruptionbudgets") => {
            let shown = |v: &Value| match v {
                Value::Null => "N/A".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                json!(name),
                json!(shown(&obj["spec"]["minAvailable"])),
                json!(shown(&obj["spec"]["maxUnavailable"])),
                json!(n(&obj["status"]["disruptionsAllowed"])),
                json!(age),
            ]
        }
        ("apps", "statefulsets") => vec![
            json!(name),
            json!(format!("{}/{}", n(&obj["status"]["readyReplicas"]), n(&obj["spec"]["replicas"]))),
            json!(age),
        ],
        ("", "services") => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{}/{}", n(&p["port"]), p["protocol"].as_str().unwrap_or("TCP")))
                        .collect()
                })
                .unwrap_or_default();
            let selector: Vec<String> = obj["spec"]["selector"]
                .as_object()
                .map(|sel| sel.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            let ip = obj["spec"]["clusterIP"].as_str().unwrap_or("<none>").to_string();
            vec![
                json!(name),
                json!(s(&obj["spec"]["type"])),
                json!(ip),
                json!("<none>"),
                json!(if ports.is_empty() { "<none>".to_string() } else { ports.join(",") }),
                json!(age),
                json!(if selector.is_empty() { "<none>".to_string() } else { selector.join(",") }),
            ]
        }
        ("", "nodes") => {
            let ready = obj["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| if c["status"] == "True" { "Ready" } else { "NotReady" })
                .unwrap_or("Unknown");
            let roles: Vec<String> = m["labels"]
                .as_object()
                .map(|l| {
                    l.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string)).collect()
                })
                .unwrap_or_default();
            let ip = obj["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
                .map(|x| s(&x["address"]))
                .unwrap_or_else(|| "<none>".into());
            vec![
                json!(name),
                json!(ready),
                json!(if roles.is_empty() { "<none>".to_string() } else { roles.join(",") }),
                json!(age),
                json!(s(&obj["status"]["nodeInfo"]["kubeletVersion"])),
                json!(ip),
            ]
        }
        ("", "namespaces") => vec![json!(name), json!(s(&obj["status"]["phase"])), json!(age)],
        ("", "endpoints") => {
            let mut eps = Vec::new();
            for subset in obj["subsets"].as_array().cloned().unwrap_or_default() {
                for a in subset["addresses"].as_array().cloned().unwrap_or_default() {
                    for p in subset["ports"].as_array().cloned().unwrap_or_default() {
                        eps.push(format!("{}:{}", s(&a["ip"]), n(&p["port"])));
                    }
                }
            }
            vec![json!(name), json!(if eps.is_empty() { "<none>".to_string() } else { eps.join(",") }), json!(age)]
        }
        ("coordination.k8s.io", "leases") => vec![json!(name), json!(s(&obj["spec"]["holderIdentity"])), json!(age)],
        ("", "events") => {
            let last = obj["lastTimestamp"].as_str().or(obj["eventTime"].as_str()).or(m["creationTimestamp"].as_str());
            let io = &obj["involvedObject"];
            vec![
                json!(self::age(last)),
                json!(s(&obj["type"])),
                json!(s(&obj["reason"])),
                json!(format!("{}/{}", s(&io["kind"]).to_lowercase(), s(&io["name"]))),
                json!(s(&obj["message"])),
            ]
        }
        _ => {
            let mut cells = vec![json!(name)];
            for c in &rt.printer_columns {
                let v = c.json_path.trim_start_matches('.').split('.').fold(obj, |v, k| &v[k]);
                cells.push(if c.type_ == "date" { json!(age_of_value(v)) } else { v.clone() });
            }
            if !rt.printer_columns.iter().any(|c| c.name == "Age") {
                cells.push(json!(age));
            }
            cells
        }
    };
    let object = match q.get("includeObject") {
        Some("None") => Value::Null,
        Some("Object") => obj.clone(),
        _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": m}),
    };
    json!({"cells": cells, "object": object})
}

fn age_of_value(v: &Value) -> String {
    age(v.as_str())
}

/// kubectl's short human duration since an RFC 3339 time ("5s", "3m2s", "4h", "12d").
fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok()) else { return "<unknown>".into() };
    human((k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second()).max(0))
}

/// `duration.HumanDuration` of a number of seconds.
fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
