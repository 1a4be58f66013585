//! Verification: a task whose work reported success is done only once the cluster shows what
//! its step promises.
//!
//! An exit status says that a command ended, not that it did what the plan needs: a `kubeadm`
//! that exits 0 without moving anything, a package manager that kept the old package. So when
//! a task's work succeeds, the run reads the cluster again (the same reads as its checks
//! before each step) and holds the step's postconditions ([`Step::post`]) against it.
//!
//! What it guarantees:
//! - a task ends `Succeeded` only when every postcondition of its step that the cluster's
//!   state can tell holds on a state read after its work ended; the record of its end lists
//!   the facts checked and those that could not be told, each with why (the `kubeadm` binary,
//!   the operator's kubectl, a kubelet package before its restart: [`Action::shown_later`]);
//! - a postcondition that does not hold yet is checked again (every [`interval`]) until the
//!   step's settle window ([`Action::settle_window`]) has passed; then the attempt failed
//!   ([`FailureKind::PostconditionFailed`]): retried when the step is safe to repeat, under the
//!   usual retry policy, otherwise the run halts naming the fact, the node and what was found;
//! - the tasks of a step that end together are checked on one read of the cluster: a task's
//!   first check waits until no task of its step is in flight (other steps' work does not
//!   hold it back), or one [`interval`] at most;
//! - a resume never assumes: a task the journal left verifying is checked again, with a whole
//!   window.
//!
//! [`Step::post`]: crate::plan::Step::post
//! [`Action::shown_later`]: crate::plan::Action::shown_later
//! [`Action::settle_window`]: crate::plan::Action::settle_window
use std::time::Duration;

use jiff::Timestamp;

use crate::plan::{Step, UpgradePlan};

use super::expect::NodeExpectations;
use super::facts::{Verdict, View};
use super::options::RetryPolicy;
use super::output::Output;
use super::record::{Failure, FailureKind, TaskEnd};
use super::report::{Difference, StopReason, StopReport};
use super::schedule::Schedule;
use super::task::Pos;

/// What the cluster shows of a task's postconditions.
enum Shown {
    /// Every postcondition the state can tell holds: the facts checked, and those it could
    /// not tell (with why).
    Holds(TaskEnd),
    /// Some do not (yet).
    Differs(Vec<Difference>),
}

/// How often a postcondition that does not hold yet is checked again within `window`: a
/// twelfth of it, between 1 and 10 seconds.
pub(crate) fn interval(window: Duration) -> Duration {
    (window / 12).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// True when the cluster's state may show some postcondition of `step` once a task of it
/// ends: its tasks are verified. Otherwise a task is done when its work succeeds.
pub(crate) fn needs_check(step: &Step) -> bool {
    step.post
        .iter()
        .any(|f| step.action.shown_later(f).is_none())
}

/// The end of a task of `step` (which needs no check): the postconditions only a later step
/// can see, as not told.
pub(super) fn unchecked_end(step: &Step) -> TaskEnd {
    TaskEnd::Succeeded {
        checked: Vec::new(),
        unknown: step
            .post
            .iter()
            .filter_map(|f| step.action.shown_later(f).map(|why| format!("{f} ({why})")))
            .collect(),
    }
}

/// The postconditions of the task at `pos` on `view`.
fn shown(plan: &UpgradePlan, pos: Pos, view: &mut View<'_>) -> Shown {
    let step = pos.step(plan);
    let node = pos.node(plan);
    let mut checked = Vec::new();
    let mut unknown = Vec::new();
    let mut diffs = Vec::new();
    for fact in &step.post {
        match view.check(fact, node) {
            Verdict::Holds => checked.push(fact.to_string()),
            Verdict::Unknown(why) => unknown.push(format!("{fact} ({why})")),
            Verdict::Fails(found) => match step.action.shown_later(fact) {
                Some(why) => unknown.push(format!("{fact} ({why})")),
                None => diffs.push(Difference {
                    node: node.cloned(),
                    expected: fact.to_string(),
                    found,
                }),
            },
        }
    }
    if diffs.is_empty() {
        Shown::Holds(TaskEnd::Succeeded { checked, unknown })
    } else {
        Shown::Differs(diffs)
    }
}

/// Checks the verifying tasks due at `now` against `view`: a task whose postconditions hold
/// is done; one whose do not is checked again later, until its window has passed, when its
/// attempt failed (`retry`: the retry policy, `None` once the run stops). Returns the report
/// to halt with when a task failed for good.
pub(super) fn check_due(
    plan: &UpgradePlan,
    schedule: &mut Schedule,
    nodes: &mut NodeExpectations,
    view: &mut View<'_>,
    retry: Option<&RetryPolicy>,
    now: Timestamp,
    out: &mut Output,
) -> Option<Box<StopReport>> {
    let mut halt = None;
    for pos in schedule.due_checks(now) {
        let window = pos.step(plan).action.settle_window();
        let diffs = match shown(plan, pos, view) {
            Shown::Holds(end) => {
                schedule.verified(plan, nodes, pos, end, now, out);
                continue;
            }
            Shown::Differs(diffs) => diffs,
        };
        let until = schedule
            .until(pos)
            .unwrap_or_else(|| now.saturating_add(window).unwrap_or(now));
        if now < until {
            let next = now.saturating_add(interval(window)).unwrap_or(until);
            schedule.check_again(pos, next.min(until), until);
            continue;
        }
        let failure = failure(plan, pos, &diffs, window);
        if !schedule.unverified(plan, pos, &failure, retry, now, out) && halt.is_none() {
            halt = Some(report(plan, pos, diffs, window));
        }
    }
    halt
}

/// The failure of an attempt whose postconditions did not hold within `window`.
fn failure(plan: &UpgradePlan, pos: Pos, diffs: &[Difference], window: Duration) -> Failure {
    let shown: Vec<String> = diffs.iter().take(5).map(ToString::to_string).collect();
    Failure::new(
        FailureKind::PostconditionFailed,
        format!(
            "it reported success, but after {}s the cluster does not show what {} promises: {}",
            window.as_secs(),
            pos.step(plan).action.describe(),
            shown.join("; ")
        ),
    )
}

/// The report of a task whose postconditions did not hold in time, for good.
fn report(
    plan: &UpgradePlan,
    pos: Pos,
    differences: Vec<Difference>,
    window: Duration,
) -> Box<StopReport> {
    let step = pos.step(plan);
    let id = pos.id(plan);
    let advice = if step.idempotent {
        "find out why the step reports success without taking effect (a command that exits 0 without doing its work, a package that did not change), fix it, then resume: the step is safe to repeat and runs again".to_string()
    } else {
        format!(
            "it is not safe to repeat: find out whether it took effect; resume once it has (the run checks it again), or tell the run to run it again (kupgrade's apply example: --retry '{id}')"
        )
    };
    Box::new(StopReport {
        reason: StopReason::StepFailed,
        summary: format!(
            "{id} ({}) reported success, but the cluster did not show its postconditions within {}s",
            step.action.describe(),
            window.as_secs()
        ),
        task: Some(id),
        differences,
        advice,
    })
}
