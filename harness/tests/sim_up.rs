//! `hadrill sim up --nodes 3`, then `kubectl apply -f` a Deployment of a mapped image: its pods
//! run as processes, become Ready, and answer on their pod IPs and through the Service; Ctrl-C
//! stops the cluster and its processes.
//!
//! kubectl is optional for users: without it this test prints a notice and passes, unless
//! HADRILL_REQUIRE_KUBECTL=1 (set by CI) makes its absence a failure.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod sim_process;

use sim_process::sim_up;

const PORT: u16 = 18401;

fn kubectl_available() -> bool {
    let found = Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("HADRILL_REQUIRE_KUBECTL").is_err(),
            "kubectl is required (HADRILL_REQUIRE_KUBECTL is set) but not found"
        );
        eprintln!("NOTICE: kubectl not found on PATH; skipping the `hadrill sim up` + kubectl test");
    }
    found
}

fn manifest() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: hadrill/test-server:dev
        env: [{{name: PORT, value: "{PORT}"}}]
        ports: [{{name: http, containerPort: {PORT}}}]
        readinessProbe: {{httpGet: {{path: /readyz, port: http}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: {PORT}}}]
"#
    )
}

struct Kubectl {
    kubeconfig: std::path::PathBuf,
    home: std::path::PathBuf,
}

impl Kubectl {
    fn ok(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HOME", &self.home)
            .output()
            .expect("kubectl runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "kubectl {} failed:\n{text}", args.join(" "));
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// `GET /` of the test server: its pod name.
async fn who(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await??;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    Ok(buf.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_up_runs_applied_deployments_as_processes_reachable_by_pod_ip_and_service() {
    if !kubectl_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hadrill-sim-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    let (mut up, banner) = sim_up(&kubeconfig, 3).await;
    assert!(banner.contains("image hadrill/test-server runs"), "{banner}");

    let k = Kubectl { kubeconfig, home: dir.clone() };
    assert_eq!(k.ok(&["get", "nodes", "-o", "name"]).lines().count(), 3);
    let file = dir.join("web.yaml");
    std::fs::write(&file, manifest()).expect("write manifest");
    k.ok(&["apply", "-f", file.to_str().expect("utf-8 path")]);
    k.ok(&["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"]);
    k.ok(&["wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=60s"]);

    let pods = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.status.phase}{\"\\n\"}{end}",
    ]);
    let mut names = Vec::new();
    for line in pods.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 3, "{line}");
        assert_eq!(f[2], "Running", "{line}");
        let addr = SocketAddr::new(f[1].parse().expect("pod IP"), PORT);
        assert_eq!(who(addr).await.expect("the pod answers on its IP"), f[0]);
        names.push(f[0].to_string());
    }
    assert_eq!(names.len(), 2);
    let ip = k.ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let vip = SocketAddr::new(ip.trim().parse().expect("cluster IP"), 80);
    let served = who(vip).await.expect("the Service answers");
    assert!(names.contains(&served), "{served} is one of {names:?}");

    // Ctrl-C: the cluster stops and takes its processes with it.
    let pid = up.id().expect("pid").to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().expect("kill runs").success());
    let status = tokio::time::timeout(Duration::from_secs(30), up.wait()).await.expect("stops").expect("exit status");
    assert!(status.success(), "{status}");
    let first = pods.split_whitespace().nth(1).expect("first pod IP");
    let gone = who(SocketAddr::new(first.parse().expect("IP"), PORT)).await;
    assert!(gone.is_err(), "a pod process survived the cluster: {gone:?}");
    std::fs::remove_dir_all(&dir).ok();
}
