//! Journal records: what a run writes down, one record per line, so that a later session can
//! resume exactly where it stopped.
//!
//! Every record carries the format version (`v`), the time it was made (`at`) and its kind
//! (`record`), with the kind's fields beside them:
//!
//! ```json
//! {"v":1,"at":"2026-11-25T10:00:03Z","record":"task-started","step":"v1.29.5/cp-1/kubeadm-upgrade-apply","node":"cp-1","attempt":1}
//! ```
//!
//! A reader refuses records of a newer format (see [`FORMAT`]); fields added later are optional,
//! so newer readers accept older journals. Each record carries the oldest format that reads it
//! ([`RecordKind::format`]): only the kinds added later carry a newer one, so a journal without
//! them still reads with an older kupgrade, and one with them is refused by it by number, not
//! by a parse error.
//!
//! | format | added |
//! |---|---|
//! | 1 | `run-started`, `session-started`, `task-started`, `task-finished`, `resolved`, `stopped` |
//! | 2 | `command-started` (how to find a started command again on its node) |
//! | 3 | `findings-accepted` (readiness errors the operator accepted to start or resume), `transient-entered`, `transient-left` (the run passed through a transient window of the plan), `lease-taken` (how the session took the cluster's run lease, and from whom) |
//! | 4 | `task-output` (what a hook or a gate printed, success or not, its tail bounded by [`OUTPUT_KEPT`]), `workloads-noted` (a regression gate's snapshot of the workloads, before and at its last evaluation, so a resume judges against the same baseline) |
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::gate::WorkloadSnapshot;
use crate::plan::StepId;
use crate::ports::{CommandHandle, Taking};
use crate::{Component, NodeName};

use super::report::Finished;
use super::task::TaskId;

/// The newest journal format this crate writes and reads.
pub const FORMAT: u32 = 4;

/// The most bytes of each stream of a hook's or gate's output a `task-output` record keeps:
/// the last 8 KiB, with a marker saying how much was cut (the capture itself is bounded
/// by the command's `max_output`).
pub const OUTPUT_KEPT: usize = 8 * 1024;

/// The most pods (and, apart, budgets) a `workloads-noted` record holds: a larger snapshot is
/// not journaled (a resume then judges its gate without it, and says so).
pub const SNAPSHOT_KEPT: usize = 20_000;

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The format version ([`FORMAT`] when written by this crate).
    pub v: u32,
    /// When it happened (the driver's clock).
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: RecordKind,
}

impl Record {
    /// A record of the oldest format that reads its kind ([`RecordKind::format`]).
    pub fn new(at: Timestamp, kind: RecordKind) -> Self {
        Record {
            v: kind.format(),
            at,
            kind,
        }
    }
}

/// What a journal record says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "record",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum RecordKind {
    /// The first record: which plan this journal belongs to, and what was already amiss in the
    /// cluster when the run began (and is therefore not drift).
    RunStarted {
        /// The plan's fingerprint ([`super::fingerprint`]); a resume with another plan is
        /// refused.
        plan: String,
        /// How many steps the plan has.
        steps: usize,
        /// What was tolerated at the start.
        #[serde(default)]
        baseline: Baseline,
    },
    /// A later session (a resume) began.
    SessionStarted {
        /// The session's number (the first run is session 1).
        session: u32,
    },
    /// A task is about to be carried out. Written (and on disk) before anything is done, so a
    /// crash leaves a started task without an end: "in flight".
    TaskStarted {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// Its attempt number, from 1, counted over every session.
        attempt: u32,
    },
    /// A task's work reported success; the run now checks its step's postconditions against
    /// the cluster, and the task is done only once they hold (a `task-finished` record
    /// follows). A journal that ends here was written by a session that stopped during the
    /// check: a resume checks them again, it never assumes them.
    TaskVerifying {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The attempt whose work succeeded.
        attempt: u32,
    },
    /// A task ended.
    TaskFinished {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The attempt that ended.
        attempt: u32,
        /// How.
        end: TaskEnd,
    },
    /// The operator decided about a task the run would not decide alone.
    Resolved {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// The decision.
        resolution: Resolution,
    },
    /// The session ended (completed, stopped on purpose, or halted with a report).
    Stopped {
        /// How.
        outcome: Finished,
    },
    /// A command of a task in flight runs on its node, and this is how to find it there: a
    /// later session looks for it before it decides about the task (format 2). Written once
    /// the command runs, so a crash in between leaves none; the node-side lock covers that.
    CommandStarted {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// Its attempt.
        attempt: u32,
        /// Which of the task's commands (from 0).
        command: usize,
        /// How to find it.
        handle: CommandHandle,
    },
    /// Readiness findings that would have blocked the session, accepted by the operator by
    /// id and subject (`removed-api:ingress/shop/web`), each with the finding in words
    /// (format 3). A resume keeps them accepted.
    FindingsAccepted {
        /// The findings' keys (`check:subject`).
        findings: Vec<String>,
        /// What each said, in the same order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        messages: Vec<String>,
    },
    /// The run entered one of the plan's transient windows: the first step of the window has
    /// started, and the window's rule may break until its last step is done (format 3).
    TransientEntered {
        /// The rule accepted inside the window.
        rule: String,
        /// The window's first step.
        from: StepId,
        /// The window's last step.
        to: StepId,
    },
    /// The run left a transient window: its last step is done, and its rule is checked like
    /// every other again (format 3).
    TransientLeft {
        /// The rule that was accepted.
        rule: String,
        /// The window's first step.
        from: StepId,
        /// The window's last step.
        to: StepId,
    },
    /// The session took the cluster's run lease (format 3): written right after the record
    /// that opens the session, before its first task. A lease taken over or broken names the
    /// run that held it.
    LeaseTaken {
        /// Where the lease is (`Lease kube-system/kupgrade`, `cp-1:/var/lib/kupgrade/...`).
        place: String,
        /// This session's holder (run id, pid, host).
        holder: String,
        /// How it was taken.
        taking: Taking,
    },
    /// What a hook or a gate printed, whether it passed or not (format 4): the tail of each
    /// stream, at most [`OUTPUT_KEPT`] bytes each. Written just before the task's end.
    TaskOutput {
        /// The task.
        #[serde(flatten)]
        task: TaskId,
        /// Its attempt.
        attempt: u32,
        /// Standard output (a gate's own lines: what it waited for, how it ended).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        stdout: String,
        /// Standard error.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        stderr: String,
    },
    /// The pods and budgets a regression gate watches, as a task saw them (format 4): the
    /// snapshot its baseline step took (the one the gate compares with, also after a
    /// resume), or the one the gate judged last.
    WorkloadsNoted {
        /// The task (a baseline step's, or a gate's).
        #[serde(flatten)]
        task: TaskId,
        /// Its attempt.
        attempt: u32,
        /// What it saw.
        snapshot: WorkloadSnapshot,
    },
}

impl RecordKind {
    /// The oldest journal format that reads this kind of record.
    pub fn format(&self) -> u32 {
        match self {
            RecordKind::CommandStarted { .. } => 2,
            RecordKind::FindingsAccepted { .. }
            | RecordKind::TransientEntered { .. }
            | RecordKind::TransientLeft { .. }
            | RecordKind::LeaseTaken { .. } => 3,
            RecordKind::TaskOutput { .. } | RecordKind::WorkloadsNoted { .. } => 4,
            _ => 1,
        }
    }
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum TaskEnd {
    /// It was carried out and succeeded: its work reported success and the cluster showed its
    /// step's postconditions (those the cluster's state can tell).
    Succeeded {
        /// The postconditions the cluster showed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        checked: Vec<String>,
        /// The postconditions the cluster's state could not tell, each with why (the
        /// `kubeadm` binary, the operator's kubectl, a kubelet package before its restart).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unknown: Vec<String>,
    },
    /// It was in flight (or had failed) in an earlier session, and the cluster shows its effect:
    /// it was not run again.
    AlreadyDone {
        /// The facts that showed it.
        evidence: Vec<String>,
    },
    /// Only the operator can do it; they were told, and the run went on.
    Manual {
        /// What they were asked to do.
        instructions: String,
    },
    /// It failed.
    Failed {
        /// Why.
        failure: Failure,
        /// When it will be tried again (idempotent steps with retries left); `None`: the run
        /// stops.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<Timestamp>,
    },
    /// It was aborted (cancellation) before it ended; whether it took effect is unknown.
    Interrupted,
}

/// A task's failure, grouped by what the run can do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What happened, in a sentence.
    pub message: String,
    /// The command that failed, for node commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The last lines of its standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

impl TaskEnd {
    /// [`TaskEnd::Succeeded`] with no postcondition checked.
    pub fn succeeded() -> Self {
        TaskEnd::Succeeded {
            checked: Vec::new(),
            unknown: Vec::new(),
        }
    }
}

impl Failure {
    /// The most bytes of the stderr tail that the failure's message ([`fmt::Display`]) shows.
    pub const SHOWN_STDERR: usize = 512;

    /// A failure of `kind` saying `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            command: None,
            stderr_tail: None,
        }
    }

    /// Names the command that failed.
    pub fn with_command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// Keeps the tail of the command's standard error: its last
    /// [`STDERR_TAIL_MAX`](crate::capture::STDERR_TAIL_MAX) bytes, with a marker saying how
    /// much was cut.
    pub fn with_stderr_tail(mut self, tail: impl Into<String>) -> Self {
        let tail = tail.into();
        if !tail.trim().is_empty() {
            let kept = crate::capture::tail_text(&tail, crate::capture::STDERR_TAIL_MAX);
            self.stderr_tail = Some(kept.into_owned());
        }
        self
    }

    /// True when trying again may help (for steps that are safe to repeat).
    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // The message repeats at most the end of the kept tail (the whole tail stays in
        // `stderr_tail`): a report or a progress line holding it stays short.
        if let Some(tail) = &self.stderr_tail {
            let shown = crate::capture::tail_text(tail.trim_end(), Failure::SHOWN_STDERR);
            write!(f, "; stderr: {shown}")?;
        }
        Ok(())
    }
}

/// Failures grouped by what can be done about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailureKind {
    /// A command ran and exited unsuccessfully.
    CommandFailed,
    /// Something ran out of time (and was killed).
    TimedOut,
    /// The node or the cluster could not be reached.
    Unreachable,
    /// A drain could not evict every pod (a disruption budget refused).
    DrainBlocked,
    /// Credentials, host keys or permissions were refused, or the client refused its own
    /// arguments or configuration: trying again will not help.
    Refused,
    /// The backend cannot do what the step asks: trying again will not help.
    Unsupported,
    /// The task reported success, but the cluster did not show its step's postconditions
    /// within the step's settle window.
    PostconditionFailed,
    /// A gate did not pass within its time (it waited all of it: trying again at once will
    /// not help; a resume evaluates it again).
    GateFailed,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// True when trying again may help.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureKind::CommandFailed
                | FailureKind::TimedOut
                | FailureKind::Unreachable
                | FailureKind::DrainBlocked
                | FailureKind::PostconditionFailed
                | FailureKind::Other
        )
    }
}

/// What the operator decided about a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// It happened (or was done by hand): mark it done.
    MarkDone,
    /// It did not happen: run it (again), even if it is not safe to repeat.
    Retry,
}

/// What was already amiss when the run began, and is therefore not drift.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// Nodes that were not Ready (plans made with `allowNotReady`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<NodeName>,
    /// Policy errors that were tolerated (plans made with `tolerateInitialViolations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerated: Vec<ViolationKey>,
}

/// A policy violation's identity: rule, component and node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationKey {
    /// The rule.
    pub rule: String,
    /// The component.
    pub component: Component,
    /// The node, for per-node rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
}

impl From<&crate::skew::Violation> for ViolationKey {
    fn from(v: &crate::skew::Violation) -> Self {
        ViolationKey {
            rule: v.rule.to_string(),
            component: v.component,
            node: v.node.clone(),
        }
    }
}

/// What a task's outcome, as the driver reports it to [`super::Run::record`].
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The task.
    pub task: TaskId,
    /// The attempt (as given in the [`super::Task`]).
    pub attempt: u32,
    /// How it went.
    pub result: TaskResult,
}

/// How a task went, as the driver saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskResult {
    /// It succeeded.
    Succeeded,
    /// It failed.
    Failed(Failure),
    /// It was aborted before it ended.
    Interrupted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::StepId;

    #[test]
    fn records_are_one_flat_json_object() {
        let at: Timestamp = "2026-11-25T10:00:03Z".parse().unwrap();
        let r = Record::new(
            at,
            RecordKind::TaskStarted {
                task: TaskId::new(
                    StepId("v1.29.5/cp-1/kubeadm-upgrade-apply".into()),
                    Some("cp-1".parse().unwrap()),
                ),
                attempt: 1,
            },
        );
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"at":"2026-11-25T10:00:03Z","record":"task-started","step":"v1.29.5/cp-1/kubeadm-upgrade-apply","node":"cp-1","attempt":1}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);

        let f = Record::new(
            at,
            RecordKind::TaskFinished {
                task: TaskId::new(StepId("v1.29.5/cluster/preflight".into()), None),
                attempt: 2,
                end: TaskEnd::Failed {
                    failure: Failure::new(FailureKind::CommandFailed, "exit code 100")
                        .with_command("apt-get update"),
                    retry_at: Some(at),
                },
            },
        );
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), f);
        assert!(text.contains(r#""end":{"kind":"failed","failure":{"kind":"command-failed""#));
    }

    #[test]
    fn command_handles_are_format_2() {
        let at: Timestamp = "2026-11-25T10:00:03Z".parse().unwrap();
        let r = Record::new(
            at,
            RecordKind::CommandStarted {
                task: TaskId::new(
                    StepId("v1.29.5/cp-1/kubeadm-upgrade-apply".into()),
                    Some("cp-1".parse().unwrap()),
                ),
                attempt: 2,
                command: 0,
                handle: CommandHandle::Remote {
                    pgid: 4242,
                    token: "kupgrade-1-2-3".into(),
                    privileged: true,
                },
            },
        );
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"v":2,"at":"2026-11-25T10:00:03Z","record":"command-started","step":"v1.29.5/cp-1/kubeadm-upgrade-apply","node":"cp-1","attempt":2,"command":0,"handle":{"kind":"remote","pgid":4242,"token":"kupgrade-1-2-3","privileged":true}}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
        let pod = CommandHandle::Pod {
            namespace: "ops".into(),
            name: "kupgrade-cp-1-x7".into(),
        };
        assert_eq!(
            serde_json::to_string(&pod).unwrap(),
            r#"{"kind":"pod","namespace":"ops","name":"kupgrade-cp-1-x7"}"#
        );
    }
}
