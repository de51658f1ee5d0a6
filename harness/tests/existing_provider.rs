//! The `existing` provider end to end without Docker: an embedded cluster stands in for the
//! user's cluster, reached through its kubeconfig context. A context outside the allow list
//! and a cluster that does not answer stop the run before any scenario; an allowed one runs
//! the scenarios of tests/fixtures/existing/ one at a time, each in a namespace of its own
//! that is removed when it ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hadrill::cluster::provider::ClusterFlags;
use hadrill::runner::{RunOptions, run_features};
use hadrill::settings::Settings;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::wait::await_condition;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/existing")
}

fn existing(reports: &Path, context: &str, kubeconfig: &Path, allow: bool) -> RunOptions {
    RunOptions {
        settings: Some(Settings::default().with_reports_dir(reports)),
        features: vec![fixture()],
        cluster: ClusterFlags {
            cluster: Some("existing".into()),
            context: Some(context.into()),
            allow_contexts: if allow { vec![context.into()] } else { Vec::new() },
            kubeconfig: Some(kubeconfig.to_path_buf()),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn run_namespaces(client: &kube::Client) -> Vec<Namespace> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.list(&ListParams::default().labels(hadrill::cluster::embedded::RUN_LABEL)).await.unwrap().items
}

#[test]
fn an_existing_cluster_is_used_only_when_allowed_and_each_scenario_cleans_up() {
    let reports = std::env::temp_dir().join(format!("hadrill-existing-{}", uuid::Uuid::new_v4().simple()));
    // The settings are passed in (none from the environment), so the shell's HADRILL_CLUSTER
    // and allow list cannot change what this test runs.
    std::fs::create_dir_all(&reports).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        sim::install_crypto_provider();
        let sim = sim::Sim::start(sim::SimConfig { nodes: 3, ..Default::default() }).await.unwrap();
        let client = sim.client().unwrap();
        let kubeconfig = reports.join("cluster.kubeconfig");
        sim.write_kubeconfig(&kubeconfig).unwrap();
        let context = sim.kubeconfig().current_context.expect("a context");

        // Not in the allow list: refused before anything runs or is written.
        let err = run_features(existing(&reports, &context, &kubeconfig, false)).await.expect_err("refused");
        let text = format!("{err:#}");
        assert!(text.contains("refusing") && text.contains(&format!("--allow-context {context}")), "{text}");
        assert!(!reports.join("junit.xml").exists(), "no scenario ran");
        assert!(!reports.join("metrics.json").exists(), "no scenario ran");
        assert!(run_namespaces(&client).await.is_empty());

        // Allowed, but nothing answers there: refused before any scenario too.
        let dead = reports.join("dead.kubeconfig");
        std::fs::write(
            &dead,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n\
             users:\n- name: u\n  user: {}\ncontexts:\n- name: dead\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        let err = run_features(existing(&reports, "dead", &dead, true)).await.expect_err("unreachable");
        assert!(format!("{err:#}").contains("does not answer"), "{err:#}");
        assert!(!reports.join("junit.xml").exists(), "no scenario ran");

        // Every scenario namespace that appears, seen by a watch for the run label.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let watch = {
            use futures::StreamExt as _;
            let seen = seen.clone();
            let config = kube::runtime::watcher::Config::default().labels(hadrill::cluster::embedded::RUN_LABEL);
            let stream = kube::runtime::watcher(Api::<Namespace>::all(client.clone()), config);
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::applied_objects(stream));
                while let Some(Ok(ns)) = stream.next().await {
                    seen.lock().unwrap().insert(ns.metadata.name.unwrap_or_default());
                }
            })
        };

        // Allowed: the scenarios run; the one needing 4 nodes fails saying what there is.
        let passed = run_features(existing(&reports, &context, &kubeconfig, true)).await.expect("the run");
        assert!(!passed, "the 4-node scenario fails");
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(reports.join("metrics.json")).unwrap()).unwrap();
        let scenarios = metrics["scenarios"].as_array().expect("scenarios");
        assert_eq!(scenarios.len(), 3, "{metrics:#}");
        let by_name = |prefix: &str| {
            scenarios.iter().find(|s| s["scenario"].as_str().unwrap().starts_with(prefix)).expect(prefix)
        };
        assert_eq!(by_name("A manifest applies")["passed"], true, "{metrics:#}");
        assert_eq!(by_name("A second scenario")["passed"], true, "{metrics:#}");
        let failure = by_name("More nodes")["failure"].as_str().expect("a failure");
        assert!(
            failure.contains(&format!("cluster of context {context:?} has 3 Ready schedulable node(s)"))
                && failure.contains("needs 4"),
            "{failure}"
        );

        // Both passing scenarios had a namespace of their own, and each is removed (they were
        // in the scenarios' ledgers); the failed one never got as far.
        let api: Api<Namespace> = Api::all(client.clone());
        for ns in run_namespaces(&client).await {
            assert!(ns.metadata.deletion_timestamp.is_some(), "{:?} is being deleted", ns.metadata.name);
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for name in &seen {
            assert!(name.starts_with("hadrill-"), "{name}");
            let gone = await_condition(api.clone(), name, |ns: Option<&Namespace>| ns.is_none());
            tokio::time::timeout(Duration::from_secs(60), gone).await.expect("deleted in time").unwrap();
        }
        watch.abort();
        let ledgers: Vec<_> = std::fs::read_dir(reports.join(".ledger"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(ledgers.is_empty(), "emptied ledgers are removed: {ledgers:?}");
        sim.stop().await;
    });
    std::fs::remove_dir_all(&reports).unwrap();
}
