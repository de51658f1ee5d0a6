//! Bad requests get a `kind: Status` error naming what is wrong, and nothing is stored.

mod support;

use serde_json::Value;
use support::Raw;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

async fn count(raw: &Raw, path: &str) -> usize {
    raw.get(path).await.json()["items"].as_array().map_or(0, Vec::len)
}

fn assert_status(resp: &support::reqwest_like::Response, code: u16, reason: &str, needle: &str) -> Value {
    assert_eq!(resp.status, code, "{}", resp.body);
    let s = resp.json();
    assert_eq!(s["kind"], "Status", "{s}");
    assert_eq!(s["status"], "Failure");
    assert_eq!(s["code"], code);
    assert_eq!(s["reason"], reason, "{s}");
    let msg = s["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "message {msg:?} should mention {needle:?}");
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_are_400_and_store_nothing() {
    let sim = support::start(1).await;
    let raw = Raw::new(&sim);
    let r = raw
        .send("POST", CMS, "application/json", r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"#)
        .await;
    assert_status(&r, 400, "BadRequest", "json parse error");
    let r = raw.send("POST", CMS, "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n").await;
    assert_status(&r, 400, "BadRequest", "YAML");
    // apimachinery `runtime/serializer/protobuf/protobuf.go` refuses data without the prefix.
    let r = raw.send("POST", CMS, "application/vnd.kubernetes.protobuf", "\x00\x01").await;
    assert_status(&r, 400, "BadRequest", "does not appear to be a protobuf message");
    let r = raw.send("POST", CMS, "application/cbor", "\x00\x01").await;
    assert_status(&r, 415, "UnsupportedMediaType", "cbor");
    assert_eq!(count(&raw, CMS).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_resources_and_wrong_kinds_are_refused() {
    let sim = support::start(1).await;
    let raw = Raw::new(&sim);
    let r = raw.get("/api/v1/namespaces/default/widgets").await;
    assert_status(&r, 404, "NotFound", "widgets");
    let r = raw.get("/apis/nope.example.com/v1/things").await;
    assert_status(&r, 404, "NotFound", "nope.example.com");
    let deployment_as_pod = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}"#;
    let r = raw.send("POST", "/api/v1/namespaces/default/pods", "application/json", deployment_as_pod).await;
    assert_status(&r, 400, "BadRequest", "does not match the expected API version");
    let wrong_kind = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}"#;
    let r = raw.send("POST", CMS, "application/json", wrong_kind).await;
    assert_status(&r, 400, "BadRequest", "kind");
    let r = raw.send("PUT", CMS, "application/json", r#"{"metadata": {"name": "x"}}"#).await;
    assert_status(&r, 405, "MethodNotAllowed", "PUT");
    let r = raw.send("PATCH", &format!("{CMS}/x"), "text/plain", "{}").await;
    assert_status(&r, 415, "UnsupportedMediaType", "text/plain");
    assert_eq!(count(&raw, CMS).await, 0);
    assert_eq!(count(&raw, "/api/v1/namespaces/default/pods").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_fields_are_422_naming_the_field() {
    let sim = support::start(1).await;
    let raw = Raw::new(&sim);
    let typed_wrong = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}"#;
    let s = assert_status(
        &raw.send("POST", DEPLOYS, "application/json", typed_wrong).await,
        422,
        "Invalid",
        "spec.replicas",
    );
    assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");

    let selector_mismatch =
        typed_wrong.replace(r#""two""#, "1").replace(r#"{"labels": {"a": "b"}}"#, r#"{"labels": {"a": "c"}}"#);
    let r = raw.send("POST", DEPLOYS, "application/json", &selector_mismatch).await;
    assert_status(&r, 422, "Invalid", "spec.template.metadata.labels");

    let no_name = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}"#;
    assert_status(&raw.send("POST", CMS, "application/json", no_name).await, 422, "Invalid", "metadata.name");
    let bad_name = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}"#;
    assert_status(&raw.send("POST", CMS, "application/json", bad_name).await, 422, "Invalid", "RFC 1123");
    let no_image =
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}"#;
    let r = raw.send("POST", "/api/v1/namespaces/default/pods", "application/json", no_image).await;
    assert_status(&r, 422, "Invalid", "spec.containers[0].image");
    assert_eq!(count(&raw, DEPLOYS).await, 0);
    assert_eq!(count(&raw, CMS).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_follow_field_validation() {
    let sim = support::start(1).await;
    let raw = Raw::new(&sim);
    let body = |name: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{name}"}}, "data": {{"k": "v"}}, "dataa": {{"typo": "x"}}}}"#
        )
    };
    let r = raw.send("POST", &format!("{CMS}?fieldValidation=Strict"), "application/json", &body("strict")).await;
    assert_status(&r, 400, "BadRequest", r#"unknown field \"dataa\""#.replace('\\', "").as_str());
    let r = raw.send("POST", &format!("{CMS}?fieldValidation=Warn"), "application/json", &body("warn")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.header("warning").iter().any(|w| w.contains("unknown field") && w.contains("dataa")), "{:?}", r.headers);
    assert!(r.json().get("dataa").is_none(), "pruned");
    let r = raw.send("POST", &format!("{CMS}?fieldValidation=Sometimes"), "application/json", &body("x")).await;
    assert_status(&r, 400, "BadRequest", "fieldValidation");
    assert_eq!(count(&raw, CMS).await, 1, "only the Warn create stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_selectors_and_conflicts_are_reported() {
    let sim = support::start(1).await;
    let raw = Raw::new(&sim);
    let r = raw.get(&format!("{CMS}?labelSelector=app%20in%20(a")).await;
    assert_status(&r, 400, "BadRequest", "");
    let cm = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}"#;
    assert_eq!(raw.send("POST", CMS, "application/json", cm).await.status, 201);
    assert_status(&raw.send("POST", CMS, "application/json", cm).await, 409, "AlreadyExists", "already exists");
    let stale = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "1"}}"#;
    assert_status(
        &raw.send("PUT", &format!("{CMS}/c"), "application/json", stale).await,
        409,
        "Conflict",
        "the object has been modified",
    );
    assert_status(
        &raw.send("DELETE", &format!("{CMS}/missing"), "application/json", "").await,
        404,
        "NotFound",
        "missing",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_probe_is_422_naming_it() {
    let sim = support::start(1).await;
    let raw = Raw::new(&sim);
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "i", "readinessProbe": {"periodSeconds": 1}}]}}"#;
    let r = raw.send("POST", "/api/v1/namespaces/default/pods", "application/json", pod).await;
    assert_status(&r, 422, "Invalid", "spec.containers[0].readinessProbe");
    assert_eq!(count(&raw, "/api/v1/namespaces/default/pods").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_token_are_401_except_health() {
    let sim = support::start_with(sim::SimConfig { anonymous_is_admin: false, ..Default::default() }).await;
    let anonymous = Raw::with_token(&sim, "");
    assert_status(&anonymous.get(CMS).await, 401, "Unauthorized", "Unauthorized");
    assert_status(&anonymous.get("/apis").await, 401, "Unauthorized", "Unauthorized");
    assert_eq!(anonymous.get("/readyz").await.status, 200);
    assert_eq!(anonymous.get("/version").await.status, 200);
    let forged = Raw::with_token(&sim, "hadrill-admin-forged");
    assert_status(&forged.get(CMS).await, 401, "Unauthorized", "Unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_no_credentials_means_admin_but_a_bad_token_is_refused() {
    let sim = support::start(1).await;
    assert_eq!(Raw::with_token(&sim, "").get(CMS).await.status, 200);
    let forged = Raw::with_token(&sim, "not-a-token");
    assert_status(&forged.get(CMS).await, 401, "Unauthorized", "Unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_with_a_malformed_spec_is_refused_without_harm() {
    let sim = support::start(1).await;
    let raw = Raw::new(&sim);
    let svcs = "/api/v1/namespaces/default/services";
    let r = raw
        .send(
            "POST",
            svcs,
            "application/json",
            r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": []}"#,
        )
        .await;
    assert_status(&r, 422, "Invalid", "spec");
    let ok = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}"#;
    assert_eq!(raw.send("POST", svcs, "application/json", ok).await.status, 201);
    let r = raw.send("PATCH", &format!("{svcs}/s"), "application/merge-patch+json", r#"{"spec": "nope"}"#).await;
    assert_status(&r, 422, "Invalid", "spec");
    assert_eq!(raw.get(&format!("{svcs}/s")).await.status, 200, "the server still answers");
}
