//! `pods/exec`, `pods/attach` and `pods/portforward` over WebSocket: through the machine's
//! kubectl (v5.channel.k8s.io; SPDY/3.1 tunnelled for port-forward) and through kube-rs
//! (`Api::exec`, `Api::portforward`), against process pods running `hadrill-test-server`.
//!
//! Wire behaviour checked, with the Kubernetes sources it follows: the exit status on the error
//! channel (apiserver `util/proxy/streamtranslator.go`), the channel bytes (apimachinery
//! `util/remotecommand/constants.go`), port-forward stream pairs (client-go
//! `tools/portforward/portforward.go`), the 1.35 `create` check on the WebSocket GET
//! (kubernetes `pkg/features/kube_features.go` `AuthorizePodWebsocketUpgradeCreatePermission`),
//! and the pre-upgrade 400s (kubernetes `pkg/registry/core/pod/strategy.go`).

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, PostParams};
use serde_json::json;
use sim::Sim;
use support::kubectl::{Kubectl, available};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// A pod of two process containers: `app` on 8080 with an extra variable and a working
/// directory, `side` on 8081.
fn web_pod(name: &str, workdir: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [
            {"name": "app", "image": "hadrill/test-server:dev", "workingDir": workdir,
             "env": [{"name": "GREETING", "value": "hello from $(POD_NAME)"}]},
            {"name": "side", "image": "hadrill/test-server:dev", "args": ["--port", "8081"]},
        ]},
    }))
    .expect("pod")
}

async fn start_with_pods() -> (Sim, std::path::PathBuf) {
    let sim = support::start_with(support::process_config(1)).await;
    let client = sim.client().expect("client");
    let pods: Api<Pod> = Api::default_namespaced(client);
    let workdir = std::env::temp_dir().join(format!("hadrill-exec-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&workdir).expect("workdir");
    pods.create(&PostParams::default(), &web_pod("web", workdir.to_str().expect("utf-8 path")))
        .await
        .expect("create web");
    let virt: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "virt"},
        "spec": {"containers": [{"name": "c", "image": "not/mapped:1"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &virt).await.expect("create virt");
    for name in ["web", "virt"] {
        support::await_cond(&pods, name, &format!("{name} ready"), |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .await;
    }
    (sim, workdir)
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

fn kubectl_for(dir: &std::path::Path, kubeconfig: kube::config::Kubeconfig) -> Kubectl {
    let path = dir.join(format!("kubeconfig-{}", rand_suffix()));
    sim::kubeconfig::write(&kubeconfig, &path).expect("write kubeconfig");
    Kubectl { kubeconfig: path, home: dir.to_path_buf() }
}

/// Binds Role `role` with `rules` to ServiceAccount `sa` (created if missing) in `default`.
async fn grant(sim: &Sim, sa: &str, role: &str, rules: serde_json::Value) {
    let admin = sim.client().expect("client");
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::default_namespaced(admin.clone());
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::default_namespaced(admin.clone());
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::default_namespaced(admin);
    if sas.get_opt(sa).await.expect("read the ServiceAccount").is_none() {
        let obj = serde_json::from_value(json!({"metadata": {"name": sa}})).expect("sa");
        sas.create(&PostParams::default(), &obj).await.expect("create the ServiceAccount");
    }
    let obj = serde_json::from_value(json!({"metadata": {"name": role}, "rules": rules})).expect("role");
    roles.create(&PostParams::default(), &obj).await.expect("create the Role");
    let obj = serde_json::from_value(json!({"metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "default"}]}))
    .expect("binding");
    bindings.create(&PostParams::default(), &obj).await.expect("create the RoleBinding");
}

/// Runs kubectl, which must fail with `needle` in its error output.
async fn fails_with(k: &Kubectl, args: &[&str], needle: &str) {
    let r = k.output(args, None).await;
    assert!(r.code != Some(0) && r.stderr.contains(needle), "kubectl {args:?}: want {needle:?}, got {r:?}");
}

/// A local port nothing listens on (the OS picked it; it is released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

async fn http_get(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the forwarded port");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_runs_commands_in_the_container() {
    if !available("the kubectl exec test") {
        return;
    }
    let (sim, dir) = start_with_pods().await;
    let k = kubectl_for(&dir, sim.kubeconfig());

    let r = k.output(&["exec", "web", "-c", "app", "--", "/bin/echo", "x"], None).await;
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "x\n"), "{r:?}");

    // The exit status travels on the error channel as a NonZeroExitCode Status.
    let r =
        k.output(&["exec", "web", "-c", "app", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"], None).await;
    assert_eq!((r.code, r.stdout.as_str()), (Some(3), "out\n"), "{r:?}");
    assert!(r.stderr.contains("err\n"), "{r:?}");

    let r =
        k.output(&["exec", "-i", "web", "-c", "app", "--", "/bin/sh", "-c", "tr a-z A-Z"], Some(b"pass me\n")).await;
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "PASS ME\n"), "{r:?}");

    // The container's environment, working directory and address.
    let pod_ip = sim
        .api()
        .get(&sim.api().resource("", "v1", "pods").expect("pods"), "default", "web")
        .expect("web")["status"]["podIP"]
        .as_str()
        .expect("pod IP")
        .to_string();
    let r =
        k.output(&["exec", "web", "-c", "app", "--", "/bin/sh", "-c", "echo \"$GREETING|$POD_IP|$(pwd)\""], None).await;
    let want = format!("hello from web|{pod_ip}|{}\n", dir.display());
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), want.as_str()), "{r:?}");

    // The same over plain SPDY (kubectl's fallback, or asked for).
    let spdy = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];
    let r = k
        .output_with_env(
            &["exec", "web", "-c", "app", "--", "/bin/sh", "-c", "echo x; echo e >&2; exit 3"],
            None,
            &spdy,
        )
        .await;
    assert_eq!((r.code, r.stdout.as_str()), (Some(3), "x\n"), "{r:?}");
    assert!(r.stderr.contains("e\n"), "{r:?}");
    let r = k.output_with_env(&["exec", "-i", "web", "-c", "app", "--", "/bin/cat"], Some(b"spdy in\n"), &spdy).await;
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "spdy in\n"), "{r:?}");

    // -it needs a terminal on kubectl's side: util-linux `script` lends it one.
    if std::process::Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let line =
            format!("kubectl --kubeconfig {} exec -it web -c app -- /bin/sh -c 'tty; exit 4'", k.kubeconfig.display());
        let out = tokio::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("HOME", &k.home)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("script runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(4), "{text}");
        assert!(text.contains("/dev/pts/"), "the command's stdout is a terminal: {text}");
    } else {
        eprintln!("NOTICE: util-linux script not found; skipping kubectl exec -it");
    }

    // A virtual container has no process: kube-apiserver's InternalError on the error channel.
    fails_with(
        &k,
        &["exec", "virt", "--", "/bin/echo", "x"],
        "Internal error occurred: error executing command in container: container \"c\" is virtual",
    )
    .await;

    // Pre-upgrade 400s (strategy.go): an unknown container, a pod not bound to a node.
    let pending: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
        "spec": {"nodeSelector": {"no": "such-node"}, "containers": [{"name": "c", "image": "hadrill/test-server:dev"}]},
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::default_namespaced(sim.client().expect("client"));
    pods.create(&PostParams::default(), &pending).await.expect("create pending");
    fails_with(&k, &["exec", "pending", "--", "/bin/echo", "x"], "pod pending does not have a host assigned").await;

    fails_with(&k, &["exec", "web", "-c", "nope", "--", "/bin/echo", "x"], "container nope is not valid for pod web")
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_port_forward_reaches_the_pod_on_several_ports() {
    if !available("the kubectl port-forward test") {
        return;
    }
    let (sim, dir) = start_with_pods().await;
    let k = kubectl_for(&dir, sim.kubeconfig());
    for websockets in [true, false] {
        let (a, b, closed) = (free_port(), free_port(), free_port());
        // Pod port 9: nothing listens there.
        let mut cmd =
            k.command(&["port-forward", "pod/web", &format!("{a}:8080"), &format!("{b}:8081"), &format!("{closed}:9")]);
        // WebSocket (SPDY tunnelled) first, then kubectl's plain SPDY.
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets.to_string());
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl port-forward starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        // kubectl prints one "Forwarding from" line per address once it listens.
        let mut listening = 0;
        while listening < 3 {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("kubectl port-forward announces its ports within 20 s")
                .expect("read kubectl output");
            let Some(line) = line else {
                let mut err = String::new();
                let _ = child.stderr.take().expect("stderr").read_to_string(&mut err).await;
                panic!("kubectl port-forward ended: {err}");
            };
            if line.starts_with("Forwarding from 127.0.0.1:") {
                listening += 1;
            }
        }
        for _ in 0..2 {
            for port in [a, b] {
                let resp = http_get(port).await;
                assert!(resp.starts_with("HTTP/1.1 200") && resp.ends_with("\r\n\r\nweb\n"), "{port}: {resp:?}");
            }
        }
        assert!(child.try_wait().expect("wait").is_none(), "kubectl port-forward keeps running");
        // A refused connection: the kubelet's error comes back on the error stream, and the
        // local connection is closed.
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", closed)).await.expect("connect");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "{rest:?}");
        let mut errors = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = errors.next_line().await {
                if line.contains("error forwarding port 9 to pod web") {
                    return line;
                }
            }
            String::new()
        })
        .await
        .expect("kubectl reports the error within 20 s");
        assert!(line.contains("connection refused"), "{line}");
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_without_create_gets_403() {
    if !available("the kubectl exec RBAC test") {
        return;
    }
    let (sim, dir) = start_with_pods().await;
    // get on pods/exec, all an exec needed before 1.35: not enough any more.
    grant(
        &sim,
        "viewer",
        "viewer",
        json!([{"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["get", "list"]}]),
    )
    .await;
    // kubectl sends no bearer token over plain HTTP: it acts as the ServiceAccount by
    // impersonation (the admin may impersonate).
    let k = kubectl_for(&dir, sim.kubeconfig());
    let as_viewer = ["--as=system:serviceaccount:default:viewer", "exec", "web", "-c", "app", "--", "/bin/echo", "x"];
    let r = k.output(&as_viewer, None).await;
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("cannot create resource \"pods/exec\" in API group \"\""), "{r:?}");
    assert!(r.stderr.contains("system:serviceaccount:default:viewer"), "{r:?}");
    // With create it works.
    grant(&sim, "viewer", "exec", json!([{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}])).await;
    let r = k.output(&as_viewer, None).await;
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "x\n"), "{r:?}");
    // create alone: the WebSocket GET is refused (no get), kubectl falls back to SPDY, whose
    // POST needs create only, and runs, as on kube-apiserver 1.35.
    grant(
        &sim,
        "creator",
        "creator",
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]),
    )
    .await;
    let r = k
        .output(
            &["--as=system:serviceaccount:default:creator", "exec", "web", "-c", "app", "--", "/bin/echo", "y"],
            None,
        )
        .await;
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "y\n"), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_exec_and_portforward_speak_the_protocol() {
    let (sim, dir) = start_with_pods().await;
    let pods: Api<Pod> = Api::default_namespaced(sim.client().expect("client"));

    let ap = AttachParams::default().container("app").stdout(true).stderr(true);
    let mut p = pods.exec("web", ["/bin/sh", "-c", "echo x; exit 3"], &ap).await.expect("exec");
    let mut out = String::new();
    p.stdout().expect("stdout").read_to_string(&mut out).await.expect("read stdout");
    let status = p.take_status().expect("status").await.expect("a Status on the error channel");
    p.join().await.expect("session ends cleanly");
    assert_eq!(out, "x\n");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"), "{status:?}");
    let cause = status.details.and_then(|d| d.causes).and_then(|c| c.into_iter().next()).expect("a cause");
    assert_eq!((cause.reason.as_deref(), cause.message.as_deref()), (Some("ExitCode"), Some("3")));

    // stdin, closed by the v5 close signal.
    let ap = AttachParams::default().container("app").stdin(true).stdout(true).stderr(false);
    let mut p = pods.exec("web", ["/bin/cat"], &ap).await.expect("exec cat");
    let mut stdin = p.stdin().expect("stdin");
    stdin.write_all(b"round trip").await.expect("write");
    // End of input: kube-rs sends the v5 close signal for stdin.
    stdin.shutdown().await.expect("close stdin");
    let mut out = String::new();
    p.stdout().expect("stdout").read_to_string(&mut out).await.expect("read");
    let status = p.take_status().expect("status").await.expect("status");
    assert_eq!((out.as_str(), status.status.as_deref()), ("round trip", Some("Success")));

    // -t: a terminal, resized on request (kubectl needs a terminal of its own for that).
    // kube-rs sends the resize and stdin on channels of their own from one select loop, so a
    // line can reach the terminal before the new size does (against kube-apiserver too): the
    // shell prints its size for every line, and the test asks again until the size shows.
    let ap = AttachParams::interactive_tty().container("app");
    let script = "while read _; do stty size; test -t 1 && echo tty; done";
    let mut p = pods.exec("web", ["/bin/sh", "-c", script], &ap).await.expect("exec -t");
    let mut size = p.terminal_size().expect("resize channel");
    futures::SinkExt::send(&mut size, kube::api::TerminalSize { width: 91, height: 33 }).await.expect("resize");
    let (mut stdin, mut stdout) = (p.stdin().expect("stdin"), p.stdout().expect("stdout"));
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for asked in 1.. {
        stdin.write_all(b"go\n").await.expect("write");
        while String::from_utf8_lossy(&out).matches("tty").count() < asked {
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no terminal size 33 91 within 30 s: {:?}", String::from_utf8_lossy(&out)))
                .expect("read");
            assert!(n > 0, "output ended early: {:?}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
        if String::from_utf8_lossy(&out).contains("33 91") {
            break;
        }
    }
    drop(stdin);
    p.abort();

    // WebSocket port-forward (v4.channel.k8s.io), two ports of one pod.
    let mut pf = pods.portforward("web", &[8080, 8081]).await.expect("portforward");
    let mut streams = Vec::new();
    for port in [8080, 8081] {
        let mut s = pf.take_stream(port).expect("stream");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
        streams.push((port, s));
    }
    // Once both pods sides closed, the server closes the connection: both streams end.
    for (port, mut s) in streams {
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.expect("read");
        assert!(resp.starts_with("HTTP/1.1 200") && resp.ends_with("web\n"), "{port}: {resp:?}");
    }
    // (kube-rs answers the server's close with a send of its own and reports that as an
    // error from join, whatever the server: the data above is the check.)
    pf.abort();

    // The 1.35 create check on the WebSocket GET: get alone is refused before the upgrade.
    grant(&sim, "getter", "getter", json!([{"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["get"]}]))
        .await;
    let getter: Api<Pod> = Api::default_namespaced(sim.service_account_client("default", "getter").expect("client"));
    let err = getter.exec("web", ["/bin/echo", "x"], &AttachParams::default().container("app")).await.err();
    assert!(format!("{err:?}").contains("403"), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_streams_the_main_process_output_until_it_exits() {
    let (sim, dir) = start_with_pods().await;
    let pods: Api<Pod> = Api::default_namespaced(sim.client().expect("client"));
    let ap = AttachParams::default().container("side").stdout(true).stderr(false);
    let mut attached = pods.attach("web", &ap).await.expect("attach");
    let mut stdout = attached.stdout().expect("stdout");
    let pod = pods.get("web").await.expect("web");
    let ip = pod.status.and_then(|s| s.pod_ip).expect("pod IP");
    // The test server logs this line, then exits: attach sees it, then its end.
    let mut s = tokio::net::TcpStream::connect((ip.as_str(), 8081)).await.expect("connect to side");
    s.write_all(b"POST /crash HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_string(&mut out))
        .await
        .expect("attach ends when the container exits")
        .expect("read");
    assert_eq!(out, "POST /crash\ncrashing on request\n", "the request log line, then the crash");
    let status = attached.take_status().expect("status").await.expect("status");
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");

    // A virtual container has nothing to attach to.
    let mut attached = pods.attach("virt", &AttachParams::default().stderr(false)).await.expect("attach virt");
    let status = attached.take_status().expect("status").await.expect("status");
    assert_eq!((status.reason.as_deref(), status.code), (Some("InternalError"), Some(500)), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
