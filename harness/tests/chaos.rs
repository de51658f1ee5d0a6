//! Chaos Mesh models, CRDs and validation.

mod common;

use common::{example, examples, repo_root};
use hadrill::chaos::model::{
    ChaosStatus, ConditionType, DesiredPhase, LossSpec, NetworkChaos, NetworkChaosAction, NetworkChaosSpec, PodChaos,
    PodChaosAction, PodChaosSpec, PodSelectorSpec, SelectorMode, StressChaos,
};
use hadrill::chaos::validate::{ValidationErrors, parse_value, validate_value};
use hadrill::chaos::{ChaosKind, ChaosResource, ValidateOptions, crd};
use serde_json::{Value, json};

fn demo() -> ValidateOptions {
    ValidateOptions::for_namespaces(["demo"])
}

// --- models --------------------------------------------------------------------------------

#[test]
fn examples_round_trip_through_the_typed_models_without_adding_fields() {
    for ex in examples() {
        let resource = parse_value(&ex).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resource.to_value(), ex, "{} changed in the round trip", ex["metadata"]["name"]);
        let typed_again: Value = match ex["kind"].as_str() {
            Some("PodChaos") => serde_json::to_value(serde_json::from_value::<PodChaos>(ex.clone()).unwrap()).unwrap(),
            Some("NetworkChaos") => {
                serde_json::to_value(serde_json::from_value::<NetworkChaos>(ex.clone()).unwrap()).unwrap()
            }
            _ => serde_json::to_value(serde_json::from_value::<StressChaos>(ex.clone()).unwrap()).unwrap(),
        };
        assert_eq!(typed_again, ex);
    }
}

#[test]
fn examples_pass_validation() {
    for ex in examples() {
        let v = validate_value(&ex, &demo()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.resource.metadata().name.as_deref(), ex["metadata"]["name"].as_str());
    }
}

#[test]
fn a_new_object_has_no_status_and_no_unset_fields() {
    let mut chaos = PodChaos::new(
        "kill-one-web",
        PodChaosSpec {
            action: PodChaosAction::PodKill,
            mode: SelectorMode::One,
            value: None,
            selector: PodSelectorSpec::labels_in("demo", &[("app", "web")]),
            container_names: None,
            grace_period: Some(0),
            duration: None,
            remote_cluster: None,
        },
    );
    chaos.metadata.namespace = Some("demo".into());
    let v = serde_json::to_value(&chaos).unwrap();
    assert_eq!(v, example("kill-one-web"));
    assert!(v.get("status").is_none());
    chaos.validate_ok();
}

trait ValidateOk {
    fn validate_ok(&self);
}

impl ValidateOk for PodChaos {
    fn validate_ok(&self) {
        use hadrill::chaos::Validate;
        self.validate(&ValidateOptions::for_namespaces(["demo"])).unwrap();
    }
}

#[test]
fn status_is_read_leniently_and_conditions_by_type() {
    let mut obj = example("web-loss");
    obj["status"] = json!({
        "conditions": [
            {"type": "AllRecovered", "status": "False"},
            {"type": "Selected", "status": "True", "reason": ""},
            {"type": "Paused", "status": "False"},
            {"type": "AllInjected", "status": "True"},
            {"type": "SomethingNew", "status": "True"}
        ],
        "experiment": {
            "desiredPhase": "Run",
            "containerRecords": [
                {"id": "demo/web-0", "selectorKey": ".", "phase": "Injected", "injectedCount": 1, "recoveredCount": 0,
                 "events": [{"type": "Succeeded", "operation": "Apply", "timestamp": "2026-01-01T00:00:00Z"}]},
                {"id": "demo/web-1", "selectorKey": ".", "phase": "Injected", "futureField": 3}
            ]
        },
        "instances": {"demo/web-0": 1},
        "someFutureField": {"x": 1}
    });
    let chaos: NetworkChaos = serde_json::from_value(obj).unwrap();
    let status = chaos.status.as_ref().unwrap();
    assert!(status.injected());
    assert!(!status.recovered());
    assert_eq!(status.desired_phase(), Some(DesiredPhase::Run));
    assert_eq!(status.records().len(), 2);
    assert!(status.records().iter().all(|r| r.is_injected()));
    assert_eq!(status.records()[1].injected_count, 0, "missing counters default to 0");
    assert_eq!(status.condition(ConditionType::Paused).map(|c| c.is_true()), Some(false));
    assert_eq!(chaos.spec.action, NetworkChaosAction::Loss);

    let before_selection: NetworkChaos = serde_json::from_value(example("web-loss")).unwrap();
    assert!(before_selection.status.is_none());
}

#[test]
fn typed_network_chaos_serializes_strings_where_chaos_mesh_wants_strings() {
    let chaos = NetworkChaos::new(
        "loss",
        NetworkChaosSpec {
            action: NetworkChaosAction::Loss,
            mode: SelectorMode::Fixed,
            value: Some("2".into()),
            selector: PodSelectorSpec::labels_in("demo", &[("app", "web")]),
            duration: Some("30s".into()),
            direction: None,
            target: None,
            external_targets: None,
            device: None,
            target_device: None,
            delay: None,
            loss: Some(LossSpec { loss: "50".into(), correlation: None }),
            duplicate: None,
            corrupt: None,
            rate: None,
            bandwidth: None,
            remote_cluster: None,
        },
    );
    let v = serde_json::to_value(&chaos).unwrap();
    assert_eq!(v["spec"]["value"], json!("2"));
    assert_eq!(v["spec"]["loss"], json!({"loss": "50"}));
    assert_eq!(v["spec"].as_object().unwrap().len(), 6, "only set fields: {v}");
    assert_eq!(ChaosResource::Network(chaos).action(), "loss");
}

// --- CRDs ----------------------------------------------------------------------------------

#[test]
fn committed_crd_manifests_equal_the_generator() {
    for kind in ChaosKind::ALL {
        let path = repo_root().join(crd::MANIFEST_DIR).join(crd::file_name(kind));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            committed,
            crd::manifest_yaml(kind).unwrap(),
            "{} is stale: run `cargo run -p hadrill -- crds --out-dir {}`",
            path.display(),
            crd::MANIFEST_DIR
        );
    }
}

#[test]
fn crds_have_chaos_mesh_names_scope_and_no_status_subresource() {
    for kind in ChaosKind::MESH {
        let def = crd::definition(kind);
        let name = def.metadata.name.clone().unwrap();
        assert_eq!(name, format!("{}.chaos-mesh.org", kind.plural()));
        assert_eq!(def.spec.group, "chaos-mesh.org");
        assert_eq!(def.spec.scope, "Namespaced");
        assert_eq!(def.spec.names.kind, kind.as_str());
        assert_eq!(def.spec.names.plural, kind.plural());
        assert_eq!(def.spec.names.singular.as_deref(), Some(kind.plural()));
        assert_eq!(def.spec.names.list_kind, Some(format!("{}List", kind.as_str())));
        assert_eq!(def.spec.names.short_names, None);
        assert_eq!(def.spec.versions.len(), 1);
        let v = &def.spec.versions[0];
        assert_eq!((v.name.as_str(), v.served, v.storage), ("v1alpha1", true, true));
        assert!(v.subresources.is_none(), "{kind} must have no status subresource");
        let schema = crd::schema(kind);
        assert_eq!(schema["required"], json!(["spec"]));
        assert_eq!(schema["properties"]["status"]["required"], json!(["experiment"]));
        let text = serde_json::to_string(schema).unwrap();
        assert!(!text.contains("nullable") && !text.contains("\"title\""), "{kind}: {text}");
    }
    let spec = &crd::schema(ChaosKind::NetworkChaos)["properties"]["spec"];
    assert_eq!(spec["required"], json!(["action", "mode", "selector"]));
    assert_eq!(spec["properties"]["direction"]["default"], json!("to"));
    assert_eq!(spec["properties"]["direction"]["enum"], json!(["to", "from", "both"]));
    assert_eq!(
        spec["properties"]["delay"]["properties"]["latency"]["pattern"],
        json!(r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$")
    );
    let stress = &crd::schema(ChaosKind::StressChaos)["properties"]["spec"];
    assert_eq!(stress["required"], json!(["mode", "selector"]));
    assert_eq!(
        stress["properties"]["stressors"]["properties"]["cpu"]["properties"]["workers"]["maximum"],
        json!(8192.0)
    );
}

#[test]
fn crd_schemas_are_structural_and_accept_every_example() {
    for kind in ChaosKind::ALL {
        sim::api::schema::check_structural(crd::schema(kind)).unwrap_or_else(|e| panic!("{kind}: {e:#?}"));
    }
    for ex in examples() {
        let kind = ChaosKind::from_kind(ex["kind"].as_str().unwrap()).unwrap();
        let mut obj = ex.clone();
        let pruned = sim::api::schema::default_prune_validate(crd::schema(kind), &mut obj)
            .unwrap_or_else(|e| panic!("{}: {e:?}", ex["metadata"]["name"]));
        assert!(pruned.is_empty(), "pruned {pruned:?}");
    }
}

#[test]
fn crd_schema_refuses_status_without_experiment_and_defaults_direction() {
    let mut obj = example("web-loss");
    obj["status"] = json!({});
    assert!(sim::api::schema::default_prune_validate(crd::schema(ChaosKind::NetworkChaos), &mut obj).is_err());

    let mut obj = example("web-loss");
    sim::api::schema::default_prune_validate(crd::schema(ChaosKind::NetworkChaos), &mut obj).unwrap();
    assert_eq!(obj["spec"]["direction"], json!("to"));

    let mut obj = example("kill-one-web");
    obj["spec"]["selector"]["labelSelector"] = json!({"app": "web"});
    let pruned = sim::api::schema::default_prune_validate(crd::schema(ChaosKind::PodChaos), &mut obj).unwrap();
    assert_eq!(pruned, vec!["spec.selector.labelSelector".to_string()], "the API server drops the typo silently");
}

// --- validation ------------------------------------------------------------------------------

/// Applies `edit` to example `name` and expects validation to fail with an error at `path`
/// whose message contains `expect`.
fn refused(name: &str, path: &str, expect: &str, edit: impl FnOnce(&mut Value)) -> ValidationErrors {
    refused_with(name, path, expect, &demo(), edit)
}

fn refused_with(
    name: &str,
    path: &str,
    expect: &str,
    options: &ValidateOptions,
    edit: impl FnOnce(&mut Value),
) -> ValidationErrors {
    let mut obj = example(name);
    edit(&mut obj);
    let err = match validate_value(&obj, options) {
        Ok(v) => panic!("{name} after the edit should be refused at {path}, but passed: {:?}", v.warnings),
        Err(e) => e,
    };
    assert!(
        err.errors.iter().any(|e| e.path == path && e.message.contains(expect)),
        "expected an error at {path} containing {expect:?}, got:\n{err}"
    );
    let text = err.to_string();
    assert!(text.contains(path), "the message names the field: {text}");
    err
}

#[test]
fn invalid_pod_chaos_is_refused_naming_the_field() {
    refused("kill-one-web", "spec.mode", "unknown variant `some`", |o| o["spec"]["mode"] = json!("some"));
    refused("kill-one-web", "spec.action", "unknown variant `pod-restart`", |o| {
        o["spec"]["action"] = json!("pod-restart")
    });
    refused("kill-one-web", "spec.action", "required field is missing", |o| {
        o["spec"].as_object_mut().unwrap().remove("action");
    });
    refused("kill-one-web", "spec.gracePeriod", "must be 0 or more", |o| o["spec"]["gracePeriod"] = json!(-1));
    refused("kill-web-container", "spec.containerNames", "required with action container-kill", |o| {
        o["spec"].as_object_mut().unwrap().remove("containerNames");
    });
    refused("fail-web-30s", "spec.value", "expected an integer string", |o| o["spec"]["value"] = json!("two"));
    refused("fail-web-30s", "spec.value", "must be greater than 0", |o| o["spec"]["value"] = json!("0"));
    refused("fail-web-30s", "spec.value", "quote the number", |o| o["spec"]["value"] = json!(2));
    refused("fail-web-30s", "spec.value", "required with mode `fixed`", |o| {
        o["spec"].as_object_mut().unwrap().remove("value");
    });
    refused("fail-web-30s", "spec.value", "without `%`", |o| {
        o["spec"]["mode"] = json!("fixed-percent");
        o["spec"]["value"] = json!("50%");
    });
    refused("fail-web-30s", "spec.value", "from 1 to 100", |o| {
        o["spec"]["mode"] = json!("random-max-percent");
        o["spec"]["value"] = json!("101");
    });
    refused("fail-web-30s", "spec.duration", "Go duration", |o| o["spec"]["duration"] = json!("1d"));
    refused("fail-web-30s", "spec.duration", "positive", |o| o["spec"]["duration"] = json!("-30s"));
    refused("kill-one-web", "spec.remoteCluster", "not supported", |o| o["spec"]["remoteCluster"] = json!("other"));
    refused("kill-one-web", "status", "controller writes status", |o| {
        o["status"] = json!({"experiment": {}});
    });
    refused("kill-one-web", "metadata.name", "DNS-1123", |o| o["metadata"]["name"] = json!("Kill_Web"));
}

#[test]
fn selectors_must_narrow_and_stay_in_the_allowed_namespaces() {
    refused("kill-one-web", "spec.selector.labelSelectors", "selects every pod of the namespace", |o| {
        o["spec"]["selector"].as_object_mut().unwrap().remove("labelSelectors");
    });
    refused("kill-one-web", "spec.selector.labelSelectors", "selects every pod", |o| {
        o["spec"]["selector"]["labelSelectors"] = json!({});
    });
    // The typo Chaos Mesh's API server would prune, leaving a namespace-wide selector.
    let err = refused("kill-one-web", "spec.selector.labelSelector", "did you mean `labelSelectors`?", |o| {
        let sel = o["spec"]["selector"].as_object_mut().unwrap();
        let labels = sel.remove("labelSelectors").unwrap();
        sel.insert("labelSelector".into(), labels);
    });
    assert!(err.has_path("spec.selector.labelSelectors"), "{err}");
    refused("kill-one-web", "spec.selector.namespaces[0]", "not one of this run's namespaces (demo)", |o| {
        o["spec"]["selector"]["namespaces"] = json!(["kube-system"]);
    });
    refused("kill-one-web", "metadata.namespace", "not one of this run's namespaces", |o| {
        o["metadata"]["namespace"] = json!("prod");
    });
    refused("kill-web-container", "spec.selector.pods.prod", "not one of this run's namespaces", |o| {
        o["spec"]["selector"]["pods"] = json!({"prod": ["web-0"]});
    });
    refused("kill-one-web", "spec.selector.expressionSelectors[0].values", "non-empty with operator In", |o| {
        o["spec"]["selector"]["expressionSelectors"] = json!([{"key": "tier", "operator": "In"}]);
    });
    refused("kill-one-web", "spec.selector.expressionSelectors[0].operator", "expected one of In, NotIn", |o| {
        o["spec"]["selector"]["expressionSelectors"] = json!([{"key": "tier", "operator": "Equals", "values": ["a"]}]);
    });
    refused("kill-one-web", "spec.selector.podPhaseSelectors[0]", "expected one of Pending", |o| {
        o["spec"]["selector"]["podPhaseSelectors"] = json!(["running"]);
    });
    refused("kill-one-web", "spec.selector.labelSelectors.app", "label value", |o| {
        o["spec"]["selector"]["labelSelectors"] = json!({"app": "-web"});
    });
    refused_with(
        "kill-one-web",
        "spec.selector.namespaces[0]",
        "allows no namespaces",
        &ValidateOptions::default(),
        |_| {},
    );

    // Explicitly allowed, a namespace-wide selector passes.
    let mut obj = example("kill-one-web");
    obj["spec"]["selector"].as_object_mut().unwrap().remove("labelSelectors");
    validate_value(&obj, &demo().with_namespace_wide_selector(true)).unwrap();
    // Selecting by node narrows too.
    obj["spec"]["selector"]["nodes"] = json!(["hadrill-worker"]);
    validate_value(&obj, &demo()).unwrap();
}

#[test]
fn invalid_network_chaos_is_refused_naming_the_field() {
    refused("web-loss", "spec.loss", "required with action loss", |o| {
        o["spec"].as_object_mut().unwrap().remove("loss");
    });
    refused("web-loss", "spec.loss.loss", "required field is missing", |o| {
        o["spec"]["loss"] = json!({"correlation": "0"})
    });
    refused("web-loss", "spec.loss.loss", "without `%`", |o| o["spec"]["loss"]["loss"] = json!("25%"));
    refused("web-loss", "spec.loss.loss", "from 0 to 100", |o| o["spec"]["loss"]["loss"] = json!("150"));
    refused("web-loss", "spec.loss.correlation", "from 0 to 100", |o| o["spec"]["loss"]["correlation"] = json!("x"));
    refused("web-loss", "spec.loss.loss", "expected a string", |o| o["spec"]["loss"]["loss"] = json!(25));
    refused("web-delay", "spec.delay.latency", "one unit", |o| o["spec"]["delay"]["latency"] = json!("1m30s"));
    refused("web-delay", "spec.delay.jitter", "one unit", |o| o["spec"]["delay"]["jitter"] = json!("10"));
    refused("web-delay", "spec.delay", "required with action delay", |o| {
        o["spec"].as_object_mut().unwrap().remove("delay");
    });
    refused("web-delay", "spec.target", "required with direction from", |o| o["spec"]["direction"] = json!("from"));
    refused("web-delay", "spec.direction", "unknown variant `out`", |o| o["spec"]["direction"] = json!("out"));
    refused("web-external-delay", "spec.externalTargets", "only allowed with direction to", |o| {
        o["spec"]["direction"] = json!("both");
        o["spec"]["target"] = json!({"mode": "all", "selector": {"labelSelectors": {"app": "db"}}});
    });
    refused("web-db-partition", "spec.target.selector.labelSelectors", "selects every pod", |o| {
        o["spec"]["target"]["selector"] = json!({"namespaces": ["demo"]});
    });
    refused("web-db-partition", "spec.target.value", "required with mode `fixed`", |o| {
        o["spec"]["target"]["mode"] = json!("fixed")
    });
    refused("web-db-partition", "spec.target.selector.namespaces[0]", "not one of this run's namespaces", |o| {
        o["spec"]["target"]["selector"]["namespaces"] = json!(["other"]);
    });
    refused("web-loss", "spec.bandwidth.rate", "bps", |o| {
        o["spec"]["action"] = json!("bandwidth");
        o["spec"]["bandwidth"] = json!({"rate": "fast", "limit": 100, "buffer": 100});
    });
    refused("web-loss", "spec.delay", "netem needs at least one", |o| {
        o["spec"]["action"] = json!("netem");
        o["spec"].as_object_mut().unwrap().remove("loss");
    });
    // partition needs no target with direction both (from/both rule is not for partition).
    let mut obj = example("web-db-partition");
    obj["spec"].as_object_mut().unwrap().remove("target");
    let v = validate_value(&obj, &demo()).unwrap();
    assert!(v.warnings.iter().any(|w| w.path == "spec.target" && w.message.contains("DNS")), "{:?}", v.warnings);
}

#[test]
fn invalid_stress_chaos_is_refused_naming_the_field() {
    refused("web-cpu", "spec.stressors", "cpu and/or memory", |o| {
        o["spec"].as_object_mut().unwrap().remove("stressors");
    });
    refused("web-cpu", "spec.stressors", "cpu and/or memory", |o| o["spec"]["stressors"] = json!({}));
    refused("web-cpu", "spec.stressors.cpu.workers", "1 to 8192", |o| {
        o["spec"]["stressors"]["cpu"]["workers"] = json!(0)
    });
    refused("web-cpu", "spec.stressors.cpu.workers", "1 to 8192", |o| {
        o["spec"]["stressors"]["cpu"]["workers"] = json!(9000)
    });
    refused("web-cpu", "spec.stressors.cpu.load", "0 to 100", |o| o["spec"]["stressors"]["cpu"]["load"] = json!(120));
    refused("web-cpu", "spec.stressors.cpu.workers", "required field is missing", |o| {
        o["spec"]["stressors"]["cpu"] = json!({"load": 10});
    });
    refused("web-mem", "spec.stressors.memory.size", "256MB", |o| {
        o["spec"]["stressors"]["memory"]["size"] = json!("lots")
    });
    refused("web-mem", "spec.stressors.memory.size", "256MB", |o| {
        o["spec"]["stressors"]["memory"]["size"] = json!("150%")
    });
    refused("web-mem", "spec.stressors.memory.oomScoreAdj", "-1000 to 1000", |o| {
        o["spec"]["stressors"]["memory"]["oomScoreAdj"] = json!(2000);
    });
    refused("web-mem", "spec.stressors.memory.time", "unknown field", |o| {
        o["spec"]["stressors"]["memory"]["time"] = json!("60s")
    });
    refused("web-cpu", "spec.action", "unknown field", |o| o["spec"]["action"] = json!("stress"));
    refused("web-cpu", "kind", "expected one of PodChaos, NetworkChaos, StressChaos", |o| o["kind"] = json!("IOChaos"));
    refused("web-cpu", "apiVersion", "expected chaos-mesh.org/v1alpha1", |o| {
        o["apiVersion"] = json!("chaos-mesh.org/v1")
    });

    let mut obj = example("web-cpu");
    obj["spec"]["stressngStressors"] = json!("--cpu 2");
    obj["spec"].as_object_mut().unwrap().remove("stressors");
    validate_value(&obj, &demo()).unwrap();
}

#[test]
fn warnings_flag_fields_chaos_mesh_ignores() {
    let mut obj = example("kill-one-web");
    obj["spec"]["duration"] = json!("30s");
    obj["spec"]["value"] = json!("3");
    let v = validate_value(&obj, &demo()).unwrap();
    let paths: Vec<&str> = v.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(paths.contains(&"spec.duration") && paths.contains(&"spec.value"), "{paths:?}");
}

#[test]
fn every_error_is_reported_at_once() {
    let mut obj = example("web-loss");
    obj["spec"]["loss"]["loss"] = json!("200");
    obj["spec"]["duration"] = json!("1d");
    obj["spec"]["selector"]["namespaces"] = json!(["prod"]);
    let err = validate_value(&obj, &demo()).unwrap_err();
    for path in ["spec.loss.loss", "spec.duration", "spec.selector.namespaces[0]"] {
        assert!(err.has_path(path), "{err}");
    }
    assert!(err.to_string().starts_with("NetworkChaos \"web-loss\" is invalid (3 errors):"), "{err}");
}
