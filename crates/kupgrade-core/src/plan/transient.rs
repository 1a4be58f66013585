//! Named transient exceptions: stretches of a plan through which one rule, named by the
//! operator (`acceptTransient`), may break because a step the tool cannot change breaks it.
//!
//! Today one such step exists: kubeadm before 1.28 moves kube-proxy during `kubeadm upgrade
//! apply` on the first control-plane node, while the others still run the older API server.
//! The window opens at that step and closes at the step after which the rule holds again (the
//! last control-plane node's `kubeadm upgrade node`); the planner lets no other step into it.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::step::StepId;
use crate::NodeName;

/// A window of the plan through which the accepted rule breaks: from the step that breaks it
/// to the step after which it holds again. Every other rule holds at every state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransientWindow {
    /// The rule that breaks inside the window (the option's value).
    pub rule: String,
    /// The step whose state first breaks the rule.
    pub from: StepId,
    /// The step after which the rule holds again (the window's last step).
    pub to: StepId,
    /// The nodes the window's steps act on, in step order.
    pub nodes: Vec<NodeName>,
    /// Why the window cannot be avoided, and what closes it.
    pub reason: String,
}

impl TransientWindow {
    /// One line for humans: the rule, the steps, the nodes and why.
    pub fn describe(&self) -> String {
        let nodes: Vec<&str> = self.nodes.iter().map(NodeName::as_str).collect();
        format!(
            "rule {} may break from step {} to step {} (nodes {}): {}",
            crate::escape::text(&self.rule),
            self.from,
            self.to,
            nodes.join(", "),
            self.reason
        )
    }
}

/// For each step of `plan`, whether it lies inside one of its transient windows (from the
/// step that opens it to the one that closes it, both included).
pub(crate) fn window_steps(plan: &super::UpgradePlan) -> Vec<bool> {
    let mut inside = vec![false; plan.steps.len()];
    for w in &plan.transient {
        let at = |id: &StepId| plan.steps.iter().position(|s| s.id == *id);
        if let (Some(from), Some(to)) = (at(&w.from), at(&w.to)) {
            for flag in inside.iter_mut().take(to + 1).skip(from) {
                *flag = true;
            }
        }
    }
    inside
}
