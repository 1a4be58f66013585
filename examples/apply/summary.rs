//! What the apply example prints when a session ends, with the command that resumes it.
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use kupgrade_core::KubeVersion;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::ports::shell_quote;
use kupgrade_core::run::{Finished, Run};

use super::backend::Backend;
use super::display::Seen;
use super::{Args, Executor};

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
        plan.cluster.as_deref().unwrap_or("cluster"),
        plan.from,
        plan.target,
        plan.hops.len(),
        plan.steps.len(),
        args.executor,
        if args.dry_run { ", dry run" } else { "" }
    );
    outln!(out, "outcome: {outcome}");
    for w in &plan.warnings {
        outln!(out, "warning: {w}");
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
                outln!(out, "  problem: {p}");
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
            Err(e) => outln!(out, "  could not read the cluster afterwards: {e}"),
        }
    }
    if let Some(j) = &args.journal
        && !outcome.is_completed()
        && !args.dry_run
    {
        let mut resume = format!(
            "cargo run --example apply -- --journal {} --resume",
            j.display()
        );
        // What the run was reached through, so the resume reaches the same cluster.
        let mut arg = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                resume.push_str(&format!(" {flag} {}", shell_quote(&v)));
            }
        };
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        arg("--sim-state", show(&args.sim_state));
        arg("--kubeconfig", show(&args.kubeconfig));
        arg("--context", args.context.clone());
        arg("--cluster", args.cluster.clone());
        if args.executor != Executor::Sim {
            arg(
                "--executor",
                args.executor
                    .to_possible_value()
                    .map(|v| v.get_name().to_string()),
            );
        }
        arg("--sandbox", show(&args.sandbox));
        outln!(out, "resume with: {resume}");
    }
    if plan.options.drain.disable_eviction {
        outln!(
            out,
            "WARNING: --disable-eviction: the drains deleted pods without asking their PodDisruptionBudgets; check that every application is back"
        );
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
}
