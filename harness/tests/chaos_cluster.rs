//! The generated CRDs installed into the embedded cluster: every scenario and example is
//! created as a typed object, and the status is written as Chaos Mesh's controller does (a full
//! update, no status subresource).

mod common;

use common::examples;
use hadrill::chaos::model::{
    ChaosCondition, ChaosStatus, ExperimentStatus, NetworkChaos, PodChaos, PodChaosStatus, Record, StressChaos,
};
use hadrill::chaos::validate::parse_value;
use hadrill::chaos::{ChaosResource, ValidateOptions, crd};
use hadrill::scenarios::{Library, RenderOptions};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

async fn create(client: &kube::Client, ns: &str, resource: &ChaosResource) -> serde_json::Value {
    let pp = PostParams::default();
    let what = format!("{} {:?}", resource.kind(), resource.metadata().name);
    let created = match resource {
        ChaosResource::Pod(r) => {
            Api::<PodChaos>::namespaced(client.clone(), ns).create(&pp, r).await.map(serde_json::to_value)
        }
        ChaosResource::Network(r) => {
            Api::<NetworkChaos>::namespaced(client.clone(), ns).create(&pp, r).await.map(serde_json::to_value)
        }
        ChaosResource::Stress(r) => {
            Api::<StressChaos>::namespaced(client.clone(), ns).create(&pp, r).await.map(serde_json::to_value)
        }
        ChaosResource::Blade(r) => {
            Api::<hadrill::chaos::ChaosBlade>::all(client.clone()).create(&pp, r).await.map(serde_json::to_value)
        }
    };
    created.unwrap_or_else(|e| panic!("creating {what}: {e}")).unwrap()
}

/// The object as the API server stores it: with the CRD's defaults (direction, oomScoreAdj).
fn with_schema_defaults(resource: &ChaosResource) -> serde_json::Value {
    let mut value = resource.to_value();
    sim::api::schema::default_prune_validate(crd::schema(resource.kind()), &mut value).unwrap();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_and_examples_are_created_and_status_is_written_by_full_update() {
    sim::install_crypto_provider();
    let sim = sim::Sim::start(sim::SimConfig {
        chaos: sim::chaos::ChaosConfig { enabled: false, ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let client = sim.client().unwrap();

    crd::install(&client).await.unwrap();
    crd::install(&client).await.unwrap(); // idempotent
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for def in crd::definitions() {
        let stored = crds.get(def.metadata.name.as_deref().unwrap()).await.unwrap();
        // Chaos Mesh's kinds have no status subresource; chaosblade-operator's ChaosBlade has one.
        let cluster_scoped = stored.spec.scope == "Cluster";
        assert_eq!(stored.spec.versions[0].subresources.is_some(), cluster_scoped, "{:?}", def.metadata.name);
    }
    for ns in ["demo", "chaos"] {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.unwrap();
    }

    // Every scenario, rendered with its defaults, validated and created.
    let library = Library::builtin().unwrap();
    for s in library.scenarios() {
        let rendered = s.render(&RenderOptions::in_namespace("chaos")).unwrap();
        let (stored, warnings) =
            rendered.resource.create(&client, &ValidateOptions::for_namespaces(["chaos"])).await.unwrap();
        assert!(warnings.is_empty());
        let created = stored.to_value();
        assert!(created.get("status").is_none(), "{}: {created}", s.name);
        let expected = with_schema_defaults(&rendered.resource);
        assert_eq!(created["spec"], expected["spec"], "{}: the API server kept every field", s.name);
    }

    // Every example; the API server defaults `direction` as Chaos Mesh's CRD says.
    for ex in examples() {
        let resource = parse_value(&ex).unwrap();
        let created = create(&client, "demo", &resource).await;
        let mut expected = ex["spec"].clone();
        if ex["kind"] == "NetworkChaos" && expected.get("direction").is_none() {
            expected["direction"] = json!("to");
        }
        if let Some(memory) = expected.pointer_mut("/stressors/memory") {
            memory["oomScoreAdj"] = json!(0);
        }
        assert_eq!(created["spec"], expected, "{}", ex["metadata"]["name"]);
    }

    // The controller's view: read, set status, replace the whole object.
    let pods: Api<PodChaos> = Api::namespaced(client.clone(), "demo");
    let mut chaos = pods.get("kill-one-web").await.unwrap();
    assert!(chaos.status.is_none());
    chaos.status = Some(PodChaosStatus {
        conditions: Some(vec![
            ChaosCondition { r#type: "AllInjected".into(), status: "True".into(), reason: None },
            ChaosCondition { r#type: "Selected".into(), status: "True".into(), reason: None },
        ]),
        experiment: Some(ExperimentStatus {
            desired_phase: Some(hadrill::chaos::model::DesiredPhase::Run),
            container_records: Some(vec![Record {
                id: "demo/web-0".into(),
                selector_key: ".".into(),
                phase: "Injected".into(),
                injected_count: 1,
                recovered_count: 0,
                events: None,
            }]),
        }),
    });
    pods.replace("kill-one-web", &PostParams::default(), &chaos).await.unwrap();
    let read = pods.get("kill-one-web").await.unwrap();
    let status = read.status.as_ref().expect("status kept: there is no status subresource");
    assert!(status.injected());
    assert_eq!(status.records()[0].id, "demo/web-0");

    // A create carrying a status without `experiment` is refused by the schema.
    let mut with_status = serde_json::to_value(&chaos).unwrap();
    with_status["metadata"] = json!({"name": "with-status"});
    with_status["status"] = json!({});
    let obj: PodChaos = serde_json::from_value(with_status).unwrap();
    assert!(pods.create(&PostParams::default(), &obj).await.is_err());

    // Nothing invalid reaches the API server.
    let mut wide = parse_value(&common::example("kill-one-web")).unwrap();
    wide.metadata_mut().name = Some("wide".into());
    if let ChaosResource::Pod(p) = &mut wide {
        p.spec.selector.label_selectors = None;
    }
    let err = wide.create(&client, &ValidateOptions::for_namespaces(["demo"])).await.unwrap_err();
    assert!(err.to_string().contains("spec.selector.labelSelectors"), "{err}");
    assert!(pods.get_opt("wide").await.unwrap().is_none());

    pods.delete("kill-one-web", &DeleteParams::default()).await.unwrap();
    sim.stop().await;
}
