//! Black-box health: the controller's own HTTP probes find a pod that stopped answering while
//! its status still says Ready.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hadrill_controller::annotations::{PRIMARY, STANDBY};
use hadrill_controller::probe::ProbeSettings;
use kube::ResourceExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::support::*;

/// A minimal HTTP server answering 200 to everything, standing in for a pod.
async fn pod_server(ip: [u8; 4]) -> (SocketAddr, JoinHandle<()>) {
    let listener =
        tokio::net::TcpListener::bind((std::net::Ipv4Addr::from(ip), 0)).await.expect("bind a loopback pod IP");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_primary_is_found_by_probing_and_switched() {
    let env = Env::start().await;
    let probe = ProbeSettings {
        period: Duration::from_millis(200),
        timeout: Duration::from_millis(300),
        failure_threshold: 3,
        ..ProbeSettings::default()
    };
    let mut s = settings("ctl-0");
    s.checks.black_box = true;
    s.probe = probe.clone();
    let ctl = env.start_controller(s);

    let (primary_addr, primary_server) = pod_server([127, 11, 0, 2]).await;
    let (standby_addr, _standby_server) = pod_server([127, 11, 0, 3]).await;
    env.deployment("web-a", 0).await;
    env.statefulset("web-b", 0).await;
    env.pod("web-a-0", "web-a", NODE1, Some(("127.11.0.2", primary_addr.port()))).await;
    env.pod("web-b-0", "web-b", NODE2, Some(("127.11.0.3", standby_addr.port()))).await;
    // Replicas 0 at creation (no pods generated); scale to 1 to match the pods.
    for (kind, name) in [("deployments", "web-a"), ("statefulsets", "web-b")] {
        scale(&env, kind, name, 1).await;
    }
    env.service("web", "web-a", &[(PRIMARY, "deployment/web-a"), (STANDBY, "statefulset/web-b")]).await;
    env.await_service("web", "adoption", |s| {
        active(s) == Some("primary") && condition(s).is_some_and(|c| c.message.contains("1/1 pods healthy"))
    })
    .await;

    // The primary's "node" loses its network: the pod stops answering, its status stays Ready.
    primary_server.abort();
    let cut = Instant::now();
    let budget = probe.period * (probe.failure_threshold + 1) + probe.timeout + Duration::from_secs(2);
    let svc =
        within(budget, "black-box failover", env.await_service("web", "switch", |s| selects(s) == Some("web-b"))).await;
    let took = cut.elapsed();
    assert_eq!(active(&svc), Some("standby"));
    let pod = env.pods().get("web-a-0").await.expect("pod");
    assert!(hadrill_controller::health::is_ready(&pod), "the white box still sees the pod Ready");
    let e = env.await_event("web", "FailedOver", |e| e.reason.as_deref() == Some("FailedOver")).await;
    let want = format!("web-a-0: probe http://127.11.0.2:{}/healthz failed 3 times", primary_addr.port());
    assert!(e.note.as_deref().is_some_and(|n| n.contains(&want)), "{:?}", e.note);
    assert!(ctl.handle.metrics.encode().contains("detector=\"black-box\""));
    println!("black-box detection to switch: {took:?} (budget {budget:?}) for {}", svc.name_any());
}

async fn scale(env: &Env, plural: &str, name: &str, replicas: i32) {
    use kube::api::{Patch, PatchParams};
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    let pp = PatchParams::default();
    match plural {
        "deployments" => {
            kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(env.admin.clone(), NS)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await
                .expect("scale");
        }
        _ => {
            kube::Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(env.admin.clone(), NS)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await
                .expect("scale");
        }
    }
}
