//! A Mermaid gantt chart of the estimated schedule: a section per hop and phase, a bar per
//! step, the point of no return marked critical. Times start at midnight of the plan's date.
use std::fmt;

use jiff::ToSpan;
use jiff::civil::DateTime;

use crate::escape;
use crate::plan::{Timeline, UpgradePlan};

use super::{Section, node_summary, walk};

/// The plan's schedule as a Mermaid gantt chart.
pub fn mermaid(plan: &UpgradePlan) -> String {
    walk::to_string(plan, write_mermaid)
}

/// Writes [`mermaid`] to `o` as it goes (a huge plan is never held as one string).
pub fn write_mermaid(plan: &UpgradePlan, o: &mut dyn fmt::Write) -> fmt::Result {
    let name = plan.cluster.as_deref().unwrap_or("cluster");
    writeln!(o, "gantt")?;
    // Warnings as comments: the chart's reader sees them in the source.
    for w in &plan.warnings {
        writeln!(o, "    %% warning: {}", w.message.replace('\n', " "))?;
    }
    // Transient windows as comments too; their steps are drawn active.
    for w in &plan.transient {
        writeln!(
            o,
            "    %% transient window: {}",
            w.describe().replace('\n', " ")
        )?;
    }
    let windows = crate::plan::transient::window_steps(plan);
    writeln!(
        o,
        "    title {} from {} to {} (estimated {}, lower bound {}, ratio {})",
        escape::mermaid(name),
        plan.from,
        plan.target,
        crate::plan::human_duration(plan.estimate.total_seconds),
        crate::plan::human_duration(plan.estimate.lower_bound_seconds),
        plan.estimate.ratio()
    )?;
    writeln!(o, "    dateFormat YYYY-MM-DD HH:mm:ss")?;
    writeln!(o, "    axisFormat %H:%M")?;
    let start: DateTime = plan.date.at(0, 0, 0, 0);
    let at = |seconds: u64| -> String {
        let t = i64::try_from(seconds)
            .ok()
            .and_then(|s| start.checked_add(s.seconds()).ok())
            .unwrap_or(start);
        t.strftime("%Y-%m-%d %H:%M:%S").to_string()
    };
    // Bars where the estimate schedules them: checks and operator steps, which the run
    // decides at once, are drawn a second long.
    let timeline = Timeline::of(&plan.steps, plan.max_parallel, 0);
    for (i, step, opened) in walk::runbook(plan) {
        let (begin, end) = (timeline.starts[i], timeline.ends[i]);
        if let Some(section) = opened {
            // Titled by the version the section's nodes move to.
            let title = match section {
                Section::Hop(h) => match plan.hops.get(h) {
                    Some(hop) => format!("{} {}", hop.to, step.phase),
                    None => step.phase.to_string(),
                },
                Section::Before(_, goal) => format!("{goal} {}", step.phase),
                Section::Outside => step.phase.to_string(),
            };
            writeln!(o, "    section {}", escape::mermaid(&title))?;
        }
        let nodes = if step.nodes.is_empty() {
            String::new()
        } else {
            format!("{} ", node_summary(step.nodes.as_slice(), 2))
        };
        let label = format!("{nodes}{}", step.action.describe());
        let label = escape::mermaid(&label);
        let tags = match (step.point_of_no_return, windows.get(i).copied()) {
            (true, Some(true)) => "crit, active, ",
            (true, _) => "crit, ",
            (false, Some(true)) => "active, ",
            (false, _) => "",
        };
        writeln!(
            o,
            "    {label} :{tags}s{}, {}, {}",
            i + 1,
            at(begin),
            at(end.max(begin + 1))
        )?;
    }
    Ok(())
}
