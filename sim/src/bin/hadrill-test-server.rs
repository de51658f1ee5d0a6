//! `hadrill-test-server`: the workload the embedded kubelet runs in tests.
//!
//! Listens on `$POD_IP:$PORT` (`POD_IP` default 127.0.0.1; port from `--port`, else `$PORT`,
//! else 8080) and serves:
//! - `GET /healthz`: 200 `ok`
//! - `GET /readyz`: 200, or 503 after `POST /ready/off` (200 again after `POST /ready/on`)
//! - `GET /`: the pod name (`$POD_NAME`)
//! - `ANY /echo...`: 200 with the method, path and query on the first line, then the body;
//!   header `x-echo-header` repeats the request's `x-echo` header
//! - `POST /crash`: exits with status 1
//! - `POST /hang`: from then on, no request is answered
//!
//! Prints a startup line and one line per request to stdout. On SIGTERM it drains for
//! `--drain-ms` (default 200) and exits 0; with `--ignore-sigterm` it only logs the signal.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Default)]
struct Flags {
    unready: AtomicBool,
    hung: AtomicBool,
}

struct Options {
    port: u16,
    ignore_sigterm: bool,
    drain: Duration,
}

fn options() -> Result<Options, String> {
    let mut port = std::env::var("PORT").ok().map(|p| p.parse::<u16>().map_err(|e| format!("PORT {p:?}: {e}")));
    let mut ignore_sigterm = false;
    let mut drain = Duration::from_millis(200);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let v = args.next().ok_or("--port needs a value")?;
                port = Some(v.parse::<u16>().map_err(|e| format!("--port {v:?}: {e}")));
            }
            "--ignore-sigterm" => ignore_sigterm = true,
            "--drain-ms" => {
                let v = args.next().ok_or("--drain-ms needs a value")?;
                drain = Duration::from_millis(v.parse().map_err(|e| format!("--drain-ms {v:?}: {e}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options { port: port.transpose()?.unwrap_or(8080), ignore_sigterm, drain })
}

async fn handle(
    State(flags): State<Arc<Flags>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    println!("{method} {uri}");
    if flags.hung.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if uri.path().starts_with("/echo") {
        let text = format!("{method} {uri}\n{}", String::from_utf8_lossy(&body));
        let echoed = headers.get("x-echo").cloned().unwrap_or(HeaderValue::from_static(""));
        return (StatusCode::OK, [("x-echo-header", echoed)], text).into_response();
    }
    match (&method, uri.path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "ok\n").into_response(),
        (&Method::GET, "/readyz") => {
            if flags.unready.load(Ordering::SeqCst) {
                (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
            } else {
                (StatusCode::OK, "ready\n").into_response()
            }
        }
        (&Method::GET, "/") => {
            (StatusCode::OK, format!("{}\n", std::env::var("POD_NAME").unwrap_or_default())).into_response()
        }
        (&Method::POST, "/ready/off") => {
            flags.unready.store(true, Ordering::SeqCst);
            (StatusCode::OK, "readiness off\n").into_response()
        }
        (&Method::POST, "/ready/on") => {
            flags.unready.store(false, Ordering::SeqCst);
            (StatusCode::OK, "readiness on\n").into_response()
        }
        (&Method::POST, "/crash") => {
            println!("crashing on request");
            std::process::exit(1);
        }
        (&Method::POST, "/hang") => {
            println!("hanging on request");
            flags.hung.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hadrill-test-server: {e}");
            std::process::exit(2);
        }
    };
    let ip: IpAddr = match std::env::var("POD_IP").ok().filter(|s| !s.is_empty()) {
        Some(s) => match s.parse() {
            Ok(ip) => ip,
            Err(e) => {
                eprintln!("hadrill-test-server: POD_IP {s:?}: {e}");
                std::process::exit(2);
            }
        },
        None => IpAddr::from([127, 0, 0, 1]),
    };
    let addr = SocketAddr::new(ip, opts.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hadrill-test-server: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hadrill-test-server: cannot handle SIGTERM: {e}");
            std::process::exit(1);
        }
    };
    let app = Router::new().fallback(handle).with_state(Arc::new(Flags::default()));
    println!(
        "hadrill-test-server {} listening on {addr} (pid {})",
        std::env::var("POD_NAME").unwrap_or_default(),
        std::process::id()
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    loop {
        term.recv().await;
        if opts.ignore_sigterm {
            println!("received SIGTERM, ignoring it");
            continue;
        }
        println!("received SIGTERM, draining for {} ms", opts.drain.as_millis());
        tokio::time::sleep(opts.drain).await;
        server.abort();
        println!("bye");
        std::process::exit(0);
    }
}
