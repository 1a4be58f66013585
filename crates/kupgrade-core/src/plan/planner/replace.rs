//! The replace strategy's window: new nodes join, the old ones are drained and removed.
use crate::KubeVersion;

use super::Planner;
use super::groups::Head;
use super::names::{replacement_suffix, replacement_with};
use super::steps::Batch;
use crate::plan::PlanError;
use crate::plan::action::Action;
use crate::plan::step::{NodeList, Phase};

impl Planner<'_, '_> {
    /// Replace: new nodes at `goal` join first (max surge), then the old ones are cordoned,
    /// drained and removed.
    pub(super) fn replace_window(
        &mut self,
        old: &Batch,
        head: &Head,
        goal: &KubeVersion,
        why: String,
    ) -> Result<(), PlanError> {
        let mut new_names = Vec::new();
        let mut templates = Vec::new();
        let suffix = replacement_suffix(goal);
        for n in &old.nodes {
            let name = replacement_with(n, &suffix).ok_or_else(|| PlanError::InvalidOption {
                option: "strategy",
                message: format!(
                    "no valid name for a replacement of node {n} (names are limited to 253 characters)"
                ),
            })?;
            if self.sim.position(&name).is_none() {
                new_names.push(name);
                templates.push(n.clone());
            }
        }
        if !new_names.is_empty() {
            let fresh = Batch {
                nodes: NodeList::new(new_names),
                oses: old.oses.clone(),
                at: None,
            };
            self.push(
                Phase::Workers,
                &fresh,
                Action::ProvisionNodes {
                    version: goal.clone(),
                    templates: NodeList::new(templates),
                },
                goal,
                format!(
                    "{why}; new nodes join at the control plane's version before the old ones leave"
                ),
            )?;
        }
        if !head.cordoned {
            self.push(
                Phase::Workers,
                old,
                Action::Cordon,
                goal,
                "no new workloads on the nodes being replaced",
            )?;
        }
        self.push(
            Phase::Workers,
            old,
            Action::Drain {
                options: self.opts().drain.clone(),
            },
            goal,
            "workloads move to the new nodes",
        )?;
        self.push(
            Phase::Workers,
            old,
            Action::RemoveNodes,
            goal,
            "the drained nodes leave the cluster",
        )
    }
}
