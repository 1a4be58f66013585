//! How a step joins the plan: its id and commands, its simulation and check, and what it
//! adds to the estimate.
use std::borrow::Cow;
use std::sync::Arc;

use crate::skew::Violation;
use crate::{Component, KubeVersion, Minor, Node, NodeName, OsFamily};

use super::Planner;
use crate::plan::PlanError;
use crate::plan::action::{Action, Executor};
use crate::plan::fleet::Fleet;
use crate::plan::packages::node_commands;
use crate::plan::step::{NodeList, Package, Phase, Step, StepId};

/// The nodes of one step, the OS families among them and, when they cannot move, their
/// positions in the simulated state.
#[derive(Clone)]
pub(super) struct Batch {
    pub(super) nodes: NodeList,
    pub(super) oses: Vec<OsFamily>,
    pub(super) at: Option<Arc<[usize]>>,
}

impl Batch {
    pub(super) fn none() -> Self {
        Batch {
            nodes: NodeList::empty(),
            oses: Vec::new(),
            at: Some(Arc::from(Vec::new())),
        }
    }
    fn members(members: Members, positions: bool) -> Self {
        let mut oses: Vec<OsFamily> = members.iter().map(|m| m.1).collect();
        oses.sort();
        oses.dedup();
        let at = positions.then(|| members.iter().map(|m| m.2).collect());
        Batch {
            nodes: NodeList::new(members.into_iter().map(|m| m.0).collect()),
            oses,
            at,
        }
    }
    /// The batch of the nodes at these positions now (with their OS families); `positions`:
    /// whether the positions stay put until the batch's steps are done.
    pub(super) fn at(fleet: &Fleet, members: Vec<(usize, OsFamily)>, positions: bool) -> Self {
        let mut oses: Vec<OsFamily> = members.iter().map(|m| m.1).collect();
        oses.sort();
        oses.dedup();
        Batch {
            nodes: NodeList::new(members.iter().map(|m| fleet.name(m.0).clone()).collect()),
            oses,
            at: positions.then(|| members.iter().map(|m| m.0).collect()),
        }
    }
}

/// The names, OS families and positions of a batch's nodes.
type Members = Vec<(NodeName, OsFamily, usize)>;

impl Planner<'_, '_> {
    /// The batch of these nodes (taken from the simulated state, so positions are fresh).
    pub(super) fn batch_of(&self, nodes: &[&Node]) -> Batch {
        let members = nodes
            .iter()
            .map(|n| {
                let at = self.sim.position(&n.name).unwrap_or(usize::MAX);
                (n.name.clone(), n.os.family, at)
            })
            .collect::<Members>();
        let known = members.iter().all(|m| m.2 != usize::MAX);
        Batch::members(members, self.positions && known)
    }

    /// Adds a step doing `action` on `batch` on the way to `goal`: the model takes it and the
    /// policy is checked on what it changed (a violation stops the plan), then it is counted.
    pub(super) fn push(
        &mut self,
        phase: Phase,
        batch: &Batch,
        action: Action,
        goal: &KubeVersion,
        reason: impl Into<String>,
    ) -> Result<(), PlanError> {
        let step = self.step(phase, batch, action, goal, reason.into());
        self.may_enter_transient(&step)?;
        if step.action.change().is_modelled() {
            self.simulate(&step, batch)?;
        }
        self.after_in_transient(&step)?;
        self.costs
            .count(&step, batch.at.as_deref(), self.sim.cordoned());
        self.ids.insert(step.id.clone());
        if step.phase != Phase::Workers {
            self.side = None;
        }
        self.steps.push(step);
        Ok(())
    }

    /// What a new step of `phase` waits for: the step before, except beside control-plane
    /// kubelets (see [`Side`](super::Side)).
    fn depends_on(&self, phase: Phase) -> Vec<StepId> {
        let Some(last) = self.steps.last().map(|s| s.id.clone()) else {
            return Vec::new();
        };
        match &self.side {
            Some(side) if phase == Phase::Workers && last == side.tail => vec![side.fork.clone()],
            Some(side) if phase != Phase::Workers && last != side.tail => {
                vec![last, side.tail.clone()]
            }
            _ => vec![last],
        }
    }

    /// The step doing `action` on `batch`: its id, its commands for the batch's OS families,
    /// its facts, after the last step so far.
    pub(super) fn step(
        &self,
        phase: Phase,
        batch: &Batch,
        action: Action,
        goal: &KubeVersion,
        reason: String,
    ) -> Step {
        let id = self.id(goal, &batch.nodes, &action);
        let commands = if action.executor() == Executor::Node {
            batch
                .oses
                .iter()
                .filter_map(|os| node_commands(&action, *os))
                .collect()
        } else {
            Vec::new()
        };
        let (pre, post) = action.facts(goal, phase);
        Step {
            id,
            hop: self.hop,
            phase,
            nodes: batch.nodes.clone(),
            commands,
            depends_on: self.depends_on(phase),
            idempotent: !matches!(action, Action::ProvisionNodes { .. }),
            point_of_no_return: matches!(action, Action::KubeadmUpgradeApply { .. }),
            pre,
            post,
            duration_seconds: self.opts().durations.of(&action),
            reason,
            action,
        }
    }

    /// The model takes `step` (at the batch's positions when they stay put), and the policy is
    /// checked where it changed something.
    fn simulate(&mut self, step: &Step, batch: &Batch) -> Result<(), PlanError> {
        let (effect, at) = match batch.at.as_deref() {
            Some(at) => (self.sim.apply_at(step, at)?, Cow::Borrowed(at)),
            None => {
                let before = self.sim.len();
                let effect = self.sim.apply(step)?;
                // The positions of the nodes the step changed or added, now.
                let at: Vec<usize> = match step.action {
                    Action::ProvisionNodes { .. } => (before..self.sim.len()).collect(),
                    Action::RemoveNodes => Vec::new(),
                    _ => step
                        .nodes
                        .iter()
                        .filter_map(|n| self.sim.position(n))
                        .collect(),
                };
                (effect, Cow::Owned(at))
            }
        };
        match self.checker.after(&self.sim, effect, &at) {
            Ok(()) => Ok(()),
            Err(v) if self.may_open_transient(step, &v) => self.open_transient(step, v),
            Err(v) => Err(self.blocked(step, v)),
        }
    }

    /// A new step's id: `goal/subject/verb`, numbered when taken already.
    fn id(&self, goal: &KubeVersion, nodes: &NodeList, action: &Action) -> StepId {
        let subject = match nodes.as_slice() {
            [] => "cluster".to_string(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first}+{}", rest.len()),
        };
        let base = format!("{goal}/{subject}/{}", action.verb());
        let mut id = StepId(base.clone());
        let mut k = 2;
        while self.ids.contains(&id) {
            id = StepId(format!("{base}#{k}"));
            k += 1;
        }
        id
    }

    /// The error of `step` breaking the policy (`v`), with a hint when one is known.
    pub(super) fn blocked(&self, step: &Step, v: Box<Violation>) -> PlanError {
        let in_step = v
            .node
            .as_ref()
            .is_some_and(|n| step.nodes.iter().any(|s| s == n));
        let hint = match &step.action {
            Action::KubeadmUpgradeApply { version, addons, .. }
                if v.component == Component::KubeProxy && addons.kube_proxy.is_some() =>
            {
                Some(format!(
                    "kubeadm {} upgrades kube-proxy during `kubeadm upgrade apply`, while the other API servers are still older (kubeadm waits for the last control-plane node only since 1.28); no kubeadm plan for this hop keeps kube-proxy within the policy; to pass through this state until the other control-plane nodes follow, plan with --accept-transient {} (`acceptTransient` in the options)",
                    version.minor(),
                    crate::escape::text(&v.rule)
                ))
            }
            _ if v.component == Component::CloudControllerManager => Some(
                "kubeadm does not upgrade the cloud-controller-manager: upgrade it with your provider's tooling in step with the control plane".into(),
            ),
            _ if !in_step && v.node.is_some() => Some(format!(
                "this step leaves node {} outside the policy; upgrade that node first, or plan with a policy that allows the skew",
                v.node.as_ref().map(NodeName::as_str).unwrap_or_default()
            )),
            _ => None,
        };
        PlanError::Blocked {
            step: step.id.clone(),
            what: step.action.describe(),
            nodes: step.nodes.iter().take(10).cloned().collect(),
            violation: v,
            hint,
        }
    }

    /// Switches the batch's repository when it points elsewhere (`repo`, updated), then
    /// installs `packages` at `version`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn packages(
        &mut self,
        phase: Phase,
        batch: &Batch,
        repo: &mut Minor,
        packages: &[Package],
        version: &KubeVersion,
        goal: &KubeVersion,
        reason: String,
    ) -> Result<(), PlanError> {
        let minor = version.minor();
        if *repo != minor {
            self.push(
                phase,
                batch,
                Action::SwitchRepository { minor },
                goal,
                format!(
                    "pkgs.k8s.io has one repository per minor: {version} comes from the v{minor} repository"
                ),
            )?;
            *repo = minor;
        }
        self.push(
            phase,
            batch,
            Action::InstallPackages {
                packages: packages.to_vec(),
                version: version.clone(),
            },
            goal,
            reason,
        )
    }
}
