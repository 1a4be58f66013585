//! What an action means, in one place.
//!
//! An [`Action`] is what a [`Step`] does. What kupgrade derives from it is answered here:
//!
//! - [`Action::executor`]: which port carries it out;
//! - [`Action::verb`] and [`Action::describe`]: its name in step ids, and in words;
//! - [`Action::facts`]: what must hold before it and what holds after it (the run checks
//!   both), with the reasons in a table;
//! - [`Action::settle_window`] and [`Action::shown_later`]: how long its postconditions may
//!   take to show in the cluster's state, and which ones only a later step can see;
//! - [`Action::change`]: what it changes, a [`Change`] that the planner's model and the
//!   [`Simulation`](super::Simulation) both apply, and from which the run takes what it
//!   expects of a task's node while the task runs;
//! - [`Action::deadline`]: how long one task may take before the driver gives up on it;
//! - [`Step::on_node`]: what one task of a step does.
//!
//! # Adding an action
//!
//! 1. A variant of [`Action`] (its serde form is part of the plan format: add, never rename)
//!    and its arm in each `match` of this file; the compiler lists them.
//! 2. If it runs commands on nodes ([`Executor::Node`]): its commands in `node_commands`
//!    (`packages/mod.rs`).
//! 3. Only if it changes something no kind of [`Change`] describes yet: a new kind in
//!    `change.rs`, and one arm in each model's `apply_change` (`simulate.rs`, `fleet.rs`),
//!    which the compiler asks for; the property test in `fleet.rs` holds the two models to
//!    the same answers.
//!
//! Besides these, its estimate is a field of [`Durations`](super::Durations) (`estimate.rs`,
//! asked for by the compiler too); an action for another port than node commands needs its
//! [`Work`](crate::run::Work) in the run and its driver; the renderers' manual lines
//! (`render/mod.rs`) say how a person does it by hand.
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ports::{CommandSpec, DrainOptions};
use crate::{Component, KubeVersion, Minor, NodeName};

use super::change::Change;
use super::step::{AddonVersions, Fact, NodeList, Package, Phase, PreflightCheck, Step, StepId};
use crate::gate::{Gate, RegressionCheck};
use crate::hook::{Hook, HookTarget};

/// What a step does. The effect of each action on the model is fixed (see
/// [`Simulation`](super::Simulation)); the values an effect needs (etcd and add-on versions)
/// are part of the action, so replaying a plan needs no lookups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Action {
    /// Checks made before anything changes.
    Preflight {
        /// The checks.
        checks: Vec<PreflightCheck>,
    },
    /// `etcdctl snapshot save` on a control-plane node (stacked etcd).
    EtcdSnapshot {
        /// The snapshot file on the node; a [`RUN_TOKEN`](crate::ports::RUN_TOKEN) in it
        /// stands for the run's id (the planner puts every backup in the run's directory).
        path: String,
    },
    /// A copy of `/etc/kubernetes` on each control-plane node.
    BackupConfig {
        /// The directory the copy goes to; a [`RUN_TOKEN`](crate::ports::RUN_TOKEN) in it
        /// stands for the run's id.
        path: String,
    },
    /// Point the node's Kubernetes package repository at `minor` (pkgs.k8s.io has one
    /// repository per minor).
    SwitchRepository {
        /// The minor.
        minor: Minor,
    },
    /// Unhold, install at an exact version, hold again.
    InstallPackages {
        /// The packages.
        packages: Vec<Package>,
        /// Their version.
        version: KubeVersion,
    },
    /// Download `packages` at `version` from `version`'s repository into the package
    /// manager's cache, installing nothing and changing neither the node's configured
    /// repository nor its holds (pre-staging: the install in the drain window then takes them
    /// from the cache). Changes nothing the cluster shows, so it is repeated on resume.
    DownloadPackages {
        /// The packages.
        packages: Vec<Package>,
        /// Their version.
        version: KubeVersion,
    },
    /// `kubeadm config images pull --kubernetes-version <version>` on a control-plane node,
    /// with the kubeadm installed there (pre-staging: `kubeadm upgrade` then finds the
    /// control-plane images). Changes nothing the cluster shows, so it is repeated on resume.
    PullImages {
        /// The control-plane version whose images are pulled.
        version: KubeVersion,
    },
    /// `kubeadm version` must print `version`.
    CheckKubeadmVersion {
        /// The expected version.
        version: KubeVersion,
    },
    /// `kubeadm upgrade plan <version>`: kubeadm's own pre-flight, changes nothing.
    KubeadmUpgradePlan {
        /// The target of the hop.
        version: KubeVersion,
    },
    /// `kubeadm upgrade apply <version> --yes` on the first control-plane node: moves its
    /// control-plane components (and stacked etcd), and the add-ons where kubeadm does so at
    /// apply. After it a downgrade is no longer supported.
    KubeadmUpgradeApply {
        /// The new control-plane version.
        version: KubeVersion,
        /// The stacked etcd version it deploys on the node, when it changes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etcd: Option<KubeVersion>,
        /// The add-ons it moves.
        #[serde(default, skip_serializing_if = "AddonVersions::is_empty")]
        addons: AddonVersions,
    },
    /// `kubeadm upgrade node`: on a control-plane node, moves its components to the version
    /// `kubeadm upgrade apply` set (and the add-ons, on the last one since kubeadm 1.28; run
    /// again on a control-plane node already upgraded, only the add-ons move); on a worker,
    /// refreshes the kubelet configuration.
    KubeadmUpgradeNode {
        /// The control-plane version it deploys (control-plane nodes only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        control_plane: Option<KubeVersion>,
        /// The stacked etcd version it deploys, when it changes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        etcd: Option<KubeVersion>,
        /// The add-ons it moves.
        #[serde(default, skip_serializing_if = "AddonVersions::is_empty")]
        addons: AddonVersions,
        /// On a worker passing through a minor on its way to the step's goal: the kubeadm that
        /// runs (installed just before), writing that minor's kubelet configuration. None: the
        /// goal's kubeadm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kubeadm: Option<KubeVersion>,
    },
    /// Mark the nodes unschedulable.
    Cordon,
    /// Evict the nodes' pods (cordoning them first), honouring disruption budgets.
    Drain {
        /// How.
        options: DrainOptions,
    },
    /// `systemctl daemon-reload` and `systemctl restart kubelet`, so that the kubelet installed
    /// at `version` runs.
    RestartKubelet {
        /// The kubelet version installed.
        version: KubeVersion,
    },
    /// Wait until the nodes are Ready and their kubelets report `version`.
    WaitReady {
        /// The kubelet version expected.
        version: KubeVersion,
        /// Give up after this long.
        timeout_seconds: u64,
    },
    /// Mark the nodes schedulable again.
    Uncordon,
    /// Wait until the kube-proxy DaemonSet runs its version on every node (a rollout under
    /// way finishes: `kubectl -n kube-system rollout status daemonset/kube-proxy`).
    WaitKubeProxyRollout {
        /// The DaemonSet's version, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<KubeVersion>,
        /// Give up after this long.
        timeout_seconds: u64,
    },
    /// The operator's own kubectl must be upgraded to `version` (kubectl must stay within one
    /// minor of every API server). Not something a runner can do on a node.
    UpgradeKubectlClient {
        /// The version.
        version: KubeVersion,
    },
    /// Create the step's nodes, each like its template (roles, labels, OS), running `version`,
    /// and wait until they have joined and are Ready (the replace strategy).
    ProvisionNodes {
        /// The version they join with.
        version: KubeVersion,
        /// For each of the step's nodes, in order, the node it replaces (its template).
        templates: NodeList,
    },
    /// Remove the (drained) nodes from the cluster and delete their machines.
    RemoveNodes,
    /// The final check: every node at the target, the policy holds.
    Verify {
        /// The target.
        version: KubeVersion,
    },
    /// Take the workload snapshot a regression gate compares with: the pods and disruption
    /// budgets it watches, before the batch or hop it judges (see [`crate::gate`]).
    GateBaseline {
        /// The gate's name.
        gate: String,
        /// What it watches.
        regression: RegressionCheck,
    },
    /// Evaluate a gate until it passes or its time is up (see [`crate::gate`]); changes
    /// nothing, so it is evaluated again on resume.
    Gate {
        /// The gate.
        gate: Box<Gate>,
        /// For a regression gate: the step whose snapshot it compares with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline: Option<StepId>,
    },
    /// The operator's command (see [`crate::hook`]): here, or on each of the step's nodes
    /// ([`Step::commands`] then hold it).
    Hook {
        /// The hook.
        hook: Box<Hook>,
        /// The place's facts, its environment (`KUPGRADE_STEP`, `KUPGRADE_NODES`, ...).
        env: Vec<(String, String)>,
    },
}

/// Which port carries an action out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Executor {
    /// Commands on each of the step's nodes ([`Step::commands`], a `CommandRunner`).
    Node,
    /// Cluster operations (cordon, drain, uncordon, wait Ready: `ClusterOperations`).
    Cluster,
    /// The node provider (`NodeProvider`).
    Provider,
    /// A check against the cluster state and the policy; changes nothing.
    Check,
    /// Something only the operator can do (their own kubectl).
    Operator,
    /// A gate: the cluster read through a `GateProbe`, or the gate's command run; changes
    /// nothing.
    Gate,
    /// A command on the operator's machine (a hook that runs here).
    Local,
}

impl Action {
    /// Whether its postconditions show all it does, so that a task of it that crashed with
    /// them holding can be taken as done. An install's do not: they are the package versions,
    /// and the hold, lock or exclude put back after the install is no fact the cluster shows
    /// (a crash between the two would leave the packages unheld for good).
    pub fn post_shows_all(&self) -> bool {
        !matches!(self, Action::InstallPackages { .. })
    }

    /// Which port carries the action out.
    pub fn executor(&self) -> Executor {
        match self {
            Action::Preflight { .. } | Action::Verify { .. } => Executor::Check,
            Action::EtcdSnapshot { .. }
            | Action::BackupConfig { .. }
            | Action::SwitchRepository { .. }
            | Action::InstallPackages { .. }
            | Action::DownloadPackages { .. }
            | Action::PullImages { .. }
            | Action::CheckKubeadmVersion { .. }
            | Action::KubeadmUpgradePlan { .. }
            | Action::KubeadmUpgradeApply { .. }
            | Action::KubeadmUpgradeNode { .. }
            | Action::RestartKubelet { .. } => Executor::Node,
            Action::Cordon
            | Action::Drain { .. }
            | Action::WaitReady { .. }
            | Action::Uncordon
            | Action::WaitKubeProxyRollout { .. } => Executor::Cluster,
            Action::ProvisionNodes { .. } | Action::RemoveNodes => Executor::Provider,
            Action::UpgradeKubectlClient { .. } => Executor::Operator,
            Action::GateBaseline { .. } | Action::Gate { .. } => Executor::Gate,
            Action::Hook { hook, .. } => match hook.on {
                HookTarget::Nodes => Executor::Node,
                HookTarget::Local => Executor::Local,
            },
        }
    }

    /// A short verb for identifiers (`kubeadm-upgrade-apply`, `install-kubelet-kubectl`).
    pub fn verb(&self) -> String {
        match self {
            Action::Preflight { .. } => "preflight".into(),
            Action::EtcdSnapshot { .. } => "etcd-snapshot".into(),
            Action::BackupConfig { .. } => "backup-config".into(),
            Action::SwitchRepository { minor } => format!("repository-{minor}"),
            Action::InstallPackages { packages, version } => {
                let names: Vec<&str> = packages.iter().map(|p| p.name()).collect();
                format!("install-{}@{version}", names.join("-"))
            }
            Action::DownloadPackages { packages, version } => {
                let names: Vec<&str> = packages.iter().map(|p| p.name()).collect();
                format!("download-{}@{version}", names.join("-"))
            }
            Action::PullImages { version } => format!("pull-images@{version}"),
            Action::CheckKubeadmVersion { .. } => "kubeadm-version".into(),
            Action::KubeadmUpgradePlan { .. } => "kubeadm-upgrade-plan".into(),
            Action::KubeadmUpgradeApply { .. } => "kubeadm-upgrade-apply".into(),
            Action::KubeadmUpgradeNode {
                control_plane,
                addons,
                kubeadm,
                ..
            } => match control_plane {
                Some(_) => "kubeadm-upgrade-node".into(),
                None if addons.is_empty() => match kubeadm {
                    Some(v) => format!("kubeadm-upgrade-node-config@{v}"),
                    None => "kubeadm-upgrade-node-config".into(),
                },
                None => "kubeadm-upgrade-node-addons".into(),
            },
            Action::Cordon => "cordon".into(),
            Action::Drain { .. } => "drain".into(),
            Action::RestartKubelet { version } => format!("restart-kubelet@{version}"),
            Action::WaitReady { version, .. } => format!("wait-ready@{version}"),
            Action::Uncordon => "uncordon".into(),
            Action::WaitKubeProxyRollout { .. } => "kube-proxy-rollout".into(),
            Action::UpgradeKubectlClient { .. } => "kubectl-client".into(),
            Action::ProvisionNodes { .. } => "provision".into(),
            Action::RemoveNodes => "remove".into(),
            Action::Verify { .. } => "verify".into(),
            Action::GateBaseline { gate, .. } => format!("baseline-{gate}"),
            Action::Gate { gate, .. } => format!("gate-{}", gate.name),
            Action::Hook { hook, .. } => format!("hook-{}", hook.name),
        }
    }

    /// What the action does, in a few words (`kubeadm upgrade apply v1.29.15`).
    pub fn describe(&self) -> String {
        match self {
            Action::Preflight { .. } => "pre-flight checks".into(),
            Action::EtcdSnapshot { path } => format!("etcd snapshot to {path}"),
            Action::BackupConfig { path } => format!("back up /etc/kubernetes to {path}"),
            Action::SwitchRepository { minor } => {
                format!("switch the package repository to v{minor}")
            }
            Action::InstallPackages { packages, version } => {
                let names: Vec<&str> = packages.iter().map(|p| p.name()).collect();
                format!("install {} {version}", names.join(", "))
            }
            Action::DownloadPackages { packages, version } => {
                let names: Vec<&str> = packages.iter().map(|p| p.name()).collect();
                format!(
                    "download {} {version} ahead (no install, no repository or hold change)",
                    names.join(", ")
                )
            }
            Action::PullImages { version } => {
                format!("pull the control-plane images of {version} ahead")
            }
            Action::CheckKubeadmVersion { version } => format!("check kubeadm is {version}"),
            Action::KubeadmUpgradePlan { version } => format!("kubeadm upgrade plan {version}"),
            Action::KubeadmUpgradeApply { version, .. } => {
                format!("kubeadm upgrade apply {version}")
            }
            Action::KubeadmUpgradeNode {
                control_plane,
                addons,
                ..
            } => match control_plane {
                Some(v) => format!("kubeadm upgrade node (control plane to {v})"),
                None if addons.is_empty() => "kubeadm upgrade node (kubelet configuration)".into(),
                None => "kubeadm upgrade node (add-ons kube-proxy and CoreDNS)".into(),
            },
            Action::Cordon => "cordon".into(),
            Action::Drain { .. } => "drain".into(),
            Action::RestartKubelet { version } => format!("restart the kubelet ({version})"),
            Action::WaitReady { version, .. } => format!("wait until Ready at {version}"),
            Action::Uncordon => "uncordon".into(),
            Action::WaitKubeProxyRollout { version, .. } => match version {
                Some(v) => format!("wait until kube-proxy {v} runs on every node"),
                None => "wait until the kube-proxy DaemonSet has rolled out".into(),
            },
            Action::UpgradeKubectlClient { version } => {
                format!("upgrade your own kubectl to {version}")
            }
            Action::ProvisionNodes { version, .. } => format!("provision nodes at {version}"),
            Action::RemoveNodes => "remove nodes".into(),
            Action::Verify { version } => format!("verify every node at {version}"),
            Action::GateBaseline { gate, .. } => {
                format!("snapshot the workloads gate {gate} watches")
            }
            Action::Gate { gate, .. } => format!("gate {}: {}", gate.name, gate.describe()),
            Action::Hook { hook, .. } => {
                format!("hook {}: {}", hook.name, hook.spec(&[]).to_shell_line())
            }
        }
    }

    /// What the action changes ([`Change`]): what the models of the cluster apply, and what
    /// a run expects of the action's nodes while it runs.
    pub fn change(&self) -> Change<'_> {
        match self {
            Action::Preflight { .. }
            | Action::EtcdSnapshot { .. }
            | Action::BackupConfig { .. }
            | Action::SwitchRepository { .. }
            | Action::DownloadPackages { .. }
            | Action::PullImages { .. }
            | Action::CheckKubeadmVersion { .. }
            | Action::KubeadmUpgradePlan { .. }
            | Action::Verify { .. }
            | Action::GateBaseline { .. }
            | Action::Gate { .. }
            | Action::Hook { .. } => Change::Nothing,
            Action::InstallPackages { packages, version } => Change::Install { packages, version },
            Action::KubeadmUpgradeApply {
                version,
                etcd,
                addons,
            }
            | Action::KubeadmUpgradeNode {
                control_plane: Some(version),
                etcd,
                addons,
                ..
            } => Change::ControlPlane {
                version,
                etcd: etcd.as_ref(),
                addons,
            },
            // A worker's kubelet configuration is not modelled.
            Action::KubeadmUpgradeNode { addons, .. } if addons.is_empty() => Change::Nothing,
            Action::KubeadmUpgradeNode { addons, .. } => Change::Addons(addons),
            // A drain cordons first.
            Action::Cordon | Action::Drain { .. } => Change::Schedulable(false),
            Action::Uncordon => Change::Schedulable(true),
            Action::RestartKubelet { .. } => Change::KubeletRestart,
            Action::WaitReady { .. } => Change::AwaitReady,
            Action::WaitKubeProxyRollout { .. } => Change::RollOutKubeProxy,
            Action::UpgradeKubectlClient { version } => Change::Kubectl(version),
            Action::ProvisionNodes { version, templates } => {
                Change::Provision { version, templates }
            }
            Action::RemoveNodes => Change::Remove,
        }
    }

    /// How long one task of the action may take, all told, before the driver gives up on it
    /// (and reports it timed out): always defined. Node commands get the sum of their time
    /// limits (`commands`: the ones the task runs; a command without a timeout counts the
    /// default, [`CommandSpec::time_limit`]); the waits their own timeouts; each with a
    /// minute's slack; the sums saturate. Checks and the operator's steps are decided by the
    /// run itself at once: the slack alone.
    pub fn deadline(&self, commands: &[CommandSpec]) -> Duration {
        const SLACK: Duration = Duration::from_secs(60);
        match self {
            Action::EtcdSnapshot { .. }
            | Action::BackupConfig { .. }
            | Action::SwitchRepository { .. }
            | Action::InstallPackages { .. }
            | Action::DownloadPackages { .. }
            | Action::PullImages { .. }
            | Action::CheckKubeadmVersion { .. }
            | Action::KubeadmUpgradePlan { .. }
            | Action::KubeadmUpgradeApply { .. }
            | Action::KubeadmUpgradeNode { .. }
            | Action::RestartKubelet { .. } => commands
                .iter()
                .map(CommandSpec::time_limit)
                .fold(SLACK, Duration::saturating_add),
            Action::Cordon | Action::Uncordon => Duration::from_secs(300),
            Action::Drain { options } => {
                Duration::from_secs(options.timeout_seconds).saturating_add(SLACK)
            }
            Action::WaitReady {
                timeout_seconds, ..
            }
            | Action::WaitKubeProxyRollout {
                timeout_seconds, ..
            } => Duration::from_secs(*timeout_seconds).saturating_add(SLACK),
            Action::ProvisionNodes { .. } | Action::RemoveNodes => Duration::from_secs(3600),
            Action::GateBaseline { .. } => Duration::from_secs(300),
            // Its time, one more evaluation after it, and the slack.
            Action::Gate { gate, .. } => Duration::from_secs(gate.timeout_seconds)
                .saturating_add(Duration::from_secs(gate.interval_seconds))
                .saturating_add(Duration::from_secs(
                    gate.command.as_ref().map_or(0, |c| c.timeout_seconds),
                ))
                .saturating_add(SLACK),
            Action::Hook { hook, .. } => {
                Duration::from_secs(hook.timeout_seconds).saturating_add(SLACK)
            }
            Action::Preflight { .. }
            | Action::Verify { .. }
            | Action::UpgradeKubectlClient { .. } => SLACK,
        }
    }

    /// What must hold before the action and what holds after it, on each of the step's
    /// nodes or on the cluster (see [`Fact`]); `goal` is the version of the hop the step
    /// belongs to, `phase` where the step stands (a kubelet step of
    /// [`Phase::ControlPlaneKubelets`] acts on a control-plane node). A run checks the
    /// preconditions before it starts a task, the postconditions once the task reports
    /// success ([`Action::settle_window`]) and, after a crash, the postconditions that are not
    /// already preconditions, to tell whether the task happened.
    ///
    /// # Why each action needs what it needs
    ///
    /// The plan proves every step safe on its model of the cluster; a precondition is what the
    /// live cluster must show for that proof to hold there too, so that no step whose effect
    /// could break the skew policy starts where it would. Before every task the run also
    /// checks that the policy holds and that the nodes are there and Ready.
    ///
    /// | action | before | why | after |
    /// |---|---|---|---|
    /// | pre-flight | — | a check; changes nothing | the policy holds |
    /// | etcd snapshot, configuration backup, repository switch | the node is present | change nothing the policy judges | — (files on the node) |
    /// | download packages, pull images (pre-staging) | the node is present | fill a cache; no version, repository, hold or schedulability changes | — (files in a cache) |
    /// | install kubeadm | the node is present | a binary the policy judges only with a warning | kubeadm at the version |
    /// | install the kubelet (and kubectl) on a worker | present, cordoned, every API server at the kubelet's minor or newer | a kubelet must never be newer than an API server; cordoned, so the restart that follows moves no workload | the packages at the version (the kubelet's shows once it restarts) |
    /// | install the kubelet on a control-plane node | present, cordoned, every API server at the hop's version | kubeadm's order: a control-plane kubelet moves once every control-plane instance runs the hop's version | as on a worker |
    /// | `kubeadm version`, `kubeadm upgrade plan` | kubeadm at the version | kubeadm's own checks (the plan checks the kubelets' skew against the target) | — |
    /// | `kubeadm upgrade apply` | kubeadm at the version, the policy holds, every API server at the minor before or newer | it moves this node's API server, which must stay within one minor of the others | this node's API server at the version, some API server at it, the add-ons it moves |
    /// | `kubeadm upgrade node`, control plane | kubeadm at the version, some API server at it, every API server at the minor before or newer | it deploys the version `upgrade apply` recorded; the API servers stay within one minor | this node's API server at the version, the add-ons it moves (on the last node) |
    /// | `kubeadm upgrade node`, worker or add-ons only | kubeadm at the hop's version (a worker passing through a minor: at that minor), every API server at the hop's version | the kubelet configuration and the add-ons of the hop must not run ahead of an API server | the add-ons it moves |
    /// | cordon | the node is present | — | cordoned |
    /// | drain | cordoned | nothing new is scheduled there meanwhile | cordoned |
    /// | restart the kubelet on a worker | cordoned, every API server at the kubelet's minor or newer | on a real node the restart is what moves the running kubelet | — (the wait after it checks the version) |
    /// | restart the kubelet on a control-plane node | cordoned, every API server at the hop's version | as for its install | — |
    /// | wait Ready | — | waits; changes nothing | Ready, the kubelet at the version |
    /// | uncordon | Ready, the kubelet at the hop's version | only an upgraded, Ready node takes workload again | schedulable |
    /// | kube-proxy rollout | — | waits for the rollout kubeadm started | the DaemonSet at its version, and every kube-proxy pod at one version |
    /// | your kubectl | — | the operator's; judged against the API servers by the policy | your kubectl at the version |
    /// | provision | absent, every API server at the version | the new kubelet must be newer than no API server | present, Ready, the kubelet at the version |
    /// | remove | cordoned | drained before it goes | absent |
    /// | verify | — | a check | every API server at the target, the policy holds |
    pub fn facts(&self, goal: &KubeVersion, phase: Phase) -> (Vec<Fact>, Vec<Fact>) {
        match self {
            Action::Preflight { .. } => (vec![], vec![Fact::PolicyHolds]),
            Action::EtcdSnapshot { .. } | Action::BackupConfig { .. } => {
                (vec![Fact::Present], vec![])
            }
            Action::SwitchRepository { .. }
            | Action::DownloadPackages { .. }
            | Action::PullImages { .. } => (vec![Fact::Present], vec![]),
            Action::InstallPackages {
                packages,
                version: v,
            } => install(packages, v, goal, phase),
            Action::CheckKubeadmVersion { version: v }
            | Action::KubeadmUpgradePlan { version: v } => {
                (vec![version(Component::Kubeadm, v)], vec![])
            }
            Action::KubeadmUpgradeApply {
                version: v, addons, ..
            } => upgrade_apply(v, addons),
            Action::KubeadmUpgradeNode {
                control_plane: Some(v),
                addons,
                ..
            } => upgrade_node_control_plane(v, addons),
            Action::KubeadmUpgradeNode {
                addons, kubeadm, ..
            } => (
                vec![
                    version(Component::Kubeadm, kubeadm.as_ref().unwrap_or(goal)),
                    Fact::ControlPlaneAt {
                        version: goal.clone(),
                    },
                ],
                addon_facts(addons),
            ),
            Action::Cordon => (vec![Fact::Present], vec![Fact::Cordoned]),
            Action::Drain { .. } => (vec![Fact::Cordoned], vec![Fact::Cordoned]),
            Action::RestartKubelet { version: v } => {
                (vec![Fact::Cordoned, kubelet_safe(v, goal, phase)], vec![])
            }
            Action::WaitReady { version: v, .. } => {
                (vec![], vec![Fact::Ready, version(Component::Kubelet, v)])
            }
            Action::Uncordon => (
                vec![Fact::Ready, version(Component::Kubelet, goal)],
                vec![Fact::Schedulable],
            ),
            Action::WaitKubeProxyRollout { version: v, .. } => (
                vec![],
                v.iter()
                    .map(|v| Fact::Addon {
                        component: Component::KubeProxy,
                        version: v.clone(),
                    })
                    .chain([Fact::KubeProxyRolledOut])
                    .collect(),
            ),
            Action::UpgradeKubectlClient { version: v } => {
                (vec![], vec![Fact::KubectlClient { version: v.clone() }])
            }
            Action::ProvisionNodes { version: v, .. } => (
                vec![Fact::Absent, Fact::ControlPlaneAt { version: v.clone() }],
                vec![Fact::Present, Fact::Ready, version(Component::Kubelet, v)],
            ),
            Action::RemoveNodes => (vec![Fact::Cordoned], vec![Fact::Absent]),
            Action::Verify { version: v } => (
                vec![],
                vec![
                    Fact::ControlPlaneAt { version: v.clone() },
                    Fact::PolicyHolds,
                ],
            ),
            // A gate's facts are about workloads, which it checks itself.
            Action::GateBaseline { .. } | Action::Gate { .. } | Action::Hook { .. } => {
                (vec![], vec![])
            }
        }
    }

    /// Whether the action pre-stages (downloads packages or pulls images ahead of a node's
    /// window): it changes nothing a model or the cluster shows, may run batches ahead of
    /// the drain windows, and is repeated on resume.
    pub fn is_prestage(&self) -> bool {
        matches!(
            self,
            Action::DownloadPackages { .. } | Action::PullImages { .. }
        )
    }

    /// How long the cluster may take to show the action's postconditions once a task reports
    /// success: the run checks them against the live state until they hold or this window
    /// has passed (then the task failed). What settles: a static pod restarting and its
    /// mirror pod reporting the new image (`kubeadm upgrade`), a node object taking a cordon
    /// or a status (the cluster operations), a node joining or leaving (the provider). Zero
    /// for actions whose postconditions the state cannot show, or that have none.
    pub fn settle_window(&self) -> Duration {
        let s = Duration::from_secs;
        match self {
            Action::KubeadmUpgradeApply { .. }
            | Action::KubeadmUpgradeNode {
                control_plane: Some(_),
                ..
            } => s(120),
            Action::KubeadmUpgradeNode { .. } | Action::InstallPackages { .. } => s(60),
            Action::Cordon | Action::Drain { .. } | Action::Uncordon => s(30),
            Action::WaitReady { .. } | Action::WaitKubeProxyRollout { .. } => s(60),
            Action::ProvisionNodes { .. } => s(300),
            Action::RemoveNodes => s(120),
            Action::Preflight { .. }
            | Action::EtcdSnapshot { .. }
            | Action::BackupConfig { .. }
            | Action::SwitchRepository { .. }
            | Action::DownloadPackages { .. }
            | Action::PullImages { .. }
            | Action::CheckKubeadmVersion { .. }
            | Action::KubeadmUpgradePlan { .. }
            | Action::RestartKubelet { .. }
            | Action::UpgradeKubectlClient { .. }
            | Action::Verify { .. }
            | Action::GateBaseline { .. }
            | Action::Gate { .. }
            | Action::Hook { .. } => Duration::ZERO,
        }
    }

    /// Why the cluster's state cannot show `fact`, a postcondition of this action, when its
    /// task ends, if it cannot: the kubelet package an install leaves is what the node
    /// reports only once the kubelet restarts (the wait after the restart checks it). `None`:
    /// the state shows it (or says it cannot tell, see the run's checks).
    pub fn shown_later(&self, fact: &Fact) -> Option<&'static str> {
        match (self, fact) {
            (
                Action::InstallPackages { .. },
                Fact::Version {
                    component: Component::Kubelet,
                    ..
                },
            ) => Some("a node reports its kubelet's version once the kubelet restarts"),
            _ => None,
        }
    }
}

/// `component` on the step's node at `version`.
fn version(component: Component, version: &KubeVersion) -> Fact {
    Fact::Version {
        component,
        version: version.clone(),
    }
}

/// The add-ons a kubeadm step moves, at their versions (kube-proxy, then CoreDNS).
fn addon_facts(addons: &AddonVersions) -> Vec<Fact> {
    let mut f = Vec::new();
    if let Some(v) = &addons.kube_proxy {
        f.push(Fact::Addon {
            component: Component::KubeProxy,
            version: v.clone(),
        });
    }
    if let Some(v) = &addons.coredns {
        f.push(Fact::Addon {
            component: Component::CoreDns,
            version: v.clone(),
        });
    }
    f
}

/// What makes a kubelet of `v` safe to install or run on the step's node: on a control-plane
/// node ([`Phase::ControlPlaneKubelets`]) every API server at the hop's version `goal`,
/// elsewhere every API server at the kubelet's minor or newer.
fn kubelet_safe(v: &KubeVersion, goal: &KubeVersion, phase: Phase) -> Fact {
    if phase == Phase::ControlPlaneKubelets {
        Fact::ControlPlaneAt {
            version: goal.clone(),
        }
    } else {
        Fact::ControlPlaneAtLeast { minor: v.minor() }
    }
}

/// An API server moving to `v` stays within one minor of the others: every API server at
/// the minor before or newer (nothing before the first minor).
fn apiserver_safe(v: &KubeVersion) -> Option<Fact> {
    v.minor()
        .prev()
        .map(|minor| Fact::ControlPlaneAtLeast { minor })
}

/// Installing `packages` at `v`: the node present and, for a kubelet, cordoned and
/// [`kubelet_safe`]; after it, the packages at the version.
fn install(
    packages: &[Package],
    v: &KubeVersion,
    goal: &KubeVersion,
    phase: Phase,
) -> (Vec<Fact>, Vec<Fact>) {
    let mut pre = vec![Fact::Present];
    if packages.contains(&Package::Kubelet) {
        pre.push(Fact::Cordoned);
        pre.push(kubelet_safe(v, goal, phase));
    }
    let post = packages.iter().map(|p| version(p.component(), v)).collect();
    (pre, post)
}

/// `kubeadm upgrade apply` to `v`: kubeadm at the version, the policy holding, the API
/// servers [`apiserver_safe`]; after it, this node's API server at the version, the control
/// plane started at it, and the add-ons it moves.
fn upgrade_apply(v: &KubeVersion, addons: &AddonVersions) -> (Vec<Fact>, Vec<Fact>) {
    let mut post = vec![
        version(Component::KubeApiserver, v),
        Fact::ControlPlaneStarted { version: v.clone() },
    ];
    post.extend(addon_facts(addons));
    let mut pre = vec![version(Component::Kubeadm, v), Fact::PolicyHolds];
    pre.extend(apiserver_safe(v));
    (pre, post)
}

/// `kubeadm upgrade node` moving a control-plane node to `v`: kubeadm at the version, the
/// control plane started at it, the API servers [`apiserver_safe`]; after it, this node's API
/// server at the version and the add-ons it moves.
fn upgrade_node_control_plane(v: &KubeVersion, addons: &AddonVersions) -> (Vec<Fact>, Vec<Fact>) {
    let mut post = vec![version(Component::KubeApiserver, v)];
    post.extend(addon_facts(addons));
    let mut pre = vec![
        version(Component::Kubeadm, v),
        Fact::ControlPlaneStarted { version: v.clone() },
    ];
    pre.extend(apiserver_safe(v));
    (pre, post)
}

impl Step {
    /// This step restricted to `node` (all of it for `None` or a step without nodes): what
    /// one task of a run does, for models such as
    /// [`Simulation`](crate::plan::Simulation) that apply whole steps.
    pub fn on_node(&self, node: Option<&NodeName>) -> Step {
        let mut step = self.clone();
        if let Some(n) = node
            && let Some(i) = self.nodes.iter().position(|m| m == n)
        {
            step.nodes = NodeList::new(vec![n.clone()]);
            if let Action::ProvisionNodes { version, templates } = &self.action {
                step.action = Action::ProvisionNodes {
                    version: version.clone(),
                    templates: NodeList::new(
                        templates.as_slice().get(i).cloned().into_iter().collect(),
                    ),
                };
            }
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsFamily;
    use crate::plan::node_commands;

    /// A node task may take as long as its commands' timeouts and a minute; a command without
    /// a timeout counts the default, so one such command never removes the deadline. A wait
    /// gets its own timeout and a minute; a huge one saturates instead of overflowing.
    #[test]
    fn a_task_deadline_is_its_own_timeouts_and_a_minute() {
        let action = Action::InstallPackages {
            packages: vec![Package::Kubelet, Package::Kubectl],
            version: "v1.30.1".parse().unwrap(),
        };
        let commands = node_commands(&action, OsFamily::Debian).unwrap().commands;
        let total: Duration = commands.iter().map(|c| c.timeout.unwrap()).sum();
        let minute = Duration::from_secs(60);
        assert_eq!(action.deadline(&commands), total + minute);
        let mut untimed = commands.clone();
        let first = untimed[0].timeout.take().unwrap();
        assert_eq!(
            action.deadline(&untimed),
            total - first + crate::ports::DEFAULT_COMMAND_TIMEOUT + minute
        );
        let wait = Action::WaitReady {
            version: "v1.30.1".parse().unwrap(),
            timeout_seconds: 600,
        };
        assert_eq!(wait.deadline(&[]), Duration::from_secs(600) + minute);
        // Every node action of a plan is timed by its commands.
        let cluster = crate::inventory::parse(
            include_str!("../../../../examples/clusters/ha.yaml"),
            "ha.yaml",
        )
        .unwrap();
        let plan =
            crate::plan::PlanRequest::new("1.29".parse().unwrap(), jiff::civil::date(2024, 6, 1))
                .plan(&cluster)
                .unwrap();
        let mut timed = 0;
        for step in &plan.steps {
            for c in &step.commands {
                let total: Duration = c.commands.iter().map(CommandSpec::time_limit).sum();
                assert_eq!(step.action.deadline(&c.commands), total + minute);
                timed += 1;
            }
        }
        assert!(timed > 10, "the plan has node steps");
        let check = Action::Verify {
            version: "v1.30.1".parse().unwrap(),
        };
        assert_eq!(check.deadline(&[]), minute);
    }

    /// User-given numbers that become durations saturate (`--drain-timeout u64::MAX`,
    /// a command timeout near `Duration::MAX`).
    #[test]
    fn a_huge_timeout_saturates_instead_of_overflowing() {
        let drain = Action::Drain {
            options: crate::ports::DrainOptions {
                timeout_seconds: u64::MAX,
                ..Default::default()
            },
        };
        assert_eq!(drain.deadline(&[]), Duration::MAX);
        let wait = Action::WaitReady {
            version: "v1.30.1".parse().unwrap(),
            timeout_seconds: u64::MAX,
        };
        assert_eq!(wait.deadline(&[]), Duration::MAX);
        let install = Action::InstallPackages {
            packages: vec![Package::Kubelet],
            version: "v1.30.1".parse().unwrap(),
        };
        let long = CommandSpec::new("x").timeout(Duration::MAX);
        assert_eq!(install.deadline(&[long.clone(), long]), Duration::MAX);
    }
}
