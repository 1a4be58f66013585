//! Pre-staging: the downloads and image pulls a node's window needs, moved ahead of it.
//!
//! Once a window's steps are planned ([`Planner::prestage_since`]), its package installs are
//! gathered by nodes and version, and before the window (in plan order) comes one
//! [`Action::DownloadPackages`] step per nodes and version, with every package those installs
//! take; the installs then count [`Durations::install_from_cache`](crate::plan::Durations)
//! (without pre-staging an install counts its download too). Before a hop's control plane
//! moves, its control-plane nodes pull the hop's images ([`Action::PullImages`]), and their
//! `kubeadm upgrade apply` and `kubeadm upgrade node` count
//! [`Durations::pull_images`](crate::plan::Durations) less (kubeadm pulls them first).
//!
//! These steps form lanes of their own, one for the control-plane nodes and one for the
//! workers (a lane waiting for a busy control-plane node would hold the workers' back): each
//! waits only for the pre-stage step before it in its lane (the first for the plan's first
//! step), never for a cordon or for an earlier batch's
//! window (only for the last step of the node's own earlier windows, or its control-plane
//! work, in the plan so far: the run frees a node while it checks a task's outcome, and a
//! pre-stage step must not slip into one of its windows then), so the run does them batches
//! ahead while earlier windows drain, and a node's
//! cordon-to-uncordon window holds only what must happen there: drain, install from the
//! cache, `kubeadm upgrade node`, restart, wait. The first step of the window on a pre-staged
//! node waits for its pre-stage step (besides the step before it), so a download or pull
//! never runs inside its own node's window. They change nothing the models or the cluster
//! show, are idempotent and are repeated on resume.
//!
//! Only families whose package manager can download without installing
//! ([`PackageManager::download`](crate::plan::packages::PackageManager::download): apt and
//! dnf; zypper's download-only install refuses locked packages, and unlocking them is what
//! pre-staging must not do) and minors pkgs.k8s.io publishes are pre-staged; a step with
//! another family among its nodes is not (its installs keep their download time).
//!
//! Images: a control-plane node pulls with the kubeadm it has (the new one is installed only
//! as the control plane moves), `--kubernetes-version` the hop's: that kubeadm lists the
//! hop's control-plane images (API server, controller manager, scheduler, kube-proxy), but a
//! kubeadm one minor older names its own etcd and CoreDNS tags, which `kubeadm upgrade` then
//! pulls itself, as operators who pre-pull this way see. Workers pull nothing ahead: their
//! kube-proxy moves with the DaemonSet at the hop's `kubeadm upgrade`, outside their drain
//! windows, and the registry a cluster uses is its kubeadm configuration's, which the plan
//! does not know.
use crate::{KubeVersion, OsFamily};

use super::Planner;
use super::steps::Batch;
use crate::plan::PlanError;
use crate::plan::action::Action;
use crate::plan::packages::can_download;
use crate::plan::step::{NodeList, Package, Phase, Step, StepId};

/// The installs of one window on the same nodes at one version.
struct Group {
    nodes: NodeList,
    oses: Vec<OsFamily>,
    phase: Phase,
    version: KubeVersion,
    packages: Vec<Package>,
    installs: Vec<usize>,
}

impl Planner<'_, '_> {
    /// Pre-stages the installs of the steps from `start` on (a window, or a hop's control
    /// plane), and, with `pull`, pulls `goal`'s images on those nodes first: the steps go
    /// before `start`, on the pre-stage lane (see the module documentation).
    ///
    /// Without `stage` (a window that opened before the plan), nothing is staged; either
    /// way the window's last step on each node is remembered, which later pre-stage steps on
    /// the node wait for.
    pub(super) fn prestage_since(
        &mut self,
        start: usize,
        goal: &KubeVersion,
        pull: Option<&Batch>,
        stage: bool,
    ) -> Result<(), PlanError> {
        if !self.opts().prestage || start >= self.steps.len() {
            return Ok(());
        }
        let (done, ids) = self.done_since(start);
        let result = if stage {
            self.stage(start, goal, pull)
        } else {
            Ok(())
        };
        let base = u32::try_from(self.done_ids.len()).unwrap_or(u32::MAX);
        self.done_ids.extend(ids);
        (self.done_on).extend(done.into_iter().map(|(n, i)| (n, base.saturating_add(i))));
        result
    }

    /// The last step from `start` on on each node (the steps of one window share their
    /// nodes: each list is looked at once), as an index into the step ids returned beside.
    fn done_since(&self, start: usize) -> (Vec<(crate::NodeName, u32)>, Vec<StepId>) {
        let mut seen = foldhash::HashSet::default();
        let mut done = Vec::new();
        let mut ids: Vec<StepId> = Vec::new();
        let mut last: Option<&NodeList> = None;
        for step in self.steps[start..].iter().rev() {
            if last == Some(&step.nodes) {
                continue;
            }
            last = Some(&step.nodes);
            let mut id = None;
            for n in step.nodes.iter() {
                if seen.insert(n) {
                    let i = *id.get_or_insert_with(|| {
                        ids.push(step.id.clone());
                        u32::try_from(ids.len() - 1).unwrap_or(u32::MAX)
                    });
                    done.push((n.clone(), i));
                }
            }
        }
        (done, ids)
    }

    /// The pre-stage steps of the steps from `start` on (see [`Self::prestage_since`]).
    fn stage(
        &mut self,
        start: usize,
        goal: &KubeVersion,
        pull: Option<&Batch>,
    ) -> Result<(), PlanError> {
        let mut groups: Vec<Group> = Vec::new();
        for (i, step) in self.steps.iter().enumerate().skip(start) {
            let Action::InstallPackages { packages, version } = &step.action else {
                continue;
            };
            let oses: Vec<OsFamily> = step.commands.iter().map(|c| c.os).collect();
            if oses.is_empty() || !oses.iter().all(|os| can_download(*os, version)) {
                continue;
            }
            let found = groups
                .iter_mut()
                .find(|g| g.version == *version && g.nodes == step.nodes);
            let group = match found {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        nodes: step.nodes.clone(),
                        oses,
                        phase: step.phase,
                        version: version.clone(),
                        packages: Vec::new(),
                        installs: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            group.packages.extend(packages.iter().copied());
            group.installs.push(i);
        }
        let mut staged: Vec<Step> = Vec::new();
        if let Some(batch) = pull.filter(|b| !b.nodes.is_empty()) {
            let action = Action::PullImages {
                version: goal.clone(),
            };
            let reason = format!(
                "pre-staging: the control-plane images of {goal} are pulled before the control plane moves, with the kubeadm the node has (`kubeadm upgrade` pulls what that kubeadm does not list)"
            );
            staged.push(self.lane_step(Phase::ControlPlane, batch, action, goal, reason));
            // `kubeadm upgrade` pulls its images first; on these nodes they are there.
            let pull_seconds = self.opts().durations.pull_images;
            for step in &mut self.steps[start..] {
                let upgrades = matches!(
                    step.action,
                    Action::KubeadmUpgradeApply { .. }
                        | Action::KubeadmUpgradeNode {
                            control_plane: Some(_),
                            ..
                        }
                );
                if upgrades
                    && step
                        .nodes
                        .iter()
                        .all(|n| batch.nodes.iter().any(|b| b == n))
                {
                    step.duration_seconds = step.duration_seconds.saturating_sub(pull_seconds);
                }
            }
        }
        let from_cache = self.opts().durations.install_from_cache();
        for mut g in groups {
            g.packages.sort_unstable();
            g.packages.dedup();
            let batch = Batch {
                nodes: g.nodes.clone(),
                oses: g.oses.clone(),
                at: None,
            };
            let action = Action::DownloadPackages {
                packages: g.packages,
                version: g.version.clone(),
            };
            let reason = format!(
                "pre-staging: the packages of {} are downloaded before the node is cordoned (while earlier batches are in their windows); the install in its window takes them from the cache",
                g.version
            );
            staged.push(self.lane_step(g.phase, &batch, action, goal, reason));
            for i in g.installs {
                self.steps[i].duration_seconds = from_cache;
            }
        }
        if staged.is_empty() {
            return Ok(());
        }
        // The window's steps move up by the pre-stage steps: a split and two moves (the
        // window's steps only), not an insertion into the whole plan.
        let mut tail = self.steps.split_off(start);
        // The first of the window's steps on a pre-staged node waits for what was staged
        // there, so a download that falls behind its lane still ends before that node's
        // window opens (the lane normally runs batches ahead: this wait costs nothing then).
        for s in &staged {
            let first = tail
                .iter_mut()
                .find(|t| t.nodes.iter().any(|n| s.nodes.iter().any(|m| m == n)));
            if let Some(t) = first
                && !t.depends_on.contains(&s.id)
            {
                t.depends_on.push(s.id.clone());
            }
        }
        self.steps.extend(staged);
        self.steps.extend(tail);
        Ok(())
    }

    /// A step of the pre-stage lane of `phase`'s nodes: after the lane's last step (the plan's first step
    /// for the first), whatever the window before it.
    fn lane_step(
        &mut self,
        phase: Phase,
        batch: &Batch,
        action: Action,
        goal: &KubeVersion,
        reason: String,
    ) -> Step {
        let mut step = self.step(phase, batch, action, goal, reason);
        // The control-plane nodes' steps share a lane: two lanes on the same nodes would
        // compete for them, and the run would order them otherwise than the estimate.
        let key = match phase {
            Phase::Workers => Phase::Workers,
            _ => Phase::ControlPlane,
        };
        let lane = self.lane.iter_mut().find(|(p, _)| *p == key);
        let after: Option<StepId> = match &lane {
            Some((_, last)) => Some(last.clone()),
            None => self.steps.first().map(|s| s.id.clone()),
        };
        step.depends_on = after.into_iter().collect();
        // Never inside one of the node's earlier windows: after its last step so far (each
        // step once; a batch's nodes mostly share theirs).
        let mut seen: foldhash::HashSet<u32> = foldhash::HashSet::default();
        let mut last = None;
        for n in batch.nodes.iter() {
            let Some(&i) = self.done_on.get(n) else {
                continue;
            };
            if last == Some(i) || !seen.insert(i) {
                continue;
            }
            last = Some(i);
            let d = &self.done_ids[i as usize];
            if !step.depends_on.contains(d) {
                step.depends_on.push(d.clone());
            }
        }
        step.idempotent = true;
        self.ids.insert(step.id.clone());
        match lane {
            Some((_, last)) => *last = step.id.clone(),
            None => self.lane.push((key, step.id.clone())),
        }
        step
    }
}
