//! The `hadrill-sample` binary as a pod runs it: a vehicles -> dispatch -> planner chain where
//! each downstream is a Service name resolved from `<NAME>_SERVICE_HOST/_PORT`; the results API;
//! dispatch's graceful shutdown on SIGTERM (503 readiness while draining, exit 0) and the
//! vehicles' view of it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hadrill_sample::serve::Answer;
use hadrill_sample::vehicles::results::{Heartbeat, Outcome, Results};

const BIN: &str = env!("CARGO_BIN_EXE_hadrill-sample");

struct Proc {
    child: Child,
    addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary; waits for its startup line and reads the address it listens on.
fn start(args: &[&str], env: &[(&str, String)]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .spawn()
        .expect("hadrill-sample starts");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("startup line");
    let addr = line
        .split(" on ")
        .last()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Proc { child, addr }
}

fn service_env(name: &str, addr: &str) -> Vec<(&'static str, String)> {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let prefix: &'static str = Box::leak(name.to_uppercase().into_boxed_str());
    vec![
        (Box::leak(format!("{prefix}_SERVICE_HOST").into_boxed_str()), host.to_string()),
        (Box::leak(format!("{prefix}_SERVICE_PORT").into_boxed_str()), port.to_string()),
    ]
}

async fn poll_until<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_processes_serves_vehicles_and_dispatch_shuts_down_gracefully() {
    let planner =
        start(&["serve", "--name", "planner", "--listen", "127.0.0.1:0"], &[("POD_NAME", "planner-0".into())]);
    let mut env = service_env("planner", &planner.addr);
    env.push(("POD_NAME", "dispatch-primary-0".into()));
    let mut dispatch = start(
        &[
            "serve",
            "--name",
            "dispatch",
            "--role",
            "primary",
            "--downstream",
            "planner",
            "--listen",
            "127.0.0.1:0",
            "--drain",
            "500ms",
        ],
        &env,
    );
    let http = reqwest::Client::new();
    let answer: Answer = http
        .post(format!("http://{}/v1/heartbeat", dispatch.addr))
        .send()
        .await
        .expect("dispatch answers")
        .json()
        .await
        .expect("an Answer");
    assert_eq!((answer.pod.as_str(), answer.role.as_deref()), ("dispatch-primary-0", Some("primary")));
    assert_eq!(answer.downstream.map(|d| d.pod), Some("planner-0".to_string()));

    let mut env = service_env("dispatch", &dispatch.addr);
    env.push(("POD_NAME", "vehicles-0".into()));
    let vehicles = start(
        &[
            "vehicles",
            "--target",
            "dispatch",
            "--count",
            "4",
            "--interval",
            "50ms",
            "--timeout",
            "500ms",
            "--listen",
            "127.0.0.1:0",
            "--format",
            "mixed",
        ],
        &env,
    );
    let results_url = format!("http://{}/results", vehicles.addr);
    let results = || async {
        let r: Results = http.get(&results_url).send().await.expect("results").json().await.expect("Results");
        r
    };
    poll_until("every vehicle served 5 times", Duration::from_secs(20), async || {
        let r = results().await;
        r.vehicles.iter().all(|v| v.ok >= 5).then_some(())
    })
    .await;
    let r = results().await;
    assert_eq!(r.vehicles.len(), 4);
    assert_eq!(r.vehicles.iter().map(|v| v.format.as_str()).collect::<Vec<_>>(), ["w3c", "sw8", "w3c", "sw8"]);
    assert_eq!(r.vehicles[0].served[0].side, "primary");
    assert!(r.vehicles[0].served[0].pods.contains("dispatch-primary-0"));

    // SIGTERM: readiness turns 503 while requests are still served, then the process exits 0.
    let pid = dispatch.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let ready = format!("http://{}/readyz", dispatch.addr);
    poll_until("readiness 503 while draining", Duration::from_secs(5), async || {
        let s = http.get(&ready).send().await.ok()?.status();
        (s == 503).then_some(())
    })
    .await;
    let status = tokio::task::spawn_blocking(move || dispatch.child.wait().expect("wait")).await.expect("join");
    assert!(status.success(), "graceful exit: {status}");

    poll_until("the vehicles see the outage", Duration::from_secs(10), async || {
        let r = results().await;
        r.vehicles.iter().all(|v| v.errors >= 2).then_some(())
    })
    .await;
    let failed: Vec<Heartbeat> = http
        .get(format!("http://{}/heartbeats?vehicle=v-1", vehicles.addr))
        .send()
        .await
        .expect("heartbeats")
        .json()
        .await
        .expect("list");
    let last = failed.last().expect("some heartbeats");
    assert_eq!(last.outcome, Outcome::Connect, "{last:?}");
    assert!(last.error.as_deref().is_some_and(|e| !e.is_empty()));
    assert_eq!(
        http.get(format!("http://{}/heartbeats?vehicle=nope", vehicles.addr)).send().await.expect("404").status(),
        404
    );

    let stopped: Results =
        http.post(format!("http://{}/stop", vehicles.addr)).send().await.expect("stop").json().await.expect("Results");
    assert!(!stopped.running);
    let again = results().await;
    assert_eq!(again.sent, stopped.sent, "nothing is sent after /stop");
    drop(planner);
}

#[test]
fn bad_arguments_are_named() {
    let out = Command::new(BIN).args(["serve", "--name", "x", "--listen", "nowhere"]).output().expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--listen \"nowhere\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN).args(["vehicles", "--target", "ftp://x"]).output().expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftp://x"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN)
        .args(["serve", "--name", "x", "--listen", "127.0.0.1:0"])
        .env("OTEL_BSP_SCHEDULE_DELAY", "soon")
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OTEL_BSP_SCHEDULE_DELAY"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
