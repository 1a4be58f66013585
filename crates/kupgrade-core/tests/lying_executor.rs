//! A lying executor: over generated clusters and plans, one task reports success without doing
//! anything (on every attempt). The run checks each task's postconditions against the cluster,
//! and each step's preconditions before it, so:
//!
//! - no state the run observes, and no state of the cluster after any task, breaks the skew
//!   policy;
//! - the run ends (never waits forever): completed only when the lie did not matter (the
//!   cluster ends where an honest run leaves it, in everything the policy judges), otherwise
//!   halted at the lying task or at a later one whose facts the lie left false (or at a step
//!   only the operator can do, who is not here).
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use kupgrade_core::plan::{PlanOptions, PlanRequest, Simulation, Target, UpgradePlan};
use kupgrade_core::run::{Finished, Run, RunOptions, StopReason, TaskId};
use kupgrade_core::skew::UpstreamPolicy;
use kupgrade_core::{ClusterState, Minor, testing};
use proptest::prelude::*;

/// A date by which every minor the generators use has releases.
const DATE: Date = date(2026, 11, 25);

/// What the policy judges of a state: each node's versions but the binaries the cluster's
/// state cannot show (kubeadm, kubectl), and the add-ons.
fn judged(state: &ClusterState) -> String {
    let mut out = format!("{:?}\n", state.addons);
    for n in &state.nodes {
        let v = &n.versions;
        out += &format!(
            "{} {:?} {:?} {:?} {:?} {:?}\n",
            n.name,
            v.kubelet,
            v.kube_apiserver,
            v.kube_controller_manager,
            v.kube_scheduler,
            v.etcd
        );
    }
    out
}

/// The honest run's end: every step applied to the model.
fn honest_end(state: &ClusterState, plan: &UpgradePlan) -> ClusterState {
    let mut model = Simulation::new(state.clone());
    for step in &plan.steps {
        model
            .apply(step)
            .expect("the plan applies to its own model");
    }
    model.state().clone()
}

/// How the run ended, with the lying task (if it started) and the tasks in the order they
/// started.
struct Ending {
    finished: Finished,
    liar: Option<TaskId>,
    started: Vec<TaskId>,
    end: ClusterState,
}

/// Runs `plan` on a model of `state` where the `lie_at`-th task to start (counted without
/// retries) exits 0 without effect on every attempt. Checks the policy on every state.
fn run_with_liar(
    state: &ClusterState,
    plan: &Arc<UpgradePlan>,
    lie_at: usize,
) -> Result<Ending, String> {
    let mut run = Run::new(
        plan.clone(),
        Arc::new(UpstreamPolicy::new()),
        RunOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut model = Simulation::new(state.clone());
    let mut now = Timestamp::UNIX_EPOCH;
    let mut liar: Option<TaskId> = None;
    let mut started: Vec<TaskId> = Vec::new();
    for _ in 0..100_000 {
        if run.is_finished() {
            return Ok(Ending {
                finished: run.finished().cloned().expect("finished"),
                liar,
                started,
                end: model.state().clone(),
            });
        }
        if !run.wants_state(now) {
            now = match run.wake_at() {
                Some(t) if t > now => t,
                _ => return Err(format!("stuck at {now}: {run:?}")),
            };
            continue;
        }
        let seen = testing::upstream_errors(model.state());
        if !seen.is_empty() {
            return Err(format!(
                "the run observed a state that breaks the policy: {seen:?}"
            ));
        }
        let out = run.next(model.state(), now);
        for task in out.tasks {
            if !started.contains(&task.id) {
                started.push(task.id.clone());
                if started.len() == lie_at + 1 {
                    liar = Some(task.id.clone());
                }
            }
            if liar.as_ref() != Some(&task.id) {
                let step = plan.steps[task.step_index].on_node(task.id.node.as_ref());
                model
                    .apply(&step)
                    .map_err(|e| format!("{}: {e}", task.id))?;
            }
            let after = testing::upstream_errors(model.state());
            if !after.is_empty() {
                return Err(format!("{} broke the policy: {after:?}", task.id));
            }
            run.record(testing::succeeded(task), now)
                .map_err(|e| e.to_string())?;
        }
        now = now.saturating_add(Duration::from_secs(1)).unwrap_or(now);
    }
    Err("the run did not end".into())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn a_lying_executor_never_breaks_the_policy(
        state in testing::cluster_state_satisfying(UpstreamPolicy::new(), 1..=5),
        offset in 1u64..=2,
        lie in any::<prop::sample::Index>(),
    ) {
        // No operator's kubectl: its upgrade is a step for the operator, who is not here.
        let state = ClusterState { kubectl: None, ..state };
        let cp = state.apiserver_max().expect("generated clusters have API servers").minor();
        let target = Target::Minor(Minor::new(cp.major(), cp.minor() + offset));
        let options = PlanOptions { allow_unsupported_target: true, ..PlanOptions::default() };
        let Ok(plan) = PlanRequest::new(target, DATE).options(options).plan(&state) else {
            // The planner's refusals are its own properties' business.
            return Ok(());
        };
        let plan = Arc::new(plan);
        let tasks: usize = plan.steps.iter().map(|s| s.nodes.len().max(1)).sum();
        let lie_at = lie.index(tasks);
        let ending = run_with_liar(&state, &plan, lie_at).map_err(TestCaseError::fail)?;
        match &ending.finished {
            Finished::Completed => {
                // Harmless: the cluster ends where an honest run leaves it.
                prop_assert_eq!(judged(&ending.end), judged(&honest_end(&state, &plan)));
            }
            // A step only the operator can do (a repository older than pkgs.k8s.io carries):
            // the operator is not here; the policy held up to it.
            Finished::Halted(report)
                if matches!(report.reason, StopReason::ManualStep | StopReason::OperatorStep) => {}
            Finished::Halted(report) => {
                let Some(liar) = ending.liar.as_ref() else {
                    return Err(TestCaseError::fail(format!("halted before the lie: {report}")));
                };
                let named = report.task.as_ref().expect("the report names a task");
                let at = |t: &TaskId| ending.started.iter().position(|s| s == t);
                // A task the run refused to start comes after every started one.
                prop_assert!(
                    at(named).is_none_or(|i| Some(i) >= at(liar)),
                    "halted at {} before the lie at {}: {}", named, liar, report
                );
            }
            other => prop_assert!(false, "ended {:?}", other),
        }
    }
}
