//! The in-place drain window: cordon, drain, the kubelet one minor at a time, uncordon.
use crate::{KubeVersion, Minor};

use super::Planner;
use super::groups::Head;
use super::steps::Batch;
use crate::plan::action::Action;
use crate::plan::packages::KUBELET_PACKAGES;
use crate::plan::step::{AddonVersions, Package, Phase};
use crate::plan::{PlanError, TargetError};

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
        let mut repo = head.repo();
        let kubeadm_behind = !control_plane && head.kubeadm.as_ref().is_none_or(|k| k < goal);
        let mut seq = Vec::new();
        if let Some(k) = &head.kubelet
            && k < goal
        {
            let mut m = k.minor();
            while m < goal.minor() {
                m = m.next();
                seq.push(if m == goal.minor() {
                    goal.clone()
                } else {
                    self.version_for(m)?
                });
            }
            if k.minor() == goal.minor() {
                seq.push(goal.clone());
            }
        }
        let worker = !control_plane;
        // On workers `kubeadm upgrade node` writes the kubelet configuration; it runs (again,
        // it is idempotent) whenever the kubelet is to reach `goal`, since nothing in the
        // cluster state shows whether it already did.
        let mut configured = !worker;
        // kubeadm's order for one minor: kubeadm and `kubeadm upgrade node` before the drain
        // (a shorter window). Across several minors kubeadm comes last: an older kubelet must
        // not restart with a newer kubelet configuration.
        if worker && !head.cordoned && seq.len() == 1 {
            self.worker_kubeadm(batch, &mut repo, goal, kubeadm_behind)?;
            configured = true;
        }
        if !head.cordoned {
            self.push(phase, batch, Action::Cordon, goal, why)?;
        }
        if !seq.is_empty() || !configured {
            self.push(
                phase,
                batch,
                Action::Drain {
                    options: self.opts().drain.clone(),
                },
                goal,
                "workloads leave the node before its kubelet changes",
            )?;
        }
        if head.cordoned
            && let Some(k) = &head.kubelet
        {
            // An interrupted window: make sure whatever was installed runs.
            self.push(
                    phase,
                    batch,
                    Action::RestartKubelet { version: k.clone() },
                    goal,
                    format!("the node was left cordoned mid-upgrade: the kubelet installed ({k}) runs once restarted"),
                )?;
            self.push(
                phase,
                batch,
                Action::WaitReady {
                    version: k.clone(),
                    timeout_seconds: self.opts().ready_timeout_seconds,
                },
                goal,
                format!("nothing else changes until the node is Ready and reports {k}"),
            )?;
        }
        for v in &seq {
            let last = v == goal;
            if last && !configured {
                self.worker_kubeadm(batch, &mut repo, goal, kubeadm_behind)?;
                configured = true;
            }
            let reason = if last {
                if control_plane {
                    format!(
                        "the kubelet may move to {} now that every API server runs {goal}",
                        goal.minor()
                    )
                } else {
                    format!("the kubelet follows the control plane to {goal}")
                }
            } else {
                format!("one minor at a time: the kubelet passes through {v} on its way to {goal}")
            };
            self.packages(phase, batch, &mut repo, &KUBELET_PACKAGES, v, goal, reason)?;
            self.push(
                phase,
                batch,
                Action::RestartKubelet { version: v.clone() },
                goal,
                format!("the kubelet runs {v} once restarted"),
            )?;
            self.push(
                phase,
                batch,
                Action::WaitReady {
                    version: v.clone(),
                    timeout_seconds: self.opts().ready_timeout_seconds,
                },
                goal,
                format!("nothing else changes until the node is Ready and reports {v}"),
            )?;
        }
        if !configured {
            self.worker_kubeadm(batch, &mut repo, goal, kubeadm_behind)?;
        }
        self.push(
            phase,
            batch,
            Action::Uncordon,
            goal,
            format!("the node runs {goal} and is Ready: workloads may return"),
        )
    }

    fn worker_kubeadm(
        &mut self,
        batch: &Batch,
        repo: &mut Minor,
        goal: &KubeVersion,
        install: bool,
    ) -> Result<(), PlanError> {
        if install {
            self.packages(
                Phase::Workers,
                batch,
                repo,
                &[Package::Kubeadm],
                goal,
                goal,
                format!("kubeadm {goal} writes the kubelet configuration of {goal} next"),
            )?;
        }
        self.push(
            Phase::Workers,
            batch,
            Action::KubeadmUpgradeNode {
                control_plane: None,
                etcd: None,
                addons: AddonVersions::default(),
            },
            goal,
            "on a worker `kubeadm upgrade node` writes the new kubelet configuration (one minor per run)",
        )
    }
}
