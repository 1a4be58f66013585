//! The plan's transient windows at run time: where the run is inside one, the live checks
//! (the policy before every step, the postconditions) accept the window's rule and nothing
//! else; entering and leaving are journaled.
//!
//! What it guarantees: a window is entered once a task of its first step has left the pending
//! state (it may have moved kube-proxy), and left once every task of its last step is done;
//! it is never entered again after it was left. Only the rules of the windows entered and not
//! left are accepted.
use jiff::Timestamp;

use crate::plan::UpgradePlan;

use super::output::Output;
use super::record::{Record, RecordKind};
use super::schedule::Schedule;
use super::task::{Pos, TaskState};

/// Where the run is relative to one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Before,
    Inside,
    After,
}

/// One window of the plan: its index in the plan, its first and last steps' indices.
struct Window {
    index: usize,
    from: usize,
    to: usize,
    stage: Stage,
}

/// The plan's transient windows and where the run is in each.
pub(super) struct Windows {
    list: Vec<Window>,
}

impl Windows {
    /// The windows of `plan` (those whose steps the schedule knows), none entered yet.
    pub fn new(plan: &UpgradePlan, schedule: &Schedule) -> Self {
        let list = plan
            .transient
            .iter()
            .enumerate()
            .filter_map(|(index, w)| {
                Some(Window {
                    index,
                    from: schedule.step_index(&w.from)?,
                    to: schedule.step_index(&w.to)?,
                    stage: Stage::Before,
                })
            })
            .collect();
        Windows { list }
    }

    /// Moves each window on as the schedule went, journaling entering and leaving.
    pub fn follow(
        &mut self,
        plan: &UpgradePlan,
        schedule: &Schedule,
        now: Timestamp,
        out: &mut Output,
    ) {
        for w in &mut self.list {
            let tasks = |si: usize| (0..schedule.tasks_in(si)).map(move |t| Pos::new(si, t));
            let started = (w.from..=w.to)
                .flat_map(tasks)
                .any(|p| !matches!(schedule.task(p).state, TaskState::Pending));
            let done = schedule.tasks_in(w.to) > 0
                && tasks(w.to).all(|p| matches!(schedule.task(p).state, TaskState::Done));
            let window = &plan.transient[w.index];
            if w.stage == Stage::Before && (started || done) {
                w.stage = Stage::Inside;
                out.records.push(Record::new(
                    now,
                    RecordKind::TransientEntered {
                        rule: window.rule.clone(),
                        from: window.from.clone(),
                        to: window.to.clone(),
                    },
                ));
            }
            if w.stage == Stage::Inside && done {
                w.stage = Stage::After;
                out.records.push(Record::new(
                    now,
                    RecordKind::TransientLeft {
                        rule: window.rule.clone(),
                        from: window.from.clone(),
                        to: window.to.clone(),
                    },
                ));
            }
        }
    }

    /// A journal record about the window from `from` to `to` (`left`: it was left).
    pub fn replay(&mut self, plan: &UpgradePlan, from: &crate::plan::StepId, left: bool) {
        for w in &mut self.list {
            if plan.transient[w.index].from == *from {
                w.stage = if left { Stage::After } else { Stage::Inside };
            }
        }
    }

    /// The rules accepted now: those of the windows the run is inside.
    pub fn accepted<'p>(&self, plan: &'p UpgradePlan) -> Vec<&'p str> {
        self.list
            .iter()
            .filter(|w| w.stage == Stage::Inside)
            .map(|w| plan.transient[w.index].rule.as_str())
            .collect()
    }
}
