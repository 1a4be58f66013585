//! What each step does to the model, node by node: tests replay plans on a [`ClusterState`]
//! with this, and executors can use it to predict the state a step leaves. The planner applies
//! the same effects to its own model, which keeps nodes as classes of equal nodes (see
//! `fleet.rs`); the property tests hold the two to the same answers.
use std::collections::HashMap;
use std::fmt;

use crate::skew::Summary;
use crate::{Addons, ClusterState, Component, KubeVersion, Node, NodeName, NodeVersions};

use super::action::Action;
use super::step::{AddonVersions, Package, Step};

/// A cluster state that steps can be applied to, with an index from node names to nodes.
///
/// ```
/// use kupgrade_core::plan::Simulation;
/// use kupgrade_core::{ClusterState, Node};
/// let state = ClusterState::new(vec![Node::worker("w-1", "v1.29.3".parse()?)?]);
/// let sim = Simulation::new(state);
/// assert_eq!(sim.state().nodes.len(), 1);
/// assert_eq!(sim.cordoned(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Simulation {
    state: ClusterState,
    index: HashMap<NodeName, usize, BuildFnv>,
    control_plane: Vec<usize>,
    cordoned: usize,
}

/// What a step changed, so that only that is checked again (see the contract on
/// [`SkewPolicy`](crate::skew::SkewPolicy)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// Versions on some of the step's nodes changed, or nodes were added.
    pub nodes: bool,
    /// Some of the step's nodes were cordoned or uncordoned.
    pub schedulability: bool,
    /// A control-plane node changed.
    pub control_plane: bool,
    /// The add-ons changed (kube-proxy, CoreDNS), or which kube-proxy version nodes run.
    pub addons: bool,
    /// Another cluster-wide field changed: the operators' kubectl.
    pub cluster_fields: bool,
    /// Nodes were removed.
    pub removed: bool,
}

impl Effect {
    /// True when nothing changed.
    pub fn is_none(&self) -> bool {
        *self == Effect::default()
    }
}

/// A step that does not fit the state it is applied to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SimulationError {
    /// The step.
    pub step: String,
    /// What does not fit.
    pub message: String,
}

impl fmt::Display for SimulationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.step, self.message)
    }
}

impl Simulation {
    /// Starts from `state`. Node names are unique in any validated inventory; should one repeat,
    /// the first node of that name is the one steps act on.
    pub fn new(state: ClusterState) -> Self {
        let mut index = HashMap::with_capacity_and_hasher(state.nodes.len(), BuildFnv);
        let mut control_plane = Vec::new();
        let mut cordoned = 0;
        for (i, n) in state.nodes.iter().enumerate() {
            index.entry(n.name.clone()).or_insert(i);
            if n.is_control_plane() {
                control_plane.push(i);
            }
            if n.unschedulable {
                cordoned += 1;
            }
        }
        Simulation {
            state,
            index,
            control_plane,
            cordoned,
        }
    }

    /// The current state.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// The final state.
    pub fn into_state(self) -> ClusterState {
        self.state
    }

    /// The node called `name`.
    pub fn node(&self, name: &NodeName) -> Option<&Node> {
        self.index.get(name).map(|&i| &self.state.nodes[i])
    }

    /// How many nodes are cordoned now.
    pub fn cordoned(&self) -> usize {
        self.cordoned
    }

    /// The control-plane nodes, in state order.
    pub fn control_plane(&self) -> impl Iterator<Item = &Node> + '_ {
        self.control_plane.iter().map(|&i| &self.state.nodes[i])
    }

    /// The policy summary of the current state, computed from the control-plane nodes alone
    /// (equal to [`Summary::of`]).
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            control_plane: self.control_plane.clone(),
            ..Summary::default()
        };
        for n in self.control_plane() {
            if let Some(v) = &n.versions.kube_apiserver {
                if s.apiserver_min.as_ref().is_none_or(|m| v < m) {
                    s.apiserver_min = Some(v.clone());
                }
                if s.apiserver_max.as_ref().is_none_or(|m| v > m) {
                    s.apiserver_max = Some(v.clone());
                }
            }
        }
        s
    }

    fn index_of(&self, step: &Step, name: &NodeName) -> Result<usize, SimulationError> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| SimulationError {
                step: step.id.to_string(),
                message: format!("node {name} is not in the cluster"),
            })
    }

    /// The position of `name` in [`Simulation::state`]'s nodes. Positions stay put until a
    /// step removes nodes.
    pub fn position(&self, name: &NodeName) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Applies `step`'s effect (see [`Action`]) and says what changed.
    pub fn apply(&mut self, step: &Step) -> Result<Effect, SimulationError> {
        match &step.action {
            Action::ProvisionNodes { .. } | Action::RemoveNodes => self.apply_at(step, &[]),
            _ if Self::nodes_unused(&step.action) => self.apply_at(step, &[]),
            _ => {
                let at = step
                    .nodes
                    .iter()
                    .map(|n| self.index_of(step, n))
                    .collect::<Result<Vec<usize>, _>>()?;
                self.apply_at(step, &at)
            }
        }
    }

    /// True for actions that never change the modelled state: the planner neither simulates nor
    /// re-checks them.
    pub(crate) fn no_effect(action: &Action) -> bool {
        matches!(
            action,
            Action::Preflight { .. }
                | Action::EtcdSnapshot { .. }
                | Action::BackupConfig { .. }
                | Action::SwitchRepository { .. }
                | Action::CheckKubeadmVersion { .. }
                | Action::KubeadmUpgradePlan { .. }
                | Action::RestartKubelet { .. }
                | Action::WaitReady { .. }
                | Action::Verify { .. }
        ) || matches!(
            action,
            Action::KubeadmUpgradeNode {
                control_plane: None,
                addons,
                ..
            } if addons.is_empty()
        )
    }

    /// True for actions whose effect does not depend on the step's nodes.
    fn nodes_unused(action: &Action) -> bool {
        Self::no_effect(action)
            || matches!(
                action,
                Action::WaitKubeProxyRollout { .. }
                    | Action::UpgradeKubectlClient { .. }
                    | Action::KubeadmUpgradeNode {
                        control_plane: None,
                        ..
                    }
            )
    }

    /// Applies `step` to the nodes at positions `at` (the step's nodes, in order; see
    /// [`Simulation::position`]). Provision and remove steps go by name and ignore `at`.
    pub(crate) fn apply_at(
        &mut self,
        step: &Step,
        at: &[usize],
    ) -> Result<Effect, SimulationError> {
        let mut effect = Effect::default();
        let bad = |message: String| SimulationError {
            step: step.id.to_string(),
            message,
        };
        if at.iter().any(|&i| i >= self.state.nodes.len()) {
            return Err(bad("a node position is out of range".into()));
        }
        match &step.action {
            Action::InstallPackages { packages, version } => {
                for &i in at {
                    if install(&mut self.state.nodes[i].versions, packages, version) {
                        effect.nodes = true;
                        // Positions of control-plane nodes are kept sorted.
                        effect.control_plane |= self.control_plane.binary_search(&i).is_ok();
                    }
                }
            }
            Action::KubeadmUpgradeApply {
                version,
                etcd,
                addons,
            }
            | Action::KubeadmUpgradeNode {
                control_plane: Some(version),
                etcd,
                addons,
            } => {
                for &i in at {
                    let node = &mut self.state.nodes[i];
                    if !node.is_control_plane() {
                        return Err(bad(format!(
                            "node {} is not a control-plane node",
                            node.name
                        )));
                    }
                    set_control_plane(&mut node.versions, version, etcd.as_ref());
                    effect.nodes = true;
                    effect.control_plane = true;
                }
                effect.addons |= self.move_addons(addons);
            }
            Action::KubeadmUpgradeNode {
                control_plane: None,
                addons,
                ..
            } => {
                effect.addons |= self.move_addons(addons);
            }
            Action::Cordon | Action::Drain { .. } | Action::Uncordon => {
                let cordon = !matches!(step.action, Action::Uncordon);
                for &i in at {
                    let node = &mut self.state.nodes[i];
                    if node.unschedulable != cordon {
                        node.unschedulable = cordon;
                        if cordon {
                            self.cordoned += 1;
                        } else {
                            self.cordoned -= 1;
                        }
                        effect.schedulability = true;
                    }
                }
            }
            Action::WaitKubeProxyRollout { .. } => {
                // Every kube-proxy pod now runs the DaemonSet's version.
                for n in &mut self.state.nodes {
                    if n.versions.kube_proxy.take().is_some() {
                        effect.addons = true;
                    }
                }
            }
            Action::UpgradeKubectlClient { version } => {
                effect.cluster_fields |= upgrade_kubectl(&mut self.state.kubectl, version);
            }
            Action::ProvisionNodes { version, templates } => {
                if templates.len() != step.nodes.len() {
                    return Err(bad(format!(
                        "{} nodes to provision but {} templates",
                        step.nodes.len(),
                        templates.len()
                    )));
                }
                for (name, template) in step.nodes.iter().zip(templates) {
                    if self.index.contains_key(name) {
                        return Err(bad(format!("node {name} already exists")));
                    }
                    let t = &self.state.nodes[self.index_of(step, template)?];
                    let node = Node::provisioned(name, t, version);
                    let i = self.state.nodes.len();
                    if node.is_control_plane() {
                        self.control_plane.push(i);
                        effect.control_plane = true;
                    }
                    self.state.nodes.push(node);
                    self.index.insert(name.clone(), i);
                    effect.nodes = true;
                }
            }
            Action::RemoveNodes => {
                for name in &step.nodes {
                    let i = self.index_of(step, name)?;
                    self.remove_at(i);
                    effect.removed = true;
                }
            }
            Action::Preflight { .. }
            | Action::EtcdSnapshot { .. }
            | Action::BackupConfig { .. }
            | Action::SwitchRepository { .. }
            | Action::CheckKubeadmVersion { .. }
            | Action::KubeadmUpgradePlan { .. }
            | Action::RestartKubelet { .. }
            | Action::WaitReady { .. }
            | Action::Verify { .. } => {}
        }
        Ok(effect)
    }

    fn remove_at(&mut self, i: usize) {
        let node = self.state.nodes.swap_remove(i);
        self.index.remove(&node.name);
        if node.unschedulable {
            self.cordoned -= 1;
        }
        let last = self.state.nodes.len();
        if node.is_control_plane() {
            self.control_plane.retain(|&c| c != i);
        }
        if i < last {
            // The former last node now lives at `i`.
            let moved = &self.state.nodes[i];
            self.index.insert(moved.name.clone(), i);
            if moved.is_control_plane() {
                for c in &mut self.control_plane {
                    if *c == last {
                        *c = i;
                    }
                }
                self.control_plane.sort_unstable();
            }
        }
    }

    /// Moves the add-ons; true when something changed.
    fn move_addons(&mut self, addons: &AddonVersions) -> bool {
        let mut changed = move_addon_versions(&mut self.state.addons, addons);
        if addons.kube_proxy.is_some() {
            // The DaemonSet rolls out to every node.
            for n in &mut self.state.nodes {
                if n.versions.kube_proxy.take().is_some() {
                    changed = true;
                }
            }
        }
        changed
    }
}

/// FNV-1a: node names are short and not attacker-chosen here (they are validated RFC 1123
/// names from the caller's own inventory), so a fast hash suits the name index.
#[derive(Clone, Copy, Debug, Default)]
struct BuildFnv;

impl std::hash::BuildHasher for BuildFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
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
