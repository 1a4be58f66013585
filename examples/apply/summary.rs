//! What the apply example prints when a session ends, with the command that resumes it.
//! Text that came from outside (the cluster's name, a node's error output, a problem the
//! simulator saw) is escaped for the terminal (`kupgrade_core::escape`).
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use kupgrade_core::KubeVersion;
use kupgrade_core::escape;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Finished, Run};

use super::Args;
use super::backend::Backend;
use super::display::Seen;

/// `writeln!` into a `String`, which cannot fail.
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

pub(crate) async fn summary(
    args: &Args,
    plan: &UpgradePlan,
    run: &Run,
    outcome: &Finished,
    seen: Seen,
    wall: Duration,
    backend: &Backend,
) {
    if args.json_events {
        return;
    }
    // Written at once, and not at all when stdout is closed: the run is over either way.
    let mut out = String::new();
    let (done, total) = run.progress();
    let c = run.counts();
    out.push('\n');
    outln!(
        out,
        "{}: {} -> {} ({} hop(s), {} steps), executor {:?}{}",
        escape::text(plan.cluster.as_deref().unwrap_or("cluster")),
        plan.from,
        plan.target,
        plan.hops.len(),
        plan.steps.len(),
        args.executor,
        if args.dry_run { ", dry run" } else { "" }
    );
    outln!(out, "outcome: {}", escape::text_lines(&outcome.to_string()));
    for w in &plan.warnings {
        outln!(out, "warning: {}", escape::text(&w.to_string()));
    }
    outln!(
        out,
        "tasks: {done}/{total} done; this session {} started, {} succeeded, {} found done, {} retried, {} failed, {} left to you",
        c.started,
        c.succeeded,
        c.already_done,
        c.retried,
        c.failed,
        c.manual
    );
    for line in seen.retries.iter().chain(&seen.operator) {
        outln!(out, "  {line}");
    }
    if seen.dropped > 0 {
        outln!(
            out,
            "{} output line(s) not shown: the display fell behind",
            seen.dropped
        );
    }
    match &backend.sim {
        Some(sim) if !args.dry_run => {
            let simulated = sim.elapsed().as_secs();
            outln!(
                out,
                "time: {}h {:02}m simulated, {:.1}s real",
                simulated / 3600,
                (simulated % 3600) / 60,
                wall.as_secs_f64()
            );
            let state = sim.cluster();
            let mut versions: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
            for n in &state.nodes {
                versions
                    .entry(n.kubelet().map_or("?".into(), KubeVersion::to_string))
                    .or_default()
                    .push(n.name.as_str());
            }
            for (v, nodes) in versions {
                outln!(out, "  kubelet {v}: {}", nodes.join(", "));
            }
            let problems = sim.snapshot().problems;
            if problems.is_empty() {
                outln!(
                    out,
                    "  no careless operation (drains before kubelet minors changed, no kubelet newer than an API server)"
                );
            }
            for p in problems {
                outln!(out, "  problem: {}", escape::text(&p.to_string()));
            }
        }
        _ => outln!(out, "time: {:.1}s", wall.as_secs_f64()),
    }
    if args.kubeconfig.is_some() && !args.dry_run {
        // What the API shows now, read as the drift checks read it.
        match backend.ops.state().await {
            Ok(state) => {
                for n in &state.nodes {
                    outln!(
                        out,
                        "  {}: kubelet {}, {}{}",
                        n.name,
                        n.kubelet().map_or("?".into(), KubeVersion::to_string),
                        if n.ready { "Ready" } else { "NotReady" },
                        if n.unschedulable { ", cordoned" } else { "" }
                    );
                }
            }
            Err(e) => outln!(
                out,
                "  could not read the cluster afterwards: {}",
                escape::text(&e.to_string())
            ),
        }
    }
    if args.journal.is_some() && !outcome.is_completed() && !args.dry_run {
        // What the run reached and how, quoted (see resume.rs).
        outln!(
            out,
            "resume with: {}",
            super::resume::line(&args.resume_words)
        );
    }
    if plan.options.drain.disable_eviction {
        outln!(
            out,
            "WARNING: --disable-eviction: the drains deleted pods without asking their PodDisruptionBudgets; check that every application is back"
        );
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
}
