//! The in-place drain window: cordon, drain, the kubelet one minor at a time, uncordon.
use crate::{KubeVersion, Minor};

use super::Planner;
use super::groups::Head;
use super::steps::Batch;
use crate::plan::action::Action;
use crate::plan::packages::KUBELET_PACKAGES;
use crate::plan::step::{AddonVersions, Package, Phase};
use crate::plan::{PlanError, TargetError};

/// One in-place window under way: its nodes, where they go, and what it has done so far.
struct Window<'w> {
    /// The phase of its steps (the control plane's kubelets, or workers).
    phase: Phase,
    /// Its nodes, all alike.
    batch: &'w Batch,
    /// The version their kubelets end at.
    goal: &'w KubeVersion,
    /// Control-plane nodes: only their kubelets move (kubeadm moved the rest already).
    control_plane: bool,
    /// The minor the nodes' package repository points at now.
    repo: Minor,
    /// On a worker, the kubeadm installed now (none known: installed before it runs).
    kubeadm: Option<KubeVersion>,
    /// The goal's kubelet configuration is written. On workers `kubeadm upgrade node` writes
    /// it, one minor per run: at every minor the kubelet passes through, before the kubelet
    /// moves (as kubeadm's own procedure does, minor by minor); at the goal it runs (again,
    /// it is idempotent) whenever the kubelet is to reach the goal, since nothing in the
    /// cluster state shows whether it already did.
    configured: bool,
}

impl Planner<'_, '_> {
    /// The version a kubelet passes through at `minor` on its way to a newer one: the latest
    /// patch released by the plan's date (not the hops' versions, which depend on where the
    /// plan started).
    fn version_for(&mut self, minor: Minor) -> Result<KubeVersion, PlanError> {
        if let Some(v) = self.versions.get(&minor) {
            return Ok(v.clone());
        }
        let v = self
            .req
            .calendar
            .latest_patch_on(minor, self.req.date)
            .ok_or(TargetError::NoRelease {
                minor,
                date: self.req.date,
            })?;
        self.versions.insert(minor, v.clone());
        Ok(v)
    }

    /// One drain window: cordon, drain, one kubelet minor at a time up to `goal` (kubeadm
    /// first on workers), uncordon. All nodes of `batch` are like `head`.
    pub(super) fn in_place_window(
        &mut self,
        phase: Phase,
        batch: &Batch,
        head: Head,
        goal: &KubeVersion,
        control_plane: bool,
        why: String,
    ) -> Result<(), PlanError> {
        if batch.nodes.is_empty() {
            return Ok(());
        }
        let path = self.kubelet_path(&head, goal)?;
        let start = self.steps.len();
        let mut w = Window {
            phase,
            batch,
            goal,
            control_plane,
            repo: head.repo(),
            kubeadm: head.kubeadm.clone(),
            configured: control_plane,
        };
        // kubeadm's order for one minor: kubeadm and `kubeadm upgrade node` before the drain
        // (a shorter window). Across several minors each minor's kubeadm writes its
        // configuration inside the window, just before its kubelet: an older kubelet must not
        // restart with a newer kubelet configuration, nor a newer one with an older.
        if !control_plane && !head.cordoned && path.len() == 1 {
            self.worker_kubeadm(&mut w, goal)?;
        }
        self.open_window(&w, &head, !path.is_empty(), why)?;
        if head.cordoned
            && let Some(k) = &head.kubelet
        {
            // An interrupted window: make sure whatever was installed runs.
            self.restart_kubelet(
                &w,
                k,
                format!("the node was left cordoned mid-upgrade: the kubelet installed ({k}) runs once restarted"),
            )?;
        }
        for v in &path {
            self.kubelet_to(&mut w, v)?;
        }
        if !w.configured {
            self.worker_kubeadm(&mut w, goal)?;
        }
        self.push(
            phase,
            batch,
            Action::Uncordon,
            goal,
            format!("the node runs {goal} and is Ready: workloads may return"),
        )?;
        // A node left cordoned is unavailable already: nothing to move out of its window.
        self.prestage_since(start, goal, None, !head.cordoned)
    }

    /// The kubelet versions nodes like `head` pass through up to `goal`, one minor at a
    /// time, `goal` last; none when the kubelet runs `goal` (or newer) already.
    fn kubelet_path(
        &mut self,
        head: &Head,
        goal: &KubeVersion,
    ) -> Result<Vec<KubeVersion>, PlanError> {
        let mut path = Vec::new();
        let Some(k) = head.kubelet.as_ref().filter(|k| *k < goal) else {
            return Ok(path);
        };
        let mut m = k.minor();
        while m < goal.minor() {
            m = m.next();
            path.push(if m == goal.minor() {
                goal.clone()
            } else {
                self.version_for(m)?
            });
        }
        if k.minor() == goal.minor() {
            path.push(goal.clone());
        }
        Ok(path)
    }

    /// Cordons the nodes (unless an interrupted window left them cordoned) and drains them
    /// when their kubelet or its configuration is to change.
    fn open_window(
        &mut self,
        w: &Window<'_>,
        head: &Head,
        kubelet_moves: bool,
        why: String,
    ) -> Result<(), PlanError> {
        if !head.cordoned {
            self.push(w.phase, w.batch, Action::Cordon, w.goal, why)?;
        }
        if kubelet_moves || !w.configured {
            self.push(
                w.phase,
                w.batch,
                Action::Drain {
                    options: self.opts().drain.clone(),
                },
                w.goal,
                "workloads leave the node before its kubelet changes",
            )?;
        }
        Ok(())
    }

    /// The kubelet moves to `v`, one minor on its way to the window's goal (on a worker,
    /// `kubeadm upgrade node` at `v` writes `v`'s configuration first; on the way, unless a
    /// newer kubeadm is installed already, which would write a newer one).
    fn kubelet_to(&mut self, w: &mut Window<'_>, v: &KubeVersion) -> Result<(), PlanError> {
        let goal = w.goal;
        let last = v == goal;
        if !w.configured && (last || w.kubeadm.as_ref().is_none_or(|k| k <= v)) {
            self.worker_kubeadm(w, v)?;
        }
        let reason = if !last {
            format!("one minor at a time: the kubelet passes through {v} on its way to {goal}")
        } else if w.control_plane {
            format!(
                "the kubelet may move to {} now that every API server runs {goal}",
                goal.minor()
            )
        } else {
            format!("the kubelet follows the control plane to {goal}")
        };
        self.packages(
            w.phase,
            w.batch,
            &mut w.repo,
            &KUBELET_PACKAGES,
            v,
            goal,
            reason,
        )?;
        self.restart_kubelet(w, v, format!("the kubelet runs {v} once restarted"))
    }

    /// Restarts the kubelet (which then runs `v`, as `reason` says) and waits for the nodes
    /// to be Ready.
    fn restart_kubelet(
        &mut self,
        w: &Window<'_>,
        v: &KubeVersion,
        reason: String,
    ) -> Result<(), PlanError> {
        self.push(
            w.phase,
            w.batch,
            Action::RestartKubelet { version: v.clone() },
            w.goal,
            reason,
        )?;
        self.push(
            w.phase,
            w.batch,
            Action::WaitReady {
                version: v.clone(),
                timeout_seconds: self.opts().ready_timeout_seconds,
            },
            w.goal,
            format!("nothing else changes until the node is Ready and reports {v}"),
        )
    }

    /// On a worker: kubeadm at `v` (installed when older) and `kubeadm upgrade node`, which
    /// writes `v`'s kubelet configuration (`v`: the goal, or a minor on the way to it).
    fn worker_kubeadm(&mut self, w: &mut Window<'_>, v: &KubeVersion) -> Result<(), PlanError> {
        let goal = w.goal;
        if w.kubeadm.as_ref().is_none_or(|k| k < v) {
            self.packages(
                Phase::Workers,
                w.batch,
                &mut w.repo,
                &[Package::Kubeadm],
                v,
                goal,
                format!("kubeadm {v} writes the kubelet configuration of {v} next"),
            )?;
            w.kubeadm = Some(v.clone());
        }
        self.push(
            Phase::Workers,
            w.batch,
            Action::KubeadmUpgradeNode {
                control_plane: None,
                etcd: None,
                addons: AddonVersions::default(),
                kubeadm: (v != goal).then(|| v.clone()),
            },
            goal,
            "on a worker `kubeadm upgrade node` writes the new kubelet configuration (one minor per run)",
        )?;
        w.configured = v == goal;
        Ok(())
    }
}
