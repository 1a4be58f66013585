//! What an action changes: one description that both models of the cluster apply and the run
//! reads its expectations from.
//!
//! [`Action::change`](super::Action::change) says which [`Change`] an action makes. The
//! whole-node [`Simulation`](super::Simulation) and the planner's class model (`fleet.rs`)
//! each apply it in one `apply_change` over their own storage; the field-level meaning (what
//! an install or `kubeadm upgrade` does to a node's versions, what moving the add-ons does)
//! is written once, here, and used by both. The run takes from the same value what it expects
//! of a task's node while the task runs ([`Change::on_start`], [`Change::on_done`]).
use crate::{Addons, Component, KubeVersion, NodeVersions};

use super::step::{AddonVersions, NodeList, Package};

/// What an action changes in the cluster, and what it means for its nodes while it runs.
///
/// The values borrow from the action. A model matches on every kind of change, so a new kind
/// makes each model say what it does.
///
/// ```
/// use kupgrade_core::plan::{Action, Change, Presence};
/// assert_eq!(Action::Cordon.change(), Change::Schedulable(false));
/// assert!(Action::RemoveNodes.change().is_modelled());
/// assert_eq!(Action::RemoveNodes.change().on_done().presence, Some(Presence::Absent));
/// assert!(!Action::Verify { version: "v1.31.2".parse()? }.change().is_modelled());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change<'a> {
    /// Nothing that the models or the run track: checks, backups, repository switches,
    /// kubeadm's own pre-flight, a worker's kubelet configuration.
    Nothing,
    /// The kubelet restarts: no modelled version moves (the installed kubelet's already
    /// did), but the node may be NotReady until a [`Change::AwaitReady`] task for it is done.
    KubeletRestart,
    /// The run waits until the node is Ready: nothing is modelled, and the node is expected
    /// Ready once the task is done.
    AwaitReady,
    /// `packages` on each node move to `version`.
    Install {
        /// The packages.
        packages: &'a [Package],
        /// Their version.
        version: &'a KubeVersion,
    },
    /// kubeadm moves each node's control-plane components to `version` (stacked etcd to
    /// `etcd`, when given), then the add-ons.
    ControlPlane {
        /// The control-plane version.
        version: &'a KubeVersion,
        /// The stacked etcd version, when it changes.
        etcd: Option<&'a KubeVersion>,
        /// The add-ons that move with it.
        addons: &'a AddonVersions,
    },
    /// The add-ons move (the nodes' own versions do not).
    Addons(&'a AddonVersions),
    /// The nodes become schedulable (`true`) or cordoned (`false`).
    Schedulable(bool),
    /// Every kube-proxy pod comes to run the DaemonSet's version.
    RollOutKubeProxy,
    /// The operators' kubectl moves to this version.
    Kubectl(&'a KubeVersion),
    /// The step's nodes are created, each like its template (in order), at `version`; they
    /// may be absent or NotReady until the task is done.
    Provision {
        /// The version they join with.
        version: &'a KubeVersion,
        /// The node each one copies.
        templates: &'a NodeList,
    },
    /// The step's nodes are removed; they may still be there until the task is done.
    Remove,
}

/// Whether the run expects a node to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Presence {
    /// The node is there; should it leave, the run stops.
    Present,
    /// The node is gone (the plan removed it) or not there yet (the plan provisions it); the
    /// final check passes it over.
    Absent,
    /// A task that creates or removes it is under way: either.
    Either,
}

/// What the run expects of a task's node from a moment on (see [`Change::on_start`] and
/// [`Change::on_done`]). `None`: as it expected before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeExpectation {
    /// `Some(true)`: the node may be NotReady for a while (its kubelet restarts, or it is
    /// joining); `Some(false)`: no longer.
    pub settling: Option<bool>,
    /// Whether the node exists.
    pub presence: Option<Presence>,
}

impl Change<'_> {
    /// True when the change moves something the models track (versions, schedulability,
    /// membership, add-ons, the operators' kubectl). The planner simulates and checks again
    /// only such steps, and a plan without any is empty.
    pub fn is_modelled(&self) -> bool {
        !matches!(
            self,
            Change::Nothing | Change::KubeletRestart | Change::AwaitReady
        )
    }

    /// True when a model applies the change to the step's nodes as it finds them (by their
    /// positions); provisioning and removal go by name, the other changes are cluster-wide.
    pub(crate) fn at_nodes(&self) -> bool {
        matches!(
            self,
            Change::Install { .. } | Change::ControlPlane { .. } | Change::Schedulable(_)
        )
    }

    /// What the run expects of the task's node once the task has started.
    pub fn on_start(&self) -> NodeExpectation {
        match self {
            Change::KubeletRestart => NodeExpectation {
                settling: Some(true),
                presence: None,
            },
            Change::Provision { .. } => NodeExpectation {
                settling: Some(true),
                presence: Some(Presence::Either),
            },
            Change::Remove => NodeExpectation {
                settling: None,
                presence: Some(Presence::Either),
            },
            _ => NodeExpectation::default(),
        }
    }

    /// What the run expects of the task's node once the task is done.
    pub fn on_done(&self) -> NodeExpectation {
        match self {
            Change::AwaitReady => NodeExpectation {
                settling: Some(false),
                presence: None,
            },
            Change::Provision { .. } => NodeExpectation {
                settling: Some(false),
                presence: Some(Presence::Present),
            },
            Change::Remove => NodeExpectation {
                settling: Some(false),
                presence: Some(Presence::Absent),
            },
            _ => NodeExpectation::default(),
        }
    }
}

/// What installing `packages` at `version` does to a node's versions; true when one changed.
pub(crate) fn install(v: &mut NodeVersions, packages: &[Package], version: &KubeVersion) -> bool {
    let mut changed = false;
    for p in packages {
        if let Some(slot) = v.slot_mut(p.component())
            && slot.as_ref() != Some(version)
        {
            *slot = Some(version.clone());
            changed = true;
        }
    }
    changed
}

/// The operators' kubectl moves to `version` (when there is one); true when it changed.
pub(crate) fn upgrade_kubectl(kubectl: &mut Option<KubeVersion>, version: &KubeVersion) -> bool {
    match kubectl {
        Some(k) if k != version => {
            *k = version.clone();
            true
        }
        _ => false,
    }
}

/// The add-ons' versions move (the kube-proxy DaemonSet, CoreDNS, where known); true when one
/// changed. The kube-proxy pods on the nodes are the caller's to roll out.
pub(crate) fn move_addon_versions(have: &mut Addons, to: &AddonVersions) -> bool {
    let mut changed = false;
    for (slot, v) in [
        (&mut have.kube_proxy, &to.kube_proxy),
        (&mut have.coredns, &to.coredns),
    ] {
        if let (Some(have), Some(v)) = (slot, v)
            && have != v
        {
            *have = v.clone();
            changed = true;
        }
    }
    changed
}

/// What `kubeadm upgrade apply|node` does to a control-plane node: the static pods it manages
/// move to `version` (the cloud controller manager is not kubeadm's), stacked etcd to `etcd`.
pub(crate) fn set_control_plane(
    v: &mut NodeVersions,
    version: &KubeVersion,
    etcd: Option<&KubeVersion>,
) {
    v.kube_apiserver = Some(version.clone());
    for c in [Component::KubeControllerManager, Component::KubeScheduler] {
        if let Some(slot) = v.slot_mut(c)
            && slot.is_some()
        {
            *slot = Some(version.clone());
        }
    }
    if let (Some(e), Some(slot)) = (etcd, v.etcd.as_mut()) {
        *slot = e.clone();
    }
}
