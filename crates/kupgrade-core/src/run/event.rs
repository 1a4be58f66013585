//! Progress events: what a run tells its watchers (progress bars, logs, tests).
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::plan::Executor;
use crate::ports::Stream;
use crate::{KubeVersion, NodeName};

use super::report::Finished;
use super::task::TaskId;

/// Something that happened during a run. Serialized with an `event` tag:
/// `{"event":"step-started","step":"…","node":"cp-1",…}`.
///
/// Ordering, within one session: [`Event::PlanStarted`] comes first and
/// [`Event::PlanFinished`] last; everything about one task comes between its
/// [`Event::StepStarted`] and its [`Event::StepFinished`] (or [`Event::StepRetrying`]), in
/// the order it happened. Events of tasks running at the same time interleave. Events that
/// come with journal records are emitted after those records are on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "event",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Event {
    /// A session began. First event of every session, before any step event.
    PlanStarted {
        /// When.
        at: Timestamp,
        /// The plan's target.
        target: KubeVersion,
        /// Tasks in the plan (a step on each of its nodes).
        tasks: usize,
        /// Tasks already done by earlier sessions.
        done: usize,
        /// True when this session resumes an earlier one.
        resumed: bool,
    },
    /// A task is being started. Emitted once per attempt, after its journal record is on
    /// disk and before any of its commands run.
    StepStarted {
        /// When.
        at: Timestamp,
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The attempt, from 1.
        attempt: u32,
        /// What it does, in a few words.
        action: String,
        /// Which port carries it out.
        executor: Executor,
    },
    /// A command of a task is starting. Between the task's `StepStarted` and its end, in the
    /// order the commands run.
    CommandStarted {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The command line.
        command: String,
    },
    /// One line of a command's output. After its `CommandStarted` and before the task's end;
    /// the lines of one stream of one command keep their order.
    CommandOutput {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// Output lines of a task that were not shown: the watcher fell behind and the driver's
    /// bounded event queue dropped them rather than hold them or slow the command. Where the
    /// gap was, between the task's `CommandOutput` events and before its `StepFinished`.
    OutputDropped {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// How many lines were not shown.
        lines: u64,
    },
    /// The task's work reported success; the run checks its step's postconditions against the
    /// cluster before it counts as done. Between the attempt's `StepStarted` and the task's
    /// `StepFinished` (or `StepRetrying`, when they do not hold in time).
    StepVerifying {
        /// When.
        at: Timestamp,
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The attempt whose work succeeded.
        attempt: u32,
    },
    /// An attempt failed and the task (safe to repeat) will be tried again at `retry_at`. Ends
    /// the attempt; the next attempt starts with a new `StepStarted`.
    StepRetrying {
        /// When.
        at: Timestamp,
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The attempt that failed.
        attempt: u32,
        /// When the next attempt may start.
        retry_at: Timestamp,
        /// Why it failed.
        error: String,
    },
    /// A task ended for this session (done, found done, failed for good, or interrupted). Once
    /// per task per session, after every other event of the task.
    StepFinished {
        /// When.
        at: Timestamp,
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// How.
        outcome: StepOutcome,
        /// Milliseconds since its last `StepStarted` (0 when it was not started).
        duration_ms: u64,
    },
    /// A node is Ready at a version: after the `StepFinished` of the step that waited for it
    /// (or provisioned it).
    NodeReady {
        /// When.
        at: Timestamp,
        /// The node.
        node: NodeName,
        /// Its kubelet's version.
        version: KubeVersion,
    },
    /// Only the operator can do this task; the run goes on. Before the task's `StepFinished`.
    OperatorAction {
        /// When.
        at: Timestamp,
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// What to do.
        instructions: String,
    },
    /// Dry run: what a task would do (a command line, or a cluster operation). In plan order,
    /// between the task's `StepStarted` and `StepFinished`.
    WouldRun {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The command or operation.
        what: String,
    },
    /// The session ended. Last event of every session.
    PlanFinished {
        /// When.
        at: Timestamp,
        /// How.
        outcome: Finished,
        /// What happened in this session.
        counts: Counts,
    },
}

impl Event {
    /// The task the event is about, if any.
    pub fn task(&self) -> Option<&TaskId> {
        match self {
            Event::StepStarted { task, .. }
            | Event::CommandStarted { task, .. }
            | Event::CommandOutput { task, .. }
            | Event::OutputDropped { task, .. }
            | Event::StepVerifying { task, .. }
            | Event::StepRetrying { task, .. }
            | Event::StepFinished { task, .. }
            | Event::OperatorAction { task, .. }
            | Event::WouldRun { task, .. } => Some(task),
            Event::PlanStarted { .. } | Event::NodeReady { .. } | Event::PlanFinished { .. } => {
                None
            }
        }
    }
}

/// How a task ended, in an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StepOutcome {
    /// Carried out.
    Succeeded,
    /// Found done (its effect was visible after a crash), not run again.
    AlreadyDone,
    /// Left to the operator.
    Manual,
    /// Failed for good in this session.
    Failed,
    /// Aborted before it ended.
    Interrupted,
}

/// What happened in a session, task by task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Attempts started.
    pub started: usize,
    /// Tasks carried out.
    pub succeeded: usize,
    /// Tasks found done after a crash and not run again.
    pub already_done: usize,
    /// Tasks left to the operator.
    pub manual: usize,
    /// Failed attempts that were retried.
    pub retried: usize,
    /// Tasks that failed for good.
    pub failed: usize,
    /// Tasks aborted.
    pub interrupted: usize,
}
