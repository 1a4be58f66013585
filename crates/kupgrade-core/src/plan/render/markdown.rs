//! A Markdown runbook: a section per hop and phase, a heading per step, and the commands for
//! each node, ready to copy.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::escape;
use crate::plan::action::Executor;
use crate::plan::step::{Phase, Step};
use crate::plan::{HopKind, UpgradePlan, human_duration};
use crate::{NodeName, OsFamily};

use super::{Section, human_line, manual_lines, node_summary, os_title};

/// The plan as a Markdown runbook.
pub fn markdown(plan: &UpgradePlan) -> String {
    let mut out = String::new();
    let o = &mut out;
    let name = escape::markdown(plan.cluster.as_deref().unwrap_or("cluster"));
    let _ = writeln!(
        o,
        "# Upgrade plan: {name}, {} to {}\n",
        plan.from, plan.target
    );
    let _ = writeln!(o, "{}\n", super::text::summary_line(plan, escape::markdown));
    for w in &plan.warnings {
        let _ = writeln!(o, "> **Warning:** {}\n", escape::markdown(&w.to_string()));
    }
    if !plan.transient.is_empty() {
        let _ = writeln!(o, "## Transient windows\n");
        let _ = writeln!(
            o,
            "| Rule | From step | To step | Nodes | Why |\n|---|---|---|---|---|"
        );
        for w in &plan.transient {
            let nodes: Vec<&str> = w.nodes.iter().map(|n| n.as_str()).collect();
            let _ = writeln!(
                o,
                "| {} | `{}` | `{}` | {} | {} |",
                escape::markdown(&w.rule),
                escape::markdown(w.from.as_str()),
                escape::markdown(w.to.as_str()),
                escape::markdown(&nodes.join(", ")),
                escape::markdown(&w.reason)
            );
        }
        let _ = writeln!(o);
    }
    let e = &plan.estimate;
    let _ = writeln!(o, "| Estimate | |\n|---|---|");
    let _ = writeln!(o, "| Total time | {} |", human_duration(e.total_seconds));
    let _ = writeln!(o, "| Steps | {} |", e.steps);
    let _ = writeln!(
        o,
        "| Drains | {} (at most {} per node) |",
        e.drains, e.max_drains_per_node
    );
    let _ = writeln!(
        o,
        "| Most nodes unavailable at once | {} |",
        e.max_unavailable
    );
    if e.nodes_replaced > 0 {
        let _ = writeln!(o, "| Nodes replaced | {} |", e.nodes_replaced);
    }
    let _ = writeln!(o, "\n## Components\n");
    let _ = writeln!(o, "| Component | Current | Target |\n|---|---|---|");
    for c in &plan.components {
        let current = c
            .current
            .iter()
            .map(|v| {
                let shown = super::show_version(c.component, &v.version);
                if v.count > 1 {
                    format!("`{shown}` ×{}", v.count)
                } else {
                    format!("`{shown}`")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let target = c.target.as_ref().map_or_else(
            || "unchanged".to_string(),
            |t| format!("`{}`", super::show_version(c.component, t)),
        );
        let _ = writeln!(o, "| {} | {current} | {target} |", c.component);
    }
    if !plan.hops.is_empty() {
        let _ = writeln!(o, "\n## Control-plane hops\n");
        for (i, h) in plan.hops.iter().enumerate() {
            let kind = match h.kind {
                HopKind::Resume => "finishes the hop under way",
                HopKind::Patch => "patch",
                HopKind::Minor => "minor",
            };
            let _ = write!(o, "{}. `{}` → `{}` ({kind})", i + 1, h.from, h.to);
            if let Some(e) = &h.etcd {
                let _ = write!(o, "; etcd `{}`", e.to_plain_string());
            }
            if let Some(c) = &h.coredns {
                let _ = write!(o, "; CoreDNS `{c}`");
            }
            let _ = writeln!(o);
        }
    }
    if !plan.notes.is_empty() {
        let _ = writeln!(o, "\n## Notes\n");
        for n in &plan.notes {
            let _ = writeln!(o, "- {}", escape::markdown_prose(n));
        }
    }
    let _ = writeln!(o, "\n## Runbook");
    let mut section: Option<(Option<usize>, Section, Phase)> = None;
    for (i, step) in plan.steps.iter().enumerate() {
        let part = Section::of(plan, step);
        let here = (step.hop, part, step.phase);
        if section.as_ref() != Some(&here) {
            let title = match &here.1 {
                Section::Hop(h) => match plan.hops.get(*h) {
                    Some(hop) => format!("Hop {} ({}): {}", h + 1, hop.to, step.phase),
                    None => capitalize(&step.phase.to_string()),
                },
                Section::Before(h, goal) => {
                    format!("Before hop {}: {} to {goal}", h + 1, step.phase)
                }
                Section::Outside => capitalize(&step.phase.to_string()),
            };
            section = Some(here);
            let _ = writeln!(o, "\n### {title}");
        }
        step_markdown(o, plan, i + 1, step);
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn step_markdown(o: &mut String, plan: &UpgradePlan, n: usize, step: &Step) {
    let nodes = if step.nodes.is_empty() {
        String::new()
    } else {
        format!("{}: ", node_summary(step.nodes.as_slice(), 3))
    };
    let _ = write!(
        o,
        "\n#### {n}. {nodes}{}",
        escape::markdown_prose(&step.action.describe())
    );
    if step.point_of_no_return {
        let _ = write!(o, " (point of no return)");
    }
    let _ = writeln!(o, "\n\n_Why:_ {}", escape::markdown_prose(&step.reason));
    let _ = writeln!(o, "\nStep `{}`.", step.id);
    match step.action.executor() {
        Executor::Node => {
            // Which of the step's nodes run which OS family.
            let mut by_os: BTreeMap<OsFamily, Vec<NodeName>> = BTreeMap::new();
            for node in &step.nodes {
                let os = plan
                    .node(node.as_str())
                    .map_or(OsFamily::default(), |p| p.os);
                by_os.entry(os).or_default().push(node.clone());
            }
            for c in &step.commands {
                let nodes = by_os.get(&c.os).map(Vec::as_slice).unwrap_or_default();
                let _ = writeln!(o, "\nOn {} ({}):", node_summary(nodes, 10), os_title(c.os));
                if let Some(m) = &c.manual {
                    let _ = writeln!(o, "\nBy hand: {}", escape::markdown_prose(m));
                }
                if !c.commands.is_empty() {
                    let lines: Vec<String> = c.commands.iter().map(human_line).collect();
                    code_block(o, &lines);
                }
            }
        }
        Executor::Cluster => code_block(o, &manual_lines(step)),
        Executor::Check | Executor::Provider | Executor::Operator => {
            let bullet = if step.action.executor() == Executor::Check {
                "- [ ]"
            } else {
                "-"
            };
            let _ = writeln!(o);
            for l in manual_lines(step) {
                let _ = writeln!(o, "{bullet} {}", escape::markdown_prose(&l));
            }
        }
    }
}

/// Shell lines in a fenced code block (after a blank line) that none of them can close early,
/// their hidden characters made visible.
fn code_block(o: &mut String, lines: &[String]) {
    let fence = lines
        .iter()
        .map(|l| escape::code_fence(l))
        .max_by_key(String::len)
        .unwrap_or_else(|| escape::code_fence(""));
    let _ = writeln!(o, "\n{fence}sh");
    for l in lines {
        let _ = writeln!(o, "{}", escape::text_lines(l));
    }
    let _ = writeln!(o, "{fence}");
}
