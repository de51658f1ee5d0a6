//! Container logs: the stdout and stderr of each container instance, line by line, in a bounded
//! buffer (oldest lines dropped), plus the previous instance's log for `?previous`. Serves the
//! API server's `pods/{name}/log` ([`LogSource`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::api::http::{LogQuery, LogSource, LogStream};
use crate::api::status::{ApiError, ApiResult};

/// The log of one container instance.
#[derive(Debug)]
pub struct ContainerLog {
    inner: Mutex<LogInner>,
    limit: usize,
}

#[derive(Debug, Default)]
struct LogInner {
    lines: VecDeque<String>,
    bytes: usize,
    closed: bool,
    followers: Vec<mpsc::UnboundedSender<String>>,
}

impl ContainerLog {
    /// An open log keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { inner: Mutex::new(LogInner::default()), limit: limit.max(1) }
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one line (with its newline, if it had one).
    pub fn push(&self, line: String) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        inner.followers.retain(|f| f.send(line.clone()).is_ok());
        inner.bytes += line.len();
        inner.lines.push_back(line);
        while inner.bytes > self.limit {
            match inner.lines.pop_front() {
                Some(old) => inner.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Marks the instance as stopped: followers' streams end.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.followers.clear();
    }

    /// The kept text (the last `tail` lines if given).
    pub fn text(&self, tail: Option<usize>) -> String {
        let inner = self.lock();
        let skip = tail.map_or(0, |t| inner.lines.len().saturating_sub(t));
        inner.lines.iter().skip(skip).map(String::as_str).collect()
    }

    /// The kept text and, unless the instance stopped, a receiver of every later line.
    fn follow(&self, tail: Option<usize>) -> (String, Option<mpsc::UnboundedReceiver<String>>) {
        let mut inner = self.lock();
        let skip = tail.map_or(0, |t| inner.lines.len().saturating_sub(t));
        let text = inner.lines.iter().skip(skip).map(String::as_str).collect();
        if inner.closed {
            return (text, None);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.followers.push(tx);
        (text, Some(rx))
    }
}

#[derive(Debug, Default)]
struct Slots {
    current: Option<Arc<ContainerLog>>,
    previous: Option<Arc<ContainerLog>>,
}

/// Logs of every pod of every node, by pod uid and container name.
#[derive(Debug)]
pub struct LogStore {
    pods: Mutex<HashMap<String, HashMap<String, Slots>>>,
    limit: usize,
}

impl LogStore {
    /// A store keeping at most `limit` bytes per container instance.
    pub fn new(limit: usize) -> Self {
        Self { pods: Mutex::new(HashMap::new()), limit }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, Slots>>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the log of a new container instance; the current one becomes the previous.
    pub fn start_instance(&self, pod_uid: &str, container: &str) -> Arc<ContainerLog> {
        let log = Arc::new(ContainerLog::new(self.limit));
        let mut pods = self.lock();
        let slots = pods.entry(pod_uid.to_string()).or_default().entry(container.to_string()).or_default();
        if let Some(cur) = slots.current.take() {
            cur.close();
            slots.previous = Some(cur);
        }
        slots.current = Some(log.clone());
        log
    }

    /// Forgets a pod's logs (its pod is gone).
    pub fn remove_pod(&self, pod_uid: &str) {
        if let Some(containers) = self.lock().remove(pod_uid) {
            for slot in containers.values() {
                if let Some(c) = &slot.current {
                    c.close();
                }
            }
        }
    }

    fn instance(&self, pod_uid: &str, container: &str, previous: bool) -> Option<Arc<ContainerLog>> {
        let pods = self.lock();
        let slots = pods.get(pod_uid)?.get(container)?;
        if previous { slots.previous.clone() } else { slots.current.clone() }
    }
}

impl LogSource for LogStore {
    fn logs(&self, pod: &Value, query: &LogQuery) -> ApiResult<LogStream> {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let containers: Vec<&str> = pod["spec"]["containers"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        let container = match &query.container {
            Some(c) => {
                let known = containers.contains(&c.as_str())
                    || pod["spec"]["initContainers"].as_array().is_some_and(|cs| cs.iter().any(|x| x["name"] == *c));
                if !known {
                    return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
                }
                c.clone()
            }
            None if containers.len() == 1 => containers[0].to_string(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                )));
            }
        };
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
        }
        let Some(log) = self.instance(uid, &container, query.previous) else {
            return Err(if query.previous {
                ApiError::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{name}\" not found"
                ))
            } else {
                let reason = waiting_reason(pod, &container).unwrap_or_else(|| "ContainerCreating".into());
                ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
                ))
            });
        };
        if !query.follow {
            return Ok(LogStream { text: log.text(query.tail_lines), follow: None });
        }
        let (text, rx) = log.follow(query.tail_lines);
        let follow = rx.map(|mut rx| {
            let (tx, out) = mpsc::channel(64);
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
            out
        });
        Ok(LogStream { text, follow })
    }
}

fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == container)
        .and_then(|s| s["state"]["waiting"]["reason"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_tail_and_previous() {
        let store = LogStore::new(10);
        let a = store.start_instance("u", "c");
        for i in 0..5 {
            a.push(format!("l{i}\n"));
        }
        assert_eq!(a.text(None), "l2\nl3\nl4\n");
        assert_eq!(a.text(Some(1)), "l4\n");
        let b = store.start_instance("u", "c");
        b.push("new\n".into());
        let pod = serde_json::json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"nodeName": "n", "containers": [{"name": "c"}]}});
        let q = LogQuery { previous: true, ..Default::default() };
        assert_eq!(store.logs(&pod, &q).ok().map(|s| s.text), Some("l2\nl3\nl4\n".to_string()));
        assert_eq!(store.logs(&pod, &LogQuery::default()).ok().map(|s| s.text), Some("new\n".to_string()));
        let bad = LogQuery { container: Some("x".into()), ..Default::default() };
        assert_eq!(store.logs(&pod, &bad).err().map(|e| e.code), Some(400));
    }
}
