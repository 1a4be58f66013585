//! Commands that may outlive their session: the handles the driver journals once a task's
//! command runs, and what a later session does with them.
//!
//! What it guarantees: a handle is kept only for the current attempt of a task in flight (a
//! handle of an earlier attempt, or of a task that is no longer running, is refused and never
//! journaled); after a resume, [`Run::survivors`] names every task that may or may not have
//! happened whose last command has a journaled handle, so the driver can look for that command
//! on its node, wait for it or stop it, before [`Run::next`] decides about the task (its
//! postconditions, a rerun or a halt). When a survivor will not go away, the driver stops the
//! run with [`Run::halt`]: nothing starts, and the report says what still runs where.
use jiff::Timestamp;

use crate::NodeName;
use crate::ports::CommandHandle;

use super::Run;
use super::error::RecordError;
use super::output::Output;
use super::record::{Record, RecordKind};
use super::report::{StopReason, StopReport};
use super::task::{TaskId, TaskState};

/// A task that may or may not have happened, whose last command may still run on its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Survivor {
    /// The task.
    pub task: TaskId,
    /// Its node.
    pub node: NodeName,
    /// How to find the command there.
    pub handle: CommandHandle,
}

impl Run {
    /// Command number `command` of `task`'s attempt `attempt` runs on its node, as `handle`
    /// finds it: journals it. Refused unless that attempt is in flight.
    pub fn command_started(
        &mut self,
        task: &TaskId,
        attempt: u32,
        command: usize,
        handle: CommandHandle,
        now: Timestamp,
    ) -> Result<Output, RecordError> {
        let refused = || RecordError {
            task: task.clone(),
            attempt,
        };
        let pos = self
            .schedule
            .locate(&self.plan, task)
            .map_err(|_| refused())?;
        let t = self.schedule.task_mut(pos);
        if !matches!(t.state, TaskState::Running { .. }) || t.attempts != attempt {
            return Err(refused());
        }
        t.handle = Some(handle.clone());
        let mut out = Output::default();
        out.records.push(Record::new(
            now,
            RecordKind::CommandStarted {
                task: task.clone(),
                attempt,
                command,
                handle,
            },
        ));
        Ok(out)
    }

    /// Replays a `command-started` record: kept when it is about the task's current attempt
    /// while it runs.
    pub(super) fn replay_command(&mut self, task: &TaskId, attempt: u32, handle: &CommandHandle) {
        if let Ok(pos) = self.schedule.locate(&self.plan, task) {
            let t = self.schedule.task_mut(pos);
            if matches!(t.state, TaskState::Running { .. }) && t.attempts == attempt {
                t.handle = Some(handle.clone());
            }
        }
    }

    /// The tasks that may or may not have happened (in flight, interrupted or failed in an
    /// earlier session) whose last command has a journaled handle: look for each on its node
    /// before the first [`Run::next`].
    pub fn survivors(&self) -> Vec<Survivor> {
        let mut found = Vec::new();
        for (si, step) in self.plan.steps.iter().enumerate() {
            for (ti, node) in step.nodes.iter().enumerate() {
                let t = self.schedule.task(super::task::Pos::new(si, ti));
                if let (TaskState::Unsure(_), Some(handle)) = (t.state, &t.handle) {
                    found.push(Survivor {
                        task: TaskId::new(step.id.clone(), Some(node.clone())),
                        node: node.clone(),
                        handle: handle.clone(),
                    });
                }
            }
        }
        found
    }

    /// Stops the run for a reason the driver found (a command of an earlier session that
    /// still runs): nothing more starts, and the session ends with `report` once nothing is in
    /// flight. The first reason to stop wins.
    pub fn halt(&mut self, report: StopReport, now: Timestamp) -> Output {
        let mut out = Output::default();
        if self.session.finished().is_none() {
            self.session.halt(report);
        }
        self.settle(now, &mut out);
        out
    }
}

impl Survivor {
    /// The report of a survivor that would not go away: `what` was done about it, `advice`
    /// says what the operator can do.
    pub fn report(&self, what: &str, advice: &str) -> StopReport {
        StopReport {
            reason: StopReason::StillRunning,
            task: Some(self.task.clone()),
            summary: format!(
                "{} started by an earlier session still runs on {} ({}): {what}",
                self.task, self.node, self.handle
            ),
            differences: Vec::new(),
            advice: advice.to_string(),
        }
    }
}
