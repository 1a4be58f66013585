//! What each step does to the model, node by node: tests replay plans on a [`ClusterState`]
//! with this, and executors can use it to predict the state a step leaves. A step's
//! [`Change`] (what its action changes, see `action.rs` and `change.rs`) is applied in one
//! place, [`Simulation::apply`]. The planner applies the same changes to its own model, which
//! keeps nodes as classes of equal nodes (see `fleet.rs`); the property tests hold the two to
//! the same answers.
use std::collections::HashMap;
use std::fmt;

use crate::skew::Summary;
use crate::{ClusterState, Node, NodeName};

use super::change::{Change, install, move_addon_versions, set_control_plane, upgrade_kubectl};
use super::step::{AddonVersions, Step};

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

impl SimulationError {
    /// `step` does not fit: `message` says why.
    pub(crate) fn of(step: &Step, message: String) -> Self {
        SimulationError {
            step: step.id.to_string(),
            message,
        }
    }
}

/// The positions (by `position`) of `step`'s nodes, in order, for a change made
/// [at the nodes](Change::at_nodes); none for other changes. A node that `position` does not
/// know is not in the cluster, and an error.
pub(crate) fn positions_of(
    step: &Step,
    change: &Change<'_>,
    position: impl Fn(&NodeName) -> Option<usize>,
) -> Result<Vec<usize>, SimulationError> {
    if !change.at_nodes() {
        return Ok(Vec::new());
    }
    step.nodes
        .iter()
        .map(|n| {
            position(n)
                .ok_or_else(|| SimulationError::of(step, format!("node {n} is not in the cluster")))
        })
        .collect()
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
            .ok_or_else(|| SimulationError::of(step, format!("node {name} is not in the cluster")))
    }

    /// The position of `name` in [`Simulation::state`]'s nodes. Positions stay put until a
    /// step removes nodes.
    pub fn position(&self, name: &NodeName) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Applies `step`'s change (see [`Action::change`](super::Action::change)) and says what
    /// changed.
    pub fn apply(&mut self, step: &Step) -> Result<Effect, SimulationError> {
        let change = step.action.change();
        let at = positions_of(step, &change, |n| self.index.get(n).copied())?;
        self.apply_change(step, &change, &at)
    }

    /// Applies `change`, `step`'s, to the nodes at positions `at` (the step's nodes, in order,
    /// for changes made [at the nodes](Change::at_nodes)); provisioning and removal go by the
    /// step's names.
    fn apply_change(
        &mut self,
        step: &Step,
        change: &Change<'_>,
        at: &[usize],
    ) -> Result<Effect, SimulationError> {
        let mut effect = Effect::default();
        let bad = |message: String| SimulationError::of(step, message);
        match *change {
            Change::Nothing | Change::KubeletRestart | Change::AwaitReady => {}
            Change::Install { packages, version } => {
                for &i in at {
                    if install(&mut self.state.nodes[i].versions, packages, version) {
                        effect.nodes = true;
                        // Positions of control-plane nodes are kept sorted.
                        effect.control_plane |= self.control_plane.binary_search(&i).is_ok();
                    }
                }
            }
            Change::ControlPlane {
                version,
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
                    set_control_plane(&mut node.versions, version, etcd);
                    effect.nodes = true;
                    effect.control_plane = true;
                }
                effect.addons |= self.move_addons(addons);
            }
            Change::Addons(addons) => {
                effect.addons |= self.move_addons(addons);
            }
            Change::Schedulable(schedulable) => {
                let cordon = !schedulable;
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
            Change::RollOutKubeProxy => {
                // Every kube-proxy pod now runs the DaemonSet's version.
                for n in &mut self.state.nodes {
                    if n.versions.kube_proxy.take().is_some() {
                        effect.addons = true;
                    }
                }
            }
            Change::Kubectl(version) => {
                effect.cluster_fields |= upgrade_kubectl(&mut self.state.kubectl, version);
            }
            Change::Provision { version, templates } => {
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
            Change::Remove => {
                for name in &step.nodes {
                    let i = self.index_of(step, name)?;
                    self.remove_at(i);
                    effect.removed = true;
                }
            }
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
