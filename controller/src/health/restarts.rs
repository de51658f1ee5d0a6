//! Restart history: the controller's memory of pods' container restart counts, so that a rise
//! within a window can be told apart from old restarts.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// Adds a std duration to a timestamp, saturating at the maximum.
pub fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

#[derive(Debug, Clone)]
struct PodRestarts {
    last_total: i64,
    rises: VecDeque<(Timestamp, u32)>,
    seen: Timestamp,
}

/// Per-pod restart history, keyed by pod UID.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    window: Duration,
    pods: HashMap<String, PodRestarts>,
    last_gc: Timestamp,
}

impl RestartTracker {
    /// A tracker counting restarts within `window`.
    pub fn new(window: Duration) -> RestartTracker {
        RestartTracker { window, pods: HashMap::new(), last_gc: Timestamp::UNIX_EPOCH }
    }

    /// Records the pod's total restart count at `now` and returns the restarts within the
    /// window. The first observation of a pod is its baseline (not a rise); a count that went
    /// down (containers recreated) is a new baseline.
    pub fn observe(&mut self, uid: &str, total: i64, now: Timestamp) -> u32 {
        self.gc(now);
        let window = self.window;
        let entry = self.pods.entry(uid.to_string()).or_insert_with(|| PodRestarts {
            last_total: total,
            rises: VecDeque::new(),
            seen: now,
        });
        if total > entry.last_total {
            let rise = u32::try_from(total - entry.last_total).unwrap_or(u32::MAX);
            entry.rises.push_back((now, rise));
        }
        entry.last_total = total;
        entry.seen = now;
        while entry.rises.front().is_some_and(|(t, _)| later(*t, window) <= now) {
            entry.rises.pop_front();
        }
        entry.rises.iter().map(|(_, n)| n).sum()
    }

    /// When the pod's oldest counted restart leaves the window (the pod may turn healthy then).
    pub fn next_expiry(&self, uid: &str) -> Option<Timestamp> {
        let (t, _) = self.pods.get(uid)?.rises.front()?;
        Some(later(*t, self.window))
    }

    /// Pods tracked.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is tracked.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Forgets pods not observed for a window plus ten minutes (at most once a minute).
    fn gc(&mut self, now: Timestamp) {
        if later(self.last_gc, Duration::from_secs(60)) > now {
            return;
        }
        self.last_gc = now;
        let keep = self.window + Duration::from_secs(600);
        self.pods.retain(|_, p| later(p.seen, keep) > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid")
    }

    #[test]
    fn rises_count_within_the_window_only() {
        let mut t = RestartTracker::new(Duration::from_secs(60));
        assert_eq!(t.observe("u", 4, at(0)), 0, "first sight is the baseline");
        assert_eq!(t.observe("u", 4, at(5)), 0);
        assert_eq!(t.observe("u", 5, at(10)), 1);
        assert_eq!(t.observe("u", 7, at(20)), 3);
        assert_eq!(t.next_expiry("u"), Some(at(70)));
        assert_eq!(t.observe("u", 7, at(69)), 3);
        assert_eq!(t.observe("u", 7, at(70)), 2, "the first rise left the window");
        assert_eq!(t.observe("u", 7, at(80)), 0);
        assert_eq!(t.next_expiry("u"), None);
        assert_eq!(t.observe("u", 0, at(81)), 0, "recreated containers reset the baseline");
        assert_eq!(t.observe("u", 1, at(82)), 1);
        assert_eq!(t.observe("other", 9, at(82)), 0, "pods are tracked apart");
    }

    #[test]
    fn pods_not_seen_for_long_are_forgotten() {
        let mut t = RestartTracker::new(Duration::from_secs(60));
        t.observe("old", 1, at(0));
        t.observe("new", 1, at(600));
        assert_eq!(t.len(), 2);
        t.observe("new", 1, at(700));
        assert_eq!(t.len(), 1);
        assert!(!t.is_empty());
    }
}
