//! The simulated cluster's state: what the API shows ([`ClusterState`]) and what only the
//! nodes know (package repositories, installed packages, holds, kubelet configuration), the
//! workload, disruption budgets, faults to inject, and the history of every effect.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kupgrade_core::plan::Package;
use kupgrade_core::{ClusterState, KubeVersion, Minor, Node, NodeName, OsFamily};
use serde::{Deserialize, Serialize};

use super::fault::Fault;

/// The format of a persisted [`SimState`].
pub const STATE_FORMAT: u32 = 1;

/// Everything the simulation knows; serializable, so a simulated cluster survives the process
/// that drives it (see [`super::SimCluster::persist_to`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimState {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// What the cluster's API shows (kubelet versions as the kubelets report them).
    pub cluster: ClusterState,
    /// What only the nodes know.
    pub hosts: BTreeMap<NodeName, Host>,
    /// The cluster version kubeadm recorded (its `kubeadm-config`), set by
    /// `kubeadm upgrade apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeadm_config: Option<KubeVersion>,
    /// Pods.
    #[serde(default)]
    pub pods: Vec<Pod>,
    /// Disruption budgets.
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Faults still to inject.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Simulated time, in milliseconds since the simulation began.
    pub clock_ms: u64,
    /// Every effect, in order (a persisted cluster keeps them in a file of their own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// Things a careful operator would not have done (a kubelet changing minor on a node that
    /// was not drained, a kubelet newer than an API server, …). Tests expect none.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// What a node knows about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// The Kubernetes package repository the node points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<Repo>,
    /// Installed package versions.
    #[serde(default)]
    pub installed: BTreeMap<Package, KubeVersion>,
    /// Packages on hold (`apt-mark hold`) or locked (`zypper addlock`).
    #[serde(default)]
    pub held: BTreeSet<Package>,
    /// The minor of the kubelet configuration kubeadm last wrote (`kubeadm upgrade node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_config: Option<Minor>,
    /// When a restarted kubelet reports Ready again (ms of simulated time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at_ms: Option<u64>,
    /// Files written (snapshots, backups).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub files: BTreeSet<String>,
    /// Package versions downloaded ahead into the package manager's cache (pre-staging:
    /// `apt-get install --download-only`, `dnf install --downloadonly`), not installed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub downloaded: BTreeSet<(Package, KubeVersion)>,
    /// The control-plane versions whose images were pulled ahead
    /// (`kubeadm config images pull --kubernetes-version`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub pulled: BTreeSet<KubeVersion>,
}

/// A node's package repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repo {
    /// apt, yum or zypper.
    pub kind: RepoKind,
    /// The Kubernetes minor it carries.
    pub minor: Minor,
    /// Whether the package manager has read it since it changed (apt and zypper read a
    /// change after `apt-get update` or `zypper refresh`; dnf at once).
    pub fresh: bool,
}

/// Which package manager a repository file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepoKind {
    /// `/etc/apt/sources.list.d/kubernetes.list`.
    Apt,
    /// `/etc/yum.repos.d/kubernetes.repo`.
    Yum,
    /// `/etc/zypp/repos.d/kubernetes.repo`.
    Zypper,
}

impl RepoKind {
    /// The kind a node of `family` uses.
    pub fn of(family: OsFamily) -> Option<RepoKind> {
        match family {
            OsFamily::Debian => Some(RepoKind::Apt),
            OsFamily::Rhel => Some(RepoKind::Yum),
            OsFamily::Suse => Some(RepoKind::Zypper),
            OsFamily::Other => None,
        }
    }

    /// Whether the package manager reads a changed repository file only after a refresh
    /// (`apt-get update`, `zypper refresh`); dnf reads it on its next run.
    pub(crate) fn needs_refresh(self) -> bool {
        match self {
            RepoKind::Apt | RepoKind::Zypper => true,
            RepoKind::Yum => false,
        }
    }
}

impl Host {
    /// A node as a kubeadm cluster has it: packages installed at the node's versions and held,
    /// the repository of its kubeadm's (or kubelet's) minor.
    pub fn of(node: &Node) -> Host {
        let mut installed = BTreeMap::new();
        for p in [Package::Kubelet, Package::Kubeadm, Package::Kubectl] {
            if let Some(v) = node.versions.get(p.component()) {
                installed.insert(p, v.clone());
            }
        }
        let minor = node
            .versions
            .kubeadm
            .as_ref()
            .or(node.versions.kubelet.as_ref())
            .map(KubeVersion::minor);
        Host {
            repo: RepoKind::of(node.os.family)
                .zip(minor)
                .map(|(kind, minor)| Repo {
                    kind,
                    minor,
                    fresh: true,
                }),
            held: installed.keys().copied().collect(),
            // `kubeadm upgrade apply` and `upgrade node` rewrite the kubelet configuration with
            // the control plane: a control-plane node whose API server moved has its minor's.
            kubelet_config: [&node.versions.kubelet, &node.versions.kube_apiserver]
                .into_iter()
                .filter_map(|v| v.as_ref().map(KubeVersion::minor))
                .max(),
            installed,
            ready_at_ms: None,
            files: BTreeSet::new(),
            downloaded: BTreeSet::new(),
            pulled: BTreeSet::new(),
        }
    }
}

/// What kind of pod, as a drain sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodKind {
    /// Controlled by a ReplicaSet: evicted and started again elsewhere.
    Replicated,
    /// Controlled by a DaemonSet: left in place (with `ignoreDaemonsets`).
    DaemonSet,
    /// A static pod's mirror: left in place.
    Mirror,
    /// No controller: deleted only with `force`, and gone for good.
    Unreplicated,
}

/// A pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels (budgets select on them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Kind.
    pub kind: PodKind,
    /// Where it runs; `None`: pending, no schedulable node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
    /// When it is (or was) Ready, ms of simulated time; `None`: not Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at_ms: Option<u64>,
    /// Uses an emptyDir volume (evicted only with `deleteEmptydirData`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_dir: bool,
}

impl Pod {
    /// Ready at `now_ms`.
    pub fn ready(&self, now_ms: u64) -> bool {
        self.node.is_some() && self.ready_at_ms.is_some_and(|t| t <= now_ms)
    }
}

/// A PodDisruptionBudget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The pods it covers.
    pub selector: BTreeMap<String, String>,
    /// At least this many covered pods must stay Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<u32>,
    /// At most this many covered pods may be unavailable (of `expected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    /// How many pods the controller wants (for `maxUnavailable`).
    pub expected: u32,
}

impl Budget {
    /// True when the budget covers `pod`.
    pub fn covers(&self, pod: &Pod) -> bool {
        pod.namespace == self.namespace
            && !self.selector.is_empty()
            && self
                .selector
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v))
    }

    /// How many more disruptions it allows, given `healthy` Ready pods.
    pub fn allowed(&self, healthy: u32) -> i64 {
        match (self.min_available, self.max_unavailable) {
            (Some(min), _) => i64::from(healthy) - i64::from(min),
            (None, Some(max)) => i64::from(max) - (i64::from(self.expected) - i64::from(healthy)),
            (None, None) => i64::MAX,
        }
    }
}

/// One entry of the simulation's history: a change it made, for tests and for the example's summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Simulated time, ms.
    pub at_ms: u64,
    /// The node.
    pub node: NodeName,
    /// The run's task that caused it, when a driver ran it (see
    /// [`crate::driver::current_task`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// What happened (the command line, or `cordon`, `drain`, `provision v1.29.5`, …).
    pub what: String,
}

/// How long things take in simulated time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Reading a changed repository (`apt-get update`, `zypper refresh`).
    pub apt_update: Duration,
    /// Installing packages (`apt-get install`, `dnf install`, `zypper install`), their
    /// download included: an install whose pinned packages were all downloaded ahead
    /// (pre-staging, [`Host::downloaded`]) takes this less [`download`](Self::download).
    pub install: Duration,
    /// Downloading packages: a download-only command (`apt-get install --download-only`,
    /// `dnf install --downloadonly`), and the part of an install it saves.
    pub download: Duration,
    /// `kubeadm upgrade apply`.
    pub kubeadm_apply: Duration,
    /// `kubeadm upgrade node` on a control-plane node.
    pub kubeadm_node: Duration,
    /// `kubeadm upgrade plan`.
    pub kubeadm_plan: Duration,
    /// An etcd snapshot.
    pub etcd_snapshot: Duration,
    /// Any other command.
    pub command: Duration,
    /// From a kubelet restart to Ready.
    pub kubelet_ready: Duration,
    /// Cordon and uncordon.
    pub cordon: Duration,
    /// One round of evictions during a drain.
    pub eviction: Duration,
    /// Between eviction rounds when a budget refuses.
    pub eviction_retry: Duration,
    /// From eviction to the replacement pod being Ready.
    pub pod_start: Duration,
    /// Provisioning a node until it is Ready.
    pub provision: Duration,
    /// Removing a node.
    pub remove: Duration,
    /// How often `wait_ready` looks.
    pub poll: Duration,
    /// A kube-proxy rollout under way when the simulation starts (nodes whose kube-proxy
    /// differs from the DaemonSet) finishes this long after it started.
    pub daemonset_rollout: Duration,
}

impl Default for Timings {
    /// Plausible figures for a small VM cluster.
    fn default() -> Self {
        let s = Duration::from_secs;
        Timings {
            apt_update: s(20),
            install: s(60),
            download: s(40),
            kubeadm_apply: s(240),
            kubeadm_node: s(120),
            kubeadm_plan: s(30),
            etcd_snapshot: s(20),
            command: s(2),
            kubelet_ready: s(20),
            cordon: s(1),
            eviction: s(2),
            eviction_retry: s(5),
            pod_start: s(15),
            provision: s(180),
            remove: s(30),
            poll: s(2),
            daemonset_rollout: s(60),
        }
    }
}
