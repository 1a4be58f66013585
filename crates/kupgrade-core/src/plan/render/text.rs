//! Text for a terminal: a summary, the hops, a kubeadm-style table of components now and
//! after, then a numbered runbook.
use std::fmt::{self, Write as _};

use crate::escape;
use crate::plan::action::Executor;
use crate::plan::step::Step;
use crate::plan::{HopKind, UpgradePlan, WorkerPacing, human_duration};

use super::{human_line, manual_lines, node_summary, os_title};

/// The plan as text for a terminal.
pub fn text(plan: &UpgradePlan) -> String {
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    let _ = write_text(plan, &mut out);
    out
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
    if !plan.warnings.is_empty() {
        writeln!(o, "\nWarnings:")?;
        for w in &plan.warnings {
            writeln!(o, "  ! {}", escape::text(&w.to_string()))?;
        }
    }
    if !plan.transient.is_empty() {
        let _ = writeln!(o, "\nTransient windows (accepted with --accept-transient):");
        for w in &plan.transient {
            let _ = writeln!(o, "  ~ {}", escape::text(&w.describe()));
        }
    }
    if plan.is_empty() {
        writeln!(
            o,
            "\nNothing to do: every node already runs {}.",
            plan.target
        )?;
    }
    if !plan.hops.is_empty() {
        writeln!(o, "\nControl-plane hops:")?;
        for (i, h) in plan.hops.iter().enumerate() {
            let kind = match h.kind {
                HopKind::Resume => "finish the hop under way",
                HopKind::Patch => "patch",
                HopKind::Minor => "minor",
            };
            write!(o, "  {}. {} -> {} ({kind})", i + 1, h.from, h.to)?;
            let mut with = Vec::new();
            if let Some(e) = &h.etcd {
                with.push(format!("etcd {}", e.to_plain_string()));
            }
            if let Some(c) = &h.coredns {
                with.push(format!("CoreDNS {c}"));
            }
            if !with.is_empty() {
                write!(o, "; kubeadm ships {}", with.join(", "))?;
            }
            writeln!(o)?;
        }
    }
    let rows: Vec<[String; 3]> = plan
        .components
        .iter()
        .map(|c| {
            let current = c
                .current
                .iter()
                .map(|v| {
                    let shown = super::show_version(c.component, &v.version);
                    if v.count > 1 {
                        format!("{shown} x{}", v.count)
                    } else {
                        shown
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let target = c.target.as_ref().map_or_else(
                || "(unchanged)".to_string(),
                |t| super::show_version(c.component, t),
            );
            [c.component.to_string(), current, target]
        })
        .collect();
    let header = [
        "COMPONENT".to_string(),
        "CURRENT".to_string(),
        "TARGET".to_string(),
    ];
    let w0 = rows
        .iter()
        .chain([&header])
        .map(|r| r[0].len())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .chain([&header])
        .map(|r| r[1].len())
        .max()
        .unwrap_or(0);
    writeln!(o)?;
    for r in std::iter::once(&header).chain(rows.iter()) {
        writeln!(o, "{:<w0$}   {:<w1$}   {}", r[0], r[1], r[2])?;
    }
    let e = &plan.estimate;
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
    )?;
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
    match step.action.executor() {
        Executor::Node => {
            let same = step
                .commands
                .windows(2)
                .all(|w| w[0].commands == w[1].commands && w[0].manual == w[1].manual);
            for c in &step.commands {
                let label = if same || step.commands.len() == 1 {
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
        }
        Executor::Cluster => {
            for l in manual_lines(step) {
                writeln!(o, "{pad}$ {}", escape::text(&l))?;
            }
        }
        Executor::Provider
        | Executor::Check
        | Executor::Operator
        | Executor::Gate
        | Executor::Local => {
            for l in manual_lines(step) {
                writeln!(o, "{pad}- {}", escape::text(&l))?;
            }
        }
    }
    writeln!(o, "{pad}why: {}", escape::text(&step.reason))
}
