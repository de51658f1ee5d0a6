//! The Makefile's real-cluster targets run for real against recording stand-ins for docker,
//! kind, helm, kubectl and hadrill (tests/standins/): the exact commands and their order for
//! `chaos-nightly` (create, Chaos Mesh, the chaosblade-operator, images, deploy, the features,
//! delete), for a step that fails (logs saved, cluster deleted, the failure kept) and for Ctrl-C
//! (SIGINT to the whole process group, as a terminal sends it: logs saved, cluster deleted), and
//! `cluster-up` reusing a cluster that exists.

mod standins;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use standins::{StandIns, assert_commands, interrupt};

/// `make TARGETS` in the source tree, with the stand-ins first on PATH, the kubeconfig in the
/// scratch directory and `hadrill` a stand-in too; a process group of its own.
fn make(s: &StandIns, targets: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("make");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .arg("--no-print-directory")
        .args(targets)
        .arg(format!("KIND_KUBECONFIG={}", kubeconfig(s)))
        .arg(format!("HADRILL={}", s.bin().join("hadrill").display()))
        .env("PATH", s.path())
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // A terminal's Ctrl-C reaches a make whose SIGINT is not ignored; a test run started in the
    // background of a shell without job control (`nohup make test-under-load &`) inherits it
    // ignored, and make and the stand-ins would keep ignoring it.
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires; nothing else runs here.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            for sig in [libc::SIGINT, libc::SIGTERM] {
                if libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd
}

fn kubeconfig(s: &StandIns) -> String {
    s.dir.join("kind.kubeconfig").display().to_string()
}

fn stand_ins(name: &str) -> StandIns {
    let s = StandIns::new(name, None);
    s.script("hadrill", "exit 0\n");
    std::fs::write(s.dir.join("api.kubeconfig"), "apiVersion: v1\nkind: Config\n").expect("kubeconfig");
    s
}

fn make_available() -> bool {
    let found = std::process::Command::new("make").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("NOTICE: make is not installed; skipping the Makefile stand-in tests");
    }
    found
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `make cluster-up` creating the cluster, then `make chaos-mesh`.
fn up_and_chaos_mesh(kc: &str) -> Vec<String> {
    vec![
        "kind get clusters".into(),
        format!("kind create cluster --name hadrill --config kind-configs/multi-node.yaml --kubeconfig {kc} --wait 5m"),
        format!(
            "helm upgrade --install chaos-mesh chaos-mesh --repo https://charts.chaos-mesh.org --version 2.8.3 \
             --namespace chaos-mesh --create-namespace --values deploy/chaos-mesh/values-kind.yaml \
             --kubeconfig {kc} --wait --timeout 5m"
        ),
        format!(
            "kubectl --kubeconfig {kc} -n chaos-mesh rollout status deployment/chaos-controller-manager --timeout 5m"
        ),
        format!("kubectl --kubeconfig {kc} -n chaos-mesh rollout status daemonset/chaos-daemon --timeout 5m"),
        format!("kubectl --kubeconfig {kc} create --dry-run=server -f deploy/chaos-mesh/webhook-probe.yaml"),
    ]
}

/// `make chaosblade`: the operator for node faults and its DaemonSet.
fn chaosblade(kc: &str) -> Vec<String> {
    vec![
        format!(
            "helm upgrade --install chaosblade-operator \
             https://github.com/chaosblade-io/chaosblade-operator/releases/download/v1.7.4/chaosblade-operator-amd64-1.7.4.tgz \
             --namespace chaosblade --create-namespace --values deploy/chaosblade/values-kind.yaml \
             --kubeconfig {kc} --wait --timeout 5m"
        ),
        format!("kubectl --kubeconfig {kc} -n chaosblade rollout status daemonset/chaosblade-tool --timeout 5m"),
    ]
}

fn image_builds() -> Vec<String> {
    ["test-server", "controller", "sample"]
        .iter()
        .map(|i| format!("docker build --file deploy/docker/{i}.Dockerfile --tag hadrill/{i}:dev ."))
        .collect()
}

/// `make cluster-logs` then `make cluster-down`.
fn logs_and_down(kc: &str) -> Vec<String> {
    vec!["kind export logs reports/kind-logs --name hadrill".into(), delete(kc)]
}

fn delete(kc: &str) -> String {
    format!("kind delete cluster --name hadrill --kubeconfig {kc}")
}

#[test]
fn chaos_nightly_runs_every_step_in_order_and_deletes_the_cluster() {
    if !make_available() {
        return;
    }
    let s = stand_ins("make-ok");
    let kc = kubeconfig(&s);
    let out = make(&s, &["chaos-nightly"]).output().expect("make runs");
    assert!(out.status.success(), "{}", text(&out));
    let mut want = up_and_chaos_mesh(&kc);
    want.extend(chaosblade(&kc));
    want.extend(image_builds());
    want.push(
        "kind load docker-image --name hadrill hadrill/test-server:dev hadrill/controller:dev hadrill/sample:dev"
            .into(),
    );
    want.push(format!(
        "kubectl --kubeconfig {kc} apply --server-side --field-manager=hadrill-deploy -k deploy/overlays/kind"
    ));
    want.push(format!(
        "kubectl --kubeconfig {kc} -n hadrill-system rollout status deployment/hadrill-controller --timeout 3m"
    ));
    want.push(format!(
        "hadrill run --tags @nightly --cluster existing --kubeconfig {kc} --context kind-hadrill --allow-context kind-hadrill"
    ));
    want.push(delete(&kc));
    assert_commands(&s.commands(), &want);
    assert!(s.clusters().is_empty() && !Path::new(&kc).exists(), "the cluster and its kubeconfig are gone");
}

#[test]
fn a_failed_step_saves_the_logs_deletes_the_cluster_and_fails() {
    if !make_available() {
        return;
    }
    let s = stand_ins("make-fail");
    let kc = kubeconfig(&s);
    s.fail("docker build --file deploy/docker/controller.Dockerfile");
    let out = make(&s, &["chaos-nightly"]).output().expect("make runs");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("failing as told"), "{}", text(&out));
    let mut want = up_and_chaos_mesh(&kc);
    want.extend(chaosblade(&kc));
    want.extend(image_builds()[..2].iter().cloned());
    want.extend(logs_and_down(&kc));
    assert_commands(&s.commands(), &want);
    assert!(s.clusters().is_empty());
}

#[test]
fn ctrl_c_saves_the_logs_and_deletes_the_cluster() {
    if !make_available() {
        return;
    }
    let s = stand_ins("make-int");
    let kc = kubeconfig(&s);
    s.block("helm upgrade");
    let mut child = make(&s, &["chaos-nightly"]).spawn().expect("make starts");
    s.wait_blocked(Duration::from_secs(60));
    // The terminal's Ctrl-C: SIGINT to every process of the group (make, its shells, helm).
    interrupt(-i64::from(child.id()));
    let status = wait_at_most(&mut child, Duration::from_secs(60));
    assert!(!status.success(), "{status}");
    let mut want = up_and_chaos_mesh(&kc)[..3].to_vec();
    want.extend(logs_and_down(&kc));
    assert_commands(&s.commands(), &want);
    assert!(s.clusters().is_empty() && !Path::new(&kc).exists(), "the cluster and its kubeconfig are gone");
}

#[test]
fn cluster_up_reuses_an_existing_cluster() {
    if !make_available() {
        return;
    }
    let s = stand_ins("make-reuse");
    let kc = kubeconfig(&s);
    s.existing_cluster("hadrill");
    let out = make(&s, &["cluster-up"]).output().expect("make runs");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("kind cluster hadrill exists; reusing it"), "{}", text(&out));
    let want = ["kind get clusters".to_string(), format!("kind export kubeconfig --name hadrill --kubeconfig {kc}")];
    assert_commands(&s.commands(), &want);
    assert_eq!(s.clusters(), ["hadrill"]);
}

fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("make did not end within {limit:?} after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
