//! Tasks: a step on one of its nodes (or a step without nodes). Their ids, as the journal,
//! the events and the stop reports name them; the [`Task`]s handed to the driver and the
//! [`Work`] each asks of the ports; and the state each task is in during a run.
//!
//! What it guarantees:
//! - a [`TaskId`] names a task by its step's id and its node, so it reads the same in every
//!   session; a `Pos` names the same task by position in the plan, valid for the plan it was
//!   made from;
//! - a `TaskState` is one of a few states; only the schedule (`schedule.rs`) moves a task
//!   from one to another during a session, and the replay (`replay.rs`) when it rebuilds them
//!   from a journal. A task is Done only once its work succeeded and the cluster showed its
//!   postconditions (or the cluster showed them after a crash, or the operator said so).
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::gate::{Gate, RegressionCheck};
use crate::plan::{Step, StepId, UpgradePlan};
use crate::ports::{CommandHandle, CommandSpec, DrainOptions};
use crate::{KubeVersion, Node, NodeName};

/// One task of a run: a step on one of its nodes, or a step without nodes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// The step.
    pub step: StepId,
    /// The node, for steps that act on nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
}

impl TaskId {
    /// The task of `step` on `node` (`None` for cluster-wide steps).
    pub fn new(step: StepId, node: Option<NodeName>) -> Self {
        TaskId { step, node }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) if !names_node(self.step.as_str(), n.as_str()) => {
                write!(f, "{} on {n}", self.step)
            }
            _ => write!(f, "{}", self.step),
        }
    }
}

/// Whether `step` names `node` as one of its path segments (`upgrade/w-1/drain`).
fn names_node(step: &str, node: &str) -> bool {
    step.match_indices(node)
        .any(|(i, _)| step[..i].ends_with('/') && step[i + node.len()..].starts_with('/'))
}

/// Work for the driver: one step on one node (or a cluster-wide step).
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Which task.
    pub id: TaskId,
    /// The step's position in the plan.
    pub step_index: usize,
    /// The attempt, from 1 (to pass back in the [`Outcome`](super::Outcome)).
    pub attempt: u32,
    /// What to do.
    pub work: Work,
    /// What the step does, in a few words.
    pub action: String,
    /// Give up (and report [`FailureKind::TimedOut`](super::FailureKind::TimedOut)) after this long.
    pub deadline: Duration,
    /// Safe to repeat.
    pub idempotent: bool,
}

/// What a task asks of the ports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Work {
    /// Run these commands on the task's node, in order; each must succeed
    /// (`CommandRunner`).
    Commands {
        /// The commands.
        commands: Vec<CommandSpec>,
    },
    /// Cordon the node (`ClusterOperations::cordon`).
    Cordon,
    /// Drain the node (`ClusterOperations::drain`).
    Drain {
        /// How.
        options: DrainOptions,
    },
    /// Uncordon the node (`ClusterOperations::uncordon`).
    Uncordon,
    /// Wait until the node is Ready at `version` (`ClusterOperations::wait_ready`).
    WaitReady {
        /// The kubelet version expected.
        version: KubeVersion,
        /// For at most this long.
        timeout: Duration,
    },
    /// Wait until every node runs the kube-proxy DaemonSet's version (the driver watches
    /// `ClusterOperations::state`).
    WaitKubeProxyRollout {
        /// The DaemonSet's version, when known (otherwise: whatever the DaemonSet runs).
        version: Option<KubeVersion>,
        /// For at most this long.
        timeout: Duration,
    },
    /// Create the task's node like `template` at `version` (`NodeProvider::provision`).
    Provision {
        /// The node it replaces, as the cluster showed it.
        template: Box<Node>,
        /// The version it joins with.
        version: KubeVersion,
    },
    /// Remove the task's node (`NodeProvider::remove`).
    Remove,
    /// Take a regression gate's snapshot of the workloads (`GateProbe::workloads`); the
    /// driver keeps it for the gate of `gate` that compares with it.
    GateBaseline {
        /// The gate's name.
        gate: String,
        /// What it watches.
        regression: RegressionCheck,
    },
    /// Run this command on the operator's machine (a hook that runs here); it must succeed.
    LocalCommand {
        /// The command.
        spec: CommandSpec,
    },
    /// Evaluate `gate` every `interval_seconds` until it passes or its time is up; then fail
    /// with [`FailureKind::GateFailed`](super::FailureKind::GateFailed) naming what was wrong
    /// (or, with `on-timeout: warn`, succeed with a warning).
    Gate {
        /// The gate.
        gate: Box<Gate>,
        /// For a regression gate: the step whose snapshot it compares with.
        baseline: Option<StepId>,
    },
}

impl Work {
    /// The work as run `run` carries it out: its commands' [`RUN_TOKEN`]s replaced by the
    /// run's id.
    ///
    /// [`RUN_TOKEN`]: crate::ports::RUN_TOKEN
    pub fn for_run(self, run: &str) -> Self {
        match self {
            Work::Commands { commands } => Work::Commands {
                commands: commands.into_iter().map(|c| c.for_run(run)).collect(),
            },
            other => other,
        }
    }

    /// What the work does, in a few words (commands are listed by the driver).
    pub fn describe(&self) -> String {
        match self {
            Work::Commands { commands } => commands
                .iter()
                .map(CommandSpec::to_shell_line)
                .collect::<Vec<_>>()
                .join(" && "),
            Work::Cordon => "cordon".into(),
            Work::Drain { options } => format!(
                "drain (timeout {}s{}{}{})",
                options.timeout_seconds,
                if options.ignore_daemonsets {
                    ", ignore DaemonSets"
                } else {
                    ""
                },
                if options.delete_emptydir_data {
                    ", delete emptyDir data"
                } else {
                    ""
                },
                if options.force { ", force" } else { "" }
            ),
            Work::Uncordon => "uncordon".into(),
            Work::WaitReady { version, timeout } => {
                format!(
                    "wait until Ready at {version} (at most {}s)",
                    timeout.as_secs()
                )
            }
            Work::WaitKubeProxyRollout { version, timeout } => format!(
                "wait until kube-proxy {} runs on every node (at most {}s)",
                version
                    .as_ref()
                    .map_or("(the DaemonSet's version)".to_string(), ToString::to_string),
                timeout.as_secs()
            ),
            Work::Provision { template, version } => {
                format!("provision a node like {} at {version}", template.name)
            }
            Work::Remove => "remove the node".into(),
            Work::GateBaseline { gate, .. } => {
                format!("snapshot the workloads gate {gate} watches")
            }
            Work::LocalCommand { spec } => format!("here: {}", spec.to_shell_line()),
            Work::Gate { gate, .. } => format!(
                "gate {}: {} (every {}s, at most {}s)",
                gate.name,
                gate.describe(),
                gate.interval_seconds,
                gate.timeout_seconds
            ),
        }
    }
}

/// Where a task is in the plan: its step's index and its node's index in the step (0 for a
/// step without nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Pos {
    /// The step's index in the plan.
    pub step: usize,
    /// The node's index in the step.
    pub task: usize,
}

impl Pos {
    /// The task at `task` of step `step`.
    pub fn new(step: usize, task: usize) -> Self {
        Pos { step, task }
    }

    /// The task's step.
    pub fn step(self, plan: &UpgradePlan) -> &Step {
        &plan.steps[self.step]
    }

    /// The task's node, for steps that act on nodes.
    pub fn node(self, plan: &UpgradePlan) -> Option<&NodeName> {
        self.step(plan).nodes.as_slice().get(self.task)
    }

    /// The task's id.
    pub fn id(self, plan: &UpgradePlan) -> TaskId {
        TaskId::new(self.step(plan).id.clone(), self.node(plan).cloned())
    }
}

/// Why the run cannot tell whether a task happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unsure {
    /// It was started in an earlier session, which stopped before it ended.
    InFlight,
    /// It failed in an earlier session.
    Failed,
    /// It was aborted in an earlier session.
    Interrupted,
}

impl fmt::Display for Unsure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unsure::InFlight => "was in flight when an earlier session stopped",
            Unsure::Failed => "failed in an earlier session",
            Unsure::Interrupted => "was interrupted in an earlier session",
        })
    }
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TaskState {
    /// Not started, or to be run again.
    Pending,
    /// Handed to the driver (or, for a check or an operator step, being decided) at `since`.
    Running {
        /// When it started.
        since: Timestamp,
    },
    /// Its work reported success; the run checks its postconditions against the cluster
    /// (`verify.rs`) until they hold or the step's settle window has passed.
    Verifying {
        /// When its attempt started.
        since: Timestamp,
        /// When to check next.
        check_at: Timestamp,
        /// When the window ends; `None` until the first check of this session (a task found
        /// verifying in the journal gets a whole window again).
        until: Option<Timestamp>,
    },
    /// Failed, and will be tried again at `at`.
    Retry {
        /// When.
        at: Timestamp,
    },
    /// It may or may not have happened: checked against the cluster before it runs again.
    Unsure(Unsure),
    /// Failed for good (this session stops).
    Failed,
    /// Done, in this session or an earlier one.
    Done,
}

impl TaskState {
    /// True when the task waits for a start that it may get at `now`.
    pub fn is_due(self, now: Timestamp) -> bool {
        match self {
            TaskState::Pending | TaskState::Unsure(_) => true,
            TaskState::Retry { at } => at <= now,
            _ => false,
        }
    }
}

/// One task's state and how often it was tried.
#[derive(Clone, Debug)]
pub(super) struct TaskRun {
    /// Where it stands.
    pub state: TaskState,
    /// Attempts over every session (the journal's attempt numbers).
    pub attempts: u32,
    /// Failures in this session (retries are counted per session), but for those of an
    /// unreachable node.
    pub failures: u32,
    /// This session's failures because its node could not be reached, and when the first of
    /// them happened ([`RetryPolicy::unreachable_wait`](super::RetryPolicy)).
    pub unreachable: Option<(u32, Timestamp)>,
    /// How to find the last command of its latest attempt on its node, once journaled
    /// (`survivors.rs`); none until then, and none again when an attempt starts.
    pub handle: Option<CommandHandle>,
}

/// The tasks of one step.
#[derive(Clone, Debug)]
pub(super) struct StepRun {
    /// One per node of the step (one for a step without nodes).
    pub tasks: Vec<TaskRun>,
    /// How many of them are done.
    pub done: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_read_well() {
        let on = |s: &str, n: &str| TaskId::new(StepId(s.into()), Some(n.parse().unwrap()));
        assert_eq!(on("v1/cp-1/apply", "cp-1").to_string(), "v1/cp-1/apply");
        // A segment that only starts or ends like the node's name does not name it.
        assert_eq!(
            on("v1/cp-10/apply", "cp-1").to_string(),
            "v1/cp-10/apply on cp-1"
        );
        assert_eq!(
            on("v1/xcp-1/apply", "cp-1").to_string(),
            "v1/xcp-1/apply on cp-1"
        );
        assert_eq!(
            on("v1/cp-1+2/backup-config", "cp-2").to_string(),
            "v1/cp-1+2/backup-config on cp-2"
        );
        assert_eq!(
            TaskId::new(StepId("v1/cluster/verify".into()), None).to_string(),
            "v1/cluster/verify"
        );
    }
}
