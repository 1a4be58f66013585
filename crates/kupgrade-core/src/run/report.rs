//! How a run ends, and the report it gives when it stops on its own.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::NodeName;

use super::task::TaskId;

/// How a session of a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Finished {
    /// Every step is done.
    Completed,
    /// The run stopped because something needs a person: drift, a failure, a step it will not
    /// repeat. The report says what and what to do; resume once it is dealt with.
    Halted(StopReport),
    /// The run was asked to stop (Ctrl-C); resume to go on.
    Cancelled,
}

impl Finished {
    /// True for [`Finished::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, Finished::Completed)
    }

    /// The report of a halt.
    pub fn report(&self) -> Option<&StopReport> {
        match self {
            Finished::Halted(r) => Some(r),
            _ => None,
        }
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finished::Completed => f.write_str("completed"),
            Finished::Halted(r) => write!(f, "halted: {r}"),
            Finished::Cancelled => f.write_str("cancelled; resume to continue"),
        }
    }
}

/// Why a run halted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StopReason {
    /// The live cluster differs from what the next step expects (someone changed a node, a
    /// node is missing).
    Drift,
    /// A node is not Ready (and the plan did not make it so).
    NodeNotReady,
    /// The live cluster violates the skew policy.
    PolicyViolated,
    /// A step failed (after its retries, if it is safe to repeat).
    StepFailed,
    /// A step that is not safe to repeat may or may not have happened: only the operator can
    /// tell.
    Unsure,
    /// The step has no commands for this node's operating system: it must be done by hand.
    ManualStep,
    /// Only the operator can do this step, and the cluster shows it is not done.
    OperatorStep,
    /// A command started by an earlier session still runs on its node: nothing may start
    /// until it ends or is stopped.
    StillRunning,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Drift => "the cluster drifted from the plan",
            StopReason::NodeNotReady => "a node is not Ready",
            StopReason::PolicyViolated => "the skew policy is violated",
            StopReason::StepFailed => "a step failed",
            StopReason::Unsure => "a step may or may not have happened",
            StopReason::ManualStep => "a step must be done by hand",
            StopReason::OperatorStep => "a step needs the operator",
            StopReason::StillRunning => "a command of an earlier session still runs",
        })
    }
}

/// One difference between what the plan expects and what the cluster shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// The node, for node facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub found: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.node {
            write!(f, "{n}: ")?;
        }
        write!(f, "expected {}, found {}", self.expected, self.found)
    }
}

/// Why a run halted, what differs and what to do: data and a few sentences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopReport {
    /// Why.
    pub reason: StopReason,
    /// The task it stopped at, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// What happened, in a sentence.
    pub summary: String,
    /// What differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// What to do.
    pub advice: String,
}

impl fmt::Display for StopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)?;
        for d in &self.differences {
            write!(f, "\n  - {d}")?;
        }
        write!(f, "\nwhat to do: {}", self.advice)
    }
}
