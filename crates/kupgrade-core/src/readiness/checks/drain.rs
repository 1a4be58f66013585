//! Drains: what the plan's drains would run into, per batch (the forecast of
//! [`DrainModel`](crate::readiness::DrainModel)).
use crate::plan::Strategy;
use crate::readiness::drain::BatchForecast;
use crate::readiness::evidence::{Budget, Gathered, Pod};
use crate::readiness::finding::{Severity, Subject};

use super::{Ctx, Run, count, some_of};

/// The most pods one check names per batch; the last finding counts the rest.
pub(crate) const MAX_PODS_PER_BATCH: usize = 20;

/// Sets up a drain check: the hops with drains, and whether there is anything to look at.
/// Returns false when the check cannot run (its reason is recorded).
fn start(ctx: &Ctx<'_>, run: &mut Run, budgets: bool) -> bool {
    for &i in &ctx.timeline.drains {
        if let Some(h) = ctx.timeline.hop_of(i) {
            run.hops.insert(h);
        }
    }
    if ctx.timeline.drains.is_empty() {
        run.not_applicable = Some("the plan drains no node".into());
        return false;
    }
    if budgets && ctx.plan.options.drain.disable_eviction {
        run.not_applicable =
            Some("the drains delete pods (--disable-eviction): no budget is consulted".into());
        return false;
    }
    match &ctx.evidence.workloads {
        Gathered::Found(_) => {
            run.gaps.looked();
            true
        }
        Gathered::Missing(m) => {
            run.missing("pods and PodDisruptionBudgets", m);
            false
        }
    }
}

/// `drain/pdb-blocked`.
pub(super) fn pdb_blocked(ctx: &Ctx<'_>, run: &mut Run) {
    if !start(ctx, run, true) {
        return;
    }
    let Some((model, forecast)) = ctx.drains() else {
        return;
    };
    if model.unknown_budgets() > 0 {
        run.gaps.missing(
            format!("{} naming a budget", count(model.unknown_budgets(), "pod")),
            "the budget is not in the evidence",
        );
    }
    for (b, f) in forecast.batches.iter().enumerate() {
        let step = ctx.timeline.drains[b];
        for block in &f.blocked {
            let budget = model.budget(block.budget);
            let spec = budget.spec.as_deref().unwrap_or("its spec");
            let mut message = format!(
                "the drain of {} must evict {} this budget protects, and it allows no disruption now ({spec}; {} of {} pods healthy, {} wanted)",
                ctx.step_nodes(step),
                count(block.pods.len(), "pod"),
                budget.current_healthy,
                budget.expected_pods,
                budget.desired_healthy
            );
            let fix = if block.permanent {
                message.push_str(": it never will");
                "relax the budget (maxUnavailable of at least 1, or minAvailable below the replicas) or add replicas before the run"
            } else {
                "make the budget's pods healthy, or wait until it allows a disruption, before the run"
            };
            let d = run
                .draft(Severity::Error, budget_subject(budget))
                .message(message)
                .fix(fix)
                .evidence(format!(
                    "pods: {}",
                    some_of(block.pods.iter().map(|&p| model.pod(p).id()), 10)
                ));
            run.findings.push(ctx.at_step(d, step));
        }
    }
}

/// A finding's subject: the budget.
fn budget_subject(budget: &Budget) -> Subject {
    Subject::Budget {
        namespace: budget.namespace.clone(),
        name: budget.name.clone(),
    }
}

/// `drain/deadlock`.
pub(super) fn deadlock(ctx: &Ctx<'_>, run: &mut Run) {
    if !start(ctx, run, true) {
        return;
    }
    let Some((model, forecast)) = ctx.drains() else {
        return;
    };
    let Some(deadlock) = &forecast.deadlock else {
        return;
    };
    let total = forecast.batches.len();
    for &bi in &deadlock.budgets {
        let budget = model.budget(bi);
        let first = deadlock
            .batches
            .iter()
            .copied()
            .find(|&b| forecast.batches[b].blocked.iter().any(|x| x.budget == bi));
        let Some(first) = first else { continue };
        let stopped = deadlock
            .batches
            .iter()
            .filter(|&&b| forecast.batches[b].blocked.iter().any(|x| x.budget == bi))
            .count();
        let every = if deadlock.every_batch {
            format!("; every one of the plan's {total} drains stops on a budget like it")
        } else {
            String::new()
        };
        let step = ctx.timeline.drains[first];
        let d = run
            .draft(Severity::Error, budget_subject(budget))
            .message(format!(
                "deadlock: no order of the plan's drains can finish, since this budget never allows a disruption ({}) and its pods sit on nodes the plan drains: it stops {} of {total} drains, the first at {}{every}",
                budget.spec.as_deref().unwrap_or("it wants every pod it expects healthy"),
                stopped,
                ctx.step_nodes(step),
            ))
            .fix("relax the budget or add replicas before the run; nothing is cordoned until then")
            .evidence(format!(
                "budgets in the deadlock: {}",
                some_of(deadlock.budgets.iter().map(|&b| model.budget(b).id()), 10)
            ));
        run.findings.push(ctx.at_step(d, step));
    }
}

/// Reports the pods `pick` selects, per batch, at most [`MAX_PODS_PER_BATCH`] a batch.
fn per_pod(
    ctx: &Ctx<'_>,
    run: &mut Run,
    pick: impl Fn(&BatchForecast) -> &[usize],
    severity: Severity,
    message: impl Fn(usize, &Pod, &str) -> String,
    fix: &str,
) {
    let Some((model, forecast)) = ctx.drains() else {
        return;
    };
    for (b, f) in forecast.batches.iter().enumerate() {
        let pods = pick(f);
        let step = ctx.timeline.drains[b];
        let nodes = ctx.step_nodes(step);
        for (n, &pi) in pods.iter().enumerate().take(MAX_PODS_PER_BATCH) {
            let pod = model.pod(pi);
            let mut text = message(pi, pod, &nodes);
            if n + 1 == MAX_PODS_PER_BATCH && pods.len() > MAX_PODS_PER_BATCH {
                text.push_str(&format!(
                    " ({} more pods of this drain are not listed)",
                    pods.len() - MAX_PODS_PER_BATCH
                ));
            }
            let mut d = run
                .draft(
                    severity,
                    Subject::Pod {
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                    },
                )
                .message(text)
                .fix(fix);
            if let Some(node) = &pod.node {
                d = d.evidence(format!("runs on {node}"));
            }
            run.findings.push(ctx.at_step(d, step));
        }
    }
}

/// `drain/multi-pdb`.
pub(super) fn multi_pdb(ctx: &Ctx<'_>, run: &mut Run) {
    if !start(ctx, run, true) {
        return;
    }
    let Some((model, _)) = ctx.drains() else {
        return;
    };
    per_pod(
        ctx,
        run,
        |f| &f.multi_budget,
        Severity::Error,
        |pi, _, nodes| {
            format!(
                "two or more budgets cover it ({}): the eviction API answers 500 for it, never 429, so the drain of {nodes} fails on it at once",
                some_of(
                    model
                        .budgets_of(pi)
                        .iter()
                        .map(|&b| model.budget(b as usize).id()),
                    5
                )
            )
        },
        "make the budgets' selectors disjoint, so that one budget covers each pod",
    );
}

/// `drain/bare-pod`.
pub(super) fn bare_pod(ctx: &Ctx<'_>, run: &mut Run) {
    refused_unless_deleted(
        ctx,
        run,
        |f| &f.bare,
        ctx.plan.options.drain.force,
        |nodes| {
            format!(
                "no controller manages it: the drain of {nodes} deletes it (--force) and nothing recreates it"
            )
        },
        |nodes| {
            format!(
                "no controller manages it: the drain of {nodes} refuses to evict it without --force"
            )
        },
        "run it under a controller (a Deployment, a StatefulSet, a Job), or delete it before the run",
    );
}

/// `drain/emptydir`.
pub(super) fn emptydir(ctx: &Ctx<'_>, run: &mut Run) {
    refused_unless_deleted(
        ctx,
        run,
        |f| &f.empty_dir,
        ctx.plan.options.drain.delete_emptydir_data,
        |nodes| {
            format!(
                "it has emptyDir data, which the drain of {nodes} deletes with it (--delete-emptydir-data)"
            )
        },
        |nodes| {
            format!(
                "it has emptyDir data: the drain of {nodes} refuses to evict it without --delete-emptydir-data"
            )
        },
        "keep data that must survive in a persistent volume, then allow the drain to delete emptyDir data",
    );
}

/// The pods `pick` finds, which a drain refuses to evict unless an option (`allowed`) lets it
/// delete them: a warning that it does (`deleted`), or an error that it refuses (`refused`),
/// each given the drain's nodes.
fn refused_unless_deleted(
    ctx: &Ctx<'_>,
    run: &mut Run,
    pick: impl Fn(&BatchForecast) -> &[usize],
    allowed: bool,
    deleted: impl Fn(&str) -> String,
    refused: impl Fn(&str) -> String,
    fix: &str,
) {
    if !start(ctx, run, false) {
        return;
    }
    let severity = if allowed {
        Severity::Warning
    } else {
        Severity::Error
    };
    let message = |_: usize, _: &Pod, nodes: &str| {
        if allowed {
            deleted(nodes)
        } else {
            refused(nodes)
        }
    };
    per_pod(ctx, run, pick, severity, message, fix);
}

/// `drain/daemonset`.
pub(super) fn daemonset(ctx: &Ctx<'_>, run: &mut Run) {
    if ctx.plan.options.drain.ignore_daemonsets {
        for &i in &ctx.timeline.drains {
            if let Some(h) = ctx.timeline.hop_of(i) {
                run.hops.insert(h);
            }
        }
        run.not_applicable = Some("the drains ignore DaemonSet pods (--ignore-daemonsets)".into());
        return;
    }
    if !start(ctx, run, false) {
        return;
    }
    per_pod(
        ctx,
        run,
        |f| &f.daemonset,
        Severity::Error,
        |_, _, nodes| {
            format!("a DaemonSet runs it: the drain of {nodes} refuses without --ignore-daemonsets")
        },
        "drain with --ignore-daemonsets (the DaemonSet keeps its pod on the node)",
    );
}

/// `drain/single-replica`.
pub(super) fn single_replica(ctx: &Ctx<'_>, run: &mut Run) {
    if !start(ctx, run, false) {
        return;
    }
    per_pod(
        ctx,
        run,
        |f| &f.single_replica,
        Severity::Warning,
        |_, pod, nodes| {
            let owner = pod
                .owner
                .as_ref()
                .map(|o| format!("{} {}", o.kind, o.name))
                .unwrap_or_default();
            format!(
                "its {owner} runs a single replica: it is down while the drain of {nodes} moves it"
            )
        },
        "run two or more replicas (with a budget that allows one disruption) if the downtime matters",
    );
}

/// `drain/local-pv`.
pub(super) fn local_pv(ctx: &Ctx<'_>, run: &mut Run) {
    if !start(ctx, run, false) {
        return;
    }
    let replace = ctx.plan.options.strategy == Strategy::Replace;
    per_pod(
        ctx,
        run,
        |f| &f.local_pv,
        if replace {
            Severity::Error
        } else {
            Severity::Warning
        },
        |_, _, nodes| {
            if replace {
                format!(
                    "it uses a local persistent volume on a node the plan drains ({nodes}) and then removes: its data goes with the node"
                )
            } else {
                format!(
                    "it uses a local persistent volume: after the drain of {nodes} it cannot run elsewhere and stays pending until its node is back"
                )
            }
        },
        "move its data to storage that is not tied to the node, or accept the downtime",
    );
}
