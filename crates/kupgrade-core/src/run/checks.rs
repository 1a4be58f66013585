//! Checks: what the run reads from the live cluster before it starts a task, and the stop
//! reports it halts with.
//!
//! Everything here only reads (the plan, the expectations, a `View` of one cluster state) and
//! decides: the policy holds and the nodes are there and Ready (`globals`), a step's
//! preconditions hold (`pre`), a task that may or may not have happened did (`decide_unsure`),
//! a check or an operator step passes (`inline_check`, `operator`), and which work a task asks
//! of the ports (`work`).
//!
//! What it guarantees: a check that fails says what differs, node by node (at most 20 nodes per
//! report), and what to do; a task is found done only by evidence (the postconditions its step
//! adds to its preconditions, all of them holding); a task that is not safe to repeat and shows
//! no such evidence is never run again without the operator.
use std::time::Duration;

use crate::plan::{Action, Executor, Fact, PreflightCheck, Presence, StartVersion, UpgradePlan};
use crate::skew::SkewPolicy;
use crate::{Component, KubeVersion, NodeName};

use super::expect::Expectations;
use super::facts::{Verdict, View, same_release};
use super::record::{Failure, TaskEnd};
use super::report::{Difference, StopReason, StopReport};
use super::task::{Pos, Unsure, Work};

/// What to do with a task that may or may not have happened.
pub(super) enum Decision {
    /// The cluster shows its effect (the facts that show it): done.
    Done(Vec<String>),
    /// It is safe to repeat: run it again.
    Rerun,
    /// Only the operator can tell.
    Halt(Box<StopReport>),
}

/// Checks that apply before any step: the policy, every node the plan expects present,
/// and Ready unless the plan made it otherwise.
pub(super) fn globals(
    policy: &dyn SkewPolicy,
    expect: &Expectations,
    view: &mut View<'_>,
) -> Result<(), Box<StopReport>> {
    let errors = view.policy_errors();
    if !errors.is_empty() {
        return Err(Box::new(StopReport {
            reason: StopReason::PolicyViolated,
            task: None,
            summary: format!(
                "the live cluster violates the {} skew policy, so no further step is safe",
                policy.name()
            ),
            differences: errors
                .iter()
                .take(20)
                .map(|v| Difference {
                    node: v.node.clone(),
                    expected: format!("{} within {}", v.component, v.allowed),
                    found: format!("{} ({})", v.found, v.rule),
                })
                .collect(),
            advice: "find out what changed (a component upgraded or downgraded by hand?), bring the cluster back within the policy, then resume; if the change was meant, plan again from the live cluster and start a new run".into(),
        }));
    }
    // Every node the run expects is there: checked again only when the node list or the
    // expectations changed since the last check.
    let nodes = &expect.nodes;
    let mut missing: Vec<&NodeName> = if view.presence_checked == Some(nodes.generation()) {
        Vec::new()
    } else {
        nodes.present().filter(|n| !view.contains(n)).collect()
    };
    if !missing.is_empty() {
        missing.sort();
        return Err(Box::new(StopReport {
            reason: StopReason::Drift,
            task: None,
            summary: format!(
                "{} node(s) the plan expects are missing from the cluster",
                missing.len()
            ),
            differences: missing
                .iter()
                .take(20)
                .map(|n| Difference {
                    node: Some((*n).clone()),
                    expected: "present".into(),
                    found: "absent".into(),
                })
                .collect(),
            advice: "find out why the nodes left (deleted, renamed?); if they are gone for good, plan again from the live cluster and start a new run; otherwise resume once they are back".into(),
        }));
    }
    view.presence_checked = Some(nodes.generation());
    let mut not_ready: Vec<&NodeName> = view
        .state
        .nodes
        .iter()
        .filter(|n| {
            !n.ready
                && nodes.presence(&n.name).is_some()
                && !nodes.is_settling(&n.name)
                && !expect.not_ready_ok.contains(&n.name)
        })
        .map(|n| &n.name)
        .collect();
    if !not_ready.is_empty() {
        not_ready.sort();
        return Err(Box::new(StopReport {
            reason: StopReason::NodeNotReady,
            task: None,
            summary: format!(
                "{} node(s) went NotReady outside the plan's steps",
                not_ready.len()
            ),
            differences: not_ready
                .iter()
                .take(20)
                .map(|n| Difference {
                    node: Some((*n).clone()),
                    expected: "Ready".into(),
                    found: "NotReady".into(),
                })
                .collect(),
            advice: "find out why (kubectl describe node), fix it, and resume once the nodes are Ready again".into(),
        }));
    }
    Ok(())
}

/// Checks the preconditions of the task's step on its node.
pub(super) fn pre(
    plan: &UpgradePlan,
    pos: Pos,
    view: &mut View<'_>,
) -> Result<(), Box<StopReport>> {
    let step = pos.step(plan);
    let node = pos.node(plan);
    let mut diffs = Vec::new();
    let mut reason = StopReason::Drift;
    for fact in &step.pre {
        if let Verdict::Fails(found) = view.check(fact, node) {
            match fact {
                Fact::Ready => reason = StopReason::NodeNotReady,
                Fact::PolicyHolds => reason = StopReason::PolicyViolated,
                _ => {}
            }
            diffs.push(Difference {
                node: node.cloned(),
                expected: fact.to_string(),
                found,
            });
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let id = pos.id(plan);
    Err(Box::new(StopReport {
        reason,
        summary: format!(
            "stopped before {id} ({}): the cluster does not match what the step expects",
            step.action.describe()
        ),
        task: Some(id),
        differences: diffs,
        advice: "someone or something changed the cluster outside this run: check the node(s) above; resume once the cluster matches again, or, if the change was meant (a node upgraded by hand), plan again from the live cluster and start a new run".into(),
    }))
}

/// Decides about a task that may or may not have happened (`why`): done when the cluster
/// shows every postcondition its step adds (and they show all the step does), run again when
/// it is safe to repeat, otherwise the operator's.
pub(super) fn decide_unsure(
    plan: &UpgradePlan,
    pos: Pos,
    why: Unsure,
    view: &mut View<'_>,
) -> Decision {
    let step = pos.step(plan);
    let node = pos.node(plan);
    // An install is run again: its versions may show, its hold not.
    if step.idempotent && !step.action.post_shows_all() {
        return Decision::Rerun;
    }
    let mut diffs = Vec::new();
    let mut evidence = Vec::new();
    let mut proven = true;
    for fact in step.post.iter().filter(|f| !step.pre.contains(f)) {
        match view.check(fact, node) {
            Verdict::Holds => evidence.push(fact.to_string()),
            Verdict::Fails(found) => {
                proven = false;
                diffs.push(Difference {
                    node: node.cloned(),
                    expected: fact.to_string(),
                    found,
                });
            }
            Verdict::Unknown(why) => {
                proven = false;
                diffs.push(Difference {
                    node: node.cloned(),
                    expected: fact.to_string(),
                    found: format!("unknown ({why})"),
                });
            }
        }
    }
    if proven && !evidence.is_empty() {
        return Decision::Done(evidence);
    }
    if step.idempotent {
        return Decision::Rerun;
    }
    let id = pos.id(plan);
    Decision::Halt(Box::new(StopReport {
        reason: StopReason::Unsure,
        summary: format!(
            "{id} ({}) {why}; it is not safe to repeat, and the cluster does not show that it happened",
            step.action.describe()
        ),
        task: Some(id.clone()),
        differences: diffs,
        advice: format!(
            "check whether it happened (for a provisioned node: does its machine exist?). If it did, mark it done; if it did not, tell the run to retry it; then resume (kupgrade's apply example: --mark-done '{id}' or --retry '{id}')"
        ),
    }))
}

/// Carries out a check step: its preflight checks, its verification and its postconditions.
pub(super) fn inline_check(
    plan: &UpgradePlan,
    expect: &Expectations,
    pos: Pos,
    view: &mut View<'_>,
) -> Result<TaskEnd, Box<StopReport>> {
    let step = pos.step(plan);
    let node = pos.node(plan);
    let mut diffs = Vec::new();
    let mut reason = StopReason::Drift;
    let mut moved = Vec::new();
    if let Action::Preflight { checks } = &step.action {
        for c in checks {
            match c {
                PreflightCheck::NodesReady => {
                    for n in view.state.nodes.iter().filter(|n| !n.ready) {
                        if !expect.not_ready_ok.contains(&n.name) {
                            reason = StopReason::NodeNotReady;
                            diffs.push(Difference {
                                node: Some(n.name.clone()),
                                expected: "Ready".into(),
                                found: "NotReady".into(),
                            });
                        }
                    }
                }
                PreflightCheck::StartMatches { control_plane } => {
                    moved = start_differences(plan, control_plane, view);
                }
                // Made on the model by the planner: the policy is checked below as a
                // postcondition; the target's support and kubeadm's verdict depend on the
                // plan's date and versions, not on the live cluster.
                PreflightCheck::PolicyHolds { .. }
                | PreflightCheck::TargetSupported { .. }
                | PreflightCheck::KubeadmVerdict { .. } => {}
            }
        }
    }
    if let Action::Verify { version } = &step.action {
        for n in &view.state.nodes {
            if expect.nodes.presence(&n.name) == Some(Presence::Absent) {
                continue;
            }
            match n.kubelet() {
                Some(v) if same_release(v, version) => {}
                found => diffs.push(Difference {
                    node: Some(n.name.clone()),
                    expected: format!("kubelet is {version}"),
                    found: found.map_or("no kubelet version".into(), |v| format!("kubelet is {v}")),
                }),
            }
        }
    }
    let (mut checked, mut unknown) = (Vec::new(), Vec::new());
    for fact in &step.post {
        match view.check(fact, node) {
            Verdict::Holds => checked.push(fact.to_string()),
            Verdict::Unknown(why) => unknown.push(format!("{fact} ({why})")),
            Verdict::Fails(found) => {
                if *fact == Fact::PolicyHolds {
                    reason = StopReason::PolicyViolated;
                }
                diffs.push(Difference {
                    node: node.cloned(),
                    expected: fact.to_string(),
                    found,
                });
            }
        }
    }
    let id = pos.id(plan);
    if !moved.is_empty() {
        let count = moved.len();
        moved.extend(diffs);
        moved.truncate(20);
        return Err(Box::new(StopReport {
            reason: StopReason::Drift,
            summary: format!(
                "{id} ({}) failed: the live cluster is not where the plan starts ({count} version(s) differ), so nothing was changed",
                step.action.describe()
            ),
            task: Some(id),
            differences: moved,
            advice: "the plan was made from an out-of-date inventory, or the cluster moved since (a halted run, an upgrade by hand). If an earlier run was halted, resume it with its own journal; otherwise read the cluster again, plan from it and start a new run. Running this plan would repeat steps already done, backups and snapshots included".into(),
        }));
    }
    if diffs.is_empty() {
        Ok(TaskEnd::Succeeded { checked, unknown })
    } else {
        Err(Box::new(StopReport {
            reason,
            summary: format!("{id} ({}) failed", step.action.describe()),
            task: Some(id),
            differences: diffs,
            advice: "fix what differs, then resume (the check runs again)".into(),
        }))
    }
}

/// Where the live cluster is not where the plan starts: each node's kubelet (the plan's node
/// list) and each control-plane component of `control_plane`. What the state does not report
/// (no such node, no version) is not compared: the node's absence is another check's.
fn start_differences(
    plan: &UpgradePlan,
    control_plane: &[StartVersion],
    view: &View<'_>,
) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let mut differs =
        |node: &NodeName, component, start: &KubeVersion, live: Option<&KubeVersion>| {
            if let Some(v) = live.filter(|v| !same_release(v, start)) {
                diffs.push(Difference {
                    node: Some(node.clone()),
                    expected: format!("{component} {start}, where the plan starts"),
                    found: format!("{component} {v}"),
                });
            }
        };
    for pn in plan.nodes.iter().filter(|n| !n.provisioned) {
        if let (Some(start), Some(live)) = (&pn.kubelet, view.node(&pn.name)) {
            differs(&pn.name, Component::Kubelet, start, live.kubelet());
        }
    }
    for s in control_plane {
        if let Some(live) = view.node(&s.node) {
            differs(
                &s.node,
                s.component,
                &s.version,
                live.versions.get(s.component),
            );
        }
    }
    diffs
}

/// Decides an operator step: done when the cluster shows its postconditions, left to the
/// operator (and the run goes on) when it cannot tell, the run halts when it shows otherwise.
pub(super) fn operator(
    plan: &UpgradePlan,
    pos: Pos,
    view: &mut View<'_>,
) -> Result<TaskEnd, Box<StopReport>> {
    let step = pos.step(plan);
    let node = pos.node(plan);
    let instructions = format!("{}: {}", step.action.describe(), step.reason);
    let mut unknown = false;
    let mut diffs = Vec::new();
    for fact in &step.post {
        match view.check(fact, node) {
            Verdict::Holds => {}
            Verdict::Unknown(_) => unknown = true,
            Verdict::Fails(found) => diffs.push(Difference {
                node: node.cloned(),
                expected: fact.to_string(),
                found,
            }),
        }
    }
    let id = pos.id(plan);
    if !diffs.is_empty() {
        Err(Box::new(StopReport {
            reason: StopReason::OperatorStep,
            summary: format!("{id} needs you: {}", step.action.describe()),
            task: Some(id),
            differences: diffs,
            advice: format!("{instructions}; then resume"),
        }))
    } else if unknown {
        Ok(TaskEnd::Manual { instructions })
    } else {
        Ok(TaskEnd::AlreadyDone {
            evidence: step.post.iter().map(ToString::to_string).collect(),
        })
    }
}

/// The work of a node, cluster or provider task, or why the run cannot carry it out.
pub(super) fn work(plan: &UpgradePlan, pos: Pos, view: &View<'_>) -> Result<Work, Box<StopReport>> {
    let step = pos.step(plan);
    let id = pos.id(plan);
    let node = id.node.clone();
    let manual = |what: String| {
        Box::new(StopReport {
            reason: StopReason::ManualStep,
            summary: format!(
                "{id} ({}) has no commands kupgrade can run here",
                step.action.describe()
            ),
            task: Some(id.clone()),
            differences: Vec::new(),
            advice: format!(
                "{what}; then mark it done and resume (kupgrade's apply example: --mark-done '{id}')"
            ),
        })
    };
    Ok(match &step.action {
        Action::Cordon => Work::Cordon,
        Action::Uncordon => Work::Uncordon,
        Action::Drain { options } => Work::Drain {
            options: options.clone(),
        },
        Action::WaitReady {
            version,
            timeout_seconds,
        } => Work::WaitReady {
            version: version.clone(),
            timeout: Duration::from_secs(*timeout_seconds),
        },
        Action::RemoveNodes => Work::Remove,
        Action::GateBaseline { gate, regression } => Work::GateBaseline {
            gate: gate.clone(),
            regression: regression.clone(),
        },
        Action::Hook { hook, env } if step.action.executor() == Executor::Local => {
            Work::LocalCommand {
                spec: hook.spec(env),
            }
        }
        Action::Gate { gate, baseline } => Work::Gate {
            gate: gate.clone(),
            baseline: baseline.clone(),
        },
        Action::WaitKubeProxyRollout {
            version,
            timeout_seconds,
        } => Work::WaitKubeProxyRollout {
            version: version.clone(),
            timeout: Duration::from_secs(*timeout_seconds),
        },
        Action::ProvisionNodes { version, templates } => {
            let Some(template) = templates.as_slice().get(pos.task) else {
                return Err(manual(format!(
                    "the plan names no template for node {}",
                    node.as_ref().map(NodeName::as_str).unwrap_or("?")
                )));
            };
            let Some(t) = view.node(template) else {
                return Err(Box::new(StopReport {
                    reason: StopReason::Drift,
                    summary: format!(
                        "stopped before {id}: node {template}, which the new node copies, is missing"
                    ),
                    task: Some(id.clone()),
                    differences: vec![Difference {
                        node: Some(template.clone()),
                        expected: "present".into(),
                        found: "absent".into(),
                    }],
                    advice: "plan again from the live cluster and start a new run".into(),
                }));
            };
            Work::Provision {
                template: Box::new(t.clone()),
                version: version.clone(),
            }
        }
        _ if step.action.executor() != Executor::Node => {
            // An action this run does not know how to carry out (a newer plan format).
            return Err(manual(format!(
                "this version of kupgrade's run cannot carry out `{}`: do it by hand",
                step.action.describe()
            )));
        }
        _ => {
            let Some(name) = &node else {
                return Err(manual("the step names no node".into()));
            };
            let Some(pn) = plan.node(name.as_str()) else {
                return Err(manual(format!(
                    "node {name} is not in the plan's node list"
                )));
            };
            match step.commands.iter().find(|c| c.os == pn.os) {
                Some(c) if c.manual.is_some() => {
                    return Err(manual(format!(
                        "on {name}: {}",
                        c.manual.as_deref().unwrap_or_default()
                    )));
                }
                Some(c) => Work::Commands {
                    commands: c.commands.clone(),
                },
                None => {
                    return Err(manual(format!(
                        "the plan has no commands for {name}'s operating system ({})",
                        pn.os
                    )));
                }
            }
        }
    })
}

/// The report of a task that failed for good.
pub(super) fn failure_report(plan: &UpgradePlan, pos: Pos, failure: &Failure) -> StopReport {
    let step = pos.step(plan);
    let id = pos.id(plan);
    let mut advice = String::new();
    if let Some(c) = &failure.command {
        advice.push_str(&format!("the command was `{c}`. "));
    }
    if let Action::Gate { .. } = &step.action {
        advice.push_str(&format!(
            "fix what the gate names, then resume: the gate is evaluated again. To go on \
             without it: resume with --mark-done '{id}' (kupgrade's apply example)"
        ));
    } else {
        advice.push_str(if step.idempotent {
        "fix the cause, then resume: the step is safe to repeat and runs again"
    } else {
        "it is not safe to repeat: check whether it took effect, then resume (the run checks its postcondition and asks you if it cannot tell)"
    });
    }
    StopReport {
        reason: StopReason::StepFailed,
        summary: format!("{id} ({}) failed: {failure}", step.action.describe()),
        task: Some(id),
        differences: Vec::new(),
        advice,
    }
}
