//! The work queue of the workload controllers, as client-go's rate-limited queue: store events are
//! mapped to object keys, each key is queued once (first come, first served), reconciled against
//! the current store contents, and re-queued after a delay when the reconciler asks for it (e.g.
//! when `minReadySeconds` elapses) or with exponential back-off when it fails.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::podutil::Key;
use crate::api::ops::Api;
use crate::api::resources::GroupResource;
use crate::api::status::ApiResult;
use crate::api::store::Event;

/// A level-triggered controller.
pub trait Reconciler: Send {
    /// Controller name for logs.
    fn name(&self) -> &'static str;
    /// Appends the keys an event concerns to `out`.
    fn keys(&mut self, api: &Api, gr: &GroupResource, event: &Event, out: &mut Vec<Key>);
    /// Brings the object `key` to its desired state; `Ok(Some(d))` asks to look again after `d`.
    fn reconcile(&mut self, api: &Api, key: &Key) -> ApiResult<Option<Duration>>;
}

#[derive(Default)]
struct Queue {
    order: VecDeque<Key>,
    queued: HashSet<Key>,
    delayed: HashMap<Key, Instant>,
    failures: HashMap<Key, u32>,
}

impl Queue {
    fn add(&mut self, key: Key) {
        if self.queued.insert(key.clone()) {
            self.order.push_back(key);
        }
    }

    fn add_after(&mut self, key: Key, after: Duration) {
        if after.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + after;
        let slot = self.delayed.entry(key).or_insert(at);
        if at < *slot {
            *slot = at;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.delayed.values().min().copied()
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        let due: Vec<Key> = self.delayed.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for k in due {
            self.delayed.remove(&k);
            self.add(k);
        }
    }

    fn pop(&mut self) -> Option<Key> {
        let key = self.order.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }
}

/// Runs `reconciler` over the store events until the channel closes.
pub async fn run<R: Reconciler>(
    api: Arc<Api>,
    mut events: UnboundedReceiver<(GroupResource, Arc<Event>)>,
    mut reconciler: R,
) {
    let mut queue = Queue::default();
    let mut keys = Vec::new();
    loop {
        let deadline = queue.next_deadline();
        tokio::select! {
            ev = events.recv() => {
                let Some((gr, e)) = ev else { return };
                reconciler.keys(&api, &gr, &e, &mut keys);
            }
            _ = sleep_until(deadline), if deadline.is_some() => {}
        }
        loop {
            while let Ok((gr, e)) = events.try_recv() {
                reconciler.keys(&api, &gr, &e, &mut keys);
            }
            for k in keys.drain(..) {
                queue.add(k);
            }
            queue.promote_due();
            let Some(key) = queue.pop() else { break };
            match reconciler.reconcile(&api, &key) {
                Ok(again) => {
                    queue.failures.remove(&key);
                    if let Some(after) = again {
                        queue.add_after(key, after);
                    }
                }
                Err(e) => {
                    let n = queue.failures.entry(key.clone()).or_insert(0);
                    *n = (*n + 1).min(11);
                    let n = *n;
                    // A conflict means somebody else wrote first: look again at once (the new
                    // version is already stored), backing off only if it keeps happening.
                    let base = if e.code == 409 { 1 } else { 5 };
                    if e.code != 409 {
                        tracing::warn!(controller = reconciler.name(), namespace = %key.0, name = %key.1, error = %e, "reconcile failed");
                    }
                    queue.add_after(key, Duration::from_millis(base << n));
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: &str) -> Key {
        ("ns".into(), n.into())
    }

    #[test]
    fn keys_are_deduplicated_in_arrival_order() {
        let mut q = Queue::default();
        q.add(k("b"));
        q.add(k("a"));
        q.add(k("b"));
        assert_eq!(q.pop(), Some(k("b")));
        assert_eq!(q.pop(), Some(k("a")));
        assert_eq!(q.pop(), None);
    }

    #[tokio::test]
    async fn delayed_keys_keep_the_earliest_deadline() {
        let mut q = Queue::default();
        q.add_after(k("a"), Duration::from_secs(60));
        q.add_after(k("a"), Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
        q.promote_due();
        assert_eq!(q.pop(), Some(k("a")));
    }
}
