//! The tasks whose work succeeded and whose postconditions are being checked (`verify.rs`
//! decides; this file keeps the schedule's figures right): each one is in `verifying` under
//! the time of its next check, and counted in `unchecked` until its first check of the
//! session, when its settle window starts.
use jiff::Timestamp;

use crate::plan::UpgradePlan;

use super::super::event::Event;
use super::super::expect::NodeExpectations;
use super::super::options::RetryPolicy;
use super::super::output::Output;
use super::super::record::{Failure, Record, RecordKind, TaskEnd};
use super::super::task::{Pos, TaskState};
use super::{Ran, Schedule};

impl Schedule {
    /// True when a verifying task is due for a check at `now`: its time has come, or it was
    /// not checked yet and no task of its step is in flight (the tasks of a step that end
    /// together are checked on one read of the cluster; other steps' work, such as pre-stage
    /// downloads beside a window, does not hold the check back).
    pub fn check_due(&self, now: Timestamp) -> bool {
        self.verifying.first().is_some_and(|v| v.0 <= now) || self.unchecked_idle > 0
    }

    /// When the first retry or check is due, if one waits.
    pub fn next_wake(&self) -> Option<Timestamp> {
        let retry = self.retries.first().map(|r| r.0);
        let check = self.verifying.first().map(|v| v.0);
        match (retry, check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the first check of postconditions is due, if one waits.
    pub fn next_check(&self) -> Option<Timestamp> {
        self.verifying.first().map(|v| v.0)
    }

    /// Tasks whose postconditions are being checked.
    pub fn verifying(&self) -> usize {
        self.verifying.len()
    }

    /// The verifying tasks due for a check at `now` (see [`Schedule::check_due`]).
    pub fn due_checks(&self, now: Timestamp) -> Vec<Pos> {
        if self.unchecked_idle > 0 {
            return self
                .verifying
                .iter()
                .filter(|(at, pos)| {
                    *at <= now || (self.running_in[pos.step] == 0 && self.until(*pos).is_none())
                })
                .map(|v| v.1)
                .collect();
        }
        self.verifying
            .iter()
            .take_while(|v| v.0 <= now)
            .map(|v| v.1)
            .collect()
    }

    /// The end of the settle window of the verifying task at `pos`, once checked.
    pub fn until(&self, pos: Pos) -> Option<Timestamp> {
        match self.task(pos).state {
            TaskState::Verifying { until, .. } => until,
            _ => None,
        }
    }

    /// The released task's work succeeded: its postconditions are checked from `check_at` on
    /// (journaled).
    pub fn verify_later(
        &mut self,
        plan: &UpgradePlan,
        ran: Ran,
        check_at: Timestamp,
        now: Timestamp,
        out: &mut Output,
    ) {
        let id = ran.pos.id(plan);
        self.task_mut(ran.pos).state = TaskState::Verifying {
            since: ran.since,
            check_at,
            until: None,
        };
        self.verifying.insert((check_at, ran.pos));
        self.unchecked += 1;
        self.unchecked_in[ran.pos.step] += 1;
        if self.running_in[ran.pos.step] == 0 {
            self.unchecked_idle += 1;
        }
        out.records.push(Record::new(
            now,
            RecordKind::TaskVerifying {
                task: id.clone(),
                attempt: ran.attempt,
            },
        ));
        out.events.push(Event::StepVerifying {
            at: now,
            task: id,
            attempt: ran.attempt,
        });
    }

    /// The verifying task at `pos` is checked again at `check_at`; its window ends at `until`.
    pub fn check_again(&mut self, pos: Pos, check_at: Timestamp, until: Timestamp) {
        let Some(since) = self.leave_verifying(pos) else {
            return;
        };
        self.task_mut(pos).state = TaskState::Verifying {
            since,
            check_at,
            until: Some(until),
        };
        self.verifying.insert((check_at, pos));
    }

    /// The cluster showed the verifying task's postconditions: done.
    pub fn verified(
        &mut self,
        plan: &UpgradePlan,
        nodes: &mut NodeExpectations,
        pos: Pos,
        end: TaskEnd,
        now: Timestamp,
        out: &mut Output,
    ) {
        if self.leave_verifying(pos).is_some() {
            self.complete(plan, nodes, pos, end, now, out);
        }
    }

    /// The verifying task's window passed without its postconditions: a failure of its
    /// attempt (see [`Schedule::failed`]). True when it will be retried.
    pub fn unverified(
        &mut self,
        plan: &UpgradePlan,
        pos: Pos,
        failure: &Failure,
        retry: Option<&RetryPolicy>,
        now: Timestamp,
        out: &mut Output,
    ) -> bool {
        let Some(since) = self.leave_verifying(pos) else {
            return false;
        };
        // The task stays out of flight: it was released when its work ended.
        let ran = Ran {
            pos,
            attempt: self.task(pos).attempts,
            since,
        };
        self.failed(plan, ran, failure, retry, now, out)
    }

    /// Takes the verifying task at `pos` out of `verifying` (and `unchecked`); its start time,
    /// or `None` when it is not verifying.
    fn leave_verifying(&mut self, pos: Pos) -> Option<Timestamp> {
        let TaskState::Verifying {
            since,
            check_at,
            until,
        } = self.task(pos).state
        else {
            return None;
        };
        self.verifying.remove(&(check_at, pos));
        if until.is_none() {
            self.unchecked -= 1;
            self.unchecked_in[pos.step] -= 1;
            if self.running_in[pos.step] == 0 {
                self.unchecked_idle -= 1;
            }
        }
        Some(since)
    }
}
