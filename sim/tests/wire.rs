//! kube-apiserver 1.35's exact answers, one test per behaviour, each naming the Kubernetes
//! source it follows: protobuf, DELETE bodies, Status encoding, always-present empty
//! structs, Event validation, CRD deletion.

mod support;

use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A response with a binary body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request with any Accept/Content-Type and a binary body.
async fn request(sim: &sim::Sim, method: &str, path: &str, accept: &str, content_type: &str, body: &[u8]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(sim.addr()).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {}\r\nAccept: {accept}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        sim.admin_token(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write body");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    parse_reply(&buf)
}

/// A JSON request with a JSON body.
async fn json_request(sim: &sim::Sim, method: &str, path: &str, body: &Value) -> Reply {
    request(sim, method, path, "application/json", "application/json", body.to_string().as_bytes()).await
}

/// A JSON request without a body.
async fn bare(sim: &sim::Sim, method: &str, path: &str) -> Reply {
    request(sim, method, path, "application/json", "application/json", b"").await
}

fn parse_reply(buf: &[u8]) -> Reply {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = buf[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&s[..eol]).trim(), 16).unwrap_or(0);
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// `k8s\0` + runtime.Unknown around a k8s-pb message.
fn envelope(api_version: &str, kind: &str, msg: &impl prost::Message) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let u = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: None,
        content_type: None,
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(u.encode_to_vec());
    out
}

fn unwrap_envelope(body: &[u8]) -> (String, Vec<u8>) {
    assert!(body.starts_with(b"k8s\0"), "protobuf prefix missing: {:?}", &body[..body.len().min(16)]);
    let u = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(&body[4..]).expect("runtime.Unknown");
    (u.type_meta.and_then(|t| t.kind).unwrap_or_default(), u.raw.unwrap_or_default())
}

/// A cluster without the chaos engine (which would install its CRDs), with the PodChaos CRD
/// created and established.
async fn sim_with_podchaos_crd() -> sim::Sim {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let chaos = sim::chaos::ChaosConfig { enabled: false, ..Default::default() };
    let mut config = sim::SimConfig { chaos, nodes: 1, ..Default::default() };
    config.kubelet.enabled = false;
    let sim = support::start_with(config).await;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(sim.client().unwrap());
    let crd: CustomResourceDefinition = serde_json::from_value(support::podchaos_crd()).unwrap();
    crds.create(&Default::default(), &crd).await.unwrap();
    support::await_cond(
        &crds,
        "podchaos.chaos-mesh.org",
        "the CRD to be established",
        kube::runtime::wait::conditions::is_crd_established(),
    )
    .await;
    sim
}

fn meta(name: &str) -> Option<k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
    Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta { name: Some(name.into()), ..Default::default() })
}

/// A protobuf body is decoded and a protobuf answer encoded (apimachinery
/// `runtime/serializer/protobuf/protobuf.go`: `k8s\0` + runtime.Unknown); a list comes back as
/// `ConfigMapList`; errors are protobuf `Status` objects.
#[tokio::test(flavor = "multi_thread")]
async fn protobuf_objects_lists_and_errors() {
    use k8s_pb::api::core::v1::{ConfigMap, ConfigMapList};
    let sim = support::start(1).await;
    let cm =
        ConfigMap { metadata: meta("pb"), data: [("a".to_string(), "b".to_string())].into(), ..Default::default() };
    let path = "/api/v1/namespaces/default/configmaps";
    let r = request(
        &sim,
        "POST",
        path,
        &format!("{PROTOBUF}, application/json"),
        PROTOBUF,
        &envelope("v1", "ConfigMap", &cm),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), PROTOBUF);
    let (kind, raw) = unwrap_envelope(&r.body);
    assert_eq!(kind, "ConfigMap");
    let created = ConfigMap::decode(raw.as_slice()).unwrap();
    assert_eq!(created.data.get("a").map(String::as_str), Some("b"));
    assert!(created.metadata.as_ref().and_then(|m| m.uid.as_ref()).is_some_and(|u| !u.is_empty()));

    // JSON clients see the same object.
    let r = bare(&sim, "GET", &format!("{path}/pb")).await;
    assert_eq!(r.json()["data"], json!({"a": "b"}));

    let r = request(&sim, "GET", path, PROTOBUF, "application/json", b"").await;
    let (kind, raw) = unwrap_envelope(&r.body);
    assert_eq!(kind, "ConfigMapList");
    let list = ConfigMapList::decode(raw.as_slice()).unwrap();
    assert!(list.items.iter().any(|c| c.metadata.as_ref().and_then(|m| m.name.as_deref()) == Some("pb")));
    assert!(list.metadata.as_ref().and_then(|m| m.resource_version.as_ref()).is_some());

    let r = request(&sim, "GET", &format!("{path}/missing"), PROTOBUF, "application/json", b"").await;
    assert_eq!((r.status, r.header("content-type")), (404, PROTOBUF));
    let (kind, raw) = unwrap_envelope(&r.body);
    assert_eq!(kind, "Status");
    let status = k8s_pb::apimachinery::pkg::apis::meta::v1::Status::decode(raw.as_slice()).unwrap();
    assert_eq!((status.code, status.reason.as_deref()), (Some(404), Some("NotFound")));
    assert_eq!(status.message.as_deref(), Some("configmaps \"missing\" not found"));
}

/// Go's protobuf marshalling writes every non-pointer field, so a Service port without a
/// target port arrives as `targetPort: 0`, which defaulting treats as unset (k/k
/// `pkg/apis/core/v1/defaults.go` `SetDefaults_Service`).
#[tokio::test(flavor = "multi_thread")]
async fn protobuf_zero_values_are_defaulted_as_unset() {
    use k8s_pb::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    let sim = support::start_without_kubelets(1).await;
    let zero = IntOrString { r#type: Some(0), int_val: Some(0), str_val: Some(String::new()) };
    let svc = Service {
        metadata: meta("zero"),
        spec: Some(ServiceSpec {
            ports: vec![ServicePort {
                port: Some(80),
                target_port: Some(zero),
                protocol: Some(String::new()),
                node_port: Some(0),
                ..Default::default()
            }],
            r#type: Some(String::new()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = request(
        &sim,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        PROTOBUF,
        &envelope("v1", "Service", &svc),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["spec"]["ports"][0], json!({"port": 80, "targetPort": 80, "protocol": "TCP"}));
    assert_eq!(created["spec"]["type"], "ClusterIP");
}

/// Watch over protobuf: Content-Type `…;stream=watch`, frames of a 4-byte big-endian length
/// and a `WatchEvent` whose `object.raw` is a full envelope (apiserver `handlers/watch.go`,
/// apimachinery `util/framer/framer.go`).
#[tokio::test(flavor = "multi_thread")]
async fn protobuf_watch_streams_length_prefixed_events() {
    use k8s_pb::api::core::v1::ConfigMap;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent;
    let sim = support::start(1).await;
    let cm = ConfigMap { metadata: meta("w"), ..Default::default() };
    let path = "/api/v1/namespaces/default/configmaps";
    let r = request(&sim, "POST", path, "application/json", PROTOBUF, &envelope("v1", "ConfigMap", &cm)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let mut s = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let head = format!(
        "GET {path}?watch=true&timeoutSeconds=2 HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer {}\r\nAccept: {PROTOBUF}, application/json\r\nConnection: close\r\n\r\n",
        sim.admin_token()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let r = parse_reply(&buf);
    assert_eq!(r.header("content-type"), "application/vnd.kubernetes.protobuf;stream=watch");
    let len = u32::from_be_bytes(r.body[..4].try_into().unwrap()) as usize;
    let event = WatchEvent::decode(&r.body[4..4 + len]).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let (kind, raw) = unwrap_envelope(event.object.unwrap().raw.as_deref().unwrap());
    assert_eq!(kind, "ConfigMap");
    assert_eq!(ConfigMap::decode(raw.as_slice()).unwrap().metadata.unwrap().name.as_deref(), Some("w"));
}

/// Custom resources have no protobuf form: a protobuf-only Accept is 406, a protobuf body 415,
/// and `protobuf, json` gets JSON (apiextensions-apiserver `customresource_handler.go`
/// serializers; apiserver `handlers/negotiation/negotiate.go`).
#[tokio::test(flavor = "multi_thread")]
async fn custom_resources_stay_json() {
    let sim = sim_with_podchaos_crd().await;
    let path = "/apis/chaos-mesh.org/v1alpha1/namespaces/default/podchaos";
    let r = request(&sim, "GET", path, PROTOBUF, "application/json", b"").await;
    assert_eq!(r.status, 406, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["reason"], "NotAcceptable");
    let r = request(&sim, "GET", path, &format!("{PROTOBUF}, application/json"), "application/json", b"").await;
    assert_eq!((r.status, r.header("content-type")), (200, "application/json"));
    assert_eq!(r.json()["kind"], "PodChaosList");
    let body = envelope("chaos-mesh.org/v1alpha1", "PodChaos", &k8s_pb::api::core::v1::ConfigMap::default());
    let r = request(&sim, "POST", path, "application/json", PROTOBUF, &body).await;
    assert_eq!(r.status, 415, "{}", String::from_utf8_lossy(&r.body));
}

/// A Service is returned with `status: {loadBalancer: {}}` and a Deployment with `status: {}`:
/// Go's `omitempty` never drops a struct (api `core/v1/types.go` `ServiceStatus`,
/// `apps/v1/types.go` `DeploymentStatus` are non-pointer fields).
#[tokio::test(flavor = "multi_thread")]
async fn empty_status_structs_are_serialised() {
    let sim = support::start_without_kubelets(1).await;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}]}});
    let r = json_request(&sim, "POST", "/api/v1/namespaces/default/services", &svc).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"], json!({"loadBalancer": {}}));
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let r = json_request(&sim, "POST", "/apis/apps/v1/namespaces/default/deployments", &d).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"], json!({}));
}

/// DELETE answers the deleted object for the registries that set `ReturnDeletedObject`
/// (k/k `pkg/registry/core/service/storage/storage.go`,
/// `pkg/registry/core/serviceaccount/storage/storage.go`), a Success Status otherwise
/// (apiserver `registry/generic/registry/store.go` `finalizeDelete`).
#[tokio::test(flavor = "multi_thread")]
async fn delete_returns_the_object_for_services_and_service_accounts() {
    let sim = support::start_without_kubelets(1).await;
    let create = |path: &'static str, body: Value| {
        let sim = &sim;
        async move {
            let r = json_request(sim, "POST", path, &body).await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        }
    };
    create(
        "/api/v1/namespaces/default/services",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    create(
        "/api/v1/namespaces/default/serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "sa"}}),
    )
    .await;
    create(
        "/api/v1/namespaces/default/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm"}}),
    )
    .await;
    for (path, kind) in [
        ("/api/v1/namespaces/default/services/s", "Service"),
        ("/api/v1/namespaces/default/serviceaccounts/sa", "ServiceAccount"),
    ] {
        let r = bare(&sim, "DELETE", path).await;
        assert_eq!(r.status, 200);
        let body = r.json();
        assert_eq!(body["kind"], kind, "{body}");
        assert!(body["metadata"]["uid"].is_string(), "{body}");
    }
    let r = bare(&sim, "DELETE", "/api/v1/namespaces/default/configmaps/cm").await;
    let text = String::from_utf8(r.body.clone()).unwrap();
    let uid = r.json()["details"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        text,
        format!(
            "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Success\",\"details\":{{\"name\":\"cm\",\"kind\":\"configmaps\",\"uid\":\"{uid}\"}}}}\n"
        )
    );
}

/// Status bodies are byte for byte what `json.Encoder.Encode` writes for `metav1.Status`:
/// Go field order (apimachinery `apis/meta/v1/types.go`) and a trailing newline
/// (`runtime/serializer/json/json.go`).
#[tokio::test(flavor = "multi_thread")]
async fn status_errors_are_encoded_as_kube_apiserver_encodes_them() {
    let sim = support::start_without_kubelets(1).await;
    let r = bare(&sim, "GET", "/api/v1/namespaces/default/configmaps/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"nope\",\"kind\":\"configmaps\"},\"code\":404}\n"
    );
}

async fn post_event(sim: &sim::Sim, api: &str, body: Value) -> Reply {
    let path = if api == "v1" {
        "/api/v1/namespaces/default/events".to_string()
    } else {
        "/apis/events.k8s.io/v1/namespaces/default/events".to_string()
    };
    json_request(sim, "POST", &path, &body).await
}

fn causes(r: &Reply) -> Vec<(String, String)> {
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    r.json()["details"]["causes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["field"].as_str().unwrap_or_default().to_string(),
                        c["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// core/v1 Events are validated by `legacyValidateEvent` (k/k
/// `pkg/apis/core/validation/events.go`): with `eventTime` set, reportingComponent, action,
/// reason are required, message at most 1024 characters; the involved object's namespace
/// must match.
#[tokio::test(flavor = "multi_thread")]
async fn core_events_are_validated() {
    let sim = support::start_without_kubelets(1).await;
    let r = post_event(
        &sim,
        "v1",
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingInstance": "i", "reason": "",
        "message": "x".repeat(1025)}),
    )
    .await;
    assert_eq!(
        causes(&r),
        [
            ("reportingComponent".to_string(), "Required value".to_string()),
            ("action".to_string(), "Required value".to_string()),
            ("reason".to_string(), "Required value".to_string()),
            ("message".to_string(), "Invalid value: \"\": can have at most 1024 characters".to_string()),
        ]
    );
    let r = post_event(
        &sim,
        "v1",
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e2"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}, "reason": "R"}),
    )
    .await;
    assert_eq!(
        causes(&r),
        [(
            "involvedObject.namespace".to_string(),
            "Invalid value: \"other\": does not match event.namespace".to_string()
        )]
    );
    assert!(r.json()["message"].as_str().unwrap().starts_with("Event \"e2\" is invalid: involvedObject.namespace"));
    let ok = post_event(
        &sim,
        "v1",
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e3"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "R"}),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
}

/// events.k8s.io/v1 creates add `ValidateEventCreate`'s rules (k/k
/// `pkg/apis/core/validation/events.go`): eventTime required, type Normal|Warning; and
/// managedFields use that API's field names.
#[tokio::test(flavor = "multi_thread")]
async fn events_k8s_io_events_are_validated() {
    let sim = support::start_without_kubelets(1).await;
    let r = post_event(
        &sim,
        "events.k8s.io/v1",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e1"}, "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "R", "type": "Bogus"}),
    )
    .await;
    assert_eq!(
        causes(&r),
        [
            ("eventTime".to_string(), "Required value".to_string()),
            ("type".to_string(), "Invalid value: \"\": has invalid value: Bogus".to_string()),
        ]
    );
    let ok = post_event(&sim, "events.k8s.io/v1", json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e2"}, "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started", "action": "Start", "type": "Normal", "note": "n",
        "reportingController": "example.com/ctl", "reportingInstance": "i-1", "eventTime": "2026-01-01T00:00:00.000000Z"}))
    .await;
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
    let fields = ok.json()["metadata"]["managedFields"][0]["fieldsV1"].clone();
    assert!(fields["f:note"].is_object() && fields["f:regarding"].is_object(), "{fields}");
    assert!(fields["f:message"].is_null() && fields["f:involvedObject"].is_null(), "{fields}");
}

/// While a CRD is being deleted it carries `Terminating=True` and creates of its resources are
/// refused with 403 (1.34+; apiextensions-apiserver `pkg/apiserver/customresource_handler.go`
/// `forbidCreateAdmission`; the DELETE answer's condition from
/// `pkg/registry/customresourcedefinition/etcd.go`).
#[tokio::test(flavor = "multi_thread")]
async fn a_terminating_crd_refuses_creates() {
    let sim = sim_with_podchaos_crd().await;
    let path = "/apis/chaos-mesh.org/v1alpha1/namespaces/default/podchaos";
    let chaos = |name: &str| {
        json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos", "metadata": {"name": name,
            "finalizers": ["example.com/hold"]},
            "spec": {"action": "pod-kill", "mode": "one", "selector": {"namespaces": ["default"]}}})
    };
    let r = json_request(&sim, "POST", path, &chaos("held")).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/podchaos.chaos-mesh.org";
    let r = bare(&sim, "DELETE", crd_path).await;
    assert_eq!(r.status, 200);
    let crd = r.json();
    let terminating =
        crd["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Terminating").cloned();
    let terminating = terminating.map(|c| (c["status"].clone(), c["reason"].clone()));
    assert_eq!(terminating, Some((json!("True"), json!("InstanceDeletionPending"))), "{crd}");
    let r = json_request(&sim, "POST", path, &chaos("late")).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["message"],
        "podchaos.chaos-mesh.org \"late\" is forbidden: create not allowed while custom resource definition is terminating"
    );
}

/// `/openapi/v3` documents carry `components.schemas` tagged with
/// `x-kubernetes-group-version-kind`, and PATCH operations list strategic merge patch for
/// built-in kinds only (kubectl `cmd/apply/patcher.go` picks SMP from them); a stale hash is
/// redirected (kube-openapi `pkg/handler3`); `/openapi/v2` serves Swagger JSON (kube-openapi
/// `pkg/handler`).
#[tokio::test(flavor = "multi_thread")]
async fn openapi_documents_describe_schemas_and_patch_types() {
    let sim = sim_with_podchaos_crd().await;
    let get = |path: String| {
        let sim = &sim;
        async move { bare(sim, "GET", &path).await }
    };
    let index = get("/openapi/v3".into()).await.json();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
    let r = get(url.clone()).await;
    assert_eq!(r.header("cache-control"), "public, immutable");
    let doc = r.json();
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object(), "{patch}");
    assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
    let schema = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );

    let stale = get("/openapi/v3/apis/apps/v1?hash=0000".into()).await;
    assert_eq!((stale.status, stale.header("location")), (301, url.as_str()));

    let cr_url = index["paths"]["apis/chaos-mesh.org/v1alpha1"]["serverRelativeURL"].as_str().unwrap().to_string();
    let cr = get(cr_url).await.json();
    let patch = &cr["paths"]["/apis/chaos-mesh.org/v1alpha1/namespaces/{namespace}/podchaos/{name}"]["patch"];
    let content = patch["requestBody"]["content"].as_object().unwrap();
    assert!(content.contains_key("application/merge-patch+json"));
    assert!(!content.contains_key("application/strategic-merge-patch+json"), "{patch}");
    assert!(cr["components"]["schemas"]["org.chaos-mesh.v1alpha1.PodChaos"]["properties"]["spec"].is_object());

    let v2 = get("/openapi/v2".into()).await.json();
    assert_eq!(v2["swagger"], "2.0");
    let pod_spec = &v2["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(pod_spec["x-kubernetes-patch-merge-key"], "name");
    let gnostic = request(
        &sim,
        "GET",
        "/openapi/v2",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(gnostic.status, 406);
}
