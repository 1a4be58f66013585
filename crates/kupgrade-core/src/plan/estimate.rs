//! Duration estimates per step and the plan's totals.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::UpgradePlan;
use super::action::Action;
use super::timeline::Timeline;

/// How long each kind of step takes, in seconds (the nodes of one step run at the same time).
/// The defaults are rough figures for a healthy cluster; measure yours and set them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Durations {
    /// Pre-flight checks.
    pub preflight: u64,
    /// An etcd snapshot.
    pub etcd_snapshot: u64,
    /// A copy of `/etc/kubernetes`.
    pub backup_config: u64,
    /// Switching the package repository.
    pub switch_repository: u64,
    /// Installing packages from the cache (with the index update), as in a node's drain
    /// window once they were downloaded ahead (pre-staging); an install that was not
    /// pre-staged takes this and [`download_packages`](Self::download_packages).
    pub install_packages: u64,
    /// Downloading the packages of one version (the index of that minor's repository
    /// included), ahead of the window (pre-staging) or as part of an install.
    pub download_packages: u64,
    /// Pulling a control-plane version's images ahead (`kubeadm config images pull`).
    pub pull_images: u64,
    /// `kubeadm version`.
    pub check_kubeadm_version: u64,
    /// `kubeadm upgrade plan`.
    pub kubeadm_upgrade_plan: u64,
    /// `kubeadm upgrade apply`, with the image pull it starts with (pre-staged, the step
    /// counts [`pull_images`](Self::pull_images) less).
    pub kubeadm_upgrade_apply: u64,
    /// `kubeadm upgrade node` on a control-plane node, with its image pull (as for
    /// `kubeadm upgrade apply`).
    pub kubeadm_upgrade_node: u64,
    /// `kubeadm upgrade node` on a worker (kubelet configuration only).
    pub kubeadm_upgrade_node_config: u64,
    /// Cordon.
    pub cordon: u64,
    /// Drain.
    pub drain: u64,
    /// Restarting the kubelet.
    pub restart_kubelet: u64,
    /// Waiting for Ready.
    pub wait_ready: u64,
    /// Uncordon.
    pub uncordon: u64,
    /// Waiting for the kube-proxy DaemonSet to finish rolling out.
    pub kube_proxy_rollout: u64,
    /// The operator upgrading their kubectl.
    pub kubectl_client: u64,
    /// Provisioning nodes until they are Ready.
    pub provision: u64,
    /// Removing nodes.
    pub remove: u64,
    /// The final verification.
    pub verify: u64,
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            preflight: 60,
            etcd_snapshot: 60,
            backup_config: 30,
            switch_repository: 15,
            install_packages: 30,
            download_packages: 60,
            pull_images: 60,
            check_kubeadm_version: 5,
            kubeadm_upgrade_plan: 60,
            kubeadm_upgrade_apply: 420,
            kubeadm_upgrade_node: 240,
            kubeadm_upgrade_node_config: 30,
            cordon: 5,
            drain: 180,
            restart_kubelet: 20,
            wait_ready: 60,
            uncordon: 5,
            kube_proxy_rollout: 120,
            kubectl_client: 60,
            provision: 420,
            remove: 90,
            verify: 60,
        }
    }
}

impl Durations {
    /// The estimate for `action`; an install downloads what it installs
    /// ([`install_from_cache`](Self::install_from_cache) when pre-staged).
    pub fn of(&self, action: &Action) -> u64 {
        match action {
            Action::Preflight { .. } => self.preflight,
            Action::EtcdSnapshot { .. } => self.etcd_snapshot,
            Action::BackupConfig { .. } => self.backup_config,
            Action::SwitchRepository { .. } => self.switch_repository,
            Action::InstallPackages { .. } => {
                self.install_packages.saturating_add(self.download_packages)
            }
            Action::DownloadPackages { .. } => self.download_packages,
            Action::PullImages { .. } => self.pull_images,
            Action::CheckKubeadmVersion { .. } => self.check_kubeadm_version,
            Action::KubeadmUpgradePlan { .. } => self.kubeadm_upgrade_plan,
            Action::KubeadmUpgradeApply { .. } => self.kubeadm_upgrade_apply,
            Action::KubeadmUpgradeNode {
                control_plane: Some(_),
                ..
            } => self.kubeadm_upgrade_node,
            Action::KubeadmUpgradeNode { .. } => self.kubeadm_upgrade_node_config,
            Action::Cordon => self.cordon,
            Action::Drain { .. } => self.drain,
            Action::RestartKubelet { .. } => self.restart_kubelet,
            Action::WaitReady { .. } => self.wait_ready,
            Action::Uncordon => self.uncordon,
            Action::WaitKubeProxyRollout { .. } => self.kube_proxy_rollout,
            Action::UpgradeKubectlClient { .. } => self.kubectl_client,
            Action::ProvisionNodes { .. } => self.provision,
            Action::RemoveNodes => self.remove,
            Action::Verify { .. } => self.verify,
            // Not the planner's: a gate that passes at once takes no time, and how long the
            // workloads take is theirs.
            Action::GateBaseline { .. } | Action::Gate { .. } | Action::Hook { .. } => 0,
        }
    }
}

impl Durations {
    /// An install whose packages were downloaded ahead (pre-staged).
    pub fn install_from_cache(&self) -> u64 {
        self.install_packages
    }
}

/// Time and disruption estimates for a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// Total wall time, in seconds: the makespan of the steps' dependency graph under the
    /// plan's parallelism limit, scheduled as the run schedules them ([`Timeline`]), every
    /// task taking its step's duration (checks and operator steps none, as in the run).
    pub total_seconds: u64,
    /// No schedule of the plan's work can take less, in seconds ([`Timeline::lower_bound`]):
    /// the control plane's own steps one after another, plus the longer of the control-plane
    /// kubelets one at a time and the workers' work spread over the batch size.
    #[serde(default)]
    pub lower_bound_seconds: u64,
    /// `total_seconds` over `lower_bound_seconds`, in percent, rounded up (100: no schedule
    /// could be shorter).
    #[serde(default)]
    pub bound_ratio_percent: u64,
    /// The number of steps.
    pub steps: usize,
    /// Node drains in all.
    pub drains: usize,
    /// The most drains any one node goes through.
    pub max_drains_per_node: usize,
    /// The most nodes cordoned at the same time.
    pub max_unavailable: usize,
    /// Nodes replaced (replace strategy).
    pub nodes_replaced: usize,
}

impl Estimate {
    /// The start time of each step of `plan`, in seconds from the start of the plan, as the
    /// estimate schedules them ([`Timeline`] under the plan's parallelism limit).
    pub fn start_times(plan: &UpgradePlan) -> Vec<u64> {
        Timeline::of(&plan.steps, plan.max_parallel, 0).starts
    }

    /// The ratio of the makespan to the lower bound (`1.05`), as the renderings show it.
    pub fn ratio(&self) -> String {
        format!(
            "{}.{:02}",
            self.bound_ratio_percent / 100,
            self.bound_ratio_percent % 100
        )
    }
}

/// `makespan / bound` in percent, rounded up (100 when the bound is 0).
pub(crate) fn ratio_percent(makespan: u64, bound: u64) -> u64 {
    if bound == 0 {
        return 100;
    }
    (u128::from(makespan) * 100).div_ceil(u128::from(bound)) as u64
}

/// `3h 05m`, `12m 30s`, `45s`.
pub fn human_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}
