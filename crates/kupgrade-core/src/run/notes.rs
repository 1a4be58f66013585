//! What a task saw beside its outcome, journaled for the report and for a resume: a hook's or
//! gate's output ([`RecordKind::TaskOutput`]) and a regression gate's workload snapshots
//! ([`RecordKind::WorkloadsNoted`]).
//!
//! Invariant: every snapshot a baseline step noted (in this session or, replayed, in an
//! earlier one) is in `Run::workloads` under the step's id, so a gate resumed in a later
//! session compares with the same baseline; records are bounded ([`OUTPUT_KEPT`],
//! [`SNAPSHOT_KEPT`]).
use jiff::Timestamp;

use crate::capture::tail_text;
use crate::gate::WorkloadSnapshot;
use crate::plan::{Action, StepId};

use super::Run;
use super::output::Output;
use super::record::{OUTPUT_KEPT, Record, RecordKind, SNAPSHOT_KEPT};
use super::task::TaskId;

/// What a task saw, for [`Run::note`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TaskNote {
    /// What it printed (a hook's command, a gate's own lines and its command's).
    Output {
        /// Standard output.
        stdout: String,
        /// Standard error.
        stderr: String,
    },
    /// The workloads a regression gate watches, as the task saw them.
    Workloads(WorkloadSnapshot),
}

impl Run {
    /// Journals what `task` (attempt `attempt`) saw: its output, bounded to its last
    /// [`OUTPUT_KEPT`] bytes a stream; a workload snapshot of at most [`SNAPSHOT_KEPT`] pods
    /// and budgets (a larger one is not journaled, and a resume judges its gate without it).
    /// A baseline step's snapshot is kept for [`Run::noted_workloads`].
    pub fn note(&mut self, task: &TaskId, attempt: u32, note: TaskNote, now: Timestamp) -> Output {
        let mut out = Output::default();
        let kind = match note {
            TaskNote::Output { stdout, stderr } => {
                if stdout.trim().is_empty() && stderr.trim().is_empty() {
                    return out;
                }
                RecordKind::TaskOutput {
                    task: task.clone(),
                    attempt,
                    stdout: tail_text(&stdout, OUTPUT_KEPT).into_owned(),
                    stderr: tail_text(&stderr, OUTPUT_KEPT).into_owned(),
                }
            }
            TaskNote::Workloads(snapshot) => {
                if snapshot.pods.len() > SNAPSHOT_KEPT || snapshot.budgets.len() > SNAPSHOT_KEPT {
                    return out;
                }
                if self.is_baseline(&task.step) {
                    self.workloads.insert(task.step.clone(), snapshot.clone());
                }
                RecordKind::WorkloadsNoted {
                    task: task.clone(),
                    attempt,
                    snapshot,
                }
            }
        };
        out.records.push(Record::new(now, kind));
        out
    }

    /// The workload snapshots the run's baseline steps journaled (this session's and, on
    /// resume, the earlier sessions'), by the step's id.
    pub fn noted_workloads(&self) -> impl Iterator<Item = (&StepId, &WorkloadSnapshot)> + '_ {
        self.workloads.iter()
    }

    /// True when `step` takes a regression gate's baseline.
    pub(super) fn is_baseline(&self, step: &StepId) -> bool {
        self.schedule
            .step_index(step)
            .is_some_and(|i| matches!(self.plan.steps[i].action, Action::GateBaseline { .. }))
    }
}
