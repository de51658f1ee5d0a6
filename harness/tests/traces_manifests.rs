//! deploy/sample and deploy/jaeger (the kind manifests) are valid Kubernetes objects, listed in
//! their kustomizations, and agree with the sample programs: the dispatch pair as the failover
//! controller expects it, every pod listening on its own IP, spans sent to the
//! jaeger-collector Service's OTLP/HTTP port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hadrill::cluster::ha_pair::{self, Side};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
}

/// The objects of a kustomization directory, after checking it lists every YAML file there.
fn objects(name: &str) -> Vec<Value> {
    let d = dir(name);
    let kust: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(d.join("kustomization.yaml")).expect("kustomization"))
            .expect("yaml");
    let listed: Vec<String> = kust["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("name").to_string())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&d)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    files.sort();
    assert_eq!(listed, files, "{name}: the kustomization lists every manifest, in order");
    let mut out = Vec::new();
    for f in listed {
        let text = std::fs::read_to_string(d.join(&f)).expect("manifest");
        for v in serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{name}/{f}: {e}")) {
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    out
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{} {}: {e}", v["kind"], v["metadata"]["name"]))
}

#[test]
fn the_sample_manifests_are_the_ha_pair_and_chain_the_programs_expect() {
    let objs = objects("sample");
    let services: BTreeMap<String, Service> = objs
        .iter()
        .filter(|o| o["kind"] == "Service")
        .map(|o| (o["metadata"]["name"].as_str().expect("name").to_string(), typed(o)))
        .collect();
    let deployments: BTreeMap<String, Deployment> = objs
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .map(|o| (o["metadata"]["name"].as_str().expect("name").to_string(), typed(o)))
        .collect();
    assert_eq!(services.keys().collect::<Vec<_>>(), ["dispatch", "planner"]);
    assert_eq!(deployments.keys().collect::<Vec<_>>(), ["dispatch-primary", "dispatch-standby", "planner", "vehicles"]);
    let dispatch = &services["dispatch"];
    assert_eq!(ha_pair::selected_side("dispatch", dispatch), Some(Side::Primary));
    let expected = ha_pair::service("dispatch").expect("ha_pair service");
    assert_eq!(dispatch.metadata.annotations, expected.metadata.annotations, "the failover controller's annotations");
    for side in [Side::Primary, Side::Standby] {
        let d = &deployments[&ha_pair::workload("dispatch", side)];
        let labels = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.clone());
        assert_eq!(labels, Some(ha_pair::labels("dispatch", side)));
    }
    for (name, d) in &deployments {
        let c = &d.spec.as_ref().expect("spec").template.spec.as_ref().expect("pod spec").containers[0];
        assert_eq!(c.image.as_deref(), Some("hadrill/sample:dev"), "{name}");
        let env: BTreeMap<String, Value> =
            c.env.iter().flatten().map(|e| (e.name.clone(), serde_json::to_value(e).expect("env"))).collect();
        assert_eq!(env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP", "{name} listens on its pod IP");
        assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"], "http://jaeger-collector.observability:4318", "{name}");
        let args = c.args.clone().unwrap_or_default();
        let port =
            c.ports.iter().flatten().find(|p| p.name.as_deref() == Some("http")).expect("http port").container_port;
        assert!(args.iter().any(|a| *a == format!(":{port}")), "{name}: listens on the declared port: {args:?}");
        let probe = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness probe");
        assert_eq!(probe.path.as_deref(), Some("/readyz"));
    }
    let role = |d: &str| {
        let args =
            deployments[d].spec.as_ref().expect("spec").template.spec.as_ref().expect("pod").containers[0].args.clone();
        let args = args.unwrap_or_default();
        args.iter().position(|a| a == "--role").map(|i| args[i + 1].clone())
    };
    assert_eq!(role("dispatch-primary").as_deref(), Some("primary"));
    assert_eq!(role("dispatch-standby").as_deref(), Some("standby"));
}

#[test]
fn jaeger_serves_otlp_http_on_4318_and_queries_on_16686_in_observability() {
    let objs = objects("jaeger");
    assert!(objs.iter().any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "observability"));
    let port = |svc: &str, p: i64| {
        objs.iter().any(|o| {
            o["kind"] == "Service"
                && o["metadata"]["name"] == svc
                && o["metadata"]["namespace"] == "observability"
                && o["spec"]["ports"].as_array().is_some_and(|ps| ps.iter().any(|x| x["port"] == p))
        })
    };
    assert!(port("jaeger-collector", 4318));
    assert!(port("jaeger-query", 16686));
    let d: Deployment = typed(objs.iter().find(|o| o["kind"] == "Deployment").expect("deployment"));
    let c = &d.spec.expect("spec").template.spec.expect("pod").containers[0];
    assert!(c.image.as_deref().is_some_and(|i| i.contains("jaegertracing/jaeger:")), "{:?}", c.image);
    let ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
    assert!(ports.contains(&4318) && ports.contains(&16686), "{ports:?}");
}
