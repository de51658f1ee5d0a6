//! `hadrill run --cluster kind` against recording stand-ins for docker, kind, helm and kubectl
//! (tests/standins/): the exact commands and their order for creating the cluster, building
//! and loading the images, installing Chaos Mesh and the chaosblade-operator, deploying, and deleting the cluster at the
//! end, after a failed step and after SIGINT; a cluster that existed before is reused and
//! kept. The stand-in kind hands out the kubeconfig of an embedded cluster, so everything
//! the provider does through the API (Chaos Mesh's webhook, the scenario) is real.

mod standins;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use futures::StreamExt as _;
use hadrill::cluster::existing::{ALLOW_ENV, CONTEXT_ENV};
use hadrill::cluster::provider::{CLUSTER_ENV, KEEP_ENV};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use standins::{StandIns, assert_commands, interrupt};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("source tree")
}

/// `hadrill run --cluster kind` of tests/fixtures/kind with the stand-ins on PATH.
fn hadrill(s: &StandIns) -> tokio::process::Command {
    hadrill_of(s, "kind")
}

/// `hadrill run --cluster kind` of tests/fixtures/`features` with the stand-ins on PATH.
fn hadrill_of(s: &StandIns, features: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hadrill"));
    let feature = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(features);
    cmd.arg("run")
        .arg(feature)
        .args(["--cluster", "kind", "--kind-config"])
        .arg(root().join("kind-configs/single-node.yaml"))
        .arg("--kubeconfig")
        .arg(s.dir.join("kind.kubeconfig"))
        .current_dir(root())
        .env("PATH", s.path())
        .env("HADRILL_REPORTS", s.dir.join("reports"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in [CLUSTER_ENV, KEEP_ENV, ALLOW_ENV, CONTEXT_ENV] {
        cmd.env_remove(var);
    }
    cmd
}

/// The commands of a run up to and including the deploy, for the cluster `created` or reused.
fn setup_commands(s: &StandIns, created: bool) -> Vec<String> {
    let (root, kc) = (root().display().to_string(), s.dir.join("kind.kubeconfig").display().to_string());
    let mut want = vec!["kind get clusters".to_string(), "kind get clusters".to_string()];
    want.push(if created {
        format!("kind create cluster --name hadrill --config {root}/kind-configs/single-node.yaml --kubeconfig {kc} --wait 5m")
    } else {
        format!("kind export kubeconfig --name hadrill --kubeconfig {kc}")
    });
    for image in ["test-server", "controller", "sample"] {
        want.push(format!(
            "docker build --file {root}/deploy/docker/{image}.Dockerfile --tag hadrill/{image}:dev {root}"
        ));
    }
    want.push(
        "kind load docker-image --name hadrill hadrill/test-server:dev hadrill/controller:dev hadrill/sample:dev"
            .into(),
    );
    want.push(format!(
        "helm upgrade --install chaos-mesh chaos-mesh --repo https://charts.chaos-mesh.org --version 2.8.3 \
         --namespace chaos-mesh --create-namespace --values {root}/deploy/chaos-mesh/values-kind.yaml \
         --kubeconfig {kc} --wait --timeout 5m"
    ));
    want.push(format!(
        "helm upgrade --install chaosblade-operator \
         https://github.com/chaosblade-io/chaosblade-operator/releases/download/v1.7.4/chaosblade-operator-amd64-1.7.4.tgz \
         --namespace chaosblade --create-namespace --values {root}/deploy/chaosblade/values-kind.yaml \
         --kubeconfig {kc} --wait --timeout 5m"
    ));
    want.push(format!("kubectl --kubeconfig {kc} -n chaosblade rollout status daemonset/chaosblade-tool --timeout 5m"));
    want.push(format!(
        "kubectl --kubeconfig {kc} apply --server-side --field-manager=hadrill-deploy -k {root}/deploy/overlays/kind"
    ));
    want.push(format!(
        "kubectl --kubeconfig {kc} -n hadrill-system rollout status deployment/hadrill-controller --timeout 3m"
    ));
    want
}

fn delete_command(s: &StandIns) -> String {
    format!("kind delete cluster --name hadrill --kubeconfig {}", s.dir.join("kind.kubeconfig").display())
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Sends SIGINT to `child` (a hadrill run) and checks that it ends, failing with `message`.
async fn interrupted(child: tokio::process::Child, message: &str) {
    interrupt(i64::from(child.id().expect("pid")));
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("hadrill ends after SIGINT")
        .expect("exit status");
    assert!(!out.status.success());
    assert!(text(&out).contains(message), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kind_provider_runs_its_commands_in_order_and_deletes_what_it_created() {
    sim::install_crypto_provider();
    let sim = sim::Sim::start(sim::SimConfig { nodes: 1, ..Default::default() }).await.expect("embedded cluster");
    let client = sim.client().expect("client");
    // What `helm --create-namespace` leaves behind: Chaos Mesh's namespace, where the provider
    // sends its webhook probe (the embedded cluster serves Chaos Mesh's CRDs itself).
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "chaos-mesh"}})).expect("ns");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
    let api = std::env::temp_dir().join(format!("hadrill-kind-api-{}.kubeconfig", uuid::Uuid::new_v4().simple()));
    sim.write_kubeconfig(&api).expect("kubeconfig");

    // Created, set up, the scenario run, deleted.
    let s = StandIns::new("kind-ok", Some(&api));
    let out = hadrill(&s).output().await.expect("hadrill runs");
    assert!(out.status.success(), "{}", text(&out));
    let mut want = setup_commands(&s, true);
    want.push(delete_command(&s));
    assert_commands(&s.commands(), &want);
    assert!(s.clusters().is_empty(), "{:?}", s.clusters());
    let junit = std::fs::read_to_string(s.dir.join("reports/junit.xml")).expect("the scenario ran");
    assert!(junit.contains("A manifest applies") && !junit.contains("<failure"), "{junit}");
    println!("created, set up, ran, deleted: {} commands", want.len());

    // Reused: never created, never deleted.
    let s = StandIns::new("kind-reuse", Some(&api));
    s.existing_cluster("hadrill");
    let out = hadrill(&s).output().await.expect("hadrill runs");
    assert!(out.status.success(), "{}", text(&out));
    assert_commands(&s.commands(), &setup_commands(&s, false));
    assert_eq!(s.clusters(), ["hadrill"]);
    assert!(text(&out).contains("it existed before the run"), "{}", text(&out));

    // A failed step (the second image build): the cluster is deleted at once, nothing else runs.
    let s = StandIns::new("kind-fail", Some(&api));
    s.fail(&format!("docker build --file {}/deploy/docker/controller.Dockerfile", root().display()));
    let out = hadrill(&s).output().await.expect("hadrill runs");
    assert!(!out.status.success());
    assert!(text(&out).contains("building image hadrill/controller:dev"), "{}", text(&out));
    let mut want = setup_commands(&s, true)[..5].to_vec();
    want.push(delete_command(&s));
    assert_commands(&s.commands(), &want);
    assert!(s.clusters().is_empty(), "{:?}", s.clusters());
    assert!(!s.dir.join("reports/junit.xml").exists(), "no scenario ran");

    // SIGINT while Helm installs Chaos Mesh: the cluster is deleted, once, and the run fails
    // saying it was interrupted.
    let s = StandIns::new("kind-int", Some(&api));
    s.block("helm upgrade");
    let child = hadrill(&s).spawn().expect("hadrill starts");
    tokio::task::block_in_place(|| s.wait_blocked(Duration::from_secs(120)));
    interrupted(child, "setting up the kind cluster \"hadrill\": interrupted by SIGINT").await;
    // The half-set-up cluster is deleted as it is dropped; kind is then asked whether a
    // cluster is left (one interrupted inside `kind create` would be), and none is.
    let mut want = setup_commands(&s, true)[..8].to_vec();
    want.push(delete_command(&s));
    want.push("kind get clusters".into());
    assert_commands(&s.commands(), &want);
    assert!(s.clusters().is_empty(), "{:?}", s.clusters());

    // SIGINT while a scenario runs: the cluster the run created is deleted, after everything
    // the set-up ran.
    let s = StandIns::new("kind-int-run", Some(&api));
    let deployments: Api<Deployment> = Api::all(client.clone());
    let config = watcher::Config::default().fields("metadata.name=dispatch-primary");
    let mut created = std::pin::pin!(watcher(deployments, config).applied_objects());
    let mut child = hadrill_of(&s, "kind-interrupted").spawn().expect("hadrill starts");
    // The scenario is under way once it has created the HA service's primary.
    let ns = tokio::select! {
        d = created.next() => d.expect("a Deployment").expect("watch").metadata.namespace.expect("namespaced"),
        status = child.wait() => panic!("hadrill ended before the scenario started: {status:?}\n{:?}", s.commands()),
        () = tokio::time::sleep(Duration::from_secs(300)) => panic!("the scenario did not start within 300 s"),
    };
    interrupted(child, "interrupted by SIGINT").await;
    let mut want = setup_commands(&s, true);
    want.push(delete_command(&s));
    assert_commands(&s.commands(), &want);
    assert!(s.clusters().is_empty(), "{:?}", s.clusters());
    println!("interrupted in scenario namespace {ns}: the cluster was deleted");

    std::fs::remove_file(&api).ok();
    sim.stop().await;
}
