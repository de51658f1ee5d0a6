//! Table cases of the health analysis.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::*;
use crate::workload::{Workload, WorkloadKind, WorkloadRef};

fn workload(desired: i32, available: i32) -> Workload {
    Workload {
        reference: WorkloadRef { kind: WorkloadKind::Deployment, name: "dispatch-a".into() },
        desired,
        available,
        selector: LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "a".into())])),
            match_expressions: None,
        },
    }
}

/// A pod on `node`, Ready, with one running container; `tweak` edits its JSON.
fn pod(name: &str, node: &str, tweak: impl FnOnce(&mut Value)) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"app": "a"}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "i"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {}}}],
        },
    });
    tweak(&mut v);
    serde_json::from_value(v).expect("pod fixture")
}

fn not_ready(v: &mut Value) {
    v["status"]["conditions"][0]["status"] = json!("False");
    v["status"]["containerStatuses"][0]["ready"] = json!(false);
}

fn waiting(reason: &'static str, restarts: i32) -> impl FnOnce(&mut Value) {
    move |v| {
        not_ready(v);
        v["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": reason}});
        v["status"]["containerStatuses"][0]["restartCount"] = json!(restarts);
    }
}

fn obs() -> Observations {
    Observations {
        nodes: HashMap::from([
            ("w1".to_string(), NodeReadiness::Ready),
            ("w2".to_string(), NodeReadiness::NotReady),
            ("w3".to_string(), NodeReadiness::Unknown),
            ("w4".to_string(), NodeReadiness::NotReported),
        ]),
        ..Default::default()
    }
}

#[test]
fn pod_reasons_table() {
    let ok = |_: &mut Value| {};
    let mut restarted = obs();
    restarted.recent_restarts.insert("uid-r".into(), 2);
    let mut probed = obs();
    probed.probe_failures.insert("p".into(), "probe http://127.0.0.1:1/ failed 3 times: connection refused".into());
    let cases: Vec<(&str, Pod, Observations, Checks, Option<&str>)> = vec![
        ("healthy", pod("h", "w1", ok), obs(), Checks::default(), None),
        ("not ready", pod("n", "w1", not_ready), obs(), Checks::default(), Some("not Ready")),
        (
            "crash loop shows restarts",
            pod("c", "w1", waiting("CrashLoopBackOff", 4)),
            obs(),
            Checks::default(),
            Some("CrashLoopBackOff, restarts 4"),
        ),
        (
            "image pull",
            pod("i", "w1", waiting("ImagePullBackOff", 0)),
            obs(),
            Checks::default(),
            Some("ImagePullBackOff"),
        ),
        ("err image pull", pod("e", "w1", waiting("ErrImagePull", 0)), obs(), Checks::default(), Some("ErrImagePull")),
        (
            "create container error",
            pod("x", "w1", waiting("CreateContainerError", 0)),
            obs(),
            Checks::default(),
            Some("CreateContainerError"),
        ),
        (
            "terminated",
            pod("t", "w1", |v| {
                not_ready(v);
                v["status"]["containerStatuses"][0]["state"] =
                    json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
            }),
            obs(),
            Checks::default(),
            Some("terminated: OOMKilled (exit 137)"),
        ),
        ("ready but on a NotReady node", pod("w", "w2", ok), obs(), Checks::default(), Some("node w2 NotReady")),
        ("node Unknown", pod("u", "w3", ok), obs(), Checks::default(), Some("node w3 Unknown")),
        ("node not reported yet", pod("q", "w4", ok), obs(), Checks::default(), None),
        ("node gone", pod("g", "w9", ok), obs(), Checks::default(), Some("node w9 not found")),
        (
            "unscheduled",
            pod("s", "w1", |v| {
                v["spec"].as_object_mut().map(|s| s.remove("nodeName"));
                v["status"] = json!({"phase": "Pending"});
            }),
            obs(),
            Checks::default(),
            Some("not scheduled"),
        ),
        (
            "terminating",
            pod("d", "w1", |v| v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")),
            obs(),
            Checks::default(),
            Some("terminating"),
        ),
        (
            "failed",
            pod("f", "w1", |v| {
                not_ready(v);
                v["status"]["phase"] = json!("Failed");
            }),
            obs(),
            Checks::default(),
            Some("phase Failed"),
        ),
        (
            "ready but restarted within the window",
            pod("r", "w1", |v| v["status"]["containerStatuses"][0]["restartCount"] = json!(5)),
            restarted.clone(),
            Checks::default(),
            Some("restarts 5 (+2 within 2m)"),
        ),
        (
            "restarts under the threshold",
            pod("r", "w1", |v| v["status"]["containerStatuses"][0]["restartCount"] = json!(5)),
            restarted,
            Checks { restart_threshold: 3, ..Checks::default() },
            None,
        ),
        (
            "two of several containers",
            pod("m", "w1", |v| {
                not_ready(v);
                v["status"]["containerStatuses"] = json!([
                    {"name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "proxy", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                ]);
            }),
            obs(),
            Checks::default(),
            Some("CrashLoopBackOff (proxy), restarts 1"),
        ),
        (
            "init container stuck",
            pod("ic", "w1", |v| {
                not_ready(v);
                v["status"]["initContainerStatuses"] = json!([{"name": "migrate", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]);
                v["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "PodInitializing"}});
            }),
            obs(),
            Checks::default(),
            Some("terminated: Error (exit 1) (migrate), PodInitializing"),
        ),
        (
            "black box failure on a Ready pod",
            pod("p", "w1", ok),
            probed.clone(),
            Checks::default(),
            Some("probe http://127.0.0.1:1/ failed 3 times: connection refused"),
        ),
        ("black box off", pod("p", "w1", ok), probed, Checks { black_box: false, ..Checks::default() }, None),
        ("white box off", pod("n", "w2", not_ready), obs(), Checks { white_box: false, ..Checks::default() }, None),
    ];
    for (what, pod, obs, checks, want) in cases {
        let got = pod_problem(&pod, &obs, checks).map(|p| p.reasons.join(", "));
        assert_eq!(got.as_deref(), want, "{what}");
    }
}

#[test]
fn workload_health_table() {
    let o = obs();
    let healthy = pod("a-1", "w1", |_| {});
    let crashing = pod("a-7c9d", "w1", waiting("CrashLoopBackOff", 4));
    let on_bad_node = pod("a-x2k1", "w2", |_| {});
    let cases: Vec<(&str, Workload, Vec<&Pod>, bool, &str)> = vec![
        ("all healthy", workload(2, 2), vec![&healthy, &healthy], true, ""),
        (
            "one of two unhealthy",
            workload(2, 1),
            vec![&healthy, &crashing],
            true,
            "a-7c9d: CrashLoopBackOff, restarts 4",
        ),
        (
            "all unhealthy",
            workload(2, 0),
            vec![&on_bad_node, &crashing],
            false,
            "a-7c9d: CrashLoopBackOff, restarts 4; a-x2k1: node w2 NotReady",
        ),
        ("no pods", workload(2, 0), vec![], false, "no pods (0/2 available)"),
        ("scaled to zero", workload(0, 0), vec![], false, "scaled to 0 replicas"),
    ];
    for (what, w, pods, healthy, describe) in cases {
        let h = assess(&w, &pods, &o, Checks::default());
        assert_eq!((h.healthy, h.describe().as_str()), (healthy, describe), "{what}");
    }
    let h = assess(&workload(2, 0), &[&on_bad_node, &crashing], &o, Checks::default());
    assert_eq!((h.pods, h.healthy_pods(), h.detectors()), (2, 0, "white-box"));
}

#[test]
fn node_readiness_reads_the_ready_condition() {
    let node = |conditions: Value| -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": conditions}})).expect("node")
    };
    assert_eq!(NodeReadiness::of(&node(json!([{"type": "Ready", "status": "True"}]))), NodeReadiness::Ready);
    assert_eq!(NodeReadiness::of(&node(json!([{"type": "Ready", "status": "False"}]))), NodeReadiness::NotReady);
    assert_eq!(NodeReadiness::of(&node(json!([{"type": "Ready", "status": "Unknown"}]))), NodeReadiness::Unknown);
    assert_eq!(NodeReadiness::of(&node(json!([]))), NodeReadiness::NotReported);
    let pods = [pod("a", "w1", |_| {}), pod("b", "gone", |_| {})];
    let map = node_readiness(&pods, |n| (n == "w1").then_some(NodeReadiness::Ready));
    assert_eq!(map.get("gone"), Some(&NodeReadiness::Missing));
    assert_eq!(map.get("w1"), Some(&NodeReadiness::Ready));
}
