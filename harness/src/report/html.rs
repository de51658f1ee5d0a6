//! `reports/index.html`: one self-contained page (inline CSS and SVG, no scripts, nothing
//! fetched) with the run's summary, a card per scenario (failure, figures against their
//! deadlines, a timeline picture of fault, detection, switch, recovery and the vehicles' link
//! gaps, the failure bundle) and trend charts over `history.jsonl`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::Verdict;
use crate::report::metrics::ScenarioRecord;
use crate::report::timeline::{LinkGap, Mark, MarkKind};

/// Runs shown in the trend charts (the most recent).
const TREND_RUNS: usize = 50;
/// Vehicles drawn on lanes of their own; the rest share one lane.
const VEHICLE_LANES: usize = 10;

/// Width of every SVG picture.
const WIDTH: f64 = 960.0;
/// Left margin of the timeline (lane names).
const LANE_LABELS: f64 = 150.0;
/// Height of one timeline lane.
const LANE: f64 = 26.0;

/// Colours of the trend series, in turn.
const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728"];

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1000px; color: #1d232b; background: #f5f6f8; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 17px; margin: 0; } h3 { font-size: 14px; margin: 14px 0 6px; }
.summary { padding: 10px 14px; border-radius: 6px; font-weight: 600; }
.summary.pass { background: #e3f4e6; color: #17602a; } .summary.fail { background: #fbe4e4; color: #8a1c1c; }
.summary.interrupted { background: #fdf0d8; color: #7a4b00; }
.summary ul { margin: 6px 0 0; font-weight: normal; }
.card { background: #fff; border: 1px solid #d9dde3; border-left: 6px solid #2e9d4a; border-radius: 6px; padding: 14px 16px; margin: 16px 0; }
.card.fail { border-left-color: #d23a3a; }
.badge { display: inline-block; font-size: 12px; padding: 1px 7px; border-radius: 10px; margin-right: 8px; color: #fff; background: #2e9d4a; vertical-align: 2px; }
.card.fail .badge { background: #d23a3a; }
.card.skip { border-left-color: #9aa3ad; } .card.skip .badge { background: #7a7f87; }
pre.skipped { background: #f3f4f6; border: 1px solid #d9dde3; padding: 8px 10px; white-space: pre-wrap; word-break: break-word; margin: 8px 0; }
.card.interrupted { border-left-color: #d98b00; } .card.interrupted .badge { background: #d98b00; }
.feature, .muted { color: #66707c; margin: 2px 0 8px; }
pre.failure { background: #fff4f4; border: 1px solid #f1c6c6; padding: 8px 10px; white-space: pre-wrap; word-break: break-word; margin: 8px 0; }
table.figures { border-collapse: collapse; margin: 6px 0; }
table.figures th, table.figures td { border-bottom: 1px solid #e4e7eb; padding: 3px 14px 3px 0; text-align: left; }
table.figures td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.over td { color: #b31d1d; font-weight: 600; }
svg { display: block; margin: 4px 0; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #36404c; }
svg .lane-name { font-weight: 600; }
svg .axis line, svg .grid { stroke: #c9ced6; }
svg .guide { stroke: #9aa3ad; stroke-dasharray: 3 3; }
svg .fault-span { fill: #f6c9c9; } svg .gap { fill: #e0892f; }
svg .mark.fault circle, svg .mark.fault_removed circle { stroke: #c62828; } svg .mark.fault circle { fill: #c62828; } svg .mark.fault_removed circle { fill: #fff; stroke-width: 2; }
svg .mark.detected circle { fill: #ef9f1b; } svg .mark.switched circle { fill: #1f6fd1; } svg .mark.recovered circle { fill: #2e9d4a; } svg .mark.note circle { fill: #7a7f87; }
svg .series { fill: none; stroke-width: 2; }
.legend span { display: inline-block; margin: 0 14px 4px 0; } .legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
a { color: #1f5fb8; }
"#;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page for this run's `records` and the runs in `history` (history.jsonl lines,
/// oldest first, this run included when it was appended).
pub fn render(
    records: &[ScenarioRecord],
    history: &[serde_json::Value],
    wall_seconds: f64,
    verdict: Verdict,
) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = writeln!(
        h,
        "<title>hadrill: feature run {}</title><style>{STYLE}</style></head><body>",
        esc(&verdict.describe())
    );
    h.push_str("<h1>hadrill feature run</h1>\n");
    summary(&mut h, records, wall_seconds, verdict);
    for (i, r) in records.iter().enumerate() {
        card(&mut h, i, r);
    }
    trend(&mut h, history);
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, records: &[ScenarioRecord], wall: f64, verdict: Verdict) {
    let failed: Vec<(usize, &ScenarioRecord)> = records.iter().enumerate().filter(|(_, r)| r.failed()).collect();
    let stopped = records.iter().filter(|r| r.interrupted).count();
    let skipped = records.iter().filter(|r| r.skipped.is_some()).count();
    let class = match verdict {
        Verdict::Passed => "pass",
        Verdict::Failed => "fail",
        Verdict::Interrupted { .. } | Verdict::Unfinished => "interrupted",
    };
    let _ = write!(
        h,
        "<div class=\"summary {class}\">{} — {} scenario(s), {} failed, {skipped} skipped{} — wall time {wall:.1} s",
        esc(&verdict.describe()),
        records.len(),
        failed.len().saturating_sub(stopped),
        if stopped > 0 { format!(", {stopped} interrupted before they finished") } else { String::new() },
    );
    if !failed.is_empty() {
        h.push_str("<ul>");
        for (i, r) in failed {
            let _ = write!(h, "<li><a href=\"#s{i}\">{}</a></li>", esc(&r.scenario));
        }
        h.push_str("</ul>");
    }
    h.push_str("</div>\n");
}

fn card(h: &mut String, i: usize, r: &ScenarioRecord) {
    let (class, badge) = match (r.passed, r.interrupted, &r.skipped) {
        (_, _, Some(_)) => ("skip", "SKIPPED"),
        (true, _, None) => ("pass", "PASS"),
        (false, true, None) => ("interrupted", "INTERRUPTED"),
        (false, false, None) => ("fail", "FAIL"),
    };
    let _ = writeln!(
        h,
        "<article class=\"card {class}\" id=\"s{i}\"><h2><span class=\"badge\">{badge}</span>{}</h2><p class=\"feature\">{}</p>",
        esc(&r.scenario),
        esc(&r.feature)
    );
    if let Some(f) = &r.failure {
        let _ = writeln!(h, "<pre class=\"failure\">{}</pre>", esc(f));
    }
    if let Some(why) = &r.skipped {
        let _ = writeln!(h, "<pre class=\"skipped\">not run: {}</pre>", esc(why));
        h.push_str("</article>\n");
        return;
    }
    if let Some(b) = &r.bundle {
        let _ = writeln!(
            h,
            "<p>Failure bundle: <a href=\"{0}/README.txt\">{0}/</a> (pods, logs, events, chaos objects, endpoint history)</p>",
            esc(b)
        );
    }
    if r.figures.is_empty() {
        h.push_str("<p class=\"muted\">no figures measured</p>\n");
    } else {
        h.push_str(
            "<table class=\"figures\"><tr><th>figure</th><th>measured</th><th>deadline</th><th>counted from</th></tr>\n",
        );
        for f in &r.figures {
            let over = f.deadline.is_some_and(|d| f.seconds > d);
            let deadline = f.deadline.map(|d| format!("{d} s")).unwrap_or_else(|| "—".into());
            let _ = writeln!(
                h,
                "<tr{}><td>{}</td><td class=\"num\">{:.3} s</td><td class=\"num\">{}{}</td><td>{}</td></tr>",
                if over { " class=\"over\"" } else { "" },
                esc(&f.name),
                f.seconds,
                esc(&deadline),
                if over { " (over)" } else { "" },
                esc(f.from.as_deref().unwrap_or("—"))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h3>Timeline</h3>\n");
    h.push_str(&timeline(&r.timeline, &r.link_gaps));
    h.push_str("</article>\n");
}

/// A tick step (1, 2 or 5 times a power of ten) giving at most about `max_ticks` ticks up to
/// `span`.
fn tick_step(span: f64, max_ticks: f64) -> f64 {
    for e in -3..12 {
        for m in [1.0, 2.0, 5.0] {
            // Dividing by an exact power of ten gives the nearest double (0.05, not 0.05000000000000001).
            let step = if e < 0 { m / 10f64.powi(-e) } else { m * 10f64.powi(e) };
            if span / step <= max_ticks {
                return step;
            }
        }
    }
    span
}

/// `0, step, 2·step, …` up to `end`.
fn ticks(end: f64, step: f64) -> impl Iterator<Item = f64> {
    (0..).map(move |i| f64::from(i) * step).take_while(move |t| *t <= end + 1e-9)
}

/// Formats a tick value without float noise (0.30000000000000004 → 0.3).
fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The SVG timeline: one lane per kind of mark, then the vehicles' link gaps.
pub fn timeline(marks: &[Mark], gaps: &[LinkGap]) -> String {
    if marks.is_empty() && gaps.is_empty() {
        return "<p class=\"muted\">nothing on the timeline</p>\n".into();
    }
    let mut lanes: Vec<String> = ["faults", "detection", "switch", "recovery"].map(String::from).to_vec();
    let notes = marks.iter().any(|m| m.kind == MarkKind::Note);
    if notes {
        lanes.push("notes".into());
    }
    let mut vehicles: BTreeMap<&str, Vec<&LinkGap>> = BTreeMap::new();
    for g in gaps {
        vehicles.entry(g.vehicle.as_str()).or_default().push(g);
    }
    let first_vehicle_lane = lanes.len();
    let own = vehicles.len().min(VEHICLE_LANES);
    for v in vehicles.keys().take(own) {
        lanes.push(format!("vehicle {v}"));
    }
    if vehicles.len() > own {
        lanes.push(format!("{} more vehicles", vehicles.len() - own));
    }
    let lane_of = |kind: MarkKind| match kind {
        MarkKind::Fault | MarkKind::FaultRemoved => 0,
        MarkKind::Detected => 1,
        MarkKind::Switched => 2,
        MarkKind::Recovered => 3,
        MarkKind::Note => 4,
    };

    // The picture starts a little before the first mark: the setup before it (cluster, workloads)
    // would otherwise squeeze what matters into the right edge.
    let first = marks.iter().map(|m| m.at).chain(gaps.iter().map(|g| g.from)).fold(f64::INFINITY, f64::min);
    let last = marks.iter().map(|m| m.at).chain(gaps.iter().map(|g| g.to)).fold(0.0_f64, f64::max);
    let pad = ((last - first) * 0.1).max(0.5);
    let step = tick_step((last - first + 2.0 * pad).max(1.0), 10.0);
    let start = (((first - pad) / step).floor() * step).max(0.0);
    let span = (last + pad - start).max(1.0);
    let plot = WIDTH - LANE_LABELS - 20.0;
    let x = |t: f64| LANE_LABELS + ((t - start).clamp(0.0, span) / span) * plot;
    let top = 6.0;
    let height = top + lanes.len() as f64 * LANE + 28.0;
    let axis_y = top + lanes.len() as f64 * LANE;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline\">"
    );
    for (i, name) in lanes.iter().enumerate() {
        let y = top + i as f64 * LANE;
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{LANE_LABELS}\" x2=\"{}\" y1=\"{y2}\" y2=\"{y2}\"/><text class=\"lane-name\" x=\"6\" y=\"{ty}\">{}</text>",
            WIDTH - 20.0,
            esc(name),
            y2 = y + LANE,
            ty = y + LANE / 2.0 + 4.0,
        );
    }
    // The time axis, in seconds since the scenario started.
    s.push_str("<g class=\"axis\">");
    for t in ticks(span, step).map(|t| start + t) {
        let _ = write!(
            s,
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"{axis_y}\" y2=\"{1}\"/><text x=\"{0}\" y=\"{2}\" text-anchor=\"middle\">{3} s</text>",
            x(t),
            axis_y + 5.0,
            axis_y + 18.0,
            tick_label(t)
        );
    }
    s.push_str("</g>\n");
    // A fault is in place from its mark to the next removal (or to the end of the picture).
    let mut removals: Vec<f64> = marks.iter().filter(|m| m.kind == MarkKind::FaultRemoved).map(|m| m.at).collect();
    removals.sort_by(f64::total_cmp);
    for m in marks.iter().filter(|m| m.kind == MarkKind::Fault) {
        let until = removals.iter().position(|r| *r >= m.at).map(|i| removals.remove(i)).unwrap_or(start + span);
        let _ = writeln!(
            s,
            "<rect class=\"fault-span\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            x(m.at),
            top + 5.0,
            (x(until) - x(m.at)).max(2.0),
            LANE - 10.0
        );
    }
    for g in gaps {
        let lane = vehicles.keys().position(|v| *v == g.vehicle).unwrap_or(0).min(own);
        let y = top + (first_vehicle_lane + lane) as f64 * LANE + 6.0;
        let _ = writeln!(
            s,
            "<rect class=\"gap\" x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\"><title>vehicle {}: no link from {:.3} s to {:.3} s ({:.3} s)</title></rect>",
            x(g.from),
            (x(g.to) - x(g.from)).max(2.0),
            LANE - 12.0,
            esc(&g.vehicle),
            g.from,
            g.to,
            g.to - g.from
        );
    }
    for m in marks {
        let lane = lane_of(m.kind);
        let cy = top + lane as f64 * LANE + LANE / 2.0;
        let cx = x(m.at);
        let label: String = if m.label.chars().count() > 48 {
            m.label.chars().take(47).collect::<String>() + "…"
        } else {
            m.label.clone()
        };
        // Labels near the right edge go on the left of their mark.
        let (tx, anchor) = if cx > WIDTH - 260.0 { (cx - 8.0, "end") } else { (cx + 8.0, "start") };
        let _ = writeln!(
            s,
            "<g class=\"mark {kind}\"><title>{title} at {at:.3} s</title><line class=\"guide\" x1=\"{cx}\" x2=\"{cx}\" y1=\"{top}\" y2=\"{axis_y}\"/><circle cx=\"{cx}\" cy=\"{cy}\" r=\"5\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"{anchor}\">{text}</text></g>",
            kind = kind_class(m.kind),
            title = esc(&m.label),
            at = m.at,
            ty = cy + 4.0,
            text = esc(&label),
        );
    }
    s.push_str("</svg>\n");
    s
}

fn kind_class(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Fault => "fault",
        MarkKind::FaultRemoved => "fault_removed",
        MarkKind::Detected => "detected",
        MarkKind::Switched => "switched",
        MarkKind::Recovered => "recovered",
        MarkKind::Note => "note",
    }
}

/// One series of a line chart: its name and (run index, value) points.
type Series = (String, Vec<(usize, f64)>);

fn trend(h: &mut String, history: &[serde_json::Value]) {
    h.push_str("<section class=\"trend\"><h2>Trend</h2>\n");
    if history.is_empty() {
        h.push_str("<p class=\"muted\">no history yet: reports/history.jsonl has no runs</p></section>\n");
        return;
    }
    let runs = &history[history.len().saturating_sub(TREND_RUNS)..];
    let mut figures: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    let mut wall = Vec::new();
    let mut failed = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if let Some(w) = run["wall_seconds"].as_f64() {
            wall.push((i, w));
        }
        if run["passed"] == false {
            failed.push(i);
        }
        for (name, v) in run["figures"].as_object().into_iter().flatten() {
            if let Some(v) = v.as_f64() {
                figures.entry(name.clone()).or_default().push((i, v));
            }
        }
    }
    // "2026-01-02T10:00:05.123Z" → "01-02 10:00:05": runs of one night differ in minutes.
    let labels: Vec<String> = runs
        .iter()
        .map(|r| r["finished_at"].as_str().unwrap_or("").chars().skip(5).take(14).collect::<String>().replace('T', " "))
        .collect();
    let _ = writeln!(h, "<p class=\"muted\">the last {} run(s) of history.jsonl, oldest on the left</p>", runs.len());
    h.push_str("<h3>Figures (s)</h3>\n");
    if figures.is_empty() {
        h.push_str("<p class=\"muted\">no figures in the history</p>\n");
    } else {
        let series: Vec<Series> = figures.into_iter().collect();
        h.push_str(&chart(&series, &labels, &[]));
    }
    h.push_str("<h3>Wall time (s)</h3>\n");
    h.push_str(&chart(&[("wall time".to_string(), wall)], &labels, &failed));
    h.push_str("</section>\n");
}

/// An SVG line chart of `series` over runs `0..labels.len()`, with its legend; runs in
/// `failed` get a red marker under the axis.
fn chart(series: &[Series], labels: &[String], failed: &[usize]) -> String {
    let height = 230.0;
    let (left, right, top, bottom) = (56.0, 20.0, 10.0, 40.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let max = series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| *v)).fold(0.0_f64, f64::max);
    let ymax = if max > 0.0 { max * 1.1 } else { 1.0 };
    let n = labels.len().max(1);
    let x = |i: usize| if n == 1 { left + plot_w / 2.0 } else { left + i as f64 * plot_w / (n - 1) as f64 };
    let y = |v: f64| top + plot_h - (v / ymax) * plot_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"chart\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"trend\">"
    );
    let step = tick_step(ymax, 6.0);
    for v in ticks(ymax, step) {
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{x2}\" y1=\"{gy}\" y2=\"{gy}\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>",
            x2 = WIDTH - right,
            gy = y(v),
            tx = left - 6.0,
            ty = y(v) + 4.0,
            label = tick_label(v)
        );
    }
    // Label a handful of runs on the x axis: the first, the last and evenly between.
    let every = n.div_ceil(6).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % every == 0 || i + 1 == labels.len() {
            // The outermost labels are anchored inwards, so they are not cut off.
            let anchor = match i {
                _ if n == 1 => "middle",
                0 => "start",
                _ if i + 1 == n => "end",
                _ => "middle",
            };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                x(i),
                height - bottom + 16.0,
                esc(l)
            );
        }
    }
    for i in failed {
        let _ = writeln!(
            s,
            "<rect class=\"failed-run\" x=\"{}\" y=\"{}\" width=\"6\" height=\"6\" fill=\"#d23a3a\"><title>run {} failed</title></rect>",
            x(*i) - 3.0,
            height - bottom + 22.0,
            esc(labels.get(*i).map(String::as_str).unwrap_or(""))
        );
    }
    for (k, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let path: Vec<String> = points.iter().map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v))).collect();
        let _ = writeln!(s, "<polyline class=\"series\" stroke=\"{colour}\" points=\"{}\"/>", path.join(" "));
        for (i, v) in points {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: {v:.3} s ({})</title></circle>",
                x(*i),
                y(*v),
                esc(name),
                esc(labels.get(*i).map(String::as_str).unwrap_or(""))
            );
        }
    }
    s.push_str("</svg>\n<div class=\"legend\">");
    for (k, (name, _)) in series.iter().enumerate() {
        let _ = write!(s, "<span><i style=\"background:{}\"></i>{}</span>", PALETTE[k % PALETTE.len()], esc(name));
    }
    if !failed.is_empty() {
        s.push_str("<span><i style=\"background:#d23a3a\"></i>a failed run</span>");
    }
    s.push_str("</div>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::metrics::FigureRecord;

    fn record(passed: bool) -> ScenarioRecord {
        ScenarioRecord {
            feature: "Failover".into(),
            scenario: "Every primary pod is killed".into(),
            passed,
            interrupted: false,
            figures: vec![
                FigureRecord {
                    name: "web: fault to switch".into(),
                    seconds: 2.5,
                    deadline: Some(1.0),
                    from: Some("1 pod(s) of the primary of web killed".into()),
                },
                FigureRecord { name: "web: warm-up".into(), seconds: 0.25, deadline: None, from: None },
            ],
            timeline: vec![
                Mark { at: 1.0, kind: MarkKind::Fault, label: "pods killed".into() },
                Mark { at: 1.8, kind: MarkKind::Detected, label: "controller noticed".into() },
                Mark { at: 3.5, kind: MarkKind::Switched, label: "web switched".into() },
                Mark { at: 4.0, kind: MarkKind::Recovered, label: "served again".into() },
                Mark { at: 6.0, kind: MarkKind::FaultRemoved, label: "fault removed".into() },
            ],
            link_gaps: vec![
                LinkGap { vehicle: "tug-1".into(), from: 1.1, to: 3.6 },
                LinkGap { vehicle: "tug-2".into(), from: 1.2, to: 3.7 },
                LinkGap { vehicle: "tug-1".into(), from: 5.0, to: 5.2 },
            ],
            failure: (!passed).then(|| "web failed over after 2.5 s, deadline 1 s".to_string()),
            bundle: (!passed).then(|| "every-primary-pod-is-killed".to_string()),
            skipped: None,
        }
    }

    #[test]
    fn a_skipped_scenario_shows_why_and_does_not_count_as_failed() {
        let skipped = ScenarioRecord::skipped("Faults", "Half the packets are lost", "needs iptables <fix>");
        let html = render(&[record(true), skipped], &[], 3.0, Verdict::Passed);
        assert!(html.contains("2 scenario(s), 0 failed, 1 skipped"), "{html}");
        assert!(
            html.contains("<article class=\"card skip\" id=\"s1\"><h2><span class=\"badge\">SKIPPED</span>"),
            "{html}"
        );
        assert!(html.contains("<pre class=\"skipped\">not run: needs iptables &lt;fix&gt;</pre>"), "{html}");
    }

    #[test]
    fn text_is_escaped_everywhere() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let mut r = record(false);
        r.scenario = "<script>alert(1)</script>".into();
        r.feature = "F & <b>".into();
        r.failure = Some("expected <div> got \"</pre>\"".into());
        r.figures[0].name = "<img src=x onerror=alert(1)>".into();
        r.timeline[0].label = "<svg onload=alert(1)>".into();
        r.link_gaps[0].vehicle = "\"><script>".into();
        let html = render(
            &[r],
            &[serde_json::json!({"figures": {"<script>": 1.0}, "wall_seconds": 3.0})],
            3.0,
            Verdict::Failed,
        );
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<svg onload"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("expected &lt;div&gt; got &quot;&lt;/pre&gt;&quot;"));
        assert!(html.contains("F &amp; &lt;b&gt;"));
    }

    #[test]
    fn a_failed_scenario_shows_its_failure_figures_and_bundle() {
        let html = render(&[record(true), record(false)], &[], 12.34, Verdict::Failed);
        assert!(html.contains("FAILED — 2 scenario(s), 1 failed, 0 skipped — wall time 12.3 s"), "{html}");
        assert!(html.contains("<article class=\"card fail\" id=\"s1\">"));
        assert!(html.contains("<pre class=\"failure\">web failed over after 2.5 s, deadline 1 s</pre>"));
        assert!(html.contains("<a href=\"every-primary-pod-is-killed/README.txt\">"));
        // Over its deadline: highlighted; without a deadline: plain.
        assert!(html.contains(
            "<tr class=\"over\"><td>web: fault to switch</td><td class=\"num\">2.500 s</td><td class=\"num\">1 s (over)</td><td>1 pod(s) of the primary of web killed</td></tr>"
        ));
        assert!(html.contains(
            "<tr><td>web: warm-up</td><td class=\"num\">0.250 s</td><td class=\"num\">—</td><td>—</td></tr>"
        ));
        assert!(html.contains("<a href=\"#s1\">Every primary pod is killed</a>"));
        // Self-contained: nothing to fetch, no scripts.
        assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn an_interrupted_run_says_so_and_which_scenarios_it_stopped() {
        let stopped = ScenarioRecord {
            interrupted: true,
            failure: Some("interrupted by SIGTERM before it finished".into()),
            bundle: None,
            ..record(false)
        };
        let html = render(&[record(true), stopped], &[], 5.0, Verdict::Interrupted { signal: "SIGTERM" });
        assert!(html.contains("<title>hadrill: feature run INTERRUPTED by SIGTERM</title>"), "{html}");
        assert!(
            html.contains(
                "<div class=\"summary interrupted\">INTERRUPTED by SIGTERM — 2 scenario(s), 0 failed, \
                 0 skipped, 1 interrupted before they finished"
            ),
            "{html}"
        );
        assert!(
            html.contains("<article class=\"card interrupted\" id=\"s1\"><h2><span class=\"badge\">INTERRUPTED</span>")
        );
    }

    #[test]
    fn the_timeline_has_a_shape_per_mark_and_gap_and_a_lane_per_vehicle() {
        let r = record(false);
        let svg = timeline(&r.timeline, &r.link_gaps);
        assert_eq!(svg.matches("<g class=\"mark ").count(), r.timeline.len());
        assert_eq!(svg.matches("<rect class=\"gap\"").count(), r.link_gaps.len());
        assert_eq!(svg.matches("<rect class=\"fault-span\"").count(), 1);
        for lane in ["faults", "detection", "switch", "recovery", "vehicle tug-1", "vehicle tug-2"] {
            assert!(svg.contains(&format!(">{lane}</text>")), "lane {lane}: {svg}");
        }
        assert!(!svg.contains(">notes</text>"));
        assert!(svg.contains(">6 s</text>"), "an axis in seconds: {svg}");
        assert!(svg.contains("<g class=\"mark switched\"><title>web switched at 3.500 s</title>"));
        assert!(timeline(&[], &[]).contains("nothing on the timeline"));
    }

    #[test]
    fn many_vehicles_share_one_lane_past_the_limit() {
        let gaps: Vec<LinkGap> = (0..25).map(|i| LinkGap { vehicle: format!("v{i:02}"), from: 1.0, to: 2.0 }).collect();
        let svg = timeline(&[], &gaps);
        assert_eq!(svg.matches("<rect class=\"gap\"").count(), 25);
        assert!(svg.contains(">15 more vehicles</text>"));
        assert_eq!(svg.matches("\">vehicle v").count(), VEHICLE_LANES, "one lane each for the first vehicles");
    }

    #[test]
    fn trend_charts_follow_the_history_and_an_empty_history_says_so() {
        let html = render(&[record(true)], &[], 1.0, Verdict::Passed);
        assert!(html.contains("no history yet"));
        let history = vec![
            serde_json::json!({"finished_at": "2026-01-01T10:00:00Z", "wall_seconds": 30.0, "passed": true,
                "figures": {"S / web: fault to switch": 2.0}}),
            serde_json::json!({"finished_at": "2026-01-02T10:00:00Z", "wall_seconds": 31.0, "passed": false,
                "figures": {"S / web: fault to switch": 2.4, "S / other": 0.5}}),
            serde_json::json!({"finished_at": "2026-01-03T10:00:00Z", "wall_seconds": 29.0, "passed": true,
                "figures": {"S / web: fault to switch": 1.9}}),
        ];
        let html = render(&[record(true)], &history, 29.0, Verdict::Passed);
        assert!(!html.contains("no history yet"));
        // Two figure series and the wall time: three lines; one point per value.
        assert_eq!(html.matches("<polyline class=\"series\"").count(), 3);
        assert_eq!(html.matches("<title>S / web: fault to switch: ").count(), 3);
        assert_eq!(html.matches("<title>wall time: ").count(), 3);
        assert_eq!(html.matches("class=\"failed-run\"").count(), 1);
        assert!(html.contains("<title>S / other: 0.500 s (01-02 10:00:00)</title>"), "{html}");
        assert!(html.contains("a failed run"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(6.5, 10.0), 1.0);
        assert_eq!(tick_step(95.0, 10.0), 10.0);
        assert_eq!(tick_step(0.4, 10.0), 0.05);
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(10.0), "10");
    }
}
