//! Why a run could not be set up or resumed, and why it refused an operator's decision or a
//! driver's outcome.
use crate::plan::StepId;

use super::record::FORMAT;
use super::task::TaskId;

/// Why a run could not be set up or resumed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A step depends on a step the plan does not have.
    #[error("step {step} depends on {depends_on}, which is not in the plan")]
    UnknownDependency {
        /// The step.
        step: StepId,
        /// The missing step.
        depends_on: StepId,
    },
    /// Steps depend on each other in a circle.
    #[error("step {step} depends, through other steps, on itself")]
    DependencyCycle {
        /// A step on the circle.
        step: StepId,
    },
    /// Two steps have the same id.
    #[error("the plan has two steps called {0}")]
    DuplicateStep(StepId),
    /// The journal belongs to another plan.
    #[error(
        "the journal belongs to another plan (journal {journal}, this plan {plan}): resume with the plan the run started with, or start a new journal"
    )]
    OtherPlan {
        /// The journal's plan fingerprint.
        journal: String,
        /// This plan's.
        plan: String,
    },
    /// The journal was written by a newer kupgrade.
    #[error(
        "journal record {record} has format {found}, newer than this kupgrade reads ({FORMAT}): resume with the kupgrade that wrote it"
    )]
    NewerFormat {
        /// The record (1-based).
        record: usize,
        /// Its format.
        found: u32,
    },
    /// The journal's records do not make sense.
    #[error("journal record {record}: {message}")]
    Malformed {
        /// The record (1-based).
        record: usize,
        /// What is wrong.
        message: String,
    },
}

/// Why [`Run::resolve`](super::Run::resolve) refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No such task in the plan.
    #[error("the plan has no task {0}")]
    UnknownTask(TaskId),
    /// The task is done already.
    #[error("task {0} is already done")]
    AlreadyDone(TaskId),
    /// The task is running.
    #[error("task {0} is running")]
    Running(TaskId),
    /// No step has this id.
    #[error("the plan has no step {0:?}")]
    NoSuchStep(String),
    /// The step acts on several nodes and none was named.
    #[error("step {step} acts on {nodes} nodes: name one, as in '{step} on NODE'")]
    WhichNode {
        /// The step.
        step: StepId,
        /// How many nodes it acts on.
        nodes: usize,
    },
}

/// Why [`Run::record`](super::Run::record) refused an outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("outcome for {task} (attempt {attempt}) does not match a running task")]
pub struct RecordError {
    /// The task named.
    pub task: TaskId,
    /// The attempt named.
    pub attempt: u32,
}
