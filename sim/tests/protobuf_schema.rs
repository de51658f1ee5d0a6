//! The protobuf field table of the embedded API server (`sim/src/api/protobuf/fields.txt`)
//! is generated from the sources of the crates it describes: the message layouts (field
//! numbers and wire types) come from `k8s-pb`'s prost structs, the JSON names of the fields
//! from `k8s-openapi`'s serde code. `k8s-pb` has no reflection (no descriptors, no field
//! names at run time), so the server reads this table instead.
//!
//! This test regenerates the table from the crates this workspace builds with and fails
//! when the committed file differs (a version bump of either crate). Run it with
//! `HADRILL_REGEN_PROTOBUF_FIELDS=1` to rewrite the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const TABLE: &str = "src/api/protobuf/fields.txt";

/// Source directory of a dependency: where cargo unpacked the version in Cargo.lock (no
/// network needed), else as `cargo metadata` reports it.
fn crate_src(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).expect("Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains(&format!("name = \"{name}\"\n")))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    if let (Some(version), Some(home)) = (version, cargo_home)
        && let Ok(registries) = std::fs::read_dir(home.join("registry/src"))
    {
        for r in registries.flatten() {
            let dir = r.path().join(format!("{name}-{version}"));
            if dir.join("src").is_dir() {
                return dir.join("src");
            }
        }
    }
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let manifest = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["manifest_path"].as_str())
        .unwrap_or_else(|| panic!("{name} is not a dependency of the workspace"));
    Path::new(manifest).parent().expect("manifest has a directory").join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("dir entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `io.k8s...` package of a k8s-pb module path (`api/core/v1`).
fn package(module: &[String]) -> String {
    let mut parts = vec!["io".to_string(), "k8s".to_string()];
    for (i, m) in module.iter().enumerate() {
        parts.push(if i == 0 { m.replace('_', "-") } else { m.clone() });
    }
    parts.join(".")
}

struct Field {
    tag: u32,
    rust: String,
    kind: String,
}

struct Message {
    module: Vec<String>,
    name: String,
    fields: Vec<Field>,
}

/// Resolves a Rust type path written inside `module` to (module, name).
fn resolve(module: &[String], path: &str) -> (Vec<String>, String) {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut m = module.to_vec();
    let mut i = 0;
    while segs.get(i) == Some(&"super") {
        m.pop();
        i += 1;
    }
    let rest = &segs[i..];
    let (name, prefix) = rest.split_last().expect("type path");
    if i > 0 || !prefix.is_empty() {
        m.extend(prefix.iter().map(|s| s.to_string()));
    }
    (m, name.to_string())
}

/// The message type named in a field's Rust type, if any.
fn message_type(module: &[String], ty: &str) -> (Vec<String>, String) {
    let mut t = ty.replace(' ', "");
    for wrapper in
        ["::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<", "Option<", "Vec<"]
    {
        while let Some(rest) = t.strip_prefix(wrapper) {
            t = rest.strip_suffix(">").unwrap_or_else(|| panic!("unbalanced generic in {ty}")).to_string();
        }
    }
    if let Some(inner) = t.strip_prefix("::prost::alloc::collections::BTreeMap<") {
        let inner = inner.strip_suffix('>').expect("balanced map");
        let (_, value) = inner.split_once(',').expect("map value");
        return resolve(module, value);
    }
    resolve(module, &t)
}

/// A top-level kind: apiVersion, kind, module, struct name.
type Resource = (String, String, Vec<String>, String);

fn parse_k8s_pb(src: &Path) -> (Vec<Message>, Vec<Resource>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut messages = Vec::new();
    let mut resources = Vec::new();
    for file in files {
        let rel = file.parent().expect("parent").strip_prefix(src).expect("under src");
        let module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read k8s-pb source");
        let lines: Vec<&str> = text.lines().collect();
        let mut current: Option<Message> = None;
        let mut impl_of: Option<String> = None;
        let mut api_version = String::new();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i].trim();
            if let Some(rest) = line.strip_prefix("pub struct ") {
                let empty = rest.ends_with("{}");
                let name = rest.trim_end_matches("{}").trim_end_matches('{').trim().to_string();
                let m = Message { module: module.clone(), name, fields: Vec::new() };
                if empty {
                    messages.push(m);
                } else {
                    current = Some(m);
                }
            } else if line == "}" {
                if let Some(m) = current.take() {
                    messages.push(m);
                }
                impl_of = None;
            } else if let Some(attr) = line.strip_prefix("#[prost(").and_then(|a| a.strip_suffix(")]")) {
                let m = current.as_mut().unwrap_or_else(|| panic!("prost attribute outside a struct in {file:?}"));
                // The field declaration may wrap over several lines; it ends with `,`.
                let mut decl = String::new();
                i += 1;
                while i < lines.len() {
                    decl.push_str(lines[i].trim());
                    if decl.ends_with(',') && decl.matches('<').count() == decl.matches('>').count() {
                        break;
                    }
                    i += 1;
                }
                let (name, ty) = decl.strip_prefix("pub ").expect("pub field").split_once(':').expect("field type");
                let ty = ty.trim_end_matches(',').replace(",>", ">");
                let ty = ty.trim();
                let tag: u32 = attr
                    .split("tag = \"")
                    .nth(1)
                    .and_then(|t| t.split('"').next())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("no tag in {attr}"));
                let head = attr.split(',').next().expect("attribute head").trim();
                let repeated = attr.contains("repeated");
                let kind = if let Some(map) = attr.strip_prefix("btree_map = \"") {
                    let value = map.split('"').next().expect("map types").split(", ").nth(1).expect("map value");
                    if value == "message" {
                        let (mm, mn) = message_type(&module, ty);
                        format!("map:{}.{}", package(&mm), mn)
                    } else {
                        format!("map:{value}")
                    }
                } else {
                    let base = match head {
                        "message" => {
                            let (mm, mn) = message_type(&module, ty);
                            format!("{}.{}", package(&mm), mn)
                        }
                        "bytes = \"vec\"" => "bytes".to_string(),
                        other => other.to_string(),
                    };
                    if repeated { format!("[]{base}") } else { base }
                };
                m.fields.push(Field { tag, rust: name.trim_start_matches("r#").to_string(), kind });
            } else if let Some(rest) = line.strip_prefix("impl crate::Resource for ") {
                impl_of = Some(rest.trim_end_matches(" {").to_string());
            } else if let Some(v) = line.strip_prefix("const API_VERSION: &'static str = \"") {
                api_version = v.trim_end_matches("\";").to_string();
            } else if let (Some(k), Some(name)) = (line.strip_prefix("const KIND: &'static str = \""), &impl_of) {
                resources.push((
                    api_version.clone(),
                    k.trim_end_matches("\";").to_string(),
                    module.clone(),
                    name.clone(),
                ));
            }
            i += 1;
        }
    }
    (messages, resources)
}

/// JSON field names per OpenAPI definition, from k8s-openapi's `Deserialize` impls.
fn parse_k8s_openapi(src: &Path) -> HashMap<String, Vec<String>> {
    let mut files = Vec::new();
    rust_files(&src.join("v1_35"), &mut files);
    let mut out = HashMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read k8s-openapi source");
        let mut lines = text.lines();
        let mut name = None;
        let mut fields = Vec::new();
        while let Some(line) = lines.next() {
            let l = line.trim();
            if l.starts_with("fn schema_name()") {
                name = lines.next().and_then(|n| n.trim().strip_prefix('"')).and_then(|n| n.split('"').next());
            } else if l.contains("=> Field::Key_")
                && let Some(json) = l.strip_prefix('"').and_then(|s| s.split('"').next())
            {
                fields.push(json.to_string());
            }
        }
        if let Some(n) = name {
            out.insert(n.to_string(), fields);
        }
    }
    out
}

fn normalise(s: &str) -> String {
    s.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn generate() -> String {
    let (messages, resources) = parse_k8s_pb(&crate_src("k8s-pb"));
    let openapi = parse_k8s_openapi(&crate_src("k8s-openapi"));
    let by_lower: HashMap<String, &String> = openapi.keys().map(|k| (k.to_lowercase(), k)).collect();
    // k8s-pb spells some type names differently (`JsonSchemaProps`); the OpenAPI name wins.
    let full_name = |module: &[String], name: &str| -> String {
        let candidate = format!("{}.{}", package(module), name);
        by_lower.get(&candidate.to_lowercase()).map(|s| s.to_string()).unwrap_or(candidate)
    };
    let renames: HashMap<String, String> = messages
        .iter()
        .map(|m| (format!("{}.{}", package(&m.module), m.name), full_name(&m.module, &m.name)))
        .collect();
    let mut out = BTreeMap::new();
    for m in &messages {
        let name = full_name(&m.module, &m.name);
        let json_names = openapi.get(&name);
        let mut body = String::new();
        for f in &m.fields {
            let json = json_names
                .and_then(|names| names.iter().find(|j| normalise(j) == normalise(&f.rust)))
                .cloned()
                .unwrap_or_else(|| camel(&f.rust));
            let kind = rename_kind(&f.kind, &renames);
            body.push_str(&format!("  {} {} {}\n", f.tag, json, kind));
        }
        out.insert(name, body);
    }
    let mut text = String::from(
        "# Generated by sim/tests/protobuf_schema.rs from k8s-pb (field numbers, wire types) and\n\
         # k8s-openapi (JSON names). Do not edit: run that test with HADRILL_REGEN_PROTOBUF_FIELDS=1.\n",
    );
    let mut kinds: Vec<String> =
        resources.iter().map(|(av, k, module, name)| format!("kind {av} {k} {}\n", full_name(module, name))).collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        text.push_str(&k);
    }
    for (name, body) in out {
        text.push_str(&format!("message {name}\n{body}"));
    }
    text
}

fn rename_kind(kind: &str, renames: &HashMap<String, String>) -> String {
    let (prefix, ty) = if let Some(t) = kind.strip_prefix("map:") {
        ("map:", t)
    } else if let Some(t) = kind.strip_prefix("[]") {
        ("[]", t)
    } else {
        ("", kind)
    };
    match renames.get(ty) {
        Some(n) => format!("{prefix}{n}"),
        None => kind.to_string(),
    }
}

#[test]
fn protobuf_field_table_matches_the_crates() {
    let generated = generate();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(TABLE);
    if std::env::var("HADRILL_REGEN_PROTOBUF_FIELDS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write the field table");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{TABLE} is out of date with k8s-pb / k8s-openapi: rerun this test with HADRILL_REGEN_PROTOBUF_FIELDS=1"
    );
}
