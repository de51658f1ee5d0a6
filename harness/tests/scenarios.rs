//! The fault scenario library: loading, rendering, and where errors point.

mod common;

use common::repo_root;
use hadrill::chaos::{ChaosKind, ChaosResource, Validate, ValidateOptions};
use hadrill::scenarios::{BUILTIN, Library, ParamType, RenderOptions, Scenario, ScenarioError};
use serde_json::json;

fn library() -> Library {
    Library::builtin().unwrap_or_else(|e| panic!("{e}"))
}

fn render(name: &str, set: &[(&str, &str)]) -> Result<hadrill::scenarios::Rendered, ScenarioError> {
    let mut options = RenderOptions::in_namespace("demo");
    for (k, v) in set {
        options = options.set(k, v);
    }
    library().render(name, &options)
}

fn render_err(name: &str, set: &[(&str, &str)]) -> String {
    match render(name, set) {
        Ok(r) => panic!("{name} with {set:?} should fail, rendered {:?}", r.resource),
        Err(e) => e.to_string(),
    }
}

/// The 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in {file}")) + 1
}

#[test]
fn the_builtin_library_is_the_scenarios_directory() {
    let dir = repo_root().join("scenarios");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("scenarios/{n}"))
        .collect();
    on_disk.sort();
    let builtin: Vec<String> = BUILTIN.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(builtin, on_disk, "add new scenario files to hadrill::scenarios::BUILTIN");
    for (file, text) in BUILTIN {
        assert_eq!(&std::fs::read_to_string(repo_root().join(file)).unwrap(), text);
    }
    let from_dir = Library::load_dir(&dir).unwrap();
    assert_eq!(from_dir.names(), library().names());
}

#[test]
fn the_library_has_the_required_scenarios() {
    let lib = library();
    for name in [
        "primary-pod-kill",
        "primary-container-kill",
        "primary-pod-failure",
        "primary-node-network-loss",
        "primary-network-loss-50",
        "standby-partition",
        "primary-cpu-stress",
        "controller-leader-kill",
        "all-pods-kill",
    ] {
        lib.get(name).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn every_scenario_renders_with_defaults_and_validates() {
    for s in library().scenarios() {
        for namespace in ["default", "demo"] {
            let rendered = s.render(&RenderOptions::in_namespace(namespace)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(rendered.resource.kind(), s.kind);
            assert_eq!(rendered.resource.action(), s.action, "{}", s.name);
            let meta = rendered.resource.metadata();
            if s.kind.namespaced() {
                assert_eq!(meta.name.as_deref(), Some(s.name.as_str()));
                assert_eq!(meta.namespace.as_deref(), Some(namespace));
            } else {
                // Cluster-scoped: the run's namespace in the name keeps two runs apart.
                assert_eq!(meta.name, Some(format!("{}-{namespace}", s.name)));
                assert_eq!(meta.namespace, None);
            }
            assert!(rendered.warnings.is_empty(), "{}: {:?}", s.name, rendered.warnings);
            rendered.resource.validate(&ValidateOptions::for_namespaces([namespace])).unwrap();
            let value = rendered.resource.to_value();
            assert!(value.get("status").is_none());
            // The YAML parses back to the same object.
            let yaml = rendered.to_yaml().unwrap();
            let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(back, value, "{}", s.name);
            assert!(!s.description.is_empty());
            for p in &s.parameters {
                assert!(p.default.is_some(), "{}: {} needs a default", s.name, p.name);
                assert!(!p.description.is_empty());
            }
        }
    }
}

#[test]
fn rendering_uses_typed_values() {
    let r = render(
        "primary-network-loss-50",
        &[("loss", "12.5%"), ("duration", "1m30s"), ("primary", "app=pg, role=leader")],
    )
    .unwrap();
    let v = r.resource.to_value();
    assert_eq!(v["spec"]["loss"], json!({"loss": "12.5", "correlation": "0"}));
    assert_eq!(v["spec"]["duration"], json!("1m30s"));
    assert_eq!(
        v["spec"]["selector"],
        json!({"namespaces": ["demo"], "labelSelectors": {"app": "pg", "role": "leader"}})
    );
    assert_eq!(r.values["loss"].to_string(), "12.5");

    let r = render("primary-cpu-stress", &[("workers", "4"), ("load", "55")]).unwrap();
    let ChaosResource::Stress(stress) = &r.resource else { panic!("not a StressChaos") };
    let cpu = stress.spec.stressors.as_ref().unwrap().cpu.as_ref().unwrap();
    assert_eq!((cpu.workers, cpu.load), (4, Some(55)));

    let r = render("controller-leader-kill", &[("leader_pod", "ctl-7f9c-abcde")]).unwrap();
    assert_eq!(r.resource.to_value()["spec"]["selector"], json!({"pods": {"demo": ["ctl-7f9c-abcde"]}}));

    let r = render("primary-node-network-loss", &[("node", "hadrill-worker3")]).unwrap();
    let ChaosResource::Blade(blade) = &r.resource else { panic!("not a ChaosBlade: {:?}", r.resource) };
    assert_eq!(blade.nodes(), vec!["hadrill-worker3".to_string()]);
    assert!(blade.status.is_none());

    let r = render("standby-partition", &[]).unwrap();
    assert_eq!(
        r.resource.to_value()["spec"]["target"]["selector"]["labelSelectors"],
        json!({"app": "dispatch", "side": "primary"})
    );
}

#[test]
fn unknown_scenario_lists_the_known_ones() {
    let err = render_err("primary-pod-kil", &[]);
    assert!(err.contains("unknown scenario `primary-pod-kil`"), "{err}");
    for name in library().names() {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn each_parameter_type_reports_file_line_and_what_is_expected() {
    let f = "scenarios/primary-network-loss-50.yaml";
    let loss = line_of(f, "- name: loss");
    let duration = line_of(f, "- name: duration");
    let primary = line_of(f, "- name: primary");
    let cases: [(&str, &str, &str, usize, &str); 6] = [
        ("primary-network-loss-50", "loss", "150", loss, "expected a number from 0 to 100"),
        ("primary-network-loss-50", "loss", "half", loss, "expected a number from 0 to 100"),
        ("primary-network-loss-50", "duration", "1d", duration, "expected a Go duration such as 30s"),
        ("primary-network-loss-50", "primary", "app", primary, "expected labels as key=value pairs"),
        ("primary-network-loss-50", "primary", "app=a b", primary, "label value"),
        (
            "primary-cpu-stress",
            "workers",
            "many",
            line_of("scenarios/primary-cpu-stress.yaml", "- name: workers"),
            "expected an integer from 1 to 8192",
        ),
    ];
    for (scenario, param, value, line, expected) in cases {
        let err = render_err(scenario, &[(param, value)]);
        let file = format!("scenarios/{scenario}.yaml:{line}:");
        assert!(err.contains(&file), "{param}={value}: expected {file} in {err}");
        assert!(err.contains(expected), "{param}={value}: expected {expected:?} in {err}");
        assert!(err.contains(&format!("`{param}`")), "{err}");
    }
    let err = render_err("primary-cpu-stress", &[("load", "101")]);
    assert!(err.contains("expected an integer from 0 to 100, got 101"), "{err}");

    // string and bool, through a scenario file of our own.
    let text = "name: flags\n\
                description: A test scenario.\n\
                parameters:\n\
                \x20 - name: container\n\
                \x20   type: string\n\
                \x20   default: db\n\
                \x20   description: Container.\n\
                \x20 - name: enabled\n\
                \x20   type: bool\n\
                \x20   default: true\n\
                \x20   description: Unused flag, in an annotation.\n\
                resource:\n\
                \x20 apiVersion: chaos-mesh.org/v1alpha1\n\
                \x20 kind: PodChaos\n\
                \x20 metadata:\n\
                \x20   name: flags\n\
                \x20   annotations: {enabled: \"${enabled}\"}\n\
                \x20 spec:\n\
                \x20   action: container-kill\n\
                \x20   mode: one\n\
                \x20   containerNames: [\"${container}\"]\n\
                \x20   selector: {pods: {\"${namespace}\": [db-0]}}\n";
    let s = Scenario::parse("custom/flags.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    let ok = s.render(&RenderOptions::in_namespace("demo").set("enabled", "false")).unwrap();
    assert_eq!(ok.resource.metadata().annotations.as_ref().unwrap()["enabled"], "false");
    let err = s.render(&RenderOptions::in_namespace("demo").set("enabled", "yes")).unwrap_err().to_string();
    assert!(err.contains("custom/flags.yaml:8:") && err.contains("expected true or false, got `yes`"), "{err}");
    let err = s.render(&RenderOptions::in_namespace("demo").set("container", "")).unwrap_err().to_string();
    assert!(err.contains("custom/flags.yaml:4:") && err.contains("expected a non-empty string"), "{err}");
    // A valid string that Chaos Mesh refuses is reported at the template line, naming the parameter.
    let err = s.render(&RenderOptions::in_namespace("demo").set("container", "DB")).unwrap_err().to_string();
    assert!(err.contains("custom/flags.yaml:21:"), "{err}");
    assert!(
        err.contains("spec.containerNames[0]")
            && err.contains("DNS-1123")
            && err.contains("parameter `container` = DB"),
        "{err}"
    );
}

#[test]
fn unknown_missing_and_repeated_parameters_are_errors() {
    let err = render_err("primary-pod-kill", &[("grace", "5")]);
    assert!(err.contains("scenarios/primary-pod-kill.yaml:"), "{err}");
    assert!(err.contains("unknown parameter `grace`") && err.contains("primary, grace_period"), "{err}");

    let err = render_err("primary-pod-kill", &[("grace_period", "1"), ("grace_period", "2")]);
    assert!(err.contains("set twice"), "{err}");

    let err = render_err("primary-pod-kill", &[("namespace", "x")]);
    assert!(err.contains("--namespace"), "{err}");

    let text = "name: needs-node\ndescription: d\nparameters:\n  - name: node\n    type: string\n    description: The node.\nresource:\n  apiVersion: chaos-mesh.org/v1alpha1\n  kind: PodChaos\n  metadata: {name: x}\n  spec:\n    action: pod-kill\n    mode: all\n    selector:\n      nodes: [\"${node}\"]\n";
    let s = Scenario::parse("lib/needs-node.yaml", text).unwrap();
    let err = s.render(&RenderOptions::in_namespace("demo")).unwrap_err().to_string();
    assert!(err.contains("lib/needs-node.yaml:4:") && err.contains("has no default: pass --set node="), "{err}");
    s.render(&RenderOptions::in_namespace("demo").set("node", "w1")).unwrap();

    let err = library().render("primary-pod-kill", &RenderOptions::in_namespace("Demo")).unwrap_err().to_string();
    assert!(err.contains("--namespace") && err.contains("DNS-1123"), "{err}");
}

#[test]
fn bad_scenario_files_are_refused_with_file_line_and_expectation() {
    let check = |text: &str, line: usize, expect: &str| {
        let err =
            Scenario::parse("lib/bad.yaml", text).err().unwrap_or_else(|| panic!("accepted:\n{text}")).to_string();
        assert!(err.contains(&format!("lib/bad.yaml:{line}:")), "expected line {line} in: {err}");
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    };
    let head = "name: bad\ndescription: d\n";
    let res = "resource:\n  apiVersion: chaos-mesh.org/v1alpha1\n  kind: PodChaos\n  metadata: {name: bad}\n  spec: {action: pod-kill, mode: one, selector: {labelSelectors: {app: db}}}\n";
    check(&format!("{head}paramters: []\n{res}"), 3, "unknown field `paramters`");
    check(&format!("name: other\ndescription: d\n{res}"), 1, "must match the file name (expected `bad`)");
    check(
        &format!("{head}parameters:\n  - name: x\n    type: integr\n    description: d\n{res}"),
        5,
        "unknown type `integr`, expected one of string, integer, duration, percent, labels, bool",
    );
    check(
        &format!("{head}parameters:\n  - name: x\n    type: duration\n    default: 1d\n    description: d\n{res}"),
        6,
        "default of parameter `x` (duration): expected a Go duration",
    );
    check(
        &format!(
            "{head}parameters:\n  - name: x\n    type: integer\n    default: 5\n    maximum: 3\n    description: d\n{res}"
        ),
        6,
        "expected an integer of at most 3, got 5",
    );
    check(
        &format!("{head}parameters:\n  - name: x\n    type: percent\n    default: 120\n    description: d\n{res}"),
        6,
        "expected a number from 0 to 100",
    );
    check(
        &format!(
            "{head}parameters:\n  - name: x\n    type: labels\n    default: {{app: 1}}\n    description: d\n{res}"
        ),
        6,
        "expected a string value (quote it)",
    );
    check(
        &format!("{head}parameters:\n  - name: x\n    type: bool\n    default: maybe\n    description: d\n{res}"),
        6,
        "expected true or false",
    );
    check(
        &format!("{head}parameters:\n  - name: x\n    type: string\n    default: a\n    description: d\n{res}"),
        4,
        "declared but never used",
    );
    check(
        &format!("{head}parameters:\n  - name: namespace\n    type: string\n    description: d\n{res}"),
        4,
        "built in",
    );
    let block = "resource:\n  apiVersion: chaos-mesh.org/v1alpha1\n  kind: PodChaos\n  metadata: {name: bad}\n  spec:\n    action: pod-kill\n    mode: one\n    selector:\n      labelSelectors:\n        app: VALUE\n";
    check(
        &format!("{head}{}", block.replace("VALUE", "${nope}")),
        12,
        "placeholder `${nope}` names no parameter; declared: namespace",
    );
    check(&format!("{head}{}", block.replace("VALUE", "db-${nope")), 12, "unterminated placeholder");
    check(&format!("{head}{}", block.replace("VALUE", "${Bad}")), 12, "bad placeholder `${Bad}`");
    // Unquoted placeholders inside a flow mapping are not YAML: the parser says where.
    check(&format!("{head}{}", res.replace("app: db", "app: ${nope}")), 7, "flow mapping");
    check(
        &format!("{head}{}", res.replace("kind: PodChaos", "kind: IOChaos")),
        5,
        "expected one of PodChaos, NetworkChaos, StressChaos",
    );
    check(
        &format!(
            "{head}parameters:\n  - name: l\n    type: labels\n    default: {{app: db}}\n    description: d\n{}",
            res.replace("labelSelectors: {app: db}", "labelSelectors: \"${l}\"")
        ),
        12,
        "must be a whole unquoted value",
    );
    check(&format!("{head}parameters: [}}\n{res}"), 3, "");
    // Every problem of the file at once.
    let err = Scenario::parse(
        "lib/bad.yaml",
        &format!("{head}parameters:\n  - name: x\n    type: integr\n    description: d\n  - name: y\n    type: string\n    description: d\n{res}"),
    )
    .unwrap_err();
    assert_eq!(err.diagnostics.len(), 2, "{err}");
}

#[test]
fn invalid_rendered_objects_are_refused_at_the_template_line() {
    // A scenario whose selector names no pods is refused unless explicitly allowed.
    let text = "name: wide\ndescription: d\nresource:\n  apiVersion: chaos-mesh.org/v1alpha1\n  kind: PodChaos\n  metadata: {name: wide, namespace: \"${namespace}\"}\n  spec:\n    action: pod-kill\n    mode: all\n    selector:\n      namespaces: [\"${namespace}\"]\n";
    let s = Scenario::parse("lib/wide.yaml", text).unwrap();
    let err = s.render(&RenderOptions::in_namespace("demo")).unwrap_err().to_string();
    assert!(
        err.contains("lib/wide.yaml:10:") && err.contains("spec.selector.labelSelectors") && err.contains("every pod"),
        "{err}"
    );
    let mut allow = RenderOptions::in_namespace("demo");
    allow.allow_namespace_wide_selector = true;
    s.render(&allow).unwrap();

    // A hard-coded foreign namespace is outside the run's namespaces.
    let text =
        text.replace("namespaces: [\"${namespace}\"]", "namespaces: [kube-system]\n      labelSelectors: {app: db}");
    let s = Scenario::parse("lib/wide.yaml", &text).unwrap();
    let err = s.render(&RenderOptions::in_namespace("demo")).unwrap_err().to_string();
    assert!(
        err.contains("lib/wide.yaml:11:") && err.contains("`kube-system` is not one of this run's namespaces (demo)"),
        "{err}"
    );

    // An unknown field in the template is located too.
    let bad = std::fs::read_to_string(repo_root().join("scenarios/primary-pod-kill.yaml"))
        .unwrap()
        .replace("labelSelectors:", "labelSelector:");
    let s = Scenario::parse("scenarios/primary-pod-kill.yaml", &bad).unwrap();
    let err = s.render(&RenderOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("spec.selector.labelSelector: unknown field") && text.contains("did you mean `labelSelectors`"),
        "{text}"
    );
    assert!(err.diagnostics.iter().all(|d| d.line.is_some()), "{text}");
}

#[test]
fn literal_dollar_braces_and_quoted_placeholders_are_text() {
    let text = "name: text\ndescription: d\nparameters:\n  - name: n\n    type: integer\n    default: 3\n    description: d\nresource:\n  apiVersion: chaos-mesh.org/v1alpha1\n  kind: PodChaos\n  metadata:\n    name: text\n    annotations: {note: \"cost $${n} = ${n} pods\", raw: \"${n}\"}\n  spec:\n    action: pod-kill\n    mode: fixed\n    value: \"${n}\"\n    gracePeriod: ${n}\n    selector: {labelSelectors: {app: db}}\n";
    let s = Scenario::parse("lib/text.yaml", text).unwrap();
    let r = s.render(&RenderOptions::in_namespace("demo")).unwrap();
    let v = r.resource.to_value();
    assert_eq!(v["metadata"]["annotations"], json!({"note": "cost ${n} = 3 pods", "raw": "3"}));
    assert_eq!(v["spec"]["value"], json!("3"));
    assert_eq!(v["spec"]["gracePeriod"], json!(3));
}

#[test]
fn list_shows_kind_action_and_defaults() {
    let lib = library();
    let s = lib.get("primary-network-loss-50").unwrap();
    assert_eq!((s.kind, s.action.as_str()), (ChaosKind::NetworkChaos, "loss"));
    let loss = s.parameter_named("loss").unwrap();
    assert_eq!(loss.ty, ParamType::Percent);
    assert_eq!(loss.default.as_ref().unwrap().to_string(), "50");
    assert_eq!(lib.get("primary-cpu-stress").unwrap().action, "stress:cpu");
}

#[test]
fn the_cli_lists_renders_and_prints_crds() {
    let bin = env!("CARGO_BIN_EXE_hadrill");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();

    let out = run(&["scenarios", "list"]);
    assert!(out.status.success());
    let list = String::from_utf8(out.stdout).unwrap();
    for name in library().names() {
        assert!(list.contains(name), "{list}");
    }
    assert!(list.contains("NetworkChaos/loss") && list.contains("loss:percent=50"), "{list}");

    let out = run(&["scenarios", "render", "primary-network-loss-50", "--set", "loss=30", "--namespace", "shop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(v["metadata"]["namespace"], json!("shop"));
    assert_eq!(v["spec"]["loss"]["loss"], json!("30"));

    let out = run(&["scenarios", "render", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known scenarios: all-pods-kill"));

    let out = run(&["scenarios", "render", "primary-pod-kill", "--set", "grace_period=-1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scenarios/primary-pod-kill.yaml:") && stderr.contains("at least 0"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is printed when rendering fails");

    let out = run(&["crds"]);
    assert!(out.status.success());
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let names: Vec<&str> = docs.iter().filter_map(|d| d["metadata"]["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "podchaos.chaos-mesh.org",
            "networkchaos.chaos-mesh.org",
            "stresschaos.chaos-mesh.org",
            "chaosblades.chaosblade.io"
        ]
    );
}

/// Each description names its object as the file builds it (kind, action, mode) and says how
/// many pods that hits; defaults name this project's own HA pair (`hadrill::cluster::ha_pair`),
/// and every feature a description cites exists.
#[test]
fn each_description_says_what_its_object_does() {
    use hadrill::cluster::ha_pair::{self, Side};
    let pair_labels = |side: Option<Side>| -> std::collections::BTreeMap<String, String> {
        match side {
            Some(side) => ha_pair::labels("dispatch", side),
            None => [("app".to_string(), "dispatch".to_string())].into(),
        }
    };
    for s in library().scenarios() {
        let rendered = s.render(&RenderOptions::in_namespace("demo")).unwrap_or_else(|e| panic!("{e}"));
        let spec = rendered.resource.to_value()["spec"].clone();
        let d = &s.description;
        let lower = d.to_lowercase();
        // A ChaosBlade has no mode: it takes the whole node, so every pod on it.
        let (named, mode) = if s.kind == ChaosKind::ChaosBlade {
            assert_eq!(s.action, "node/network/loss", "{}", s.name);
            ("(ChaosBlade node network loss".to_string(), "all".to_string())
        } else {
            let mode = spec["mode"].as_str().unwrap_or_else(|| panic!("{}: no spec.mode", s.name)).to_string();
            let action = s.action.strip_prefix("stress:").unwrap_or(&s.action);
            (format!("({:?} {action}, mode {mode}", s.kind), mode)
        };
        assert!(d.contains(&named), "{}: the description must name its object as {named:?}…): {d}", s.name);
        let (says, must_not) = match mode.as_str() {
            "one" => ("one pod", "every pod"),
            "all" => ("every pod", "one pod"),
            other => panic!("{}: mode {other} has no wording rule yet", s.name),
        };
        assert!(lower.contains(says) && !lower.contains(must_not), "{}: mode {mode} hits {says:?}: {d}", s.name);
        for promise in ["database", "acknowledged", "promoted", "replication"] {
            assert!(!lower.contains(promise), "{}: {promise:?} is nothing this project checks: {d}", s.name);
        }
        for word in d.split_whitespace().filter(|w| w.contains(".feature")) {
            let file = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '.' && c != '_');
            assert!(repo_root().join("features").join(file).exists(), "{}: cites {file}, not in features/", s.name);
        }
        for p in &s.parameters {
            match (&p.ty, &p.default) {
                (ParamType::Labels, Some(hadrill::scenarios::ParamValue::Labels(l))) => {
                    let side = match p.name.as_str() {
                        "primary" => Some(Side::Primary),
                        "standby" => Some(Side::Standby),
                        _ => None,
                    };
                    assert_eq!(l, &pair_labels(side), "{}: default of {}", s.name, p.name);
                }
                (_, Some(hadrill::scenarios::ParamValue::String(c))) if p.name == "container" => {
                    assert_eq!(c, ha_pair::CONTAINER, "{}: default container", s.name);
                }
                _ => {}
            }
        }
    }
}

/// The node fault is a ChaosBlade node network loss, and what the library renders is what the
/// CRD in deploy/crds/chaosblade (the one the embedded cluster serves) accepts unchanged: no
/// field pruned, no private annotation.
#[test]
fn the_node_network_loss_renders_a_chaosblade_its_crd_accepts() {
    let r = render("primary-node-network-loss", &[("node", "hadrill-worker2"), ("timeout", "90")]).unwrap();
    assert_eq!(r.resource.kind(), ChaosKind::ChaosBlade);
    let value = r.resource.to_value();
    assert_eq!(value["apiVersion"], "chaosblade.io/v1alpha1");
    assert!(value["metadata"]["annotations"].is_null(), "{value}");
    assert!(value["metadata"]["namespace"].is_null(), "cluster-scoped: {value}");
    let exp = &value["spec"]["experiments"][0];
    assert_eq!((&exp["scope"], &exp["target"], &exp["action"]), (&json!("node"), &json!("network"), &json!("loss")));
    assert_eq!(
        exp["matchers"],
        json!([{"name": "names", "value": ["hadrill-worker2"]}, {"name": "percent", "value": ["100"]},
               {"name": "interface", "value": ["eth0"]}, {"name": "timeout", "value": ["90"]}])
    );
    let text = std::fs::read_to_string(repo_root().join("deploy/crds/chaosblade/chaosblades.yaml")).unwrap();
    let crd: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!((&crd["spec"]["scope"], &crd["spec"]["names"]["kind"]), (&json!("Cluster"), &json!("ChaosBlade")));
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    sim::api::schema::check_structural(schema).unwrap();
    let mut pruned = value.clone();
    let dropped = sim::api::schema::default_prune_validate(schema, &mut pruned).unwrap();
    assert!(dropped.is_empty(), "pruned {dropped:?}");
    assert_eq!(pruned, value);
    // The schema is not a blank check: a matcher without values is refused.
    let mut bad = value.clone();
    bad["spec"]["experiments"][0]["matchers"][0] = json!({"name": "names"});
    assert!(sim::api::schema::default_prune_validate(schema, &mut bad).is_err());
}

#[test]
fn a_node_network_loss_without_timeout_or_with_a_pod_matcher_is_refused_with_the_field() {
    let ok = render("primary-node-network-loss", &[]).unwrap().resource.to_value();
    let mut no_timeout = ok.clone();
    no_timeout["spec"]["experiments"][0]["matchers"].as_array_mut().unwrap().pop();
    let e = hadrill::chaos::validate::validate_value(&no_timeout, &ValidateOptions::default()).unwrap_err().to_string();
    assert!(e.contains("spec.experiments[0].matchers") && e.contains("`timeout` matcher is required"), "{e}");
    let mut port = ok;
    port["spec"]["experiments"][0]["matchers"][1] = json!({"name": "local-port", "value": ["8080"]});
    let e = hadrill::chaos::validate::validate_value(&port, &ValidateOptions::default()).unwrap_err().to_string();
    assert!(e.contains("spec.experiments[0].matchers[1].name") && e.contains("`local-port` is not supported"), "{e}");
}

/// How long each kind of fault lasts by itself, which decides whether it is awaited or deleted
/// at the end: Chaos Mesh's `spec.duration`, a ChaosBlade's `timeout` matcher, and nothing for
/// the one-shot kills.
#[test]
fn a_fault_lasts_its_duration_or_its_blade_timeout_and_a_kill_not_at_all() {
    use std::time::Duration;
    let lasts = |name: &str, set: &[(&str, &str)]| render(name, set).unwrap_or_else(|e| panic!("{e}")).resource.lasts();
    assert_eq!(lasts("primary-network-loss-50", &[("duration", "90s")]), Some(Duration::from_secs(90)));
    assert_eq!(lasts("primary-node-network-loss", &[("timeout", "7")]), Some(Duration::from_secs(7)));
    assert_eq!(lasts("primary-pod-kill", &[]), None);
    assert_eq!(lasts("primary-container-kill", &[]), None);
}
