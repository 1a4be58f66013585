//! A Markdown runbook: a section per hop and phase, a heading per step, and the commands for
//! each node, ready to copy.
use std::collections::BTreeMap;
use std::fmt;

use crate::escape;
use crate::plan::step::{OsCommands, Phase, Step};
use crate::plan::{Estimate, UpgradePlan, human_duration};
use crate::{NodeName, OsFamily};

use super::walk::{self, Instructions};
use super::{Section, human_line, node_summary, os_title};

/// The plan as a Markdown runbook.
pub fn markdown(plan: &UpgradePlan) -> String {
    walk::to_string(plan, write_markdown)
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
    transient_windows(o, plan)?;
    estimate(o, &plan.estimate)?;
    components(o, plan)?;
    hops(o, plan)?;
    if !plan.notes.is_empty() {
        writeln!(o, "\n## Notes\n")?;
        for n in &plan.notes {
            writeln!(o, "- {}", escape::markdown_prose(n))?;
        }
    }
    writeln!(o, "\n## Runbook")?;
    for (i, step, opened) in walk::runbook(plan) {
        if let Some(section) = opened {
            writeln!(o, "\n### {}", section_title(plan, &section, step.phase))?;
        }
        step_markdown(o, plan, i + 1, step)?;
    }
    Ok(())
}

/// The transient windows as a table.
fn transient_windows(o: &mut dyn fmt::Write, plan: &UpgradePlan) -> fmt::Result {
    if plan.transient.is_empty() {
        return Ok(());
    }
    writeln!(o, "## Transient windows\n")?;
    writeln!(
        o,
        "| Rule | From step | To step | Nodes | Why |\n|---|---|---|---|---|"
    )?;
    for w in &plan.transient {
        let nodes: Vec<&str> = w.nodes.iter().map(|n| n.as_str()).collect();
        writeln!(
            o,
            "| {} | `{}` | `{}` | {} | {} |",
            escape::markdown(&w.rule),
            escape::markdown(w.from.as_str()),
            escape::markdown(w.to.as_str()),
            escape::markdown(&nodes.join(", ")),
            escape::markdown(&w.reason)
        )?;
    }
    writeln!(o)
}

/// The estimate as a table.
fn estimate(o: &mut dyn fmt::Write, e: &Estimate) -> fmt::Result {
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
    Ok(())
}

/// The components now and after, as a table.
fn components(o: &mut dyn fmt::Write, plan: &UpgradePlan) -> fmt::Result {
    writeln!(o, "\n## Components\n")?;
    writeln!(o, "| Component | Current | Target |\n|---|---|---|")?;
    for c in &plan.components {
        let current = walk::current(c)
            .map(|(shown, count)| {
                if count > 1 {
                    format!("`{shown}` ×{count}")
                } else {
                    format!("`{shown}`")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let target = walk::target(c).map_or_else(|| "unchanged".to_string(), |t| format!("`{t}`"));
        writeln!(o, "| {} | {current} | {target} |", c.component)?;
    }
    Ok(())
}

/// The control-plane hops as a numbered list, with what kubeadm ships with each.
fn hops(o: &mut dyn fmt::Write, plan: &UpgradePlan) -> fmt::Result {
    if plan.hops.is_empty() {
        return Ok(());
    }
    writeln!(o, "\n## Control-plane hops\n")?;
    for (n, h, kind) in walk::hops(plan, "finishes the hop under way") {
        write!(o, "{n}. `{}` → `{}` ({kind})", h.from, h.to)?;
        for (name, version) in walk::ships(h) {
            write!(o, "; {name} `{version}`")?;
        }
        writeln!(o)?;
    }
    Ok(())
}

/// A runbook section's heading: the hop and the version its steps move nodes to, and the
/// phase.
fn section_title(plan: &UpgradePlan, section: &Section, phase: Phase) -> String {
    match section {
        Section::Hop(h) => match plan.hops.get(*h) {
            Some(hop) => format!("Hop {} ({}): {phase}", h + 1, hop.to),
            None => capitalize(&phase.to_string()),
        },
        Section::Before(h, goal) => format!("Before hop {}: {phase} to {goal}", h + 1),
        Section::Outside => capitalize(&phase.to_string()),
    }
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
    match walk::instructions(step) {
        Instructions::Commands(commands) => node_commands(o, plan, step, commands)?,
        Instructions::Shell(lines) => code_block(o, &lines)?,
        Instructions::Items { lines, checklist } => {
            let bullet = if checklist { "- [ ]" } else { "-" };
            writeln!(o)?;
            for l in lines {
                writeln!(o, "{bullet} {}", escape::markdown_prose(&l))?;
            }
        }
    }
    Ok(())
}

/// A node step's commands: for each OS family, the step's nodes that run it, then its
/// commands in a code block.
fn node_commands(
    o: &mut dyn fmt::Write,
    plan: &UpgradePlan,
    step: &Step,
    commands: &[OsCommands],
) -> fmt::Result {
    // Which of the step's nodes run which OS family.
    let mut by_os: BTreeMap<OsFamily, Vec<NodeName>> = BTreeMap::new();
    for node in &step.nodes {
        let os = plan
            .node(node.as_str())
            .map_or(OsFamily::default(), |p| p.os);
        by_os.entry(os).or_default().push(node.clone());
    }
    for c in commands {
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
