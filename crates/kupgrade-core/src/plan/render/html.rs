//! A self-contained HTML report of a plan: one file, inline CSS and SVG, no script and nothing
//! fetched. It shows a timeline (a lane per node and one for cluster-wide steps, a bar per step
//! placed by its estimated start and duration, hops and worker batches marked, points of no
//! return flagged), the version band of kube-apiserver and kubelet after every step beside the
//! band the upstream policy allows, and, when given, the readiness findings of each hop.
//!
//! Every value from outside (names, labels, versions, messages) goes through
//! [`escape::html`](crate::escape::html).
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write};

use crate::escape::html as esc;
use crate::plan::step::{Phase, Step};
use crate::plan::{Estimate, HopKind, Simulation, UpgradePlan, human_duration};
use crate::readiness::Readiness;
use crate::{ClusterState, Minor};

use super::node_summary;

/// What the report shows beside the plan.
#[derive(Clone, Copy, Debug, Default)]
pub struct HtmlExtras<'a> {
    /// The state the plan was made from; with it, the report shows the version band after
    /// every step (the plan alone does not say which control-plane node runs which version).
    pub start: Option<&'a ClusterState>,
    /// The pre-flight findings, listed hop by hop.
    pub readiness: Option<&'a Readiness>,
}

pub(super) const LABEL_W: u64 = 200;
pub(super) const CHART_W: u64 = 1000;
pub(super) const LANE_H: u64 = 14;
pub(super) const AXIS_H: u64 = 34;

/// The plan as one self-contained HTML page, written to `out`.
pub fn html(plan: &UpgradePlan, extras: HtmlExtras<'_>, out: &mut impl Write) -> fmt::Result {
    let name = plan.cluster.as_deref().unwrap_or("cluster");
    let title = format!(
        "{} from {} to {}",
        esc(name),
        esc(&plan.from.to_string()),
        esc(&plan.target.to_string())
    );
    let starts = Estimate::start_times(plan);
    let makespan = plan
        .steps
        .iter()
        .zip(&starts)
        .map(|(s, t)| t + s.duration_seconds)
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>"
    )?;
    writeln!(out, "<h1>{title}</h1>")?;
    writeln!(
        out,
        "<p class=\"facts\">planned for {} · policy {} · {} steps · {} nodes · {} hops · estimated {} (lower bound {}, ratio {})</p>",
        plan.date,
        esc(&plan.policy),
        plan.steps.len(),
        plan.nodes.len(),
        plan.hops.len(),
        human_duration(plan.estimate.total_seconds),
        human_duration(plan.estimate.lower_bound_seconds),
        plan.estimate.ratio()
    )?;
    for w in &plan.warnings {
        writeln!(out, "<p class=\"warning\">warning: {}</p>", esc(&w.message))?;
    }
    for n in &plan.notes {
        writeln!(out, "<p class=\"note\">{}</p>", esc(n))?;
    }
    hops(plan, out)?;
    timeline(plan, &starts, makespan, out)?;
    match extras.start {
        Some(state) => band(plan, state, &starts, makespan, out)?,
        None => writeln!(
            out,
            "<p class=\"note\">The version band needs the state the plan was made from.</p>"
        )?,
    }
    if let Some(r) = extras.readiness {
        findings(r, out)?;
    }
    writeln!(out, "</body>\n</html>")
}

pub(super) const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
.warning{color:#a40}.facts{color:#555}\
svg text{font:11px sans-serif;fill:#333}svg .lane{dominant-baseline:middle}\
.bar rect{stroke:#fff;stroke-width:.3}.bar.pnr rect{stroke:#c00;stroke-width:1.5}\
.preflight rect{fill:#999}.control-plane rect{fill:#3465a4}.control-plane-kubelets rect{fill:#729fcf}\
.workers rect{fill:#4e9a06}.verify rect{fill:#75507b}\
.batch{fill:#e8f3e0}.hop line{stroke:#333;stroke-dasharray:4 3}.pnr-flag{fill:#c00}\
.band-api{fill:#3465a4;opacity:.55}.band-kubelet{fill:#4e9a06;opacity:.55}\
.allowed-api{fill:none;stroke:#3465a4;stroke-dasharray:5 3}.allowed-kubelet{fill:none;stroke:#4e9a06;stroke-dasharray:5 3}\
.error{color:#c00}";

/// The hops as a table.
pub(super) fn hops(plan: &UpgradePlan, out: &mut impl Write) -> fmt::Result {
    writeln!(
        out,
        "<h2>Hops</h2>\n<table id=\"hops\"><tr><th>#</th><th>from</th><th>to</th><th>kind</th></tr>"
    )?;
    for (i, h) in plan.hops.iter().enumerate() {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            esc(&h.from.to_string()),
            esc(&h.to.to_string()),
            match h.kind {
                HopKind::Resume => "resume",
                HopKind::Patch => "patch",
                HopKind::Minor => "minor",
            }
        )?;
    }
    writeln!(out, "</table>")
}

/// The lanes: cluster-wide first, then nodes in the order steps first reach them, then the
/// nodes no step reaches. Returns each node's lane and the names in lane order.
pub(super) fn lanes(plan: &UpgradePlan) -> (HashMap<&str, u64>, Vec<&str>) {
    let mut lane: HashMap<&str, u64> = HashMap::with_capacity(plan.nodes.len());
    let mut order: Vec<&str> = Vec::with_capacity(plan.nodes.len());
    let names = plan
        .steps
        .iter()
        .flat_map(|s| s.nodes.iter())
        .chain(plan.nodes.iter().map(|n| &n.name));
    for n in names {
        if !lane.contains_key(n.as_str()) {
            lane.insert(n.as_str(), order.len() as u64 + 1);
            order.push(n.as_str());
        }
    }
    (lane, order)
}

/// The lanes of `step`, as runs of neighbouring lanes (`first`, `count`).
pub(super) fn runs(step: &Step, lane: &HashMap<&str, u64>) -> Vec<(u64, u64)> {
    if step.nodes.is_empty() {
        return vec![(0, 1)];
    }
    let mut at: Vec<u64> = step
        .nodes
        .iter()
        .filter_map(|n| lane.get(n.as_str()).copied())
        .collect();
    at.sort_unstable();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for l in at {
        match runs.last_mut() {
            Some((first, count)) if *first + *count == l => *count += 1,
            _ => runs.push((l, 1)),
        }
    }
    runs
}

/// Opens a timeline's `<svg>` (`id`: the plan's or the run's) under its heading, with a label
/// for each lane: cluster-wide, then the nodes in lane `order`. Returns the chart's height.
pub(super) fn open_timeline(
    id: &str,
    order: &[&str],
    out: &mut impl Write,
) -> Result<u64, fmt::Error> {
    let height = AXIS_H + (order.len() as u64 + 1) * LANE_H;
    writeln!(
        out,
        "<h2>Timeline</h2>\n<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\">",
        LABEL_W + CHART_W + 20
    )?;
    let y = |l: u64| AXIS_H + l * LANE_H;
    writeln!(
        out,
        "<text class=\"lane\" data-lane=\"cluster\" x=\"4\" y=\"{}\">cluster-wide</text>",
        y(0) + LANE_H / 2
    )?;
    for (i, n) in order.iter().enumerate() {
        writeln!(
            out,
            "<text class=\"lane\" data-lane=\"node\" x=\"4\" y=\"{}\">{}</text>",
            y(i as u64 + 1) + LANE_H / 2,
            esc(n)
        )?;
    }
    Ok(height)
}

/// The timeline: lanes, batches, hop lines, bars, flags.
fn timeline(
    plan: &UpgradePlan,
    starts: &[u64],
    makespan: u64,
    out: &mut impl Write,
) -> fmt::Result {
    let (lane, order) = lanes(plan);
    let x = |t: u64| LABEL_W + t.saturating_mul(CHART_W) / makespan.max(1);
    let height = open_timeline("timeline", &order, out)?;
    let y = |l: u64| AXIS_H + l * LANE_H;
    // Batches: consecutive worker steps on the same nodes, drawn behind the bars.
    let mut i = 0;
    while i < plan.steps.len() {
        let s = &plan.steps[i];
        let mut j = i + 1;
        if s.phase == Phase::Workers && !s.nodes.is_empty() {
            while j < plan.steps.len() && plan.steps[j].nodes == s.nodes {
                j += 1;
            }
            let end = plan.steps[i..j]
                .iter()
                .zip(&starts[i..j])
                .map(|(s, t)| t + s.duration_seconds)
                .max()
                .unwrap_or(starts[i]);
            for (first, count) in runs(s, &lane) {
                writeln!(
                    out,
                    "<rect class=\"batch\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                    x(starts[i]),
                    y(first),
                    (x(end) - x(starts[i])).max(1),
                    count * LANE_H
                )?;
            }
        }
        i = j;
    }
    // Hops: a line where each begins.
    for (h, hop) in plan.hops.iter().enumerate() {
        let Some(t) = plan
            .steps
            .iter()
            .zip(starts)
            .filter(|(s, _)| s.hop == Some(h))
            .map(|(_, t)| *t)
            .min()
        else {
            continue;
        };
        writeln!(
            out,
            "<g class=\"hop\"><line x1=\"{0}\" y1=\"12\" x2=\"{0}\" y2=\"{height}\"/><text x=\"{1}\" y=\"10\">hop {2}: {3}</text></g>",
            x(t),
            x(t) + 2,
            h + 1,
            esc(&hop.to.to_string())
        )?;
    }
    for (step, &t) in plan.steps.iter().zip(starts) {
        bar(plan, step, t, &lane, &x, &y, out)?;
    }
    writeln!(out, "</svg>")?;
    writeln!(
        out,
        "<p class=\"legend\">Bars: <span class=\"preflight\">pre-flight</span>, control plane, control-plane kubelets, workers, verify; green blocks are worker batches; a red outline and <span class=\"pnr-flag\">⚑</span> mark a point of no return.</p>"
    )
}

/// ` on NODES` (at most three named), or nothing for a cluster-wide step.
pub(super) fn on_nodes(step: &Step) -> String {
    if step.nodes.is_empty() {
        String::new()
    } else {
        format!(" on {}", node_summary(step.nodes.as_slice(), 3))
    }
}

/// The rectangles of a bar from `x0` to `x1` (at least a pixel wide): one per run of
/// neighbouring lanes of `step` (lane `l`'s top at `y(l)`), `inset.0` pixels below the run's
/// top and `inset.1` above its bottom.
pub(super) fn bar_rects(
    step: &Step,
    lane: &HashMap<&str, u64>,
    y: &impl Fn(u64) -> u64,
    (x0, x1): (u64, u64),
    inset: (u64, u64),
    out: &mut impl Write,
) -> fmt::Result {
    for (first, count) in runs(step, lane) {
        writeln!(
            out,
            "<rect x=\"{x0}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            y(first) + inset.0,
            (x1 - x0).max(1),
            count * LANE_H - inset.0 - inset.1
        )?;
    }
    Ok(())
}

/// One step's bar: a rectangle per run of neighbouring lanes, its description as a tooltip.
fn bar(
    plan: &UpgradePlan,
    step: &Step,
    t: u64,
    lane: &HashMap<&str, u64>,
    x: &impl Fn(u64) -> u64,
    y: &impl Fn(u64) -> u64,
    out: &mut impl Write,
) -> fmt::Result {
    let phase = phase_class(step.phase);
    let pnr = if step.point_of_no_return { " pnr" } else { "" };
    let hop = step
        .hop
        .and_then(|h| plan.hops.get(h))
        .map(|h| format!(" (hop to {})", h.to))
        .unwrap_or_default();
    let nodes = on_nodes(step);
    writeln!(
        out,
        "<g class=\"bar {phase}{pnr}\" data-step=\"{}\"><title>{}: {}{}{} · {}</title>",
        esc(step.id.as_str()),
        esc(step.id.as_str()),
        esc(&step.action.describe()),
        esc(&nodes),
        esc(&hop),
        human_duration(step.duration_seconds)
    )?;
    let (x0, x1) = (x(t), x(t + step.duration_seconds));
    bar_rects(step, lane, y, (x0, x1), (1, 1), out)?;
    if step.point_of_no_return {
        writeln!(
            out,
            "<text class=\"pnr-flag\" x=\"{x0}\" y=\"{}\">⚑</text>",
            AXIS_H - 4
        )?;
    }
    writeln!(out, "</g>")
}

/// The class of a step's bar by its phase.
pub(super) fn phase_class(phase: Phase) -> &'static str {
    match phase {
        Phase::Preflight => "preflight",
        Phase::ControlPlane => "control-plane",
        Phase::ControlPlaneKubelets => "control-plane-kubelets",
        Phase::Workers => "workers",
        Phase::Verify => "verify",
    }
}

/// The minors of kube-apiserver and kubelet at one point of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    api: Option<(Minor, Minor)>,
    kubelet: Option<(Minor, Minor)>,
}

/// How many nodes run each minor of a component.
#[derive(Default)]
struct Counts(BTreeMap<Minor, usize>);

impl Counts {
    fn add(&mut self, m: Option<Minor>) {
        if let Some(m) = m {
            *self.0.entry(m).or_default() += 1;
        }
    }
    fn take(&mut self, m: Option<Minor>) {
        if let Some(m) = m
            && let Some(c) = self.0.get_mut(&m)
        {
            *c -= 1;
            if *c == 0 {
                self.0.remove(&m);
            }
        }
    }
    fn range(&self) -> Option<(Minor, Minor)> {
        Some((*self.0.keys().next()?, *self.0.keys().next_back()?))
    }
}

/// The band after each step that moves it: the step's index (`None`: the start) and the band.
fn band_points(
    plan: &UpgradePlan,
    state: &ClusterState,
) -> Result<Vec<(Option<usize>, Point)>, String> {
    let minors = |n: &crate::Node| {
        (
            n.versions.kube_apiserver.as_ref().map(|v| v.minor()),
            n.versions.kubelet.as_ref().map(|v| v.minor()),
        )
    };
    let (mut api, mut kubelet) = (Counts::default(), Counts::default());
    for n in &state.nodes {
        let (a, k) = minors(n);
        api.add(a);
        kubelet.add(k);
    }
    let point = |api: &Counts, kubelet: &Counts| Point {
        api: api.range(),
        kubelet: kubelet.range(),
    };
    let mut points = vec![(None, point(&api, &kubelet))];
    let mut sim = Simulation::new(state.clone());
    for (i, step) in plan.steps.iter().enumerate() {
        for n in &step.nodes {
            if let Some((a, k)) = sim.node(n).map(minors) {
                api.take(a);
                kubelet.take(k);
            }
        }
        sim.apply(step).map_err(|e| e.to_string())?;
        for n in &step.nodes {
            if let Some((a, k)) = sim.node(n).map(minors) {
                api.add(a);
                kubelet.add(k);
            }
        }
        let p = point(&api, &kubelet);
        if points.last().is_none_or(|(_, last)| *last != p) {
            points.push((Some(i), p));
        }
    }
    Ok(points)
}

/// The minors the upstream policy allows kubelets beside API servers `lo..=hi`: not newer
/// than the oldest, at most three older than the newest (two below 1.25).
fn kubelet_allowed(lo: Minor, hi: Minor) -> (Minor, Minor) {
    let back = |k: u64| Minor::new(hi.major(), hi.minor().saturating_sub(k));
    let oldest = if back(3) >= Minor::new(1, 25) {
        back(3)
    } else {
        back(2)
    };
    (oldest, lo)
}

/// Which minors of a point one shape of the band chart covers.
type Shape = fn(&Point) -> Option<(Minor, Minor)>;

/// The version band: a chart on the timeline's axis and a table of every change.
fn band(
    plan: &UpgradePlan,
    state: &ClusterState,
    starts: &[u64],
    makespan: u64,
    out: &mut impl Write,
) -> fmt::Result {
    writeln!(out, "<h2>Version band</h2>")?;
    let points = match band_points(plan, state) {
        Ok(p) => p,
        Err(e) => {
            return writeln!(
                out,
                "<p class=\"error\">The steps do not replay on the starting state: {}</p>",
                esc(&e)
            );
        }
    };
    // The x of each point: the end of its step.
    let at = |i: Option<usize>| i.map_or(0, |i| starts[i] + plan.steps[i].duration_seconds);
    let shapes: [(&str, Shape); 4] = [
        ("allowed-kubelet", |p| {
            p.api.map(|(a, b)| kubelet_allowed(a, b))
        }),
        ("allowed-api", |p| {
            p.api.map(|(a, b)| (b.prev().unwrap_or(b), a.next()))
        }),
        ("band-kubelet", |p| p.kubelet),
        ("band-api", |p| p.api),
    ];
    // Every minor drawn, so that every one is inside the chart.
    let all = points
        .iter()
        .flat_map(|(_, p)| shapes.iter().filter_map(|(_, of)| of(p)))
        .flat_map(|(a, b)| [a, b]);
    let major = all.clone().next().map_or(1, Minor::major);
    let lo = all.clone().min().map_or(0, |m| m.minor());
    let hi = all.max().map_or(1, |m| m.minor() + 1);
    let row_h = 24;
    let height = (hi - lo + 1) * row_h + 20;
    let x = |t: u64| LABEL_W + t.saturating_mul(CHART_W) / makespan.max(1);
    let y = |m: u64| 10 + (hi - m) * row_h;
    writeln!(
        out,
        "<svg id=\"version-band\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\">",
        LABEL_W + CHART_W + 20
    )?;
    for m in lo..=hi {
        writeln!(
            out,
            "<text x=\"4\" y=\"{}\">{}</text>",
            y(m) + 4,
            Minor::new(major, m)
        )?;
    }
    for (class, of) in shapes {
        for (k, (i, p)) in points.iter().enumerate() {
            let Some((a, b)) = of(p) else { continue };
            let end = points.get(k + 1).map_or(makespan, |(j, _)| at(*j));
            let (x0, x1) = (x(at(*i)), x(end));
            let (top, bottom) = (y(b.minor()) - row_h / 3, y(a.minor()) + row_h / 3);
            writeln!(
                out,
                "<rect class=\"{class}\" x=\"{x0}\" y=\"{top}\" width=\"{}\" height=\"{}\"/>",
                (x1 - x0).max(1),
                bottom - top
            )?;
        }
    }
    writeln!(out, "</svg>")?;
    writeln!(
        out,
        "<table id=\"band-table\"><tr><th>after</th><th>kube-apiserver</th><th>kubelet</th><th>kubelet allowed</th></tr>"
    )?;
    let show = |r: Option<(Minor, Minor)>| match r {
        Some((a, b)) if a == b => a.to_string(),
        Some((a, b)) => format!("{a} to {b}"),
        None => "none".to_string(),
    };
    for (i, p) in &points {
        let after = i.map_or("the start".to_string(), |i| {
            format!("step {} {}", i + 1, plan.steps[i].id)
        });
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&after),
            show(p.api),
            show(p.kubelet),
            show(p.api.map(|(a, b)| kubelet_allowed(a, b)))
        )?;
    }
    writeln!(
        out,
        "</table>\n<p class=\"legend\">Filled: the minors running after each step (blue kube-apiserver, green kubelet); dashed: what the upstream skew policy allows beside those API servers.</p>"
    )
}

/// The readiness findings, hop by hop.
pub(super) fn findings(r: &Readiness, out: &mut impl Write) -> fmt::Result {
    writeln!(out, "<h2>Pre-flight findings</h2>")?;
    let groups = std::iter::once(("before the first hop".to_string(), &r.before_hops)).chain(
        r.hops.iter().map(|h| {
            (
                format!("hop {}: {} to {}", h.hop + 1, h.from, h.to),
                &h.findings,
            )
        }),
    );
    for (title, list) in groups {
        writeln!(out, "<section class=\"findings\"><h3>{}</h3>", esc(&title))?;
        if list.is_empty() {
            writeln!(out, "<p>nothing found</p></section>")?;
            continue;
        }
        writeln!(
            out,
            "<table><tr><th>severity</th><th>finding</th><th>what is wrong</th><th>what to do</th></tr>"
        )?;
        for f in list.iter() {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.severity,
                esc(&f.key()),
                esc(&f.message),
                esc(&f.remediation)
            )?;
        }
        writeln!(out, "</table></section>")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanRequest;

    fn sample() -> UpgradePlan {
        let text = include_str!("../../../../../examples/clusters/ha.yaml");
        let state = crate::inventory::parse(text, "ha.yaml").unwrap();
        PlanRequest::new("1.29".parse().unwrap(), jiff::civil::date(2024, 6, 1))
            .plan(&state)
            .unwrap()
    }

    #[test]
    fn neighbouring_lanes_make_one_rectangle() {
        let plan = sample();
        let (lane, order) = lanes(&plan);
        assert_eq!(order.len(), plan.nodes.len());
        for step in &plan.steps {
            let runs = runs(step, &lane);
            let covered: u64 = runs.iter().map(|(_, c)| c).sum();
            assert_eq!(covered as usize, step.nodes.len().max(1), "{}", step.id);
            for w in runs.windows(2) {
                assert!(w[0].0 + w[0].1 < w[1].0, "{}: {runs:?}", step.id);
            }
        }
    }
}
