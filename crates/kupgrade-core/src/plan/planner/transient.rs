//! Transient windows: where a step the tool cannot change breaks the rule the operator
//! accepted (`acceptTransient`), the window opens there, holds nothing but the steps that
//! close it, and is listed in the plan.
use crate::skew::Violation;
use crate::{Component, NodeName};

use super::Planner;
use crate::plan::action::Action;
use crate::plan::step::{Step, StepId};
use crate::plan::{PlanError, TransientWindow};

/// A window opened and not closed yet.
pub(super) struct OpenWindow {
    /// The step that opened it.
    from: StepId,
    /// The hop it belongs to.
    hop: Option<usize>,
    /// The nodes of its steps so far.
    nodes: Vec<NodeName>,
    /// The violation that opened it (what a refusal names).
    violation: Box<Violation>,
}

impl Planner<'_, '_> {
    /// Whether `step`, which breaks `v`, may open a window: the operator accepted the rule,
    /// and the step is kubeadm moving kube-proxy at `kubeadm upgrade apply` (kubeadm before
    /// 1.28), which no order of steps avoids.
    pub(super) fn may_open_transient(&self, step: &Step, v: &Violation) -> bool {
        let accepted = self.opts().accept_transient.as_deref() == Some(v.rule.as_str());
        let unavoidable = matches!(&step.action,
            Action::KubeadmUpgradeApply { addons, .. } if addons.kube_proxy.is_some())
            && v.component == Component::KubeProxy;
        accepted && unavoidable && self.window.is_none()
    }

    /// Opens a window at `step` (which broke `v`): the state is checked again with the rule
    /// accepted (any other violation stops the plan).
    pub(super) fn open_transient(
        &mut self,
        step: &Step,
        v: Box<Violation>,
    ) -> Result<(), PlanError> {
        let rule = v.rule.to_string();
        self.window = Some(OpenWindow {
            from: step.id.clone(),
            hop: step.hop,
            nodes: step.nodes.iter().cloned().collect(),
            violation: v,
        });
        self.checker
            .open_window(&self.sim, &rule)
            .map_err(|v| self.blocked(step, v))
    }

    /// Before `step` joins the plan: inside a window only the other control-plane nodes'
    /// `kubeadm upgrade node` of the same hop may follow; anything else means the window
    /// would not close by itself, and the plan is refused on the violation that opened it.
    pub(super) fn may_enter_transient(&self, step: &Step) -> Result<(), PlanError> {
        let Some(w) = &self.window else {
            return Ok(());
        };
        let closing = matches!(
            step.action,
            Action::KubeadmUpgradeNode {
                control_plane: Some(_),
                ..
            }
        ) && step.hop == w.hop;
        if closing {
            return Ok(());
        }
        Err(PlanError::Blocked {
            step: w.from.clone(),
            what: "the accepted transient window".into(),
            nodes: w.nodes.clone(),
            violation: w.violation.clone(),
            hint: Some(format!(
                "rule {} still breaks after every control-plane node moved, and step {} would run inside the window: only the control-plane nodes' own upgrades may",
                w.violation.rule, step.id
            )),
        })
    }

    /// After `step` joined an open window: when the accepted rule holds again the window
    /// closes at `step` (and is listed), and the state is checked in full.
    pub(super) fn after_in_transient(&mut self, step: &Step) -> Result<(), PlanError> {
        let Some(w) = &mut self.window else {
            return Ok(());
        };
        if w.from != step.id {
            w.nodes.extend(step.nodes.iter().cloned());
        }
        if self.checker.accepted_violation(&self.sim).is_some() {
            return Ok(());
        }
        let Some(w) = self.window.take() else {
            return Ok(());
        };
        let version = match &step.action {
            Action::KubeadmUpgradeNode {
                control_plane: Some(v),
                ..
            } => v.to_string(),
            _ => String::new(),
        };
        self.transient.push(TransientWindow {
            rule: w.violation.rule.to_string(),
            from: w.from,
            to: step.id.clone(),
            nodes: w.nodes,
            reason: format!(
                "kubeadm before 1.28 moves kube-proxy to {version} during `kubeadm upgrade apply` on the first control-plane node, while the others still run the older kube-apiserver; the window ends once the last of them has run `kubeadm upgrade node`, and nothing else runs inside it"
            ),
        });
        self.checker
            .close_window(&self.sim)
            .map_err(|v| self.blocked(step, v))
    }
}
