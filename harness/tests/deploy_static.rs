//! Real-cluster files checked without a cluster: deploy/ manifests and kustomizations,
//! Dockerfiles, kind configs, Chaos Mesh values, the Makefile and the workflows. Docker, kind
//! and helm are not needed; kubectl and make are used where present (CI has both).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use hadrill::chaos::ValidateOptions;
use hadrill::cluster::chaos_mesh::{self, Runtime};
use hadrill::cluster::container_images::{self, TAG};
use hadrill::cluster::images::PROJECT_IMAGES;
use hadrill::cluster::kind::{self, KindConfig, NodeRole};
use hadrill::cluster::kustomize::{self, KUSTOMIZATION, RenderedObject, split_image};
use hadrill::cluster::tools::Tool;
use hadrill::scenarios::{Library, RenderOptions};
use serde_json::Value;
use sim::api::resources::Validation;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repo root")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Directories under deploy/ holding a kustomization.
fn kustomization_dirs() -> Vec<PathBuf> {
    files(&root().join("deploy"), KUSTOMIZATION).iter().map(|f| f.parent().expect("dir").to_path_buf()).collect()
}

/// Validates a built-in object as the embedded cluster's API server does on create, with
/// kubectl's default `fieldValidation=Strict` (an unknown field is an error).
fn validate_builtin(o: &RenderedObject) -> Result<(), String> {
    let api_version = o.object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = o.object["kind"].as_str().unwrap_or_default();
    let types = sim::api::builtin::types();
    let Some(t) = types.iter().find(|t| t.group == group && t.version == version && t.kind == kind) else {
        return Err(format!("{kind} in {api_version} is not served by the embedded cluster"));
    };
    let Validation::Builtin(validate) = &t.validation else {
        return Err(format!("{kind}: not a built-in kind"));
    };
    let typed = validate(&o.object).map_err(|causes| format!("{causes:?}"))?;
    if !typed.unknown.is_empty() {
        return Err(format!("unknown fields {:?}", typed.unknown));
    }
    Ok(())
}

#[test]
fn every_manifest_under_deploy_is_rendered_by_a_kustomization_and_valid() {
    let dirs = kustomization_dirs();
    assert!(dirs.iter().any(|d| d.ends_with("deploy/controller")), "{dirs:?}");
    assert!(dirs.iter().any(|d| d.ends_with("deploy/overlays/kind")), "{dirs:?}");
    let mut covered: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in &dirs {
        let objects = kustomize::render(dir).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!objects.is_empty(), "{}: renders nothing", dir.display());
        for o in &objects {
            validate_builtin(o)
                .unwrap_or_else(|e| panic!("{} (from {} document {}): {e}", o.label(), o.source.display(), o.document));
            covered.insert(o.source.clone());
        }
        let k = yaml(&dir.strip_prefix(root()).expect("under root").join(KUSTOMIZATION).to_string_lossy());
        for p in k["patches"].as_array().into_iter().flatten() {
            covered.insert(dir.join(p["path"].as_str().expect("patch path")).canonicalize().expect("patch"));
        }
    }
    // Files that are not Kubernetes manifests of a kustomization, each checked elsewhere.
    let elsewhere = |p: &Path| {
        let rel = p.strip_prefix(root()).expect("under root").to_string_lossy().into_owned();
        rel.ends_with(KUSTOMIZATION)
            || rel.starts_with("deploy/crds/")
            || rel.starts_with("deploy/chaos-mesh/")
            || rel.starts_with("deploy/chaosblade/")
            || rel == "deploy/images.yaml"
    };
    for f in files(&root().join("deploy"), ".yaml").into_iter().chain(files(&root().join("deploy"), ".yml")) {
        let f = f.canonicalize().expect("file");
        assert!(
            elsewhere(&f) || covered.contains(&f),
            "{} is in no kustomization's resources or patches: `kubectl apply -k` would never deploy it",
            f.display()
        );
    }
}

#[test]
fn the_controller_base_is_the_whole_directory_in_apply_order() {
    let objects = kustomize::render(&root().join("deploy/controller")).expect("renders");
    let labels: Vec<String> = objects.iter().map(RenderedObject::label).collect();
    assert_eq!(
        labels,
        [
            "Namespace hadrill-system",
            "ServiceAccount hadrill-system/hadrill-controller",
            "ClusterRole hadrill-controller",
            "ClusterRoleBinding hadrill-controller",
            "Role hadrill-system/hadrill-controller-leader-election",
            "RoleBinding hadrill-system/hadrill-controller-leader-election",
            "Deployment hadrill-system/hadrill-controller",
        ]
    );
    let deployment = &objects[6].object;
    assert_eq!(deployment["spec"]["replicas"], 2);
}

#[test]
fn rendered_images_are_built_by_the_dockerfiles_and_known_to_the_image_map() {
    let external: BTreeSet<String> = yaml("deploy/images.yaml")["external"]
        .as_array()
        .expect("deploy/images.yaml: external is a list")
        .iter()
        .map(|v| v.as_str().expect("image").to_string())
        .collect();
    for e in &external {
        let (_, tag, digest) = split_image(e);
        assert!(digest.is_some() || tag.is_some_and(|t| t != "latest"), "{e}: pin a version");
    }
    let mut seen = BTreeSet::new();
    for dir in kustomization_dirs() {
        for o in kustomize::render(&dir).expect("renders") {
            for image in o.images() {
                let (name, tag, _) = split_image(&image);
                let project = PROJECT_IMAGES.iter().find(|p| p.image == name);
                match project {
                    Some(p) => {
                        assert_eq!(
                            tag,
                            Some(TAG),
                            "{}: {image} must be tagged {TAG} (what `make images` builds)",
                            o.label()
                        );
                        let dockerfile = root().join(container_images::dockerfile(p));
                        assert!(dockerfile.is_file(), "{image}: no {}", dockerfile.display());
                    }
                    None => assert!(
                        external.contains(&image),
                        "{} ({}) uses {image}: neither a project image (PROJECT_IMAGES) nor listed in deploy/images.yaml",
                        o.label(),
                        dir.display()
                    ),
                }
                seen.insert(image);
            }
        }
    }
    assert!(seen.contains("hadrill/controller:dev"), "{seen:?}");
}

#[test]
fn the_kind_overlay_equals_kubectl_kustomize() {
    let Ok(out) = Command::new("kubectl").args(["kustomize"]).arg(root().join("deploy/overlays/kind")).output() else {
        assert!(
            std::env::var("HADRILL_REQUIRE_KUBECTL").is_err(),
            "kubectl is required (HADRILL_REQUIRE_KUBECTL is set) but not found"
        );
        eprintln!("kubectl not found: the comparison with kubectl kustomize is skipped");
        return;
    };
    assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("yaml");
    let key = |v: &Value| {
        format!(
            "{} {} {}/{}",
            v["apiVersion"].as_str().unwrap_or_default(),
            v["kind"].as_str().unwrap_or_default(),
            v["metadata"]["namespace"].as_str().unwrap_or_default(),
            v["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let theirs: BTreeMap<String, Value> = theirs.into_iter().map(|v| (key(&v), v)).collect();
    let ours: BTreeMap<String, Value> = kustomize::render(&root().join("deploy/overlays/kind"))
        .expect("renders")
        .into_iter()
        .map(|o| (key(&o.object), o.object))
        .collect();
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
    for (k, v) in &ours {
        assert_eq!(v, &theirs[k], "{k} differs from kubectl kustomize");
    }
}

#[test]
fn dockerfiles_are_multi_stage_non_root_and_build_their_binary() {
    let mut expected = BTreeSet::new();
    for p in PROJECT_IMAGES {
        let rel = container_images::dockerfile(p);
        expected.insert(rel.clone());
        let text = read(&rel.to_string_lossy());
        let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert!(froms.len() >= 2, "{}: a build stage and a runtime stage", rel.display());
        let runtime = froms.last().expect("runtime stage");
        assert!(runtime.contains("distroless") && runtime.contains(":nonroot"), "{}: {runtime}", rel.display());
        assert!(text.contains("\nUSER 65532:65532\n"), "{}: runs as the non-root user 65532", rel.display());
        let build = format!("cargo build --release --locked -p {} --bin {}", p.package, p.binary);
        assert!(text.contains(&build), "{}: must run `{build}`", rel.display());
        let entry = format!("ENTRYPOINT [\"/usr/local/bin/{}\"]", p.binary);
        assert!(text.contains(&entry), "{}: must end with {entry}", rel.display());
        assert!(text.contains(&format!("COPY --from=build /out/{} /usr/local/bin/{}", p.binary, p.binary)));
        let ignore = read(&format!("{}.dockerignore", rel.display()));
        assert!(ignore.lines().any(|l| l.trim() == "target/"), "{}.dockerignore must leave target/ out", rel.display());
        // The binary is a workspace member's (the sample crate may not be merged yet).
        let manifest = root().join(p.package.strip_prefix("hadrill-").unwrap_or(p.package)).join("Cargo.toml");
        if manifest.is_file() {
            let cargo = std::fs::read_to_string(&manifest).expect("Cargo.toml");
            assert!(cargo.contains(&format!("name = \"{}\"", p.package)), "{}", manifest.display());
        }
    }
    let present: BTreeSet<PathBuf> = files(&root().join("deploy/docker"), ".Dockerfile")
        .iter()
        .map(|f| f.strip_prefix(root()).expect("under root").to_path_buf())
        .collect();
    assert_eq!(present, expected, "deploy/docker/ builds exactly PROJECT_IMAGES");
}

#[test]
fn kind_configs_parse_name_real_fields_and_pin_one_node_image() {
    let configs = files(&root().join("kind-configs"), ".yaml");
    assert_eq!(configs.len(), 2, "{configs:?}");
    let kind_socket = Runtime::Kind.socket();
    for f in &configs {
        let c = KindConfig::from_file(f).unwrap_or_else(|e| panic!("{e:#}"));
        let images: BTreeSet<_> =
            c.nodes.iter().map(|n| n.image.clone().expect("every node names its image")).collect();
        assert_eq!(images.len(), 1, "{}: one node image for all nodes", f.display());
        let image = images.first().expect("image");
        // Kubernetes 1.35 (the k8s-openapi feature v1_35), pinned by digest.
        assert!(image.starts_with("kindest/node:v1.35.") && image.contains("@sha256:"), "{image}");
        assert!(
            c.containerd_config_patches.iter().any(|p| p.contains(&format!("address = \"{kind_socket}\""))),
            "{}: the containerd socket Chaos Mesh's values name",
            f.display()
        );
        let text = std::fs::read_to_string(f).expect("read");
        assert!(text.contains("kind v0.33.0") && text.contains(hadrill::cluster::tools::KIND_VERSION));
    }
    let multi = KindConfig::from_file(&root().join(kind::DEFAULT_CONFIG)).expect("multi-node");
    let roles: Vec<NodeRole> = multi.nodes.iter().map(|n| n.role).collect();
    assert_eq!(roles, [NodeRole::ControlPlane, NodeRole::Worker, NodeRole::Worker, NodeRole::Worker]);
    let zones: BTreeSet<&str> = multi.nodes[1..]
        .iter()
        .map(|n| n.labels.get("topology.kubernetes.io/zone").map(String::as_str).expect("worker zone"))
        .collect();
    assert_eq!(zones.len(), 3, "one zone per worker: {zones:?}");
    assert_eq!(multi.workload_nodes(), 3);
    let single = KindConfig::from_file(&root().join("kind-configs/single-node.yaml")).expect("single-node");
    assert_eq!(single.nodes.len(), 1);
    assert_eq!(single.workload_nodes(), 1);
}

#[test]
fn chaos_mesh_values_name_the_runtime_socket_and_turn_the_dashboard_off() {
    for runtime in [Runtime::Kind, Runtime::K3s] {
        let rel = runtime.values_file();
        let v = yaml(&rel.to_string_lossy());
        assert_eq!(v["chaosDaemon"]["runtime"], "containerd", "{}", rel.display());
        assert_eq!(v["chaosDaemon"]["socketPath"], runtime.socket(), "{}", rel.display());
        assert_eq!(v["dashboard"]["create"], false, "{}", rel.display());
        let pause = v["controllerManager"]["podChaos"]["podFailure"]["pauseImage"].as_str().expect("pauseImage");
        let (name, tag, _) = split_image(pause);
        assert!(name.starts_with("registry.k8s.io/") && tag.is_some_and(|t| t != "latest"), "{pause}");
        let top: BTreeSet<&str> = v.as_object().expect("mapping").keys().map(String::as_str).collect();
        // Top-level keys of the chart's values.yaml that these files may set.
        let known: BTreeSet<&str> = ["chaosDaemon", "dashboard", "dnsServer", "controllerManager"].into();
        assert!(top.is_subset(&known), "{}: {top:?}", rel.display());
    }
    assert_eq!(Runtime::K3s.socket(), "/run/k3s/containerd/containerd.sock");
}

/// Validates `object` against the CRD schema the embedded cluster serves for its kind.
fn validate_against_crd(object: &Value) -> Result<(), String> {
    let kind = object["kind"].as_str().and_then(hadrill::chaos::ChaosKind::from_kind).ok_or("not a chaos kind")?;
    let crd = yaml(&format!("{}/{}", hadrill::chaos::crd::MANIFEST_DIR, hadrill::chaos::crd::file_name(kind)));
    let version = crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "v1alpha1"))
        .ok_or("no v1alpha1 version")?;
    let mut pruned = object.clone();
    let dropped = sim::api::schema::default_prune_validate(&version["schema"]["openAPIV3Schema"], &mut pruned)
        .map_err(|errors| format!("{errors:?}"))?;
    if !dropped.is_empty() {
        return Err(format!("unknown fields {dropped:?}"));
    }
    Ok(())
}

#[test]
fn every_scenario_and_the_webhook_probe_are_valid_chaos_mesh_objects() {
    let library = Library::builtin().unwrap_or_else(|e| panic!("{e}"));
    assert!(!library.scenarios().is_empty());
    for s in library.scenarios() {
        let rendered = s.render(&RenderOptions::in_namespace("demo")).unwrap_or_else(|e| panic!("{e}"));
        let value = rendered.resource.to_value();
        validate_against_crd(&value).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        hadrill::chaos::validate::validate_value(&value, &ValidateOptions::for_namespaces(["demo"]))
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
    }
    let probe: Value = serde_saphyr::from_str(chaos_mesh::WEBHOOK_PROBE).expect("probe yaml");
    validate_against_crd(&probe).expect("the probe fits the CRD");
}

/// The Makefile's rules: target name → prerequisites.
fn make_targets() -> BTreeMap<String, String> {
    read("Makefile")
        .lines()
        .filter(|l| {
            !l.starts_with(['\t', '#', ' ', '.']) && !l.contains(":=") && !l.contains(" = ") && !l.contains("?=")
        })
        .filter_map(|l| l.split_once(':'))
        .map(|(t, rest)| (t.trim().to_string(), rest.split("##").next().unwrap_or("").trim().to_string()))
        .collect()
}

/// The value of `NAME ?= value` / `NAME := value` / `NAME = value` in the Makefile.
fn make_var(name: &str) -> String {
    read("Makefile")
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim_end_matches(['?', ':', ' ']) == name).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("Makefile: no variable {name}"))
}

#[test]
fn the_makefile_has_every_target_and_the_harness_values() {
    let targets = make_targets();
    for t in [
        "test",
        "demo",
        "bench",
        "build",
        "lint",
        "cluster-up",
        "cluster-down",
        "chaos-mesh",
        "images",
        "deploy",
        "features-kind",
        "chaos-nightly",
        "clean",
    ] {
        assert!(targets.contains_key(t), "Makefile: no target {t} ({:?})", targets.keys());
    }
    for tool in Tool::ALL {
        assert_eq!(make_var(&format!("HINT_{}", tool.program())), tool.install_hint(), "Makefile HINT_{tool}");
    }
    assert_eq!(make_var("CHAOS_MESH_VERSION"), chaos_mesh::CHART_VERSION);
    assert_eq!(make_var("CHAOS_MESH_VALUES"), Runtime::Kind.values_file().to_string_lossy());
    assert_eq!(make_var("KIND_CONFIG"), kind::DEFAULT_CONFIG);
    assert_eq!(make_var("CLUSTER"), kind::DEFAULT_NAME);
    assert_eq!(make_var("TAG"), TAG);
    let images: Vec<String> = make_var("IMAGES").split_whitespace().map(|i| format!("hadrill/{i}")).collect();
    let project: Vec<String> = PROJECT_IMAGES.iter().map(|p| p.image.to_string()).collect();
    assert_eq!(images, project, "Makefile IMAGES vs PROJECT_IMAGES");
}

fn make() -> Command {
    let mut cmd = Command::new("make");
    cmd.current_dir(root()).arg("--no-print-directory");
    cmd
}

#[test]
fn make_n_chaos_nightly_lists_the_steps_in_order_and_always_tears_down() {
    let out = make().args(["-n", "chaos-nightly"]).output().expect("make is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let steps = [
        "kind create cluster --name hadrill --config kind-configs/multi-node.yaml",
        "helm upgrade --install chaos-mesh chaos-mesh --repo https://charts.chaos-mesh.org --version 2.8.3",
        "rollout status daemonset/chaos-daemon",
        "create --dry-run=server -f deploy/chaos-mesh/webhook-probe.yaml",
        "docker build --file deploy/docker/$i.Dockerfile --tag hadrill/$i:dev",
        "kind load docker-image --name hadrill hadrill/test-server:dev hadrill/controller:dev hadrill/sample:dev",
        "apply --server-side --field-manager=hadrill-deploy -k deploy/overlays/kind",
        "run --tags '@nightly'",
        "kind delete cluster --name hadrill",
    ];
    let mut from = 0;
    for step in steps {
        let at = text[from..]
            .find(step)
            .unwrap_or_else(|| panic!("`make -n chaos-nightly` lacks (in order) {step}:\n{text}"));
        from += at + step.len();
    }
    // The teardown runs whatever the status, and the status is what make exits with.
    assert!(text.contains("|| status=$?"), "{text}");
    assert!(text.contains("cluster-down || true; \\\nexit $status"), "{text}");
    assert!(!text.contains("reports -mindepth"), "the nightly keeps reports/");
}

/// `make -n TARGET` with continuation lines joined and runs of blanks collapsed.
fn dry_run(target: &str) -> String {
    let out = make().args(["-n", target]).output().expect("make is installed");
    assert!(out.status.success(), "make -n {target}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).replace("\\\n", " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_makefile_runs_the_same_commands_as_the_kind_provider() {
    // The provider with paths relative to the repository root, as the Makefile writes them.
    let mut options = kind::KindOptions::new(Path::new(""));
    options.kubeconfig = PathBuf::from("reports/kind-hadrill.kubeconfig");
    let same = |target: &str, command: String| {
        let text = dry_run(target);
        assert!(text.contains(&command), "make -n {target} does not run `{command}`:\n{text}");
    };
    same("cluster-up", options.create_command().to_string());
    same("cluster-up", options.export_kubeconfig_command().to_string());
    same("cluster-down", options.delete_command().to_string());
    same("images", options.load_command().expect("images").to_string());
    let values = Runtime::Kind.values_file();
    same("chaos-mesh", chaos_mesh::helm_install(&values, &options.kubeconfig).to_string());
    for build in &options.images {
        // The Makefile loops over the names; compare the command with the loop variable filled in.
        let short = build.reference.trim_start_matches("hadrill/").trim_end_matches(":dev");
        let generic = container_images::docker_build(build, Path::new(".")).to_string();
        assert_eq!(
            generic,
            format!("docker build --file ./deploy/docker/{short}.Dockerfile --tag hadrill/{short}:dev ."),
            "the provider's build command"
        );
    }
    assert!(dry_run("images").contains("docker build --file deploy/docker/$i.Dockerfile --tag hadrill/$i:dev ."));
}

#[test]
fn every_target_dry_runs() {
    for target in make_targets().keys().filter(|t| !t.contains('%')) {
        let out = make().args(["-n", target]).output().expect("make is installed");
        assert!(out.status.success(), "make -n {target}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_missing_tool_stops_make_with_the_install_command() {
    let empty = std::env::temp_dir().join(format!("hadrill-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("dir");
    let make_path = ["/usr/bin/make", "/bin/make", "/usr/local/bin/make"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("make is installed");
    for tool in Tool::ALL {
        let out = Command::new(make_path)
            .current_dir(root())
            .args(["--no-print-directory", &format!("require-{tool}")])
            .env("PATH", &empty)
            .output()
            .expect("make runs");
        assert!(!out.status.success(), "require-{tool} with an empty PATH");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("`{tool}` is not installed")) && err.contains(tool.install_hint()), "{err}");
    }
    std::fs::remove_dir_all(&empty).ok();
}

/// `make X` targets named in a workflow's `run:` scripts.
fn make_calls(script: &str) -> Vec<String> {
    let words: Vec<&str> = script.split_whitespace().collect();
    words.windows(2).filter(|w| w[0] == "make").map(|w| w[1].to_string()).filter(|t| !t.starts_with('-')).collect()
}

#[test]
fn workflows_are_valid_and_call_make_targets_that_exist() {
    let targets = make_targets();
    let dir = root().join(".github/workflows");
    let mut called: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files(&dir, ".yml") {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        let w: Value = serde_saphyr::from_str(&std::fs::read_to_string(&f).expect("read"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(w["name"].is_string(), "{name}: name");
        // `on` is a string key in YAML 1.2 (a boolean in YAML 1.1 parsers).
        assert!(w.get("on").or_else(|| w.get("true")).is_some(), "{name}: on");
        let jobs = w["jobs"].as_object().unwrap_or_else(|| panic!("{name}: jobs"));
        assert!(!jobs.is_empty());
        for (job, j) in jobs {
            assert!(j["runs-on"].is_string(), "{name} {job}: runs-on");
            for (i, step) in j["steps"].as_array().unwrap_or_else(|| panic!("{name} {job}: steps")).iter().enumerate() {
                let uses = step["uses"].as_str();
                let run = step["run"].as_str();
                assert!(uses.is_some() != run.is_some(), "{name} {job} step {i}: exactly one of uses/run");
                if let Some(u) = uses {
                    assert!(u.contains('@'), "{name} {job} step {i}: pin {u} to a version");
                }
                for t in run.map(make_calls).unwrap_or_default() {
                    assert!(targets.contains_key(&t), "{name} {job} step {i}: `make {t}` is no Makefile target");
                    called.entry(name.clone()).or_default().push(t);
                }
            }
        }
    }
    assert_eq!(called.get("ci.yml").map(Vec::as_slice), Some(&["build".to_string(), "lint".into(), "test".into()][..]));
    assert_eq!(called.get("chaos-nightly.yml").map(Vec::as_slice), Some(&["chaos-nightly".to_string()][..]));
    let nightly = read(".github/workflows/chaos-nightly.yml");
    let w: Value = serde_saphyr::from_str(&nightly).expect("yaml");
    let on = w.get("on").or_else(|| w.get("true")).expect("on");
    assert!(on["schedule"][0]["cron"].is_string(), "scheduled");
    let steps = w["jobs"]["chaos"]["steps"].as_array().expect("steps");
    let uses = |prefix: &str| steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)));
    let upload = uses("actions/upload-artifact@").expect("uploads reports");
    assert_eq!(upload["with"]["path"], "reports/");
    assert_eq!(upload["if"], "always()");
    let junit = uses("mikepenz/action-junit-report@").expect("publishes JUnit");
    assert_eq!(junit["with"]["report_paths"], "reports/junit.xml");
    assert_eq!(junit["if"], "always()");
}

/// The chaosblade-operator values pin the operator and tool images to the chart version the
/// Makefile installs, and keep the chaosblade-tool DaemonSet (which runs node faults) on.
#[test]
fn chaosblade_values_pin_the_installed_chart_version() {
    let values = yaml("deploy/chaosblade/values-kind.yaml");
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let version = makefile
        .lines()
        .find_map(|l| l.strip_prefix("CHAOSBLADE_VERSION ?= "))
        .expect("CHAOSBLADE_VERSION in the Makefile")
        .trim()
        .to_string();
    assert_eq!(values["operator"]["version"].as_str(), Some(version.as_str()));
    assert_eq!(values["blade"]["version"].as_str(), Some(version.as_str()));
    assert_eq!(values["daemonset"]["enable"], serde_json::json!(true));
    assert!(makefile.contains("cluster-up chaos-mesh chaosblade images deploy"), "chaos-nightly installs it");
}
