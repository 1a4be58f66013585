//! Before anything changes: the pre-flight checks, the configuration backup and a kube-proxy
//! rollout under way.
use super::Planner;
use super::steps::Batch;
use crate::plan::PlanError;
use crate::plan::action::Action;
use crate::plan::step::Phase;

impl Planner<'_, '_> {
    /// Nodes whose kube-proxy pod runs another version than the DaemonSet (a rollout under
    /// way): wait for the rollout before anything moves.
    pub(super) fn finish_kube_proxy_rollout(&mut self) -> Result<(), PlanError> {
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
