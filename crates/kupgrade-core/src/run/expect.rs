//! Expectations: what the run expects of the live cluster besides each step's own facts, and
//! what it found there last.
//!
//! What it guarantees:
//! - [`NodeExpectations`]: every node of the plan's node list has an expected presence (a node
//!   the plan provisions is absent until its task starts); a task's start and its end change
//!   its node's presence and settling exactly as its action's `Change` says (`on_start`,
//!   `on_done`), and nothing else changes them; the generation grows with every change of a
//!   presence, so a check made at one generation holds until the next.
//! - [`Layout`]: the positions of the nodes of the last cluster state read, by name (the first
//!   of duplicate names); `presence_ok` is the generation at which every node expected present
//!   was found in that list, and is forgotten when the list changes.
//! - the baseline: once set (the first session, or the journal's first record), `tolerated`
//!   and `not_ready_ok` are exactly its lists and never change.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::plan::{Change, NodeExpectation, Presence, UpgradePlan};
use crate::{ClusterState, NodeName};

use super::record::{Baseline, ViolationKey};
use super::task::Pos;

/// What the run expects of the live cluster: the nodes, the layout of the last read, and what
/// was already amiss when the run began.
pub(super) struct Expectations {
    /// Each node's presence and whether it may be NotReady for a while.
    pub nodes: NodeExpectations,
    /// The live cluster's node list, kept between reads.
    pub layout: Layout,
    /// What was amiss when the run began; `None` until the first session opens (or a journal
    /// says).
    baseline: Option<Baseline>,
    /// The baseline's policy errors: not drift.
    pub tolerated: HashSet<ViolationKey>,
    /// The baseline's NotReady nodes: not drift.
    pub not_ready_ok: HashSet<NodeName>,
}

impl Expectations {
    /// What the run expects of the cluster before any task of `plan` ran.
    pub fn new(plan: &UpgradePlan) -> Self {
        Expectations {
            nodes: NodeExpectations::new(plan),
            layout: Layout::default(),
            baseline: None,
            tolerated: HashSet::new(),
            not_ready_ok: HashSet::new(),
        }
    }

    /// The baseline, once set.
    pub fn baseline(&self) -> Option<&Baseline> {
        self.baseline.as_ref()
    }

    /// Takes on what was amiss when the run began.
    pub fn set_baseline(&mut self, baseline: Baseline) {
        self.tolerated = baseline.tolerated.iter().cloned().collect();
        self.not_ready_ok = baseline.not_ready.iter().cloned().collect();
        self.baseline = Some(baseline);
    }
}

/// What the run expects of each node of the plan while tasks start and end.
pub(super) struct NodeExpectations {
    /// Whether each node should be in the cluster.
    presence: HashMap<NodeName, Presence>,
    /// Bumped whenever `presence` changes.
    generation: u64,
    /// Nodes that may be NotReady for a while (a restarting kubelet, a joining node).
    settling: HashSet<NodeName>,
}

impl NodeExpectations {
    /// What the run expects of the plan's nodes before any task ran.
    pub fn new(plan: &UpgradePlan) -> Self {
        let presence = plan
            .nodes
            .iter()
            .map(|n| {
                let p = if n.provisioned {
                    Presence::Absent
                } else {
                    Presence::Present
                };
                (n.name.clone(), p)
            })
            .collect();
        NodeExpectations {
            presence,
            generation: 0,
            settling: HashSet::new(),
        }
    }

    /// Where `node` should be, for nodes the run knows.
    pub fn presence(&self, node: &NodeName) -> Option<Presence> {
        self.presence.get(node).copied()
    }

    /// Every node the run expects in the cluster now.
    pub fn present(&self) -> impl Iterator<Item = &NodeName> {
        self.presence
            .iter()
            .filter(|(_, p)| **p == Presence::Present)
            .map(|(n, _)| n)
    }

    /// The generation of the presences: changes whenever one does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True while `node` may be NotReady.
    pub fn is_settling(&self, node: &NodeName) -> bool {
        self.settling.contains(node)
    }

    /// Takes on what starting the task at `pos` means for its node.
    pub fn started(&mut self, plan: &UpgradePlan, pos: Pos) {
        self.take_on(plan, pos, |c| c.on_start());
    }

    /// Takes on what the task at `pos` being done means for its node.
    pub fn done(&mut self, plan: &UpgradePlan, pos: Pos) {
        self.take_on(plan, pos, |c| c.on_done());
    }

    /// Takes on what the step's change (`when`: on start or once done) says of the task's node.
    fn take_on(&mut self, plan: &UpgradePlan, pos: Pos, when: fn(&Change<'_>) -> NodeExpectation) {
        let Some(node) = pos.node(plan) else {
            return;
        };
        let expect = when(&pos.step(plan).action.change());
        match expect.settling {
            Some(true) => {
                self.settling.insert(node.clone());
            }
            Some(false) => {
                self.settling.remove(node);
            }
            None => {}
        }
        if let Some(p) = expect.presence {
            self.presence.insert(node.clone(), p);
            self.generation += 1;
        }
    }
}

/// Where each node of a cluster state is, by name. The run keeps it from one read of the
/// cluster to the next and rebuilds it only when the node list changed (rarely: a node
/// replaced or removed), since indexing thousands of names on every read would cost more
/// than the checks themselves.
#[derive(Default)]
pub(super) struct Layout {
    names: Vec<NodeName>,
    positions: HashMap<NodeName, usize>,
    /// The run's presence generation for which every node the run expects was found here.
    pub presence_ok: Option<u64>,
}

impl Layout {
    /// Makes this the layout of `state`, rebuilding it only when the node list differs.
    pub fn follow(&mut self, state: &ClusterState) {
        let same = self.names.len() == state.nodes.len()
            && self
                .names
                .iter()
                .zip(&state.nodes)
                .all(|(a, n)| *a == n.name);
        if same {
            return;
        }
        self.names = state.nodes.iter().map(|n| n.name.clone()).collect();
        self.positions = HashMap::with_capacity(self.names.len());
        for (i, n) in self.names.iter().enumerate() {
            // The first of duplicate names wins, as a lookup by name in the list would.
            self.positions.entry(n.clone()).or_insert(i);
        }
        self.presence_ok = None;
    }

    /// Where `name` is in the node list.
    pub fn position(&self, name: &NodeName) -> Option<usize> {
        self.positions.get(name).copied()
    }
}
