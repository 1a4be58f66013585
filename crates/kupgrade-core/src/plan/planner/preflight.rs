//! Before anything changes: the pre-flight checks, the configuration backup and a kube-proxy
//! rollout under way.
use crate::{Component, KubeVersion, Node, NodeName};

use super::Planner;
use super::names::backup_path;
use super::steps::Batch;
use crate::plan::action::Action;
use crate::plan::step::{Phase, PreflightCheck, StartVersion};
use crate::plan::{HopKind, PlanError};

impl Planner<'_, '_> {
    /// The pre-flight checks, a copy of each control-plane node's configuration (with a
    /// backup directory and hops to make), and the wait for a kube-proxy rollout under way.
    pub(super) fn preflight(&mut self, status: String) -> Result<(), PlanError> {
        let target = self.target.clone();
        let cp: Vec<NodeName> = self.control_plane_names();
        let mut checks = vec![
            PreflightCheck::NodesReady,
            PreflightCheck::PolicyHolds {
                policy: self.req.policy.name().to_string(),
            },
            PreflightCheck::TargetSupported {
                version: target.clone(),
                status,
            },
        ];
        let applied: Vec<KubeVersion> = self
            .hops
            .iter()
            .filter(|h| h.kind != HopKind::Resume)
            .map(|h| h.to.clone())
            .collect();
        if !applied.is_empty() {
            checks.push(PreflightCheck::KubeadmVerdict { versions: applied });
        }
        checks.push(PreflightCheck::StartMatches {
            control_plane: self.start_versions(&cp)?,
        });
        self.push(
            Phase::Preflight,
            &Batch::none(),
            Action::Preflight { checks },
            &target,
            "nothing changes before these checks pass",
        )?;
        if let Some(dir) = self.opts().backup_dir.clone()
            && !self.hops.is_empty()
        {
            let from = self.sim.summary().apiserver_min.unwrap_or(target.clone());
            let nodes: Vec<Node> = cp
                .iter()
                .map(|n| self.node(n).cloned())
                .collect::<Result<_, _>>()?;
            let refs: Vec<&Node> = nodes.iter().collect();
            self.push(
                Phase::Preflight,
                &self.batch_of(&refs),
                Action::BackupConfig {
                    path: backup_path(&dir, &format!("etc-kubernetes-{from}")),
                },
                &target,
                "a copy of each control-plane node's configuration before anything changes",
            )?;
        }
        self.finish_kube_proxy_rollout()
    }

    /// The components of the control-plane nodes `cp` as the plan starts (those kubeadm
    /// changes, and the kubeadm that changes them), for [`PreflightCheck::StartMatches`].
    fn start_versions(&self, cp: &[NodeName]) -> Result<Vec<StartVersion>, PlanError> {
        const COMPONENTS: [Component; 6] = [
            Component::Kubeadm,
            Component::KubeApiserver,
            Component::KubeControllerManager,
            Component::KubeScheduler,
            Component::CloudControllerManager,
            Component::Etcd,
        ];
        let mut out = Vec::new();
        for name in cp {
            let node = self.node(name)?;
            for component in COMPONENTS {
                if let Some(version) = node.versions.get(component) {
                    out.push(StartVersion {
                        node: name.clone(),
                        component,
                        version: version.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Nodes whose kube-proxy pod runs another version than the DaemonSet (a rollout under
    /// way): wait for the rollout before anything moves.
    fn finish_kube_proxy_rollout(&mut self) -> Result<(), PlanError> {
        if !self
            .sim
            .present()
            .any(|(_, c)| c.rep.versions.kube_proxy.is_some())
        {
            return Ok(());
        }
        let state = self.sim.shell();
        let v = state.addons.kube_proxy.clone();
        let shown = v
            .as_ref()
            .map_or_else(|| "version unknown".into(), ToString::to_string);
        let timeout_seconds = self.opts().ready_timeout_seconds;
        self.push(
            Phase::Preflight,
            &Batch::none(),
            Action::WaitKubeProxyRollout {
                version: v,
                timeout_seconds,
            },
            &self.target.clone(),
            format!(
                "some kube-proxy pods still run another version than the DaemonSet ({shown}): the rollout finishes before anything moves"
            ),
        )
    }
}
