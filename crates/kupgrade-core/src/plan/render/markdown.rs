//! A Markdown runbook: a section per hop and phase, a heading per step, and the commands for
//! each node, ready to copy.
use std::collections::BTreeMap;
use std::fmt;

use crate::escape;
use crate::plan::action::Executor;
use crate::plan::step::{Phase, Step};
use crate::plan::{HopKind, UpgradePlan, human_duration};
use crate::{NodeName, OsFamily};

use super::{Section, human_line, manual_lines, node_summary, os_title};

/// The plan as a Markdown runbook.
pub fn markdown(plan: &UpgradePlan) -> String {
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    let _ = write_markdown(plan, &mut out);
    out
}

/// Writes [`markdown`] to `o` as it goes (a huge plan is never held as one string).
pub fn write_markdown(plan: &UpgradePlan, o: &mut dyn fmt::Write) -> fmt::Result {
    let name = escape::markdown(plan.cluster.as_deref().unwrap_or("cluster"));
    writeln!(
        o,
        "# Upgrade plan: {name}, {} to {}\n",
        plan.from, plan.target
    )?;
    writeln!(o, "{}\n", super::text::summary_line(plan, escape::markdown))?;
    for w in &plan.warnings {
        writeln!(o, "> **Warning:** {}\n", escape::markdown(&w.to_string()))?;
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
    writeln!(o, "| Estimate | |\n|---|---|")?;
    writeln!(o, "| Total time | {} |", human_duration(e.total_seconds))?;
    writeln!(
        o,
        "| Lower bound | {} (ratio {}) |",
        human_duration(e.lower_bound_seconds),
        e.ratio()
    )?;
    writeln!(o, "| Steps | {} |", e.steps)?;
    writeln!(
        o,
        "| Drains | {} (at most {} per node) |",
        e.drains, e.max_drains_per_node
    )?;
    writeln!(
        o,
        "| Most nodes unavailable at once | {} |",
        e.max_unavailable
    )?;
    if e.nodes_replaced > 0 {
        writeln!(o, "| Nodes replaced | {} |", e.nodes_replaced)?;
    }
    writeln!(o, "\n## Components\n")?;
    writeln!(o, "| Component | Current | Target |\n|---|---|---|")?;
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
        writeln!(o, "| {} | {current} | {target} |", c.component)?;
    }
    if !plan.hops.is_empty() {
        writeln!(o, "\n## Control-plane hops\n")?;
        for (i, h) in plan.hops.iter().enumerate() {
            let kind = match h.kind {
                HopKind::Resume => "finishes the hop under way",
                HopKind::Patch => "patch",
                HopKind::Minor => "minor",
            };
            write!(o, "{}. `{}` → `{}` ({kind})", i + 1, h.from, h.to)?;
            if let Some(e) = &h.etcd {
                write!(o, "; etcd `{}`", e.to_plain_string())?;
            }
            if let Some(c) = &h.coredns {
                write!(o, "; CoreDNS `{c}`")?;
            }
            writeln!(o)?;
        }
    }
    if !plan.notes.is_empty() {
        writeln!(o, "\n## Notes\n")?;
        for n in &plan.notes {
            writeln!(o, "- {}", escape::markdown_prose(n))?;
        }
    }
    writeln!(o, "\n## Runbook")?;
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
            writeln!(o, "\n### {title}")?;
        }
        step_markdown(o, plan, i + 1, step)?;
    }
    Ok(())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn step_markdown(o: &mut dyn fmt::Write, plan: &UpgradePlan, n: usize, step: &Step) -> fmt::Result {
    let nodes = if step.nodes.is_empty() {
        String::new()
    } else {
        format!("{}: ", node_summary(step.nodes.as_slice(), 3))
    };
    write!(
        o,
        "\n#### {n}. {nodes}{}",
        escape::markdown_prose(&step.action.describe())
    )?;
    if step.point_of_no_return {
        write!(o, " (point of no return)")?;
    }
    writeln!(o, "\n\n_Why:_ {}", escape::markdown_prose(&step.reason))?;
    writeln!(o, "\nStep `{}`.", step.id)?;
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
                writeln!(o, "\nOn {} ({}):", node_summary(nodes, 10), os_title(c.os))?;
                if let Some(m) = &c.manual {
                    writeln!(o, "\nBy hand: {}", escape::markdown_prose(m))?;
                }
                if !c.commands.is_empty() {
                    let lines: Vec<String> = c.commands.iter().map(human_line).collect();
                    code_block(o, &lines)?;
                }
            }
        }
        Executor::Cluster => code_block(o, &manual_lines(step))?,
        Executor::Check
        | Executor::Provider
        | Executor::Operator
        | Executor::Gate
        | Executor::Local => {
            let bullet = if step.action.executor() == Executor::Check {
                "- [ ]"
            } else {
                "-"
            };
            writeln!(o)?;
            for l in manual_lines(step) {
                writeln!(o, "{bullet} {}", escape::markdown_prose(&l))?;
            }
        }
    }
    Ok(())
}

/// Shell lines in a fenced code block (after a blank line) that none of them can close early,
/// their hidden characters made visible.
fn code_block(o: &mut dyn fmt::Write, lines: &[String]) -> fmt::Result {
    let fence = lines
        .iter()
        .map(|l| escape::code_fence(l))
        .max_by_key(String::len)
        .unwrap_or_else(|| escape::code_fence(""));
    writeln!(o, "\n{fence}sh")?;
    for l in lines {
        writeln!(o, "{}", escape::text_lines(l))?;
    }
    writeln!(o, "{fence}")
}
