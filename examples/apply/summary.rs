//! What the apply example prints when a session ends, with the command that resumes it.
//! Text that came from outside (the cluster's name, a node's error output, a problem the
//! simulator saw) is escaped for the terminal (`kupgrade_core::escape`).
use std::time::Duration;

use kupgrade_core::KubeVersion;
use kupgrade_core::escape;
use kupgrade_core::plan::UpgradePlan;
use kupgrade_core::run::{Finished, Run};

use super::Args;
use super::backend::Backend;
use super::display::Seen;

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
    let (done, total) = run.progress();
    let c = run.counts();
    println!();
    println!(
        "{}: {} -> {} ({} hop(s), {} steps), executor {:?}{}",
        escape::text(plan.cluster.as_deref().unwrap_or("cluster")),
        plan.from,
        plan.target,
        plan.hops.len(),
        plan.steps.len(),
        args.executor,
        if args.dry_run { ", dry run" } else { "" }
    );
    println!("outcome: {}", escape::text_lines(&outcome.to_string()));
    println!(
        "tasks: {done}/{total} done; this session {} started, {} succeeded, {} found done, {} retried, {} failed, {} left to you",
        c.started, c.succeeded, c.already_done, c.retried, c.failed, c.manual
    );
    for line in seen.retries.iter().chain(&seen.operator) {
        println!("  {line}");
    }
    match &backend.sim {
        Some(sim) if !args.dry_run => {
            let simulated = sim.elapsed().as_secs();
            println!(
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
                println!("  kubelet {v}: {}", nodes.join(", "));
            }
            let problems = sim.snapshot().problems;
            if problems.is_empty() {
                println!(
                    "  no careless operation (drains before kubelet minors changed, no kubelet newer than an API server)"
                );
            }
            for p in problems {
                println!("  problem: {}", escape::text(&p.to_string()));
            }
        }
        _ => println!("time: {:.1}s", wall.as_secs_f64()),
    }
    if args.kubeconfig.is_some() && !args.dry_run {
        // What the API shows now, read as the drift checks read it.
        match backend.ops.state().await {
            Ok(state) => {
                for n in &state.nodes {
                    println!(
                        "  {}: kubelet {}, {}{}",
                        n.name,
                        n.kubelet().map_or("?".into(), KubeVersion::to_string),
                        if n.ready { "Ready" } else { "NotReady" },
                        if n.unschedulable { ", cordoned" } else { "" }
                    );
                }
            }
            Err(e) => println!(
                "  could not read the cluster afterwards: {}",
                escape::text(&e.to_string())
            ),
        }
    }
    if args.journal.is_some() && !outcome.is_completed() && !args.dry_run {
        // What the run reached and how, quoted (see resume.rs).
        println!("resume with: {}", super::resume::line(&args.resume_words));
    }
}
