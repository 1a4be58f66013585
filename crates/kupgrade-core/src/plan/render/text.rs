//! Text for a terminal: a summary, the hops, a kubeadm-style table of components now and
//! after, then a numbered runbook.
use std::fmt::{self, Write as _};

use crate::escape;
use crate::plan::step::{OsCommands, Step};
use crate::plan::{Estimate, UpgradePlan, WorkerPacing, human_duration};

use super::walk::{self, Instructions};
use super::{human_line, node_summary, os_title};

/// The plan as text for a terminal.
pub fn text(plan: &UpgradePlan) -> String {
    walk::to_string(plan, write_text)
}

/// Writes [`text`] to `o` as it goes (a huge plan is never held as one string).
pub fn write_text(plan: &UpgradePlan, o: &mut dyn fmt::Write) -> fmt::Result {
    let name = escape::text(plan.cluster.as_deref().unwrap_or("cluster"));
    writeln!(
        o,
        "Upgrade plan for {name}: {} to {}",
        plan.from, plan.target
    )?;
    writeln!(o, "{}", summary_line(plan, escape::text))?;
    warnings(o, plan)?;
    if plan.is_empty() {
        writeln!(
            o,
            "\nNothing to do: every node already runs {}.",
            plan.target
        )?;
    }
    hops(o, plan)?;
    components(o, plan)?;
    estimate(o, &plan.estimate)?;
    writeln!(o, "\nRunbook:")?;
    let width = plan.steps.len().to_string().len();
    for (i, step) in plan.steps.iter().enumerate() {
        step_text(o, i + 1, width, step)?;
    }
    if !plan.notes.is_empty() {
        writeln!(o, "\nNotes:")?;
        for n in &plan.notes {
            writeln!(o, "  - {}", escape::text(n))?;
        }
    }
    Ok(())
}

/// The plan's warnings, then its transient windows.
fn warnings(o: &mut dyn fmt::Write, plan: &UpgradePlan) -> fmt::Result {
    if !plan.warnings.is_empty() {
        writeln!(o, "\nWarnings:")?;
        for w in &plan.warnings {
            writeln!(o, "  ! {}", escape::text(&w.to_string()))?;
        }
    }
    if !plan.transient.is_empty() {
        writeln!(o, "\nTransient windows (accepted with --accept-transient):")?;
        for w in &plan.transient {
            writeln!(o, "  ~ {}", escape::text(&w.describe()))?;
        }
    }
    Ok(())
}

/// The control-plane hops, numbered, with what kubeadm ships with each.
fn hops(o: &mut dyn fmt::Write, plan: &UpgradePlan) -> fmt::Result {
    if plan.hops.is_empty() {
        return Ok(());
    }
    writeln!(o, "\nControl-plane hops:")?;
    for (n, h, kind) in walk::hops(plan, "finish the hop under way") {
        write!(o, "  {n}. {} -> {} ({kind})", h.from, h.to)?;
        let with: Vec<String> = walk::ships(h).map(|(n, v)| format!("{n} {v}")).collect();
        if !with.is_empty() {
            write!(o, "; kubeadm ships {}", with.join(", "))?;
        }
        writeln!(o)?;
    }
    Ok(())
}

/// The components now and after, as a kubeadm-style table of aligned columns.
fn components(o: &mut dyn fmt::Write, plan: &UpgradePlan) -> fmt::Result {
    let rows: Vec<[String; 3]> = plan
        .components
        .iter()
        .map(|c| {
            let current = walk::current(c)
                .map(|(shown, count)| {
                    if count > 1 {
                        format!("{shown} x{count}")
                    } else {
                        shown
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let target = walk::target(c).unwrap_or_else(|| "(unchanged)".to_string());
            [c.component.to_string(), current, target]
        })
        .collect();
    let header = [
        "COMPONENT".to_string(),
        "CURRENT".to_string(),
        "TARGET".to_string(),
    ];
    let width = |column: usize| {
        rows.iter()
            .chain([&header])
            .map(|r| r[column].len())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    writeln!(o)?;
    for r in std::iter::once(&header).chain(rows.iter()) {
        writeln!(o, "{:<w0$}   {:<w1$}   {}", r[0], r[1], r[2])?;
    }
    Ok(())
}

/// The estimate in a sentence.
fn estimate(o: &mut dyn fmt::Write, e: &Estimate) -> fmt::Result {
    writeln!(
        o,
        "\nEstimate: {} over {} steps (lower bound {}, ratio {}); {} drains, at most {} per node; at most {} node{} unavailable at once{}.",
        human_duration(e.total_seconds),
        e.steps,
        human_duration(e.lower_bound_seconds),
        e.ratio(),
        e.drains,
        e.max_drains_per_node,
        e.max_unavailable,
        if e.max_unavailable == 1 { "" } else { "s" },
        if e.nodes_replaced > 0 {
            format!("; {} nodes replaced", e.nodes_replaced)
        } else {
            String::new()
        }
    )
}

/// The plan's date, policy and options in a sentence; `esc` escapes the values that came from
/// outside (the policy's name, the zone label) for the format.
pub(crate) fn summary_line(
    plan: &UpgradePlan,
    esc: fn(&str) -> std::borrow::Cow<'_, str>,
) -> String {
    let opts = &plan.options;
    let pacing = match opts.pacing() {
        WorkerPacing::EveryHop => "workers after every hop",
        WorkerPacing::Deferred => "workers deferred as long as the policy allows",
    };
    let mut s = format!(
        "Date {}, policy {}, strategy {}, batches of {}, {pacing}",
        plan.date,
        esc(&plan.policy),
        opts.strategy,
        opts.batch
    );
    if let Some(z) = opts.max_per_zone {
        let _ = write!(s, ", at most {z} per zone ({})", esc(&opts.zone_key));
    }
    if let Some(rule) = &opts.accept_transient {
        let _ = write!(s, ", rule {} accepted in transient windows", esc(rule));
    }
    s.push('.');
    s
}

fn step_text(o: &mut dyn fmt::Write, n: usize, width: usize, step: &Step) -> fmt::Result {
    let nodes = if step.nodes.is_empty() {
        String::new()
    } else {
        format!("{}: ", node_summary(step.nodes.as_slice(), 5))
    };
    write!(
        o,
        "{n:>width$}. [{}] {nodes}{}",
        step.phase,
        escape::text(&step.action.describe())
    )?;
    if step.point_of_no_return {
        write!(o, "  [POINT OF NO RETURN]")?;
    }
    writeln!(o)?;
    let pad = " ".repeat(width + 2);
    match walk::instructions(step) {
        Instructions::Commands(commands) => node_commands(o, &pad, commands)?,
        Instructions::Shell(lines) => {
            for l in lines {
                writeln!(o, "{pad}$ {}", escape::text(&l))?;
            }
        }
        Instructions::Items { lines, .. } => {
            for l in lines {
                writeln!(o, "{pad}- {}", escape::text(&l))?;
            }
        }
    }
    writeln!(o, "{pad}why: {}", escape::text(&step.reason))
}

/// A node step's commands, each line after `pad`: once when every OS family runs the same,
/// else each family's labelled with its title.
fn node_commands(o: &mut dyn fmt::Write, pad: &str, commands: &[OsCommands]) -> fmt::Result {
    let same = commands
        .windows(2)
        .all(|w| w[0].commands == w[1].commands && w[0].manual == w[1].manual);
    for c in commands {
        let label = if same || commands.len() == 1 {
            String::new()
        } else {
            format!("[{}] ", os_title(c.os))
        };
        if let Some(m) = &c.manual {
            writeln!(o, "{pad}{label}by hand: {}", escape::text(m))?;
        }
        for cmd in &c.commands {
            // Here-document lines stay flush left, so that a copied command works.
            let line = human_line(cmd);
            let line = escape::text_lines(&line);
            writeln!(o, "{pad}{label}$ {line}")?;
        }
        if same {
            break;
        }
    }
    Ok(())
}
