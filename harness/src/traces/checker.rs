//! Trace continuity checks over a set of spans:
//!
//! - **orphans**: a span whose parent is not in the set;
//! - **broken chains**: an exit span whose call succeeded but no entry span of the callee has
//!   it as parent (context lost or spans lost on the way). An exit span that *failed* (error
//!   status) without a downstream entry span is a **failed call**: listed, not a failure — it is
//!   what an outage looks like;
//! - **sessions**: each vehicle's session trace (the trace of its session root span): every
//!   span carrying the vehicle must be in it (else a **split session**), which pods and roles
//!   served its heartbeats over time ([`Session::served`]), whether it continued from the
//!   primary to the standby ([`Session::crossed_failover`]), and its **largest gap** between
//!   consecutive successfully served heartbeats.
//!
//! [`check`] runs in linear time (hash maps), under a second for 1,000,000 spans in a release
//! build (see `cargo bench -p hadrill --bench traces`). A [`Finding`] names the vehicle, the
//! trace, the span where the chain broke and the pods involved.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use hadrill_sample::vehicles::results::Heartbeat;

use super::{Span, SpanId, SpanKind, TraceId};

/// What to require beyond the structural checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    /// Every session must continue across a failover: served by the primary, then by the
    /// standby, in the same trace.
    pub failover: bool,
}

/// A span, by what a reader needs to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRef {
    /// Trace.
    pub trace_id: TraceId,
    /// Span.
    pub span_id: SpanId,
    /// Operation.
    pub name: Arc<str>,
    /// Service that recorded it.
    pub service: Arc<str>,
    /// Pod that recorded it.
    pub pod: Arc<str>,
    /// Role of that pod.
    pub role: Option<Arc<str>>,
    /// Start, ns since the epoch.
    pub start_ns: u64,
}

impl From<&Span> for SpanRef {
    fn from(s: &Span) -> Self {
        SpanRef {
            trace_id: s.trace_id,
            span_id: s.span_id,
            name: s.name.clone(),
            service: s.service.clone(),
            pod: s.pod.clone(),
            role: s.role.clone(),
            start_ns: s.start_ns,
        }
    }
}

impl fmt::Display for SpanRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "span {} {:?} of {}", self.span_id, &*self.name, self.service)?;
        if !self.pod.is_empty() {
            write!(f, " on pod {}", self.pod)?;
        }
        if let Some(r) = &self.role {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// A check failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A span's parent is missing.
    Orphan {
        /// Vehicle, if the span carries one.
        vehicle: Option<Arc<str>>,
        /// The orphan.
        span: SpanRef,
        /// The missing parent.
        parent: SpanId,
    },
    /// A successful call's downstream entry span is missing.
    BrokenChain {
        /// Vehicle, if known.
        vehicle: Option<Arc<str>>,
        /// The exit span.
        exit: SpanRef,
        /// The callee (`peer.service`), if known.
        peer: Option<Arc<str>>,
    },
    /// A span of a vehicle lies outside its session trace.
    SplitSession {
        /// Vehicle.
        vehicle: Arc<str>,
        /// The session trace.
        session_trace: TraceId,
        /// The span in another trace.
        span: SpanRef,
    },
    /// A vehicle's spans without a session root span.
    NoSession {
        /// Vehicle.
        vehicle: Arc<str>,
        /// One of its spans.
        span: SpanRef,
    },
    /// A session did not continue from the primary to the standby ([`Expect::failover`]).
    NoFailover {
        /// Vehicle.
        vehicle: Arc<str>,
        /// The session trace.
        trace_id: TraceId,
        /// What served it, in order.
        served: Vec<Served>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let veh = |v: &Option<Arc<str>>| v.as_ref().map(|v| format!("vehicle {v}: ")).unwrap_or_default();
        match self {
            Finding::Orphan { vehicle, span, parent } => write!(
                f,
                "{}orphan span in trace {}: {span} has parent {parent}, which is not in the trace",
                veh(vehicle),
                span.trace_id
            ),
            Finding::BrokenChain { vehicle, exit, peer } => write!(
                f,
                "{}broken chain in trace {}: exit {exit} called {} and succeeded, but no entry span has it as parent",
                veh(vehicle),
                exit.trace_id,
                peer.as_deref().unwrap_or("its peer")
            ),
            Finding::SplitSession { vehicle, session_trace, span } => write!(
                f,
                "vehicle {vehicle}: session trace {session_trace} does not continue: {span} is in trace {}",
                span.trace_id
            ),
            Finding::NoSession { vehicle, span } => {
                write!(f, "vehicle {vehicle}: no session root span; {span} is in trace {}", span.trace_id)
            }
            Finding::NoFailover { vehicle, trace_id, served } => {
                write!(
                    f,
                    "vehicle {vehicle}: session trace {trace_id} does not continue across the failover; served by "
                )?;
                if served.is_empty() {
                    write!(f, "nothing")?;
                }
                for (i, s) in served.iter().enumerate() {
                    write!(f, "{}{s}", if i > 0 { ", then " } else { "" })?;
                }
                Ok(())
            }
        }
    }
}

/// A run of consecutive heartbeats served by one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Role (`primary`/`standby`), or the service name when the pods have no role.
    pub role: Arc<str>,
    /// Pods of the run.
    pub pods: BTreeSet<Arc<str>>,
    /// First entry span of the run.
    pub first: SpanRef,
    /// Last entry span of the run.
    pub last: SpanRef,
    /// Heartbeats in the run.
    pub count: usize,
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pods: Vec<&str> = self.pods.iter().map(|p| &**p).collect();
        write!(
            f,
            "{} ({}) x{} from span {} to span {}",
            self.role,
            pods.join(", "),
            self.count,
            self.first.span_id,
            self.last.span_id
        )
    }
}

/// The largest gap of a session: between two consecutive successfully served heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Length.
    pub duration: Duration,
    /// The last heartbeat served before the gap.
    pub before: SpanRef,
    /// The first one served after it.
    pub after: SpanRef,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} between {} and {}", self.duration, self.before, self.after)
    }
}

/// One vehicle's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Vehicle.
    pub vehicle: Arc<str>,
    /// The session trace.
    pub trace_id: TraceId,
    /// Heartbeats sent (the vehicle's exit spans).
    pub heartbeats: usize,
    /// Heartbeats whose call failed.
    pub failed: usize,
    /// Who served the heartbeats, in time order (first hop entry spans).
    pub served: Vec<Served>,
    /// Largest gap between consecutive served heartbeats.
    pub largest_gap: Option<Gap>,
}

impl Session {
    /// Served by a `primary` run followed (later) by a `standby` run, in this one trace.
    pub fn crossed_failover(&self) -> bool {
        let first_primary = self.served.iter().position(|s| &*s.role == "primary");
        first_primary.is_some_and(|i| self.served[i..].iter().any(|s| &*s.role == "standby"))
    }
}

/// The result of [`check`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Spans checked (after removing duplicates).
    pub spans: usize,
    /// Distinct traces.
    pub traces: usize,
    /// Failures.
    pub findings: Vec<Finding>,
    /// Exit spans that failed without a downstream entry span (not failures).
    pub failed_calls: Vec<SpanRef>,
    /// Vehicle sessions, by vehicle.
    pub sessions: Vec<Session>,
}

impl Report {
    /// Whether nothing failed.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// `Err` listing the findings (at most 20 shown, then a count).
    pub fn ok(&self) -> anyhow::Result<()> {
        if self.is_ok() {
            return Ok(());
        }
        let mut msg = format!("trace continuity: {} findings in {} spans:", self.findings.len(), self.spans);
        for f in self.findings.iter().take(20) {
            msg.push_str("\n  - ");
            msg.push_str(&f.to_string());
        }
        if self.findings.len() > 20 {
            msg.push_str(&format!("\n  ... and {} more", self.findings.len() - 20));
        }
        anyhow::bail!(msg)
    }

    /// The session of `vehicle`.
    pub fn session(&self, vehicle: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| &*s.vehicle == vehicle)
    }

    /// The largest gap of all sessions.
    pub fn largest_gap(&self) -> Option<(&Session, &Gap)> {
        self.sessions.iter().filter_map(|s| s.largest_gap.as_ref().map(|g| (s, g))).max_by_key(|(_, g)| g.duration)
    }

    /// Removes the broken chains whose call was answered by one of `lost_pods` (a pod a fault
    /// SIGKILLed takes the spans it had not exported yet with it, one cut off cannot export
    /// them: telemetry lost, not context lost); returns how many. The answering pod is the
    /// vehicles' own record of the heartbeat sent when the exit span started (within 50 ms).
    pub fn discount_lost_telemetry(&mut self, heartbeats: &[Heartbeat], lost_pods: &[String]) -> usize {
        let answered_by = |vehicle: &str, start_ns: u64| {
            let start_ms = start_ns / 1_000_000;
            heartbeats
                .iter()
                .filter(|h| h.vehicle == vehicle && h.sent_ms.abs_diff(start_ms) <= 50)
                .min_by_key(|h| h.sent_ms.abs_diff(start_ms))
                .and_then(|h| h.pod.as_deref())
        };
        let before = self.findings.len();
        self.findings.retain(|f| match f {
            Finding::BrokenChain { vehicle: Some(v), exit, .. } => {
                !answered_by(v, exit.start_ns).is_some_and(|pod| lost_pods.iter().any(|p| p == pod))
            }
            _ => true,
        });
        before - self.findings.len()
    }

    /// Whether any finding is a broken chain.
    pub fn has_broken_chains(&self) -> bool {
        self.findings.iter().any(|f| matches!(f, Finding::BrokenChain { .. }))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} spans, {} traces, {} sessions, {} findings, {} failed calls",
            self.spans,
            self.traces,
            self.sessions.len(),
            self.findings.len(),
            self.failed_calls.len()
        )?;
        for s in &self.sessions {
            write!(
                f,
                "  vehicle {} trace {}: {} heartbeats, {} failed",
                s.vehicle, s.trace_id, s.heartbeats, s.failed
            )?;
            if let Some(g) = &s.largest_gap {
                write!(f, ", largest gap {:?}", g.duration)?;
            }
            let roles: Vec<&str> = s.served.iter().map(|r| &*r.role).collect();
            writeln!(f, ", served by {}", roles.join(" -> "))?;
        }
        for finding in &self.findings {
            writeln!(f, "  FAIL {finding}")?;
        }
        Ok(())
    }
}

/// A multiply-rotate hash (FxHash's): trace and span ids are random already, and SipHash's
/// strength would cost a third of the check time at a million spans.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Fast = BuildHasherDefault<IdHasher>;

/// Checks `spans` (see the module doc). Duplicate spans (same trace and span id, e.g. an export
/// retried) count once.
pub fn check(spans: &[Span], expect: Expect) -> Report {
    let mut index: HashMap<(TraceId, SpanId), u32, Fast> =
        HashMap::with_capacity_and_hasher(spans.len(), Fast::default());
    let mut unique: Vec<u32> = Vec::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(v) = index.entry((s.trace_id, s.span_id)) {
            v.insert(i as u32);
            unique.push(i as u32);
        }
    }
    let span = |i: u32| &spans[i as usize];
    // Entry spans by their parent: the exit span that called them.
    let mut entered: HashSet<(TraceId, SpanId), Fast> =
        HashSet::with_capacity_and_hasher(spans.len() / 2, Fast::default());
    let mut traces: HashSet<TraceId, Fast> = HashSet::default();
    for &i in &unique {
        let s = span(i);
        traces.insert(s.trace_id);
        if s.kind == SpanKind::Server
            && let Some(p) = s.parent
        {
            entered.insert((s.trace_id, p));
        }
    }
    let mut report = Report { spans: unique.len(), traces: traces.len(), ..Default::default() };
    for &i in &unique {
        let s = span(i);
        if let Some(p) = s.parent
            && !index.contains_key(&(s.trace_id, p))
        {
            report.findings.push(Finding::Orphan { vehicle: s.vehicle.clone(), span: s.into(), parent: p });
        }
        if s.kind == SpanKind::Client && !entered.contains(&(s.trace_id, s.span_id)) {
            if s.error {
                report.failed_calls.push(s.into());
            } else {
                report.findings.push(Finding::BrokenChain {
                    vehicle: s.vehicle.clone(),
                    exit: s.into(),
                    peer: s.peer.clone(),
                });
            }
        }
    }
    sessions(spans, &unique, &index, expect, &mut report);
    report
}

/// Per-vehicle session analysis.
fn sessions(
    spans: &[Span],
    unique: &[u32],
    index: &HashMap<(TraceId, SpanId), u32, Fast>,
    expect: Expect,
    report: &mut Report,
) {
    let span = |i: u32| &spans[i as usize];
    // The session root of each vehicle (the latest, if it restarted).
    let mut roots: BTreeMap<Arc<str>, u32> = BTreeMap::new();
    for &i in unique {
        let s = span(i);
        if s.session_root
            && let Some(v) = &s.vehicle
        {
            let keep = roots.get(v).is_none_or(|&r| span(r).start_ns <= s.start_ns);
            if keep {
                roots.insert(v.clone(), i);
            }
        }
    }
    struct Acc {
        root: u32,
        heartbeats: usize,
        failed: usize,
        /// First-hop entry spans: (start, index, ok).
        served: Vec<(u64, u32, bool)>,
    }
    // Vehicles by name, hashed fast; the accumulators in the order of `roots`.
    let slot: HashMap<&str, usize, Fast> = roots.keys().enumerate().map(|(n, v)| (&**v, n)).collect();
    let mut acc: Vec<Acc> =
        roots.values().map(|&root| Acc { root, heartbeats: 0, failed: 0, served: Vec::new() }).collect();
    let mut reported_split: HashSet<Arc<str>> = HashSet::new();
    for &i in unique {
        let s = span(i);
        let Some(v) = &s.vehicle else { continue };
        let Some(&n) = slot.get(&**v) else {
            if reported_split.insert(v.clone()) {
                report.findings.push(Finding::NoSession { vehicle: v.clone(), span: s.into() });
            }
            continue;
        };
        let a = &mut acc[n];
        let root = span(a.root);
        if s.trace_id != root.trace_id {
            // One finding per vehicle keeps a broken session readable.
            if reported_split.insert(v.clone()) {
                report.findings.push(Finding::SplitSession {
                    vehicle: v.clone(),
                    session_trace: root.trace_id,
                    span: s.into(),
                });
            }
            continue;
        }
        match s.kind {
            SpanKind::Client if s.parent == Some(root.span_id) => {
                a.heartbeats += 1;
                if s.error {
                    a.failed += 1;
                }
            }
            SpanKind::Server => {
                // First hop: the parent is one of the vehicle's heartbeat exit spans.
                let parent = s.parent.and_then(|p| index.get(&(s.trace_id, p))).map(|&p| span(p));
                if parent.is_some_and(|p| p.kind == SpanKind::Client && p.parent == Some(root.span_id)) {
                    a.served.push((s.start_ns, i, !s.error));
                }
            }
            _ => {}
        }
    }
    for ((vehicle, root), mut a) in roots.into_iter().zip(acc) {
        a.served.sort_unstable();
        let mut served: Vec<Served> = Vec::new();
        let mut largest: Option<Gap> = None;
        let mut prev_ok: Option<u32> = None;
        for &(_, i, ok) in &a.served {
            let s = span(i);
            let role = s.role.clone().unwrap_or_else(|| s.service.clone());
            match served.last_mut() {
                Some(run) if run.role == role => {
                    run.pods.insert(s.pod.clone());
                    run.last = s.into();
                    run.count += 1;
                }
                _ => served.push(Served {
                    role,
                    pods: BTreeSet::from([s.pod.clone()]),
                    first: s.into(),
                    last: s.into(),
                    count: 1,
                }),
            }
            if !ok {
                continue;
            }
            if let Some(p) = prev_ok {
                let d = Duration::from_nanos(s.start_ns.saturating_sub(span(p).start_ns));
                if largest.as_ref().is_none_or(|g| d > g.duration) {
                    largest = Some(Gap { duration: d, before: span(p).into(), after: s.into() });
                }
            }
            prev_ok = Some(i);
        }
        let session = Session {
            vehicle: vehicle.clone(),
            trace_id: span(root).trace_id,
            heartbeats: a.heartbeats,
            failed: a.failed,
            served,
            largest_gap: largest,
        };
        if expect.failover && !session.crossed_failover() {
            report.findings.push(Finding::NoFailover {
                vehicle,
                trace_id: session.trace_id,
                served: session.served.clone(),
            });
        }
        report.sessions.push(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadrill_sample::vehicles::results::Outcome;

    fn broken(vehicle: &str, start_ms: u64) -> Finding {
        Finding::BrokenChain {
            vehicle: Some(vehicle.into()),
            exit: SpanRef {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([2; 8]),
                name: "heartbeat".into(),
                service: "vehicles".into(),
                pod: "vehicles-0".into(),
                role: None,
                start_ns: start_ms * 1_000_000,
            },
            peer: Some("dispatch".into()),
        }
    }

    fn heartbeat(vehicle: &str, sent_ms: u64, pod: &str) -> Heartbeat {
        serde_json::from_value(serde_json::json!({
            "vehicle": vehicle, "seq": 0, "sent_ms": sent_ms, "latency_ms": 1.0,
            "outcome": serde_json::to_value(Outcome::Ok).expect("outcome"), "pod": pod,
        }))
        .expect("heartbeat")
    }

    /// Only a broken chain answered (per the nearest heartbeat within 50 ms) by a lost pod is
    /// discounted; one answered by a surviving pod, or with no heartbeat near it, stays.
    #[test]
    fn broken_chains_answered_by_lost_pods_are_discounted() {
        let mut report = Report {
            findings: vec![broken("v-1", 1_000), broken("v-2", 2_000), broken("v-3", 3_000)],
            ..Default::default()
        };
        let heartbeats = [
            heartbeat("v-1", 1_010, "dispatch-primary-a"),
            heartbeat("v-1", 1_100, "dispatch-standby-a"),
            heartbeat("v-2", 2_020, "dispatch-standby-a"),
            heartbeat("v-3", 3_200, "dispatch-primary-a"),
        ];
        assert!(report.has_broken_chains());
        let lost = report.discount_lost_telemetry(&heartbeats, &["dispatch-primary-a".to_string()]);
        assert_eq!(lost, 1);
        let left: Vec<_> = report
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::BrokenChain { vehicle, .. } => vehicle.as_deref().map(str::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(left, ["v-2", "v-3"]);
    }
}
