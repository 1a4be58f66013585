//! The schedule's figures recomputed from the task states ([`Schedule::check`]): what the
//! module documentation of `schedule.rs` promises, said again as code. Debug builds run it
//! after every call of the run.
use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::plan::UpgradePlan;

use super::super::task::{Pos, TaskState};
use super::Schedule;

impl Schedule {
    /// Recomputes the derived figures from the task states and says which one differs, if one
    /// does (see the module documentation).
    pub fn check(&self, plan: &UpgradePlan) -> Result<(), String> {
        let n = self.steps.len();
        let mut finished = vec![false; n];
        let (mut tasks_done, mut steps_done) = (0, 0);
        for (si, s) in self.steps.iter().enumerate() {
            let done = s
                .tasks
                .iter()
                .filter(|t| t.state == TaskState::Done)
                .count();
            if done != s.done {
                return Err(format!("step {si} counts {} done of {done}", s.done));
            }
            tasks_done += done;
            if done == s.tasks.len() {
                finished[si] = true;
                steps_done += 1;
            }
        }
        if (tasks_done, steps_done) != (self.tasks_done, self.steps_done) {
            return Err(format!(
                "{}/{} tasks/steps counted done, {tasks_done}/{steps_done} are",
                self.tasks_done, self.steps_done
            ));
        }
        for i in 0..n {
            let waiting = self.deps[i].iter().filter(|&&d| !finished[d]).count();
            if waiting != self.waiting_on[i] {
                return Err(format!(
                    "step {i} counts {} steps to wait on, not {waiting}",
                    self.waiting_on[i]
                ));
            }
            if self.ready.contains(&i) != (!finished[i] && waiting == 0) {
                return Err(format!("step {i} is wrongly (not) ready"));
            }
        }
        self.check_tasks(plan)
    }

    /// The part of [`Schedule::check`] about the tasks of ready steps.
    fn check_tasks(&self, plan: &UpgradePlan) -> Result<(), String> {
        let mut startable = 0;
        let mut retries = BTreeSet::new();
        let mut verifying = BTreeSet::new();
        let mut unchecked = 0;
        let mut unchecked_in = vec![0; self.steps.len()];
        let mut running_in = vec![0; self.steps.len()];
        let mut running = HashMap::new();
        let mut busy = HashSet::new();
        for (si, s) in self.steps.iter().enumerate() {
            let ready = self.ready.contains(&si);
            for (ti, t) in s.tasks.iter().enumerate() {
                let pos = Pos::new(si, ti);
                match t.state {
                    TaskState::Pending | TaskState::Unsure(_) if ready => startable += 1,
                    TaskState::Retry { .. }
                    | TaskState::Running { .. }
                    | TaskState::Verifying { .. }
                        if !ready =>
                    {
                        return Err(format!(
                            "{} waits or runs in a step that is not ready",
                            pos.id(plan)
                        ));
                    }
                    TaskState::Retry { at } => {
                        retries.insert((at, pos));
                    }
                    TaskState::Verifying {
                        check_at, until, ..
                    } => {
                        verifying.insert((check_at, pos));
                        unchecked += usize::from(until.is_none());
                        unchecked_in[si] += u32::from(until.is_none());
                    }
                    TaskState::Running { .. } => {
                        running_in[si] += 1;
                        let id = pos.id(plan);
                        if let Some(node) = &id.node
                            && !busy.insert(node.clone())
                        {
                            return Err(format!("two tasks run on {node}"));
                        }
                        running.insert(id, pos);
                    }
                    _ => {}
                }
            }
        }
        if startable != self.startable {
            return Err(format!(
                "{} tasks counted startable, {startable} are",
                self.startable
            ));
        }
        if retries != self.retries {
            return Err("the retries differ from the tasks waiting to be retried".into());
        }
        if verifying != self.verifying
            || unchecked != self.unchecked
            || unchecked_in != self.unchecked_in
            || idle_unchecked(&unchecked_in, &running_in) != self.unchecked_idle
        {
            return Err("the checks differ from the tasks being verified".into());
        }
        if running_in != self.running_in {
            return Err("the tasks counted in flight by step differ from those running".into());
        }
        if running != self.running || busy != self.busy || self.in_flight != running.len() {
            return Err(format!(
                "{} tasks counted in flight, {} run (or their positions or nodes differ)",
                self.in_flight,
                running.len()
            ));
        }
        if self.in_flight > self.limit {
            return Err(format!(
                "{} tasks in flight, more than {}",
                self.in_flight, self.limit
            ));
        }
        Ok(())
    }
}

/// The unchecked verifying tasks of the steps with no task running.
pub(super) fn idle_unchecked(unchecked_in: &[u32], running_in: &[u32]) -> usize {
    unchecked_in
        .iter()
        .zip(running_in)
        .filter(|(_, r)| **r == 0)
        .map(|(u, _)| *u as usize)
        .sum()
}
