//! Resuming: rebuilding a run from the records of its journal.
//!
//! What it guarantees: the journal belongs to this plan (its first record names the plan's
//! fingerprint) and was written by a format this crate reads, or the resume is refused with the
//! record at fault; each task ends in the state its last record gave it, and its node's
//! expectations as that task's start and end left them; a task started and never ended (its
//! session died) becomes Unsure and is checked against the cluster before it runs again, as is
//! one that failed or was interrupted; a task whose work succeeded but whose postconditions
//! were still being checked is checked again (`verify.rs`), with a whole window. Replaying
//! writes no records and emits no events.
use std::sync::Arc;

use jiff::Timestamp;

use crate::plan::UpgradePlan;
use crate::skew::SkewPolicy;

use super::Run;
use super::error::RunError;
use super::options::RunOptions;
use super::record::{FORMAT, Record, RecordKind, Resolution, TaskEnd};
use super::task::{Pos, TaskState, Unsure};

impl Run {
    /// Resumes a run of `plan` from the `records` of its journal (empty: a new run).
    pub fn resume(
        plan: Arc<UpgradePlan>,
        policy: Arc<dyn SkewPolicy>,
        options: RunOptions,
        records: &[Record],
    ) -> Result<Run, RunError> {
        let mut run = Run::new(plan, policy, options)?;
        for (i, r) in records.iter().enumerate() {
            run.replay(i + 1, r)?;
        }
        run.schedule.in_flight_unsure(&run.plan);
        run.debug_check();
        Ok(run)
    }

    /// Takes record number `no` (from 1) of the journal.
    fn replay(&mut self, no: usize, r: &Record) -> Result<(), RunError> {
        let malformed = |message: String| RunError::Malformed {
            record: no,
            message,
        };
        if r.v > FORMAT {
            return Err(RunError::NewerFormat {
                record: no,
                found: r.v,
            });
        }
        match &r.kind {
            RecordKind::RunStarted { plan, baseline, .. } => {
                if no != 1 {
                    return Err(malformed("run-started is not the first record".into()));
                }
                if *plan != self.fingerprint {
                    return Err(RunError::OtherPlan {
                        journal: plan.clone(),
                        plan: self.fingerprint.clone(),
                    });
                }
                self.expect.set_baseline(baseline.clone());
                self.session.number = 1;
                self.started_at(r.at);
                return Ok(());
            }
            _ if no == 1 => {
                return Err(malformed(
                    "the journal does not start with a run-started record".into(),
                ));
            }
            RecordKind::SessionStarted { session } => self.session.number = *session,
            RecordKind::TaskStarted { task, attempt } => {
                let pos = self.schedule.locate(&self.plan, task).map_err(malformed)?;
                let t = self.schedule.task_mut(pos);
                if t.state == TaskState::Done {
                    return Err(malformed(format!("{task} started again after it was done")));
                }
                t.state = TaskState::Running { since: r.at };
                t.attempts = t.attempts.max(*attempt);
                t.handle = None;
                self.expect.nodes.started(&self.plan, pos);
            }
            RecordKind::TaskVerifying { task, .. } => {
                let pos = self.schedule.locate(&self.plan, task).map_err(malformed)?;
                let t = self.schedule.task_mut(pos);
                let since = match t.state {
                    TaskState::Running { since } => since,
                    TaskState::Done => {
                        return Err(malformed(format!("{task} verified after it was done")));
                    }
                    _ => r.at,
                };
                // Checked again in the next session, with a whole window: never assumed.
                t.state = TaskState::Verifying {
                    since,
                    check_at: Timestamp::MIN,
                    until: None,
                };
            }
            RecordKind::TaskFinished { task, end, .. } => {
                let pos = self.schedule.locate(&self.plan, task).map_err(malformed)?;
                match end {
                    TaskEnd::Succeeded { .. }
                    | TaskEnd::AlreadyDone { .. }
                    | TaskEnd::Manual { .. } => self.replay_done(pos),
                    TaskEnd::Failed { .. } => {
                        self.schedule.task_mut(pos).state = TaskState::Unsure(Unsure::Failed)
                    }
                    TaskEnd::Interrupted => {
                        self.schedule.task_mut(pos).state = TaskState::Unsure(Unsure::Interrupted)
                    }
                }
            }
            RecordKind::Resolved { task, resolution } => {
                let pos = self.schedule.locate(&self.plan, task).map_err(malformed)?;
                match resolution {
                    Resolution::MarkDone => self.replay_done(pos),
                    Resolution::Retry => self.schedule.task_mut(pos).state = TaskState::Pending,
                }
            }
            RecordKind::Stopped { .. }
            | RecordKind::LeaseTaken { .. }
            | RecordKind::TaskOutput { .. } => {}
            RecordKind::WorkloadsNoted { task, snapshot, .. } => {
                if self.is_baseline(&task.step) {
                    self.workloads.insert(task.step.clone(), snapshot.clone());
                }
            }
            RecordKind::CommandStarted {
                task,
                attempt,
                handle,
                ..
            } => self.replay_command(task, *attempt, handle),
            RecordKind::FindingsAccepted { findings, .. } => {
                self.session.accepted.extend(findings.iter().cloned());
            }
            RecordKind::TransientEntered { from, .. } => {
                self.windows.replay(&self.plan, from, false)
            }
            RecordKind::TransientLeft { from, .. } => self.windows.replay(&self.plan, from, true),
        }
        Ok(())
    }

    /// The task at `pos` is done (once: its node's expectations change once).
    fn replay_done(&mut self, pos: Pos) {
        let t = self.schedule.task_mut(pos);
        if t.state != TaskState::Done {
            t.state = TaskState::Done;
            self.expect.nodes.done(&self.plan, pos);
        }
    }
}
