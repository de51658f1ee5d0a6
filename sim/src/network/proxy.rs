//! The proxy itself: one TCP listener per ClusterIP and Service port with ready endpoints, and
//! one relay task per accepted connection.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use super::ProxyConfig;
use super::endpoints::{self, SERVICE_NAME_LABEL};
use crate::api::ops::{Api, ListOptions};
use crate::api::resources::{GroupResource, ResourceType};
use crate::api::store::Event;

/// Relay buffer per direction.
const BUFFER: usize = 64 * 1024;

/// ClientIP session affinity: each client address sticks to one backend for a while.
#[derive(Debug)]
struct Affinity {
    timeout: Duration,
    table: HashMap<IpAddr, (SocketAddr, Instant)>,
}

/// The backends of one frontend, swapped in place when the endpoints change.
#[derive(Debug, Default)]
pub struct Backends {
    list: RwLock<Arc<Vec<SocketAddr>>>,
    next: AtomicUsize,
    affinity: Mutex<Option<Affinity>>,
}

impl Backends {
    /// The backend for a new connection from `client`: round-robin, or the client's sticky
    /// backend under ClientIP affinity. `None` when there is no backend.
    pub fn pick(&self, client: IpAddr) -> Option<SocketAddr> {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner()).clone();
        if list.is_empty() {
            return None;
        }
        let mut affinity = self.affinity.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = affinity.as_mut()
            && let Some((backend, at)) = a.table.get(&client).copied()
            && at.elapsed() < a.timeout
            && list.contains(&backend)
        {
            a.table.insert(client, (backend, Instant::now()));
            return Some(backend);
        }
        let chosen = list[self.next.fetch_add(1, Ordering::Relaxed) % list.len()];
        if let Some(a) = affinity.as_mut() {
            a.table.insert(client, (chosen, Instant::now()));
        }
        Some(chosen)
    }

    fn set(&self, list: Vec<SocketAddr>, affinity: Option<Duration>) {
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
        let mut a = self.affinity.lock().unwrap_or_else(|p| p.into_inner());
        match (affinity, a.as_mut()) {
            (None, _) => *a = None,
            (Some(t), Some(existing)) => existing.timeout = t,
            (Some(t), None) => *a = Some(Affinity { timeout: t, table: HashMap::new() }),
        }
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug)]
struct Frontend {
    backends: Arc<Backends>,
    _task: AbortOnDrop,
}

type Key = (String, String);

struct Proxy {
    api: Arc<Api>,
    config: ProxyConfig,
    services_rt: Arc<ResourceType>,
    slices_rt: Arc<ResourceType>,
    endpoints_rt: Arc<ResourceType>,
    frontends: HashMap<SocketAddr, Frontend>,
    by_service: HashMap<Key, BTreeSet<SocketAddr>>,
    /// Services with a frontend that could not be bound yet.
    retry: BTreeSet<Key>,
    /// Dropped with the proxy: every relay task watching it ends.
    _shutdown: watch::Sender<()>,
    shutdown_rx: watch::Receiver<()>,
}

/// Runs the proxy until the event channel closes.
pub async fn run(api: Arc<Api>, mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>, config: ProxyConfig) {
    let (Ok(services_rt), Ok(slices_rt), Ok(endpoints_rt)) = (
        api.resource("", "v1", "services"),
        api.resource("discovery.k8s.io", "v1", "endpointslices"),
        api.resource("", "v1", "endpoints"),
    ) else {
        return;
    };
    let (tx, rx) = watch::channel(());
    let mut retry = tokio::time::interval(config.bind_retry.max(Duration::from_millis(10)));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut p = Proxy {
        api,
        config,
        services_rt,
        slices_rt,
        endpoints_rt,
        frontends: HashMap::new(),
        by_service: HashMap::new(),
        retry: BTreeSet::new(),
        _shutdown: tx,
        shutdown_rx: rx,
    };
    let all: Vec<Key> = p
        .api
        .list(&p.services_rt, None, &ListOptions::default())
        .map(|l| l.items.iter().map(|s| crate::api::store::key_of(s)).collect())
        .unwrap_or_default();
    for key in all {
        p.sync(&key);
    }
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(first) = ev else { return };
                let mut dirty = BTreeSet::new();
                services_of(&first.0, &first.1, &mut dirty);
                while let Ok((gr, ev)) = events.try_recv() {
                    services_of(&gr, &ev, &mut dirty);
                }
                for key in dirty {
                    p.sync(&key);
                }
            }
            _ = retry.tick(), if !p.retry.is_empty() => {
                let keys: Vec<Key> = std::mem::take(&mut p.retry).into_iter().collect();
                for key in keys {
                    p.sync(&key);
                }
            }
        }
    }
}

/// The Services an event may change the proxying of.
fn services_of(gr: &GroupResource, ev: &Event, out: &mut BTreeSet<Key>) {
    match (gr.group.as_str(), gr.resource.as_str()) {
        ("", "services") | ("", "endpoints") => {
            out.insert(crate::api::store::key_of(&ev.object));
        }
        ("discovery.k8s.io", "endpointslices") => {
            for obj in std::iter::once(&ev.object).chain(ev.old.iter()) {
                let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
                if let Some(svc) = obj["metadata"]["labels"][SERVICE_NAME_LABEL].as_str() {
                    out.insert((ns.to_string(), svc.to_string()));
                }
            }
        }
        _ => {}
    }
}

impl Proxy {
    /// What the Service should be served as now: frontend address → backends, affinity.
    fn desired(&self, key: &Key) -> (HashMap<SocketAddr, Vec<SocketAddr>>, Option<Duration>) {
        let mut out = HashMap::new();
        let Ok(svc) = self.api.get(&self.services_rt, &key.0, &key.1) else { return (out, None) };
        let (ips, ports) = endpoints::frontends(&svc);
        if ips.is_empty() || ports.is_empty() {
            return (out, None);
        }
        let slices: Vec<Arc<Value>> = self
            .api
            .list(&self.slices_rt, Some(&key.0), &ListOptions::default())
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["metadata"]["labels"][SERVICE_NAME_LABEL] == key.1.as_str())
            .collect();
        let slices: Vec<&Value> = slices.iter().map(|s| &**s).collect();
        let core = self.api.get(&self.endpoints_rt, &key.0, &key.1).ok();
        for ip in &ips {
            for port in &ports {
                let backends = endpoints::from_slices(&slices, port, ip.is_ipv4())
                    .unwrap_or_else(|| core.as_deref().map(|e| endpoints::from_endpoints(e, port)).unwrap_or_default());
                if !backends.is_empty() {
                    out.insert(SocketAddr::new(*ip, port.port), backends);
                }
            }
        }
        let affinity = (svc["spec"]["sessionAffinity"] == "ClientIP").then(|| {
            let secs = svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"].as_u64().unwrap_or(10_800);
            Duration::from_secs(secs)
        });
        (out, affinity)
    }

    /// Brings the listeners of one Service in line with its endpoints.
    fn sync(&mut self, key: &Key) {
        let (desired, affinity) = self.desired(key);
        let current = self.by_service.remove(key).unwrap_or_default();
        for addr in current.iter().filter(|a| !desired.contains_key(a)) {
            if self.frontends.remove(addr).is_some() {
                tracing::debug!(service = %key.1, %addr, "service proxy listener closed");
            }
        }
        let mut live = BTreeSet::new();
        for (addr, backends) in desired {
            if let Some(f) = self.frontends.get(&addr) {
                f.backends.set(backends, affinity);
                live.insert(addr);
                continue;
            }
            match bind(addr) {
                Ok(listener) => {
                    let shared = Arc::new(Backends::default());
                    shared.set(backends, affinity);
                    let task =
                        tokio::spawn(serve(listener, shared.clone(), self.config.clone(), self.shutdown_rx.clone()));
                    self.frontends.insert(addr, Frontend { backends: shared, _task: AbortOnDrop(task) });
                    live.insert(addr);
                }
                Err(e) => {
                    tracing::warn!(service = %key.1, %addr, error = %e, "service proxy cannot listen yet; will retry");
                    self.retry.insert(key.clone());
                }
            }
        }
        if !live.is_empty() {
            self.by_service.insert(key.clone(), live);
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn serve(listener: TcpListener, backends: Arc<Backends>, config: ProxyConfig, shutdown: watch::Receiver<()>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "service proxy accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let backends = backends.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(relay(client, peer, backends, config.clone(), shutdown));
    }
}

/// Ends a client connection with a reset, as a rejected or unreachable backend would.
fn reset(client: TcpStream) {
    // SO_LINGER 0 makes the close send RST without blocking.
    #[allow(deprecated)]
    let _ = client.set_linger(Some(Duration::ZERO));
    drop(client);
}

async fn relay(
    client: TcpStream,
    peer: SocketAddr,
    backends: Arc<Backends>,
    config: ProxyConfig,
    mut shutdown: watch::Receiver<()>,
) {
    let (connect_timeout, zero_copy, faults) = (config.connect_timeout, config.zero_copy, config.faults);
    let Some(backend) = backends.pick(peer.ip()) else {
        reset(client);
        return;
    };
    // NetworkChaos delay: the handshake crosses both ways once before the connection exists.
    let up = faults.delay(peer.ip(), backend.ip());
    let down = faults.delay(backend.ip(), peer.ip());
    let delayed = up.is_some() || down.is_some();
    if delayed {
        tokio::time::sleep(up.unwrap_or_default() + down.unwrap_or_default()).await;
    }
    let socket = match if backend.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() } {
        Ok(s) => s,
        Err(_) => {
            reset(client);
            return;
        }
    };
    // A client on a pod address is seen by the backend with that address, as after
    // kube-proxy's DNAT (127.0.0.1 is left to the kernel to spare bound ephemeral ports).
    if peer.ip().is_loopback() && peer.ip() != IpAddr::from([127, 0, 0, 1]) && backend.ip().is_loopback() {
        let _ = socket.set_reuseaddr(true);
        let _ = socket.bind(SocketAddr::new(peer.ip(), 0));
    }
    let upstream = match tokio::time::timeout(connect_timeout, socket.connect(backend)).await {
        Ok(Ok(s)) => s,
        _ => {
            reset(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if delayed {
        let (c, u) = (peer.ip(), backend.ip());
        tokio::select! {
            _ = pump_delayed(client, upstream, faults, c, u) => {}
            _ = shutdown.changed() => {}
        }
        return;
    }
    tokio::select! {
        _ = pump(client, upstream, zero_copy) => {}
        _ = shutdown.changed() => {}
    }
}

/// Moves bytes both ways, each chunk held back by the delay the fault table gives its
/// direction when it was read (order kept); until both directions ended.
async fn pump_delayed(
    client: TcpStream,
    upstream: TcpStream,
    faults: super::faults::Faults,
    client_ip: IpAddr,
    backend_ip: IpAddr,
) {
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let f2 = faults.clone();
    tokio::join!(
        delayed_copy(cr, uw, move || faults.delay(client_ip, backend_ip)),
        delayed_copy(ur, cw, move || f2.delay(backend_ip, client_ip)),
    );
}

async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: impl Fn() -> Option<Duration>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; BUFFER];
        let mut last = tokio::time::Instant::now();
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Jitter must not reorder: never due before the previous chunk.
                    let due = (tokio::time::Instant::now() + delay().unwrap_or_default()).max(last);
                    last = due;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Moves bytes both ways until both directions ended: zero-copy on Linux, else (or without
/// pipes) through buffers.
async fn pump(mut client: TcpStream, mut upstream: TcpStream, zero_copy: bool) {
    #[cfg(not(target_os = "linux"))]
    let _ = zero_copy;
    #[cfg(target_os = "linux")]
    if zero_copy && let Ok(pipes) = super::splice::pipes() {
        let _ = super::splice::relay(&client, &upstream, pipes).await;
        return;
    }
    let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_client_ip_affinity() {
        let b = Backends::default();
        let (x, y): (SocketAddr, SocketAddr) = ("127.11.0.1:80".parse().unwrap(), "127.12.0.1:80".parse().unwrap());
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(b.pick(client), None);
        b.set(vec![x, y], None);
        let picks: Vec<_> = (0..4).map(|_| b.pick(client).unwrap()).collect();
        assert_eq!(picks, vec![x, y, x, y]);
        b.set(vec![x, y], Some(Duration::from_secs(60)));
        let first = b.pick(client).unwrap();
        assert!((0..5).all(|_| b.pick(client) == Some(first)), "sticky under ClientIP affinity");
        b.set(vec![y], Some(Duration::from_secs(60)));
        assert_eq!(b.pick(client), Some(y), "a removed backend is not sticky any more");
    }
}
