//! A call through the API server's pod proxy to a pod whose process was killed ends quickly.
//!
//! The API server answers 503 for a pod it cannot reach (kube-apiserver's proxy error
//! responder: staging/src/k8s.io/apimachinery/pkg/util/proxy/transport.go, and the embedded
//! cluster's sim/src/api/http/proxy/), and kube's client retries 503 with backoff for minutes;
//! the harness's proxied calls must not wait for that. The acceptance bound is 2 s.

use std::time::{Duration, Instant};

use hadrill::cluster::embedded;
use hadrill::cluster::endpoint::{Endpoint, PROXY_TIMEOUT};
use hadrill::probes::wait::until;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

const PORT: u16 = 18431;

fn pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            // Stays dead once killed: a restart would make the retries succeed after all.
            "restartPolicy": "Never",
            "containers": [{
                "name": "web",
                "image": "hadrill/test-server:dev",
                "env": [{"name": "PORT", "value": PORT.to_string()}],
                "ports": [{"name": "http", "containerPort": PORT}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1}
            }]
        }
    }))
    .expect("pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_call_to_a_killed_pod_fails_within_two_seconds() {
    sim::install_crypto_provider();
    let sim = embedded::start(1).await.expect("embedded cluster");
    let client = sim.client().expect("client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod()).await.expect("create pod");
    let running = until(&pods, "web", "pod web Ready", |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
    .expect("the pod becomes Ready");

    // Alive: the proxy path works and answers with the pod's name.
    let endpoint = Endpoint::pod(client.clone(), "default", "web", &PORT.to_string());
    let body = endpoint.get("/", &[]).await.expect("proxied GET").success("GET /").expect("200");
    assert_eq!(String::from_utf8_lossy(&body).trim(), "web");

    // Killed (SIGKILL, as a runtime or Chaos Mesh's container-kill does), never restarted.
    let uid = running.metadata.uid.clone().expect("uid");
    let node = running.spec.as_ref().and_then(|s| s.node_name.clone()).expect("scheduled");
    sim.kubelets().node(&node).expect("node").kill_container(&uid, "web").await.expect("kill");

    let start = Instant::now();
    let result = endpoint.get("/", &[]).await;
    let elapsed = start.elapsed();
    println!("proxied call to the killed pod returned after {:.3} s", elapsed.as_secs_f64());
    let err = match result {
        Ok(answer) => panic!("the killed pod answered: {} {:?}", answer.status, answer.body),
        Err(e) => e,
    };
    // It ended at the proxy deadline (every answer was a retried 503), with a message naming
    // the call and what to check.
    assert!(err.chain().any(|e| e.is::<tokio::time::error::Elapsed>()), "{err:#}");
    let text = format!("{err:#}");
    assert!(
        text.contains("GET /") && text.contains("pods/web:18431/proxy") && text.contains("is the pod running"),
        "{text}"
    );
    assert!(elapsed >= PROXY_TIMEOUT, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "the call took {elapsed:?}");

    // The kubelet records the kill (exit 137, no restart): the pod stays dead, and still fails fast.
    until(&pods, "web", "pod web Failed", |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await
    .expect("the pod fails");
    let start = Instant::now();
    let err = endpoint.get("/", &[]).await.expect_err("a Failed pod does not answer");
    println!("proxied call to the Failed pod returned after {:.3} s: {err:#}", start.elapsed().as_secs_f64());
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    sim.stop().await;
}
