//! The HTML report of a run: the plan's page for a run that goes on or has ended, built from
//! the plan and a [`RunSummary`] of its journal. One self-contained file (inline CSS and SVG,
//! no script, nothing fetched) showing how the run stands (completed, or where and why it
//! stopped, with the command that resumes it), every step's state and how long it really
//! took (a bar at its real start and end beside its estimated one, on the same lanes), the
//! gates' results, the hooks' output, the regression gates' before and after, the findings
//! accepted, the leases the sessions took, and how each session ended.
//!
//! Times are shown from the run's start (`+1:02:03`), so the page of a run on the simulator's
//! virtual clock is the same bytes every time; only the start itself is a date.
//!
//! Every value from outside (names, messages, hook output) goes through
//! [`escape::html`](crate::escape::html).
use std::fmt::{self, Write};

use jiff::Timestamp;

use crate::escape::html as esc;
use crate::plan::action::Action;
use crate::plan::{Estimate, UpgradePlan, human_duration};
use crate::ports::Taking;
use crate::readiness::Readiness;
use crate::run::{Finished, RunState, RunSummary, TaskRun};

use super::html::{
    AXIS_H, CHART_W, LABEL_W, LANE_H, STYLE, bar_rects, findings, hops, lanes, on_nodes,
    open_timeline,
};
use super::node_summary;

/// What the run report shows beside the plan and the journal.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunHtmlExtras<'a> {
    /// The command that resumes the run, shown when it stopped before the end.
    pub resume: Option<&'a str>,
    /// The pre-flight findings, listed hop by hop.
    pub readiness: Option<&'a Readiness>,
}

const RUN_STYLE: &str = ".est rect{fill:#d3d7cf}\
.run-bar rect{stroke:#fff;stroke-width:.3}.run-bar.done rect{fill:#4e9a06}\
.run-bar.skipped rect{fill:#babdb6}.run-bar.manual rect{fill:#75507b}\
.run-bar.running rect{fill:#f5a623}.run-bar.partly-done rect{fill:#8ae234}\
.run-bar.failed rect{fill:#c00}.run-bar.interrupted rect{fill:#ce5c00}\
.status{padding:.5em 1em;border-left:6px solid #999;background:#f4f4f4}\
.status.completed{border-color:#4e9a06}.status.halted,.status.failed{border-color:#c00}\
.status.cancelled{border-color:#ce5c00}.status.running{border-color:#f5a623}\
td.failed,td.interrupted{color:#c00;font-weight:bold}td.running{color:#a60}\
pre{background:#f6f6f6;margin:.2em 0;max-height:16em;overflow:auto;white-space:pre-wrap}\
code.resume{display:block;background:#222;color:#eee;padding:.4em;white-space:pre-wrap}";

/// The run of `plan` that `summary` (its journal, read back) tells, as one self-contained
/// HTML page, written to `out`.
pub fn html_run(
    plan: &UpgradePlan,
    summary: &RunSummary,
    extras: RunHtmlExtras<'_>,
    out: &mut impl Write,
) -> fmt::Result {
    let name = plan.cluster.as_deref().unwrap_or("cluster");
    let title = format!(
        "Run: {} from {} to {}",
        esc(name),
        esc(&plan.from.to_string()),
        esc(&plan.target.to_string())
    );
    let states: Vec<RunState> = (plan.steps.iter().enumerate())
        .map(|(i, s)| summary.step_state(i, s.nodes.len()))
        .collect();
    let over = states.iter().filter(|s| s.is_over()).count();
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}{RUN_STYLE}</style>\n</head>\n<body>"
    )?;
    writeln!(out, "<h1>{title}</h1>")?;
    let started = summary.started().map_or("not yet".to_string(), |t| {
        t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
    });
    writeln!(
        out,
        "<p class=\"facts\">started {started} · {} session(s) · {} so far (estimated {}) · {over} of {} steps done · {} nodes · policy {}</p>",
        summary.sessions(),
        human_duration(secs(summary.elapsed())),
        human_duration(plan.estimate.total_seconds),
        plan.steps.len(),
        plan.nodes.len(),
        esc(&plan.policy),
    )?;
    status(plan, summary, &states, extras.resume, out)?;
    for w in &plan.warnings {
        writeln!(out, "<p class=\"warning\">warning: {}</p>", esc(&w.message))?;
    }
    hops(plan, out)?;
    timeline(plan, summary, &states, out)?;
    steps(plan, summary, &states, out)?;
    gates(plan, summary, &states, out)?;
    hooks(plan, summary, &states, out)?;
    workloads(plan, summary, out)?;
    accepted(summary, out)?;
    if let Some(r) = extras.readiness {
        findings(r, out)?;
    }
    sessions(summary, out)?;
    if summary.unplaced() > 0 {
        writeln!(
            out,
            "<p class=\"warning\">{} journal record(s) name a step or node this plan does not have: is this the run's own plan?</p>",
            summary.unplaced()
        )?;
    }
    writeln!(out, "</body>\n</html>")
}

/// Whole seconds of `d` (0 when negative).
fn secs(d: jiff::SignedDuration) -> u64 {
    u64::try_from(d.as_secs()).unwrap_or(0)
}

/// Seconds from the run's start to `t`.
fn since(summary: &RunSummary, t: Timestamp) -> u64 {
    summary.started().map_or(0, |s| secs(t.duration_since(s)))
}

/// `+h:mm:ss` from the run's start.
fn clock(seconds: u64) -> String {
    format!(
        "+{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A state as a class name (`partly-done`).
fn class(s: RunState) -> String {
    s.name().replace(' ', "-")
}

/// How the run stands: completed, running, or where and why it stopped and how to resume.
fn status(
    plan: &UpgradePlan,
    summary: &RunSummary,
    states: &[RunState],
    resume: Option<&str>,
    out: &mut impl Write,
) -> fmt::Result {
    let resume_line = |out: &mut dyn fmt::Write| match resume {
        Some(r) => writeln!(
            out,
            "<p>Resume with:</p>\n<code class=\"resume\" id=\"resume\">{}</code>",
            esc(r)
        ),
        None => Ok(()),
    };
    match summary.outcome() {
        Some(Finished::Completed) => writeln!(
            out,
            "<section id=\"status\" class=\"status completed\"><h2>Completed</h2><p>Every step is done.</p></section>"
        ),
        Some(Finished::Halted(r)) => {
            writeln!(
                out,
                "<section id=\"status\" class=\"status halted\"><h2>Halted: {}</h2>",
                esc(&r.reason.to_string())
            )?;
            if let Some(t) = &r.task {
                writeln!(
                    out,
                    "<p>Stopped at <strong class=\"stopped-at\">{}</strong>.</p>",
                    esc(&t.to_string())
                )?;
            }
            writeln!(out, "<p class=\"why\">{}</p>", esc(&r.summary))?;
            if !r.differences.is_empty() {
                writeln!(out, "<ul>")?;
                for d in &r.differences {
                    writeln!(out, "<li>{}</li>", esc(&d.to_string()))?;
                }
                writeln!(out, "</ul>")?;
            }
            writeln!(out, "<p>What to do: {}</p>", esc(&r.advice))?;
            resume_line(out)?;
            writeln!(out, "</section>")
        }
        Some(f) => {
            writeln!(
                out,
                "<section id=\"status\" class=\"status cancelled\"><h2>Stopped</h2><p>{}</p>",
                esc(&f.to_string())
            )?;
            resume_line(out)?;
            writeln!(out, "</section>")
        }
        None => {
            let running: Vec<&str> = (plan.steps.iter().zip(states))
                .filter(|(_, s)| **s == RunState::Running)
                .map(|(s, _)| s.id.as_str())
                .take(5)
                .collect();
            let at = summary.last().map_or(0, |t| since(summary, t));
            writeln!(
                out,
                "<section id=\"status\" class=\"status running\"><h2>Running</h2><p>As of {} (the latest record): {}.</p>",
                clock(at),
                if running.is_empty() {
                    "between steps".to_string()
                } else {
                    format!("running {}", esc(&running.join(", ")))
                }
            )?;
            writeln!(
                out,
                "<p>If no kupgrade runs this journal any more, its session died: resume it.</p>"
            )?;
            resume_line(out)?;
            writeln!(out, "</section>")
        }
    }
}

/// The timeline: the plan's lanes, each step's estimated bar (grey, upper half of its lanes)
/// and, once it started, its real one (lower half, coloured by its state).
fn timeline(
    plan: &UpgradePlan,
    summary: &RunSummary,
    states: &[RunState],
    out: &mut impl Write,
) -> fmt::Result {
    let (lane, order) = lanes(plan);
    let starts = Estimate::start_times(plan);
    let makespan = (plan.steps.iter().zip(&starts))
        .map(|(s, t)| t + s.duration_seconds)
        .max()
        .unwrap_or(0);
    let now = summary.last().map_or(0, |t| since(summary, t));
    let span = makespan.max(now).max(1);
    let x = |t: u64| LABEL_W + t.min(span).saturating_mul(CHART_W) / span;
    let y = |l: u64| AXIS_H + l * LANE_H;
    let height = open_timeline("run-timeline", &order, out)?;
    writeln!(
        out,
        "<g class=\"hop\"><line x1=\"{0}\" y1=\"12\" x2=\"{0}\" y2=\"{height}\"/><text x=\"{1}\" y=\"10\">now {2}</text></g>",
        x(now),
        x(now) + 2,
        clock(now)
    )?;
    let half = LANE_H / 2;
    for (i, (step, &t)) in plan.steps.iter().zip(&starts).enumerate() {
        let (x0, x1) = (x(t), x(t + step.duration_seconds));
        writeln!(
            out,
            "<g class=\"est\" data-step=\"{}\">",
            esc(step.id.as_str())
        )?;
        bar_rects(step, &lane, &y, (x0, x1), (1, half), out)?;
        writeln!(out, "</g>")?;
        let Some((a, b)) = summary.step_times(i) else {
            continue;
        };
        let (a, b) = (since(summary, a), b.map_or(now, |b| since(summary, b)));
        let (x0, x1) = (x(a), x(b.max(a)));
        let nodes = on_nodes(step);
        writeln!(
            out,
            "<g class=\"run-bar {}\" data-step=\"{}\"><title>{}{}: {} from {}, took {} (estimated {})</title>",
            class(states[i]),
            esc(step.id.as_str()),
            esc(step.id.as_str()),
            esc(&nodes),
            states[i].name(),
            clock(a),
            human_duration(b.saturating_sub(a)),
            human_duration(step.duration_seconds)
        )?;
        bar_rects(step, &lane, &y, (x0, x1), (half, 1), out)?;
        writeln!(out, "</g>")?;
    }
    writeln!(out, "</svg>")?;
    writeln!(
        out,
        "<p class=\"legend\">Grey: each step as estimated; below it, the step as it ran: <span class=\"state\">green done, light green partly done, orange running, red failed, dark orange interrupted, grey skipped, purple left to the operator</span>. The dashed line is the latest record.</p>"
    )
}

/// One row per step: its state, when it started, how long it took, what went wrong.
fn steps(
    plan: &UpgradePlan,
    summary: &RunSummary,
    states: &[RunState],
    out: &mut impl Write,
) -> fmt::Result {
    writeln!(
        out,
        "<h2>Steps</h2>\n<table id=\"steps\"><tr><th>#</th><th>step</th><th>nodes</th><th>state</th><th>started</th><th>took</th><th>estimated</th><th>attempts</th><th>notes</th></tr>"
    )?;
    for (i, step) in plan.steps.iter().enumerate() {
        let tasks = summary.tasks(i);
        let (start, took) = match summary.step_times(i) {
            Some((a, b)) => (
                clock(since(summary, a)),
                b.map_or("-".to_string(), |b| {
                    human_duration(secs(b.duration_since(a)))
                }),
            ),
            None => ("-".into(), "-".into()),
        };
        let attempts = tasks.iter().map(|t| t.attempts).max().unwrap_or(0);
        writeln!(
            out,
            "<tr data-step=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{start}</td><td>{took}</td><td>{}</td><td>{attempts}</td><td>{}</td></tr>",
            esc(step.id.as_str()),
            i + 1,
            esc(step.id.as_str()),
            esc(&node_summary(step.nodes.as_slice(), 3)),
            class(states[i]),
            states[i].name(),
            human_duration(step.duration_seconds),
            esc(&notes(tasks))
        )?;
    }
    writeln!(out, "</table>")
}

/// What the tasks of a step say beyond their state: failures first, then why skipped.
fn notes(tasks: &[TaskRun]) -> String {
    let mut out: Vec<String> = Vec::new();
    for t in tasks {
        let on = t
            .node
            .as_ref()
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        match (&t.failure, &t.note) {
            (Some(f), _) if matches!(t.state, RunState::Failed | RunState::Retrying) => {
                out.push(format!("{on}{f}"))
            }
            (_, Some(n)) if t.state != RunState::Done => out.push(format!("{on}{n}")),
            _ => {}
        }
        if out.len() == 3 {
            out.push("...".into());
            break;
        }
    }
    out.join("; ")
}

/// A task's output as two blocks (standard output, standard error), escaped.
fn output(t: &TaskRun, out: &mut impl Write) -> fmt::Result {
    for (stream, text) in [("stdout", &t.stdout), ("stderr", &t.stderr)] {
        if !text.is_empty() {
            writeln!(
                out,
                "<pre class=\"{stream}\" title=\"{stream}\">{}</pre>",
                crate::escape::html_lines(text)
            )?;
        }
    }
    Ok(())
}

/// The gates: what each checks, and how it went.
fn gates(
    plan: &UpgradePlan,
    summary: &RunSummary,
    states: &[RunState],
    out: &mut impl Write,
) -> fmt::Result {
    let gates: Vec<usize> = (plan.steps.iter().enumerate())
        .filter(|(_, s)| matches!(s.action, Action::Gate { .. }))
        .map(|(i, _)| i)
        .collect();
    if gates.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<h2>Gates</h2>\n<table id=\"gates\"><tr><th>gate</th><th>checks</th><th>state</th><th>result</th><th>output</th></tr>"
    )?;
    for i in gates {
        let step = &plan.steps[i];
        let Action::Gate { gate, .. } = &step.action else {
            continue;
        };
        let tasks = summary.tasks(i);
        let result = match states[i] {
            RunState::Done if tasks.iter().any(|t| t.stderr.contains("warning:")) => {
                "passed with a warning".to_string()
            }
            RunState::Done => "pass".to_string(),
            RunState::Failed => format!(
                "fail: {}",
                tasks
                    .iter()
                    .find_map(|t| t.failure.as_ref())
                    .map_or(String::new(), ToString::to_string)
            ),
            s => s.name().to_string(),
        };
        writeln!(
            out,
            "<tr data-step=\"{}\"><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"gate-result\">{}</td><td>",
            esc(step.id.as_str()),
            esc(&gate.name),
            esc(&gate.describe()),
            class(states[i]),
            states[i].name(),
            esc(&result)
        )?;
        for t in tasks {
            output(t, out)?;
        }
        writeln!(out, "</td></tr>")?;
    }
    writeln!(out, "</table>")
}

/// The hooks: where each ran, how it went, what it printed.
fn hooks(
    plan: &UpgradePlan,
    summary: &RunSummary,
    states: &[RunState],
    out: &mut impl Write,
) -> fmt::Result {
    let hooks: Vec<usize> = (plan.steps.iter().enumerate())
        .filter(|(_, s)| matches!(s.action, Action::Hook { .. }))
        .map(|(i, _)| i)
        .collect();
    if hooks.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<h2>Hooks</h2>\n<table id=\"hooks\"><tr><th>step</th><th>hook</th><th>when</th><th>state</th><th>output</th></tr>"
    )?;
    for i in hooks {
        let step = &plan.steps[i];
        let Action::Hook { hook, .. } = &step.action else {
            continue;
        };
        let when = hook
            .when()
            .map_or(String::new(), |(w, p)| format!("{w} {p}"));
        writeln!(
            out,
            "<tr data-step=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>",
            esc(step.id.as_str()),
            esc(step.id.as_str()),
            esc(&hook.name),
            esc(&when),
            class(states[i]),
            states[i].name()
        )?;
        for t in summary.tasks(i) {
            if let Some(n) = &t.node {
                writeln!(out, "<p>{}</p>", esc(n.as_str()))?;
            }
            if let Some(f) = t.failure.as_ref().filter(|_| t.state == RunState::Failed) {
                writeln!(out, "<p class=\"error\">{}</p>", esc(&f.message))?;
            }
            output(t, out)?;
        }
        writeln!(out, "</td></tr>")?;
    }
    writeln!(out, "</table>")
}

/// The regression gates' workloads: the snapshot before (the baseline step's) against the
/// one the gate judged last, and what is worse.
fn workloads(plan: &UpgradePlan, summary: &RunSummary, out: &mut impl Write) -> fmt::Result {
    let mut any = false;
    for step in &plan.steps {
        let Action::Gate {
            gate,
            baseline: Some(b),
        } = &step.action
        else {
            continue;
        };
        let (before, after) = (summary.workloads(b), summary.workloads(&step.id));
        if before.is_none() && after.is_none() {
            continue;
        }
        if !any {
            writeln!(out, "<h2>Workloads before and after</h2>")?;
            any = true;
        }
        writeln!(
            out,
            "<section class=\"workloads\" data-step=\"{}\"><h3>{} ({})</h3>",
            esc(step.id.as_str()),
            esc(&gate.name),
            esc(step.id.as_str())
        )?;
        writeln!(
            out,
            "<table><tr><th></th><th>pods</th><th>not Ready</th><th>crash-looping</th><th>restarts</th><th>budgets below desired</th></tr>"
        )?;
        for (label, s) in [("before", before), ("after", after)] {
            match s {
                Some(s) => writeln!(
                    out,
                    "<tr><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    s.pods.len(),
                    s.pods
                        .iter()
                        .filter(|p| !p.ready && p.phase != "Succeeded")
                        .count(),
                    s.pods.iter().filter(|p| p.crash_looping).count(),
                    s.pods.iter().map(|p| p.restarts).sum::<u64>(),
                    s.budgets
                        .iter()
                        .filter(|b| b.current_healthy < b.desired_healthy)
                        .count()
                )?,
                None => writeln!(
                    out,
                    "<tr><td>{label}</td><td colspan=\"5\">not journaled</td></tr>"
                )?,
            }
        }
        writeln!(out, "</table>")?;
        if let Some(after) = after {
            let worse = after.regressions(before);
            if worse.is_empty() {
                writeln!(out, "<p>Nothing is worse than before.</p>")?;
            } else {
                writeln!(out, "<ul class=\"regressions\">")?;
                for w in worse.iter().take(50) {
                    writeln!(out, "<li>{}</li>", esc(w))?;
                }
                if worse.len() > 50 {
                    writeln!(out, "<li>and {} more</li>", worse.len() - 50)?;
                }
                writeln!(out, "</ul>")?;
            }
        }
        writeln!(out, "</section>")?;
    }
    Ok(())
}

/// The readiness findings the operator accepted.
fn accepted(summary: &RunSummary, out: &mut impl Write) -> fmt::Result {
    if summary.accepted().is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<h2>Findings accepted</h2>\n<table id=\"accepted\"><tr><th>finding</th><th>what it said</th></tr>"
    )?;
    for (k, m) in summary.accepted() {
        writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(m))?;
    }
    writeln!(out, "</table>")
}

/// The sessions: the leases they took and how each ended.
fn sessions(summary: &RunSummary, out: &mut impl Write) -> fmt::Result {
    writeln!(out, "<h2>Sessions</h2>")?;
    if !summary.leases().is_empty() {
        writeln!(
            out,
            "<table id=\"leases\"><tr><th>at</th><th>lease</th><th>holder</th><th>taken</th></tr>"
        )?;
        for l in summary.leases() {
            let taking = match &l.taking {
                Taking::Free => "free".to_string(),
                Taking::Own => "its own".to_string(),
                Taking::TakenOver { from } => format!("taken over from {} (expired)", from.holder),
                Taking::Broken { from } => format!("broken by force from {}", from.holder),
            };
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                clock(since(summary, l.at)),
                esc(&l.place),
                esc(&l.holder),
                esc(&taking)
            )?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(out, "<ul id=\"stops\">")?;
    for (at, f) in summary.stops() {
        let first = f.to_string();
        let first = first.lines().next().unwrap_or_default();
        writeln!(
            out,
            "<li>{}: {}</li>",
            clock(since(summary, *at)),
            esc(first)
        )?;
    }
    if summary.outcome().is_none() {
        writeln!(out, "<li>the latest session has not ended</li>")?;
    }
    writeln!(out, "</ul>")
}
